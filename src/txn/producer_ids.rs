//! Producer id allocation, unique across restarts.
//!
//! Ids are handed out from blocks. Before the first id of a block is used,
//! the block's end is persisted (`meta/producer-ids.toml`, atomically), so
//! after any crash the next start begins past every id ever handed out.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::log::manager::write_atomic;

const BLOCK: i64 = 1000;

pub struct ProducerIdAllocator {
    path: PathBuf,
    /// (next id to hand out, end of the persisted block).
    state: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub fn open(meta_dir: &Path) -> io::Result<ProducerIdAllocator> {
        let path = meta_dir.join("producer-ids.toml");
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .find_map(|l| l.strip_prefix("next-block-start = "))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: no next-block-start", path.display()),
                    )
                })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIdAllocator {
            path,
            state: Mutex::new((next, next)),
        })
    }

    /// A fresh producer id.
    pub fn next(&self) -> io::Result<i64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 >= s.1 {
            let end = s.0 + BLOCK;
            write_atomic(&self.path, format!("next-block-start = {end}\n").as_bytes())?;
            s.1 = end;
        }
        let id = s.0;
        s.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| a.next().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path()).unwrap();
        assert!(b.next().unwrap() > 2);
    }
}
