//! Request framing above the byte stream: header decode, dispatch by API key
//! through the ONE table of supported APIs ([`SUPPORTED_APIS`], which
//! ApiVersions reports verbatim), and response encoding.
//!
//! Versions: each row advertises a range; the range actually served is that
//! range clipped to what the request struct can decode
//! (`<Req as Message>::VERSIONS`). The only row advertising more than it
//! serves is Produce (advertised from v0 because librdkafka < 2.11.1 enables
//! compression only when Produce v0 is in range; v0-2 requests, which no
//! current client sends, close the connection).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, VersionRange};

use crate::broker::{Broker, RequestContext};
use crate::faults;
use crate::handlers;
use crate::security::sasl::{self, AuthState, HandshakeError};
use crate::security::Listener;

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("request frame of {0} bytes is too short for a header")]
    ShortFrame(usize),
    #[error("unsupported API key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of API {key:?} (served {min}..={max})")]
    UnsupportedVersion {
        key: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        source: anyhow::Error,
    },
    #[error("cannot encode {key:?} v{version} response: {source}")]
    Encode {
        key: ApiKey,
        version: i16,
        source: anyhow::Error,
    },
    #[error("acks=0 produce failed: {0}")]
    Acks0Failure(String),
    #[error("SASL: {0}")]
    Sasl(String),
}

/// Per-connection facts handlers may need.
pub struct Connection {
    pub broker: Arc<Broker>,
    pub local_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    /// Unique per connection (share sessions live and die with it).
    pub id: u64,
    /// The listener it arrived on.
    pub listener: Arc<Listener>,
    /// Who it is and its SASL progress. A std mutex: taken briefly per
    /// request, never across an await.
    pub auth: Mutex<AuthState>,
}

impl Connection {
    fn auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The largest frame to accept now: Kafka's
    /// `sasl.server.max.receive.size` until SASL authentication completes.
    pub fn max_frame(&self, configured: usize) -> usize {
        // Checked per frame: listeners without SASL never take the lock.
        if !self.listener.protocol.sasl() || self.auth().authenticated() {
            configured
        } else {
            configured.min(sasl::MAX_RECEIVE_BEFORE_AUTH)
        }
    }
}

/// A handler's answer: `None` sends nothing (acks=0 Produce).
pub type HandlerResult<R> = Result<Option<R>, ProtocolError>;

/// A framed response that is not ready yet (an empty buffer: no response).
pub type DeferredResponse =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<BytesMut, ProtocolError>> + Send>>;

/// What handling a frame produced.
pub enum Handled {
    /// Done; `true` if a response was written to the output buffer.
    Answered(bool),
    /// A Produce whose batches are appended but whose acknowledgement waits
    /// for an fsync. Its response must still go out in request order.
    Deferred(DeferredResponse),
    /// A response was written; then close the connection (failed SASL).
    Close,
    /// Close the connection without answering (an injected fault).
    Disconnect,
}

/// One row of the API table.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub key: ApiKey,
    /// Advertised in ApiVersions.
    pub advertised: VersionRange,
    /// Actually decoded and answered.
    pub served: VersionRange,
}

macro_rules! api_table {
    ($( $key:ident : $req:ty => $handler:path, advertise $min:literal ..= $max:literal; )*) => {
        /// Every API Weir serves, with advertised and served versions.
        pub static SUPPORTED_APIS: &[ApiSupport] = &[$(
            ApiSupport {
                key: ApiKey::$key,
                advertised: VersionRange { min: $min, max: $max },
                served: VersionRange {
                    min: if $min > <$req as Message>::VERSIONS.min { $min } else { <$req as Message>::VERSIONS.min },
                    max: if $max < <$req as Message>::VERSIONS.max { $max } else { <$req as Message>::VERSIONS.max },
                },
            },
        )*];

        /// Decodes, handles and encodes one request; `throttle_ms` (an
        /// injected fault) goes into the response.
        async fn dispatch(ctx: &RequestContext, key: ApiKey, correlation_id: i32, body: &mut Bytes, out: &mut BytesMut, throttle_ms: i32) -> Result<bool, ProtocolError> {
            let version = ctx.api_version;
            match key {
                $(ApiKey::$key => {
                    let req = <$req as Decodable>::decode(body, version)
                        .map_err(|source| ProtocolError::Malformed { what: stringify!($req), source })?;
                    match $handler(ctx, req).await? {
                        Some(mut resp) => {
                            if throttle_ms > 0 {
                                resp.throttle_time_ms = throttle_ms;
                            }
                            ctx.broker.metrics.response_errors(key, &resp);
                            encode_response(key, version, correlation_id, &resp, out).map(|_| true)
                        }
                        None => Ok(false),
                    }
                })*
                other => Err(ProtocolError::UnknownApi(other as i16)),
            }
        }
    };
}

api_table! {
    Produce: ProduceRequest => handlers::produce::handle, advertise 0..=13;
    Fetch: FetchRequest => handlers::fetch::handle, advertise 4..=18;
    ListOffsets: ListOffsetsRequest => handlers::offsets::list_offsets, advertise 1..=10;
    Metadata: MetadataRequest => handlers::metadata::handle, advertise 0..=13;
    OffsetCommit: OffsetCommitRequest => handlers::groups::offset_commit, advertise 2..=9;
    OffsetFetch: OffsetFetchRequest => handlers::groups::offset_fetch, advertise 1..=9;
    FindCoordinator: FindCoordinatorRequest => handlers::groups::find_coordinator, advertise 0..=6;
    JoinGroup: JoinGroupRequest => handlers::groups::join_group, advertise 0..=9;
    Heartbeat: HeartbeatRequest => handlers::groups::heartbeat, advertise 0..=4;
    LeaveGroup: LeaveGroupRequest => handlers::groups::leave_group, advertise 0..=5;
    SyncGroup: SyncGroupRequest => handlers::groups::sync_group, advertise 0..=5;
    DescribeGroups: DescribeGroupsRequest => handlers::groups::describe_groups, advertise 0..=6;
    ListGroups: ListGroupsRequest => handlers::groups::list_groups, advertise 0..=5;
    ApiVersions: ApiVersionsRequest => handlers::api_versions::handle, advertise 0..=4;
    CreateTopics: CreateTopicsRequest => handlers::topics::create_topics, advertise 2..=7;
    DeleteTopics: DeleteTopicsRequest => handlers::topics::delete_topics, advertise 1..=6;
    DeleteRecords: DeleteRecordsRequest => handlers::topics::delete_records, advertise 0..=2;
    OffsetForLeaderEpoch: OffsetForLeaderEpochRequest => handlers::offsets::offset_for_leader_epoch, advertise 2..=4;
    DescribeConfigs: DescribeConfigsRequest => handlers::configs::describe_configs, advertise 1..=4;
    AlterConfigs: AlterConfigsRequest => handlers::configs::alter_configs, advertise 0..=2;
    CreatePartitions: CreatePartitionsRequest => handlers::topics::create_partitions, advertise 0..=3;
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => handlers::configs::incremental_alter_configs, advertise 0..=1;
    InitProducerId: InitProducerIdRequest => handlers::producer::init_producer_id, advertise 0..=5;
    DeleteGroups: DeleteGroupsRequest => handlers::groups::delete_groups, advertise 0..=2;
    OffsetDelete: OffsetDeleteRequest => handlers::groups::offset_delete, advertise 0..=0;
    DescribeCluster: DescribeClusterRequest => handlers::cluster::describe_cluster, advertise 0..=2;
    AddPartitionsToTxn: AddPartitionsToTxnRequest => handlers::txn::add_partitions_to_txn, advertise 0..=5;
    AddOffsetsToTxn: AddOffsetsToTxnRequest => handlers::txn::add_offsets_to_txn, advertise 0..=4;
    EndTxn: EndTxnRequest => handlers::txn::end_txn, advertise 0..=5;
    TxnOffsetCommit: TxnOffsetCommitRequest => handlers::txn::txn_offset_commit, advertise 0..=5;
    DescribeAcls: DescribeAclsRequest => handlers::security::describe_acls, advertise 0..=3;
    CreateAcls: CreateAclsRequest => handlers::security::create_acls, advertise 0..=3;
    DeleteAcls: DeleteAclsRequest => handlers::security::delete_acls, advertise 0..=3;
    DescribeUserScramCredentials: DescribeUserScramCredentialsRequest => handlers::security::describe_user_scram_credentials, advertise 0..=0;
    AlterUserScramCredentials: AlterUserScramCredentialsRequest => handlers::security::alter_user_scram_credentials, advertise 0..=0;
    DescribeProducers: DescribeProducersRequest => handlers::txn::describe_producers, advertise 0..=0;
    DescribeTransactions: DescribeTransactionsRequest => handlers::txn::describe_transactions, advertise 0..=0;
    ListTransactions: ListTransactionsRequest => handlers::txn::list_transactions, advertise 0..=1;
    ConsumerGroupHeartbeat: ConsumerGroupHeartbeatRequest => handlers::consumer::consumer_group_heartbeat, advertise 0..=1;
    ConsumerGroupDescribe: ConsumerGroupDescribeRequest => handlers::consumer::consumer_group_describe, advertise 0..=1;
    ShareGroupHeartbeat: ShareGroupHeartbeatRequest => handlers::share::share_group_heartbeat, advertise 1..=1;
    ShareGroupDescribe: ShareGroupDescribeRequest => handlers::share::share_group_describe, advertise 1..=1;
    ShareFetch: ShareFetchRequest => handlers::share::share_fetch, advertise 1..=1;
    ShareAcknowledge: ShareAcknowledgeRequest => handlers::share::share_acknowledge, advertise 1..=1;
    DescribeShareGroupOffsets: DescribeShareGroupOffsetsRequest => handlers::share::describe_share_group_offsets, advertise 0..=0;
    AlterShareGroupOffsets: AlterShareGroupOffsetsRequest => handlers::share::alter_share_group_offsets, advertise 0..=0;
    DeleteShareGroupOffsets: DeleteShareGroupOffsetsRequest => handlers::share::delete_share_group_offsets, advertise 0..=0;
}

pub fn find_api(key: i16) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|a| a.key as i16 == key)
}

pub mod kafka_versions;
pub(crate) mod response_errors;

/// The API table a broker answers with: Weir's own ([`SUPPORTED_APIS`]),
/// or, with `emulate-kafka-version`, each API limited to the versions that
/// Kafka release's broker advertised ([`kafka_versions::KAFKA_RELEASES`],
/// generated from Kafka's message specs). An API the release did not have
/// is neither advertised nor served; versions beyond the release's are
/// refused as that release refused them (the connection closes).
pub fn api_table(emulate: &str) -> Result<Vec<ApiSupport>, String> {
    if emulate.is_empty() {
        return Ok(SUPPORTED_APIS.to_vec());
    }
    let release = emulation_release(emulate)?;
    let limit = |r: VersionRange, lo: i16, hi: i16| VersionRange {
        min: r.min.max(lo),
        max: r.max.min(hi),
    };
    Ok(SUPPORTED_APIS
        .iter()
        .filter_map(|a| {
            let &(_, lo, hi) = release.iter().find(|(k, ..)| *k == a.key as i16)?;
            let advertised = limit(a.advertised, lo, hi);
            (!advertised.is_empty()).then_some(ApiSupport {
                key: a.key,
                advertised,
                served: limit(a.served, lo, hi),
            })
        })
        .collect())
}

/// The (key, min, max) table of an emulated release.
pub fn emulation_release(emulate: &str) -> Result<&'static [(i16, i16, i16)], String> {
    kafka_versions::KAFKA_RELEASES
        .iter()
        .find(|r| r.name == emulate)
        .map(|r| r.apis)
        .ok_or_else(|| {
            let known: Vec<&str> = kafka_versions::KAFKA_RELEASES
                .iter()
                .map(|r| r.name)
                .collect();
            format!(
                "unknown Kafka release {emulate:?}; one of {}",
                known.join(", ")
            )
        })
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Handles one request frame, writing the framed response into `out` or
/// returning it deferred. `Answered(false)`: no response is due (acks=0).
/// `Err`: close the connection.
pub async fn handle_frame(
    conn: &Connection,
    frame: Bytes,
    out: &mut BytesMut,
) -> Result<Handled, ProtocolError> {
    let started = Instant::now();
    // A raw SASL token (after a v0 handshake) has no request header.
    let header = (frame.len() >= 4
        && !(conn.listener.protocol.sasl() && conn.auth().expects_raw_token()))
    .then(|| (be_i16(&frame, 0), be_i16(&frame, 2)));
    let result = handle_request(conn, frame, out).await;
    let Some((key, version)) = header else {
        return result;
    };
    match result {
        // Counted when the response is ready (after its fsync).
        Ok(Handled::Deferred(inner)) => {
            let broker = conn.broker.clone();
            Ok(Handled::Deferred(Box::pin(async move {
                let r = inner.await;
                broker
                    .metrics
                    .record(key, version, started.elapsed(), r.is_ok());
                r
            })))
        }
        other => {
            let ok = other.is_ok();
            conn.broker
                .metrics
                .record(key, version, started.elapsed(), ok);
            other
        }
    }
}

/// [`handle_frame`] without the metrics.
async fn handle_request(
    conn: &Connection,
    frame: Bytes,
    out: &mut BytesMut,
) -> Result<Handled, ProtocolError> {
    if conn.auth().expects_raw_token() {
        return raw_sasl_token(conn, &frame, out);
    }
    if frame.len() < 8 {
        return Err(ProtocolError::ShortFrame(frame.len()));
    }
    let raw_key = be_i16(&frame, 0);
    let version = be_i16(&frame, 2);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if raw_key == sasl::SASL_HANDSHAKE || raw_key == sasl::SASL_AUTHENTICATE {
        return handle_sasl(conn, raw_key, version, correlation_id, frame, out);
    }
    // Nothing is processed before SASL authentication completes.
    let principal = {
        let auth = conn.auth();
        auth.admit(raw_key, Instant::now())
            .map_err(|e| ProtocolError::Sasl(e.into()))?;
        auth.principal().clone()
    };
    let Some(api) = conn.broker.find_api(raw_key) else {
        return Err(ProtocolError::UnknownApi(raw_key));
    };
    let key = api.key;
    if version < api.served.min || version > api.served.max {
        if key == ApiKey::ApiVersions && version > api.served.max {
            // A newer client than us: answer in v0 so it can downgrade.
            unsupported_api_versions(&conn.broker.apis, correlation_id, out);
            return Ok(Handled::Answered(true));
        }
        return Err(ProtocolError::UnsupportedVersion {
            key,
            version,
            min: api.served.min,
            max: api.served.max,
        });
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(version)).map_err(
        |source| ProtocolError::Malformed {
            what: "request header",
            source,
        },
    )?;
    let ctx = RequestContext {
        broker: conn.broker.clone(),
        local_addr: conn.local_addr,
        peer_addr: conn.peer_addr,
        connection_id: conn.id,
        api_version: version,
        client_id: header.client_id.as_ref().map(|s| s.to_string()),
        principal,
        listener: conn.listener.clone(),
    };
    // Injected faults (`/v1/faults`): the request's topics are decoded
    // only when a rule for this API names a topic.
    let mut throttle_ms = 0;
    let logs = &conn.broker.logs;
    match conn.broker.faults.take(key, || {
        faults::request_topics(key, version, &body, |id| {
            logs.topic_by_id(id).map(|t| t.name.clone())
        })
    }) {
        None => {}
        Some(faults::Action::Delay(d)) => tokio::time::sleep(d).await,
        Some(faults::Action::Disconnect) => return Ok(Handled::Disconnect),
        Some(faults::Action::Throttle(ms)) => throttle_ms = ms,
        Some(faults::Action::Error(code)) => {
            conn.broker.metrics.response_error(key, code);
            return faults::error_response(key, version, correlation_id, body, code, out)
                .map(|_| Handled::Answered(true));
        }
    }
    if key == ApiKey::ApiVersions {
        // Lenient: a v3+ body we cannot parse (odd client_software_name)
        // still gets the version list.
        let req = ApiVersionsRequest::decode(&mut body, version).unwrap_or_default();
        let mut resp = handlers::api_versions::handle(&ctx, req)
            .await?
            .expect("always answers");
        resp.throttle_time_ms = throttle_ms;
        conn.broker.metrics.response_errors(key, &resp);
        return encode_response(key, version, correlation_id, &resp, out)
            .map(|_| Handled::Answered(true));
    }
    if key == ApiKey::Produce {
        let req = ProduceRequest::decode(&mut body, version).map_err(|source| {
            ProtocolError::Malformed {
                what: "ProduceRequest",
                source,
            }
        })?;
        let appended = handlers::produce::append_all(&ctx, req);
        if appended.must_wait() {
            let broker = conn.broker.clone();
            return Ok(Handled::Deferred(Box::pin(async move {
                let mut buf = BytesMut::new();
                if let Some(mut resp) = handlers::produce::finish(appended).await? {
                    resp.throttle_time_ms = throttle_ms;
                    broker.metrics.response_errors(key, &resp);
                    encode_response(key, version, correlation_id, &resp, &mut buf)?;
                }
                Ok(buf)
            })));
        }
        return match handlers::produce::finish(appended).await? {
            Some(mut resp) => {
                resp.throttle_time_ms = throttle_ms;
                conn.broker.metrics.response_errors(key, &resp);
                encode_response(key, version, correlation_id, &resp, out)
                    .map(|_| Handled::Answered(true))
            }
            None => Ok(Handled::Answered(false)),
        };
    }
    dispatch(&ctx, key, correlation_id, &mut body, out, throttle_ms)
        .await
        .map(Handled::Answered)
}

/// SaslHandshake (17, v0-1) and SaslAuthenticate (36, v0-2). Failures are
/// answered, then the connection closes (Kafka's authenticator); on a
/// listener without SASL both are answered ILLEGAL_SASL_STATE.
fn handle_sasl(
    conn: &Connection,
    raw_key: i16,
    version: i16,
    correlation_id: i32,
    frame: Bytes,
    out: &mut BytesMut,
) -> Result<Handled, ProtocolError> {
    let key = if raw_key == sasl::SASL_HANDSHAKE {
        ApiKey::SaslHandshake
    } else {
        ApiKey::SaslAuthenticate
    };
    // Weir's versions, or an emulated release's (as advertised).
    let max = conn
        .broker
        .sasl_versions()
        .iter()
        .find(|(k, _)| *k == raw_key)
        .map_or(-1, |&(_, max)| max);
    if !(0..=max).contains(&version) {
        return Err(ProtocolError::UnsupportedVersion {
            key,
            version,
            min: 0,
            max,
        });
    }
    let mut body = frame;
    let malformed = |what| move |source| ProtocolError::Malformed { what, source };
    RequestHeader::decode(&mut body, key.request_header_version(version))
        .map_err(malformed("request header"))?;
    let peer = conn.peer_addr;
    let mut auth = conn.auth();
    let sasl_listener = conn.listener.protocol.sasl();
    if sasl_listener {
        auth.admit(raw_key, Instant::now())
            .map_err(|e| ProtocolError::Sasl(e.into()))?;
    }
    let illegal = kafka_protocol::ResponseError::IllegalSaslState.code();
    if key == ApiKey::SaslHandshake {
        let req = SaslHandshakeRequest::decode(&mut body, version)
            .map_err(malformed("SaslHandshakeRequest"))?;
        let mechanism = req.mechanism.as_str();
        let outcome = auth.handshake(mechanism, version, &conn.listener);
        let mut resp = SaslHandshakeResponse::default().with_mechanisms(
            conn.listener
                .mechanisms
                .iter()
                .map(|m| handlers::str_bytes(m.clone()))
                .collect(),
        );
        resp.error_code = match &outcome {
            Ok(()) => 0,
            Err(HandshakeError::Unsupported) => {
                kafka_protocol::ResponseError::UnsupportedSaslMechanism.code()
            }
            Err(HandshakeError::IllegalState(_)) => illegal,
        };
        encode_response(key, version, correlation_id, &resp, out)?;
        return Ok(match outcome {
            Ok(()) => Handled::Answered(true),
            Err(_) if !sasl_listener => Handled::Answered(true),
            Err(e) => {
                tracing::info!(%peer, mechanism, error = ?e, "SASL handshake refused; closing");
                Handled::Close
            }
        });
    }
    let req = SaslAuthenticateRequest::decode(&mut body, version)
        .map_err(malformed("SaslAuthenticateRequest"))?;
    let mut resp = SaslAuthenticateResponse::default();
    if !sasl_listener {
        resp.error_code = illegal;
        resp.error_message = Some(handlers::str_bytes("SASL is not enabled on this listener"));
        encode_response(key, version, correlation_id, &resp, out)?;
        return Ok(Handled::Answered(true));
    }
    let creds = conn.broker.sasl_credentials();
    match auth.authenticate(&req.auth_bytes, &creds, Instant::now()) {
        Ok(progress) => {
            resp.auth_bytes = Bytes::from(progress.response);
            if let Some(lifetime) = progress.done {
                tracing::debug!(%peer, principal = %auth.principal(), "SASL authentication complete");
                if version >= 1 {
                    resp.session_lifetime_ms = lifetime;
                }
            }
            encode_response(key, version, correlation_id, &resp, out)?;
            Ok(Handled::Answered(true))
        }
        Err(message) => {
            // The message never holds a secret; nor does this log line.
            tracing::info!(%peer, error = %message, "SASL authentication failed; closing");
            resp.error_code = kafka_protocol::ResponseError::SaslAuthenticationFailed.code();
            resp.error_message = Some(handlers::str_bytes(message));
            encode_response(key, version, correlation_id, &resp, out)?;
            Ok(Handled::Close)
        }
    }
}

/// A raw SASL token (the frames after SaslHandshake v0): answered with a
/// raw token; a failure closes the connection without an answer.
fn raw_sasl_token(
    conn: &Connection,
    frame: &[u8],
    out: &mut BytesMut,
) -> Result<Handled, ProtocolError> {
    let creds = conn.broker.sasl_credentials();
    let progress = conn
        .auth()
        .authenticate(frame, &creds, Instant::now())
        .map_err(ProtocolError::Sasl)?;
    out.put_i32(progress.response.len() as i32);
    out.extend_from_slice(&progress.response);
    Ok(Handled::Answered(true))
}

/// Frames a response into `buf`: size, header (version from the API key), body.
pub fn encode_response<R: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    resp: &R,
    buf: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = key.response_header_version(version);
    let err = |source| ProtocolError::Encode {
        key,
        version,
        source,
    };
    let size = header.compute_size(header_version).map_err(err)?
        + resp.compute_size(version).map_err(err)?;
    buf.reserve(4 + size);
    buf.put_i32(size as i32);
    header.encode(buf, header_version).map_err(err)?;
    resp.encode(buf, version).map_err(err)?;
    Ok(())
}

/// ApiVersions v0 body with UNSUPPORTED_VERSION and our ranges, built by
/// hand because the header and body versions differ from the request's.
fn unsupported_api_versions(apis: &[ApiSupport], correlation_id: i32, out: &mut BytesMut) {
    let mut body = BytesMut::new();
    body.put_i32(correlation_id);
    body.put_i16(kafka_protocol::ResponseError::UnsupportedVersion.code());
    body.put_i32(apis.len() as i32);
    for api in apis {
        body.put_i16(api.key as i16);
        body.put_i16(api.advertised.min);
        body.put_i16(api.advertised.max);
    }
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated tables hold what Kafka's specs say (values read from
    /// `clients/src/main/resources/common/message/*Request.json` at the
    /// release tags), and emulation limits Weir's table to them.
    #[test]
    fn emulated_releases_follow_kafkas_specs() {
        let range = |release: &str, key: i16| {
            emulation_release(release)
                .unwrap()
                .iter()
                .find(|(k, ..)| *k == key)
                .map(|&(_, lo, hi)| (lo, hi))
        };
        assert_eq!(range("2.2", 0), Some((0, 7))); // Produce, 2.2.2
        assert_eq!(range("2.2", 1), Some((0, 10))); // Fetch
        assert_eq!(range("2.8", 3), Some((0, 11))); // Metadata, 2.8.2
        assert_eq!(range("3.0", 2), Some((0, 7))); // ListOffsets, 3.0.2
        assert_eq!(range("3.8", 0), Some((0, 11))); // Produce, 3.8.0
        assert_eq!(range("3.8", 1), Some((0, 16))); // Fetch
                                                    // The KIP-848 heartbeat is not an API of a 2.8 broker, nor the
                                                    // quorum APIs of a 2.7 one (defined, not served).
        assert_eq!(range("2.8", 68), None);
        assert_eq!(range("2.7", 52), None);
        // 2.1 from its protocol documentation: ListOffsets v4, no
        // DescribeClientQuotas (48) yet, every ZooKeeper broker API listed.
        assert_eq!(range("2.1", 2), Some((0, 4)));
        assert_eq!(range("2.1", 4), Some((0, 1))); // LeaderAndIsr
        assert_eq!(range("2.1", 48), None);
        // 4.0-4.2 from theirs: KIP-896 removed the oldest versions, share
        // groups were unstable in 4.0 (not advertised), v1 from 4.1;
        // client telemetry is off by default.
        // Produce advertised from v0 (KAFKA-18659), served from v3.
        assert_eq!(range("4.0", 0), Some((0, 12)));
        assert_eq!(range("4.0", 1), Some((4, 17)));
        assert_eq!(range("4.0", 76), None);
        assert_eq!(range("4.0", 71), None);
        assert_eq!(range("4.1", 0), Some((0, 13)));
        assert_eq!(range("4.1", 8), Some((2, 9))); // OffsetCommit v10 unstable
        assert_eq!(range("4.1", 76), Some((1, 1)));
        assert_eq!(range("4.1", 88), None); // Streams groups: unstable
        assert_eq!(range("4.2", 8), Some((2, 10)));
        assert_eq!(range("4.2", 88), Some((0, 0)));
        assert_eq!(range("4.2", 4), None); // no ZooKeeper: no LeaderAndIsr
        assert!(emulation_release("9.9").is_err());
        assert!(emulation_release("2.0").is_err());

        let t = api_table("2.8").unwrap();
        let get = |key: ApiKey| t.iter().find(|a| a.key == key).copied();
        let produce = get(ApiKey::Produce).unwrap();
        assert_eq!((produce.advertised.min, produce.advertised.max), (0, 9));
        assert_eq!(produce.served.max, 9);
        // Weir's own minimum still applies (Fetch from v4).
        let fetch = get(ApiKey::Fetch).unwrap();
        assert_eq!((fetch.advertised.min, fetch.advertised.max), (4, 12));
        assert!(get(ApiKey::ConsumerGroupHeartbeat).is_none());
        assert!(get(ApiKey::ShareFetch).is_none());
        assert_eq!(api_table("").unwrap().len(), SUPPORTED_APIS.len());

        let t = api_table("4.0").unwrap();
        let produce = t.iter().find(|a| a.key == ApiKey::Produce).unwrap();
        assert_eq!((produce.advertised.min, produce.advertised.max), (0, 12));
        assert_eq!((produce.served.min, produce.served.max), (3, 12));
    }

    /// The 4.1 table (read from Kafka 4.1's protocol documentation) against
    /// an independent reading of the same specs: the kafka-protocol crate's
    /// code is generated from Kafka 4.1.0's message specs. Every API agrees
    /// on its range, except where the documentation marks the last version
    /// unstable (a broker does not advertise it).
    #[test]
    fn kafka_4_1_agrees_with_the_crate_generated_from_its_specs() {
        let mut short_of_spec = Vec::new();
        for &(key, lo, hi) in emulation_release("4.1").unwrap() {
            let valid = ApiKey::try_from(key)
                .unwrap_or_else(|_| panic!("4.1 key {key} unknown to the crate"))
                .valid_versions();
            // Produce: advertised from v0 (KAFKA-18659), specs from v3.
            let advertised_min = if key == 0 { 0 } else { valid.min };
            assert_eq!(advertised_min, lo, "key {key}");
            assert!(valid.max >= hi, "key {key}");
            if valid.max > hi {
                short_of_spec.push(key);
            }
        }
        // OffsetCommit v10, OffsetFetch v10, InitProducerId v6.
        assert_eq!(short_of_spec, [8, 9, 22]);
    }

    #[test]
    fn served_ranges_are_decodable_and_nonempty() {
        for api in SUPPORTED_APIS {
            assert!(!api.served.is_empty(), "{:?}", api.key);
            let valid = api.key.valid_versions();
            assert!(
                api.served.min >= valid.min && api.served.max <= valid.max,
                "{:?}",
                api.key
            );
        }
        let produce = find_api(0).unwrap();
        assert_eq!((produce.advertised.min, produce.served.min), (0, 3));
    }

    #[test]
    fn no_forbidden_keys_advertised() {
        for k in [71i16, 72, 17, 36] {
            assert!(find_api(k).is_none(), "key {k} must not be advertised");
        }
    }
}
