//! The writer lock: one writing process per store, readers never take it.
//!
//! The lock is an exclusive `flock` on `STORE/LOCK`, held for the life of a [`WriterLock`].
//! The kernel releases it when the process dies, even by `kill -9`, so a crash never leaves a
//! stale lock. The file's text names the holder (pid, command, start time) for the error a
//! second writer gets.

use crate::error::{IoContext, Result};
use crate::Error;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Proof that this process is the store's only writer.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock without waiting, or fails with [`Error::Locked`] naming the holder.
    pub fn acquire(store: &Path) -> Result<WriterLock> {
        let path = store.join("LOCK");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = if holder.trim().is_empty() {
                    "unknown holder".to_string()
                } else {
                    holder.trim().to_string()
                };
                return Err(Error::Locked {
                    path: store.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::Io { path, source: e }),
        }
        let cmd: Vec<String> = std::env::args().collect();
        let text = format!(
            "pid {} ({}) since {}",
            std::process::id(),
            cmd.join(" "),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        file.set_len(0).at(&path)?;
        file.rewind().at(&path)?;
        file.write_all(text.as_bytes()).at(&path)?;
        Ok(WriterLock { _file: file })
    }
}
