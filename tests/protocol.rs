//! Raw-protocol integration tests: the broker in-process on port 0, every
//! supported API at old and new versions, including error paths.

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn code(e: ResponseError) -> i16 {
    e.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_old_new_and_unknown_version() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    for v in [0, 1, 2, 3, 4] {
        let resp = c.send(v, &ApiVersionsRequest::default()).await;
        assert_eq!(resp.error_code, 0);
        let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 13));
        let fetch = resp.api_keys.iter().find(|k| k.api_key == 1).unwrap();
        assert_eq!((fetch.min_version, fetch.max_version), (4, 18));
        assert!(resp
            .api_keys
            .iter()
            .all(|k| k.api_key != 71 && k.api_key != 72));
    }
    // A version from the future: v0 body, UNSUPPORTED_VERSION, our range for key 18.
    let mut frame = BytesMut::new();
    let mut body = BytesMut::new();
    body.put_i16(18);
    body.put_i16(99);
    body.put_i32(4242);
    body.put_i16(-1);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    c.send_raw(&frame).await;
    let mut resp = c.read_frame().await.unwrap();
    use bytes::Buf;
    assert_eq!(resp.get_i32(), 4242);
    let parsed = ApiVersionsResponse::decode_v0(&mut resp);
    assert_eq!(parsed.error_code, code(ResponseError::UnsupportedVersion));
    let av = parsed.api_keys.iter().find(|k| k.api_key == 18).unwrap();
    assert_eq!((av.min_version, av.max_version), (0, 4));
    b.stop().await;
}

trait DecodeV0 {
    fn decode_v0(buf: &mut Bytes) -> ApiVersionsResponse;
}
impl DecodeV0 for ApiVersionsResponse {
    fn decode_v0(buf: &mut Bytes) -> ApiVersionsResponse {
        use kafka_protocol::protocol::Decodable;
        ApiVersionsResponse::decode(buf, 0).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_versions_auto_create_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.num_partitions = 3).await;
    let mut c = b.client().await;
    let req = |names: &[&str], allow: bool| {
        MetadataRequest::default()
            .with_topics(Some(
                names
                    .iter()
                    .map(|n| {
                        metadata_request::MetadataRequestTopic::default().with_name(Some(topic(n)))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(allow)
    };
    // v4+: the flag decides.
    let r = c.send(4, &req(&["nope"], false)).await;
    assert_eq!(
        r.topics[0].error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );
    let r = c.send(12, &req(&["auto"], true)).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 3);
    assert!(!r.topics[0].topic_id.is_nil());
    assert_eq!(r.controller_id.0, 1);
    assert_eq!(r.brokers[0].port, b.addr.port() as i32);
    assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(r.cluster_id.as_ref().unwrap().len(), 22);
    let id = r.topics[0].topic_id;
    // Invalid names are refused, not created.
    let r = c.send(9, &req(&["bad name!"], true)).await;
    assert_eq!(
        r.topics[0].error_code,
        code(ResponseError::InvalidTopicException)
    );
    // v0: empty list = all topics; v1 null = all topics.
    let r = c
        .send(0, &MetadataRequest::default().with_topics(Some(vec![])))
        .await;
    assert_eq!(r.topics.len(), 1);
    let r = c
        .send(1, &MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(r.topics.len(), 1);
    // v10+ by topic id, known and unknown.
    let by_id = |id| {
        MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(id),
        ]))
    };
    let r = c.send(13, &by_id(id)).await;
    assert_eq!(r.topics[0].name.as_ref().unwrap().0.as_str(), "auto");
    let r = c.send(13, &by_id(uuid::Uuid::new_v4())).await;
    assert_eq!(r.topics[0].error_code, code(ResponseError::UnknownTopicId));
    // Topic ids are stable across restarts.
    b.stop().await;
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let r = c.send(12, &req(&["auto"], false)).await;
    assert_eq!(r.topics[0].topic_id, id);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_round_trip_across_versions() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("t", 1, &[]).await, 0);
    let mut expected = 0;
    for v in [3i16, 5, 7, 9, 12] {
        let (err, base) = c.produce(v, "t", 0, batch(&[b"a", b"b", b"c"], 1000)).await;
        assert_eq!((err, base), (0, expected), "produce v{v}");
        expected += 3;
    }
    // Produce v13 addresses topics by id.
    let id = c
        .send(12, &MetadataRequest::default().with_topics(None))
        .await
        .topics[0]
        .topic_id;
    let mut req = produce_request("", 0, batch(&[b"x"], 1000), -1);
    req.topic_data[0].topic_id = id;
    let resp = c.send(13, &req).await;
    assert_eq!(resp.responses[0].topic_id, id);
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 15);
    for v in [4i16, 7, 11, 12] {
        let p = c.fetch(v, "t", 0, 0, 1 << 20).await;
        assert_eq!(p.error_code, 0, "fetch v{v}");
        assert_eq!(p.high_watermark, 16);
        assert_eq!(p.last_stable_offset, 16);
        let recs = decode_records(&p.records);
        assert_eq!(recs.len(), 16, "fetch v{v}");
        assert_eq!(recs[15].1, Bytes::from_static(b"x"));
    }
    // Fetch v13+ by topic id.
    for v in [13i16, 15, 16, 17, 18] {
        let mut req = fetch_request("", 0, 15, 1 << 20, 0, 0);
        req.topics[0].topic_id = id;
        let resp = c.send(v, &req).await;
        assert_eq!(resp.responses[0].topic_id, id);
        assert_eq!(
            decode_records(&resp.responses[0].partitions[0].records).len(),
            1,
            "fetch v{v}"
        );
        assert_eq!(resp.responses[0].partitions[0].high_watermark, 16);
    }
    let mut req = fetch_request("", 0, 0, 1 << 20, 0, 0);
    req.topics[0].topic_id = uuid::Uuid::new_v4();
    assert_eq!(
        c.send(13, &req).await.responses[0].partitions[0].error_code,
        code(ResponseError::UnknownTopicId)
    );
    // An offset inside a batch returns that whole batch.
    let p = c.fetch(11, "t", 0, 4, 1 << 20).await;
    assert_eq!(decode_records(&p.records)[0].0, 3);
    // KIP-74: a limit below one batch still returns that batch.
    let p = c.fetch(11, "t", 0, 0, 10).await;
    assert_eq!(decode_records(&p.records).len(), 3);
    // At the log end: empty; beyond it: OFFSET_OUT_OF_RANGE.
    let p = c.fetch(11, "t", 0, 16, 1 << 20).await;
    assert_eq!((p.error_code, decode_records(&p.records).len()), (0, 0));
    let p = c.fetch(11, "t", 0, 17, 1 << 20).await;
    assert_eq!(p.error_code, code(ResponseError::OffsetOutOfRange));
    let p = c.fetch(11, "missing", 0, 0, 1 << 20).await;
    assert_eq!(p.error_code, code(ResponseError::UnknownTopicOrPartition));
    b.stop().await;
}

fn corrupt(mut b: Vec<u8>) -> Bytes {
    let n = b.len();
    b[n - 1] ^= 0xff;
    Bytes::from(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_rejects_bad_batches_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        c.create_topic("t", 1, &[("max.message.bytes", "200")])
            .await,
        0
    );
    let good = batch(&[b"v"], 0);
    assert_eq!(
        c.produce(9, "t", 0, corrupt(good.to_vec())).await.0,
        code(ResponseError::CorruptMessage)
    );
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    assert_eq!(
        c.produce(9, "t", 0, Bytes::from(two)).await.0,
        code(ResponseError::InvalidRecord)
    );
    assert_eq!(
        c.produce(9, "t", 0, good.slice(..good.len() - 3)).await.0,
        code(ResponseError::CorruptMessage)
    );
    // Inconsistent record count (CRC recomputed so only the count is wrong).
    let mut bad = good.to_vec();
    bad[57..61].copy_from_slice(&9i32.to_be_bytes());
    let crc = crc32c::crc32c(&bad[21..]);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        c.produce(9, "t", 0, Bytes::from(bad)).await.0,
        code(ResponseError::InvalidRecord)
    );
    // A client control batch.
    let mut ctl = good.to_vec();
    ctl[22] |= 0x20;
    let crc = crc32c::crc32c(&ctl[21..]);
    ctl[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        c.produce(9, "t", 0, Bytes::from(ctl)).await.0,
        code(ResponseError::InvalidRecord)
    );
    let big = vec![7u8; 300];
    assert_eq!(
        c.produce(9, "t", 0, batch(&[&big], 0)).await.0,
        code(ResponseError::MessageTooLarge)
    );
    assert_eq!(
        c.produce(9, "nope", 0, good.clone()).await.0,
        code(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(
        c.produce(9, "t", 5, good.clone()).await.0,
        code(ResponseError::UnknownTopicOrPartition)
    );
    // Nothing partial was appended.
    assert_eq!(c.fetch(11, "t", 0, 0, 1 << 20).await.high_watermark, 0);
    assert_eq!(c.produce(9, "t", 0, good).await, (0, 0));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_gets_no_response_and_failure_closes() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    let frame = c.encode(9, &produce_request("t", 0, batch(&[b"q"], 0), 0));
    c.send_raw(&frame).await;
    // The next response on the connection answers the next request.
    let p = c.fetch(11, "t", 0, 0, 1 << 20).await;
    assert_eq!(decode_records(&p.records).len(), 1);
    let frame = c.encode(9, &produce_request("missing", 0, batch(&[b"q"], 0), 0));
    c.send_raw(&frame).await;
    assert!(c.is_closed().await);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_poll_wakes_on_append_and_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    // Empty partition, 300 ms wait: returns empty after roughly the wait.
    let start = Instant::now();
    let resp = c.send(11, &fetch_request("t", 0, 0, 1 << 20, 300, 1)).await;
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert!(decode_records(&resp.responses[0].partitions[0].records).is_empty());
    // A parked fetch wakes on append, long before its 10 s wait.
    let mut waiter = b.client().await;
    let parked = tokio::spawn(async move {
        let start = Instant::now();
        let resp = waiter
            .send(11, &fetch_request("t", 0, 0, 1 << 20, 10_000, 1))
            .await;
        (
            start.elapsed(),
            decode_records(&resp.responses[0].partitions[0].records).len(),
        )
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.produce(9, "t", 0, batch(&[b"wake"], 0)).await;
    let (elapsed, n) = parked.await.unwrap();
    assert_eq!(n, 1);
    assert!(elapsed < Duration::from_secs(5), "woke after {elapsed:?}");
    // Unknown fetch session: FETCH_SESSION_ID_NOT_FOUND.
    let mut req = fetch_request("t", 0, 0, 1 << 20, 0, 0);
    req.session_id = 1234;
    req.session_epoch = 1;
    assert_eq!(
        c.send(11, &req).await.error_code,
        code(ResponseError::FetchSessionIdNotFound)
    );
    b.stop().await;
}

fn list_offsets(name: &str, ts: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts)
                    .with_current_leader_epoch(-1),
            ])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_and_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[("segment.bytes", "200")]).await;
    for i in 0..10 {
        c.produce(
            9,
            "t",
            0,
            batch(&[b"0123456789", b"0123456789"], 1000 + 10 * i),
        )
        .await;
    }
    let get = |r: ListOffsetsResponse| {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    for v in [1i16, 4, 7, 10] {
        assert_eq!(
            get(c.send(v, &list_offsets("t", -2)).await),
            (0, 0, -1),
            "v{v}"
        );
        assert_eq!(
            get(c.send(v, &list_offsets("t", -1)).await),
            (0, 20, -1),
            "v{v}"
        );
        // Batch i holds timestamps 1000+10i and 1001+10i at offsets 2i, 2i+1.
        assert_eq!(
            get(c.send(v, &list_offsets("t", 1031)).await),
            (0, 7, 1031),
            "v{v}"
        );
        assert_eq!(
            get(c.send(v, &list_offsets("t", 1032)).await),
            (0, 8, 1040),
            "v{v}"
        );
        assert_eq!(
            get(c.send(v, &list_offsets("t", 5000)).await),
            (0, -1, -1),
            "v{v}"
        );
    }
    assert_eq!(get(c.send(7, &list_offsets("t", -3)).await), (0, 19, 1091));
    assert_eq!(
        get(c.send(7, &list_offsets("nope", -1)).await).0,
        code(ResponseError::UnknownTopicOrPartition)
    );
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(topic("t"))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_leader_epoch(0)
                        .with_current_leader_epoch(0),
                ]),
        ]);
    for v in 2..=4 {
        let r = c.send(v, &req).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_epoch, p.end_offset),
            (0, 0, 20),
            "v{v}"
        );
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_validation_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let mk = |name: &str, parts: i32, rf: i16, cfg: Option<(&str, &str)>| {
        create_topics_request::CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(parts)
            .with_replication_factor(rf)
            .with_configs(
                cfg.map(|(k, v)| {
                    vec![create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.into()))
                        .with_value(Some(StrBytes::from_string(v.into())))]
                })
                .unwrap_or_default(),
            )
    };
    let only = CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_topics(vec![mk("v", 2, 1, None)]);
    assert_eq!(c.send(7, &only).await.topics[0].error_code, 0);
    let md = c
        .send(9, &MetadataRequest::default().with_topics(None))
        .await;
    assert!(md.topics.is_empty(), "validate_only created nothing");
    let req = CreateTopicsRequest::default().with_topics(vec![
        mk("a", 2, 1, Some(("retention.ms", "1000"))),
        mk("b", 0, 1, None),
        mk("c", 1, 3, None),
        mk("d", 1, 1, Some(("retention.ms", "soon"))),
        mk("e", 1, 1, Some(("no.such.config", "1"))),
        mk("bad/name", 1, 1, None),
        mk("f", -1, -1, None),
    ]);
    for v in [2i16, 5, 7] {
        let r = c.send(v, &req).await;
        let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
        let first = if v == 2 {
            0
        } else {
            code(ResponseError::TopicAlreadyExists)
        };
        let f = if v == 2 {
            0
        } else {
            code(ResponseError::TopicAlreadyExists)
        };
        assert_eq!(
            codes,
            vec![
                first,
                code(ResponseError::InvalidPartitions),
                code(ResponseError::InvalidReplicationFactor),
                code(ResponseError::InvalidConfig),
                code(ResponseError::InvalidConfig),
                code(ResponseError::InvalidTopicException),
                f,
            ],
            "v{v}"
        );
        if v == 7 {
            assert_eq!(r.topics[0].num_partitions, -1);
        }
    }
    let r = c
        .send(
            7,
            &CreateTopicsRequest::default().with_topics(vec![mk("g", 3, 1, None)]),
        )
        .await;
    assert_eq!(
        (r.topics[0].num_partitions, r.topics[0].replication_factor),
        (3, 1)
    );
    assert!(!r.topics[0].topic_id.is_nil());
    assert!(r.topics[0]
        .configs
        .as_ref()
        .unwrap()
        .iter()
        .any(|c| c.name.as_str() == "retention.ms"));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics_is_synchronous_and_recreate_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    c.produce(9, "t", 0, batch(&[b"old"], 0)).await;
    let r = c
        .send(
            1,
            &DeleteTopicsRequest::default().with_topic_names(vec![topic("t"), topic("missing")]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        r.responses[1].error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(c.create_topic("t", 1, &[]).await, 0);
    let p = c.fetch(11, "t", 0, 0, 1 << 20).await;
    assert_eq!((p.high_watermark, decode_records(&p.records).len()), (0, 0));
    // v6 by topic id.
    let id = c
        .send(12, &MetadataRequest::default().with_topics(None))
        .await
        .topics[0]
        .topic_id;
    let r = c
        .send(
            6,
            &DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_topic_id(id),
            ]),
        )
        .await;
    assert_eq!(
        (
            r.responses[0].error_code,
            r.responses[0].name.as_ref().unwrap().0.as_str()
        ),
        (0, "t")
    );
    let r = c
        .send(
            6,
            &DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_topic_id(id),
            ]),
        )
        .await;
    assert_eq!(
        r.responses[0].error_code,
        code(ResponseError::UnknownTopicId)
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_and_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    let cp = |count: i32| {
        CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic("t"))
                .with_count(count),
        ])
    };
    assert_eq!(c.send(0, &cp(3)).await.results[0].error_code, 0);
    assert_eq!(
        c.send(3, &cp(2)).await.results[0].error_code,
        code(ResponseError::InvalidPartitions)
    );
    assert_eq!(c.produce(9, "t", 2, batch(&[b"p2"], 0)).await, (0, 0));
    for i in 0..5 {
        c.produce(9, "t", 0, batch(&[b"x", b"y"], i)).await;
    }
    let dr = |offset: i64| {
        DeleteRecordsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset),
                ])])
    };
    let r = c.send(2, &dr(4)).await;
    assert_eq!(
        (
            r.topics[0].partitions[0].error_code,
            r.topics[0].partitions[0].low_watermark
        ),
        (0, 4)
    );
    let r = c.send(0, &dr(99)).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        code(ResponseError::OffsetOutOfRange)
    );
    // A compact-only topic: the cleaner removes records, not DeleteRecords.
    c.create_topic("kv", 1, &[("cleanup.policy", "compact")])
        .await;
    let mut kv = dr(0);
    kv.topics[0].name = topic("kv");
    assert_eq!(
        c.send(2, &kv).await.topics[0].partitions[0].error_code,
        code(ResponseError::PolicyViolation)
    );
    assert_eq!(
        c.fetch(11, "t", 0, 2, 1 << 20).await.error_code,
        code(ResponseError::OffsetOutOfRange)
    );
    let p = c.fetch(11, "t", 0, 4, 1 << 20).await;
    assert_eq!(
        (p.log_start_offset, decode_records(&p.records)[0].0),
        (4, 4)
    );
    let lo = c.send(7, &list_offsets("t", -2)).await;
    assert_eq!(lo.topics[0].partitions[0].offset, 4);
    // The new log start offset survives a restart.
    b.stop().await;
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        c.send(7, &list_offsets("t", -2)).await.topics[0].partitions[0].offset,
        4
    );
    b.stop().await;
}

fn describe(resource_type: i8, name: &str) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.into()))
                .with_configuration_keys(None),
        ])
}

fn config_value(r: &DescribeConfigsResponse, name: &str) -> (String, i8) {
    let c = r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} listed in {r:?}"));
    (c.value.as_ref().unwrap().to_string(), c.config_source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_alter_configs_persist_and_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[("retention.ms", "5000")]).await;
    for v in [1i16, 2, 3, 4] {
        let r = c
            .send(v, &describe(2, "t").with_include_documentation(v >= 3))
            .await;
        assert_eq!(r.results[0].error_code, 0);
        assert_eq!(config_value(&r, "retention.ms"), ("5000".into(), 1), "v{v}");
        assert_eq!(
            config_value(&r, "segment.bytes"),
            ("1073741824".into(), 5),
            "v{v}"
        );
        assert!(r.results[0].configs.len() >= 20);
    }
    let r = c.send(4, &describe(2, "missing")).await;
    assert_eq!(
        r.results[0].error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );
    let r = c.send(4, &describe(4, "1")).await;
    assert_eq!(config_value(&r, "num.partitions").0, "1");
    assert_eq!(config_value(&r, "log.retention.ms").0, "604800000");

    // AlterConfigs replaces the override set.
    let alter = |k: &str, v: &str| {
        AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.into()))
                    .with_value(Some(StrBytes::from_string(v.into())))]),
        ])
    };
    assert_eq!(
        c.send(0, &alter("message.timestamp.type", "LogAppendTime"))
            .await
            .responses[0]
            .error_code,
        0
    );
    assert_eq!(
        c.send(2, &alter("segment.bytes", "zero")).await.responses[0].error_code,
        code(ResponseError::InvalidConfig)
    );
    let r = c.send(4, &describe(2, "t")).await;
    assert_eq!(config_value(&r, "retention.ms"), ("604800000".into(), 5));
    assert_eq!(
        config_value(&r, "message.timestamp.type"),
        ("LogAppendTime".into(), 1)
    );
    // Takes effect: LogAppendTime is returned by produce.
    let resp = c
        .send(9, &produce_request("t", 0, batch(&[b"v"], 5), -1))
        .await;
    assert!(resp.responses[0].partition_responses[0].log_append_time_ms > 1_000_000_000_000);

    // IncrementalAlterConfigs: SET, APPEND to a list, DELETE.
    let inc = |ops: Vec<(&str, i8, Option<&str>)>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_configs(
                    ops.into_iter()
                        .map(|(k, op, v)| {
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(StrBytes::from_string(k.into()))
                                .with_config_operation(op)
                                .with_value(v.map(|v| StrBytes::from_string(v.into())))
                        })
                        .collect(),
                ),
        ])
    };
    let r = c
        .send(
            1,
            &inc(vec![
                ("retention.bytes", 0, Some("12345")),
                ("cleanup.policy", 2, Some("compact")),
                ("message.timestamp.type", 1, None),
            ]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    let r = c
        .send(0, &inc(vec![("retention.bytes", 0, Some("-7"))]))
        .await;
    assert_eq!(
        r.responses[0].error_code,
        code(ResponseError::InvalidConfig)
    );
    b.stop().await;
    // Persisted across restart.
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let r = c.send(4, &describe(2, "t")).await;
    assert_eq!(config_value(&r, "retention.bytes"), ("12345".into(), 1));
    assert_eq!(config_value(&r, "cleanup.policy").0, "delete,compact");
    assert_eq!(
        config_value(&r, "message.timestamp.type"),
        ("CreateTime".into(), 5)
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_versions() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    for v in 0..=2 {
        let mut req = DescribeClusterRequest::default();
        if v >= 1 {
            req.endpoint_type = 1;
        }
        let r = c.send(v, &req).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(
            (r.controller_id.0, r.brokers.len(), r.brokers[0].port),
            (1, 1, b.addr.port() as i32)
        );
        assert_eq!(r.cluster_id.len(), 22);
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_dedups_and_checks_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    let init = c
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let b0 = batch_with(&[b"a", b"b"], 0, pid, 0, 0);
    assert_eq!(c.produce(9, "t", 0, b0.clone()).await, (0, 0));
    assert_eq!(
        c.produce(9, "t", 0, batch_with(&[b"c"], 0, pid, 0, 2))
            .await,
        (0, 2)
    );
    // The same batch again: success with the ORIGINAL offset, nothing appended.
    assert_eq!(c.produce(9, "t", 0, b0).await, (0, 0));
    assert_eq!(c.fetch(11, "t", 0, 0, 1 << 20).await.high_watermark, 3);
    // A gap, and an old epoch after a bump.
    assert_eq!(
        c.produce(9, "t", 0, batch_with(&[b"d"], 0, pid, 0, 9))
            .await
            .0,
        code(ResponseError::OutOfOrderSequenceNumber)
    );
    assert_eq!(
        c.produce(9, "t", 0, batch_with(&[b"e"], 0, pid, 1, 0))
            .await,
        (0, 3)
    );
    assert_eq!(
        c.produce(9, "t", 0, batch_with(&[b"f"], 0, pid, 0, 3))
            .await
            .0,
        code(ResponseError::InvalidProducerEpoch)
    );
    b.stop().await;
    // State is rebuilt from the log: the retry is still recognised.
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        c.produce(9, "t", 0, batch_with(&[b"e"], 0, pid, 1, 0))
            .await,
        (0, 3)
    );
    let next = c
        .send(
            0,
            &InitProducerIdRequest::default().with_transactional_id(None),
        )
        .await
        .producer_id
        .0;
    assert!(next > pid, "producer ids are unique across restarts");
    let txn = c
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx")))),
        )
        .await;
    // A transactional id with no (zero) transaction timeout.
    assert_eq!(
        txn.error_code,
        code(ResponseError::InvalidTransactionTimeout)
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_restart_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[("segment.bytes", "1000")]).await;
    for i in 0..50 {
        assert_eq!(
            c.produce(9, "t", 0, batch(&[b"0123456789abcdef"], i))
                .await
                .0,
            0
        );
    }
    b.stop().await;
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    for i in 50..60 {
        assert_eq!(
            c.produce(9, "t", 0, batch(&[b"0123456789abcdef"], i))
                .await
                .1,
            i
        );
    }
    b.crash().await;
    assert!(!dir.path().join(".clean-shutdown").exists());
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let mut seen = Vec::new();
    let mut offset = 0;
    while offset < 60 {
        let p = c.fetch(11, "t", 0, offset, 1 << 20).await;
        let recs = decode_records(&p.records);
        assert!(!recs.is_empty());
        offset = recs.last().unwrap().0 + 1;
        seen.extend(recs.into_iter().map(|r| r.0));
    }
    assert_eq!(seen, (0..60).collect::<Vec<_>>());
    assert_eq!(c.produce(9, "t", 0, batch(&[b"after"], 0)).await.1, 60);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("t", 1, &[]).await;
    // Five requests in one write, including an acks=0 produce (no answer).
    let mut all = BytesMut::new();
    all.extend_from_slice(&c.encode(3, &ApiVersionsRequest::default()));
    all.extend_from_slice(&c.encode(9, &produce_request("t", 0, batch(&[b"a"], 0), 1)));
    all.extend_from_slice(&c.encode(9, &produce_request("t", 0, batch(&[b"b"], 0), 0)));
    all.extend_from_slice(&c.encode(9, &produce_request("t", 0, batch(&[b"c"], 0), -1)));
    all.extend_from_slice(&c.encode(12, &MetadataRequest::default().with_topics(None)));
    c.send_raw(&all).await;
    let mut correlations = Vec::new();
    for _ in 0..4 {
        let frame = c.read_frame().await.expect("response");
        correlations.push(i32::from_be_bytes(frame[..4].try_into().unwrap()));
    }
    // Correlation ids 2..=6 were used; 4 (acks=0) gets no response.
    assert_eq!(correlations, vec![2, 3, 5, 6]);
    let p = c.fetch(11, "t", 0, 0, 1 << 20).await;
    assert_eq!(decode_records(&p.records).len(), 3);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_produces_to_fsync_topics_answer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    c.create_topic("f", 1, &[("flush.messages", "1")]).await;
    c.create_topic("p", 1, &[]).await;
    // Produces waiting for fsyncs, an immediate produce behind them, an
    // acks=0 one, a Metadata (handled only after every earlier answer), and
    // more produces after it.
    let mut all = BytesMut::new();
    // (correlation id, is a produce) of every request that gets an answer.
    let mut expected = Vec::new();
    let mut add = |bytes: BytesMut, answered: Option<bool>| {
        let id = i32::from_be_bytes(bytes[8..12].try_into().unwrap());
        all.extend_from_slice(&bytes);
        if let Some(produce) = answered {
            expected.push((id, produce));
        }
    };
    for i in 0..20 {
        let req = produce_request("f", 0, batch(&[format!("v{i}").as_bytes()], 0), -1);
        let bytes = c.encode(9, &req);
        add(bytes, Some(true));
    }
    let bytes = c.encode(9, &produce_request("p", 0, batch(&[b"x"], 0), 1));
    add(bytes, Some(true));
    let bytes = c.encode(9, &produce_request("f", 0, batch(&[b"zero"], 0), 0));
    add(bytes, None);
    let bytes = c.encode(12, &MetadataRequest::default().with_topics(None));
    add(bytes, Some(false));
    for i in 0..5 {
        let req = produce_request("f", 0, batch(&[format!("w{i}").as_bytes()], 0), -1);
        let bytes = c.encode(9, &req);
        add(bytes, Some(true));
    }
    c.send_raw(&all).await;
    let mut got = Vec::new();
    let mut offsets = Vec::new();
    for (_, produce) in &expected {
        let frame = c.read_frame().await.expect("response");
        got.push((i32::from_be_bytes(frame[..4].try_into().unwrap()), *produce));
        if *produce {
            // Produce v9 responses have the flexible header: id + tag byte.
            let mut body = frame.slice(5..);
            let resp =
                <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 9)
                    .unwrap();
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0);
            offsets.push(p.base_offset);
        }
    }
    assert_eq!(got, expected, "responses in request order");
    // 20 + acks=0 + 5 records in "f", in request order; "p" got offset 0.
    let f_offsets: Vec<i64> = offsets
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 20)
        .map(|(_, o)| *o)
        .collect();
    assert_eq!(f_offsets, (0..20).chain(21..26).collect::<Vec<i64>>());
    let p = c.fetch(11, "f", 0, 0, 1 << 20).await;
    assert_eq!(p.high_watermark, 26, "every acknowledged record is flushed");
    b.stop().await;
}

fn group_config_op(
    name: &str,
    op: i8,
    value: Option<&str>,
) -> incremental_alter_configs_request::AlterableConfig {
    incremental_alter_configs_request::AlterableConfig::default()
        .with_name(StrBytes::from_string(name.into()))
        .with_config_operation(op)
        .with_value(value.map(|v| StrBytes::from_string(v.into())))
}

async fn alter_group(
    c: &mut Client,
    group: &str,
    ops: Vec<incremental_alter_configs_request::AlterableConfig>,
) -> i16 {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(StrBytes::from_string(group.into()))
            .with_configs(ops),
    ]);
    c.send(1, &req).await.responses[0].error_code
}

/// (value, source) of a group config.
async fn group_config(c: &mut Client, group: &str, name: &str) -> (String, i8) {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(StrBytes::from_string(group.into()))
            .with_configuration_keys(None),
    ]);
    let r = c.send(4, &req).await;
    assert_eq!(r.results[0].error_code, 0);
    let e = r.results[0]
        .configs
        .iter()
        .find(|e| e.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} not described"));
    (e.value.as_ref().unwrap().to_string(), e.config_source)
}

/// Group configs (resource type 32): Kafka's names and defaults, validated
/// against Kafka's bounds, for groups that need not exist, persisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_configs_describe_alter_validate_persist() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        group_config(&mut c, "nobody-yet", "consumer.session.timeout.ms").await,
        ("10000".into(), 5)
    );
    let set = |v| vec![group_config_op("consumer.session.timeout.ms", 0, Some(v))];
    assert_eq!(alter_group(&mut c, "g", set("50000")).await, 0);
    assert_eq!(
        group_config(&mut c, "g", "consumer.session.timeout.ms").await,
        ("50000".into(), 8)
    );
    let invalid = ResponseError::InvalidConfig.code();
    assert_eq!(alter_group(&mut c, "g", set("999")).await, invalid);
    assert_eq!(
        alter_group(&mut c, "g", vec![group_config_op("no.such", 0, Some("1"))]).await,
        invalid
    );
    assert_eq!(
        alter_group(
            &mut c,
            "g",
            vec![group_config_op("share.isolation.level", 2, Some("x"))]
        )
        .await,
        invalid,
        "APPEND on a non-list config"
    );
    assert_eq!(
        alter_group(
            &mut c,
            "g",
            vec![group_config_op(
                "share.record.lock.duration.ms",
                0,
                Some("20000")
            )]
        )
        .await,
        0
    );
    b.stop().await;
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        group_config(&mut c, "g", "consumer.session.timeout.ms").await,
        ("50000".into(), 8),
        "survives a restart"
    );
    assert_eq!(
        alter_group(
            &mut c,
            "g",
            vec![group_config_op("consumer.session.timeout.ms", 1, None)]
        )
        .await,
        0
    );
    assert_eq!(
        group_config(&mut c, "g", "consumer.session.timeout.ms").await,
        ("10000".into(), 5)
    );
    b.stop().await;
}

/// Without an authorizer every operation Kafka supports on a resource is
/// reported as allowed, when asked for (and only then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_operations_without_an_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("t", 1, &[]).await, 0);
    // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS
    let topic_ops =
        (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
    // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE
    let cluster_ops = (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
    let meta = |include: bool| {
        MetadataRequest::default()
            .with_topics(None)
            .with_include_cluster_authorized_operations(include)
            .with_include_topic_authorized_operations(include)
    };
    let r = c.send(10, &meta(true)).await;
    assert_eq!(r.topics[0].topic_authorized_operations, topic_ops);
    assert_eq!(r.cluster_authorized_operations, cluster_ops);
    let r = c.send(10, &meta(false)).await;
    assert_eq!(r.topics[0].topic_authorized_operations, i32::MIN);
    let r = c
        .send(
            1,
            &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        )
        .await;
    assert_eq!(r.cluster_authorized_operations, cluster_ops);
    // A group: READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("og")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0),
                ]),
        ]);
    c.send(8, &commit).await;
    let r = c
        .send(
            5,
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("og"))])
                .with_include_authorized_operations(true),
        )
        .await;
    let group_ops = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);
    assert_eq!(r.groups[0].authorized_operations, group_ops);
    b.stop().await;
}
