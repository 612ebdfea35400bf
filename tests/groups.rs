//! Group coordinator over raw protocol: error paths clients rarely exercise,
//! timeouts driven by the broker's own timer, persistence across restarts.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Consumer-protocol subscription metadata (version prefix + struct).
fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut b = BytesMut::new();
    b.put_i16(1);
    sub.encode(&mut b, 1).unwrap();
    b.freeze()
}

fn join_req(group: &str, member: &str, session_ms: i32, topics: &[&str]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(5000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(subscription(topics))])
}

/// Joins a fresh member at JoinGroup v5 (two steps) and syncs it as leader.
async fn join_and_sync(c: &mut Client, group: &str, topics: &[&str]) -> (String, i32) {
    let r = c.send(5, &join_req(group, "", 10_000, topics)).await;
    assert_eq!(r.error_code, code(ResponseError::MemberIdRequired));
    let member = r.member_id.to_string();
    let r = c.send(5, &join_req(group, &member, 10_000, topics)).await;
    assert_eq!((r.error_code, r.leader.as_str()), (0, member.as_str()));
    let generation = r.generation_id;
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(&member))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"plan")),
        ]);
    let r = c.send(3, &sync).await;
    assert_eq!((r.error_code, &r.assignment[..]), (0, &b"plan"[..]));
    (member, generation)
}

fn heartbeat(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
}

fn commit(
    group: &str,
    member: &str,
    generation: i32,
    topic_name: &str,
    partition: i32,
    offset: i64,
    meta: &str,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic(topic_name))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(s(meta))),
                ]),
        ])
}

fn commit_code(r: &OffsetCommitResponse) -> i16 {
    r.topics[0].partitions[0].error_code
}

fn fetch_offsets_v1(group: &str, topic_name: &str, partitions: Vec<i32>) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic(topic_name))
                .with_partition_indexes(partitions),
        ]))
}

async fn describe_state(c: &mut Client, group: &str) -> (i16, String, usize) {
    let r = c
        .send(
            6,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
        )
        .await;
    let g = &r.groups[0];
    (g.error_code, g.group_state.to_string(), g.members.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator_versions() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    for v in 0..=3 {
        let r = c
            .send(v, &FindCoordinatorRequest::default().with_key(s("g")))
            .await;
        assert_eq!(
            (r.error_code, r.node_id.0, r.port),
            (0, 1, b.addr.port() as i32),
            "v{v}"
        );
    }
    for v in 4..=6 {
        let r = c
            .send(
                v,
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![s("a"), s("b")]),
            )
            .await;
        assert_eq!(r.coordinators.len(), 2);
        assert!(
            r.coordinators
                .iter()
                .all(|x| x.error_code == 0 && x.node_id.0 == 1),
            "v{v}"
        );
    }
    let r = c
        .send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(s("g"))
                .with_key_type(7),
        )
        .await;
    assert_eq!(r.error_code, code(ResponseError::InvalidRequest));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_sync_heartbeat_leave_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.group_min_session_timeout_ms = 500).await;
    let mut c = b.client().await;
    c.create_topic("t", 2, &[]).await;
    assert_eq!(
        c.send(5, &join_req("", "", 10_000, &["t"]))
            .await
            .error_code,
        code(ResponseError::InvalidGroupId)
    );
    assert_eq!(
        c.send(5, &join_req("g", "", 100, &["t"])).await.error_code,
        code(ResponseError::InvalidSessionTimeout)
    );
    assert_eq!(
        c.send(5, &join_req("g", "", 9_999_999, &["t"]))
            .await
            .error_code,
        code(ResponseError::InvalidSessionTimeout)
    );
    assert_eq!(
        c.send(5, &join_req("nogroup", "ghost", 10_000, &["t"]))
            .await
            .error_code,
        code(ResponseError::UnknownMemberId)
    );
    // v0-3: no MEMBER_ID_REQUIRED round trip.
    let r = c.send(0, &join_req("old", "", 10_000, &["t"])).await;
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    assert!(!r.member_id.is_empty());

    let (member, generation) = join_and_sync(&mut c, "g", &["t"]).await;
    for v in 0..=4 {
        assert_eq!(
            c.send(v, &heartbeat("g", &member, generation))
                .await
                .error_code,
            0,
            "heartbeat v{v}"
        );
    }
    assert_eq!(
        c.send(4, &heartbeat("g", &member, generation + 5))
            .await
            .error_code,
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        c.send(4, &heartbeat("g", "ghost", generation))
            .await
            .error_code,
        code(ResponseError::UnknownMemberId)
    );
    // Another protocol type cannot join.
    let mut other = join_req("g", "", 10_000, &["t"]);
    other.protocol_type = s("connect");
    assert_eq!(
        c.send(5, &other).await.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    // Sync with a stale generation.
    let stale = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(generation - 1)
        .with_member_id(s(&member));
    assert_eq!(
        c.send(5, &stale).await.error_code,
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(describe_state(&mut c, "g").await, (0, "Stable".into(), 1));
    // A second member joins: the first learns of it by heartbeat.
    let mut c2 = b.client().await;
    let r = c2.send(5, &join_req("g", "", 10_000, &["t"])).await;
    let second = r.member_id.to_string();
    let mut c2_join = tokio::spawn(async move {
        let r = c2.send(7, &join_req("g", &second, 10_000, &["t"])).await;
        (r.error_code, r.generation_id)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(10), &mut c2_join)
            .await
            .is_err(),
        "waits for the first member"
    );
    assert_eq!(
        c.send(4, &heartbeat("g", &member, generation))
            .await
            .error_code,
        code(ResponseError::RebalanceInProgress)
    );
    let r = c.send(7, &join_req("g", &member, 10_000, &["t"])).await;
    assert_eq!((r.error_code, r.generation_id), (0, generation + 1));
    assert_eq!(r.protocol_type.as_ref().unwrap().as_str(), "consumer");
    assert_eq!(c2_join.await.unwrap(), (0, generation + 1));
    // LeaveGroup v3+ by member identity; v0 with a plain member id.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s(&member)),
            leave_group_request::MemberIdentity::default().with_member_id(s("ghost")),
        ]);
    let r = c.send(4, &leave).await;
    let codes: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, code(ResponseError::UnknownMemberId)]);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_timer_evicts_silent_members() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.group_min_session_timeout_ms = 100).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    let r = c.send(5, &join_req("g", "", 300, &["t"])).await;
    let m = r.member_id.to_string();
    let r = c.send(5, &join_req("g", &m, 300, &["t"])).await;
    assert_eq!(r.error_code, 0);
    // No heartbeats: the session (300 ms) expires and the group empties.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(describe_state(&mut c, "g").await, (0, "Empty".into(), 0));
    assert_eq!(
        c.send(4, &heartbeat("g", &m, 1)).await.error_code,
        code(ResponseError::UnknownMemberId)
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit_fetch_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 3, &[]).await;
    // Standalone commit to an absent group, metadata round-tripped exactly.
    let meta = "m\u{e9}ta \u{1F600} data";
    for v in [2i16, 5, 8, 9] {
        assert_eq!(
            commit_code(&c.send(v, &commit("solo", "", -1, "t", 0, 42, meta)).await),
            0,
            "commit v{v}"
        );
    }
    let r = c.send(1, &fetch_offsets_v1("solo", "t", vec![0, 1])).await;
    let p = &r.topics[0].partitions;
    assert_eq!(
        (
            p[0].committed_offset,
            p[0].metadata.as_ref().unwrap().as_str()
        ),
        (42, meta)
    );
    assert_eq!(
        (p[1].committed_offset, p[1].error_code),
        (-1, 0),
        "unknown partition: -1, no error"
    );
    // v2+: null topics = every committed partition.
    assert_eq!(
        commit_code(&c.send(9, &commit("solo", "", -1, "t", 2, 7, "")).await),
        0
    );
    let r = c
        .send(
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s("solo")))
                .with_topics(None),
        )
        .await;
    let mut all: Vec<(i32, i64)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset))
        })
        .collect();
    all.sort();
    assert_eq!(all, vec![(0, 42), (2, 7)]);
    // v8+: several groups at once.
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("solo")))
            .with_topics(None),
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("nobody")))
            .with_topics(None),
    ]);
    let r = c.send(8, &req).await;
    assert_eq!(r.groups.len(), 2);
    assert_eq!(r.groups[0].topics[0].partitions.len(), 2);
    assert!(r.groups[1].topics.is_empty());
    // Errors: oversized metadata, unknown topic, generation for an unknown group.
    let big = "x".repeat(5000);
    assert_eq!(
        commit_code(&c.send(8, &commit("solo", "", -1, "t", 0, 1, &big)).await),
        code(ResponseError::OffsetMetadataTooLarge)
    );
    assert_eq!(
        commit_code(&c.send(8, &commit("solo", "", -1, "nope", 0, 1, "")).await),
        code(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(
        commit_code(&c.send(8, &commit("fresh", "m", 3, "t", 0, 1, "")).await),
        code(ResponseError::IllegalGeneration)
    );
    // A group with members refuses standalone commits and strangers.
    let (member, generation) = join_and_sync(&mut c, "live", &["t"]).await;
    assert_eq!(
        commit_code(&c.send(8, &commit("live", "", -1, "t", 0, 1, "")).await),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        commit_code(
            &c.send(8, &commit("live", "ghost", generation, "t", 0, 1, ""))
                .await
        ),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        commit_code(
            &c.send(8, &commit("live", &member, generation + 1, "t", 0, 1, ""))
                .await
        ),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        commit_code(
            &c.send(8, &commit("live", &member, generation, "t", 0, 5, ""))
                .await
        ),
        0
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_groups_survive_restart_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    let (member, generation) = join_and_sync(&mut c, "g", &["t"]).await;
    assert_eq!(
        commit_code(
            &c.send(8, &commit("g", &member, generation, "t", 0, 11, "first"))
                .await
        ),
        0
    );
    b.stop().await;
    // Graceful restart: the member and its generation are still known.
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        c.send(4, &heartbeat("g", &member, generation))
            .await
            .error_code,
        0
    );
    assert_eq!(
        commit_code(
            &c.send(8, &commit("g", &member, generation, "t", 0, 12, "second"))
                .await
        ),
        0
    );
    b.crash().await;
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let r = c.send(5, &fetch_offsets_v1("g", "t", vec![0])).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        (p.committed_offset, p.metadata.as_ref().unwrap().as_str()),
        (12, "second")
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_describe_delete_groups_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    c.create_topic("u", 1, &[]).await;
    let (member, generation) = join_and_sync(&mut c, "busy", &["t"]).await;
    assert_eq!(
        commit_code(
            &c.send(8, &commit("busy", &member, generation, "t", 0, 1, ""))
                .await
        ),
        0
    );
    assert_eq!(
        commit_code(
            &c.send(8, &commit("busy", &member, generation, "u", 0, 1, ""))
                .await
        ),
        0
    );
    assert_eq!(
        commit_code(&c.send(8, &commit("idle", "", -1, "t", 0, 3, "")).await),
        0
    );

    let r = c.send(0, &ListGroupsRequest::default()).await;
    let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
    ids.sort();
    assert_eq!(ids, vec!["busy", "idle"]);
    let r = c
        .send(
            4,
            &ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
        )
        .await;
    assert_eq!(r.groups.len(), 1);
    assert_eq!(
        (
            r.groups[0].group_id.0.as_str(),
            r.groups[0].group_state.as_str()
        ),
        ("busy", "Stable")
    );
    let r = c
        .send(
            5,
            &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        )
        .await;
    assert!(r.groups.is_empty(), "all groups are classic");

    for v in [0i16, 3, 5] {
        let r = c
            .send(
                v,
                &DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(s("busy")), GroupId(s("ghost"))]),
            )
            .await;
        let g = &r.groups[0];
        assert_eq!(
            (
                g.group_state.as_str(),
                g.protocol_type.as_str(),
                g.protocol_data.as_str()
            ),
            ("Stable", "consumer", "range"),
            "v{v}"
        );
        assert_eq!(&g.members[0].member_assignment[..], b"plan");
        assert_eq!(r.groups[1].group_state.as_str(), "Dead");
    }
    assert_eq!(
        describe_state(&mut c, "ghost").await.0,
        code(ResponseError::GroupIdNotFound)
    );

    // OffsetDelete: refused for a topic the members subscribe to.
    let od = |g: &str, t: &str| {
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(g)))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(topic(t))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ])
    };
    let r = c.send(0, &od("busy", "t")).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        code(ResponseError::GroupSubscribedToTopic)
    );
    let r = c.send(0, &od("busy", "u")).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        c.send(0, &od("ghost", "u")).await.error_code,
        code(ResponseError::GroupIdNotFound)
    );

    let del = |ids: &[&str]| {
        DeleteGroupsRequest::default()
            .with_groups_names(ids.iter().map(|i| GroupId(s(i))).collect())
    };
    let r = c.send(2, &del(&["busy", "idle", "ghost"])).await;
    let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
    assert_eq!(
        codes,
        vec![
            code(ResponseError::NonEmptyGroup),
            0,
            code(ResponseError::GroupIdNotFound)
        ]
    );
    let r = c.send(1, &fetch_offsets_v1("idle", "t", vec![0])).await;
    assert_eq!(
        r.topics[0].partitions[0].committed_offset, -1,
        "offsets deleted with the group"
    );
    b.stop().await;
}
