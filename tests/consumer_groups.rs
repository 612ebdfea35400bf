//! Consumer-protocol groups (KIP-848) over raw protocol: the request
//! validation and error codes clients rarely trigger, the offset APIs'
//! member-epoch checks, group-type clashes with classic groups, the admin
//! views, and membership across a restart.

mod common;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| topic(t)).collect()))
        .with_topic_partitions(Some(vec![]))
}

fn beat(
    group: &str,
    member: &str,
    epoch: i32,
    owned: Option<&[(Uuid, &[i32])]>,
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(owned.map(|o| {
            o.iter()
                .map(|(t, ps)| {
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(*t)
                        .with_partitions(ps.to_vec())
                })
                .collect()
        }))
}

/// (topic id, partitions) of a heartbeat answer's assignment.
fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Option<Vec<(Uuid, Vec<i32>)>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|tp| (tp.topic_id, tp.partitions.clone()))
            .collect()
    })
}

async fn topic_id(c: &mut Client, name: &str) -> Uuid {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic(name))),
    ]));
    c.send(12, &req).await.topics[0].topic_id
}

fn commit(group: &str, member: &str, epoch: i32, t: &str) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(epoch)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic(t))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                ]),
        ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_validation_errors_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("t", 2, &[]).await, 0);
    let invalid = code(ResponseError::InvalidRequest);
    let cases: Vec<(ConsumerGroupHeartbeatRequest, i16)> = vec![
        // v1: a member id is required even to join.
        (join("g", "", &["t"]), invalid),
        (join("", "m", &["t"]), invalid),
        (
            join("g", "m", &["t"]).with_topic_partitions(Some(vec![
                consumer_group_heartbeat_request::TopicPartitions::default()
                    .with_topic_id(Uuid::from_u128(1))
                    .with_partitions(vec![0]),
            ])),
            invalid,
        ),
        (join("g", "m", &[]), invalid),
        (
            join("g", "m", &["t"]).with_instance_id(Some(s(" "))),
            invalid,
        ),
        (beat("g", "m", -3, None), invalid),
        (beat("g", "m", -2, None), invalid),
        (
            join("g", "m", &["t"]).with_server_assignor(Some(s("sticky"))),
            code(ResponseError::UnsupportedAssignor),
        ),
        (
            join("g", "m", &[]).with_subscribed_topic_regex(Some(s("t(("))),
            code(ResponseError::InvalidRegularExpression),
        ),
        // Not joined yet: no group, then no member.
        (
            beat("g", "m", 3, None),
            code(ResponseError::GroupIdNotFound),
        ),
    ];
    for (req, want) in cases {
        let r: ConsumerGroupHeartbeatResponse = c.send(1, &req).await;
        assert_eq!(r.error_code, want, "{req:?}");
        assert!(r.error_message.is_some());
    }
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &join("g", "m", &["t"])).await;
    assert_eq!((r.error_code, r.member_epoch), (0, 1));
    assert!(r.heartbeat_interval_ms > 0);
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &beat("g", "other", 1, None)).await;
    assert_eq!(r.error_code, code(ResponseError::UnknownMemberId));
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &beat("g", "m", 2, None)).await;
    assert_eq!(r.error_code, code(ResponseError::FencedMemberEpoch));
    // librdkafka <= 2.12 re-subscribes with a null TopicPartitions and no
    // rebalance timeout at epoch 0: accepted as a join owning nothing.
    let lenient = join("g", "m2", &["t"])
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(None);
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &lenient).await;
    assert_eq!(r.error_code, 0);
    // v0: the broker names a member that joins without an id.
    let r: ConsumerGroupHeartbeatResponse = c.send(0, &join("g", "", &["t"])).await;
    assert_eq!(r.error_code, 0);
    assert!(!r.member_id.unwrap().is_empty());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_check_member_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("t", 1, &[]).await, 0);
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &join("g", "m", &["t"])).await;
    let epoch = r.member_epoch;
    let commit_code = |r: OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    assert_eq!(
        commit_code(c.send(9, &commit("g", "m", epoch, "t")).await),
        0
    );
    assert_eq!(
        commit_code(c.send(9, &commit("g", "m", epoch - 1, "t")).await),
        code(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        commit_code(c.send(9, &commit("g", "x", epoch, "t")).await),
        code(ResponseError::UnknownMemberId)
    );
    // Member epochs came with v9.
    assert_eq!(
        commit_code(c.send(8, &commit("g", "m", epoch, "t")).await),
        code(ResponseError::UnsupportedVersion)
    );
    // Standalone commits need an empty group; unknown groups at v9.
    assert_eq!(
        commit_code(c.send(9, &commit("g", "", -1, "t")).await),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        commit_code(c.send(9, &commit("nobody", "m", 3, "t")).await),
        code(ResponseError::GroupIdNotFound)
    );
    let fetch = |member: Option<&str>, epoch: i32| {
        OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(member.map(s))
                .with_member_epoch(epoch)
                .with_topics(None),
        ])
    };
    let r: OffsetFetchResponse = c.send(9, &fetch(None, -1)).await;
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 5);
    let r: OffsetFetchResponse = c.send(9, &fetch(Some("m"), epoch)).await;
    assert_eq!(r.groups[0].error_code, 0);
    let r: OffsetFetchResponse = c.send(9, &fetch(Some("m"), epoch + 1)).await;
    assert_eq!(
        r.groups[0].error_code,
        code(ResponseError::StaleMemberEpoch)
    );
    let r: OffsetFetchResponse = c.send(9, &fetch(Some("x"), epoch)).await;
    assert_eq!(r.groups[0].error_code, code(ResponseError::UnknownMemberId));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_types_do_not_mix_and_admin_views_tell_them_apart() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("t", 3, &[]).await, 0);
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &join("cg", "m", &["t"])).await;
    assert_eq!(r.error_code, 0);
    // A classic member joining the live consumer group.
    let classic_join = |g: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(g)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from_static(b"\0\0\0\0\0\0"))])
    };
    let r: JoinGroupResponse = c.send(3, &classic_join("cg")).await;
    assert_eq!(r.error_code, code(ResponseError::InconsistentGroupProtocol));
    // A consumer-protocol member joining a live classic group.
    let mut c2 = b.client().await;
    let r: JoinGroupResponse = c2.send(3, &classic_join("classic")).await;
    assert_eq!(r.error_code, 0);
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &join("classic", "m", &["t"])).await;
    assert_eq!(r.error_code, code(ResponseError::GroupIdNotFound));
    assert!(r.error_message.unwrap().contains("not a consumer group"));

    // ListGroups: type and state filters, protocol type "consumer".
    let list = |types: &[&str]| {
        ListGroupsRequest::default().with_types_filter(types.iter().map(|t| s(t)).collect())
    };
    let r: ListGroupsResponse = c.send(5, &list(&["Consumer"])).await;
    let ids: Vec<_> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
    assert_eq!(ids, vec!["cg"]);
    assert_eq!(r.groups[0].protocol_type.as_str(), "consumer");
    assert_eq!(r.groups[0].group_type.as_str(), "consumer");
    let r: ListGroupsResponse = c.send(5, &list(&["classic"])).await;
    let ids: Vec<_> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
    assert_eq!(ids, vec!["classic"]);

    // DescribeGroups does not describe consumer groups; ConsumerGroupDescribe does.
    let r: DescribeGroupsResponse = c
        .send(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("cg"))]),
        )
        .await;
    assert_eq!(r.groups[0].group_state.as_str(), "Dead");
    assert!(r.groups[0].members.is_empty());
    let describe = |ids: &[&str]| {
        ConsumerGroupDescribeRequest::default()
            .with_group_ids(ids.iter().map(|g| GroupId(s(g))).collect())
    };
    let r: ConsumerGroupDescribeResponse = c.send(1, &describe(&["cg", "classic", "none"])).await;
    let g = &r.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
    assert_eq!((g.group_epoch, g.assignment_epoch), (1, 1));
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 1);
    let m = &g.members[0];
    assert_eq!(
        (m.member_id.as_str(), m.member_epoch, m.member_type),
        ("m", 1, 1)
    );
    assert_eq!(m.assignment.topic_partitions[0].topic_name.0.as_str(), "t");
    assert_eq!(m.assignment.topic_partitions[0].partitions, vec![0, 1, 2]);
    assert_eq!(m.target_assignment, m.assignment);
    for g in &r.groups[1..] {
        assert_eq!(g.error_code, code(ResponseError::GroupIdNotFound));
    }

    // A live group cannot be deleted; once its member left, it can, and
    // an empty consumer group converts to classic with its offsets.
    let del = |g: &str| DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(g))]);
    let r: DeleteGroupsResponse = c.send(2, &del("cg")).await;
    assert_eq!(r.results[0].error_code, code(ResponseError::NonEmptyGroup));
    let r: OffsetCommitResponse = c.send(9, &commit("cg", "m", 1, "t")).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &beat("cg", "m", -1, None)).await;
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    let r: JoinGroupResponse = c.send(3, &classic_join("cg")).await;
    assert_eq!(r.error_code, 0);
    let r: OffsetFetchResponse = c
        .send(
            5,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s("cg")))
                .with_topics(None),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].committed_offset, 5);
    let r: ConsumerGroupDescribeResponse = c.send(1, &describe(&["cg"])).await;
    assert_eq!(r.groups[0].error_code, code(ResponseError::GroupIdNotFound));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_assignments_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("t", 4, &[]).await, 0);
    let t = topic_id(&mut c, "t").await;
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &join("g", "a", &["t"])).await;
    assert_eq!(assigned(&r), Some(vec![(t, vec![0, 1, 2, 3])]));
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &join("g", "b", &["t"])).await;
    assert_eq!((r.member_epoch, assigned(&r)), (2, Some(vec![])));
    // a must revoke 2 and 3 first.
    let r: ConsumerGroupHeartbeatResponse = c
        .send(1, &beat("g", "a", 1, Some(&[(t, &[0, 1, 2, 3])])))
        .await;
    assert_eq!(
        (r.member_epoch, assigned(&r)),
        (1, Some(vec![(t, vec![0, 1])]))
    );
    b.crash().await;

    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    // Both members are still known, with their epochs; b still waits for
    // a's revocation, which completes after the restart.
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &beat("g", "b", 2, Some(&[]))).await;
    assert_eq!((r.error_code, r.member_epoch, assigned(&r)), (0, 2, None));
    let r: ConsumerGroupHeartbeatResponse =
        c.send(1, &beat("g", "a", 1, Some(&[(t, &[0, 1])]))).await;
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    let r: ConsumerGroupHeartbeatResponse = c.send(1, &beat("g", "b", 2, Some(&[]))).await;
    assert_eq!(assigned(&r), Some(vec![(t, vec![2, 3])]));
    b.stop().await;
}
