//! A small Kafka client over the kafka-protocol crate, for the `weir`
//! command-line tools (and usable by tests). It speaks only the protocol,
//! so it works against any Kafka-compatible broker, not only Weir; it
//! shares no code with the broker's handlers.
//!
//! - [`BrokerConn`]: one connection: ApiVersions negotiation at connect
//!   (each request goes out at the highest version both sides know),
//!   framing, correlation ids, timeouts.
//! - [`Client`]: bootstrap, the cluster's brokers from Metadata, and routing
//!   (partition leaders, the controller, group coordinators).
//! - [`security`]: TLS and SASL (PLAIN, SCRAM) from Kafka client
//!   properties (`--command-config`).
//! - [`group`]: a classic-protocol group member (JoinGroup/SyncGroup with
//!   the `range` assignor, heartbeats, commits, leave).

pub mod group;
pub mod security;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

pub use security::ClientSecurity;
use security::Io;

/// How long connecting to one address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may wait for its response (long polls add their own wait).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response frame accepted.
const MAX_RESPONSE: usize = 256 << 20;

/// A failure, always naming the broker address involved.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr}: cannot connect: {message}")]
    Connect { addr: String, message: String },
    #[error("{addr}: {message}")]
    Io { addr: String, message: String },
    #[error("{addr}: {}{}", error_name(*.code), .message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        addr: String,
        code: i16,
        message: Option<String>,
    },
    #[error("{addr}: {message}")]
    Other { addr: String, message: String },
}

impl ClientError {
    /// The Kafka error code, if the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Kafka's name for an error code (`TOPIC_ALREADY_EXISTS`), as its tools
/// print it.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
        None if code == 0 => "NONE".into(),
        None => format!("error code {code}"),
    }
}

/// One connection to one broker.
pub struct BrokerConn {
    addr: String,
    stream: BufReader<Box<dyn Io>>,
    security: Arc<ClientSecurity>,
    correlation: i32,
    /// Broker's (min, max) per API key, from ApiVersions.
    versions: HashMap<i16, (i16, i16)>,
    client_id: StrBytes,
}

impl BrokerConn {
    /// Connects (TLS when configured), negotiates versions, and
    /// authenticates when SASL is configured.
    pub async fn connect(addr: &str, security: &Arc<ClientSecurity>) -> Result<BrokerConn> {
        let connect_err = |message: String| ClientError::Connect {
            addr: addr.to_string(),
            message,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, security.open(addr))
            .await
            .map_err(|_| connect_err(format!("timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| connect_err(e.to_string()))?;
        let mut conn = BrokerConn {
            addr: addr.to_string(),
            stream: BufReader::new(stream),
            security: security.clone(),
            correlation: 0,
            versions: HashMap::new(),
            client_id: StrBytes::from_static_str("weir-cli"),
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 first; a broker that knows less answers in v0 with its
        // ranges. Something that accepts but does not answer like a Kafka
        // broker counts as unreachable, after the connect timeout.
        let not_kafka = |e: ClientError| connect_err(format!("no ApiVersions answer: {e}"));
        let resp = match conn.exchange(3, &req, CONNECT_TIMEOUT).await {
            Ok(r) if r.error_code == 0 => r,
            Ok(_) => {
                let mut again = BrokerConn::reconnect(&conn).await?;
                let r = again
                    .exchange(0, &ApiVersionsRequest::default(), CONNECT_TIMEOUT)
                    .await
                    .map_err(not_kafka)?;
                conn = again;
                r
            }
            Err(e) => return Err(not_kafka(e)),
        };
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(sasl) = &security.sasl {
            conn.authenticate(sasl).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1 + SaslAuthenticate: PLAIN in one round, SCRAM in two.
    async fn authenticate(&mut self, sasl: &security::Sasl) -> Result<()> {
        let failed = |addr: &str, message: String| ClientError::Connect {
            addr: addr.to_string(),
            message: format!("SASL {}: {message}", sasl.mechanism),
        };
        let hs = self
            .send_at(
                1,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(sasl.mechanism.clone())),
            )
            .await?;
        if hs.error_code != 0 {
            let offered: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(failed(
                &self.addr,
                format!("{} (broker offers {offered:?})", error_name(hs.error_code)),
            ));
        }
        let answer = |r: SaslAuthenticateResponse| {
            if r.error_code == 0 {
                Ok(r.auth_bytes)
            } else {
                Err(format!(
                    "{}{}",
                    error_name(r.error_code),
                    r.error_message
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ))
            }
        };
        let addr = self.addr.clone();
        match crate::security::scram::Mechanism::from_name(&sasl.mechanism) {
            None => {
                let token = format!("\0{}\0{}", sasl.username, sasl.password).into_bytes();
                answer(self.sasl_step(token).await?).map_err(|m| failed(&addr, m))?;
            }
            Some(m) => {
                let nonce: String = uuid::Uuid::new_v4().simple().to_string();
                let bare = crate::security::scram::client_first_bare(&sasl.username, &nonce);
                let first = answer(self.sasl_step(format!("n,,{bare}").into_bytes()).await?)
                    .map_err(|e| failed(&addr, e))?;
                let first = String::from_utf8_lossy(&first).into_owned();
                if !first.starts_with(&format!("r={nonce}")) {
                    return Err(failed(
                        &addr,
                        "the server's nonce does not extend ours".into(),
                    ));
                }
                let (last, signature) =
                    crate::security::scram::client_final(m, &sasl.password, &bare, &first)
                        .map_err(|e| failed(&addr, e.to_string()))?;
                let server_final = answer(self.sasl_step(last.into_bytes()).await?)
                    .map_err(|e| failed(&addr, e))?;
                use base64::Engine;
                let expected = format!(
                    "v={}",
                    base64::engine::general_purpose::STANDARD.encode(signature)
                );
                if server_final[..] != *expected.as_bytes() {
                    return Err(failed(&addr, "the server's signature is wrong".into()));
                }
            }
        }
        Ok(())
    }

    async fn sasl_step(&mut self, token: Vec<u8>) -> Result<SaslAuthenticateResponse> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        self.send_at(1, &req).await
    }

    async fn reconnect(old: &BrokerConn) -> Result<BrokerConn> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, old.security.open(&old.addr))
            .await
            .map_err(|_| ClientError::Connect {
                addr: old.addr.clone(),
                message: "timed out".into(),
            })?
            .map_err(|e| ClientError::Connect {
                addr: old.addr.clone(),
                message: e.to_string(),
            })?;
        Ok(BrokerConn {
            addr: old.addr.clone(),
            stream: BufReader::new(stream),
            security: old.security.clone(),
            correlation: 0,
            versions: HashMap::new(),
            client_id: old.client_id.clone(),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's (min, max) for every API key it advertised.
    pub fn api_versions(&self) -> &HashMap<i16, (i16, i16)> {
        &self.versions
    }

    /// The version to use for `R`: the highest both sides know.
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        let ours = R::VERSIONS;
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| ClientError::Other {
                addr: self.addr.clone(),
                message: format!("the broker does not support {}", api_name(R::KEY)),
            })?;
        let v = max.min(ours.max);
        if v < min.max(ours.min) {
            return Err(ClientError::Other {
                addr: self.addr.clone(),
                message: format!(
                    "no common version of {} (broker {min}..={max}, client {}..={})",
                    api_name(R::KEY),
                    ours.min,
                    ours.max
                ),
            });
        }
        Ok(v)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&mut self, req: &R) -> Result<R::Response> {
        let v = self.version_for::<R>()?;
        self.send_at(v, req).await
    }

    /// Like [`Self::send`], with a longer timeout for requests that wait
    /// on the broker (long polls, rebalances).
    pub async fn send_waiting<R: Request>(
        &mut self,
        req: &R,
        wait: Duration,
    ) -> Result<R::Response> {
        let v = self.version_for::<R>()?;
        self.exchange(v, req, REQUEST_TIMEOUT + wait).await
    }

    pub async fn send_at<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        self.exchange(version, req, REQUEST_TIMEOUT).await
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&mut self, req: &R) -> Result<()> {
        let v = self.version_for::<R>()?;
        let frame = self.encode(v, req)?;
        self.write(&frame).await
    }

    fn io_err(&self, message: impl Into<String>) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            message: message.into(),
        }
    }

    fn encode<R: Request>(&mut self, version: i16, req: &R) -> Result<BytesMut> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|()| req.encode(&mut frame, version))
            .map_err(|e| ClientError::Other {
                addr: self.addr.clone(),
                message: format!("cannot encode {} v{version}: {e}", api_name(R::KEY)),
            })?;
        let size = (frame.len() - 4) as i32;
        frame[0..4].copy_from_slice(&size.to_be_bytes());
        Ok(frame)
    }

    async fn write(&mut self, frame: &[u8]) -> Result<()> {
        self.stream
            .get_mut()
            .write_all(frame)
            .await
            .map_err(|e| self.io_err(format!("connection lost: {e}")))
    }

    async fn exchange<R: Request>(
        &mut self,
        version: i16,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let frame = self.encode(version, req)?;
        let correlation = self.correlation;
        let addr = self.addr.clone();
        let work = async {
            self.write(&frame).await?;
            let mut body = self.read_frame().await?;
            let key = ApiKey::try_from(R::KEY).map_err(|_| self.io_err("unknown API key"))?;
            let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
                .map_err(|e| self.io_err(format!("bad response header: {e}")))?;
            if header.correlation_id != correlation {
                return Err(self.io_err("response out of order"));
            }
            // An unsupported ApiVersions version is answered in v0.
            let version = if key == ApiKey::ApiVersions && body.len() >= 2 && body[..2] == [0, 35] {
                0
            } else {
                version
            };
            R::Response::decode(&mut body, version).map_err(|e| {
                self.io_err(format!(
                    "cannot decode {} v{version} response: {e}",
                    api_name(R::KEY)
                ))
            })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ClientError::Io {
                addr,
                message: format!("no response to {} within {timeout:?}", api_name(R::KEY)),
            })?
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .await
            .map_err(|e| self.io_err(format!("connection lost: {e}")))?;
        let len = i32::from_be_bytes(len);
        if len < 0 || len as usize > MAX_RESPONSE {
            return Err(self.io_err(format!("bad response size {len}")));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| self.io_err(format!("connection lost: {e}")))?;
        Ok(Bytes::from(buf))
    }
}

/// An API key's name (`CreateTopics`).
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("API {key}"))
}

/// Turns a non-zero error code into an error naming `addr`.
pub fn check(addr: &str, code: i16, message: Option<&StrBytes>) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(ClientError::Kafka {
        addr: addr.to_string(),
        code,
        message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
    })
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: Option<String>,
    pub internal: bool,
    /// (partition, leader node id, replicas, isr)
    pub partitions: Vec<(i32, i32, Vec<i32>, Vec<i32>)>,
}

impl TopicInfo {
    /// The topic id (nil when the broker has none), for Fetch v13+.
    pub fn uuid(&self) -> uuid::Uuid {
        self.id
            .as_deref()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .unwrap_or_default()
    }
}

/// Bootstrap and routing.
pub struct Client {
    bootstrap: Vec<String>,
    security: Arc<ClientSecurity>,
    /// Node id -> "host:port".
    brokers: HashMap<i32, String>,
    conns: HashMap<i32, BrokerConn>,
    /// The connection made to a bootstrap address, until node ids are known.
    boot: Option<BrokerConn>,
    pub controller: i32,
    pub cluster_id: Option<String>,
}

impl Client {
    /// Connects to the first reachable bootstrap address
    /// (`HOST:PORT[,HOST:PORT]`).
    pub async fn connect(bootstrap: &str) -> Result<Client> {
        Client::connect_with(bootstrap, ClientSecurity::default()).await
    }

    /// As [`Self::connect`], over TLS and/or SASL.
    pub async fn connect_with(bootstrap: &str, security: ClientSecurity) -> Result<Client> {
        let security = Arc::new(security);
        let list: Vec<String> = bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let mut last = None;
        for addr in &list {
            match BrokerConn::connect(addr, &security).await {
                Ok(conn) => {
                    let mut c = Client {
                        bootstrap: list.clone(),
                        security: security.clone(),
                        brokers: HashMap::new(),
                        conns: HashMap::new(),
                        boot: Some(conn),
                        controller: -1,
                        cluster_id: None,
                    };
                    c.metadata(Some(Vec::new()), false).await?;
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Connect {
            addr: bootstrap.to_string(),
            message: "no bootstrap address given".into(),
        }))
    }

    /// The bootstrap list, as given.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.join(",")
    }

    /// Some connection (the bootstrap one, or any broker's).
    pub async fn any(&mut self) -> Result<&mut BrokerConn> {
        if self.boot.is_none() {
            let node = *self
                .brokers
                .keys()
                .min()
                .ok_or_else(|| ClientError::Other {
                    addr: self.bootstrap(),
                    message: "no brokers known".into(),
                })?;
            return self.broker(node).await;
        }
        let bootstrap = self.bootstrap();
        self.boot.as_mut().ok_or(ClientError::Other {
            addr: bootstrap,
            message: "no connection".into(),
        })
    }

    /// The connection to broker `node`.
    pub async fn broker(&mut self, node: i32) -> Result<&mut BrokerConn> {
        if !self.conns.contains_key(&node) {
            let addr = self
                .brokers
                .get(&node)
                .cloned()
                .ok_or_else(|| ClientError::Other {
                    addr: self.bootstrap(),
                    message: format!("unknown broker {node}"),
                })?;
            // Reuse the bootstrap connection when it is this broker.
            let conn = match self.boot.take() {
                Some(b) if b.addr == addr => b,
                other => {
                    self.boot = other;
                    BrokerConn::connect(&addr, &self.security).await?
                }
            };
            self.conns.insert(node, conn);
        }
        Ok(self.conns.get_mut(&node).expect("inserted"))
    }

    /// The controller (where Kafka's admin clients send topic changes).
    pub async fn controller(&mut self) -> Result<&mut BrokerConn> {
        if self.brokers.contains_key(&self.controller) {
            let c = self.controller;
            return self.broker(c).await;
        }
        self.any().await
    }

    /// Metadata for `topics` (`None`: all), learning the brokers.
    pub async fn metadata(
        &mut self,
        topics: Option<Vec<String>>,
        auto_create: bool,
    ) -> Result<Vec<TopicInfo>> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.into_iter()
                    .map(|t| {
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        let conn = self.any().await?;
        let addr = conn.addr.clone();
        let resp = conn.send(&req).await?;
        self.brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        self.controller = resp.controller_id.0;
        self.cluster_id = resp.cluster_id.as_ref().map(|s| s.to_string());
        let mut out = Vec::new();
        for t in resp.topics {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            check(&addr, t.error_code, None).map_err(|e| with_topic(e, &name))?;
            let mut partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.leader_id.0,
                        p.replica_nodes.iter().map(|n| n.0).collect(),
                        p.isr_nodes.iter().map(|n| n.0).collect(),
                    )
                })
                .collect();
            partitions.sort_by_key(|p| p.0);
            let id = (!t.topic_id.is_nil()).then(|| t.topic_id.to_string());
            out.push(TopicInfo {
                name,
                id,
                internal: t.is_internal,
                partitions,
            });
        }
        Ok(out)
    }

    /// Metadata of one topic; UNKNOWN_TOPIC_OR_PARTITION if it does not exist.
    pub async fn topic(&mut self, name: &str, auto_create: bool) -> Result<TopicInfo> {
        let mut ts = self
            .metadata(Some(vec![name.to_string()]), auto_create)
            .await?;
        ts.pop().ok_or_else(|| ClientError::Kafka {
            addr: self.bootstrap(),
            code: ResponseError::UnknownTopicOrPartition.code(),
            message: Some(format!("topic '{name}'")),
        })
    }

    /// Log start and end offsets of the partitions of `topic`
    /// (ListOffsets earliest and latest), by partition.
    pub async fn offsets(
        &mut self,
        topic: &TopicInfo,
        isolation: i8,
    ) -> Result<HashMap<i32, (i64, i64)>> {
        let start = self.list_offsets(topic, -2, isolation).await?;
        let end = self.list_offsets(topic, -1, isolation).await?;
        Ok(start
            .into_iter()
            .map(|(p, (s, _))| (p, (s, end.get(&p).map(|e| e.0).unwrap_or(-1))))
            .collect())
    }

    /// ListOffsets at `timestamp` (-2 earliest, -1 latest, or a time) for
    /// every partition of `topic`: partition -> (offset, timestamp).
    pub async fn list_offsets(
        &mut self,
        topic: &TopicInfo,
        timestamp: i64,
        isolation: i8,
    ) -> Result<HashMap<i32, (i64, i64)>> {
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for (p, leader, _, _) in &topic.partitions {
            by_leader.entry(*leader).or_default().push(*p);
        }
        let mut out = HashMap::new();
        for (leader, parts) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation)
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|p| {
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let conn = self.broker(leader).await?;
            let addr = conn.addr.clone();
            let resp = conn.send(&req).await?;
            for t in resp.topics {
                for p in t.partitions {
                    check(&addr, p.error_code, None)?;
                    out.insert(p.partition_index, (p.offset, p.timestamp));
                }
            }
        }
        Ok(out)
    }
}

/// Adds the topic name to an error's message.
pub fn with_topic(e: ClientError, topic: &str) -> ClientError {
    match e {
        ClientError::Kafka {
            addr,
            code,
            message,
        } => ClientError::Kafka {
            addr,
            code,
            message: Some(match message {
                Some(m) if m.contains(topic) => m,
                Some(m) => format!("topic '{topic}': {m}"),
                None => format!("topic '{topic}'"),
            }),
        },
        other => other,
    }
}

/// Murmur2 as Kafka's Java client partitions keys with (so keyed records
/// land where Java and kafka-python producers put them).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ len as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Skips `n` bytes of a buffer if present (decoding helpers).
pub fn skip(b: &mut Bytes, n: usize) -> bool {
    if b.remaining() < n {
        return false;
    }
    b.advance(n);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(56), "KAFKA_STORAGE_ERROR");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
    }

    /// Values from Kafka's `UtilsTest.testMurmur2` / the Java partitioner.
    #[test]
    fn murmur2_matches_kafka() {
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }
}
