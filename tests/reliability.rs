//! Connection hygiene and the request memory budget: idle connections are
//! closed, per-IP limits hold, and a flood of huge unfinished requests
//! cannot grow the broker's memory.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bytes::BufMut;
use common::*;
use kafka_protocol::messages::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn api_versions_ok(c: &mut Client) -> bool {
    c.try_send(3, &ApiVersionsRequest::default())
        .await
        .is_some_and(|r| r.error_code == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_busy_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.connections_max_idle_ms = 300).await;

    // Silent from the start: closed after the idle time, not before.
    let start = Instant::now();
    let mut silent = b.client().await;
    assert!(silent.is_closed().await);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // A partial request that stalls counts as idle.
    let mut partial = b.client().await;
    partial.send_raw(&[0, 0, 0, 40, 0, 18, 0, 3]).await;
    assert!(partial.is_closed().await, "stalled partial frame closed");

    // Requests every 100 ms keep a connection open well past 300 ms.
    let mut busy = b.client().await;
    for _ in 0..10 {
        assert!(api_versions_ok(&mut busy).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A request in flight is not idle: a 1 s long poll is answered.
    let mut poller = b.client().await;
    assert_eq!(poller.create_topic("t", 1, &[]).await, 0);
    let start = Instant::now();
    let resp = poller
        .try_send(12, &fetch_request("t", 0, 0, 1024, 1000, 1))
        .await
        .expect("answered, not closed");
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    assert!(start.elapsed() >= Duration::from_millis(900));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.max_connections_per_ip = 2).await;
    let mut first = b.client().await;
    let mut second = b.client().await;
    assert!(api_versions_ok(&mut first).await);
    assert!(api_versions_ok(&mut second).await);
    let mut third = b.client().await;
    assert!(
        third.is_closed().await,
        "third connection from one IP refused"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = b.client().await;
    assert!(
        api_versions_ok(&mut again).await,
        "a freed slot is reusable"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_larger_than_the_whole_budget_closes_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.queued_max_request_bytes = 1 << 20).await;
    let mut c = b.client().await;
    let mut f = bytes::BytesMut::new();
    f.put_i32(2 << 20);
    f.put_slice(&[0; 64]);
    c.send_raw(&f).await;
    assert!(c.is_closed().await);
    let mut ok = b.client().await;
    assert!(api_versions_ok(&mut ok).await);
    b.stop().await;
}

struct BrokerProcess {
    child: Child,
    addr: std::net::SocketAddr,
}

impl BrokerProcess {
    fn start() -> BrokerProcess {
        let (child, line) = spawn_weir(Stdio::null());
        BrokerProcess {
            child,
            addr: ready_addr(&line),
        }
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb / 1024.0
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 300 connections each announce a 100 MB request and send 2 MiB of it.
/// Without a budget the broker buffers all of it (610 MiB measured); with
/// the default 256 MiB budget only two requests may be read at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_huge_unfinished_requests_is_bounded() {
    let broker = BrokerProcess::start();
    let baseline = broker.rss_mib();
    let chunk = vec![7u8; 2 << 20];
    let mut flood = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(broker.addr).await.unwrap();
        s.write_all(&(100_000_000i32).to_be_bytes()).await.unwrap();
        flood.push(s);
    }
    let writes = flood.iter_mut().map(|s| {
        let chunk = &chunk;
        async move {
            // The broker stops reading once the budget is used: the write
            // then blocks on full socket buffers, which is the point.
            let _ = tokio::time::timeout(Duration::from_secs(3), s.write_all(chunk)).await;
        }
    });
    futures_join_all(writes).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = broker.rss_mib();
    eprintln!("broker RSS: {baseline:.1} MiB before, {during:.1} MiB under the flood");
    assert!(
        during < 100.0,
        "RSS {during:.1} MiB under the flood (budget 256 MiB)"
    );
    drop(flood);
    // Once the flood ends, ordinary clients are served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = Client::connect(broker.addr).await;
    assert!(api_versions_ok(&mut c).await);
    assert_eq!(c.create_topic("after-flood", 1, &[]).await, 0);
    let (err, offset) = c.produce(9, "after-flood", 0, batch(&[b"ok"], 0)).await;
    assert_eq!((err, offset), (0, 0));
}

/// `join_all` without a futures dependency: each future on its own task
/// would need 'static, so poll them together with a JoinSet of indices.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
