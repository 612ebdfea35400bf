//! The storage engine's file handle, [`LogFile`]: every write, fsync and
//! truncation of a segment or index goes through it, so that
//!
//! - write-side failures are classified in one place ([`is_out_of_space`]):
//!   running out of space is a recoverable condition (the write is undone
//!   and refused, the log stays at its last whole batch), anything else
//!   leaves the file in an unknown state and takes the partition offline;
//! - tests can inject faults at exactly these calls ([`faults`], test
//!   builds only): ENOSPC after some bytes of a write, EIO, a failed fsync
//!   or writeback;
//! - the page cache is managed here too: write-behind of appended ranges
//!   and eviction of cold ones ("The write path" in `docs/performance.md`).
//!
//! See "Failure model" in `docs/architecture.md` for what each fault does.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// True for the errors that mean "no space": the disk or a quota is full.
/// They are recoverable: once space is freed the same write succeeds.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

/// An open file of the log (a segment's `.log` or an index), with its path
/// for error messages and fault injection.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    path: PathBuf,
}

impl LogFile {
    pub fn new(file: File, path: PathBuf) -> LogFile {
        LogFile { file, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Writes all of `buf` at `pos`. On error an unknown prefix of `buf` may
    /// have reached the file: the caller truncates back.
    pub fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some((written, err)) = faults::on_write(&self.path, buf.len()) {
            self.file.write_all_at(&buf[..written], pos)?;
            return Err(err);
        }
        self.file.write_all_at(buf, pos)
    }

    /// Writes the concatenation of `bufs` at `pos` in one `pwritev` (a
    /// batch's patched header and its records, without first copying them
    /// into one buffer). Same failure contract as [`Self::write_all_at`].
    pub fn write_all_vectored_at(&self, bufs: &[&[u8]], mut pos: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some((written, err)) =
            faults::on_write(&self.path, bufs.iter().map(|b| b.len()).sum())
        {
            self.file.write_all_at(&bufs.concat()[..written], pos)?;
            return Err(err);
        }
        let (mut first, mut skip) = (0, 0);
        while first < bufs.len() {
            let n = sys::pwritev(&self.file, &bufs[first..], skip, pos)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            pos += n as u64;
            // Advance past what was written, into the buffer it ended in.
            let mut left = n + skip;
            while first < bufs.len() && left >= bufs[first].len() {
                left -= bufs[first].len();
                first += 1;
            }
            skip = if first < bufs.len() { left } else { 0 };
        }
        Ok(())
    }

    pub fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(err) = faults::on(&self.path, faults::Op::Read) {
            return Err(err);
        }
        self.file.read_exact_at(buf, pos)
    }

    pub fn sync_data(&self) -> io::Result<()> {
        #[cfg(test)]
        if let Some(err) = faults::on(&self.path, faults::Op::Sync) {
            return Err(err);
        }
        self.file.sync_data()
    }

    /// Truncation never needs space, so it is what undoes a failed write.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// Starts writeback of `[pos, pos + len)` without waiting for it
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so dirty pages do not
    /// pile up until the kernel's dirty limits throttle the writer. Not a
    /// durability point: metadata is not written and nothing is awaited.
    pub fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(err) = faults::on(&self.path, faults::Op::Writeback) {
            return Err(err);
        }
        sys::sync_file_range(&self.file, pos, len, false)
    }

    /// Waits until `[pos, pos + len)` is written back, then drops the pages
    /// of `[pos - behind, pos + len)` from the page cache (`len` 0: to the
    /// end of the file; `behind` reaches large folios that straddled the
    /// previous range, already written back): the range is cold, and keeping it would make
    /// every later append allocate fresh page-cache memory (see "The write
    /// path" in `docs/performance.md`). An error here is a failed
    /// writeback: the kernel may already have reported it to this call
    /// only, so the caller must treat it as a failed fsync.
    pub fn evict(&self, pos: u64, len: u64, behind: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(err) = faults::on(&self.path, faults::Op::Writeback) {
            return Err(err);
        }
        sys::sync_file_range(&self.file, pos, len, true)?;
        let from = pos.saturating_sub(behind);
        let len = if len == 0 { 0 } else { len + (pos - from) };
        sys::drop_cached(&self.file, from, len);
        Ok(())
    }

    /// Drops the clean cached pages of `[pos, pos + len)` after a cold read
    /// (dirty pages are left alone by the kernel). Advisory: errors are
    /// ignored.
    pub fn drop_cached(&self, pos: u64, len: u64) {
        sys::drop_cached(&self.file, pos, len);
    }
}

/// The system calls std does not wrap: positional vectored writes, and the
/// page-cache calls (Linux only; elsewhere they do nothing and the page
/// cache is left to the kernel).
mod sys {
    use std::fs::File;
    use std::io;

    /// One `pwritev` of `bufs` (the first without its first `skip` bytes)
    /// at `pos`; returns the bytes written (retrying on EINTR).
    #[allow(unsafe_code)]
    pub fn pwritev(file: &File, bufs: &[&[u8]], skip: usize, pos: u64) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        const MAX_IOV: usize = 64;
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV];
        let count = bufs.len().min(MAX_IOV);
        for (i, b) in bufs[..count].iter().enumerate() {
            let b = if i == 0 { &b[skip..] } else { b };
            iov[i] = libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            };
        }
        let pos =
            libc::off_t::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        loop {
            // SAFETY: every iovec points into a live slice of `bufs`, which
            // the kernel only reads; `count` <= MAX_IOV entries are set.
            let n =
                unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), count as libc::c_int, pos) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub fn sync_file_range(file: &File, pos: u64, len: u64, wait: bool) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let flags = if wait {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER
        } else {
            libc::SYNC_FILE_RANGE_WRITE
        };
        let (pos, len) = (to_off(pos)?, to_off(len)?);
        // SAFETY: a plain syscall on a file descriptor this File owns.
        if unsafe { libc::sync_file_range(file.as_raw_fd(), pos, len, flags) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub fn drop_cached(file: &File, pos: u64, len: u64) {
        use std::os::fd::AsRawFd;
        if let (Ok(pos), Ok(len)) = (to_off(pos), to_off(len)) {
            // SAFETY: as above; advice only, the result does not matter.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), pos, len, libc::POSIX_FADV_DONTNEED) };
        }
    }

    #[cfg(target_os = "linux")]
    fn to_off(v: u64) -> io::Result<libc::off_t> {
        libc::off_t::try_from(v).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn sync_file_range(_: &File, _: u64, _: u64, _: bool) -> io::Result<()> {
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn drop_cached(_: &File, _: u64, _: u64) {}
}

/// Test-only fault injection: a fault applies to files under a directory
/// (each test uses its own temporary directory, so tests running in
/// parallel do not see each other's faults).
#[cfg(test)]
pub mod faults {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Op {
        Write,
        Read,
        Sync,
        /// Write-behind and eviction (`sync_file_range`).
        Writeback,
    }

    #[derive(Debug, Clone, Copy)]
    pub enum Fault {
        /// A write stores this many bytes, then fails with ENOSPC.
        NoSpaceAfter(usize),
        /// The operation fails with EIO.
        Eio,
    }

    struct Rule {
        dir: PathBuf,
        op: Op,
        fault: Fault,
        remaining: u32,
    }

    static RULES: Mutex<Vec<Rule>> = Mutex::new(Vec::new());

    /// The next `times` operations `op` on files under `dir` fail.
    pub fn inject(dir: &Path, op: Op, fault: Fault, times: u32) {
        RULES.lock().unwrap().push(Rule {
            dir: dir.to_owned(),
            op,
            fault,
            remaining: times,
        });
    }

    /// Removes every fault under `dir` ("space was freed").
    pub fn clear(dir: &Path) {
        RULES.lock().unwrap().retain(|r| !r.dir.starts_with(dir));
    }

    fn take(path: &Path, op: Op) -> Option<Fault> {
        let mut rules = RULES.lock().unwrap();
        let i = rules
            .iter()
            .position(|r| r.op == op && r.remaining > 0 && path.starts_with(&r.dir))?;
        rules[i].remaining -= 1;
        let fault = rules[i].fault;
        if rules[i].remaining == 0 {
            rules.remove(i);
        }
        Some(fault)
    }

    fn error(fault: Fault) -> io::Error {
        match fault {
            Fault::NoSpaceAfter(_) => io::Error::from(io::ErrorKind::StorageFull),
            Fault::Eio => io::Error::other("injected EIO"),
        }
    }

    /// For a write of `len` bytes: how many to really write, and the error.
    pub fn on_write(path: &Path, len: usize) -> Option<(usize, io::Error)> {
        let fault = take(path, Op::Write)?;
        let written = match fault {
            Fault::NoSpaceAfter(n) => n.min(len),
            Fault::Eio => 0,
        };
        Some((written, error(fault)))
    }

    pub fn on(path: &Path, op: Op) -> Option<io::Error> {
        take(path, op).map(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More parts than one `pwritev` takes, of uneven sizes (some empty):
    /// the file holds exactly their concatenation.
    #[test]
    fn vectored_writes_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let f = LogFile::new(file, path.clone());
        let parts: Vec<Vec<u8>> = (0..150u32)
            .map(|i| vec![i as u8; (i % 7) as usize * 100])
            .collect();
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_vectored_at(&refs, 4).unwrap();
        let mut want = b"head".to_vec();
        want.extend(parts.concat());
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}

/// Test-only: how much of a file is in the page cache (`mincore` over a
/// mapping of it), to check the write path's eviction.
#[cfg(test)]
pub mod residency {
    use std::fs::File;
    use std::path::Path;

    /// Bytes of `path` resident in the page cache, in whole pages.
    #[allow(unsafe_code)]
    pub fn resident_bytes(path: &Path) -> u64 {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        if len == 0 {
            return 0;
        }
        // SAFETY: a read-only mapping of a file the test owns, used only
        // for its address range.
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        let page = 4096usize;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: `vec` has one byte per page of the mapping.
        let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, len, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        vec.iter().filter(|b| **b & 1 == 1).count() as u64 * page as u64
    }

    /// Whether dropping clean pages works under `dir` (not on tmpfs, where
    /// pages have no backing store to be dropped to).
    pub fn eviction_works(dir: &Path) -> bool {
        let path = dir.join("eviction-probe");
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        let f = super::LogFile::new(File::open(&path).unwrap(), path.clone());
        f.sync_data().unwrap();
        f.drop_cached(0, 0);
        let works = resident_bytes(&path) == 0;
        std::fs::remove_file(&path).unwrap();
        works
    }
}
