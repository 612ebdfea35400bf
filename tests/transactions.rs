//! Transactions over raw protocol: the coordinator APIs at old and new
//! versions, their error codes (including PRODUCER_FENCED vs
//! INVALID_PRODUCER_EPOCH by version), produce outside a registered
//! transaction, read_committed Fetch and ListOffsets, OffsetFetch
//! `require_stable`, and the admin views.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir::log::batch::{encode_transactional, PlainRecord};

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn tid(s: &'static str) -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(s))
}

fn txn_batch(values: &[&[u8]], pid: i64, epoch: i16, seq: i32) -> Bytes {
    let records: Vec<PlainRecord> = values
        .iter()
        .map(|v| PlainRecord {
            key: None,
            value: Some(Bytes::copy_from_slice(v)),
            timestamp: 1,
        })
        .collect();
    encode_transactional(&records, (pid, epoch, seq))
}

async fn init(c: &mut Client, version: i16, id: &'static str) -> InitProducerIdResponse {
    c.send(
        version,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(tid(id)))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
    .await
}

/// AddPartitionsToTxn v0-3; the per-partition codes in request order.
async fn add_partitions(
    c: &mut Client,
    version: i16,
    id: &'static str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, i32)],
) -> Vec<i16> {
    let mut topics: Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in parts {
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(topic(t))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    let resp = c
        .send(
            version,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(tid(id))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(topics),
        )
        .await;
    parts
        .iter()
        .map(|(t, p)| {
            resp.results_by_topic_v3_and_below
                .iter()
                .find(|r| r.name.0.as_str() == *t)
                .and_then(|r| {
                    r.results_by_partition
                        .iter()
                        .find(|r| r.partition_index == *p)
                })
                .map(|r| r.partition_error_code)
                .expect("every partition answered")
        })
        .collect()
}

async fn end_txn(
    c: &mut Client,
    version: i16,
    id: &'static str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> i16 {
    c.send(
        version,
        &EndTxnRequest::default()
            .with_transactional_id(tid(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    )
    .await
    .error_code
}

async fn fetch_committed(c: &mut Client, offset: i64) -> fetch_response::PartitionData {
    let req = fetch_request("t", 0, offset, 1 << 20, 0, 0).with_isolation_level(1);
    c.send(11, &req)
        .await
        .responses
        .remove(0)
        .partitions
        .remove(0)
}

async fn latest(c: &mut Client, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    c.send(5, &req).await.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_apis_error_codes_and_read_committed() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;

    // FindCoordinator for a transactional id (key type 1) answers us.
    let fc = c
        .send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("a"))
                .with_key_type(1),
        )
        .await;
    assert_eq!(fc.error_code, 0);

    // Two transactional ids on one partition: A aborts, B commits.
    let a = init(&mut c, 1, "A").await;
    let bb = init(&mut c, 4, "B").await;
    assert_eq!((a.error_code, bb.error_code), (0, 0));
    let (pa, ea) = (a.producer_id.0, a.producer_epoch);
    let (pb, eb) = (bb.producer_id.0, bb.producer_epoch);

    // Producing before AddPartitionsToTxn: INVALID_TXN_STATE, nothing written.
    assert_eq!(
        c.produce(9, "t", 0, txn_batch(&[b"early"], pa, ea, 0))
            .await
            .0,
        code(ResponseError::InvalidTxnState)
    );
    // Unknown partition: UNKNOWN_TOPIC_OR_PARTITION, the rest not attempted.
    assert_eq!(
        add_partitions(&mut c, 3, "A", pa, ea, &[("t", 0), ("t", 7)]).await,
        vec![
            code(ResponseError::OperationNotAttempted),
            code(ResponseError::UnknownTopicOrPartition)
        ]
    );
    assert_eq!(
        add_partitions(&mut c, 0, "A", pa, ea, &[("t", 0)]).await,
        vec![0]
    );
    assert_eq!(
        add_partitions(&mut c, 3, "B", pb, eb, &[("t", 0)]).await,
        vec![0]
    );
    // Wrong epoch: INVALID_PRODUCER_EPOCH before v2, PRODUCER_FENCED after.
    assert_eq!(
        add_partitions(&mut c, 1, "A", pa, ea + 1, &[("t", 0)]).await,
        vec![code(ResponseError::InvalidProducerEpoch)]
    );
    assert_eq!(
        add_partitions(&mut c, 2, "A", pa, ea + 1, &[("t", 0)]).await,
        vec![code(ResponseError::ProducerFenced)]
    );
    // Wrong producer id for the transactional id.
    assert_eq!(
        add_partitions(&mut c, 3, "A", pb, ea, &[("t", 0)]).await,
        vec![code(ResponseError::InvalidProducerIdMapping)]
    );

    c.produce(9, "t", 0, batch(&[b"plain"], 1)).await; // 0
    assert_eq!(
        c.produce(9, "t", 0, txn_batch(&[b"a0", b"a1"], pa, ea, 0))
            .await,
        (0, 1)
    );
    assert_eq!(
        c.produce(9, "t", 0, txn_batch(&[b"b0"], pb, eb, 0)).await,
        (0, 3)
    );
    // The same transactional batch twice: the original offsets.
    assert_eq!(
        c.produce(9, "t", 0, txn_batch(&[b"b0"], pb, eb, 0)).await,
        (0, 3)
    );
    // A non-transactional batch from a producer inside a transaction.
    assert_eq!(
        c.produce(9, "t", 0, batch_with(&[b"x"], 1, pb, eb, 1))
            .await
            .0,
        code(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        c.produce(9, "t", 0, txn_batch(&[b"a2"], pa, ea, 2)).await,
        (0, 4)
    );

    // Both open: the LSO is A's first offset.
    let f = fetch_committed(&mut c, 0).await;
    assert_eq!((f.high_watermark, f.last_stable_offset), (5, 1));
    assert_eq!(decode_records(&f.records).len(), 1);
    assert_eq!((latest(&mut c, 0).await, latest(&mut c, 1).await), (5, 1));

    // AddPartitionsToTxn v4 verify-only (the broker-to-broker form).
    let verify = c
        .send(
            4,
            &AddPartitionsToTxnRequest::default().with_transactions(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(tid("A"))
                    .with_producer_id(ProducerId(pa))
                    .with_producer_epoch(ea)
                    .with_verify_only(true)
                    .with_topics(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(topic("t"))
                            .with_partitions(vec![0, 1]),
                    ]),
            ]),
        )
        .await;
    let per: Vec<i16> = verify.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|r| r.partition_error_code)
        .collect();
    assert_eq!(per, vec![0, code(ResponseError::InvalidTxnState)]);

    // Admin views while both are open.
    let described = c
        .send(
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![tid("A"), tid("missing")]),
        )
        .await;
    let st = &described.transaction_states;
    assert_eq!(st[0].transaction_state.as_str(), "Ongoing");
    assert_eq!(st[0].producer_id.0, pa);
    assert_eq!(st[0].topics[0].partitions, vec![0]);
    assert_eq!(
        st[1].error_code,
        code(ResponseError::TransactionalIdNotFound)
    );
    let listed = c
        .send(
            1,
            &ListTransactionsRequest::default()
                .with_state_filters(vec![
                    StrBytes::from_static_str("Ongoing"),
                    StrBytes::from_static_str("Bogus"),
                ])
                .with_producer_id_filters(vec![ProducerId(pb)])
                .with_duration_filter(-1),
        )
        .await;
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(
        listed.transaction_states[0].transactional_id.0.as_str(),
        "B"
    );
    assert_eq!(listed.unknown_state_filters[0].as_str(), "Bogus");
    let producers = c
        .send(
            0,
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(topic("t"))
                    .with_partition_indexes(vec![0]),
            ]),
        )
        .await;
    let active = &producers.topics[0].partitions[0].active_producers;
    let a_state = active.iter().find(|p| p.producer_id.0 == pa).unwrap();
    assert_eq!(
        (a_state.last_sequence, a_state.current_txn_start_offset),
        (2, 1)
    );

    // EndTxn: wrong epoch by version, then abort A and commit B.
    assert_eq!(
        end_txn(&mut c, 1, "A", pa, ea + 1, false).await,
        code(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(
        end_txn(&mut c, 3, "A", pa, ea + 1, false).await,
        code(ResponseError::ProducerFenced)
    );
    assert_eq!(
        end_txn(&mut c, 3, "nobody", pa, ea, false).await,
        code(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(end_txn(&mut c, 3, "A", pa, ea, false).await, 0); // marker at 5
                                                                 // A retried EndTxn gets success; the opposite outcome INVALID_TXN_STATE.
    assert_eq!(end_txn(&mut c, 3, "A", pa, ea, false).await, 0);
    assert_eq!(
        end_txn(&mut c, 3, "A", pa, ea, true).await,
        code(ResponseError::InvalidTxnState)
    );
    assert_eq!(latest(&mut c, 1).await, 3, "B still open at 3");
    assert_eq!(end_txn(&mut c, 5, "B", pb, eb, true).await, 0); // marker at 6
    assert_eq!((latest(&mut c, 0).await, latest(&mut c, 1).await), (7, 7));

    // read_committed: everything up to 7, A's transaction listed as aborted.
    let f = fetch_committed(&mut c, 0).await;
    assert_eq!(f.last_stable_offset, 7);
    let aborted = f.aborted_transactions.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id.0, aborted[0].first_offset), (pa, 1));
    // Fetching past the abort marker lists nothing.
    let f = fetch_committed(&mut c, 6).await;
    assert_eq!(f.aborted_transactions, Some(vec![]));
    // read_uncommitted lists no aborted transactions at all.
    let f = c.fetch(11, "t", 0, 0, 1 << 20).await;
    assert_eq!(f.aborted_transactions, None);
    // After the marker, a late batch of A cannot reopen the transaction.
    assert_eq!(
        c.produce(9, "t", 0, txn_batch(&[b"late"], pa, ea, 3))
            .await
            .0,
        code(ResponseError::InvalidTxnState)
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offsets_are_unstable_until_commit() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("in", 1, &[]).await;
    let r = init(&mut c, 4, "T").await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let add = |epoch: i16| {
        AddOffsetsToTxnRequest::default()
            .with_transactional_id(tid("T"))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
    };
    // Wrong epoch: INVALID_PRODUCER_EPOCH before v2, PRODUCER_FENCED after.
    assert_eq!(
        c.send(1, &add(epoch + 1)).await.error_code,
        code(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(
        c.send(3, &add(epoch + 1)).await.error_code,
        code(ResponseError::ProducerFenced)
    );
    assert_eq!(c.send(3, &add(epoch)).await.error_code, 0);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(tid("T"))
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic("in"))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42),
                ]),
        ]);
    let resp = c.send(3, &commit).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    let fetch = |require_stable: bool| {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("in"))
                    .with_partition_indexes(vec![0]),
            ]))
            .with_require_stable(require_stable)
    };
    // Pending: UNSTABLE_OFFSET_COMMIT with require_stable, nothing without.
    let p = c.send(7, &fetch(true)).await.topics[0].partitions[0].clone();
    assert_eq!(p.error_code, code(ResponseError::UnstableOffsetCommit));
    let p = c.send(7, &fetch(false)).await.topics[0].partitions[0].clone();
    assert_eq!((p.error_code, p.committed_offset), (0, -1));
    assert_eq!(end_txn(&mut c, 3, "T", pid, epoch, true).await, 0);
    let p = c.send(7, &fetch(true)).await.topics[0].partitions[0].clone();
    assert_eq!((p.error_code, p.committed_offset), (0, 42));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_read_committed_fetch_wakes_on_the_commit_marker() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    let r = init(&mut c, 4, "W").await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(
        add_partitions(&mut c, 3, "W", pid, epoch, &[("t", 0)]).await,
        vec![0]
    );
    assert_eq!(
        c.produce(9, "t", 0, txn_batch(&[b"held"], pid, epoch, 0))
            .await,
        (0, 0)
    );
    // A read_committed consumer at offset 0 parks: nothing is stable yet,
    // even though the high watermark has moved.
    let mut waiter = b.client().await;
    let parked = tokio::spawn(async move {
        let start = std::time::Instant::now();
        let req = fetch_request("t", 0, 0, 1 << 20, 10_000, 1).with_isolation_level(1);
        let mut resp = waiter.send(11, &req).await;
        let p = resp.responses.remove(0).partitions.remove(0);
        (
            start.elapsed(),
            decode_records(&p.records),
            p.last_stable_offset,
        )
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!parked.is_finished(), "returned before anything was stable");
    assert_eq!(end_txn(&mut c, 3, "W", pid, epoch, true).await, 0);
    let (elapsed, records, lso) = parked.await.unwrap();
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "woke after {elapsed:?}"
    );
    assert_eq!(lso, 2);
    // The data record (the marker is a control batch the client skips).
    assert!(records.iter().any(|(o, v)| *o == 0 && &v[..] == b"held"));
    b.stop().await;
}
