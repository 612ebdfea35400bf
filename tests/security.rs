//! Security over the raw protocol: the SASL state machine (handshake,
//! authenticate, raw v0 tokens, re-authentication, hostile frames), SCRAM
//! credentials, the ACL APIs and their enforcement, and TLS listeners.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir::config::ListenerConfig;
use weir::security::scram::{self, Mechanism};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn sasl_listener(mechanisms: &[&str]) -> ListenerConfig {
    ListenerConfig {
        address: "127.0.0.1:0".into(),
        security_protocol: "SASL_PLAINTEXT".into(),
        sasl_enabled_mechanisms: mechanisms.iter().map(|m| m.to_string()).collect(),
    }
}

fn users(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect()
}

async fn handshake(c: &mut Client, mechanism: &str) -> SaslHandshakeResponse {
    c.send(
        1,
        &SaslHandshakeRequest::default().with_mechanism(s(mechanism)),
    )
    .await
}

async fn authenticate(c: &mut Client, token: &[u8]) -> Option<SaslAuthenticateResponse> {
    c.try_send(
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
    .await
}

/// PLAIN over SaslHandshake v1 + SaslAuthenticate v2.
async fn login_plain(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> (Client, SaslAuthenticateResponse) {
    let mut c = Client::connect(addr).await;
    assert_eq!(handshake(&mut c, "PLAIN").await.error_code, 0);
    let r = authenticate(&mut c, format!("\0{user}\0{password}").as_bytes())
        .await
        .expect("an answer");
    (c, r)
}

/// A SCRAM client exchange; the error code of the last answer.
async fn login_scram(c: &mut Client, m: Mechanism, user: &str, password: &str) -> i16 {
    assert_eq!(handshake(c, m.name()).await.error_code, 0);
    let bare = format!("n={user},r=clientnonce42");
    let first = authenticate(c, format!("n,,{bare}").as_bytes())
        .await
        .unwrap();
    if first.error_code != 0 {
        return first.error_code;
    }
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    assert!(server_first.starts_with("r=clientnonce42"));
    let (last, expected) = scram::client_final(m, password, &bare, &server_first).unwrap();
    let last = authenticate(c, last.as_bytes()).await.unwrap();
    if last.error_code == 0 {
        assert_eq!(
            String::from_utf8(last.auth_bytes.to_vec()).unwrap(),
            format!("v={}", B64.encode(expected)),
            "the server proves it knows the credential"
        );
    }
    last.error_code
}

fn metadata() -> MetadataRequest {
    MetadataRequest::default().with_topics(None)
}

async fn api_keys(c: &mut Client) -> Vec<i16> {
    c.send(3, &ApiVersionsRequest::default())
        .await
        .api_keys
        .iter()
        .map(|k| k.api_key)
        .collect()
}

#[tokio::test]
async fn sasl_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    let (b, addrs) = TestBroker::start_listeners(dir.path(), |c| {
        c.listeners = vec![sasl_listener(&["PLAIN", "SCRAM-SHA-256"])];
        c.sasl_plain_users = users(&[("alice", "alice-secret")]);
    })
    .await;
    let (plain, sasl) = (addrs[0], addrs[1]);

    // SASL keys are advertised only where SASL is spoken.
    let keys = api_keys(&mut Client::connect(plain).await).await;
    assert!(!keys.contains(&17) && !keys.contains(&36));
    let mut c = Client::connect(sasl).await;
    let keys = api_keys(&mut c).await;
    assert!(keys.contains(&17) && keys.contains(&36));
    // Nothing but ApiVersions and SaslHandshake before authentication.
    assert!(c.try_send(12, &metadata()).await.is_none());

    // Unknown mechanism: the enabled list, then the connection closes.
    let mut c = Client::connect(sasl).await;
    let r = handshake(&mut c, "GSSAPI").await;
    assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
    let listed: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(listed, ["PLAIN", "SCRAM-SHA-256"]);
    assert!(c.is_closed().await);

    // Wrong password: SASL_AUTHENTICATION_FAILED, then closed, 100 ms
    // later (connection-failed-authentication-delay-ms).
    let (mut c, r) = login_plain(sasl, "alice", "wrong").await;
    let answered = std::time::Instant::now();
    assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
    let message = r.error_message.unwrap().to_string();
    assert!(
        !message.contains("wrong"),
        "no credentials echoed: {message}"
    );
    assert!(c.is_closed().await);
    assert!(answered.elapsed() >= Duration::from_millis(80));

    // Right password: requests flow, Metadata advertises this listener.
    let (mut c, r) = login_plain(sasl, "alice", "alice-secret").await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.session_lifetime_ms, 0, "no re-authentication configured");
    let md = c.send(12, &metadata()).await;
    assert_eq!(md.brokers[0].port, sasl.port() as i32);
    let md = Client::connect(plain).await.send(12, &metadata()).await;
    assert_eq!(md.brokers[0].port, plain.port() as i32);

    // SaslAuthenticate without a handshake, a second handshake in the middle
    // of an exchange: closed.
    let mut c = Client::connect(sasl).await;
    assert!(authenticate(&mut c, b"\0alice\0alice-secret")
        .await
        .is_none());
    let mut c = Client::connect(sasl).await;
    handshake(&mut c, "SCRAM-SHA-256").await;
    assert!(c
        .try_send(
            1,
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN"))
        )
        .await
        .is_none());

    // Raw tokens after SaslHandshake v0.
    let mut c = Client::connect(sasl).await;
    let r = c
        .send(
            0,
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        )
        .await;
    assert_eq!(r.error_code, 0);
    let token = b"\0alice\0alice-secret";
    let mut frame = BytesMut::new();
    frame.put_i32(token.len() as i32);
    frame.extend_from_slice(token);
    c.send_raw(&frame).await;
    assert_eq!(c.read_frame().await.unwrap().len(), 0, "an empty raw token");
    assert_eq!(c.send(12, &metadata()).await.brokers.len(), 1);

    // Hostile: an unauthenticated peer cannot make the broker buffer a
    // large frame (Kafka's sasl.server.max.receive.size), nor send garbage.
    let mut c = Client::connect(sasl).await;
    c.send_raw(&(600_000i32).to_be_bytes()).await;
    assert!(c.is_closed().await);
    let mut c = Client::connect(sasl).await;
    handshake(&mut c, "SCRAM-SHA-256").await;
    let r = authenticate(&mut c, &[0xff; 300]).await.unwrap();
    assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(c.is_closed().await);
    b.stop().await;
}

#[tokio::test]
async fn scram_credentials_and_login() {
    let dir = tempfile::tempdir().unwrap();
    let setup = |c: &mut weir::Config| {
        c.listeners = vec![sasl_listener(&["SCRAM-SHA-256", "SCRAM-SHA-512"])];
    };
    let (b, addrs) = TestBroker::start_listeners(dir.path(), setup).await;
    let mut admin = Client::connect(addrs[0]).await;
    let upsert = |m: Mechanism, iterations: i32, password: &str| {
        let salt = b"some-salt-bytes".to_vec();
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(s("bob"))
            .with_mechanism(m.code())
            .with_iterations(iterations)
            .with_salted_password(Bytes::from(m.salted_password(
                password.as_bytes(),
                &salt,
                iterations as u32,
            )))
            .with_salt(Bytes::from(salt))
    };
    // Too few iterations is refused; the good ones are stored.
    let r = admin
        .send(
            0,
            &AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert(
                Mechanism::Sha256,
                100,
                "pw",
            )]),
        )
        .await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::UnacceptableCredential.code()
    );
    let r = admin
        .send(
            0,
            &AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                upsert(Mechanism::Sha256, 4096, "bob-256"),
                upsert(Mechanism::Sha512, 8192, "bob-512"),
            ]),
        )
        .await;
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].error_code, 0);
    // Deleting what does not exist.
    let r = admin
        .send(
            0,
            &AlterUserScramCredentialsRequest::default().with_deletions(vec![
                alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                    .with_name(s("nobody"))
                    .with_mechanism(1),
            ]),
        )
        .await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::ResourceNotFound.code()
    );

    for (m, pw) in [
        (Mechanism::Sha256, "bob-256"),
        (Mechanism::Sha512, "bob-512"),
    ] {
        let mut c = Client::connect(addrs[1]).await;
        assert_eq!(login_scram(&mut c, m, "bob", pw).await, 0, "{}", m.name());
        assert_eq!(c.send(12, &metadata()).await.brokers.len(), 1);
        let mut c = Client::connect(addrs[1]).await;
        assert_eq!(
            login_scram(&mut c, m, "bob", "not-it").await,
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert!(c.is_closed().await);
    }
    let mut c = Client::connect(addrs[1]).await;
    assert_eq!(
        login_scram(&mut c, Mechanism::Sha256, "nobody", "x").await,
        ResponseError::SaslAuthenticationFailed.code()
    );

    // Durable, and never the password or salted password.
    b.stop().await;
    let file = std::fs::read_to_string(dir.path().join("meta/scram-credentials.json")).unwrap();
    assert!(!file.contains("bob-256"));
    let (b, addrs) = TestBroker::start_listeners(dir.path(), setup).await;
    let d = Client::connect(addrs[0])
        .await
        .send(
            0,
            &DescribeUserScramCredentialsRequest::default().with_users(None),
        )
        .await;
    assert_eq!(d.results.len(), 1);
    let mut infos: Vec<(i8, i32)> = d.results[0]
        .credential_infos
        .iter()
        .map(|i| (i.mechanism, i.iterations))
        .collect();
    infos.sort();
    assert_eq!(infos, [(1, 4096), (2, 8192)]);
    let mut c = Client::connect(addrs[1]).await;
    assert_eq!(
        login_scram(&mut c, Mechanism::Sha512, "bob", "bob-512").await,
        0
    );
    b.stop().await;
}

#[tokio::test]
async fn reauthentication() {
    let dir = tempfile::tempdir().unwrap();
    let (b, addrs) = TestBroker::start_listeners(dir.path(), |c| {
        c.listeners = vec![sasl_listener(&["PLAIN"])];
        c.sasl_plain_users = users(&[("alice", "a"), ("bob", "b")]);
        c.connections_max_reauth_ms = 400;
    })
    .await;
    let (mut c, r) = login_plain(addrs[1], "alice", "a").await;
    assert_eq!(r.session_lifetime_ms, 400);
    assert!(c.try_send(12, &metadata()).await.is_some());
    // Re-authenticated before the end: the connection lives on.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(handshake(&mut c, "PLAIN").await.error_code, 0);
    assert_eq!(
        authenticate(&mut c, b"\0alice\0a")
            .await
            .unwrap()
            .error_code,
        0
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(c.try_send(12, &metadata()).await.is_some());
    // Another principal on re-authentication is refused.
    assert_eq!(handshake(&mut c, "PLAIN").await.error_code, 0);
    let r = authenticate(&mut c, b"\0bob\0b").await.unwrap();
    assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(c.is_closed().await);
    // Not re-authenticated: closed at the next request.
    let (mut c, _) = login_plain(addrs[1], "alice", "a").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.try_send(12, &metadata()).await.is_none());
    b.stop().await;
}

fn acl(
    kind: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    op: i8,
    permission: i8,
) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(kind)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(permission)
}

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALTER: i8 = 7;
const ALLOW: i8 = 3;
const DENY: i8 = 2;

fn all_acls() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1)
}

#[tokio::test]
async fn acls_without_an_authorizer_are_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let r = c.send(3, &all_acls()).await;
    assert_eq!(r.error_code, ResponseError::SecurityDisabled.code());
    let r = c
        .send(
            3,
            &CreateAclsRequest::default()
                .with_creations(vec![acl(TOPIC, "t", LITERAL, "User:a", READ, ALLOW)]),
        )
        .await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::SecurityDisabled.code()
    );
    // And everything stays allowed.
    assert_eq!(c.create_topic("t", 1, &[]).await, 0);
    b.stop().await;
}

#[tokio::test]
async fn acls_are_enforced_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let setup = |c: &mut weir::Config| {
        c.listeners = vec![sasl_listener(&["PLAIN"])];
        c.sasl_plain_users = users(&[("admin", "adm"), ("alice", "ali")]);
        c.authorizer = "acl".into();
        c.super_users = vec!["User:admin".into()];
    };
    let (b, addrs) = TestBroker::start_listeners(dir.path(), setup).await;
    let sasl = addrs[1];
    let (mut admin, _) = login_plain(sasl, "admin", "adm").await;
    let (mut alice, _) = login_plain(sasl, "alice", "ali").await;
    assert_eq!(admin.create_topic("orders-eu", 1, &[]).await, 0);
    assert_eq!(admin.create_topic("payments", 1, &[]).await, 0);

    // alice may not manage ACLs, nor create topics, nor produce.
    let mine = CreateAclsRequest::default().with_creations(vec![
        acl(TOPIC, "orders", PREFIXED, "User:alice", WRITE, ALLOW),
        acl(TOPIC, "payments", LITERAL, "User:*", READ, ALLOW),
        acl(TOPIC, "payments", LITERAL, "User:alice", READ, DENY),
        acl(GROUP, "g1", LITERAL, "User:alice", READ, ALLOW),
    ]);
    let r = alice.send(3, &mine).await;
    assert!(r
        .results
        .iter()
        .all(|r| r.error_code == ResponseError::ClusterAuthorizationFailed.code()));
    assert_eq!(
        alice.create_topic("mine", 1, &[]).await,
        ResponseError::TopicAuthorizationFailed.code()
    );
    let (code, _) = alice.produce(9, "orders-eu", 0, batch(&[b"x"], 0)).await;
    assert_eq!(code, ResponseError::TopicAuthorizationFailed.code());
    assert!(
        alice.send(12, &metadata()).await.topics.is_empty(),
        "nothing visible"
    );

    // Invalid ACLs are refused one by one; the valid ones are created.
    let r = admin
        .send(
            3,
            &CreateAclsRequest::default().with_creations(vec![
                acl(
                    CLUSTER,
                    "not-kafka-cluster",
                    LITERAL,
                    "User:alice",
                    ALTER,
                    ALLOW,
                ),
                acl(TOPIC, "t", LITERAL, "alice", READ, ALLOW),
                acl(GROUP, "g", LITERAL, "User:alice", WRITE, ALLOW),
            ]),
        )
        .await;
    assert!(r
        .results
        .iter()
        .all(|r| r.error_code == ResponseError::InvalidRequest.code()));
    let r = admin.send(3, &mine).await;
    assert!(r.results.iter().all(|r| r.error_code == 0), "{r:?}");

    // Prefixed WRITE: orders-* only; WRITE implies DESCRIBE in Metadata.
    let (code, _) = alice.produce(9, "orders-eu", 0, batch(&[b"x"], 0)).await;
    assert_eq!(code, 0);
    let (code, _) = alice.produce(9, "payments", 0, batch(&[b"x"], 0)).await;
    assert_eq!(code, ResponseError::TopicAuthorizationFailed.code());
    let names: Vec<String> = alice
        .send(12, &metadata())
        .await
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().to_string())
        .collect();
    // payments stays visible: DESCRIBE comes from the wildcard READ, and a
    // DENY applies to its own operation only (Kafka's rule).
    assert_eq!(names, ["orders-eu", "payments"]);
    // The DENY wins over the wildcard ALLOW: no fetch of payments.
    let f = alice
        .send(12, &fetch_request("payments", 0, 0, 1 << 20, 0, 0))
        .await;
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        ResponseError::TopicAuthorizationFailed.code()
    );

    // A transactional batch without a transactional id the caller may
    // WRITE is refused before it reaches the partition (Kafka's
    // hasTransactionalRecords check): topic WRITE is not enough to append
    // into someone's transaction.
    let mut txn_batch = BytesMut::from(&batch_with(&[b"x"], 0, 1000, 0, 0)[..]);
    txn_batch[22] |= 0x10;
    let crc = crc32c::crc32c(&txn_batch[21..]);
    txn_batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let (code, _) = alice.produce(9, "orders-eu", 0, txn_batch.freeze()).await;
    assert_eq!(
        code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );

    // Groups: READ on g1 only.
    let commit = |group: &str| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic("orders-eu"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(1),
                    ]),
            ])
    };
    let r = alice.send(8, &commit("g2")).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::GroupAuthorizationFailed.code()
    );
    let r = alice.send(8, &commit("g1")).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::TopicAuthorizationFailed.code(),
        "no READ on orders-eu"
    );
    let fc = alice
        .send(
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s("g2")]),
        )
        .await;
    assert_eq!(
        fc.coordinators[0].error_code,
        ResponseError::GroupAuthorizationFailed.code()
    );
    // Share groups: READ on the group is not READ on the topic.
    let md = alice.send(12, &metadata()).await;
    let orders_id = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "orders-eu"))
        .unwrap()
        .topic_id;
    let sf = alice
        .send(
            1,
            &ShareFetchRequest::default()
                .with_group_id(Some(GroupId(s("g1"))))
                .with_member_id(Some(s("m1")))
                .with_share_session_epoch(0)
                .with_max_bytes(1 << 20)
                .with_max_records(10)
                .with_batch_size(10)
                .with_topics(vec![share_fetch_request::FetchTopic::default()
                    .with_topic_id(orders_id)
                    .with_partitions(vec![
                        share_fetch_request::FetchPartition::default().with_partition_index(0),
                    ])]),
        )
        .await;
    assert_eq!(
        sf.responses[0].partitions[0].error_code,
        ResponseError::TopicAuthorizationFailed.code()
    );
    assert!(sf.responses[0].partitions[0]
        .records
        .as_ref()
        .is_none_or(|r| r.is_empty()));

    // Idempotent producer: WRITE on some topic is enough (KIP-679); a
    // transactional id needs its own ACL.
    let pid = alice
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1),
        )
        .await;
    assert_eq!(pid.error_code, 0);
    let pid = alice
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(10_000),
        )
        .await;
    assert_eq!(
        pid.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    // Authorized operations reflect the decision: READ/WRITE/DESCRIBE bits.
    let md = alice
        .send(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(topic("orders-eu")))]))
                .with_include_topic_authorized_operations(true),
        )
        .await;
    assert_eq!(md.topics[0].topic_authorized_operations, 1 << 4 | 1 << 8);

    // Persisted: the same ACLs after a restart; deleting revokes.
    b.stop().await;
    let (b, addrs) = TestBroker::start_listeners(dir.path(), setup).await;
    let (mut admin, _) = login_plain(addrs[1], "admin", "adm").await;
    let listed = admin.send(3, &all_acls()).await;
    assert_eq!(listed.error_code, 0);
    let count: usize = listed.resources.iter().map(|r| r.acls.len()).sum();
    assert_eq!(count, 4);
    let del = admin
        .send(
            3,
            &DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(TOPIC)
                    .with_resource_name_filter(Some(s("orders-eu")))
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_pattern_type_filter(2) // MATCH
                    .with_operation(1)
                    .with_permission_type(1),
            ]),
        )
        .await;
    assert_eq!(del.filter_results[0].matching_acls.len(), 1);
    let (mut alice, _) = login_plain(addrs[1], "alice", "ali").await;
    let (code, _) = alice.produce(9, "orders-eu", 0, batch(&[b"x"], 0)).await;
    assert_eq!(code, ResponseError::TopicAuthorizationFailed.code());
    b.stop().await;
}

/// A TLS listener with a CA-signed server certificate; mTLS required.
#[tokio::test]
async fn tls_listener_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "weir test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issue = |names: Vec<String>, cn: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(names).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Weir Test");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        (p.signed_by(&key, &ca, &ca_key).unwrap(), key)
    };
    let (server, server_key) = issue(vec!["localhost".into(), "127.0.0.1".into()], "broker");
    let (client, client_key) = issue(vec![], "client1");
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    std::fs::write(path("server.pem"), server.pem()).unwrap();
    std::fs::write(path("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    let data = dir.path().join("data");
    let (b, addrs) = TestBroker::start_listeners(&data, |c| {
        c.listeners = vec![ListenerConfig {
            address: "127.0.0.1:0".into(),
            security_protocol: "SSL".into(),
            sasl_enabled_mechanisms: vec![],
        }];
        c.ssl_certificate_location = path("server.pem");
        c.ssl_key_location = path("server.key");
        c.ssl_client_auth = "required".into();
        c.ssl_truststore_location = path("ca.pem");
        c.authorizer = "acl".into();
        c.super_users = vec!["User:CN=client1,O=Weir Test".into()];
    })
    .await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let connect = |with_cert: bool| {
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone());
        let config = if with_cert {
            builder
                .with_client_auth_cert(
                    vec![client.der().clone()],
                    rustls::pki_types::PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let addr = addrs[1];
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await
        }
    };
    // With the client certificate: the principal is its subject, a super
    // user here, so creating ACLs is allowed.
    let mut tls = connect(true).await.expect("TLS handshake");
    let mut enc = Client::connect(addrs[0]).await;
    let frame = enc.encode(
        3,
        &CreateAclsRequest::default()
            .with_creations(vec![acl(TOPIC, "t", LITERAL, "User:x", READ, ALLOW)]),
    );
    tls.write_all(&frame).await.unwrap();
    let mut len = [0u8; 4];
    tls.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    tls.read_exact(&mut body).await.unwrap();
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, 1).unwrap();
    let r = CreateAclsResponse::decode(&mut body, 3).unwrap();
    assert_eq!(r.results[0].error_code, 0, "{r:?}");
    // The same request over PLAINTEXT is ANONYMOUS: refused.
    let r = Client::connect(addrs[0])
        .await
        .send(
            3,
            &CreateAclsRequest::default()
                .with_creations(vec![acl(TOPIC, "t", LITERAL, "User:y", READ, ALLOW)]),
        )
        .await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    // No client certificate: the handshake fails (or the first read does).
    let refused = match connect(false).await {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(&frame).await;
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.is_err()
        }
    };
    assert!(refused, "mTLS without a certificate must fail");
    b.stop().await;
}

/// The tools' client (`--command-config`) over SASL SCRAM and TLS.
#[tokio::test]
async fn the_tools_client_speaks_sasl_and_tls() {
    use weir::client::{Client, ClientSecurity};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    std::fs::write(path("server.pem"), server.pem()).unwrap();
    std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    let (b, addrs) = TestBroker::start_listeners(&dir.path().join("data"), |c| {
        c.listeners = vec![ListenerConfig {
            address: "127.0.0.1:0".into(),
            security_protocol: "SASL_SSL".into(),
            sasl_enabled_mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-512".into()],
        }];
        c.ssl_certificate_location = path("server.pem");
        c.ssl_key_location = path("server.key");
        c.sasl_plain_users = users(&[("admin", "adm")]);
        // SSL listeners only: SASL_SSL clients bring no certificate (KIP-684).
        c.ssl_client_auth = "required".into();
        c.ssl_truststore_location = path("ca.pem");
    })
    .await;
    let boot = addrs[1].to_string();
    let plain = ClientSecurity::from_properties(&format!(
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=admin\n\
         sasl.password=adm\nssl.ca.location={}\n",
        path("ca.pem")
    ))
    .unwrap();
    let mut admin = Client::connect_with(&boot, plain).await.unwrap();
    // Create a SCRAM user through the secured connection.
    let m = Mechanism::Sha512;
    let salt = b"0123456789".to_vec();
    let upsert = alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
        .with_name(s("tool"))
        .with_mechanism(m.code())
        .with_iterations(4096)
        .with_salted_password(Bytes::from(m.salted_password(b"tool-pw", &salt, 4096)))
        .with_salt(Bytes::from(salt));
    let r = admin
        .any()
        .await
        .unwrap()
        .send(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert]))
        .await
        .unwrap();
    assert_eq!(r.results[0].error_code, 0);
    let jaas = |pw: &str| {
        ClientSecurity::from_properties(&format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"tool\" password=\"{pw}\";\n\
             ssl.ca.location={}\n",
            path("ca.pem")
        ))
        .unwrap()
    };
    let mut tool = Client::connect_with(&boot, jaas("tool-pw")).await.unwrap();
    tool.metadata(None, false).await.unwrap();
    // A fresh connection to the advertised address: this same listener.
    let conn = tool.broker(1).await.unwrap();
    assert_eq!(conn.addr(), format!("127.0.0.1:{}", addrs[1].port()));
    conn.send(&ApiVersionsRequest::default()).await.unwrap();
    let err = Client::connect_with(&boot, jaas("nope"))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("SASL_AUTHENTICATION_FAILED"),
        "{err}"
    );
    // Without TLS settings, the SASL_SSL listener is unreachable.
    assert!(Client::connect(&boot).await.is_err());
    b.stop().await;
}
