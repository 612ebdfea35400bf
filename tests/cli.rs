//! The `weir` binary itself: readiness line, config errors, ephemeral mode,
//! graceful exit on SIGTERM, advertised addresses.

mod common;

use std::process::{Command, Stdio};

use kafka_protocol::messages::MetadataRequest;

const BIN: &str = env!("CARGO_BIN_EXE_weir");

#[test]
fn invalid_config_names_the_key_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "num-partitions = 0\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--ephemeral", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("num-partitions"));
    std::fs::write(&cfg, "log-segment-bytes = \"big\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--ephemeral", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log-segment-bytes"));
}

#[test]
fn ephemeral_serves_then_exits_zero_on_sigterm_and_cleans_up() {
    let (mut child, line) = common::spawn_weir(Stdio::null());
    assert!(
        line.starts_with("weir ready: listening on 127.0.0.1:"),
        "{line}"
    );
    let data_dir = line
        .split("(data dir ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .to_string();
    assert!(std::path::Path::new(&data_dir).exists());
    let addr = common::ready_addr(&line);
    std::net::TcpStream::connect(addr).unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        !std::path::Path::new(&data_dir).exists(),
        "ephemeral dir removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_listener_advertises_the_connected_address_unless_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::TestBroker::start_with(dir.path(), |c| c.listen = "0.0.0.0:0".into()).await;
    // The listener is bound to 0.0.0.0: connect via loopback explicitly.
    let mut c = common::Client::connect(([127, 0, 0, 1], b.addr.port()).into()).await;
    let r = c
        .send(12, &MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1");
    b.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let b =
        common::TestBroker::start_with(dir.path(), |c| c.advertised_host = "kafka.example".into())
            .await;
    let mut c = b.client().await;
    let r = c
        .send(12, &MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(r.brokers[0].host.as_str(), "kafka.example");
    b.stop().await;
}
