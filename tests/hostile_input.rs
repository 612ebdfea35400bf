//! Hostile network input: every bad frame closes that one connection (or
//! gets a Kafka error), never panics or aborts the broker, never allocates
//! beyond the configured frame limit.

mod common;

use bytes::{BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::*;

fn frame(body: &[u8]) -> BytesMut {
    let mut f = BytesMut::new();
    f.put_i32(body.len() as i32);
    f.extend_from_slice(body);
    f
}

async fn still_serving(b: &TestBroker) {
    let mut c = b.client().await;
    let r = c.send(3, &ApiVersionsRequest::default()).await;
    assert_eq!(r.error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.socket_request_max_bytes = 4096).await;
    let cases: Vec<(&str, BytesMut)> = vec![
        // Claims 1 GiB: refused before allocating.
        ("oversized frame", {
            let mut f = BytesMut::new();
            f.put_i32(1 << 30);
            f.put_slice(&[0; 16]);
            f
        }),
        ("negative size", {
            let mut f = BytesMut::new();
            f.put_i32(-5);
            f
        }),
        ("short header", frame(&[0, 3, 0])),
        (
            "unknown api key",
            frame(&[0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff]),
        ),
        // Metadata v0 whose topic array claims 54 million entries in 8 bytes
        // (aborted the process with upstream kafka-protocol 0.18).
        (
            "huge array count",
            frame(&[
                0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x03, 0x3c, 0x0c, 0x00, 0xb6,
            ]),
        ),
        (
            "huge string length",
            frame(&[0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 1, 2]),
        ),
        (
            "produce v2 (advertised for old clients, never served)",
            frame(&[0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 0, 0, 0, 0]),
        ),
        (
            "fetch v3 (below the served range)",
            frame(&[0, 1, 0, 3, 0, 0, 0, 1, 0xff, 0xff]),
        ),
        (
            "truncated body",
            frame(&[0, 19, 0, 7, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 1]),
        ),
    ];
    for (what, bytes) in cases {
        let mut c = b.client().await;
        c.send_raw(&bytes).await;
        assert!(c.is_closed().await, "{what}: connection should be closed");
        still_serving(&b).await;
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_never_takes_the_broker_down() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.socket_request_max_bytes = 1 << 16).await;
    // A small deterministic generator: reproducible, no extra crate.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let len = (next() % 200) as usize + 8;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Aim at real API keys and versions so decoders are exercised.
        let key = (next() % 70) as i16;
        body[0..2].copy_from_slice(&key.to_be_bytes());
        body[2..4].copy_from_slice(&((next() % 14) as i16).to_be_bytes());
        let mut c = b.client().await;
        c.send_raw(&frame(&body)).await;
        // Either an answer or a close; both are fine, a hang is not.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), c.read_frame())
            .await
            .expect("no hang");
    }
    still_serving(&b).await;
    b.stop().await;
}
