//! Share groups over raw protocol: the error paths clients rarely take
//! (session epochs, acks of records a member does not hold, group-type
//! mismatches), the admin APIs, and state across a restart.

mod common;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// (topic id, partition, acks as (first, last, type)).
type FetchPart = (Uuid, i32, Vec<(i64, i64, i8)>);

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn heartbeat(
    c: &mut Client,
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
) -> ShareGroupHeartbeatResponse {
    let req = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names(topics.map(|ts| ts.iter().map(|t| topic(t)).collect()));
    c.send(1, &req).await
}

fn fetch(group: &str, member: &str, epoch: i32, parts: &[FetchPart]) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_batch_size(100)
        .with_topics(
            parts
                .iter()
                .map(|(id, p, acks)| {
                    share_fetch_request::FetchTopic::default()
                        .with_topic_id(*id)
                        .with_partitions(vec![share_fetch_request::FetchPartition::default()
                            .with_partition_index(*p)
                            .with_acknowledgement_batches(
                                acks.iter()
                                    .map(|(f, l, t)| {
                                        share_fetch_request::AcknowledgementBatch::default()
                                            .with_first_offset(*f)
                                            .with_last_offset(*l)
                                            .with_acknowledge_types(vec![*t])
                                    })
                                    .collect(),
                            )])
                })
                .collect(),
        )
}

fn ack(
    group: &str,
    member: &str,
    epoch: i32,
    (id, p): (Uuid, i32),
    (first, last, t): (i64, i64, i8),
) -> ShareAcknowledgeRequest {
    ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![share_acknowledge_request::AcknowledgeTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![
                share_acknowledge_request::AcknowledgePartition::default()
                    .with_partition_index(p)
                    .with_acknowledgement_batches(vec![
                        share_acknowledge_request::AcknowledgementBatch::default()
                            .with_first_offset(first)
                            .with_last_offset(last)
                            .with_acknowledge_types(vec![t]),
                    ]),
            ])])
}

fn acquired(r: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .flat_map(|p| {
            p.acquired_records
                .iter()
                .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        })
        .collect()
}

fn ack_code(r: &ShareAcknowledgeResponse) -> i16 {
    r.responses[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_acks_and_group_types() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("q", 1, &[]).await, 0);
    for i in 0..4 {
        c.produce(9, "q", 0, batch(&[format!("m{i}").as_bytes()], 0))
            .await;
    }
    let id = c
        .send(12, &MetadataRequest::default().with_topics(None))
        .await
        .topics[0]
        .topic_id;
    // Start at the beginning (the default is the end, as in Kafka).
    let cfg = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s("sg"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("share.auto.offset.reset"))
                    .with_config_operation(0)
                    .with_value(Some(s("earliest"))),
            ]),
    ]);
    assert_eq!(c.send(1, &cfg).await.responses[0].error_code, 0);

    // Join: the member gets the partition; a classic group id is refused.
    let hb = heartbeat(&mut c, "sg", "member-a", 0, Some(&["q"])).await;
    assert_eq!(hb.error_code, 0);
    let assignment = hb.assignment.expect("assignment on join");
    assert_eq!(assignment.topic_partitions[0].topic_id, id);
    assert_eq!(
        heartbeat(&mut c, "sg", "member-a", hb.member_epoch + 5, None)
            .await
            .error_code,
        code(ResponseError::FencedMemberEpoch)
    );
    assert_eq!(
        heartbeat(&mut c, "sg", "", 0, Some(&["q"]))
            .await
            .error_code,
        code(ResponseError::InvalidRequest)
    );

    // Session epochs.
    let r = c
        .send(1, &fetch("sg", "member-a", 0, &[(id, 0, vec![(0, 0, 1)])]))
        .await;
    assert_eq!(
        r.error_code,
        code(ResponseError::InvalidRequest),
        "acks at epoch 0"
    );
    let r = c
        .send(1, &fetch("sg", "member-a", 3, &[(id, 0, vec![])]))
        .await;
    assert_eq!(r.error_code, code(ResponseError::ShareSessionNotFound));
    let r = c
        .send(1, &fetch("sg", "member-a", 0, &[(id, 0, vec![])]))
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(acquired(&r), vec![(0, 3, 1)]);
    // `/metrics` shows the window: four records acquired, none available.
    let metrics = weir::metrics::render(&b.broker).await;
    let series = |state: &str| {
        format!("weir_share_partition_records{{group=\"sg\",topic=\"q\",partition=\"0\",state=\"{state}\"}} ")
    };
    assert!(
        metrics.contains(&format!("{}4\n", series("acquired"))),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("{}0\n", series("available"))),
        "{metrics}"
    );
    assert!(r.responses[0].partitions[0]
        .records
        .as_ref()
        .is_some_and(|b| !b.is_empty()));
    let r = c.send(1, &fetch("sg", "member-a", 5, &[])).await;
    assert_eq!(r.error_code, code(ResponseError::InvalidShareSessionEpoch));
    let a0 = c
        .send(1, &ack("sg", "member-a", 0, (id, 0), (0, 0, 1)))
        .await;
    assert_eq!(a0.error_code, code(ResponseError::InvalidShareSessionEpoch));

    // Another member cannot ack member-a's records; past the window is invalid.
    let mut c2 = b.client().await;
    heartbeat(&mut c2, "sg", "member-b", 0, Some(&["q"])).await;
    let r = c2
        .send(1, &fetch("sg", "member-b", 0, &[(id, 0, vec![])]))
        .await;
    assert!(acquired(&r).is_empty(), "all acquired by member-a");
    let other = c2
        .send(1, &ack("sg", "member-b", 1, (id, 0), (0, 1, 1)))
        .await;
    assert_eq!(ack_code(&other), code(ResponseError::InvalidRecordState));
    let past = c
        .send(1, &ack("sg", "member-a", 1, (id, 0), (3, 9, 1)))
        .await;
    assert_eq!(ack_code(&past), code(ResponseError::InvalidRequest));
    // Accept 0-1, release 2-3: the released records go to member-b.
    let ok = c
        .send(1, &ack("sg", "member-a", 2, (id, 0), (0, 1, 1)))
        .await;
    assert_eq!((ok.error_code, ack_code(&ok)), (0, 0));
    let rel = c
        .send(1, &ack("sg", "member-a", 3, (id, 0), (2, 3, 2)))
        .await;
    assert_eq!(ack_code(&rel), 0);
    let r = c2.send(1, &fetch("sg", "member-b", 2, &[])).await;
    assert_eq!(acquired(&r), vec![(2, 3, 2)]);
    // A twice-acknowledged record is no longer the member's.
    let again = c
        .send(1, &ack("sg", "member-a", 4, (id, 0), (2, 2, 1)))
        .await;
    assert_eq!(ack_code(&again), code(ResponseError::InvalidRecordState));

    // One id, one type: a classic JoinGroup for the share group is refused,
    // a share heartbeat for a classic group too.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("sg")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s("x"))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))]);
    assert_eq!(
        c.send(5, &join).await.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("classic")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("q"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    c.send(8, &commit).await;
    assert_eq!(
        heartbeat(&mut c, "classic", "m", 0, Some(&["q"]))
            .await
            .error_code,
        code(ResponseError::GroupIdNotFound)
    );

    // Admin: ListGroups by type, ShareGroupDescribe, offsets.
    let list = c
        .send(
            5,
            &ListGroupsRequest::default().with_types_filter(vec![s("share")]),
        )
        .await;
    assert_eq!(list.groups.len(), 1);
    assert_eq!(
        (
            list.groups[0].group_id.0.as_str(),
            list.groups[0].group_type.as_str()
        ),
        ("sg", "share")
    );
    let d = c
        .send(
            1,
            &ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("sg"))]),
        )
        .await;
    assert_eq!(d.groups[0].members.len(), 2);
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    let off = c
        .send(
            0,
            &DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(GroupId(s("sg")))
                    .with_topics(None),
            ]),
        )
        .await;
    assert_eq!(
        off.groups[0].topics[0].partitions[0].start_offset, 2,
        "0-1 accepted"
    );
    let alter = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s("sg")))
        .with_topics(vec![alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
            .with_topic_name(topic("q"))
            .with_partitions(vec![alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default()
                .with_partition_index(0)
                .with_start_offset(0)])]);
    assert_eq!(
        c.send(0, &alter).await.error_code,
        code(ResponseError::NonEmptyGroup)
    );

    // Membership and state survive a restart (a forgotten group is fatal
    // to librdkafka consumers).
    drop(c);
    drop(c2);
    b.stop().await;
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let hb2 = heartbeat(&mut c, "sg", "member-a", hb.member_epoch, None).await;
    assert_eq!(hb2.error_code, 0, "the member is still known");
    let r = c
        .send(1, &fetch("sg", "member-a", 0, &[(id, 0, vec![])]))
        .await;
    assert_eq!(
        acquired(&r),
        vec![(2, 3, 2)],
        "acquired before the restart: available again, count kept"
    );
    b.stop().await;
}
