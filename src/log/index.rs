//! Sparse segment indexes: [`OffsetIndex`] and [`TimeIndex`].
//!
//! Entry layouts (big-endian, fixed size):
//!
//! ```text
//! .index      relative offset u32 | file position u32            (8 bytes)
//! .timeindex  timestamp i64       | relative offset u32          (12 bytes)
//! ```
//!
//! Relative offsets are `offset - segment base offset`. Entries are appended
//! in increasing order (offsets strictly; timestamps strictly, since only a
//! new maximum is indexed), so lookups are binary searches.
//!
//! As in Kafka, no attempt is made to checksum these files: the `.log` is the
//! source of truth, and after an unclean shutdown the active segment's indexes
//! are rebuilt from it.
//!
//! The active segment's entries live in memory and reach their file when the
//! segment is sealed (rolled, or the broker shuts down cleanly), written
//! with ordinary `pwrite`s; sealed indexes are mapped read-only. Nothing is
//! ever written through a memory map: a write into a sparse mapped page on
//! a full disk kills the process with SIGBUS, where a `pwrite` returns
//! ENOSPC that the log can handle.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::log::disk::LogFile;

/// Where an index's entries are.
enum Entries {
    /// The active segment's: appended in memory.
    Memory(Vec<u8>),
    /// A sealed segment's: the file, mapped read-only (`None` while empty:
    /// an empty file cannot be mapped).
    Mapped(Option<Mmap>),
}

/// A file of fixed-size entries.
struct IndexFile {
    file: Arc<LogFile>,
    entries: Entries,
    entry_size: usize,
    len: usize,
    /// Most entries this index may hold (`segment.index.bytes`); a full
    /// index rolls the segment.
    capacity: usize,
}

impl IndexFile {
    /// Opens or creates `path`. `Load::Sealed` maps the existing whole
    /// entries read-only; `Load::Active` reads them into memory;
    /// `Load::Empty` starts with none (they will be rebuilt from the log).
    fn open(path: &Path, entry_size: usize, max_bytes: usize, load: Load) -> io::Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let file = Arc::new(LogFile::new(file, path.to_owned()));
        let existing = match load {
            Load::Empty => 0,
            Load::Active | Load::Sealed => file.len()? as usize / entry_size,
        };
        let entries = match load {
            Load::Empty => Entries::Memory(Vec::new()),
            Load::Active => {
                let mut buf = vec![0u8; existing * entry_size];
                file.read_exact_at(&mut buf, 0)?;
                Entries::Memory(buf)
            }
            Load::Sealed => Entries::Mapped(map(&file, existing * entry_size)?),
        };
        Ok(IndexFile {
            file,
            entries,
            entry_size,
            len: existing,
            capacity: (max_bytes / entry_size).max(existing).max(1),
        })
    }

    fn entry(&self, i: usize) -> &[u8] {
        let bytes: &[u8] = match &self.entries {
            Entries::Memory(v) => v,
            Entries::Mapped(Some(m)) => m,
            Entries::Mapped(None) => &[],
        };
        &bytes[i * self.entry_size..(i + 1) * self.entry_size]
    }

    fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    fn push(&mut self, entry: &[u8]) {
        debug_assert_eq!(entry.len(), self.entry_size);
        if self.is_full() {
            return;
        }
        if let Entries::Mapped(m) = &self.entries {
            // Appending to a sealed index (a segment reopened for appends):
            // back to memory.
            let bytes = m.as_deref().unwrap_or(&[])[..self.len * self.entry_size].to_vec();
            self.entries = Entries::Memory(bytes);
        }
        if let Entries::Memory(v) = &mut self.entries {
            v.extend_from_slice(entry);
            self.len += 1;
        }
    }

    /// Drops every entry (before a rebuild from the log).
    fn clear(&mut self) {
        self.entries = Entries::Memory(Vec::new());
        self.len = 0;
    }

    /// Writes in-memory entries to the file, trims it to them and maps it
    /// read-only. On failure (a full disk) the entries stay in memory and
    /// the file is emptied, so a later start never trusts a partial index.
    fn seal(&mut self) -> io::Result<()> {
        let Entries::Memory(v) = &self.entries else {
            return Ok(());
        };
        let written = self
            .file
            .write_all_at(v, 0)
            .and_then(|()| self.file.set_len(v.len() as u64))
            .and_then(|()| map(&self.file, v.len()));
        match written {
            Ok(m) => {
                self.entries = Entries::Mapped(m);
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(0);
                Err(e)
            }
        }
    }

    /// Index of the last entry whose key is `<= target` (or `< target` when
    /// `strict`), by binary search over `key`.
    fn floor_by<K: Ord>(&self, target: K, strict: bool, key: impl Fn(&[u8]) -> K) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let k = key(self.entry(mid));
            let before = if strict { k < target } else { k <= target };
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// How [`IndexFile::open`] treats what the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Start empty; the caller rebuilds the entries from the log.
    Empty,
    /// The active segment's index: entries read into memory.
    Active,
    /// A sealed segment's index: entries mapped read-only.
    Sealed,
}

/// Maps the first `len` bytes of `file` read-only.
fn map(file: &LogFile, len: usize) -> io::Result<Option<Mmap>> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the file is private to this broker (one process per data
    // directory, enforced by the data directory lock) and a sealed index is
    // never written or truncated again while mapped: it is only read, and
    // deleted with its segment (an unlinked file stays mapped intact).
    #[allow(unsafe_code)]
    let m = unsafe { memmap2::MmapOptions::new().len(len).map(file.file())? };
    Ok(Some(m))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Maps offsets to byte positions in the segment's `.log`.
pub struct OffsetIndex {
    inner: IndexFile,
    base_offset: i64,
}

pub const OFFSET_ENTRY: usize = 8;
pub const TIME_ENTRY: usize = 12;

impl OffsetIndex {
    pub fn open(path: &Path, base_offset: i64, max_bytes: usize, load: Load) -> io::Result<Self> {
        Ok(OffsetIndex {
            inner: IndexFile::open(path, OFFSET_ENTRY, max_bytes, load)?,
            base_offset,
        })
    }

    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    pub fn len(&self) -> usize {
        self.inner.len
    }

    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    pub fn append(&mut self, offset: i64, position: u32) {
        let mut e = [0u8; OFFSET_ENTRY];
        e[..4].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.inner.push(&e);
    }

    /// The last entry with offset `<= target`: `(offset, position)`. Falls
    /// back to the segment start.
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        let rel = target - self.base_offset;
        if rel < 0 {
            return (self.base_offset, 0);
        }
        let rel = rel.min(u32::MAX as i64) as u32;
        match self.inner.floor_by(rel, false, |e| u32_at(e, 0)) {
            Some(i) => self.entry(i),
            None => (self.base_offset, 0),
        }
    }

    fn entry(&self, i: usize) -> (i64, u32) {
        let e = self.inner.entry(i);
        (self.base_offset + u32_at(e, 0) as i64, u32_at(e, 4))
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<(i64, u32)> {
        self.inner.len.checked_sub(1).map(|i| self.entry(i))
    }

    /// Drops every entry (before a rebuild from the log).
    pub fn clear(&mut self) {
        self.inner.clear();
    }

    /// Writes the entries to the file and maps it read-only.
    pub fn seal(&mut self) -> io::Result<()> {
        self.inner.seal()
    }

    /// fsyncs the file (of a sealed index).
    pub fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }

    pub fn file(&self) -> Arc<LogFile> {
        self.inner.file.clone()
    }

    pub fn path(&self) -> &Path {
        self.inner.path()
    }
}

/// Maps timestamps to offsets. An entry `(t, o)` means: the largest
/// timestamp seen in this segment up to and including the batch at offset
/// `o` is `t`, and no batch before `o` reached `t`.
pub struct TimeIndex {
    inner: IndexFile,
    base_offset: i64,
}

impl TimeIndex {
    pub fn open(path: &Path, base_offset: i64, max_bytes: usize, load: Load) -> io::Result<Self> {
        Ok(TimeIndex {
            inner: IndexFile::open(path, TIME_ENTRY, max_bytes, load)?,
            base_offset,
        })
    }

    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    pub fn len(&self) -> usize {
        self.inner.len
    }

    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// The last indexed `(timestamp, offset)`.
    pub fn last(&self) -> Option<(i64, i64)> {
        self.inner.len.checked_sub(1).map(|i| self.entry(i))
    }

    fn entry(&self, i: usize) -> (i64, i64) {
        let e = self.inner.entry(i);
        let ts = i64::from_be_bytes(e[..8].try_into().expect("8 bytes"));
        (ts, self.base_offset + u32_at(e, 8) as i64)
    }

    /// Appends only a strictly larger timestamp, keeping entries monotonic.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if matches!(self.last(), Some((t, _)) if t >= timestamp) {
            return;
        }
        let mut e = [0u8; TIME_ENTRY];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        self.inner.push(&e);
    }

    /// An offset from which a forward scan finds the first batch whose max
    /// timestamp is `>= target`: the entry just below `target`, else the
    /// segment start. Every batch before the returned offset is below `target`.
    pub fn lookup(&self, target: i64) -> i64 {
        match self.inner.floor_by(target, true, |e| {
            i64::from_be_bytes(e[..8].try_into().expect("8 bytes"))
        }) {
            Some(i) => self.entry(i).1,
            None => self.base_offset,
        }
    }

    /// Drops every entry (before a rebuild from the log).
    pub fn clear(&mut self) {
        self.inner.clear();
    }

    /// Writes the entries to the file and maps it read-only.
    pub fn seal(&mut self) -> io::Result<()> {
        self.inner.seal()
    }

    /// fsyncs the file (of a sealed index).
    pub fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }

    pub fn file(&self) -> Arc<LogFile> {
        self.inner.file.clone()
    }

    pub fn path(&self) -> &Path {
        self.inner.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The offset index answers exactly as a BTreeMap floor lookup.
        #[test]
        fn offset_index_matches_btreemap(gaps in proptest::collection::vec(1u32..50, 0..200), probes in proptest::collection::vec(0i64..12_000, 1..50)) {
            let dir = tempfile::tempdir().unwrap();
            let base = 1000;
            let mut idx = OffsetIndex::open(&dir.path().join("x.index"), base, 4096, Load::Empty).unwrap();
            let mut model = BTreeMap::new();
            let (mut off, mut pos) = (base, 0u32);
            for g in gaps {
                off += g as i64;
                pos += g * 10;
                idx.append(off, pos);
                model.insert(off, pos);
            }
            for p in probes {
                let want = model.range(..=p).next_back().map(|(o, q)| (*o, *q)).unwrap_or((base, 0));
                prop_assert_eq!(idx.lookup(p), want);
            }
        }

        /// The time index returns an offset at or below the first entry whose
        /// timestamp reaches the target, and never skips one.
        #[test]
        fn time_index_lookup_is_safe(ts in proptest::collection::vec(0i64..1000, 0..100), target in 0i64..1100) {
            let dir = tempfile::tempdir().unwrap();
            let mut idx = TimeIndex::open(&dir.path().join("x.timeindex"), 0, 4096, Load::Empty).unwrap();
            let mut max = i64::MIN;
            let mut first_reaching = None;
            for (i, t) in ts.iter().enumerate() {
                idx.maybe_append(*t, i as i64);
                max = max.max(*t);
                if max >= target && first_reaching.is_none() { first_reaching = Some(i as i64); }
            }
            let got = idx.lookup(target);
            if let Some(f) = first_reaching { prop_assert!(got <= f); }
        }
    }

    #[test]
    fn sealed_entries_reopen_and_rebuild_discards() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        {
            let mut idx = OffsetIndex::open(&p, 0, 1024, Load::Empty).unwrap();
            idx.append(5, 100);
            assert_eq!(std::fs::metadata(&p).unwrap().len(), 0, "memory only");
            idx.append(9, 200);
            idx.seal().unwrap();
            assert_eq!(idx.lookup(10), (9, 200), "readable once mapped");
            // A sealed index reopened for appends keeps what it had.
            idx.append(12, 300);
            assert_eq!(idx.lookup(100), (12, 300));
            assert_eq!(idx.len(), 3);
        }
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 16);
        for load in [Load::Active, Load::Sealed] {
            let idx = OffsetIndex::open(&p, 0, 1024, load).unwrap();
            assert_eq!(idx.len(), 2);
            assert_eq!(idx.lookup(10), (9, 200));
        }
        let idx = OffsetIndex::open(&p, 0, 1024, Load::Empty).unwrap();
        assert_eq!(idx.len(), 0);
    }

    /// A seal that fails for lack of space keeps the entries in memory and
    /// leaves no partial file for a later start to trust.
    #[test]
    fn failed_seal_keeps_memory_and_empties_the_file() {
        use crate::log::disk::faults::{self, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::open(&p, 0, 1024, Load::Empty).unwrap();
        idx.maybe_append(10, 1);
        idx.maybe_append(20, 2);
        faults::inject(dir.path(), Op::Write, Fault::NoSpaceAfter(13), 1);
        assert!(idx.seal().is_err());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        assert_eq!(idx.last(), Some((20, 2)));
        idx.maybe_append(30, 3);
        idx.seal().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 36);
        assert_eq!(idx.lookup(25), 2);
    }

    #[test]
    fn full_index_stops_accepting() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 0, 16, Load::Empty).unwrap();
        idx.append(1, 1);
        idx.append(2, 2);
        assert!(idx.is_full());
        idx.append(3, 3);
        assert_eq!(idx.len(), 2);
    }
}
