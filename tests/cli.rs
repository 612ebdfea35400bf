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

/// `weir serve --emulate-kafka-version` (the flag, over an empty config):
/// ApiVersions answers as Kafka 4.0 did, an unknown release stops start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_flag_emulates_a_release() {
    let (mut child, line) =
        common::spawn_weir_with(&["--emulate-kafka-version", "4.0"], Stdio::null());
    let mut c = common::Client::connect(common::ready_addr(&line)).await;
    let versions = c
        .send(3, &kafka_protocol::messages::ApiVersionsRequest::default())
        .await;
    let find = |key: i16| {
        versions
            .api_keys
            .iter()
            .find(|a| a.api_key == key)
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(find(0), Some((0, 12)), "Produce as 4.0 advertised it");
    assert_eq!(find(1), Some((4, 17)), "Fetch");
    assert_eq!(find(78), None, "share groups were unstable in 4.0");
    child.kill().unwrap();
    child.wait().unwrap();

    let out = Command::new(BIN)
        .args(["serve", "--ephemeral", "--emulate-kafka-version", "2.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("emulate-kafka-version") && err.contains("4.2"),
        "{err}"
    );
}

/// An `http-listen` address already in use: the broker logs a warning,
/// runs without HTTP (the readiness line says no HTTP address) and serves
/// Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_http_address_warns_and_the_broker_serves_kafka() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("weir.toml");
    std::fs::write(&cfg, format!("http-listen = \"{addr}\"\n")).unwrap();
    let (mut child, line) =
        common::spawn_weir_with(&["--config", cfg.to_str().unwrap()], Stdio::piped());
    assert!(line.starts_with("weir ready: listening on"), "{line}");
    assert!(!line.contains("HTTP on"), "{line}");
    let mut c = common::Client::connect(common::ready_addr(&line)).await;
    let r = c
        .send(12, &MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(r.brokers.len(), 1);
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("http-listen") && log.contains(&addr) && log.contains("WARN"),
        "{log}"
    );
    drop(taken);
}
