//! A partition: its [`Log`] of segments behind a mutex, plus the high
//! watermark broadcast that parked fetches wait on.
//!
//! Locking: `Partition::log` is a `std::sync::Mutex` held only for in-memory
//! bookkeeping and the page-cache `pwrite` of one batch: never across an
//! `.await`, never during fsync or a fetch read (readers take a
//! `SegmentSlice` and read after unlocking). `flush_lock` is a tokio mutex
//! that serialises fsyncs: produces waiting for durability queue on it, and
//! whoever gets it fsyncs everything written so far (group commit).
//!
//! Offsets: `log start <= high watermark <= log end`. Without fsync-before-ack
//! the high watermark is the log end offset (a single replica is always in
//! sync). With `flush.messages=1` it is the flushed offset, so a consumer
//! never sees a record that a power failure could still take back. The last
//! stable offset (read_committed's limit) is the high watermark or, if
//! lower, the first offset of the oldest open transaction.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

use crate::log::batch::{self, BatchHeader, ControlMarker, HEADER_LEN};
use crate::log::cleaner;
use crate::log::compression::Codec;
use crate::log::disk::{self, LogFile};
use crate::log::segment::{self, Segment, SegmentSlice};
use crate::log::topic_config::TopicConfig;
use crate::log::{LogError, Result};
use crate::txn::producer_state::ProducerInfo;
use crate::txn::{ProducerStateTable, SequenceCheck};

const LOG_START_CHECKPOINT: &str = "log-start-offset";

/// Producer state at a clean shutdown, loaded by the next start instead of
/// reading every batch header. Layout (big-endian):
///
/// ```text
/// magic "WPS1" | log end offset i64 | ProducerStateTable::encode
/// | aborted count i32 | per entry: segment base i64 | producer id i64
/// | first offset i64 | last offset i64 | last stable offset i64 | crc32c u32
/// ```
///
/// Not fsynced: it is only used after a clean shutdown, only if its CRC
/// holds and its log end offset is the log's, and it is deleted once read,
/// so a lost, torn or stale file just means the full scan.
const PRODUCER_SNAPSHOT: &str = "producer-state.snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"WPS1";

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// `-1` unless the topic uses LogAppendTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// Records returned by a read plus the partition's offsets at that moment.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// read_committed only: aborted transactions overlapping the records,
    /// sorted by first offset.
    pub aborted: Vec<AbortedTxn>,
}

/// Partition offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start: i64,
    pub high_watermark: i64,
    /// The last stable offset: the high watermark, or the first offset of
    /// the oldest open transaction if that is lower.
    pub last_stable: i64,
    pub log_end: i64,
}

/// One entry of the aborted-transaction index (Kafka's `.txnindex` entry):
/// the records of `producer_id` in `[first_offset, last_offset]` were
/// aborted; `last_offset` is the abort marker's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The LSO right after the abort: every transaction aborted later began
    /// at or after it, so a search for transactions overlapping offsets
    /// below it can stop here.
    pub last_stable_offset: i64,
}

/// Whether isolation is read_committed (upper bound LSO, aborted list) or
/// read_uncommitted (upper bound high watermark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

/// The mutable state of a partition log.
struct Log {
    dir: PathBuf,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    /// Everything below this offset has been fsynced (Kafka's recovery point).
    flushed_offset: i64,
    /// Rolled segments whose data may not be fsynced yet.
    unflushed_files: Vec<Arc<LogFile>>,
    unflushed_messages: i64,
    oldest_unflushed_ms: Option<i64>,
    config: Arc<TopicConfig>,
    /// Set after an I/O failure other than running out of space: the
    /// partition refuses reads and writes rather than serve a log whose
    /// state is unknown.
    offline: bool,
    /// The last append failed for lack of space (for logging once).
    disk_full: bool,
    /// Producers' epochs, recent sequence ranges and open transactions.
    producers: ProducerStateTable,
    /// The aborted-transaction index, per segment (by the base offset of
    /// the segment holding the abort marker, in marker order). Rebuilt from
    /// the segments' markers when the log is opened; dropped with its
    /// segment.
    aborted: BTreeMap<i64, Vec<AbortedTxn>>,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<Log>,
    hw_tx: watch::Sender<i64>,
    flush_lock: tokio::sync::Mutex<()>,
}

impl Partition {
    pub fn dir_name(topic: &str, index: i32) -> String {
        format!("{topic}-{index}")
    }

    /// Creates an empty partition directory and log.
    pub fn create(
        data_dir: &Path,
        topic: &str,
        index: i32,
        config: Arc<TopicConfig>,
    ) -> io::Result<Partition> {
        let dir = data_dir.join(Self::dir_name(topic, index));
        std::fs::create_dir_all(&dir)?;
        let seg = Segment::create(&dir, 0, config.segment_index_bytes)?;
        let mut segments = BTreeMap::new();
        segments.insert(0, seg);
        Ok(Self::from_log(
            topic,
            index,
            Log::new(dir, segments, 0, config),
        ))
    }

    /// Opens an existing partition directory. With `recover` (after an
    /// unclean shutdown) the active segment is fully validated and its torn
    /// or corrupt tail truncated.
    pub fn open(
        data_dir: &Path,
        topic: &str,
        index: i32,
        config: Arc<TopicConfig>,
        recover: bool,
    ) -> io::Result<Partition> {
        let dir = data_dir.join(Self::dir_name(topic, index));
        std::fs::create_dir_all(&dir)?;
        recover_swap(&dir)?;
        let mut bases: Vec<i64> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".log"))
                    .and_then(|b| b.parse().ok())
            })
            .collect();
        bases.sort_unstable();
        let checkpoint = std::fs::read_to_string(dir.join(LOG_START_CHECKPOINT))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        let mut segments = BTreeMap::new();
        let last = bases.last().copied();
        for base in bases {
            let is_active = Some(base) == last;
            let (seg, report) = Segment::open(
                &dir,
                base,
                config.segment_index_bytes,
                config.index_interval_bytes,
                recover && is_active,
                is_active,
            )?;
            if report.truncated_bytes > 0 {
                tracing::warn!(
                    partition = %format!("{topic}-{index}"),
                    segment = base,
                    kept_batches = report.valid_batches,
                    dropped_bytes = report.truncated_bytes,
                    reason = report.reason.unwrap_or("unknown"),
                    "recovery truncated a corrupt or torn segment tail"
                );
            }
            segments.insert(base, seg);
        }
        let log_start = match (segments.keys().next(), checkpoint) {
            (Some(first), Some(c)) => (*first).max(c),
            (Some(first), None) => *first,
            (None, c) => c.unwrap_or(0),
        };
        if segments.is_empty() {
            segments.insert(
                log_start,
                Segment::create(&dir, log_start, config.segment_index_bytes)?,
            );
        }
        let mut log = Log::new(dir, segments, log_start, config);
        log.log_start_offset = log.log_start_offset.min(log.log_end_offset);
        let snapshot = log.dir.join(PRODUCER_SNAPSHOT);
        let loaded = !recover
            && std::fs::read(&snapshot)
                .ok()
                .is_some_and(|bytes| log.load_producer_snapshot(&bytes));
        // Used once: a later crash must never find a stale snapshot.
        let _ = std::fs::remove_file(&snapshot);
        if !loaded {
            log.rebuild_producer_state()?;
        }
        Ok(Self::from_log(topic, index, log))
    }

    fn from_log(topic: &str, index: i32, log: Log) -> Partition {
        let (hw_tx, _) = watch::channel(log.high_watermark);
        Partition {
            topic: topic.to_owned(),
            index,
            log: Mutex::new(log),
            hw_tx,
            flush_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-updated in
        // a way later code relies on (offsets advance only after writes), so
        // recover the guard rather than poisoning every later request.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        self.lock().config.clone()
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        self.lock().config = config;
    }

    pub fn offsets(&self) -> Offsets {
        let log = self.lock();
        Offsets {
            log_start: log.log_start_offset,
            high_watermark: log.high_watermark,
            last_stable: log.last_stable_offset(),
            log_end: log.log_end_offset,
        }
    }

    /// Receives the high watermark whenever it moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw_tx.subscribe()
    }

    /// Validates and appends one Produce batch, then, for fsync-before-ack
    /// topics, waits for the group-commit fsync covering it.
    pub async fn append(&self, batch: &[u8], now_ms: i64) -> Result<AppendInfo> {
        let (info, flush) = self.append_nowait(batch, now_ms)?;
        if let Some(target) = flush {
            self.flush_to(target).await?;
        }
        Ok(info)
    }

    /// [`Self::append`] without the wait: the batch is in the page cache
    /// when this returns; `Some(target)` means `flush_to(target)` must
    /// complete before the append may be acknowledged (fsync-before-ack, or
    /// `flush.messages` reached). Lets a connection append its next
    /// pipelined batch while this one's fsync runs, so one group commit
    /// covers both.
    pub fn append_nowait(&self, batch: &[u8], now_ms: i64) -> Result<(AppendInfo, Option<i64>)> {
        let (info, wait_for_flush, flush_soon) = self.append_in_page_cache(batch, now_ms)?;
        let flush = (wait_for_flush || flush_soon).then_some(info.last_offset + 1);
        Ok((info, flush))
    }

    /// The synchronous part of an append: validation, offset assignment,
    /// roll, and the write into the page cache.
    fn append_in_page_cache(&self, batch: &[u8], now_ms: i64) -> Result<(AppendInfo, bool, bool)> {
        let mut guard = self.lock();
        let log = &mut *guard;
        if log.offline {
            return Err(LogError::Offline);
        }
        let config = log.config.clone();
        let header = batch::validate_produce_batch(batch, config.max_message_bytes)?;
        if config.cleanup_compact {
            check_keys(batch)?;
        }
        let recompressed = recompress(batch, &header, config.compression)?;
        let batch = recompressed.as_deref().unwrap_or(batch);
        let base_offset = log.log_end_offset;
        // The 61-byte header is patched on a copy, written with the records
        // in one vectored write.
        let mut head: [u8; HEADER_LEN] = batch[..HEADER_LEN].try_into().expect("validated length");
        let rest = &batch[HEADER_LEN..];
        batch::assign_offsets(&mut head, base_offset, 0);
        let log_append_time = if config.log_append_time {
            batch::set_log_append_time(&mut head, rest, now_ms);
            now_ms
        } else {
            -1
        };
        let header = BatchHeader::parse(&head).unwrap_or(header);
        match log.producers.check(&header) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } => {
                let info = AppendInfo {
                    base_offset,
                    last_offset,
                    log_append_time: -1,
                    log_start_offset: log.log_start_offset,
                };
                return Ok((info, config.fsync_before_ack(), false));
            }
            SequenceCheck::OutOfOrder => {
                return Err(LogError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                })
            }
            SequenceCheck::InvalidEpoch => {
                return Err(LogError::InvalidProducerEpoch {
                    producer_id: header.producer_id,
                    epoch: header.producer_epoch,
                })
            }
            SequenceCheck::InvalidTxnState => {
                return Err(LogError::InvalidTxnState {
                    producer_id: header.producer_id,
                })
            }
        }
        let (fsync_before_ack, flush_soon) =
            self.write_locked(log, &header, &head, rest, now_ms)?;
        log.producers.update(&header);
        let info = AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            log_append_time,
            log_start_offset: log.log_start_offset,
        };
        Ok((info, fsync_before_ack, flush_soon))
    }

    /// Writes one batch (its patched header and the rest) at the log end:
    /// rolls first if needed, advances the log end offset and, without
    /// fsync-before-ack, the high watermark. Returns (wait for the flush,
    /// flush soon by `flush.messages`). An I/O failure takes the partition
    /// offline.
    fn write_locked(
        &self,
        log: &mut Log,
        header: &BatchHeader,
        head: &[u8],
        rest: &[u8],
        now_ms: i64,
    ) -> Result<(bool, bool)> {
        if let Err(e) = log.maybe_roll(head.len() + rest.len(), now_ms) {
            return Err(self.write_failed(log, e, "segment roll"));
        }
        let interval = log.config.index_interval_bytes;
        let active = log
            .segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment");
        if let Err(e) = active.append(header, &[head, rest], interval, now_ms) {
            return Err(self.write_failed(log, e, "append"));
        }
        if let Err(e) = log.write_behind() {
            // The kernel reports a failed writeback once, possibly to this
            // call and not to a later fsync: as after a failed fsync, the
            // page cache state is unknown. (The batch was written; its
            // producer gets an error, as for a timeout.)
            log.offline = true;
            tracing::error!(partition = %format!("{}-{}", self.topic, self.index), error = %e, "writeback failed; partition offline");
            return Err(e.into());
        }
        if log.disk_full {
            log.disk_full = false;
            tracing::info!(partition = %format!("{}-{}", self.topic, self.index), "appends succeed again: space was freed");
        }
        log.log_end_offset = header.next_offset();
        log.unflushed_messages += header.records_count as i64;
        log.oldest_unflushed_ms.get_or_insert(now_ms);
        let fsync_before_ack = log.config.fsync_before_ack();
        if !fsync_before_ack {
            log.high_watermark = log.log_end_offset;
            self.hw_tx.send_replace(log.high_watermark);
        }
        let flush_soon = !fsync_before_ack && log.unflushed_messages >= log.config.flush_messages;
        Ok((fsync_before_ack, flush_soon))
    }

    /// Classifies a failed write, which has already been undone (the log
    /// is at its last whole batch). Out of space: refused, retried by the
    /// next append, the partition stays online for reads and writes. Any
    /// other error leaves the file in an unknown state: the partition goes
    /// offline until a restart recovers it.
    fn write_failed(&self, log: &mut Log, e: io::Error, what: &str) -> LogError {
        let partition = format!("{}-{}", self.topic, self.index);
        if disk::is_out_of_space(&e) {
            if !log.disk_full {
                log.disk_full = true;
                tracing::error!(%partition, error = %e, "{what} failed: out of space; produces are refused until space is freed, reads continue");
            }
            return LogError::DiskFull(e);
        }
        log.offline = true;
        tracing::error!(%partition, error = %e, "{what} failed; partition offline until restart");
        LogError::Io(e)
    }

    /// Lets `producer_id` at `epoch` write transactional batches here (the
    /// coordinator calls this for AddPartitionsToTxn).
    pub fn allow_txn(&self, producer_id: i64, epoch: i16) {
        self.lock().producers.allow_txn(producer_id, epoch);
    }

    /// Ends `producer_id`'s transaction in this partition by appending a
    /// commit or abort marker; an abort adds the transaction to the aborted
    /// index. Waits for the fsync on fsync-before-ack topics. Returns the
    /// marker's offset.
    pub async fn write_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: ControlMarker,
        now_ms: i64,
    ) -> Result<i64> {
        let (offset, wait) = {
            let mut guard = self.lock();
            let log = &mut *guard;
            if log.offline {
                return Err(LogError::Offline);
            }
            if !log.producers.check_marker(producer_id, epoch) {
                return Err(LogError::InvalidProducerEpoch { producer_id, epoch });
            }
            let batch = batch::encode_control_batch(producer_id, epoch, marker, now_ms);
            let offset = log.log_end_offset;
            let mut head: [u8; HEADER_LEN] =
                batch[..HEADER_LEN].try_into().expect("encoded header");
            batch::assign_offsets(&mut head, offset, 0);
            let header = BatchHeader::parse(&head).expect("encoded header");
            let (fsync, soon) =
                self.write_locked(log, &header, &head, &batch[HEADER_LEN..], now_ms)?;
            log.apply_marker(&header, marker);
            (offset, fsync || soon)
        };
        if wait {
            self.flush_to(offset + 1).await?;
        }
        Ok(offset)
    }

    /// Every producer with state in this partition (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.lock().producers.describe()
    }

    /// Forgets producers idle for `expiration_ms` (no open transaction).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock().producers.expire(now_ms, expiration_ms)
    }

    /// fsyncs until everything below `target` is durable. Concurrent callers
    /// share fsyncs: the one holding `flush_lock` covers all earlier writes.
    pub async fn flush_to(&self, target: i64) -> Result<()> {
        let _turn = self.flush_lock.lock().await;
        let (files, upto) = {
            let mut log = self.lock();
            if log.offline {
                return Err(LogError::Offline);
            }
            if log.flushed_offset >= target {
                return Ok(());
            }
            let mut files = std::mem::take(&mut log.unflushed_files);
            files.push(
                log.segments
                    .values()
                    .next_back()
                    .expect("active segment")
                    .log_file(),
            );
            log.unflushed_messages = 0;
            log.oldest_unflushed_ms = None;
            (files, log.log_end_offset)
        };
        // fsync off the async runtime: it can take milliseconds to seconds.
        let result =
            tokio::task::spawn_blocking(move || files.iter().try_for_each(|f| f.sync_data())).await;
        let mut log = self.lock();
        match result {
            Ok(Ok(())) => {
                log.flushed_offset = log.flushed_offset.max(upto);
                if log.config.fsync_before_ack() && log.flushed_offset > log.high_watermark {
                    log.high_watermark = log.flushed_offset.min(log.log_end_offset);
                    self.hw_tx.send_replace(log.high_watermark);
                }
                Ok(())
            }
            Ok(Err(e)) => {
                // A failed fsync leaves the page cache state unknown (the
                // kernel may have dropped the dirty pages): never pretend.
                log.offline = true;
                tracing::error!(partition = %format!("{}-{}", self.topic, self.index), error = %e, "fsync failed; partition offline");
                Err(e.into())
            }
            Err(join) => Err(LogError::Io(io::Error::other(join.to_string()))),
        }
    }

    /// Periodic flush by `flush.ms`; returns whether a flush ran.
    pub async fn maybe_flush_by_time(&self, now_ms: i64) -> Result<bool> {
        let target = {
            let log = self.lock();
            match log.oldest_unflushed_ms {
                Some(t) if now_ms.saturating_sub(t) >= log.config.flush_ms => log.log_end_offset,
                _ => return Ok(false),
            }
        };
        self.flush_to(target).await.map(|_| true)
    }

    /// Reads whole batches from the one containing `offset`, up to the high
    /// watermark (read_uncommitted) or the last stable offset
    /// (read_committed, which also lists the aborted transactions among the
    /// records returned).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        isolation: Isolation,
    ) -> Result<ReadResult> {
        let (slice, upper, hw, lso, log_start, mut aborted) = {
            let log = self.lock();
            if log.offline {
                return Err(LogError::Offline);
            }
            if offset < log.log_start_offset || offset > log.log_end_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: log.log_start_offset,
                    log_end: log.log_end_offset,
                });
            }
            let lso = log.last_stable_offset();
            let upper = match isolation {
                Isolation::ReadUncommitted => log.high_watermark,
                Isolation::ReadCommitted => lso,
            };
            if offset >= upper {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    high_watermark: log.high_watermark,
                    last_stable_offset: lso,
                    log_start_offset: log.log_start_offset,
                    aborted: Vec::new(),
                });
            }
            let aborted = match isolation {
                Isolation::ReadUncommitted => Vec::new(),
                Isolation::ReadCommitted => log.aborted_between(offset, upper),
            };
            (
                log.read_slice(offset),
                upper,
                log.high_watermark,
                lso,
                log.log_start_offset,
                aborted,
            )
        };
        let records = match slice {
            Some(slice) => slice.read(offset, upper, max_bytes, min_one)?,
            None => Bytes::new(),
        };
        // Only transactions that overlap what is returned (the header walk
        // is skipped on the common path: nothing aborted nearby).
        if !aborted.is_empty() {
            match batch::last_offset_in(&records) {
                Some(last) => aborted.retain(|t| t.first_offset <= last),
                None => aborted.clear(),
            }
        }
        Ok(ReadResult {
            records,
            high_watermark: hw,
            last_stable_offset: lso,
            log_start_offset: log_start,
            aborted,
        })
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is
    /// `>= ts`, with that timestamp; `None` if no record is that late.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let (slices, hw, log_start): (Vec<SegmentSlice>, i64, i64) = {
            let log = self.lock();
            if log.offline {
                return Err(LogError::Offline);
            }
            let slices = log
                .segments
                .values()
                .filter(|s| s.max_timestamp() >= ts)
                .map(|s| s.slice_for_timestamp(ts))
                .collect();
            (slices, log.high_watermark, log.log_start_offset)
        };
        for slice in slices {
            if let Some((offset, found_ts)) = slice.find_offset_by_timestamp(ts, hw)? {
                return Ok(Some((offset.max(log_start), found_ts)));
            }
        }
        Ok(None)
    }

    /// ListOffsets -3: the offset and value of the largest timestamp.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let (slice, ts, hw) = {
            let log = self.lock();
            let best = log
                .segments
                .values()
                .filter(|s| !s.is_empty())
                .max_by_key(|s| s.max_timestamp());
            match best {
                Some(s) if s.max_timestamp() >= 0 => (
                    s.slice_from(s.offset_of_max_timestamp()),
                    s.max_timestamp(),
                    log.high_watermark,
                ),
                _ => return Ok(None),
            }
        };
        Ok(slice.find_offset_by_timestamp(ts, hw)?)
    }

    /// DeleteRecords: moves the log start offset forward (`-1` = high
    /// watermark) and deletes segments wholly below it.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let mut log = self.lock();
        if log.offline {
            return Err(LogError::Offline);
        }
        let target = if offset == -1 {
            log.high_watermark
        } else {
            offset
        };
        if target < 0 || target > log.high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: log.log_start_offset,
                log_end: log.high_watermark,
            });
        }
        if target > log.log_start_offset {
            // Persisted first: a DeleteRecords that fails (a full disk)
            // changes nothing.
            log.write_log_start_checkpoint(target)?;
            log.log_start_offset = target;
            log.delete_segments_below_log_start()?;
        }
        Ok(log.log_start_offset)
    }

    /// Retention by time and size; deletes whole closed segments.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let mut log = self.lock();
        if log.offline || !log.config.cleanup_delete {
            return Ok(0);
        }
        log.enforce_retention(now_ms)
    }

    /// Clean shutdown: fsync everything and seal the active segment's
    /// indexes. `Ok(false)` if the partition is not in a state the next
    /// start may trust without recovery (offline, or its indexes could not
    /// be written for lack of space); an error if data could not be fsynced.
    pub fn close(&self) -> io::Result<bool> {
        let mut log = self.lock();
        if log.offline {
            return Ok(false);
        }
        for f in std::mem::take(&mut log.unflushed_files) {
            f.sync_data()?;
        }
        let partition = format!("{}-{}", self.topic, self.index);
        let mut clean = true;
        if let Some(seg) = log.segments.values_mut().next_back() {
            seg.flush()?;
            match seg.seal().and_then(|()| seg.flush_indexes()) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(%partition, error = %e, "cannot write the active segment's indexes; the next start recovers them");
                    clean = false;
                }
            }
        }
        log.flushed_offset = log.log_end_offset;
        if let Err(e) = log.write_producer_snapshot() {
            // Only costs the next start a full header scan.
            tracing::warn!(%partition, error = %e, "cannot write producer state snapshot");
        }
        Ok(clean)
    }

    /// What a cleaning pass needs (log compaction); `None` when the log
    /// is not compacted or is offline.
    pub fn clean_view(&self) -> Option<cleaner::CleanView> {
        let log = self.lock();
        if log.offline || !log.config.cleanup_compact {
            return None;
        }
        let active_base = *log.segments.keys().next_back()?;
        Some(cleaner::CleanView {
            dir: log.dir.clone(),
            config: log.config.clone(),
            log_start: log.log_start_offset,
            log_end: log.log_end_offset,
            segments: log
                .segments
                .values()
                .filter(|s| s.base_offset != active_base)
                .map(|s| cleaner::SegmentInfo {
                    base: s.base_offset,
                    next_offset: s.next_offset(),
                    size: s.size(),
                    max_timestamp: s.max_timestamp(),
                    slice: s.slice_from(s.base_offset),
                })
                .collect(),
            active_base,
            last_stable: log.last_stable_offset(),
            producer_last: log.producers.last_offsets(),
            aborted: log.aborted.values().flatten().copied().collect(),
        })
    }

    /// Replaces the sealed segments `old` (consecutive, the first based at
    /// `new_base`) with the cleaned segment in `<new_base>.log.cleaned`.
    /// `Ok(false)` (and nothing changed) if those segments are no longer
    /// all there: retention, DeleteRecords or a roll changed the log.
    ///
    /// Crash safety: the swap is committed by writing the manifest
    /// `cleaner-swap` (new base, old bases) after the cleaned file is
    /// fsynced; then the old files are renamed `.deleted`, the cleaned one
    /// takes the final name, the directory is fsynced, the manifest and
    /// the `.deleted` files are removed. [`recover_swap`] finishes or
    /// discards an interrupted swap at the next open.
    pub fn swap_cleaned(&self, new_base: i64, old: &[i64]) -> io::Result<bool> {
        let mut log = self.lock();
        let active_base = *log.segments.keys().next_back().expect("active segment");
        if log.offline
            || old.first() != Some(&new_base)
            || old
                .iter()
                .any(|b| *b == active_base || !log.segments.contains_key(b))
        {
            return Ok(false);
        }
        let dir = log.dir.clone();
        crash_point(&dir, 0)?;
        write_manifest(&dir, new_base, old)?;
        // Committed: from here a failure leaves the swap to the recovery
        // of the next start, and the partition offline until then.
        let result = Self::finish_swap(&mut log, &dir, new_base, old);
        if let Err(e) = &result {
            tracing::error!(dir = %dir.display(), error = %e, "a cleaned-segment swap failed; the partition is offline until a restart completes it");
            log.offline = true;
        }
        result.map(|()| true)
    }

    fn finish_swap(log: &mut Log, dir: &Path, new_base: i64, old: &[i64]) -> io::Result<()> {
        let mut removed = Vec::new();
        for b in old {
            let seg = log.segments.remove(b).expect("checked");
            std::fs::rename(segment::log_path(dir, *b), deleted_path(dir, *b))?;
            removed.push(seg);
        }
        crash_point(dir, 1)?;
        for seg in removed {
            // Readers still holding the old files keep reading them.
            seg.delete_files()?;
        }
        crash_point(dir, 2)?;
        std::fs::rename(
            cleaner::cleaned_path(dir, new_base),
            segment::log_path(dir, new_base),
        )?;
        sync_dir(dir)?;
        crash_point(dir, 3)?;
        // Indexes are rebuilt from the cleaned log and written.
        let (seg, _) = Segment::open(
            dir,
            new_base,
            log.config.segment_index_bytes,
            log.config.index_interval_bytes,
            true,
            false,
        )?;
        log.segments.insert(new_base, seg);
        // Transaction markers are kept, so the aborted index only moves.
        let mut moved = Vec::new();
        for b in old {
            moved.extend(log.aborted.remove(b).unwrap_or_default());
        }
        if !moved.is_empty() {
            log.aborted.insert(new_base, moved);
        }
        std::fs::remove_file(dir.join(SWAP_MANIFEST))?;
        for b in old {
            let _ = std::fs::remove_file(deleted_path(dir, *b));
        }
        Ok(())
    }

    /// Size of all segments in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }
}

/// Tests stop a swap at step N in a directory (as if the process died
/// there) by setting this; the partition is then reopened from its files.
#[cfg(test)]
pub(crate) static SWAP_CRASH: std::sync::Mutex<Option<(PathBuf, i32)>> =
    std::sync::Mutex::new(None);

fn crash_point(_dir: &Path, _step: i32) -> io::Result<()> {
    #[cfg(test)]
    if let Some((dir, step)) = SWAP_CRASH.lock().unwrap().as_ref() {
        if dir == _dir && *step == _step {
            return Err(io::Error::other("injected crash"));
        }
    }
    Ok(())
}

/// Manifest of a cleaned-segment swap in progress (see
/// [`Partition::swap_cleaned`]): line 1 the new base, line 2 the old bases.
const SWAP_MANIFEST: &str = "cleaner-swap";

fn deleted_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log.deleted"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_manifest(dir: &Path, new_base: i64, old: &[i64]) -> io::Result<()> {
    let olds: Vec<String> = old.iter().map(|b| b.to_string()).collect();
    crate::log::manager::write_atomic(
        &dir.join(SWAP_MANIFEST),
        format!("{new_base}\n{}\n", olds.join(" ")).as_bytes(),
    )
}

/// Finishes or discards a cleaned-segment swap interrupted by a crash,
/// before the segments are listed. With a manifest (the swap committed):
/// the old segments' files go and the cleaned log takes the final name
/// (it may already have). Without one: leftover `.cleaned` (a pass that
/// never committed) and `.deleted` files are removed.
fn recover_swap(dir: &Path) -> io::Result<()> {
    let manifest = dir.join(SWAP_MANIFEST);
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let mut lines = text.lines();
        let new_base = lines.next().and_then(|l| l.trim().parse::<i64>().ok());
        let old: Option<Vec<i64>> = lines
            .next()
            .map(|l| l.split_whitespace().map(|b| b.parse().ok()).collect())
            .unwrap_or(None);
        if let (Some(new_base), Some(old)) = (new_base, old) {
            let cleaned = cleaner::cleaned_path(dir, new_base);
            let renamed = !cleaned.exists();
            for b in &old {
                let _ = std::fs::remove_file(deleted_path(dir, *b));
                if *b == new_base && renamed {
                    continue; // the final name already holds the cleaned log
                }
                for ext in ["log", "index", "timeindex"] {
                    let _ = std::fs::remove_file(dir.join(format!("{b:020}.{ext}")));
                }
            }
            if !renamed {
                std::fs::rename(&cleaned, segment::log_path(dir, new_base))?;
            }
            // Its indexes are rebuilt from the log at open.
            for ext in ["index", "timeindex"] {
                let _ = std::fs::remove_file(dir.join(format!("{new_base:020}.{ext}")));
            }
            sync_dir(dir)?;
            tracing::warn!(dir = %dir.display(), "completed a cleaned-segment swap interrupted by a crash");
        }
        std::fs::remove_file(&manifest)?;
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".log.cleaned") || name.ends_with(".log.deleted") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Topic-level `compression.type` other than `producer`: a batch in
/// another codec is rewritten in the topic's (records, offsets deltas,
/// timestamps, producer fields and the last offset delta kept, as Kafka's
/// LogValidator does); a batch already in it is kept as sent.
fn recompress(batch: &[u8], h: &BatchHeader, codec: Option<Codec>) -> Result<Option<Vec<u8>>> {
    let Some(codec) = codec else {
        return Ok(None);
    };
    if h.compression_codec() == codec as i16 {
        return Ok(None);
    }
    const LIMIT: usize = 256 << 20;
    let (_, records) = crate::log::records::decode(batch, LIMIT)
        .map_err(|_| LogError::Corrupt("cannot decode a batch to recompress it"))?;
    let spec = crate::log::records::BatchSpec::of(h, codec);
    crate::log::records::encode(&spec, &records)
        .map(Some)
        .map_err(LogError::Io)
}

/// A compacted topic keeps the latest record per key, so every record
/// must have one (Kafka's LogValidator): the batch is refused whole, with
/// the indexes of the key-less records.
fn check_keys(batch: &[u8]) -> Result<()> {
    // Decompression is bounded: a produce batch is hostile input.
    const LIMIT: usize = 256 << 20;
    let (_, records) = crate::log::records::decode(batch, LIMIT).map_err(|_| {
        LogError::Corrupt("cannot decode the records of a batch for a compacted topic")
    })?;
    let indexes: Vec<i32> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i as i32)
        .collect();
    if indexes.is_empty() {
        Ok(())
    } else {
        Err(LogError::KeylessRecords { indexes })
    }
}

impl Log {
    fn new(
        dir: PathBuf,
        segments: BTreeMap<i64, Segment>,
        log_start_offset: i64,
        config: Arc<TopicConfig>,
    ) -> Log {
        let log_end_offset = segments
            .values()
            .next_back()
            .map(Segment::next_offset)
            .unwrap_or(log_start_offset);
        Log {
            dir,
            segments,
            log_start_offset,
            log_end_offset,
            high_watermark: log_end_offset,
            flushed_offset: log_end_offset,
            unflushed_files: Vec::new(),
            unflushed_messages: 0,
            oldest_unflushed_ms: None,
            config,
            offline: false,
            disk_full: false,
            producers: ProducerStateTable::default(),
            aborted: BTreeMap::new(),
        }
    }

    /// The high watermark, or the first offset of the oldest open
    /// transaction if lower.
    fn last_stable_offset(&self) -> i64 {
        match self.producers.first_unstable_offset() {
            Some(first) => first.min(self.high_watermark),
            None => self.high_watermark,
        }
    }

    /// Applies an appended marker: closes the transaction and, for an
    /// abort, indexes it in the segment holding the marker.
    fn apply_marker(&mut self, h: &BatchHeader, marker: ControlMarker) {
        let first = self.producers.complete_txn(
            h.producer_id,
            h.producer_epoch,
            marker.coordinator_epoch,
            h.max_timestamp,
        );
        if let (Some(first_offset), false) = (first, marker.commit) {
            let marker_offset = h.base_offset;
            let last_stable_offset = self
                .producers
                .first_unstable_offset_except(h.producer_id)
                .unwrap_or(marker_offset + 1);
            let segment = self
                .segments
                .range(..=marker_offset)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(marker_offset);
            self.aborted.entry(segment).or_default().push(AbortedTxn {
                producer_id: h.producer_id,
                first_offset,
                last_offset: marker_offset,
                last_stable_offset,
            });
        }
    }

    /// Aborted transactions that end at or after `offset` and begin below
    /// `upper`, sorted by first offset.
    fn aborted_between(&self, offset: i64, upper: i64) -> Vec<AbortedTxn> {
        let from = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        let mut out = Vec::new();
        'segments: for entries in self.aborted.range(from..).map(|(_, v)| v) {
            for t in entries {
                if t.last_offset >= offset && t.first_offset < upper {
                    out.push(*t);
                }
                if t.last_stable_offset >= upper {
                    break 'segments;
                }
            }
        }
        out.sort_by_key(|t| t.first_offset);
        out
    }

    /// Rebuilds producer state, open transactions and the aborted index
    /// from the batch headers and markers of every segment.
    fn rebuild_producer_state(&mut self) -> io::Result<()> {
        self.producers = ProducerStateTable::default();
        self.aborted.clear();
        let slices: Vec<SegmentSlice> = self
            .segments
            .values()
            .map(|s| s.slice_from(s.base_offset))
            .collect();
        for slice in slices {
            slice.for_each_batch(|h, marker| {
                if h.next_offset() <= self.log_start_offset {
                    return;
                }
                match marker {
                    Some(m) => self.apply_marker(h, m),
                    None if h.is_control() => {}
                    None => self.producers.update(h),
                }
            })?;
        }
        Ok(())
    }

    fn write_producer_snapshot(&self) -> io::Result<()> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(SNAPSHOT_MAGIC);
        b.extend_from_slice(&self.log_end_offset.to_be_bytes());
        self.producers.encode(&mut b);
        let count: usize = self.aborted.values().map(Vec::len).sum();
        b.extend_from_slice(&(count as i32).to_be_bytes());
        for (segment, entries) in &self.aborted {
            for t in entries {
                for v in [
                    *segment,
                    t.producer_id,
                    t.first_offset,
                    t.last_offset,
                    t.last_stable_offset,
                ] {
                    b.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        let tmp = self.dir.join(format!("{PRODUCER_SNAPSHOT}.tmp"));
        std::fs::write(&tmp, &b)?;
        std::fs::rename(&tmp, self.dir.join(PRODUCER_SNAPSHOT))
    }

    /// Restores producer state and the aborted index from a snapshot
    /// written at this log end offset; false (nothing changed) otherwise.
    fn load_producer_snapshot(&mut self, bytes: &[u8]) -> bool {
        let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
            return false;
        };
        if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
            return false;
        }
        let Some((magic, mut rest)) = body.split_first_chunk::<4>() else {
            return false;
        };
        let i64_ = |b: &mut &[u8]| {
            let (head, tail) = b.split_first_chunk::<8>()?;
            *b = tail;
            Some(i64::from_be_bytes(*head))
        };
        if magic != SNAPSHOT_MAGIC || i64_(&mut rest) != Some(self.log_end_offset) {
            return false;
        }
        let Some(table) = ProducerStateTable::decode(&mut rest) else {
            return false;
        };
        let Some((count, mut rest)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let mut aborted: BTreeMap<i64, Vec<AbortedTxn>> = BTreeMap::new();
        for _ in 0..i32::from_be_bytes(*count).max(0) {
            let mut next = || i64_(&mut rest);
            let (
                Some(segment),
                Some(producer_id),
                Some(first_offset),
                Some(last_offset),
                Some(lso),
            ) = (next(), next(), next(), next(), next())
            else {
                return false;
            };
            if self.segments.contains_key(&segment) {
                aborted.entry(segment).or_default().push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset,
                    last_stable_offset: lso,
                });
            }
        }
        self.producers = table;
        self.aborted = aborted;
        true
    }

    /// The first segment with data at or after `offset`: the one holding
    /// it, or a later one when `offset` is past a segment's last batch
    /// (the end of a segment, or a gap compaction left, possibly spanning
    /// segments it emptied).
    /// Write-behind after an append (`log-tail-cache-bytes`): the active
    /// segment starts writeback of what it filled and evicts what is
    /// `window` behind its end; once the window lies wholly inside the
    /// active segment, the previous one (sealed by a roll) is evicted too.
    fn write_behind(&mut self) -> io::Result<()> {
        let Some(window) = self.config.tail_cache_bytes else {
            return Ok(());
        };
        let mut newest = self.segments.values_mut().rev();
        let active = newest.next().expect("active segment");
        active.write_behind(window)?;
        if active.size() >= window {
            if let Some(previous) = newest.next() {
                previous.evict_rest()?;
            }
        }
        Ok(())
    }

    /// A readable slice of the segment holding `offset` that drops what it
    /// reads from the page cache when that is cold: below what the active
    /// segment evicted, or in a sealed segment the tail window has left.
    fn read_slice(&self, offset: i64) -> Option<SegmentSlice> {
        let segment = self.segment_for(offset)?;
        let slice = segment.slice_from(offset);
        let Some(window) = self.config.tail_cache_bytes else {
            return Some(slice);
        };
        let mut newest = self.segments.values().rev();
        let active = newest.next().expect("active segment");
        let cold_below = if segment.base_offset == active.base_offset {
            active.evicted()
        } else if active.size() < window
            && newest
                .next()
                .is_some_and(|p| p.base_offset == segment.base_offset)
        {
            segment.evicted()
        } else {
            u64::MAX
        };
        Some(slice.cold_below(cold_below))
    }

    fn segment_for(&self, offset: i64) -> Option<&Segment> {
        let floor = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        self.segments
            .range(floor..)
            .map(|(_, s)| s)
            .find(|s| !s.is_empty() && offset < s.next_offset())
    }

    fn maybe_roll(&mut self, len: usize, now_ms: i64) -> io::Result<()> {
        let active = self.segments.values().next_back().expect("active segment");
        if active.should_roll(
            len,
            self.config.segment_bytes,
            self.config.roll_ms(),
            now_ms,
        ) {
            self.roll()?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end
    /// offset. All or nothing: if the new segment cannot be created or the
    /// old one's indexes cannot be written (a full disk), the old segment
    /// stays active and unchanged.
    fn roll(&mut self) -> io::Result<()> {
        let base = self.log_end_offset;
        let active_base = *self.segments.keys().next_back().expect("active segment");
        if active_base == base {
            return Ok(()); // already empty at this offset
        }
        let seg = Segment::create(&self.dir, base, self.config.segment_index_bytes)?;
        let active = self
            .segments
            .values_mut()
            .next_back()
            .expect("active segment");
        if let Err(e) = active.seal() {
            if let Err(undo) = seg.delete_files() {
                tracing::warn!(error = %undo, "cannot remove the new segment of a failed roll");
            }
            return Err(e);
        }
        let files = active.files();
        if self.config.fsync_before_ack() {
            // The next group commit fsyncs them before acknowledging anything.
            self.unflushed_files.extend(files);
        } else {
            // As Kafka does, flush a rolled segment in the background, so
            // recovery after a power failure only needs the active segment.
            std::thread::spawn(move || {
                if let Err(e) = files.iter().try_for_each(|f| f.sync_data()) {
                    tracing::warn!(error = %e, "background fsync of a rolled segment failed");
                }
            });
        }
        self.segments.insert(base, seg);
        if self.config.cleanup_compact {
            cleaner::wake();
        }
        Ok(())
    }

    fn write_log_start_checkpoint(&self, log_start: i64) -> io::Result<()> {
        let tmp = self.dir.join(format!("{LOG_START_CHECKPOINT}.tmp"));
        let written = std::fs::write(&tmp, log_start.to_string())
            .and_then(|()| File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(LOG_START_CHECKPOINT)));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    fn delete_segments_below_log_start(&mut self) -> io::Result<usize> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let (&base, first) = self.segments.iter().next().expect("non-empty");
            if first.next_offset() > self.log_start_offset
                || first.is_empty() && base >= self.log_start_offset
            {
                break;
            }
            let seg = self.segments.remove(&base).expect("present");
            self.aborted.remove(&base);
            seg.delete_files()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn enforce_retention(&mut self, now_ms: i64) -> Result<usize> {
        let retention_ms = self.config.retention_ms;
        let retention_bytes = self.config.retention_bytes;
        // An expired non-empty active segment is rolled so it can go too.
        if retention_ms >= 0 {
            let active = self.segments.values().next_back().expect("active segment");
            if !active.is_empty() && active.max_timestamp() < now_ms - retention_ms {
                // On a full disk the roll may fail; older segments can
                // still go (and free the space).
                if let Err(e) = self.roll() {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot roll an expired active segment");
                }
            }
        }
        let mut total: i64 = self.segments.values().map(|s| s.size() as i64).sum();
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let first = self.segments.values().next().expect("non-empty");
            let by_time = retention_ms >= 0 && first.max_timestamp() < now_ms - retention_ms;
            let by_size = retention_bytes >= 0 && total - first.size() as i64 >= retention_bytes;
            if !(by_time || by_size) {
                break;
            }
            let base = first.base_offset;
            let seg = self.segments.remove(&base).expect("present");
            self.aborted.remove(&base);
            total -= seg.size() as i64;
            seg.delete_files()?;
            deleted += 1;
        }
        let first_base = *self.segments.keys().next().expect("non-empty");
        if first_base > self.log_start_offset {
            self.log_start_offset = first_base;
            // Deleted segments already moved the start; the checkpoint only
            // matters if every segment below a DeleteRecords offset is gone,
            // and a start derives the same value from the first segment.
            if let Err(e) = self.write_log_start_checkpoint(first_base) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the log start checkpoint");
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::log::batch::tests::make_batch;
    use indexmap::IndexMap;

    fn cfg(pairs: &[(&str, &str)]) -> Arc<TopicConfig> {
        let o: IndexMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(TopicConfig::resolve(&Config::default(), &o))
    }

    #[tokio::test]
    async fn append_roll_read_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&[("segment.bytes", "300")]);
        let p = Partition::create(dir.path(), "t", 0, c.clone()).unwrap();
        for i in 0..20 {
            let info = p
                .append(&make_batch(&[b"0123456789", b"x"], i), 1000)
                .await
                .unwrap();
            assert_eq!(info.base_offset, i * 2);
        }
        assert!(p.segment_count() > 3, "rolled by size");
        let mut next = 0;
        while next < 40 {
            let r = p
                .read(next, 1 << 20, true, Isolation::ReadUncommitted)
                .unwrap();
            assert!(!r.records.is_empty());
            let mut pos = 0;
            while pos < r.records.len() {
                let h = BatchHeader::parse(&r.records[pos..]).unwrap();
                assert!(h.last_offset() >= next);
                next = h.next_offset();
                pos += h.total_len();
            }
        }
        assert!(matches!(
            p.read(41, 100, true, Isolation::ReadUncommitted),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(p
            .read(40, 100, true, Isolation::ReadUncommitted)
            .unwrap()
            .records
            .is_empty());
        p.close().unwrap();
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, c, false).unwrap();
        assert_eq!(
            p.offsets(),
            Offsets {
                log_start: 0,
                high_watermark: 40,
                last_stable: 40,
                log_end: 40
            }
        );
        assert_eq!(p.offset_for_timestamp(10).unwrap(), Some((19, 10)));
        assert_eq!(p.offset_for_timestamp(100).unwrap(), None);
        assert_eq!(p.max_timestamp_offset().unwrap(), Some((39, 20)));
    }

    fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&[u8]]) -> Bytes {
        let records: Vec<batch::PlainRecord> = values
            .iter()
            .map(|v| batch::PlainRecord {
                key: None,
                value: Some(Bytes::copy_from_slice(v)),
                timestamp: 1000,
            })
            .collect();
        batch::encode_transactional(&records, (pid, epoch, seq))
    }

    fn marker(commit: bool) -> ControlMarker {
        ControlMarker {
            commit,
            coordinator_epoch: 0,
        }
    }

    fn committed(p: &Partition, from: i64) -> ReadResult {
        p.read(from, 1 << 20, true, Isolation::ReadCommitted)
            .unwrap()
    }

    #[tokio::test]
    async fn lso_and_aborted_index_across_rolls_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        // Small segments: every transaction spans several.
        let c = cfg(&[("segment.bytes", "250")]);
        let p = Partition::create(dir.path(), "t", 0, c.clone()).unwrap();
        p.append(&make_batch(&[b"plain"], 0), 0).await.unwrap(); // 0
        p.allow_txn(1, 0);
        p.allow_txn(2, 0);
        p.append(&txn_batch(1, 0, 0, &[b"a1", b"a2"]), 0)
            .await
            .unwrap(); // 1-2
        p.append(&txn_batch(2, 0, 0, &[b"b1"]), 0).await.unwrap(); // 3
        p.append(&txn_batch(1, 0, 2, &[b"a3"]), 0).await.unwrap(); // 4
        let o = p.offsets();
        assert_eq!((o.high_watermark, o.last_stable), (5, 1));
        // read_committed stops at the LSO; read_uncommitted does not.
        let r = committed(&p, 0);
        assert_eq!(batch::last_offset_in(&r.records), Some(0));
        assert_eq!(r.last_stable_offset, 1);
        assert!(committed(&p, 1).records.is_empty());
        // Abort producer 1 (offsets 1-4 of it), commit producer 2.
        assert_eq!(p.write_marker(1, 0, marker(false), 0).await.unwrap(), 5);
        assert_eq!(p.offsets().last_stable, 3, "producer 2 still open at 3");
        assert_eq!(p.write_marker(2, 0, marker(true), 0).await.unwrap(), 6);
        assert_eq!(p.offsets().last_stable, 7);
        // A third transaction, aborted, after more data.
        p.append(&make_batch(&[b"plain2"], 0), 0).await.unwrap(); // 7
        p.allow_txn(2, 0);
        p.append(&txn_batch(2, 0, 1, &[b"b2"]), 0).await.unwrap(); // 8
        p.write_marker(2, 0, marker(false), 0).await.unwrap(); // 9
        assert!(p.segment_count() >= 3, "rolled: {}", p.segment_count());
        let expect_all = vec![
            AbortedTxn {
                producer_id: 1,
                first_offset: 1,
                last_offset: 5,
                last_stable_offset: 3,
            },
            AbortedTxn {
                producer_id: 2,
                first_offset: 8,
                last_offset: 9,
                last_stable_offset: 10,
            },
        ];
        // Reads (one segment at a time) from `from` to the LSO 10: the
        // aborted transactions listed along the way.
        let aborted_seen = |p: &Partition, mut from: i64| {
            let mut seen: Vec<AbortedTxn> = Vec::new();
            while from < 10 {
                let r = committed(p, from);
                assert!(r
                    .aborted
                    .windows(2)
                    .all(|w| w[0].first_offset <= w[1].first_offset));
                for t in &r.aborted {
                    if !seen.contains(t) {
                        seen.push(*t);
                    }
                }
                from = batch::last_offset_in(&r.records).unwrap() + 1;
            }
            seen
        };
        let check = |p: &Partition| {
            assert_eq!(p.offsets().last_stable, 10);
            assert_eq!(aborted_seen(p, 0), expect_all);
            // From past the first abort marker, only the second is listed.
            assert_eq!(aborted_seen(p, 6), expect_all[1..].to_vec());
            // read_uncommitted never lists them.
            assert!(p
                .read(0, 1 << 20, true, Isolation::ReadUncommitted)
                .unwrap()
                .aborted
                .is_empty());
        };
        check(&p);
        // Rebuilt from the log, after a clean close and after a crash.
        p.close().unwrap();
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, c.clone(), false).unwrap();
        check(&p);
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, c.clone(), true).unwrap();
        check(&p);
        // An open transaction survives a reopen too, and so does fencing.
        p.allow_txn(3, 0);
        p.append(&txn_batch(3, 0, 0, &[b"c"]), 0).await.unwrap(); // 10
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, c.clone(), true).unwrap();
        assert_eq!(p.offsets().last_stable, 10);
        assert_eq!(
            p.producers()
                .iter()
                .find(|s| s.producer_id == 3)
                .unwrap()
                .txn_start_offset,
            10
        );
        p.write_marker(3, 1, marker(false), 0).await.unwrap();
        assert!(matches!(
            p.append(&txn_batch(3, 0, 1, &[b"zombie"]), 0).await,
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert_eq!(p.offsets().last_stable, 12);
        // Retention of the segments holding the first abort drops its entry.
        p.delete_records_before(7).unwrap();
        assert_eq!(aborted_seen(&p, 7), expect_all[1..].to_vec());
    }

    #[tokio::test]
    async fn clean_shutdown_snapshot_is_used_once_and_only_when_it_matches() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&[]);
        let snap = dir.path().join("t-0").join(PRODUCER_SNAPSHOT);
        let p = Partition::create(dir.path(), "t", 0, c.clone()).unwrap();
        p.append(&make_batch(&[b"plain"], 0), 0).await.unwrap();
        p.allow_txn(1, 0);
        p.append(&txn_batch(1, 0, 0, &[b"a"]), 0).await.unwrap();
        p.write_marker(1, 0, marker(false), 0).await.unwrap();
        p.allow_txn(2, 0);
        p.append(&txn_batch(2, 0, 0, &[b"open"]), 0).await.unwrap();
        let producers = p.producers();
        let aborted = committed(&p, 0).aborted;
        assert_eq!(aborted.len(), 1);
        p.close().unwrap();
        drop(p);
        let bytes = std::fs::read(&snap).expect("written at close");
        // Loaded after a clean shutdown, then deleted.
        let p = Partition::open(dir.path(), "t", 0, c.clone(), false).unwrap();
        assert!(!snap.exists(), "used once");
        assert_eq!(p.producers(), producers);
        assert_eq!(p.offsets().last_stable, 3);
        assert_eq!(committed(&p, 0).aborted, aborted);
        drop(p);
        // A corrupt snapshot is ignored: the scan gives the same state.
        let mut bad = bytes.clone();
        bad[10] ^= 0xff;
        std::fs::write(&snap, &bad).unwrap();
        let p = Partition::open(dir.path(), "t", 0, c.clone(), false).unwrap();
        assert_eq!(p.producers(), producers);
        assert_eq!(committed(&p, 0).aborted, aborted);
        // A stale snapshot (the log moved on without a clean shutdown) is
        // ignored too: the new batch is known.
        p.append(&make_batch(&[b"later"], 0), 0).await.unwrap();
        p.write_marker(2, 0, marker(true), 0).await.unwrap();
        drop(p);
        std::fs::write(&snap, &bytes).unwrap();
        let p = Partition::open(dir.path(), "t", 0, c.clone(), false).unwrap();
        assert_eq!(
            p.offsets().last_stable,
            6,
            "the commit after the snapshot counts"
        );
        // Opening for recovery (after a crash) never reads it, and removes it.
        p.close().unwrap();
        drop(p);
        assert!(snap.exists());
        let p = Partition::open(dir.path(), "t", 0, c, true).unwrap();
        assert!(!snap.exists());
        assert_eq!(p.offsets().last_stable, 6);
    }

    #[tokio::test]
    async fn transactional_batch_outside_a_registered_transaction_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::create(dir.path(), "t", 0, cfg(&[])).unwrap();
        assert!(matches!(
            p.append(&txn_batch(9, 0, 0, &[b"x"]), 0).await,
            Err(LogError::InvalidTxnState { .. })
        ));
        assert_eq!(p.offsets().log_end, 0, "nothing appended");
        p.allow_txn(9, 0);
        p.append(&txn_batch(9, 0, 0, &[b"x"]), 0).await.unwrap();
        p.write_marker(9, 0, marker(true), 0).await.unwrap();
        // A late batch after the marker cannot reopen the transaction.
        assert!(matches!(
            p.append(&txn_batch(9, 0, 1, &[b"late"]), 0).await,
            Err(LogError::InvalidTxnState { .. })
        ));
        assert_eq!(p.offsets().last_stable, 2);
    }

    #[tokio::test]
    async fn delete_records_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&[("segment.bytes", "200"), ("retention.bytes", "400")]);
        let p = Partition::create(dir.path(), "t", 0, c.clone()).unwrap();
        for i in 0..10 {
            p.append(&make_batch(&[b"0123456789"], i), 0).await.unwrap();
        }
        assert_eq!(p.delete_records_before(3).unwrap(), 3);
        assert!(matches!(
            p.read(2, 100, true, Isolation::ReadUncommitted),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            p.delete_records_before(11),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        p.enforce_retention(crate::log::now_ms()).unwrap();
        assert!(p.size_bytes() <= 400 + 200);
        let start = p.offsets().log_start;
        assert!(start > 3);
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, c, true).unwrap();
        assert_eq!(p.offsets().log_start, start);
    }

    #[tokio::test]
    async fn time_retention_rolls_and_deletes_active() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::create(dir.path(), "t", 0, cfg(&[("retention.ms", "1000")])).unwrap();
        p.append(&make_batch(&[b"old"], 5), 0).await.unwrap();
        p.enforce_retention(10_000).unwrap();
        assert_eq!(
            p.offsets(),
            Offsets {
                log_start: 1,
                high_watermark: 1,
                last_stable: 1,
                log_end: 1
            }
        );
        assert_eq!(p.segment_count(), 1);
    }

    #[tokio::test]
    async fn fsync_before_ack_moves_hw_after_flush() {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(
            Partition::create(dir.path(), "t", 0, cfg(&[("flush.messages", "1")])).unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..8 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                p.append(&make_batch(&[b"v"], i), 0).await.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(p.offsets().high_watermark, 8);
    }

    #[tokio::test]
    async fn unclean_reopen_truncates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&[]);
        let p = Partition::create(dir.path(), "t", 0, c.clone()).unwrap();
        p.append(&make_batch(&[b"a"], 0), 0).await.unwrap();
        p.append(&make_batch(&[b"b"], 0), 0).await.unwrap();
        drop(p);
        let path = crate::log::segment::log_path(&dir.path().join("t-0"), 0);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let p = Partition::open(dir.path(), "t", 0, c, true).unwrap();
        assert_eq!(p.offsets().log_end, 1);
        assert_eq!(
            p.append(&make_batch(&[b"c"], 0), 0)
                .await
                .unwrap()
                .base_offset,
            1
        );
    }

    /// A topic config on a broker with `log-tail-cache-bytes = window`.
    fn cfg_window(window: i64, pairs: &[(&str, &str)]) -> Arc<TopicConfig> {
        let broker = Config {
            log_tail_cache_bytes: window,
            ..Config::default()
        };
        let o: IndexMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(TopicConfig::resolve(&broker, &o))
    }

    /// Page-cache bytes of every `.log` of partition `t-0`, oldest first.
    fn resident_per_segment(dir: &Path) -> Vec<(u64, u64)> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("t-0"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        logs.iter()
            .map(|p| {
                let len = std::fs::metadata(p).unwrap().len();
                (disk::residency::resident_bytes(p), len)
            })
            .collect()
    }

    /// 28 MiB in 256 KiB batches into 8 MiB segments.
    async fn fill(p: &Partition) -> usize {
        let value = vec![7u8; 64 << 10];
        let batches = 28 * 4;
        for _ in 0..batches {
            p.append(&make_batch(&[&value, &value, &value, &value], 0), 0)
                .await
                .unwrap();
        }
        batches * 4
    }

    /// `log-tail-cache-bytes`: appends leave only the tail window (and the
    /// MiB being filled) in the page cache, across rolls; without it the
    /// page cache keeps everything. Every record stays readable, and cold
    /// reads of old segments drop what they read.
    #[tokio::test]
    async fn write_behind_keeps_only_the_tail_window_in_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        if !disk::residency::eviction_works(dir.path()) {
            eprintln!("skipped: this filesystem cannot drop clean pages (tmpfs?)");
            return;
        }
        let window: u64 = 4 << 20;
        let segment = (8 << 20).to_string();
        let segment_bytes = [("segment.bytes", segment.as_str())];

        // Control: the kernel's page cache keeps all of it.
        let control = tempfile::tempdir().unwrap();
        let p = Partition::create(control.path(), "t", 0, cfg_window(-1, &segment_bytes)).unwrap();
        fill(&p).await;
        let cached: u64 = resident_per_segment(control.path())
            .iter()
            .map(|r| r.0)
            .sum();
        assert!(cached >= 27 << 20, "control keeps everything: {cached}");

        let p = Partition::create(
            dir.path(),
            "t",
            0,
            cfg_window(window as i64, &segment_bytes),
        )
        .unwrap();
        let records = fill(&p).await;
        let resident = resident_per_segment(dir.path());
        assert!(resident.len() >= 4, "rolled: {resident:?}");
        let cached: u64 = resident.iter().map(|r| r.0).sum();
        assert!(
            cached <= window + (2 << 20),
            "only the tail window: {resident:?}"
        );
        let (active_cached, active_len) = *resident.last().unwrap();
        assert!(active_len >= window, "{resident:?}");
        assert!(
            active_cached >= window,
            "the tail stays cached for consumers near it: {resident:?}"
        );
        for (cached, _) in &resident[..resident.len() - 1] {
            assert_eq!(*cached, 0, "sealed segments evicted: {resident:?}");
        }

        // A replay from offset 0 reads it all back from disk and drops it.
        let values = values(&p);
        assert_eq!(values.len(), records);
        assert!(values.iter().all(|v| v.len() == 64 << 10 && v[0] == 7));
        let after = resident_per_segment(dir.path());
        for (cached, _) in &after[..after.len() - 1] {
            assert_eq!(*cached, 0, "cold reads dropped what they read: {after:?}");
        }
        assert!(
            after.last().unwrap().0 >= window,
            "the replay left the tail cached: {after:?}"
        );
    }

    /// A failed writeback is a failed fsync: the partition goes offline.
    #[tokio::test]
    async fn failed_writeback_takes_the_partition_offline() {
        use crate::log::disk::faults::{self, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::create(dir.path(), "t", 0, cfg_window(1 << 20, &[])).unwrap();
        let value = vec![1u8; 512 << 10];
        p.append(&make_batch(&[&value], 0), 0).await.unwrap();
        faults::inject(dir.path(), Op::Writeback, Fault::Eio, 1);
        let err = p.append(&make_batch(&[&value], 0), 0).await.unwrap_err();
        assert!(matches!(err, LogError::Io(_)), "{err}");
        assert!(matches!(
            p.read(0, 1 << 20, true, Isolation::ReadUncommitted),
            Err(LogError::Offline)
        ));
        assert!(matches!(
            p.append(&make_batch(&[b"x"], 0), 0).await,
            Err(LogError::Offline)
        ));
    }

    /// The values of every record readable from offset 0 (read_uncommitted).
    fn values(p: &Partition) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut next = p.offsets().log_start;
        while next < p.offsets().high_watermark {
            let r = p
                .read(next, 1 << 20, true, Isolation::ReadUncommitted)
                .unwrap();
            next = batch::last_offset_in(&r.records).unwrap() + 1;
            let mut buf = r.records;
            while !buf.is_empty() {
                let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
                out.extend(set.records.into_iter().map(|r| r.value.unwrap().to_vec()));
            }
        }
        out
    }

    fn segment_file_len(dir: &Path, base: i64) -> u64 {
        std::fs::metadata(crate::log::segment::log_path(&dir.join("t-0"), base))
            .unwrap()
            .len()
    }

    /// ENOSPC in the middle of a batch: that append fails with a retriable
    /// error, the file is back at the last whole batch, what was appended
    /// stays readable, and the next append after space is freed succeeds.
    #[tokio::test]
    async fn out_of_space_mid_batch_refuses_that_append_only() {
        use crate::log::disk::faults::{self, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::create(dir.path(), "t", 0, cfg(&[])).unwrap();
        p.append(&make_batch(&[b"one"], 0), 0).await.unwrap();
        let good = segment_file_len(dir.path(), 0);
        faults::inject(dir.path(), Op::Write, Fault::NoSpaceAfter(30), 2);
        for _ in 0..2 {
            let err = p.append(&make_batch(&[b"two"], 0), 0).await.unwrap_err();
            assert!(matches!(err, LogError::DiskFull(_)), "{err}");
            assert_eq!(
                err.code(),
                kafka_protocol::error::ResponseError::KafkaStorageError.code()
            );
            assert_eq!(
                segment_file_len(dir.path(), 0),
                good,
                "partial batch undone"
            );
            assert_eq!(p.offsets().log_end, 1);
            assert_eq!(values(&p), vec![b"one".to_vec()], "still readable");
        }
        // Space is back: the same partition takes appends, no restart.
        let info = p.append(&make_batch(&[b"two"], 0), 0).await.unwrap();
        assert_eq!(info.base_offset, 1);
        assert_eq!(values(&p), vec![b"one".to_vec(), b"two".to_vec()]);
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, cfg(&[]), true).unwrap();
        assert_eq!(values(&p).len(), 2);
    }

    /// A roll that cannot write the sealed segment's indexes is undone:
    /// the old segment stays active, the append fails, and the roll
    /// happens once space is back.
    #[tokio::test]
    async fn out_of_space_during_a_roll_keeps_the_active_segment() {
        use crate::log::disk::faults::{self, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&[("segment.bytes", "150")]);
        let p = Partition::create(dir.path(), "t", 0, c.clone()).unwrap();
        p.append(&make_batch(&[&b"0123456789"[..]; 3], 0), 0)
            .await
            .unwrap();
        assert_eq!(p.segment_count(), 1);
        faults::inject(dir.path(), Op::Write, Fault::NoSpaceAfter(0), 1);
        let err = p.append(&make_batch(&[b"more"], 0), 0).await.unwrap_err();
        assert!(matches!(err, LogError::DiskFull(_)), "{err}");
        assert_eq!(p.segment_count(), 1, "roll undone");
        assert!(
            !crate::log::segment::log_path(&dir.path().join("t-0"), 3).exists(),
            "the new segment's files are removed"
        );
        p.append(&make_batch(&[b"more"], 0), 0).await.unwrap();
        assert_eq!(p.segment_count(), 2);
        assert_eq!(values(&p).len(), 4);
        p.close().unwrap();
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, c, false).unwrap();
        assert_eq!(values(&p).len(), 4);
    }

    /// Any other write error leaves the file in an unknown state: the
    /// partition goes offline (reads and writes refused) until a restart
    /// recovers it to its last whole batch.
    #[tokio::test]
    async fn eio_on_write_takes_the_partition_offline_until_recovery() {
        use crate::log::disk::faults::{self, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::create(dir.path(), "t", 0, cfg(&[])).unwrap();
        p.append(&make_batch(&[b"one"], 0), 0).await.unwrap();
        faults::inject(dir.path(), Op::Write, Fault::Eio, 1);
        assert!(matches!(
            p.append(&make_batch(&[b"two"], 0), 0).await,
            Err(LogError::Io(_))
        ));
        assert!(matches!(
            p.append(&make_batch(&[b"three"], 0), 0).await,
            Err(LogError::Offline)
        ));
        assert!(matches!(
            p.read(0, 1 << 20, true, Isolation::ReadUncommitted),
            Err(LogError::Offline)
        ));
        assert!(!p.close().unwrap(), "an offline partition is not clean");
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, cfg(&[]), true).unwrap();
        assert_eq!(values(&p), vec![b"one".to_vec()]);
        p.append(&make_batch(&[b"two"], 0), 0).await.unwrap();
    }

    /// A failed fsync (fsync-before-ack): the produce is not acknowledged,
    /// the high watermark does not move past what was durable, and the
    /// partition goes offline (the kernel may have dropped the pages).
    #[tokio::test]
    async fn failed_fsync_is_not_acknowledged_and_goes_offline() {
        use crate::log::disk::faults::{self, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&[("flush.messages", "1")]);
        let p = Partition::create(dir.path(), "t", 0, c.clone()).unwrap();
        p.append(&make_batch(&[b"one"], 0), 0).await.unwrap();
        faults::inject(dir.path(), Op::Sync, Fault::Eio, 1);
        assert!(p.append(&make_batch(&[b"two"], 0), 0).await.is_err());
        assert!(matches!(
            p.append(&make_batch(&[b"three"], 0), 0).await,
            Err(LogError::Offline)
        ));
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, c, true).unwrap();
        // Recovery keeps whole batches only; the unacknowledged one may or
        // may not be there (it reached the page cache), nothing is torn.
        let v = values(&p);
        assert!(v == [b"one".to_vec()] || v == [b"one".to_vec(), b"two".to_vec()]);
    }

    /// Start-up on a full disk: recovery writes nothing, so an unclean
    /// start works; reads are served, appends refused until space returns.
    #[tokio::test]
    async fn opens_and_serves_reads_on_a_full_disk() {
        use crate::log::disk::faults::{self, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&[("segment.bytes", "150")]);
        let p = Partition::create(dir.path(), "t", 0, c.clone()).unwrap();
        for i in 0..6 {
            p.append(&make_batch(&[format!("v{i}").as_bytes()], 0), 0)
                .await
                .unwrap();
        }
        drop(p); // a crash: nothing sealed, no snapshot
        faults::inject(dir.path(), Op::Write, Fault::NoSpaceAfter(0), 1000);
        let p = Partition::open(dir.path(), "t", 0, c.clone(), true).unwrap();
        assert_eq!(values(&p).len(), 6);
        assert!(matches!(
            p.append(&make_batch(&[b"x"], 0), 0).await,
            Err(LogError::DiskFull(_))
        ));
        assert!(!p.close().unwrap(), "indexes could not be sealed");
        faults::clear(dir.path());
        drop(p);
        let p = Partition::open(dir.path(), "t", 0, c, true).unwrap();
        assert_eq!(values(&p).len(), 6);
        assert_eq!(
            p.append(&make_batch(&[b"x"], 0), 0)
                .await
                .unwrap()
                .base_offset,
            6
        );
    }

    /// A compacted topic refuses a batch with key-less records whole,
    /// naming them (KIP-467); compressed batches are looked into.
    #[tokio::test]
    async fn compacted_topics_refuse_keyless_records() {
        use crate::log::compression::Codec;
        use crate::log::records::{self, BatchSpec, Record};
        let dir = tempfile::tempdir().unwrap();
        let p =
            Partition::create(dir.path(), "t", 0, cfg(&[("cleanup.policy", "compact")])).unwrap();
        let rec = |i: i64, key: Option<&'static [u8]>| Record {
            offset: i,
            timestamp: 0,
            key: key.map(Bytes::from_static),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
        };
        let mixed = records::encode(
            &BatchSpec::plain(Codec::Gzip),
            &[
                rec(0, Some(b"a")),
                rec(1, None),
                rec(2, Some(b"b")),
                rec(3, None),
            ],
        )
        .unwrap();
        match p.append(&mixed, 0).await {
            Err(LogError::KeylessRecords { indexes }) => assert_eq!(indexes, vec![1, 3]),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.offsets().log_end, 0);
        let keyed = records::encode(&BatchSpec::plain(Codec::Lz4), &[rec(0, Some(b"a"))]).unwrap();
        p.append(&keyed, 0).await.unwrap();
        // Topics that only delete accept key-less records.
        let d = Partition::create(dir.path(), "d", 0, cfg(&[])).unwrap();
        d.append(&mixed, 0).await.unwrap();
    }

    /// Every record of the log, in offset order: (offset, key, value).
    fn all_records(p: &Partition) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
        let mut out = Vec::new();
        let mut next = p.offsets().log_start;
        let end = p.offsets().high_watermark;
        while next < end {
            let r = p
                .read(next, 1 << 20, true, Isolation::ReadUncommitted)
                .unwrap();
            let mut b = &r.records[..];
            assert!(!b.is_empty(), "no batch at or after {next}");
            while let Some(h) = BatchHeader::parse(b) {
                let (_, recs) = crate::log::records::decode(&b[..h.total_len()], 1 << 20).unwrap();
                for rec in recs {
                    out.push((rec.offset, rec.key, rec.value));
                }
                next = h.next_offset();
                b = &b[h.total_len()..];
            }
        }
        out
    }

    type Rec = (i64, Option<Bytes>, Option<Bytes>);

    fn compact_cfg() -> Arc<TopicConfig> {
        cfg(&[("cleanup.policy", "compact"), ("segment.bytes", "600")])
    }

    /// A compacted log with 5 keys x 8 versions (key k0's last one a
    /// tombstone) in small segments, and the latest record of every key.
    async fn compacted_log(dir: &Path) -> (Partition, Vec<Rec>) {
        use crate::log::compression::Codec;
        use crate::log::records::{self, BatchSpec, Record};
        let p = Partition::create(dir, "c", 0, compact_cfg()).unwrap();
        let mut latest = std::collections::BTreeMap::new();
        let mut offset = 0;
        for version in 0..8 {
            for k in 0..5 {
                let key = Bytes::from(format!("k{k}"));
                let value = (!(k == 0 && version == 7)).then(|| Bytes::from(format!("v{version}")));
                let codec = if k % 2 == 0 {
                    Codec::None
                } else {
                    Codec::Snappy
                };
                let b = records::encode(
                    &BatchSpec::plain(codec),
                    &[Record {
                        offset: 0,
                        timestamp: 1_000 + offset,
                        key: Some(key.clone()),
                        value: value.clone(),
                        headers: vec![],
                    }],
                )
                .unwrap();
                p.append(&b, 0).await.unwrap();
                latest.insert(key.clone(), (offset, Some(key), value));
                offset += 1;
            }
        }
        let mut want: Vec<Rec> = latest.into_values().collect();
        want.sort_by_key(|r| r.0);
        (p, want)
    }

    fn cleaner_cfg() -> crate::log::cleaner::CleanerConfig {
        crate::log::cleaner::CleanerConfig {
            dedupe_buffer_bytes: 1 << 20,
            io_max_bytes_per_second: f64::INFINITY,
        }
    }

    /// Latest record per key.
    fn latest(rs: &[Rec]) -> std::collections::BTreeMap<Option<Bytes>, Rec> {
        rs.iter().map(|r| (r.1.clone(), r.clone())).collect()
    }

    #[tokio::test]
    async fn cleaning_keeps_the_latest_record_per_key_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (p, want) = compacted_log(dir.path()).await;
        let before = p.offsets();
        let segments = p.segment_count();
        assert!(segments > 4, "{segments}");
        let stats = crate::log::cleaner::clean_partition(&p, None, &cleaner_cfg(), 10_000)
            .unwrap()
            .expect("a pass");
        assert!(stats.bytes_written < stats.bytes_read / 2, "{stats:?}");
        assert_eq!(p.offsets(), before, "offsets never change");
        // Below the active segment only the latest record of each key is
        // left, at its original offset; the active segment is untouched.
        let got = all_records(&p);
        let active_base = p.clean_view().unwrap().active_base;
        let cleaned: Vec<Rec> = got.iter().filter(|r| r.0 < active_base).cloned().collect();
        let active: std::collections::BTreeSet<_> = got
            .iter()
            .filter(|r| r.0 >= active_base)
            .map(|r| r.1.clone())
            .collect();
        let expect: Vec<Rec> = want
            .iter()
            .filter(|r| r.0 < active_base && !active.contains(&r.1))
            .cloned()
            .collect();
        let superseded_by_active: Vec<Rec> = cleaned
            .iter()
            .filter(|r| active.contains(&r.1))
            .cloned()
            .collect();
        assert!(superseded_by_active.len() <= active.len());
        assert_eq!(
            cleaned
                .iter()
                .filter(|r| !active.contains(&r.1))
                .cloned()
                .collect::<Vec<_>>(),
            expect
        );
        assert_eq!(latest(&got), latest(&want));
        // The tombstone of k0 is still there (delete.retention.ms).
        assert!(got
            .iter()
            .any(|r| r.1.as_deref() == Some(b"k0") && r.2.is_none()));
        // A second pass has nothing to do; a reopen serves the same.
        assert_eq!(
            crate::log::cleaner::clean_partition(&p, Some(stats.end), &cleaner_cfg(), 10_000)
                .unwrap(),
            None
        );
        drop(p);
        let p = Partition::open(dir.path(), "c", 0, compact_cfg(), true).unwrap();
        assert_eq!(all_records(&p), got);
        assert_eq!(p.offsets(), before);
    }

    /// A crash at any step of the swap leaves a log with every key's
    /// latest record at its offset, nothing duplicated, nothing left over.
    #[tokio::test]
    async fn a_crash_at_each_step_of_the_swap_recovers() {
        for step in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let (p, want) = compacted_log(dir.path()).await;
            let before = all_records(&p);
            *SWAP_CRASH.lock().unwrap() = Some((dir.path().join("c-0"), step));
            let r = crate::log::cleaner::clean_partition(&p, None, &cleaner_cfg(), 10_000);
            *SWAP_CRASH.lock().unwrap() = None;
            assert!(r.is_err(), "step {step}");
            drop(p);
            let p = Partition::open(dir.path(), "c", 0, compact_cfg(), true).unwrap();
            let after = all_records(&p);
            assert_eq!(latest(&after), latest(&before), "step {step}");
            assert_eq!(latest(&after).len(), want.len());
            assert!(after.windows(2).all(|w| w[0].0 < w[1].0), "step {step}");
            if step > 0 {
                assert!(
                    after.len() < before.len(),
                    "step {step}: the swap completed"
                );
            } else {
                assert_eq!(after, before, "before the commit point nothing changes");
            }
            let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("c-0"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| {
                    n.ends_with(".cleaned") || n.ends_with(".deleted") || n == SWAP_MANIFEST
                })
                .collect();
            assert!(leftovers.is_empty(), "step {step}: {leftovers:?}");
            // And the next pass works.
            crate::log::cleaner::clean_partition(&p, None, &cleaner_cfg(), 10_000).unwrap();
            assert_eq!(latest(&all_records(&p)), latest(&before));
        }
    }

    /// An idempotent producer's last batch survives as a header, so its
    /// next batch is accepted in sequence after cleaning and a reopen.
    #[tokio::test]
    async fn a_producers_last_batch_survives_cleaning() {
        use crate::log::compression::Codec;
        use crate::log::records::{self, BatchSpec, Record};
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::create(dir.path(), "c", 0, compact_cfg()).unwrap();
        let batch = |seq: i32, key: &str| {
            let mut spec = BatchSpec::plain(Codec::None);
            spec.producer_id = 7;
            spec.producer_epoch = 0;
            spec.base_sequence = seq;
            records::encode(
                &spec,
                &[Record {
                    offset: 0,
                    timestamp: 5,
                    key: Some(Bytes::from(key.to_string())),
                    value: Some(Bytes::from_static(b"x")),
                    headers: vec![],
                }],
            )
            .unwrap()
        };
        for seq in 0..30 {
            p.append(&batch(seq, "same"), 0).await.unwrap();
        }
        // Other data rolls the producer's batches out of the active segment.
        for i in 0..40 {
            let b = records::encode(
                &BatchSpec::plain(Codec::None),
                &[Record {
                    offset: 0,
                    timestamp: 5,
                    key: Some(Bytes::from(format!("other{i}"))),
                    value: Some(Bytes::from_static(b"y")),
                    headers: vec![],
                }],
            )
            .unwrap();
            p.append(&b, 0).await.unwrap();
        }
        crate::log::cleaner::clean_partition(&p, None, &cleaner_cfg(), 10_000)
            .unwrap()
            .expect("a pass");
        let same: Vec<Rec> = all_records(&p)
            .into_iter()
            .filter(|r| r.1.as_deref() == Some(b"same"))
            .collect();
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].0, 29);
        drop(p);
        let p = Partition::open(dir.path(), "c", 0, compact_cfg(), true).unwrap();
        // Sequence 30 follows 29: accepted, not OUT_OF_ORDER_SEQUENCE.
        p.append(&batch(30, "same"), 0).await.unwrap();
        assert!(matches!(
            p.append(&batch(35, "same"), 0).await,
            Err(LogError::OutOfOrderSequence { .. })
        ));
    }

    /// Topic-level compression.type: other codecs are recompressed on
    /// append with the same records; the topic's own codec is kept as sent.
    #[tokio::test]
    async fn topic_compression_recompresses_other_codecs_only() {
        use crate::log::compression::Codec;
        use crate::log::records::{self, BatchSpec, Record};
        let dir = tempfile::tempdir().unwrap();
        let p =
            Partition::create(dir.path(), "t", 0, cfg(&[("compression.type", "zstd")])).unwrap();
        let recs: Vec<Record> = (0..3)
            .map(|i| Record {
                offset: i,
                timestamp: 100 + i,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: vec![],
            })
            .collect();
        let gzip = records::encode(&BatchSpec::plain(Codec::Gzip), &recs).unwrap();
        let zstd = records::encode(&BatchSpec::plain(Codec::Zstd), &recs).unwrap();
        p.append(&gzip, 0).await.unwrap();
        p.append(&zstd, 0).await.unwrap();
        let r = p
            .read(0, 1 << 20, true, Isolation::ReadUncommitted)
            .unwrap();
        let first = BatchHeader::parse(&r.records).unwrap();
        assert_eq!(
            first.compression_codec(),
            Codec::Zstd as i16,
            "recompressed"
        );
        let (_, got) = records::decode(&r.records[..first.total_len()], 1 << 20).unwrap();
        assert_eq!(
            got.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            recs.iter().map(|r| r.value.clone()).collect::<Vec<_>>()
        );
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        // The zstd batch is stored as sent (only its offsets patched).
        let second = &r.records[first.total_len()..];
        assert_eq!(&second[HEADER_LEN..], &zstd[HEADER_LEN..]);
    }
}
