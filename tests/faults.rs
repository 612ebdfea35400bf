//! Fault injection (`/v1/faults`) on the raw protocol: what an injected
//! error, delay, disconnect and throttle do to a request.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Request;
use weir::faults::RuleSpec;

fn rule(json: &str) -> RuleSpec {
    serde_json::from_str(json).unwrap()
}

/// An injected error is the answer: the produce is not executed, and the
/// retry after the count is used up appends once.
#[tokio::test]
async fn injected_errors_answer_without_executing() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("f", 1, &[]).await, 0);
    assert_eq!(c.create_topic("other", 1, &[]).await, 0);
    b.broker
        .faults
        .add(rule(
            r#"{"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 2, "topic": "f"}"#,
        ))
        .unwrap();
    // Another topic is not affected.
    assert_eq!(c.produce(9, "other", 0, batch(&[b"x"], 0)).await, (0, 0));
    for _ in 0..2 {
        let (code, offset) = c.produce(9, "f", 0, batch(&[b"v"], 0)).await;
        assert_eq!((code, offset), (6, -1));
    }
    assert_eq!(c.produce(9, "f", 0, batch(&[b"v"], 0)).await, (0, 0));
    let fetched = c.fetch(12, "f", 0, 0, 1 << 20).await;
    assert_eq!(decode_records(&fetched.records).len(), 1, "appended once");
    let view = b.broker.faults.list();
    assert!(view.is_empty(), "used up: {view:?}");

    // Fetch: the partition carries the error, no records.
    b.broker
        .faults
        .add(rule(r#"{"api": "Fetch", "error": 6, "count": 1}"#))
        .unwrap();
    let p = c.fetch(12, "f", 0, 0, 1 << 20).await;
    assert_eq!(p.error_code, 6);
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
    assert_eq!(c.fetch(12, "f", 0, 0, 1 << 20).await.error_code, 0);
    b.stop().await;
}

/// Every API an error can be injected into answers a well-formed response
/// at its lowest and highest served versions, carrying the code.
#[tokio::test]
async fn error_responses_decode_at_every_supported_api() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    macro_rules! check {
        ($($req:ty => $api:literal),* $(,)?) => {$(
            let support = weir::protocol::SUPPORTED_APIS
                .iter()
                .find(|a| a.key as i16 == <$req as Request>::KEY)
                .unwrap();
            for version in [support.served.min, support.served.max] {
                b.broker
                    .faults
                    .add(rule(&format!(r#"{{"api": "{}", "error": "COORDINATOR_NOT_AVAILABLE", "count": 1}}"#, $api)))
                    .unwrap();
                let mut c = b.client().await;
                let resp = c.try_send(version, &<$req>::default()).await;
                assert!(resp.is_some(), "{} v{version} answered", $api);
                assert!(b.broker.faults.list().is_empty(), "{} v{version} fired", $api);
            }
        )*};
    }
    check!(
        ProduceRequest => "Produce",
        FetchRequest => "Fetch",
        ListOffsetsRequest => "ListOffsets",
        MetadataRequest => "Metadata",
        OffsetCommitRequest => "OffsetCommit",
        OffsetFetchRequest => "OffsetFetch",
        FindCoordinatorRequest => "FindCoordinator",
        JoinGroupRequest => "JoinGroup",
        HeartbeatRequest => "Heartbeat",
        LeaveGroupRequest => "LeaveGroup",
        SyncGroupRequest => "SyncGroup",
        InitProducerIdRequest => "InitProducerId",
        AddPartitionsToTxnRequest => "AddPartitionsToTxn",
        AddOffsetsToTxnRequest => "AddOffsetsToTxn",
        EndTxnRequest => "EndTxn",
        TxnOffsetCommitRequest => "TxnOffsetCommit",
        CreateTopicsRequest => "CreateTopics",
        DeleteTopicsRequest => "DeleteTopics",
    );
    // The top-level codes where the response has one.
    b.broker
        .faults
        .add(rule(
            r#"{"api": "Heartbeat", "error": "REBALANCE_IN_PROGRESS", "count": 1}"#,
        ))
        .unwrap();
    let mut c = b.client().await;
    let hb = c.send(4, &HeartbeatRequest::default()).await;
    assert_eq!(hb.error_code, 27);
    b.broker
        .faults
        .add(rule(
            r#"{"api": "FindCoordinator", "error": 15, "count": 1}"#,
        ))
        .unwrap();
    let fc = c
        .send(
            4,
            &FindCoordinatorRequest::default().with_coordinator_keys(vec!["g".into()]),
        )
        .await;
    assert_eq!(fc.coordinators[0].error_code, 15);
    b.stop().await;
}

/// Delay, throttle and disconnect.
#[tokio::test]
async fn delay_throttle_and_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    b.broker
        .faults
        .add(rule(r#"{"api": "Metadata", "delay_ms": 300, "count": 1}"#))
        .unwrap();
    let t0 = Instant::now();
    c.send(4, &MetadataRequest::default()).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));

    b.broker
        .faults
        .add(rule(
            r#"{"api": "Metadata", "throttle_ms": 250, "count": 1}"#,
        ))
        .unwrap();
    assert_eq!(
        c.send(4, &MetadataRequest::default())
            .await
            .throttle_time_ms,
        250
    );
    assert_eq!(
        c.send(4, &MetadataRequest::default())
            .await
            .throttle_time_ms,
        0
    );

    b.broker
        .faults
        .add(rule(
            r#"{"api": "ApiVersions", "disconnect": true, "count": 1}"#,
        ))
        .unwrap();
    assert!(c
        .try_send(3, &ApiVersionsRequest::default())
        .await
        .is_none());
    let mut again = b.client().await;
    let v = again.send(3, &ApiVersionsRequest::default()).await;
    assert_eq!(v.error_code, 0);
    // Produce responses carry the throttle too (the deferred path aside).
    b.broker
        .faults
        .add(rule(
            r#"{"api": "Produce", "throttle_ms": 100, "count": 1}"#,
        ))
        .unwrap();
    assert_eq!(again.create_topic("th", 1, &[]).await, 0);
    let resp = again
        .send(9, &produce_request("th", 0, batch(&[b"x"], 0), -1))
        .await;
    assert_eq!(resp.throttle_time_ms, 100);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    b.stop().await;
}
