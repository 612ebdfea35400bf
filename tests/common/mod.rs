//! Test harness: the broker in-process on port 0 with a temp data dir, and a
//! minimal raw-protocol client built on the kafka-protocol crate.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use weir::log::batch::{encode_uncompressed, PlainRecord};
use weir::{Broker, Config};

pub struct TestBroker {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    pub data_dir: std::path::PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestBroker {
    pub async fn start(dir: &std::path::Path) -> TestBroker {
        Self::start_with(dir, |_| {}).await
    }

    pub async fn start_with(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> TestBroker {
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.to_string_lossy().into(),
            ..Config::default()
        };
        tweak(&mut config);
        let listener = TcpListener::bind(&config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let broker = Arc::new(Broker::open(Arc::new(config), addr).unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(weir::run(listener, broker.clone(), async move {
            let _ = rx.await;
        }));
        TestBroker {
            addr,
            broker,
            data_dir: dir.to_owned(),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// As `start_with`, binding every listener of the config (`listen` and
    /// `[[listeners]]`, use port 0); returns their addresses, `listen` first.
    pub async fn start_listeners(
        dir: &std::path::Path,
        tweak: impl FnOnce(&mut Config),
    ) -> (TestBroker, Vec<SocketAddr>) {
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.to_string_lossy().into(),
            ..Config::default()
        };
        tweak(&mut config);
        let bound = weir::server::BoundListener::bind_all(&config)
            .await
            .unwrap();
        let addrs: Vec<SocketAddr> = bound.iter().map(|l| l.local_addr().unwrap()).collect();
        let broker = Arc::new(Broker::open(Arc::new(config), addrs[0]).unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(weir::server::run_listeners(
            bound,
            broker.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        let b = TestBroker {
            addr: addrs[0],
            broker,
            data_dir: dir.to_owned(),
            shutdown: Some(tx),
            handle: Some(handle),
        };
        (b, addrs)
    }

    pub async fn client(&self) -> Client {
        Client {
            stream: TcpStream::connect(self.addr).await.unwrap(),
            correlation: 0,
        }
    }

    /// Graceful shutdown; returns when the broker has flushed and exited.
    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap().unwrap();
    }

    /// Simulates a crash: the serving task is aborted without shutdown.
    pub async fn crash(mut self) {
        let h = self.handle.take().unwrap();
        h.abort();
        let _ = h.await;
        // Give aborted connection tasks a moment to drop the data-dir lock.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Starts the `weir` binary (`serve --ephemeral` on a free port), waits
/// for its readiness line and returns the child with that line. `stderr`:
/// where the log goes.
pub fn spawn_weir(stderr: std::process::Stdio) -> (std::process::Child, String) {
    spawn_weir_with(&[], stderr)
}

/// As [`spawn_weir`], with more `weir serve` arguments.
pub fn spawn_weir_with(
    extra: &[&str],
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--ephemeral", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// The address in a readiness line (`weir ready: listening on ADDR ...`).
pub fn ready_addr(line: &str) -> SocketAddr {
    line.split_whitespace().nth(4).unwrap().parse().unwrap()
}

pub struct Client {
    pub stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            correlation: 0,
        }
    }

    /// Sends a typed request at `version` and decodes the typed response.
    pub async fn send<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.try_send(version, req).await.expect("response")
    }

    /// As `send`, but `None` if the broker closed the connection.
    pub async fn try_send<R: Request>(&mut self, version: i16, req: &R) -> Option<R::Response> {
        let frame = self.encode(version, req);
        self.stream.write_all(&frame).await.ok()?;
        let mut body = self.read_frame().await?;
        let key = ApiKey::try_from(R::KEY).unwrap();
        let header =
            ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        Some(R::Response::decode(&mut body, version).unwrap())
    }

    pub fn encode<R: Request>(&mut self, version: i16, req: &R) -> BytesMut {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("weir-test")));
        let hv = R::header_version(version);
        let mut body = BytesMut::new();
        header.encode(&mut body, hv).unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        frame
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// One response frame, or `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    /// True when the broker has closed the connection (EOF or reset).
    pub async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> i16 {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                )]);
        self.send(7, &req).await.topics[0].error_code
    }

    /// Produces one batch to `topic`/`partition` at Produce `version`;
    /// returns (error code, base offset).
    pub async fn produce(
        &mut self,
        version: i16,
        name: &str,
        partition: i32,
        batch: Bytes,
    ) -> (i16, i64) {
        let resp = self
            .send(version, &produce_request(name, partition, batch, -1))
            .await;
        let p = &resp.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    pub async fn fetch(
        &mut self,
        version: i16,
        name: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> fetch_response::PartitionData {
        let req = fetch_request(name, partition, offset, max_bytes, 0, 0);
        let mut resp = self.send(version, &req).await;
        resp.responses.remove(0).partitions.remove(0)
    }
}

pub fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn produce_request(name: &str, partition: i32, batch: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch)),
            ])])
}

pub fn fetch_request(
    name: &str,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])])
}

/// An uncompressed v2 batch of `values`, timestamps `ts, ts+1, ...`.
pub fn batch(values: &[&[u8]], ts: i64) -> Bytes {
    batch_with(values, ts, -1, -1, -1)
}

pub fn batch_with(values: &[&[u8]], ts: i64, producer_id: i64, epoch: i16, base_seq: i32) -> Bytes {
    let records: Vec<PlainRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| PlainRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            timestamp: ts + i as i64,
        })
        .collect();
    let producer = (producer_id >= 0).then_some((producer_id, epoch, base_seq));
    encode_uncompressed(&records, producer)
}

/// Decodes every record of a Fetch `records` blob: (offset, value).
pub fn decode_records(records: &Option<Bytes>) -> Vec<(i64, Bytes)> {
    let mut buf = records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while buf.remaining() > 0 {
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        for r in set.records {
            out.push((r.offset, r.value.unwrap_or_default()));
        }
    }
    out
}
