//! `emulate-kafka-version`: a broker that advertises and serves what an
//! older Kafka release did.

mod common;

use common::*;
use kafka_protocol::messages::*;

#[tokio::test]
async fn an_emulated_2_8_broker_advertises_and_refuses_as_2_8_did() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.emulate_kafka_version = "2.8".into()).await;
    let mut c = b.client().await;
    let versions = c.send(3, &ApiVersionsRequest::default()).await;
    let find = |key: i16| versions.api_keys.iter().find(|a| a.api_key == key);
    let produce = find(0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 9));
    assert_eq!(find(3).unwrap().max_version, 11, "Metadata");
    assert!(find(68).is_none(), "no KIP-848 heartbeat in 2.8");
    assert!(find(78).is_none(), "no share fetch in 2.8");
    // What 2.8 served works; what came later closes the connection.
    assert_eq!(c.create_topic("e", 1, &[]).await, 0);
    assert_eq!(c.produce(9, "e", 0, batch(&[b"old"], 0)).await, (0, 0));
    assert!(c
        .try_send(10, &produce_request("e", 0, batch(&[b"new"], 0), -1))
        .await
        .is_none());
    let mut c = b.client().await;
    assert!(c
        .try_send(0, &ConsumerGroupHeartbeatRequest::default())
        .await
        .is_none());
    b.stop().await;
}

#[tokio::test]
async fn an_unknown_release_is_a_config_error() {
    let config = weir::Config {
        emulate_kafka_version: "1.0".into(),
        ..weir::Config::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("emulate-kafka-version") && err.contains("2.8"),
        "{err}"
    );
}

/// SASL keys are served at the emulated release's versions too: Kafka 2.1
/// had SaslAuthenticate v0 only, so v1 closes the connection there (on a
/// plain listener the answer to v0 is ILLEGAL_SASL_STATE), while Weir's own
/// table answers v1.
#[tokio::test]
async fn sasl_versions_follow_the_emulated_release() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), |c| c.emulate_kafka_version = "2.1".into()).await;
    let mut c = b.client().await;
    let r = c.send(0, &SaslAuthenticateRequest::default()).await;
    assert_eq!(r.error_code, 34, "ILLEGAL_SASL_STATE");
    let mut c = b.client().await;
    assert!(c
        .try_send(1, &SaslAuthenticateRequest::default())
        .await
        .is_none());
    b.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let r = c.send(1, &SaslAuthenticateRequest::default()).await;
    assert_eq!(r.error_code, 34);
    b.stop().await;
}
