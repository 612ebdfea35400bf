//! The consume ceiling: a minimal in-memory Kafka responder that answers
//! librdkafka's consumer (ApiVersions, Metadata, ListOffsets, Fetch) from
//! the bytes of a Weir log loaded into memory beforehand. No disk read, no
//! locks, no parsing beyond the request: what librdkafka plus the loopback
//! wire can do at best with the same batches. Weir's consume rate divided by
//! this one is the broker's own efficiency.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use weir::log::batch::BatchHeader;
use weir::protocol::encode_response;

/// A partition's batches in memory, with (base offset, position) of each.
struct Log {
    data: Bytes,
    batches: Vec<(i64, usize)>,
    end: i64,
}

impl Log {
    /// Concatenates the `.log` segments of a Weir partition directory.
    fn load(dir: &Path) -> Log {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        let mut data = Vec::new();
        for f in files {
            data.extend_from_slice(&std::fs::read(f).unwrap());
        }
        let mut batches = Vec::new();
        let mut pos = 0;
        let mut end = 0;
        while let Some(h) = data.get(pos..).and_then(BatchHeader::parse) {
            if h.total_len() < 61 || pos + h.total_len() > data.len() {
                break;
            }
            batches.push((h.base_offset, pos));
            end = h.next_offset();
            pos += h.total_len();
        }
        data.truncate(pos);
        Log {
            data: Bytes::from(data),
            batches,
            end,
        }
    }

    /// Whole batches from the one containing `offset`, within `max` bytes
    /// (at least one batch).
    fn read(&self, offset: i64, max: usize) -> Bytes {
        let i = self.batches.partition_point(|(b, _)| *b <= offset);
        if i == 0 || offset >= self.end {
            return Bytes::new();
        }
        let start = self.batches[i - 1].1;
        let mut stop = start;
        for (_, p) in &self.batches[i..] {
            if *p - start > max {
                break;
            }
            stop = *p;
        }
        if stop == start {
            stop = self.batches.get(i).map(|b| b.1).unwrap_or(self.data.len());
        }
        self.data.slice(start..stop)
    }
}

/// Starts the responder for topic `topic` (one partition) on a free port;
/// returns its address. It serves until the process exits.
pub fn serve(dir: &Path, topic: &str) -> String {
    let log = Arc::new(Log::load(dir));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let topic = topic.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, topic) = (log.clone(), topic.clone());
            std::thread::spawn(move || {
                let _ = connection(stream, &log, &topic, addr.port());
            });
        }
    });
    addr.to_string()
}

fn connection(mut s: TcpStream, log: &Log, topic: &str, port: u16) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut out = BytesMut::new();
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut frame)?;
        let mut body = Bytes::from(frame);
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).unwrap();
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
        let cid = header.correlation_id;
        out.clear();
        match key {
            ApiKey::ApiVersions => {
                let api = |k: ApiKey, min: i16, max: i16| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                };
                let resp = ApiVersionsResponse::default().with_api_keys(vec![
                    api(ApiKey::ApiVersions, 0, 3),
                    api(ApiKey::Metadata, 0, 8),
                    api(ApiKey::ListOffsets, 1, 5),
                    api(ApiKey::Fetch, 4, 11),
                    // Never sent, but librdkafka enables record batches
                    // (MsgVer2) only if Produce v3 is offered too.
                    api(ApiKey::Produce, 3, 9),
                ]);
                encode_response(key, version, cid, &resp, &mut out).unwrap();
            }
            ApiKey::Metadata => {
                let part = MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(0))
                    .with_replica_nodes(vec![BrokerId(0)])
                    .with_isr_nodes(vec![BrokerId(0)]);
                let resp = MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(0))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(port as i32)])
                    .with_controller_id(BrokerId(0))
                    .with_topics(vec![MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))
                        .with_partitions(vec![part])]);
                encode_response(key, version, cid, &resp, &mut out).unwrap();
            }
            ApiKey::ListOffsets => {
                let req = ListOffsetsRequest::decode(&mut body, version).unwrap();
                let topics = req
                    .topics
                    .iter()
                    .map(|t| {
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_offset(if p.timestamp == -2 {
                                                0
                                            } else {
                                                log.end
                                            })
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                let resp = ListOffsetsResponse::default().with_topics(topics);
                encode_response(key, version, cid, &resp, &mut out).unwrap();
            }
            ApiKey::Fetch => {
                let req = FetchRequest::decode(&mut body, version).unwrap();
                let topics = req
                    .topics
                    .iter()
                    .map(|t| {
                        FetchableTopicResponse::default()
                            .with_topic(t.topic.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        PartitionData::default()
                                            .with_partition_index(p.partition)
                                            .with_high_watermark(log.end)
                                            .with_last_stable_offset(log.end)
                                            .with_records(Some(log.read(
                                                p.fetch_offset,
                                                p.partition_max_bytes.max(0) as usize,
                                            )))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                let resp = FetchResponse::default().with_responses(topics);
                encode_response(key, version, cid, &resp, &mut out).unwrap();
            }
            _ => return Ok(()), // anything else: hang up
        }
        s.write_all(out.chunk())?;
    }
}
