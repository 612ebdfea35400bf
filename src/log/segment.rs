//! One segment of a partition log: `<base>.log` plus its two indexes.
//!
//! File names are the segment's base offset, zero-padded to 20 digits, as in
//! Kafka. The `.log` holds v2 record batches back to back, exactly as
//! producers sent them except for the patched `baseOffset` and
//! `partitionLeaderEpoch`. See `docs/storage-format.md`.
//!
//! Concurrency: a `Segment` is owned by its partition's `Log` and mutated only
//! under the partition lock. Readers take a [`SegmentSlice`] (an `Arc` of the
//! file and a byte range fixed under the lock) and read without the lock; the
//! range only ever covers whole batches already written, and a segment deleted
//! meanwhile stays readable through the open descriptor.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::log::batch::{
    self, parse_control_record, BatchHeader, ControlMarker, HEADER_LEN, LOG_OVERHEAD,
};
use crate::log::disk::LogFile;
use crate::log::index::{Load, OffsetIndex, TimeIndex};

pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}
fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}
fn time_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.timeindex"))
}

/// What recovery found and dropped at a segment's tail.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub valid_batches: usize,
    pub truncated_bytes: u64,
    pub reason: Option<&'static str>,
}

pub struct Segment {
    pub base_offset: i64,
    log: Arc<LogFile>,
    dir: PathBuf,
    /// Bytes of whole batches in the `.log`.
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_last_index_entry: u64,
    /// Offset after the last batch (= base offset while empty).
    next_offset: i64,
    /// Largest batch maxTimestamp, and the offset of the batch carrying it.
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Wall-clock time of the first append, for `segment.ms` rolls.
    first_append_ms: Option<i64>,
    /// Page-cache bookkeeping of the `.log` ("The write path" in
    /// `docs/performance.md`): writeback was started for everything below
    /// `written_back`, and the pages below `evicted` were dropped from the
    /// page cache, so reads there are cold.
    written_back: u64,
    evicted: u64,
}

/// Writeback is started, and pages evicted, in whole chunks of this size:
/// one `sync_file_range` per MiB appended, not per batch.
const CACHE_CHUNK: u64 = 1 << 20;
/// The page size the eviction ranges are aligned to (posix_fadvise drops
/// only whole pages).
const PAGE: u64 = 4096;
/// Every drop also covers this much before its range: the page cache holds
/// large folios (up to 2 MiB), and a folio is dropped only when a range
/// covers all of it, so one straddling the end of a range would survive
/// every later range that starts at that end. Ranges behind a sequential
/// writer or reader are cold, and dropping an uncached range costs a
/// lookup.
const DROP_BEHIND: u64 = 4 << 20;

impl Segment {
    /// Creates a new, empty segment (replacing stale files of that name).
    pub fn create(dir: &Path, base_offset: i64, index_max_bytes: usize) -> io::Result<Segment> {
        let path = log_path(dir, base_offset);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(Segment {
            base_offset,
            log: Arc::new(LogFile::new(log, path)),
            dir: dir.to_owned(),
            size: 0,
            offset_index: OffsetIndex::open(
                &index_path(dir, base_offset),
                base_offset,
                index_max_bytes,
                Load::Empty,
            )?,
            time_index: TimeIndex::open(
                &time_index_path(dir, base_offset),
                base_offset,
                index_max_bytes,
                Load::Empty,
            )?,
            bytes_since_last_index_entry: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_append_ms: None,
            written_back: 0,
            evicted: 0,
        })
    }

    /// Opens an existing segment; `active` for the last one of its log
    /// (whose indexes live in memory and take appends).
    ///
    /// With `recover`, every batch is read and its CRC checked; the file is
    /// truncated at the first torn or corrupt batch and both indexes are
    /// rebuilt. Without it (clean shutdown, or a sealed segment) the indexes
    /// are trusted and only the tail after the last index entry is scanned
    /// to find the next offset. Nothing is written unless a sealed
    /// segment's indexes had to be rebuilt, and a failure to write those
    /// (a full disk) only keeps them in memory: start-up works on a full
    /// disk.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_max_bytes: usize,
        index_interval_bytes: u64,
        recover: bool,
        active: bool,
    ) -> io::Result<(Segment, RecoveryReport)> {
        let path = log_path(dir, base_offset);
        let log = OpenOptions::new().read(true).write(true).open(&path)?;
        let log = LogFile::new(log, path);
        let file_len = log.len()?;
        let ipath = index_path(dir, base_offset);
        let tpath = time_index_path(dir, base_offset);
        let indexes_present = ipath.exists() && tpath.exists();
        let rebuild = recover || !indexes_present;
        let load = match (rebuild, active) {
            (true, _) => Load::Empty,
            (false, true) => Load::Active,
            (false, false) => Load::Sealed,
        };
        let mut seg = Segment {
            base_offset,
            log: Arc::new(log),
            dir: dir.to_owned(),
            size: file_len,
            offset_index: OffsetIndex::open(&ipath, base_offset, index_max_bytes, load)?,
            time_index: TimeIndex::open(&tpath, base_offset, index_max_bytes, load)?,
            bytes_since_last_index_entry: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_append_ms: None,
            written_back: 0,
            evicted: 0,
        };
        // Stale indexes: one pointing past the file, or a sealed non-empty
        // segment without its final time index entry (a seal that failed).
        let stale = matches!(seg.offset_index.last(), Some((_, p)) if p as u64 > file_len)
            || (!active && file_len > 0 && seg.time_index.is_empty());
        if !rebuild && stale {
            return Segment::open(
                dir,
                base_offset,
                index_max_bytes,
                index_interval_bytes,
                true,
                active,
            );
        }
        let report = if rebuild {
            let report = seg.recover(index_interval_bytes)?;
            if !active {
                if let Err(e) = seg.seal() {
                    tracing::warn!(segment = %seg.log.path().display(), error = %e, "cannot write rebuilt indexes; keeping them in memory");
                }
            }
            report
        } else {
            if let Some((ts, off)) = seg.time_index.last() {
                seg.max_timestamp = ts;
                seg.offset_of_max_timestamp = off;
            }
            let start = seg.offset_index.last().map(|(_, p)| p as u64).unwrap_or(0);
            seg.scan_tail(start)?
        };
        // What a previous run wrote is on disk (recovery or the clean
        // shutdown's fsync saw to it) and counts as cold: reads of it drop
        // what they read, and write-behind starts at the end.
        seg.written_back = seg.size - seg.size % PAGE;
        seg.evicted = seg.written_back;
        Ok((seg, report))
    }

    /// Walks headers from `start` to the end without CRC checks, to restore
    /// next offset and max timestamp after a clean open. A malformed tail
    /// falls back to full recovery of this segment.
    fn scan_tail(&mut self, start: u64) -> io::Result<RecoveryReport> {
        let mut pos = start;
        let mut hdr = [0u8; HEADER_LEN];
        let mut report = RecoveryReport::default();
        while pos < self.size {
            if pos + HEADER_LEN as u64 > self.size {
                return self.recover(u64::MAX);
            }
            self.log.read_exact_at(&mut hdr, pos)?;
            let h = BatchHeader::parse(&hdr).expect("full header");
            if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
                || pos + h.total_len() as u64 > self.size
            {
                return self.recover(u64::MAX);
            }
            self.note_batch(&h);
            report.valid_batches += 1;
            pos += h.total_len() as u64;
        }
        Ok(report)
    }

    /// Full scan with CRC validation; truncates at the first bad batch and
    /// rebuilds both indexes.
    fn recover(&mut self, index_interval_bytes: u64) -> io::Result<RecoveryReport> {
        let file_len = self.log.len()?;
        self.offset_index.clear();
        self.time_index.clear();
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        let mut report = RecoveryReport::default();
        let mut pos = 0u64;
        let mut buf = Vec::new();
        let mut expected_next: Option<i64> = None;
        while pos < file_len {
            let remaining = file_len - pos;
            if remaining < HEADER_LEN as u64 {
                report.reason = Some("torn batch header at the tail");
                break;
            }
            buf.resize(HEADER_LEN, 0);
            self.log.read_exact_at(&mut buf, pos)?;
            let h = BatchHeader::parse(&buf).expect("full header");
            if h.magic != 2 || h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
                report.reason = Some("invalid batch header");
                break;
            }
            let total = h.total_len() as u64;
            if total > remaining {
                report.reason = Some("torn batch: length runs past the end of the file");
                break;
            }
            buf.resize(total as usize, 0);
            self.log.read_exact_at(&mut buf, pos)?;
            if batch::compute_crc(&buf) != h.crc {
                report.reason = Some("CRC-32C mismatch");
                break;
            }
            if h.base_offset < self.base_offset
                || expected_next.is_some_and(|n| h.base_offset < n)
                || h.last_offset_delta < 0
            {
                report.reason = Some("offsets out of order");
                break;
            }
            if self.bytes_since_last_index_entry > index_interval_bytes {
                self.add_index_entries(&h, pos as u32);
            }
            self.note_batch(&h);
            self.bytes_since_last_index_entry += total;
            expected_next = Some(h.next_offset());
            report.valid_batches += 1;
            pos += total;
        }
        if pos < file_len {
            report.truncated_bytes = file_len - pos;
            self.log.set_len(pos)?;
        }
        self.size = pos;
        Ok(report)
    }

    fn note_batch(&mut self, h: &BatchHeader) {
        self.next_offset = h.next_offset();
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
    }

    fn add_index_entries(&mut self, h: &BatchHeader, position: u32) {
        self.offset_index.append(h.base_offset, position);
        self.time_index.maybe_append(
            self.max_timestamp.max(h.max_timestamp),
            if h.max_timestamp > self.max_timestamp {
                h.base_offset
            } else {
                self.offset_of_max_timestamp
            },
        );
        self.bytes_since_last_index_entry = 0;
    }

    /// Appends one batch whose offsets are already assigned, given as its
    /// parts (the patched header and the records as received), in one
    /// `pwritev`: one write of the whole batch measured ~30% faster than
    /// writing the parts separately (a lone small write into a fresh page
    /// makes the kernel zero the rest of it first), and the vector saves
    /// copying the parts into one buffer (~7% of the broker's produce
    /// profile). The bytes reach the page cache before this returns, so a process crash
    /// cannot lose them; durability against power loss is `flush`. Readers
    /// never see the batch before `size` covers it.
    ///
    /// A failed write (a full disk) is undone: the file is truncated back
    /// to the last whole batch and nothing else changes, so the segment is
    /// exactly as before and the next append may succeed.
    pub fn append(
        &mut self,
        h: &BatchHeader,
        parts: &[&[u8]],
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> io::Result<()> {
        let position = self.size;
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if let Err(e) = self.log.write_all_vectored_at(parts, position) {
            if let Err(undo) = self.log.set_len(position) {
                tracing::error!(segment = %self.log.path().display(), error = %undo, "cannot truncate a failed append");
            }
            return Err(e);
        }
        if self.bytes_since_last_index_entry > index_interval_bytes {
            self.add_index_entries(h, position as u32);
        }
        self.note_batch(h);
        self.bytes_since_last_index_entry += len;
        self.size += len;
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// The page-cache management after an append ("The write path" in
    /// `docs/performance.md`): starts writeback of the whole chunks
    /// appended since the last call, then waits for the writeback of, and
    /// evicts, the chunks more than `window` bytes behind the end. The
    /// window stays cached for consumers near the tail; the evicted pages
    /// are what the next appends reuse, so the page cache does not grow.
    /// An error is a failed writeback: the caller treats it as a failed
    /// fsync.
    pub fn write_behind(&mut self, window: u64) -> io::Result<()> {
        let ready = (self.size - self.written_back) / CACHE_CHUNK * CACHE_CHUNK;
        if ready > 0 {
            self.log.start_writeback(self.written_back, ready)?;
            self.written_back += ready;
        }
        let cold_end = self.size.saturating_sub(window).min(self.written_back);
        let evictable = cold_end.saturating_sub(self.evicted) / CACHE_CHUNK * CACHE_CHUNK;
        if evictable > 0 {
            self.log.evict(self.evicted, evictable, DROP_BEHIND)?;
            self.evicted += evictable;
        }
        Ok(())
    }

    /// Evicts whatever of a sealed segment is still cached, once the tail
    /// window has moved on into the next segment.
    pub fn evict_rest(&mut self) -> io::Result<()> {
        if self.evicted < self.size {
            // Length 0 means "to the end of the file" for both calls, so
            // the partial last page goes too.
            self.log.evict(self.evicted, 0, DROP_BEHIND)?;
            self.written_back = self.size;
            self.evicted = self.size;
        }
        Ok(())
    }

    /// Positions below this were evicted: a read there is cold.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Whether appending `len` more bytes requires a new segment first.
    pub fn should_roll(
        &self,
        len: usize,
        segment_bytes: u64,
        segment_ms: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        self.size + len as u64 > segment_bytes
            || self.size + len as u64 > u32::MAX as u64
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || self
                .first_append_ms
                .is_some_and(|t| now_ms - t >= segment_ms)
    }

    /// Seals the segment (it rolled, or the broker shuts down cleanly):
    /// records the final max timestamp in the time index and writes both
    /// indexes to their files. On failure (a full disk) the indexes stay
    /// in memory and the segment can keep taking appends.
    pub fn seal(&mut self) -> io::Result<()> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        }
        self.offset_index.seal()?;
        self.time_index.seal()
    }

    /// fsyncs the log.
    pub fn flush(&self) -> io::Result<()> {
        self.log.sync_data()
    }

    /// fsyncs the index files (after [`Self::seal`]).
    pub fn flush_indexes(&self) -> io::Result<()> {
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// The `.log` and both index files (for a background fsync after a roll).
    pub fn files(&self) -> Vec<Arc<LogFile>> {
        vec![
            self.log.clone(),
            self.offset_index.file(),
            self.time_index.file(),
        ]
    }

    pub fn log_file(&self) -> Arc<LogFile> {
        self.log.clone()
    }

    pub fn delete_files(self) -> io::Result<()> {
        let base = self.base_offset;
        for p in [
            log_path(&self.dir, base),
            index_path(&self.dir, base),
            time_index_path(&self.dir, base),
        ] {
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// A readable range starting near `offset` (from the offset index).
    pub fn slice_from(&self, offset: i64) -> SegmentSlice {
        let (_, position) = self.offset_index.lookup(offset);
        SegmentSlice {
            file: self.log.clone(),
            start: position as u64,
            end: self.size,
            cold_below: 0,
        }
    }

    /// A readable range starting near the first batch whose max timestamp
    /// may reach `ts` (from the time and offset indexes).
    pub fn slice_for_timestamp(&self, ts: i64) -> SegmentSlice {
        self.slice_from(self.time_index.lookup(ts))
    }
}

/// A byte range of a segment's `.log` holding whole batches, readable
/// without the partition lock.
#[derive(Debug, Clone)]
pub struct SegmentSlice {
    file: Arc<LogFile>,
    start: u64,
    end: u64,
    /// [`Self::read`] drops the pages it read below this position from the
    /// page cache (cold data, outside the log's tail window), so a
    /// consumer replaying old data does not grow the page cache or evict
    /// the tail. 0: nothing is dropped.
    cold_below: u64,
}

impl SegmentSlice {
    /// All of a `.log` file's first `size` bytes.
    pub fn whole(file: Arc<LogFile>, size: u64) -> SegmentSlice {
        SegmentSlice {
            file,
            start: 0,
            end: size,
            cold_below: 0,
        }
    }

    /// The same slice, dropping what it reads below `position` from the
    /// page cache.
    pub fn cold_below(mut self, position: u64) -> SegmentSlice {
        self.cold_below = position;
        self
    }

    /// Calls `f` with every whole batch (bytes and header), in order; a
    /// batch whose length runs past the slice is an error (the cleaner
    /// reads sealed segments, which recovery left whole).
    pub fn for_each_batch_bytes(
        &self,
        mut f: impl FnMut(&[u8], &BatchHeader) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut pos = self.start;
        let mut buf = Vec::new();
        while let Some(h) = self.header_at(pos)? {
            let total = h.total_len() as u64;
            if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 || pos + total > self.end {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed batch in a sealed segment",
                ));
            }
            buf.resize(total as usize, 0);
            self.file.read_exact_at(&mut buf, pos)?;
            f(&buf, &h)?;
            pos += total;
        }
        Ok(())
    }

    fn header_at(&self, pos: u64) -> io::Result<Option<BatchHeader>> {
        if pos + HEADER_LEN as u64 > self.end {
            return Ok(None);
        }
        let mut hdr = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut hdr, pos)?;
        Ok(BatchHeader::parse(&hdr))
    }

    /// Position of the batch containing `offset` (it may start earlier),
    /// or `None` if the slice ends first.
    fn seek(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut pos = self.start;
        while let Some(h) = self.header_at(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Whole batches from the one containing `offset`, stopping before any
    /// batch at or past `upper` (high watermark or LSO) and within
    /// `max_bytes`; with `min_one`, the first batch is returned even when it
    /// alone exceeds `max_bytes` (KIP-74).
    pub fn read(
        &self,
        offset: i64,
        upper: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> io::Result<Bytes> {
        let Some((start, first)) = self.seek(offset)? else {
            return Ok(Bytes::new());
        };
        if first.base_offset >= upper {
            return Ok(Bytes::new());
        }
        let first_len = first.total_len();
        if first_len > max_bytes && !min_one {
            return Ok(Bytes::new());
        }
        // One read of up to max_bytes, then cut at the last whole batch below `upper`.
        let want = (self.end - start).min(max_bytes.max(first_len) as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        self.file.read_exact_at(&mut buf, start)?;
        if start < self.cold_below {
            // Whole pages (the partial ones at both ends are cold as well),
            // and the large folios behind the read.
            let from = (start - start % PAGE).saturating_sub(DROP_BEHIND);
            let to = (start + want as u64)
                .next_multiple_of(PAGE)
                .min(self.cold_below);
            if to > from {
                self.file.drop_cached(from, to - from);
            }
        }
        let mut cut = 0usize;
        while cut + HEADER_LEN <= buf.len() {
            let h = BatchHeader::parse(&buf[cut..]).expect("full header");
            if h.base_offset >= upper || cut + h.total_len() > buf.len() {
                break;
            }
            cut += h.total_len();
        }
        buf.truncate(cut);
        Ok(buf.freeze())
    }

    /// Calls `f` with every batch header in the slice, in order.
    pub fn for_each_header(&self, mut f: impl FnMut(&BatchHeader)) -> io::Result<()> {
        let mut pos = self.start;
        while let Some(h) = self.header_at(pos)? {
            f(&h);
            pos += h.total_len() as u64;
        }
        Ok(())
    }

    /// Like [`Self::for_each_header`], also decoding the transaction marker
    /// of each control batch (for rebuilding producer and transaction state).
    pub fn for_each_batch(
        &self,
        mut f: impl FnMut(&BatchHeader, Option<ControlMarker>),
    ) -> io::Result<()> {
        let mut pos = self.start;
        let mut buf = [0u8; 64];
        while let Some(h) = self.header_at(pos)? {
            let marker = if h.is_control() {
                let n = h.total_len().saturating_sub(HEADER_LEN).min(buf.len());
                self.file
                    .read_exact_at(&mut buf[..n], pos + HEADER_LEN as u64)?;
                parse_control_record(&buf[..n])
            } else {
                None
            };
            f(&h, marker);
            pos += h.total_len() as u64;
        }
        Ok(())
    }

    /// The first offset at or after `start_offset` whose record timestamp is
    /// `>= ts`, scanning batches below `upper`. For a compressed batch the
    /// broker does not decompress, so the batch's base offset is returned.
    pub fn find_offset_by_timestamp(&self, ts: i64, upper: i64) -> io::Result<Option<(i64, i64)>> {
        let mut pos = self.start;
        let mut buf = Vec::new();
        while let Some(h) = self.header_at(pos)? {
            if h.base_offset >= upper {
                break;
            }
            if h.max_timestamp >= ts {
                buf.resize(h.total_len(), 0);
                self.file.read_exact_at(&mut buf, pos)?;
                let found = batch::first_offset_with_timestamp(&buf, ts)
                    .unwrap_or((h.base_offset, h.max_timestamp));
                return Ok(Some(found));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::make_batch;
    use std::fs::File;
    use std::os::unix::fs::FileExt;

    fn append(seg: &mut Segment, offset: i64, values: &[&[u8]], ts: i64) {
        let mut b = make_batch(values, ts);
        batch::assign_offsets(&mut b, offset, 0);
        let h = BatchHeader::parse(&b).unwrap();
        seg.append(&h, &[&b], 64, 0).unwrap();
    }

    #[test]
    fn append_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 100, 4096).unwrap();
        for i in 0..50 {
            append(
                &mut seg,
                100 + i * 2,
                &[b"0123456789", b"abcdefghij"],
                1000 + i,
            );
        }
        assert_eq!(seg.next_offset(), 200);
        // Offset 151 lives inside the batch starting at 150.
        let data = seg
            .slice_from(151)
            .read(151, i64::MAX, 1 << 20, true)
            .unwrap();
        assert_eq!(BatchHeader::parse(&data).unwrap().base_offset, 150);
        // Upper bound stops before batches at or past it.
        let data = seg.slice_from(100).read(100, 104, 1 << 20, true).unwrap();
        let h = BatchHeader::parse(&data).unwrap();
        assert_eq!(data.len(), 2 * h.total_len());
        // max_bytes smaller than a batch: one batch only with min_one.
        assert_eq!(
            seg.slice_from(100)
                .read(100, i64::MAX, 10, true)
                .unwrap()
                .len(),
            h.total_len()
        );
        assert!(seg
            .slice_from(100)
            .read(100, i64::MAX, 10, false)
            .unwrap()
            .is_empty());
        let size = seg.size();
        seg.seal().unwrap();
        drop(seg);
        let (seg, report) = Segment::open(dir.path(), 100, 4096, 64, false, false).unwrap();
        assert_eq!(
            (seg.next_offset(), seg.size(), seg.max_timestamp()),
            (200, size, 1050)
        );
        assert_eq!(report.truncated_bytes, 0);
        let (off, _) = seg
            .slice_for_timestamp(1020)
            .find_offset_by_timestamp(1020, i64::MAX)
            .unwrap()
            .unwrap();
        // Batch i (offsets 100+2i, 101+2i) has timestamps 1000+i, 1001+i:
        // 1020 is first reached by the second record of batch 19.
        assert_eq!(off, 139);
        let (off, _) = seg
            .slice_for_timestamp(1021)
            .find_offset_by_timestamp(1021, i64::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(off, 141);
    }

    /// Garbage written at a random position: recovery keeps exactly the
    /// batches that end before it.
    #[test]
    fn recovery_truncates_at_corruption() {
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 40,
            ..Config::default()
        });
        runner
            .run(&(0usize..2000, 1u8..255), |(at, garbage)| {
                let dir = tempfile::tempdir().unwrap();
                let mut seg = Segment::create(dir.path(), 0, 4096).unwrap();
                let mut ends = Vec::new();
                for i in 0..20 {
                    append(&mut seg, i, &[b"payload-payload"], i);
                    ends.push(seg.size());
                }
                let total = seg.size();
                drop(seg);
                let at = (at as u64) % total;
                let f = OpenOptions::new()
                    .write(true)
                    .open(log_path(dir.path(), 0))
                    .unwrap();
                let mut byte = [0u8; 1];
                let r = File::open(log_path(dir.path(), 0)).unwrap();
                r.read_exact_at(&mut byte, at).unwrap();
                f.write_all_at(&[byte[0] ^ garbage], at).unwrap();
                let (seg, report) = Segment::open(dir.path(), 0, 4096, 64, true, true).unwrap();
                // The corrupt byte is in the first batch ending after `at`,
                // except inside baseOffset/leaderEpoch (outside the CRC).
                let batch_idx = ends.iter().position(|e| *e > at).unwrap();
                let batch_start = if batch_idx == 0 {
                    0
                } else {
                    ends[batch_idx - 1]
                };
                let rel = at - batch_start;
                let uncovered = rel < 8 || (12..16).contains(&rel);
                if uncovered && rel >= 8 {
                    assert_eq!(seg.size(), total);
                } else if !uncovered {
                    assert_eq!(seg.size(), batch_start, "at={at} rel={rel}");
                    assert_eq!(report.truncated_bytes, total - batch_start);
                    assert_eq!(seg.next_offset(), batch_idx as i64);
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn recovery_truncates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 4096).unwrap();
        append(&mut seg, 0, &[b"a"], 0);
        let good = seg.size();
        append(&mut seg, 1, &[b"b"], 0);
        drop(seg);
        let f = OpenOptions::new()
            .write(true)
            .open(log_path(dir.path(), 0))
            .unwrap();
        f.set_len(good + 30).unwrap();
        let (seg, report) = Segment::open(dir.path(), 0, 4096, 64, true, true).unwrap();
        assert_eq!(
            (seg.size(), seg.next_offset(), report.truncated_bytes),
            (good, 1, 30)
        );
    }
}
