//! `weir consume TOPIC`: prints records as they arrive.
//!
//! Without `--group` it reads the partitions directly and commits nothing;
//! with `--group` it joins the group (classic protocol, `range` assignor),
//! starts at the committed offsets and commits what it printed. It stops
//! after `--max-messages`, after `--timeout-ms` without a record, or on
//! Ctrl-C (committing and leaving the group first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::{Map, Value};

use super::output::{escape_bytes, put_bytes};
use super::{CliError, Format};
use crate::client::group::GroupMember;
use crate::client::{check, with_topic, Client, ClientError, TopicInfo};
use crate::log::batch::{parse_control_record, BatchHeader, HEADER_LEN};
use crate::log::records::{self, Record};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Join this consumer group and commit what was printed.
    #[arg(long)]
    pub group: Option<String>,
    /// Start at the earliest offset (where no offset is committed).
    #[arg(long, conflicts_with_all = ["offset", "offset_time"])]
    pub from_beginning: bool,
    /// Start at this offset.
    #[arg(long, conflicts_with = "offset_time", allow_hyphen_values = true)]
    pub offset: Option<i64>,
    /// Start at the first record with a timestamp at or after MS (epoch ms).
    #[arg(long, value_name = "MS")]
    pub offset_time: Option<i64>,
    /// Read only this partition.
    #[arg(long, conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Print each record's key before its value (tab-separated).
    #[arg(long)]
    pub print_key: bool,
    /// Print each record's headers first (k:v,k:v, tab-separated).
    #[arg(long)]
    pub print_headers: bool,
    /// read_uncommitted (default) or read_committed.
    #[arg(long, value_enum, default_value_t = Isolation::ReadUncommitted)]
    pub isolation: Isolation,
    /// Stop when no record arrived for this long.
    #[arg(long, value_name = "N")]
    pub timeout_ms: Option<u64>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
    #[value(name = "read_committed")]
    ReadCommitted,
}

/// Decompressed batches larger than this are refused (a corrupt or
/// hostile batch must not take the tool's memory).
const MAX_DECOMPRESSED: usize = 256 << 20;
const MAX_WAIT_MS: i32 = 500;

struct Consumer {
    topic: TopicInfo,
    isolation: i8,
    /// Next offset to read, per assigned partition.
    positions: BTreeMap<i32, i64>,
    /// Positions as last committed (group mode).
    committed: BTreeMap<i32, i64>,
    printed: u64,
    out: std::io::BufWriter<std::io::Stdout>,
    format: Format,
    print_key: bool,
    print_headers: bool,
    max: Option<u64>,
}

pub async fn run(mut c: Client, a: ConsumeArgs, format: Format) -> Result<(), CliError> {
    let topic = c.topic(&a.topic, false).await?;
    if let Some(p) = a.partition {
        if !topic.partitions.iter().any(|x| x.0 == p) {
            return Err(CliError::Usage(format!(
                "topic '{}' has no partition {p}",
                a.topic
            )));
        }
    }
    let mut member = match &a.group {
        Some(g) => Some(GroupMember::join(&mut c, g, vec![a.topic.clone()]).await?),
        None => None,
    };
    let mut con = Consumer {
        topic,
        isolation: (a.isolation == Isolation::ReadCommitted) as i8,
        positions: BTreeMap::new(),
        committed: BTreeMap::new(),
        printed: 0,
        out: std::io::BufWriter::new(std::io::stdout()),
        format,
        print_key: a.print_key,
        print_headers: a.print_headers,
        max: a.max_messages,
    };
    con.assign(&mut c, &a, member.as_mut()).await?;
    let timeout = a.timeout_ms.map(Duration::from_millis);
    let mut last_record = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        if con.max.is_some_and(|m| con.printed >= m) {
            break Ok(());
        }
        if timeout.is_some_and(|t| last_record.elapsed() >= t) {
            break Ok(());
        }
        if let Some(m) = member.as_mut() {
            match m.poll(&mut c).await {
                Ok(true) => {
                    if let Err(e) = con.assign(&mut c, &a, Some(m)).await {
                        break Err(e);
                    }
                }
                Ok(false) => {}
                Err(e) => break Err(e.into()),
            }
        }
        let before = con.printed;
        let fetched = tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            r = con.fetch_once(&mut c) => r,
        };
        match fetched {
            Ok(true) => {}
            Ok(false) => break Ok(()), // stdout closed
            Err(e) => break Err(e),
        }
        if con.printed > before {
            last_record = Instant::now();
            if let Some(m) = member.as_mut() {
                if let Err(e) = con.commit(&mut c, m).await {
                    break Err(e);
                }
            }
        }
    };
    let _ = con.out.flush();
    if let Some(mut m) = member {
        let committed = con.commit(&mut c, &mut m).await;
        let _ = m.leave(&mut c).await;
        committed?;
    }
    if format == Format::Text {
        eprintln!("Processed a total of {} messages", con.printed);
    }
    result
}

impl Consumer {
    /// Sets the start position of every partition this consumer reads.
    async fn assign(
        &mut self,
        c: &mut Client,
        a: &ConsumeArgs,
        member: Option<&mut GroupMember>,
    ) -> Result<(), CliError> {
        let parts: Vec<i32> = match (&member, a.partition) {
            (Some(m), _) => m.assignment().iter().map(|(_, p)| *p).collect(),
            (None, Some(p)) => vec![p],
            (None, None) => self.topic.partitions.iter().map(|p| p.0).collect(),
        };
        let committed = match member {
            Some(m) => m.committed(c).await?,
            None => HashMap::new(),
        };
        let starts = match (a.offset, a.offset_time, a.from_beginning) {
            (Some(_), _, _) => HashMap::new(),
            (None, Some(ts), _) => c.list_offsets(&self.topic, ts, self.isolation).await?,
            (None, None, true) => c.list_offsets(&self.topic, -2, self.isolation).await?,
            (None, None, false) => c.list_offsets(&self.topic, -1, self.isolation).await?,
        };
        let ends = if a.offset_time.is_some() {
            c.list_offsets(&self.topic, -1, self.isolation).await?
        } else {
            HashMap::new()
        };
        self.positions.clear();
        self.committed.clear();
        for p in parts {
            let pos = match committed.get(&(self.topic.name.clone(), p)) {
                Some(o) => {
                    self.committed.insert(p, *o);
                    *o
                }
                None => match a.offset {
                    Some(o) => o,
                    // No record that late: start at the end.
                    None => match starts.get(&p).map(|s| s.0) {
                        Some(o) if o >= 0 => o,
                        _ => ends.get(&p).map(|e| e.0).unwrap_or(0),
                    },
                },
            };
            self.positions.insert(p, pos);
        }
        Ok(())
    }

    async fn commit(&mut self, c: &mut Client, m: &mut GroupMember) -> Result<(), CliError> {
        let changed: HashMap<(String, i32), i64> = self
            .positions
            .iter()
            .filter(|(p, o)| self.committed.get(p) != Some(o))
            .map(|(p, o)| ((self.topic.name.clone(), *p), *o))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        m.commit(c, &changed).await?;
        for ((_, p), o) in changed {
            self.committed.insert(p, o);
        }
        Ok(())
    }

    /// One Fetch per leader, printing what came back. `Ok(false)` when
    /// stdout is gone (a closed pipe ends the command quietly).
    async fn fetch_once(&mut self, c: &mut Client) -> Result<bool, CliError> {
        if self.positions.is_empty() {
            tokio::time::sleep(Duration::from_millis(MAX_WAIT_MS as u64)).await;
            return Ok(true);
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in self.positions.keys() {
            let leader = self
                .topic
                .partitions
                .iter()
                .find(|x| x.0 == *p)
                .map(|x| x.1)
                .unwrap_or(-1);
            by_leader.entry(leader).or_default().push(*p);
        }
        for (leader, parts) in by_leader {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(MAX_WAIT_MS)
                .with_min_bytes(1)
                .with_max_bytes(50 << 20)
                .with_isolation_level(self.isolation)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(self.topic.name.clone())))
                    .with_topic_id(self.topic.uuid())
                    .with_partitions(
                        parts
                            .iter()
                            .map(|p| {
                                fetch_request::FetchPartition::default()
                                    .with_partition(*p)
                                    .with_fetch_offset(self.positions[p])
                                    .with_partition_max_bytes(1 << 20)
                                    .with_current_leader_epoch(-1)
                                    .with_log_start_offset(-1)
                            })
                            .collect(),
                    )]);
            let conn = c.broker(leader).await?;
            let addr = conn.addr().to_string();
            let resp = conn
                .send_waiting(&req, Duration::from_millis(MAX_WAIT_MS as u64))
                .await?;
            check(&addr, resp.error_code, None)?;
            for t in resp.responses {
                for p in t.partitions {
                    if p.error_code == ResponseError::OffsetOutOfRange.code() {
                        self.reset_out_of_range(c, p.partition_index).await?;
                        continue;
                    }
                    check(&addr, p.error_code, None)
                        .map_err(|e| with_topic(e, &self.topic.name))?;
                    let aborted = p.aborted_transactions.unwrap_or_default();
                    if let Some(records) = p.records {
                        if !self.print_partition(p.partition_index, &records, &aborted)? {
                            return Ok(false);
                        }
                    }
                    if self.max.is_some_and(|m| self.printed >= m) {
                        break;
                    }
                }
            }
        }
        match self.out.flush() {
            Ok(()) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    /// A position outside the log: to the start if below it, else the end
    /// (Kafka's `auto.offset.reset` applied to the nearer side).
    async fn reset_out_of_range(&mut self, c: &mut Client, p: i32) -> Result<(), ClientError> {
        let bounds = c.offsets(&self.topic, self.isolation).await?;
        if let (Some(pos), Some((start, end))) = (self.positions.get_mut(&p), bounds.get(&p)) {
            *pos = if *pos < *start { *start } else { *end };
        }
        Ok(())
    }

    /// Prints the records of one partition's fetched batches from the
    /// current position, skipping control batches and (read_committed)
    /// aborted transactions. False when stdout is gone.
    fn print_partition(
        &mut self,
        partition: i32,
        data: &[u8],
        aborted: &[fetch_response::AbortedTransaction],
    ) -> Result<bool, CliError> {
        let mut aborted: Vec<(i64, i64)> = aborted
            .iter()
            .map(|a| (a.first_offset, a.producer_id.0))
            .collect();
        aborted.sort_unstable();
        let mut aborted = aborted.into_iter().peekable();
        let mut open_aborts: HashSet<i64> = HashSet::new();
        let mut pos = 0usize;
        while pos + HEADER_LEN <= data.len() {
            let Some(h) = BatchHeader::parse(&data[pos..]) else {
                break;
            };
            let end = pos + h.total_len();
            if h.batch_length < 0 || end > data.len() {
                break; // a partial batch at the end of the response
            }
            let batch = &data[pos..end];
            pos = end;
            while let Some((first, pid)) = aborted.next_if(|(first, _)| *first <= h.base_offset) {
                let _ = first;
                open_aborts.insert(pid);
            }
            let position = self.positions.get(&partition).copied().unwrap_or(0);
            if h.is_control() {
                if let Some(marker) = parse_control_record(&batch[HEADER_LEN..]) {
                    if !marker.commit {
                        open_aborts.remove(&h.producer_id);
                    }
                }
            } else if !(h.is_transactional() && open_aborts.contains(&h.producer_id)) {
                let (_, records) = records::decode(batch, MAX_DECOMPRESSED).map_err(|e| {
                    CliError::Usage(format!(
                        "{}-{partition} offset {}: {e}",
                        self.topic.name, h.base_offset
                    ))
                })?;
                for r in records.iter().filter(|r| r.offset >= position) {
                    if self.max.is_some_and(|m| self.printed >= m) {
                        return Ok(true);
                    }
                    if !self.print(partition, r) {
                        return Ok(false);
                    }
                    self.printed += 1;
                    self.positions.insert(partition, r.offset + 1);
                }
            }
            if h.next_offset() > self.positions.get(&partition).copied().unwrap_or(0) {
                self.positions.insert(partition, h.next_offset());
            }
        }
        Ok(true)
    }

    fn print(&mut self, partition: i32, r: &Record) -> bool {
        let line = match self.format {
            Format::Json => {
                let mut o = Map::new();
                o.insert("topic".into(), Value::String(self.topic.name.clone()));
                o.insert("partition".into(), partition.into());
                o.insert("offset".into(), r.offset.into());
                o.insert("timestamp".into(), r.timestamp.into());
                put_bytes(&mut o, "key", r.key.as_deref());
                put_bytes(&mut o, "value", r.value.as_deref());
                let headers: Vec<Value> = r
                    .headers
                    .iter()
                    .map(|h| {
                        let mut ho = Map::new();
                        put_bytes(&mut ho, "key", Some(&h.key));
                        put_bytes(&mut ho, "value", h.value.as_deref());
                        Value::Object(ho)
                    })
                    .collect();
                o.insert("headers".into(), Value::Array(headers));
                Value::Object(o).to_string()
            }
            Format::Text => {
                let mut line = String::new();
                if self.print_headers {
                    if r.headers.is_empty() {
                        line.push_str("NO_HEADERS");
                    }
                    let hs: Vec<String> = r
                        .headers
                        .iter()
                        .map(|h| {
                            format!(
                                "{}:{}",
                                escape_bytes(&h.key),
                                h.value
                                    .as_deref()
                                    .map(escape_bytes)
                                    .unwrap_or("null".into())
                            )
                        })
                        .collect();
                    line.push_str(&hs.join(","));
                    line.push('\t');
                }
                if self.print_key {
                    line.push_str(&r.key.as_deref().map(escape_bytes).unwrap_or("null".into()));
                    line.push('\t');
                }
                line.push_str(
                    &r.value
                        .as_deref()
                        .map(escape_bytes)
                        .unwrap_or("null".into()),
                );
                line
            }
        };
        writeln!(self.out, "{line}").is_ok()
    }
}
