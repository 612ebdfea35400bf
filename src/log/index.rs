//! Sparse, memory-mapped segment indexes: [`OffsetIndex`] and [`TimeIndex`].
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
//! are rebuilt from it. The active segment's files are preallocated to the
//! configured maximum (sparse, so untouched pages cost nothing) and trimmed to
//! their entries when the segment rolls or the broker shuts down cleanly.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

/// A file of fixed-size entries mapped into memory.
struct MmapFile {
    path: PathBuf,
    file: File,
    /// `None` while the file is empty (an empty file cannot be mapped).
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    capacity: usize,
}

impl MmapFile {
    /// Opens or creates `path`. With `load`, existing whole entries are kept;
    /// otherwise the file is emptied (it will be rebuilt from the log).
    fn open(path: &Path, entry_size: usize, max_bytes: usize, load: bool) -> io::Result<MmapFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let existing = if load {
            file.metadata()?.len() as usize / entry_size
        } else {
            0
        };
        let capacity = (max_bytes / entry_size).max(existing).max(1);
        let mut f = MmapFile {
            path: path.to_owned(),
            file,
            mmap: None,
            entry_size,
            entries: existing,
            capacity,
        };
        f.resize(capacity)?;
        Ok(f)
    }

    /// Sets the file to `entries` slots and remaps it.
    fn resize(&mut self, entries: usize) -> io::Result<()> {
        // Drop the old mapping first: nothing may touch pages past a new EOF.
        self.mmap = None;
        self.file.set_len((entries * self.entry_size) as u64)?;
        self.capacity = entries;
        if entries > 0 {
            // SAFETY: the file is private to this broker (one process per data
            // directory) and is only resized through `self`, after the old map
            // has been dropped, so the mapping never outlives its file range.
            #[allow(unsafe_code)]
            let map = unsafe { MmapMut::map_mut(&self.file)? };
            self.mmap = Some(map);
        }
        Ok(())
    }

    fn entry(&self, i: usize) -> &[u8] {
        let map = self.mmap.as_ref().expect("mapped while entries exist");
        &map[i * self.entry_size..(i + 1) * self.entry_size]
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    fn push(&mut self, entry: &[u8]) {
        debug_assert_eq!(entry.len(), self.entry_size);
        if self.is_full() {
            return;
        }
        let at = self.entries * self.entry_size;
        let map = self.mmap.as_mut().expect("capacity >= 1 so mapped");
        map[at..at + self.entry_size].copy_from_slice(entry);
        self.entries += 1;
    }

    /// Shrinks the file to its entries (on roll and on clean shutdown).
    fn trim(&mut self) -> io::Result<()> {
        self.flush()?;
        self.resize(self.entries)
    }

    fn flush(&self) -> io::Result<()> {
        match &self.mmap {
            Some(m) => m.flush(),
            None => Ok(()),
        }
    }

    /// Index of the last entry whose key is `<= target` (or `< target` when
    /// `strict`), by binary search over `key`.
    fn floor_by<K: Ord>(&self, target: K, strict: bool, key: impl Fn(&[u8]) -> K) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
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
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Maps offsets to byte positions in the segment's `.log`.
pub struct OffsetIndex {
    inner: MmapFile,
    base_offset: i64,
}

pub const OFFSET_ENTRY: usize = 8;
pub const TIME_ENTRY: usize = 12;

impl OffsetIndex {
    pub fn open(path: &Path, base_offset: i64, max_bytes: usize, load: bool) -> io::Result<Self> {
        Ok(OffsetIndex {
            inner: MmapFile::open(path, OFFSET_ENTRY, max_bytes, load)?,
            base_offset,
        })
    }

    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    pub fn len(&self) -> usize {
        self.inner.entries
    }

    pub fn is_empty(&self) -> bool {
        self.inner.entries == 0
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
        self.inner.entries.checked_sub(1).map(|i| self.entry(i))
    }

    /// Drops every entry (before a rebuild from the log).
    pub fn clear(&mut self) {
        self.inner.entries = 0;
    }

    pub fn trim(&mut self) -> io::Result<()> {
        self.inner.trim()
    }

    pub fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// Maps timestamps to offsets. An entry `(t, o)` means: the largest
/// timestamp seen in this segment up to and including the batch at offset
/// `o` is `t`, and no batch before `o` reached `t`.
pub struct TimeIndex {
    inner: MmapFile,
    base_offset: i64,
}

impl TimeIndex {
    pub fn open(path: &Path, base_offset: i64, max_bytes: usize, load: bool) -> io::Result<Self> {
        Ok(TimeIndex {
            inner: MmapFile::open(path, TIME_ENTRY, max_bytes, load)?,
            base_offset,
        })
    }

    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    pub fn len(&self) -> usize {
        self.inner.entries
    }

    pub fn is_empty(&self) -> bool {
        self.inner.entries == 0
    }

    /// The last indexed `(timestamp, offset)`.
    pub fn last(&self) -> Option<(i64, i64)> {
        self.inner.entries.checked_sub(1).map(|i| self.entry(i))
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
        self.inner.entries = 0;
    }

    pub fn trim(&mut self) -> io::Result<()> {
        self.inner.trim()
    }

    pub fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
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
            let mut idx = OffsetIndex::open(&dir.path().join("x.index"), base, 4096, false).unwrap();
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
            let mut idx = TimeIndex::open(&dir.path().join("x.timeindex"), 0, 4096, false).unwrap();
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
    fn reopen_keeps_trimmed_entries_and_rebuild_discards() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        {
            let mut idx = OffsetIndex::open(&p, 0, 1024, false).unwrap();
            idx.append(5, 100);
            idx.append(9, 200);
            idx.trim().unwrap();
        }
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 16);
        let idx = OffsetIndex::open(&p, 0, 1024, true).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(10), (9, 200));
        let idx = OffsetIndex::open(&p, 0, 1024, false).unwrap();
        assert_eq!(idx.len(), 0);
    }

    #[test]
    fn full_index_stops_accepting() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 0, 16, false).unwrap();
        idx.append(1, 1);
        idx.append(2, 2);
        assert!(idx.is_full());
        idx.append(3, 3);
        assert_eq!(idx.len(), 2);
    }
}
