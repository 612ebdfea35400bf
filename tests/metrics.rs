//! `/metrics` of the HTTP listener, scraped after known traffic.

mod common;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request; (status code, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap();
    (status, body)
}

/// The value of the sample with exactly this name and labels.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(c.create_topic("m", 1, &[]).await, 0);
    let mut batch_bytes = 0;
    for i in 0..5 {
        let batch = batch(&[b"value-1", b"value-2"], i);
        batch_bytes += batch.len();
        assert_eq!(c.produce(9, "m", 0, batch).await.0, 0);
    }
    let fetched = c.fetch(12, "m", 0, 0, 1 << 20).await;
    let fetched_bytes = fetched.records.as_ref().unwrap().len();
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("m"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(4),
                ]),
        ]);
    let resp = c.send(8, &commit).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    // Answered errors: a topic that exists, two produces to a partition
    // that does not (each partition's error counts).
    assert_eq!(c.create_topic("m", 1, &[]).await, 36);
    for i in 0..2 {
        assert_eq!(c.produce(9, "m", 7, batch(&[b"x"], i)).await.0, 3);
    }
    // A request at a version Weir does not serve closes its connection: a
    // failure (Metadata v20: key 3, version 20, correlation id 1, no client id).
    let mut bad = b.client().await;
    bad.send_raw(&[0, 0, 0, 10, 0, 3, 0, 20, 0, 0, 0, 1, 0xff, 0xff])
        .await;
    assert!(bad.is_closed().await);

    let text = scrape(&b).await;
    assert_eq!(
        sample(&text, "weir_requests_total{api=\"Produce\",version=\"9\"}"),
        Some(7.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "weir_request_duration_seconds_count{api=\"Produce\"}"
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(
            &text,
            "weir_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"}"
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(&text, "weir_requests_total{api=\"Fetch\",version=\"12\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "weir_request_failures_total{api=\"Metadata\",version=\"20\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "weir_response_errors_total{api=\"CreateTopics\",error=\"TOPIC_ALREADY_EXISTS\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "weir_response_errors_total{api=\"Produce\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"}"
        ),
        Some(2.0)
    );
    // Successful answers add nothing (NONE is not counted).
    assert!(!text.contains("weir_response_errors_total{api=\"Fetch\""));
    assert_eq!(
        sample(&text, "weir_topic_bytes_in_total{topic=\"m\"}"),
        Some(batch_bytes as f64)
    );
    assert_eq!(
        sample(&text, "weir_topic_bytes_out_total{topic=\"m\"}"),
        Some(fetched_bytes as f64)
    );
    assert_eq!(
        sample(
            &text,
            "weir_partition_log_end_offset{topic=\"m\",partition=\"0\"}"
        ),
        Some(10.0)
    );
    assert_eq!(
        sample(
            &text,
            "weir_partition_log_start_offset{topic=\"m\",partition=\"0\"}"
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            "weir_partition_size_bytes{topic=\"m\",partition=\"0\"}"
        )
        .unwrap()
            >= batch_bytes as f64
    );
    assert_eq!(
        sample(
            &text,
            "weir_group_committed_offset{group=\"g\",topic=\"m\",partition=\"0\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            "weir_group_lag{group=\"g\",topic=\"m\",partition=\"0\"}"
        ),
        Some(6.0)
    );
    assert!(sample(&text, "weir_connections").unwrap() >= 1.0);
    assert!(sample(&text, "weir_connections_total").unwrap() >= 2.0);
    assert!(text.contains("# TYPE weir_request_duration_seconds histogram"));
    b.stop().await;
}

/// Scrapes `/metrics` of an HTTP listener serving the test broker.
async fn scrape(b: &TestBroker) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(weir::http::serve(listener, b.broker.clone()));
    let (status, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(http(addr, "POST", "/metrics").await.0, 405);
    assert_eq!(http(addr, "GET", "/nothing").await.0, 404);
    // DNS rebinding: another name for a loopback listener is refused.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: evil.example:9644\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 421"), "{raw}");
    body
}
