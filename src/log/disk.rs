//! The storage engine's file handle, [`LogFile`]: every write, fsync and
//! truncation of a segment or index goes through it, so that
//!
//! - write-side failures are classified in one place ([`is_out_of_space`]):
//!   running out of space is a recoverable condition (the write is undone
//!   and refused, the log stays at its last whole batch), anything else
//!   leaves the file in an unknown state and takes the partition offline;
//! - tests can inject faults at exactly these calls ([`faults`], test
//!   builds only): ENOSPC after some bytes of a write, EIO, a failed fsync.
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
