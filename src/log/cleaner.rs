//! Log compaction (`cleanup.policy=compact`): keeps the latest record of
//! every key, at its original offset. Kafka's cleaner rules
//! (`LogCleaner`, `Cleaner.doClean`), in three parts:
//!
//! - [`plan`]: which segments of a log a pass may clean, and whether it
//!   should (dirty ratio, compaction lags), from a [`CleanView`] taken
//!   under the partition lock. Pure.
//! - [`OffsetMap`] and [`clean_batch`]: the key -> latest offset map of the
//!   dirty range, and the per-batch rewrite (drop superseded, key-less and
//!   aborted records, tombstones past their delete horizon; keep every
//!   batch's base offset and original last offset delta, a producer's last
//!   batch and the pass's last batch at least as an empty header). Pure.
//! - [`clean_partition`]: one pass over a partition's files; the swap of
//!   each cleaned group of segments is [`Partition::swap_cleaned`]
//!   (crash-safe, see there).
//!
//! The pass's progress is the *cleaner checkpoint*: per partition, the
//! first offset not yet cleaned, in `<data-dir>/cleaner-offset-checkpoint`
//! (Kafka's format: version line `0`, a count line, then `topic partition
//! offset` lines), written atomically after each pass.
//!
//! Never cleaned: the active segment, anything at or past the last stable
//! offset, records younger than `min.compaction.lag.ms`. Transaction
//! markers follow Kafka's rule ([`clean_tracked`]).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::log::batch::BatchHeader;
use crate::log::compression::Codec;
use crate::log::disk::LogFile;
use crate::log::partition::{AbortedTxn, Partition};
use crate::log::records::{self, BatchSpec};
use crate::log::segment::SegmentSlice;
use crate::log::topic_config::TopicConfig;

/// v2 attribute bit: `baseTimestamp` holds the batch's delete horizon
/// (KIP-534), set by the cleaner on batches that keep a tombstone.
pub const DELETE_HORIZON_FLAG: i16 = 0x40;

/// Rolled segments of compacted logs wake the cleaner (it otherwise sleeps
/// `log-cleaner-backoff-ms`).
static WAKE: Notify = Notify::const_new();

pub fn wake() {
    WAKE.notify_one();
}

/// Waits for a roll or `backoff`, whichever comes first.
pub async fn sleep(backoff: std::time::Duration) {
    let _ = tokio::time::timeout(backoff, WAKE.notified()).await;
}

/// Broker settings of the cleaner.
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// Memory for the offset map of one pass (Kafka's
    /// `log.cleaner.dedupe.buffer.size`); a pass that fills it stops at a
    /// segment boundary and the next pass continues.
    pub dedupe_buffer_bytes: usize,
    /// Read + write throughput cap of the cleaner; `f64::INFINITY` = none.
    pub io_max_bytes_per_second: f64,
}

/// A sealed segment as the cleaner sees it.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub base: i64,
    /// Offset after its last batch (may be below the next segment's base
    /// after cleaning).
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    /// Its batches, readable without the partition lock.
    pub slice: SegmentSlice,
}

/// A partition's state as one pass needs it (taken under the lock).
#[derive(Debug, Clone)]
pub struct CleanView {
    pub dir: PathBuf,
    pub config: Arc<TopicConfig>,
    pub log_start: i64,
    pub log_end: i64,
    /// Sealed segments, in offset order (the active segment is excluded).
    pub segments: Vec<SegmentInfo>,
    pub active_base: i64,
    pub last_stable: i64,
    /// Producer id -> last offset of its last data batch.
    pub producer_last: HashMap<i64, i64>,
    pub aborted: Vec<AbortedTxn>,
}

/// What a pass over one log will do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Offset map over `[first_dirty, end)`.
    pub first_dirty: i64,
    pub end: i64,
    /// Index into `view.segments` of the first dirty segment and one past
    /// the last cleanable one.
    pub dirty_segments: std::ops::Range<usize>,
    pub ratio: f64,
}

/// Kafka's choice (`LogCleanerManager.cleanableOffsets`,
/// `grabFilthiestCompactedLog`): the dirty segments below the first
/// uncleanable offset, cleaned when their share of the log's bytes exceeds
/// `min.cleanable.dirty.ratio` or one is older than `max.compaction.lag.ms`.
pub fn plan(view: &CleanView, checkpoint: Option<i64>, now_ms: i64) -> Option<Plan> {
    let cfg = &view.config;
    if !cfg.cleanup_compact || view.segments.is_empty() {
        return None;
    }
    let first_dirty = match checkpoint {
        Some(c) if c >= view.log_start && c <= view.log_end => c,
        _ => view.log_start,
    };
    let uncleanable = view.last_stable.min(view.active_base);
    // Base of the segment after segment i (whole segments only).
    let next_base = |i: usize| {
        view.segments
            .get(i + 1)
            .map(|s| s.base)
            .unwrap_or(view.active_base)
    };
    let start = view
        .segments
        .iter()
        .position(|s| s.next_offset > first_dirty && s.size > 0)
        .unwrap_or(view.segments.len());
    let mut stop = start;
    while stop < view.segments.len() && next_base(stop) <= uncleanable {
        let s = &view.segments[stop];
        if cfg.min_compaction_lag_ms > 0 && s.max_timestamp > now_ms - cfg.min_compaction_lag_ms {
            break; // too young: this segment and everything after it
        }
        stop += 1;
    }
    if stop == start {
        return None;
    }
    let clean_bytes: u64 = view.segments[..start].iter().map(|s| s.size).sum();
    let dirty_bytes: u64 = view.segments[start..stop].iter().map(|s| s.size).sum();
    if dirty_bytes == 0 {
        return None;
    }
    let ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64;
    let overdue = cfg.max_compaction_lag_ms < i64::MAX
        && view.segments[start..stop]
            .iter()
            .any(|s| s.max_timestamp >= 0 && s.max_timestamp < now_ms - cfg.max_compaction_lag_ms);
    if ratio <= cfg.min_cleanable_dirty_ratio && !overdue {
        return None;
    }
    Some(Plan {
        first_dirty: view.segments[start].base.max(first_dirty),
        end: next_base(stop - 1),
        dirty_segments: start..stop,
        ratio,
    })
}

/// Key -> offset of its latest record in the dirty range, with a memory
/// budget (the key bytes plus a fixed overhead per entry).
#[derive(Debug, Default)]
pub struct OffsetMap {
    map: HashMap<Bytes, i64>,
    bytes: usize,
    cap: usize,
}

const ENTRY_OVERHEAD: usize = 48;

impl OffsetMap {
    pub fn new(cap: usize) -> OffsetMap {
        OffsetMap {
            cap,
            ..Default::default()
        }
    }

    pub fn put(&mut self, key: Bytes, offset: i64) {
        let len = key.len();
        if self.map.insert(key, offset).is_none() {
            self.bytes += len + ENTRY_OVERHEAD;
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    pub fn is_full(&self) -> bool {
        self.bytes >= self.cap
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Whether a data batch belongs to an aborted transaction.
pub fn is_aborted(h: &BatchHeader, aborted: &[AbortedTxn]) -> bool {
    h.is_transactional()
        && !h.is_control()
        && aborted.iter().any(|t| {
            t.producer_id == h.producer_id
                && t.first_offset <= h.base_offset
                && h.base_offset <= t.last_offset
        })
}

/// Decompression bound for batches read back from our own log.
const DECODE_LIMIT: usize = 1 << 30;

/// Adds a batch's keyed records to the map (control, aborted and
/// key-less records are skipped).
pub fn index_batch(
    batch: &[u8],
    h: &BatchHeader,
    aborted: &[AbortedTxn],
    map: &mut OffsetMap,
) -> io::Result<()> {
    if h.is_control() || h.records_count == 0 || is_aborted(h, aborted) {
        return Ok(());
    }
    let (_, recs) = records::decode(batch, DECODE_LIMIT).map_err(io::Error::other)?;
    for r in recs {
        if let Some(k) = r.key {
            map.put(k, r.offset);
        }
    }
    Ok(())
}

/// Inputs of one batch's rewrite.
pub struct BatchContext<'a> {
    pub map: &'a OffsetMap,
    pub aborted: &'a [AbortedTxn],
    pub producer_last: &'a HashMap<i64, i64>,
    /// The pass's end: the batch ending there keeps at least its header.
    pub end: i64,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
}

/// The cleaned form of one batch: `None` to drop it, or its new bytes
/// (the same bytes when nothing changes).
pub fn clean_batch(
    batch: &[u8],
    h: &BatchHeader,
    cx: &BatchContext<'_>,
) -> io::Result<Option<Vec<u8>>> {
    if h.is_control() {
        return Ok(Some(batch.to_vec()));
    }
    // A producer's last batch (its sequence and epoch) and the pass's last
    // batch (the log's end offset) survive, as a header if nothing else.
    let keep_header = (h.producer_id >= 0
        && cx.producer_last.get(&h.producer_id) == Some(&h.last_offset()))
        || h.next_offset() == cx.end;
    let horizon = (h.attributes & DELETE_HORIZON_FLAG != 0).then_some(h.base_timestamp);
    let retained = if is_aborted(h, cx.aborted) || h.records_count == 0 {
        Vec::new()
    } else {
        let (_, recs) = records::decode(batch, DECODE_LIMIT).map_err(io::Error::other)?;
        let total = recs.len();
        let kept: Vec<records::Record> = recs
            .into_iter()
            .filter(|r| {
                let Some(key) = &r.key else {
                    return false; // written before the topic became compacted
                };
                if cx.map.get(key).is_some_and(|latest| r.offset < latest) {
                    return false; // superseded
                }
                r.value.is_some() || horizon.is_none_or(|h| cx.now_ms < h)
            })
            .collect();
        let needs_horizon = horizon.is_none() && kept.iter().any(|r| r.value.is_none());
        if kept.len() == total && !needs_horizon {
            return Ok(Some(batch.to_vec()));
        }
        kept
    };
    if retained.is_empty() {
        if !keep_header {
            return Ok(None);
        }
        return empty_header(h).map(Some);
    }
    let codec = Codec::from_attributes(h.attributes).map_err(io::Error::other)?;
    let mut spec = BatchSpec::of(h, codec);
    let new_horizon = match horizon {
        Some(t) => Some(t),
        None if retained.iter().any(|r| r.value.is_none()) => {
            Some(cx.now_ms.saturating_add(cx.delete_retention_ms))
        }
        None => None,
    };
    spec.base_timestamp = new_horizon;
    if new_horizon.is_some() {
        spec.attributes |= DELETE_HORIZON_FLAG;
    }
    records::encode(&spec, &retained).map(Some)
}

/// Per pass: for each producer, whether the transaction it has open (in
/// log order) kept any batch so far. Decides the fate of its marker.
#[derive(Debug, Default)]
pub struct TxnTracker {
    retained: HashMap<i64, bool>,
}

/// [`clean_batch`] plus Kafka's marker rule (`CleanedTransactionMetadata`):
/// a transaction marker whose transaction kept no data in this pass is
/// stamped with a delete horizon, and dropped by a pass after it. A marker
/// stays while its transaction has data, when it is the producer's last
/// entry, or when it ends the pass.
pub fn clean_tracked(
    batch: &[u8],
    h: &BatchHeader,
    cx: &BatchContext<'_>,
    txns: &mut TxnTracker,
) -> io::Result<Option<Vec<u8>>> {
    if !h.is_control() {
        let out = clean_batch(batch, h, cx)?;
        if h.is_transactional() {
            *txns.retained.entry(h.producer_id).or_insert(false) |= out.is_some();
        }
        return Ok(out);
    }
    let had_data = txns.retained.remove(&h.producer_id).unwrap_or(false);
    let producers_last = cx
        .producer_last
        .get(&h.producer_id)
        .is_some_and(|last| *last < h.base_offset);
    if had_data || producers_last || h.next_offset() == cx.end {
        return Ok(Some(batch.to_vec()));
    }
    if h.attributes & DELETE_HORIZON_FLAG != 0 {
        return Ok((cx.now_ms < h.base_timestamp).then(|| batch.to_vec()));
    }
    let (_, recs) = records::decode(batch, DECODE_LIMIT).map_err(io::Error::other)?;
    let codec = Codec::from_attributes(h.attributes).map_err(io::Error::other)?;
    let mut spec = BatchSpec::of(h, codec);
    spec.base_timestamp = Some(cx.now_ms.saturating_add(cx.delete_retention_ms));
    spec.max_timestamp = Some(h.max_timestamp);
    spec.attributes |= DELETE_HORIZON_FLAG;
    records::encode(&spec, &recs).map(Some)
}

/// A batch emptied by cleaning: its 61-byte header with no records, the
/// original base offset, last offset delta, producer fields and
/// timestamps, and a recomputed CRC.
fn empty_header(h: &BatchHeader) -> io::Result<Vec<u8>> {
    // No records: no compression either.
    let mut spec = BatchSpec::of(h, Codec::None);
    spec.base_timestamp = Some(h.base_timestamp);
    spec.max_timestamp = Some(h.max_timestamp);
    records::encode(&spec, &[])
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PassStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub segments_in: usize,
    pub segments_out: usize,
    pub end: i64,
}

/// Paces the pass to `io_max_bytes_per_second`.
struct Throttle {
    rate: f64,
    start: std::time::Instant,
    bytes: u64,
}

impl Throttle {
    fn account(&mut self, n: u64) {
        self.bytes += n;
        if self.rate.is_finite() && self.rate > 0.0 {
            let due = std::time::Duration::from_secs_f64(self.bytes as f64 / self.rate);
            let spent = self.start.elapsed();
            if due > spent {
                std::thread::sleep(due - spent);
            }
        }
    }
}

/// One cleaning pass over a partition (blocking file I/O: run it on a
/// blocking thread). `Ok(None)`: nothing to do.
pub fn clean_partition(
    p: &Partition,
    checkpoint: Option<i64>,
    cfg: &CleanerConfig,
    now_ms: i64,
) -> io::Result<Option<PassStats>> {
    let Some(view) = p.clean_view() else {
        return Ok(None);
    };
    let Some(plan) = plan(&view, checkpoint, now_ms) else {
        return Ok(None);
    };
    let mut throttle = Throttle {
        rate: cfg.io_max_bytes_per_second,
        start: std::time::Instant::now(),
        bytes: 0,
    };
    let mut stats = PassStats::default();
    // 1. The offset map over the dirty segments (stopping at a segment
    //    boundary when it is full; the first segment always counts).
    let mut map = OffsetMap::new(cfg.dedupe_buffer_bytes);
    let mut end = plan.end;
    for (n, i) in plan.dirty_segments.clone().enumerate() {
        if n > 0 && map.is_full() {
            end = view.segments[i].base;
            break;
        }
        let s = &view.segments[i];
        s.slice.for_each_batch_bytes(|b, h| {
            if h.last_offset() >= plan.first_dirty {
                index_batch(b, h, &view.aborted, &mut map)?;
            }
            Ok(())
        })?;
        throttle.account(s.size);
        stats.bytes_read += s.size;
    }
    // 2. Rewrite every segment below `end`, in groups that fit a segment.
    let cx = BatchContext {
        map: &map,
        aborted: &view.aborted,
        producer_last: &view.producer_last,
        end,
        now_ms,
        delete_retention_ms: view.config.delete_retention_ms,
    };
    let below: Vec<&SegmentInfo> = view.segments.iter().filter(|s| s.base < end).collect();
    let mut txns = TxnTracker::default();
    for group in group_segments(&below, view.config.segment_bytes) {
        let base = group[0].base;
        let cleaned = cleaned_path(&view.dir, base);
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&cleaned)?;
        let out = LogFile::new(out, cleaned.clone());
        let mut pos = 0u64;
        let written = group.iter().try_for_each(|s| {
            s.slice.for_each_batch_bytes(|b, h| {
                if let Some(bytes) = clean_tracked(b, h, &cx, &mut txns)? {
                    out.write_all_at(&bytes, pos)?;
                    pos += bytes.len() as u64;
                }
                Ok(())
            })?;
            throttle.account(s.size);
            stats.bytes_read += s.size;
            Ok(())
        });
        if let Err(e) = written.and_then(|()| out.sync_data()) {
            let _ = std::fs::remove_file(&cleaned);
            return Err(e);
        }
        if view.config.tail_cache_bytes.is_some() {
            // A cleaned segment is old data (below the active segment): as
            // the write path does, leave no pages of it in the page cache.
            out.drop_cached(0, 0);
        }
        throttle.account(pos);
        stats.bytes_written += pos;
        let old: Vec<i64> = group.iter().map(|s| s.base).collect();
        stats.segments_in += old.len();
        stats.segments_out += 1;
        if !p.swap_cleaned(base, &old)? {
            // The log changed under the pass (retention, DeleteRecords,
            // deletion): drop the output; the next pass starts over.
            let _ = std::fs::remove_file(&cleaned);
            return Ok(None);
        }
    }
    stats.end = end;
    Ok(Some(stats))
}

/// Consecutive segments merged while their total size fits
/// `segment_bytes` and offsets stay within a segment's 32-bit range.
fn group_segments<'a>(
    segments: &[&'a SegmentInfo],
    segment_bytes: u64,
) -> Vec<Vec<&'a SegmentInfo>> {
    let mut groups: Vec<Vec<&SegmentInfo>> = Vec::new();
    for s in segments {
        match groups.last_mut() {
            // Empty segments (emptied by an earlier pass) always merge.
            Some(g)
                if (s.size == 0
                    || g.iter().map(|x| x.size).sum::<u64>() + s.size <= segment_bytes)
                    && s.next_offset - g[0].base <= i32::MAX as i64 =>
            {
                g.push(s)
            }
            _ => groups.push(vec![s]),
        }
    }
    groups
}

/// `<base>.log.cleaned`: a cleaned segment not yet swapped in.
pub fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log.cleaned"))
}

/// The `cleaner-offset-checkpoint` file of a data directory.
pub struct Checkpoint {
    path: PathBuf,
    offsets: BTreeMap<(String, i32), i64>,
}

pub const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

impl Checkpoint {
    /// Reads the file; a missing or unreadable one starts empty (every log
    /// is then cleaned from its start, which is always safe).
    pub fn load(data_dir: &Path) -> Checkpoint {
        let path = data_dir.join(CHECKPOINT_FILE);
        let mut offsets = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines().skip(2) {
                let mut it = line.rsplitn(3, ' ');
                let (Some(o), Some(p), Some(t)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                if let (Ok(o), Ok(p)) = (o.parse(), p.parse()) {
                    offsets.insert((t.to_string(), p), o);
                }
            }
        }
        Checkpoint { path, offsets }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(&(topic.to_string(), partition)).copied()
    }

    pub fn set(&mut self, topic: &str, partition: i32, offset: i64) {
        self.offsets.insert((topic.to_string(), partition), offset);
    }

    /// Forgets partitions that no longer exist.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, i32) -> bool) {
        self.offsets.retain(|(t, p), _| keep(t, *p));
    }

    /// Writes the file atomically (temporary file, fsync, rename).
    pub fn save(&self) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.offsets.len());
        for ((t, p), o) in &self.offsets {
            text.push_str(&format!("{t} {p} {o}\n"));
        }
        crate::log::manager::write_atomic(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::HEADER_LEN;
    use crate::log::records::Record;

    fn rec(offset: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            offset,
            timestamp: 1_000 + offset,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![],
        }
    }

    fn batch(base: i64, recs: &[Record], codec: Codec) -> (Vec<u8>, BatchHeader) {
        let mut spec = BatchSpec::plain(codec);
        spec.base_offset = base;
        let b = records::encode(&spec, recs).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        (b, h)
    }

    fn cx<'a>(map: &'a OffsetMap, last: &'a HashMap<i64, i64>, now: i64) -> BatchContext<'a> {
        BatchContext {
            map,
            aborted: &[],
            producer_last: last,
            end: i64::MAX,
            now_ms: now,
            delete_retention_ms: 1_000,
        }
    }

    #[test]
    fn superseded_keyless_and_expired_tombstones_go_offsets_stay() {
        let (b, h) = batch(
            10,
            &[
                rec(10, Some("a"), Some("1")),
                rec(11, Some("b"), Some("1")),
                rec(12, None, Some("x")),
                rec(13, Some("a"), Some("2")),
                rec(14, Some("c"), None),
            ],
            Codec::Zstd,
        );
        let mut map = OffsetMap::new(1 << 20);
        index_batch(&b, &h, &[], &mut map).unwrap();
        assert_eq!((map.get(b"a"), map.len()), (Some(13), 3));
        let last = HashMap::new();
        let out = clean_batch(&b, &h, &cx(&map, &last, 5_000))
            .unwrap()
            .unwrap();
        let (h2, kept) = records::decode(&out, 1 << 20).unwrap();
        let offsets: Vec<i64> = kept.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![11, 13, 14]);
        // Same base offset, last offset delta and codec; timestamps kept.
        assert_eq!((h2.base_offset, h2.last_offset_delta), (10, 4));
        assert_eq!(h2.compression_codec(), Codec::Zstd as i16);
        assert_eq!(kept[2].timestamp, 1_014);
        // The tombstone got a delete horizon: now + delete.retention.ms.
        assert_ne!(h2.attributes & DELETE_HORIZON_FLAG, 0);
        assert_eq!(h2.base_timestamp, 6_000);
        // Before the horizon a second pass keeps it (bytes unchanged)...
        let again = clean_batch(&out, &h2, &cx(&map, &last, 5_999))
            .unwrap()
            .unwrap();
        assert_eq!(again, out);
        // ...after it, the tombstone goes.
        let later = clean_batch(&out, &h2, &cx(&map, &last, 6_000))
            .unwrap()
            .unwrap();
        let (_, kept) = records::decode(&later, 1 << 20).unwrap();
        assert_eq!(
            kept.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![11, 13]
        );
    }

    #[test]
    fn emptied_batches_vanish_unless_a_producer_or_the_pass_needs_them() {
        let mut spec = BatchSpec::plain(Codec::None);
        spec.base_offset = 5;
        spec.producer_id = 42;
        spec.producer_epoch = 3;
        spec.base_sequence = 7;
        let b = records::encode(
            &spec,
            &[
                rec(5, Some("k"), Some("old")),
                rec(6, Some("k"), Some("older")),
            ],
        )
        .unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        let mut map = OffsetMap::new(1 << 20);
        map.put(Bytes::from_static(b"k"), 100);
        let none = HashMap::new();
        assert_eq!(clean_batch(&b, &h, &cx(&map, &none, 0)).unwrap(), None);
        // The producer's last batch: an empty header keeps its sequence.
        let last: HashMap<i64, i64> = [(42, 6)].into();
        let out = clean_batch(&b, &h, &cx(&map, &last, 0)).unwrap().unwrap();
        let e = BatchHeader::parse(&out).unwrap();
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(
            (
                e.base_offset,
                e.last_offset_delta,
                e.records_count,
                e.producer_id,
                e.base_sequence
            ),
            (5, 1, 0, 42, 7)
        );
        assert_eq!(crate::log::batch::compute_crc(&out), e.crc);
        // The batch ending at the pass's end is kept the same way.
        let mut c = cx(&map, &none, 0);
        c.end = 7;
        assert!(clean_batch(&b, &h, &c).unwrap().is_some());
    }

    #[test]
    fn aborted_transactions_are_dropped_and_not_indexed() {
        let mut spec = BatchSpec::plain(Codec::None);
        spec.base_offset = 0;
        spec.producer_id = 9;
        spec.producer_epoch = 0;
        spec.base_sequence = 0;
        spec.attributes = 0x10; // transactional
        let b = records::encode(&spec, &[rec(0, Some("k"), Some("aborted"))]).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        let aborted = [AbortedTxn {
            producer_id: 9,
            first_offset: 0,
            last_offset: 1,
            last_stable_offset: 2,
        }];
        let mut map = OffsetMap::new(1 << 20);
        index_batch(&b, &h, &aborted, &mut map).unwrap();
        assert!(map.is_empty());
        let none = HashMap::new();
        let mut c = cx(&map, &none, 0);
        c.aborted = &aborted;
        assert_eq!(clean_batch(&b, &h, &c).unwrap(), None);
    }

    /// A marker goes once its transaction has no data left: stamped with a
    /// horizon by one pass, dropped by a pass after it; it stays while data
    /// of its transaction does, or while it is the producer's last entry.
    #[test]
    fn markers_go_after_their_transactions_data() {
        use crate::log::batch::{encode_control_batch, ControlMarker};
        let mut spec = BatchSpec::plain(Codec::None);
        spec.producer_id = 9;
        spec.producer_epoch = 1;
        spec.base_sequence = 0;
        spec.attributes = 0x10;
        let data = records::encode(&spec, &[rec(0, Some("k"), Some("txn"))]).unwrap();
        let dh = BatchHeader::parse(&data).unwrap();
        let marker = encode_control_batch(
            9,
            1,
            ControlMarker {
                commit: true,
                coordinator_epoch: 0,
            },
            5_000,
        );
        let mut marker = marker.to_vec();
        marker[0..8].copy_from_slice(&1i64.to_be_bytes());
        let crc = crate::log::batch::compute_crc(&marker);
        marker[17..21].copy_from_slice(&crc.to_be_bytes());
        let mh = BatchHeader::parse(&marker).unwrap();
        let none = HashMap::new();
        // The key was overwritten later: the data goes, the marker is stamped.
        let mut map = OffsetMap::new(1 << 20);
        map.put(Bytes::from_static(b"k"), 10);
        let mut txns = TxnTracker::default();
        let c = cx(&map, &none, 1_000);
        assert_eq!(clean_tracked(&data, &dh, &c, &mut txns).unwrap(), None);
        let stamped = clean_tracked(&marker, &mh, &c, &mut txns).unwrap().unwrap();
        let sh = BatchHeader::parse(&stamped).unwrap();
        assert!(sh.is_control() && sh.is_transactional());
        assert_eq!(
            (sh.base_timestamp, sh.max_timestamp),
            (2_000, mh.max_timestamp)
        );
        assert_eq!(
            crate::log::batch::parse_control_record(&stamped[HEADER_LEN..]).map(|m| m.commit),
            Some(true)
        );
        // Before the horizon it stays, after it goes.
        let mut t = TxnTracker::default();
        assert!(
            clean_tracked(&stamped, &sh, &cx(&map, &none, 1_999), &mut t)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            clean_tracked(&stamped, &sh, &cx(&map, &none, 2_000), &mut t).unwrap(),
            None
        );
        // While the transaction's data is kept, so is its marker, untouched.
        let fresh = OffsetMap::new(1 << 20);
        let mut t = TxnTracker::default();
        let c = cx(&fresh, &none, 1_000);
        assert!(clean_tracked(&data, &dh, &c, &mut t).unwrap().is_some());
        assert_eq!(
            clean_tracked(&marker, &mh, &c, &mut t).unwrap(),
            Some(marker.clone())
        );
        // The producer's last entry stays too.
        let last: HashMap<i64, i64> = [(9, 0)].into();
        let mut t = TxnTracker::default();
        let c = cx(&map, &last, 1_000);
        clean_tracked(&data, &dh, &c, &mut t).unwrap();
        assert_eq!(
            clean_tracked(&marker, &mh, &c, &mut t).unwrap(),
            Some(marker.clone())
        );
    }

    fn seg(base: i64, next: i64, size: u64, ts: i64) -> SegmentInfo {
        let f = tempfile::tempfile().unwrap();
        SegmentInfo {
            base,
            next_offset: next,
            size,
            max_timestamp: ts,
            slice: SegmentSlice::whole(Arc::new(LogFile::new(f, PathBuf::from("x"))), size),
        }
    }

    fn view(segments: Vec<SegmentInfo>, active: i64, lso: i64, cfg: TopicConfig) -> CleanView {
        CleanView {
            dir: PathBuf::from("."),
            config: Arc::new(cfg),
            log_start: 0,
            log_end: active + 5,
            segments,
            active_base: active,
            last_stable: lso,
            producer_last: HashMap::new(),
            aborted: vec![],
        }
    }

    fn compact() -> TopicConfig {
        let mut o = indexmap::IndexMap::new();
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        TopicConfig::resolve(&crate::config::Config::default(), &o)
    }

    #[test]
    fn plans_whole_segments_below_the_lso_by_ratio_and_lag() {
        let segs = || {
            vec![
                seg(0, 100, 1000, 10),
                seg(100, 200, 1000, 20),
                seg(200, 300, 1000, 30),
            ]
        };
        // Never past the LSO: it lies inside segment 200.
        let p = plan(&view(segs(), 300, 250, compact()), None, 1_000).unwrap();
        assert_eq!(
            (p.first_dirty, p.end, p.dirty_segments.clone()),
            (0, 200, 0..2)
        );
        // Dirty ratio: after a checkpoint at 200, 1/3 of the bytes is dirty.
        assert_eq!(
            plan(&view(segs(), 300, 300, compact()), Some(200), 1_000),
            None
        );
        let mut low = compact();
        low.min_cleanable_dirty_ratio = 0.3;
        assert_eq!(
            plan(&view(segs(), 300, 300, low), Some(200), 1_000)
                .unwrap()
                .end,
            300
        );
        // max.compaction.lag.ms forces it anyway.
        let mut lag = compact();
        lag.max_compaction_lag_ms = 100;
        assert!(plan(&view(segs(), 300, 300, lag), Some(200), 1_000).is_some());
        // min.compaction.lag.ms holds back young segments.
        let mut young = compact();
        young.min_compaction_lag_ms = 985;
        let p = plan(&view(segs(), 300, 300, young), None, 1_000).unwrap();
        assert_eq!(p.end, 100);
        // Not compacted: nothing.
        let plain = TopicConfig::resolve(&crate::config::Config::default(), &Default::default());
        assert_eq!(plan(&view(segs(), 300, 300, plain), None, 1_000), None);
    }

    /// `log-cleaner-io-max-bytes-per-second`: a pass's bytes are spread
    /// over at least bytes / rate seconds.
    #[test]
    fn throttle_paces_to_the_configured_rate() {
        let start = std::time::Instant::now();
        let mut t = Throttle {
            rate: 1_000_000.0,
            start,
            bytes: 0,
        };
        for _ in 0..4 {
            t.account(50_000);
        }
        assert!(start.elapsed() >= std::time::Duration::from_millis(200));
        let start = std::time::Instant::now();
        let mut unlimited = Throttle {
            rate: f64::INFINITY,
            start,
            bytes: 0,
        };
        unlimited.account(1 << 30);
        assert!(start.elapsed() < std::time::Duration::from_millis(100));
    }

    #[test]
    fn checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::load(dir.path());
        c.set("orders", 3, 1234);
        c.set("with space?", 0, 5);
        c.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert!(text.starts_with("0\n2\n"), "{text}");
        let c = Checkpoint::load(dir.path());
        assert_eq!(c.get("orders", 3), Some(1234));
        assert_eq!(c.get("orders", 4), None);
    }
}
