//! `weir produce TOPIC`: one record per line of standard input.
//!
//! Lines are read on a thread and sent as they come: lines already waiting
//! go out together (up to 1000 records or 1 MiB per request), so a piped
//! file is batched and a line typed at a terminal is sent at once. Keyed
//! records go to the partition Kafka's default partitioner picks (murmur2);
//! key-less ones rotate over the partitions, one batch at a time.

use std::collections::BTreeMap;
use std::io::BufRead;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use tokio::sync::mpsc;

use super::output::print_json;
use super::topic::parse_kv;
use super::{CliError, Format};
use crate::client::{check, partition_for_key, with_topic, Client, TopicInfo};
use crate::log::compression::Codec;
use crate::log::records::{self, BatchSpec, Header, Record};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to produce to (created if the broker auto-creates topics).
    pub topic: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Send every record to this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Header K=V added to every record (repeatable).
    #[arg(long = "header", value_parser = parse_kv)]
    pub headers: Vec<(String, String)>,
    /// Acknowledgement: all, 1 or 0.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Compression codec of the batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Acks {
    All,
    #[value(name = "1")]
    One,
    #[value(name = "0")]
    Zero,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn codec(self) -> Codec {
        match self {
            Compression::None => Codec::None,
            Compression::Gzip => Codec::Gzip,
            Compression::Snappy => Codec::Snappy,
            Compression::Lz4 => Codec::Lz4,
            Compression::Zstd => Codec::Zstd,
        }
    }
}

const MAX_BATCH_RECORDS: usize = 1000;
const MAX_BATCH_BYTES: usize = 1 << 20;

pub async fn run(mut c: Client, a: ProduceArgs, format: Format) -> Result<(), CliError> {
    let topic = c.topic(&a.topic, true).await?;
    let partitions = topic.partitions.len() as i32;
    if let Some(p) = a.partition {
        if p < 0 || p >= partitions {
            return Err(CliError::Usage(format!(
                "topic '{}' has partitions 0..{}, not {p}",
                a.topic,
                partitions - 1
            )));
        }
    }
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(MAX_BATCH_RECORDS);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = Vec::new();
            match lock.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let headers: Vec<Header> = a
        .headers
        .iter()
        .map(|(k, v)| Header {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
        })
        .collect();
    let mut line_no = 0usize;
    let mut sent = 0usize;
    let mut round_robin = 0i32;
    while let Some(first) = rx.recv().await {
        let mut lines = vec![first];
        let mut bytes = lines[0].as_ref().map(Vec::len).unwrap_or(0);
        while lines.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(l) => {
                    bytes += l.as_ref().map(Vec::len).unwrap_or(0);
                    lines.push(l);
                }
                Err(_) => break,
            }
        }
        let now = crate::log::now_ms();
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for line in lines {
            let line = line.map_err(|e| CliError::Usage(format!("reading standard input: {e}")))?;
            line_no += 1;
            let (key, value) = match &a.key_separator {
                None => (None, line),
                Some(sep) => {
                    let at = find(&line, sep.as_bytes()).ok_or_else(|| {
                        CliError::Usage(format!("line {line_no}: no key separator `{sep}`"))
                    })?;
                    (
                        Some(Bytes::copy_from_slice(&line[..at])),
                        line[at + sep.len()..].to_vec(),
                    )
                }
            };
            let partition = match (a.partition, &key) {
                (Some(p), _) => p,
                (None, Some(k)) => partition_for_key(k, partitions),
                (None, None) => round_robin,
            };
            let records = by_partition.entry(partition).or_default();
            records.push(Record {
                offset: records.len() as i64,
                timestamp: now,
                key,
                value: Some(Bytes::from(value)),
                headers: headers.clone(),
            });
        }
        round_robin = (round_robin + 1) % partitions.max(1);
        sent += send(&mut c, &topic, by_partition, a.acks, a.compression.codec()).await?;
    }
    if format == Format::Json {
        print_json(&json!({"topic": a.topic, "records": sent}));
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One Produce per leader; returns how many records were acknowledged
/// (or sent, with acks=0).
async fn send(
    c: &mut Client,
    topic: &TopicInfo,
    by_partition: BTreeMap<i32, Vec<Record>>,
    acks: Acks,
    codec: Codec,
) -> Result<usize, CliError> {
    let acks = match acks {
        Acks::All => -1,
        Acks::One => 1,
        Acks::Zero => 0,
    };
    let mut by_leader: BTreeMap<i32, Vec<produce_request::PartitionProduceData>> = BTreeMap::new();
    let mut count = 0;
    for (p, records) in by_partition {
        count += records.len();
        let batch = records::encode(&BatchSpec::plain(codec), &records)
            .map_err(|e| CliError::Usage(format!("cannot compress: {e}")))?;
        let leader = topic
            .partitions
            .iter()
            .find(|x| x.0 == p)
            .map(|x| x.1)
            .unwrap_or(-1);
        by_leader.entry(leader).or_default().push(
            produce_request::PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(Bytes::from(batch))),
        );
    }
    for (leader, data) in by_leader {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                .with_topic_id(topic.uuid())
                .with_partition_data(data)]);
        let conn = c.broker(leader).await?;
        if acks == 0 {
            conn.send_no_response(&req).await?;
            continue;
        }
        let addr = conn.addr().to_string();
        let resp = conn.send(&req).await?;
        for t in resp.responses {
            for p in t.partition_responses {
                check(&addr, p.error_code, p.error_message.as_ref())
                    .map_err(|e| with_topic(e, &topic.name))?;
            }
        }
    }
    Ok(count)
}
