//! The file operations a commit performs, each counted and open to fault injection.
//!
//! Every create, write, fsync, rename, directory fsync and removal the writer does goes
//! through here (and the engine's own logs beside a collection use the same functions), so the
//! crash tests can fail or stop the N-th one of an operation, for every N, and check what a
//! reopened store holds (`tests/faults.rs`). [`faults`] is inert unless a test arms it: the cost
//! outside tests is one relaxed atomic load per file operation.

use crate::error::{IoContext, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Creates `path` for writing (`new`: fail if it exists, so nothing is ever overwritten).
pub fn create(path: &Path, new: bool) -> Result<File> {
    faults::before(faults::Op::Create, path).at(path)?;
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    o.open(path).at(path)
}

/// Opens `path` to append to it, creating it if missing.
pub fn append(path: &Path) -> Result<File> {
    let op = if path.exists() {
        faults::Op::Append
    } else {
        faults::Op::Create
    };
    faults::before(op, path).at(path)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .at(path)
}

/// Writes all of `bytes` to `file` (which is `path`).
pub fn write(file: &mut File, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    faults::before(faults::Op::Write, path)?;
    file.write_all(bytes)
}

/// Fsyncs `file` (which is `path`), data and metadata.
pub fn sync(file: &File, path: &Path) -> Result<()> {
    faults::before(faults::Op::Sync, path).at(path)?;
    file.sync_all().at(path)?;
    faults::synced(path);
    Ok(())
}

/// Renames `from` to `to`, replacing `to` if it is a file.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    faults::before(faults::Op::Rename, from).at(from)?;
    faults::renaming(from, to);
    std::fs::rename(from, to).at(to)
}

/// Fsyncs a directory so that file creations and renames in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    faults::before(faults::Op::SyncDir, dir).at(dir)?;
    std::fs::File::open(dir).at(dir)?.sync_all().at(dir)?;
    faults::dir_synced(dir);
    Ok(())
}

/// Removes a file.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    faults::before(faults::Op::Remove, path)?;
    std::fs::remove_file(path)
}

/// Creates a directory and its parents.
pub fn create_dir_all(path: &Path) -> Result<()> {
    faults::before(faults::Op::MakeDir, path).at(path)?;
    std::fs::create_dir_all(path).at(path)
}

pub mod faults {
    //! Fault injection for the store's crash tests.
    //!
    //! An [`Injection`] armed on a directory sees every file operation the store performs under
    //! it, numbered from 1. It can make the N-th one fail with an I/O error (the store goes on
    //! running: a full disk, a failed fsync), stop there as a crash would (that operation and
    //! every later one under the directory fail, so nothing after the crash point reaches the
    //! disk), or stop there and then, when dropped, undo what a power cut may undo: file bytes
    //! written since the file's last fsync, and file creations and renames not yet made durable
    //! by an fsync of their directory. Several injections on disjoint directories may be armed at once.

    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A kind of file operation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Op {
        /// Opening a new file for writing.
        Create,
        /// Opening an existing file to append to it.
        Append,
        /// A write of bytes to a file.
        Write,
        /// An fsync of a file.
        Sync,
        /// A rename.
        Rename,
        /// An fsync of a directory.
        SyncDir,
        /// Removing a file.
        Remove,
        /// Creating a directory.
        MakeDir,
    }

    /// What happens at the chosen operation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// That operation fails with an I/O error; later ones succeed.
        Fail,
        /// The process stops there: that operation and every later one fail.
        Crash,
        /// A crash, then a power cut: on drop, unsynced file bytes, and creations and renames
        /// whose directory was not fsynced since, are undone.
        PowerLoss,
    }

    type Hook = Arc<dyn Fn(u64, Op, &Path) + Send + Sync>;

    struct State {
        root: PathBuf,
        at: Option<(u64, Fault)>,
        ops: Vec<(Op, PathBuf)>,
        crashed: bool,
        hook: Option<Hook>,
        /// Files written under the injection: their length at their last fsync (0 if never).
        synced_len: HashMap<PathBuf, u64>,
        /// Renames not yet followed by an fsync of their directory, with what `to` held before.
        pending_renames: Vec<(PathBuf, PathBuf, Option<Vec<u8>>)>,
        /// Files created since their directory's last fsync.
        pending_creates: Vec<PathBuf>,
    }

    static ARMED_COUNT: AtomicUsize = AtomicUsize::new(0);
    static ARMED: Mutex<Vec<Arc<Mutex<State>>>> = Mutex::new(Vec::new());

    /// An armed injection; disarmed (and, after [`Fault::PowerLoss`], the power cut applied)
    /// when dropped.
    pub struct Injection {
        state: Arc<Mutex<State>>,
    }

    impl Injection {
        fn arm(root: &Path, at: Option<(u64, Fault)>, hook: Option<Hook>) -> Injection {
            let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
            let state = Arc::new(Mutex::new(State {
                root,
                at,
                ops: Vec::new(),
                crashed: false,
                hook,
                synced_len: HashMap::new(),
                pending_renames: Vec::new(),
                pending_creates: Vec::new(),
            }));
            ARMED.lock().unwrap().push(state.clone());
            ARMED_COUNT.fetch_add(1, Ordering::SeqCst);
            Injection { state }
        }

        /// Counts the operations under `root` without injecting anything.
        pub fn count(root: &Path) -> Injection {
            Injection::arm(root, None, None)
        }

        /// Injects `fault` at the `n`-th operation under `root` (1-based).
        pub fn at(root: &Path, n: u64, fault: Fault) -> Injection {
            Injection::arm(root, Some((n, fault)), None)
        }

        /// Calls `hook(n, op, path)` before every operation under `root` (it may block, to
        /// hold a writer mid-commit).
        pub fn hook(root: &Path, hook: impl Fn(u64, Op, &Path) + Send + Sync + 'static) -> Injection {
            Injection::arm(root, None, Some(Arc::new(hook)))
        }

        /// Operations seen so far.
        pub fn ops(&self) -> u64 {
            self.state.lock().unwrap().ops.len() as u64
        }

        /// Operations seen so far, each with its path.
        pub fn log(&self) -> Vec<(Op, PathBuf)> {
            self.state.lock().unwrap().ops.clone()
        }

        /// Whether the planned fault has happened.
        pub fn fired(&self) -> bool {
            let s = self.state.lock().unwrap();
            s.at.is_some_and(|(n, _)| s.ops.len() as u64 >= n)
        }
    }

    impl Drop for Injection {
        fn drop(&mut self) {
            ARMED.lock().unwrap().retain(|s| !Arc::ptr_eq(s, &self.state));
            ARMED_COUNT.fetch_sub(1, Ordering::SeqCst);
            let mut s = self.state.lock().unwrap();
            if s.crashed && matches!(s.at, Some((_, Fault::PowerLoss))) {
                power_cut(&mut s);
            }
        }
    }

    /// Undoes what a power cut may undo (best effort: this is test scaffolding).
    fn power_cut(s: &mut State) {
        let renames: Vec<_> = s.pending_renames.drain(..).rev().collect();
        for (from, to, old) in renames {
            let _ = std::fs::rename(&to, &from);
            if let Some(len) = s.synced_len.remove(&to) {
                s.synced_len.insert(from, len);
            }
            if let Some(old) = old {
                let _ = std::fs::write(&to, old);
            }
        }
        for path in s.pending_creates.drain(..) {
            let _ = std::fs::remove_file(path);
        }
        for (path, len) in &s.synced_len {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) {
                if f.metadata().is_ok_and(|m| m.len() > *len) {
                    let _ = f.set_len(*len);
                }
            }
        }
    }

    fn state_of(path: &Path) -> Option<Arc<Mutex<State>>> {
        if ARMED_COUNT.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let abs = absolute(path);
        ARMED
            .lock()
            .unwrap()
            .iter()
            .find(|s| abs.starts_with(&s.lock().unwrap().root))
            .cloned()
    }

    /// `path` made absolute with its parent resolved (the file itself may not exist yet).
    fn absolute(path: &Path) -> PathBuf {
        match (path.parent(), path.file_name()) {
            (Some(p), Some(n)) if !p.as_os_str().is_empty() => {
                p.canonicalize().map_or_else(|_| path.to_path_buf(), |p| p.join(n))
            }
            _ => path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        }
    }

    fn injected(what: &str) -> std::io::Error {
        std::io::Error::other(format!("injected fault: {what}"))
    }

    /// Called before every operation: counts it and decides whether it happens.
    pub(super) fn before(op: Op, path: &Path) -> std::io::Result<()> {
        let Some(state) = state_of(path) else {
            return Ok(());
        };
        let hook = {
            let mut s = state.lock().unwrap();
            if s.crashed {
                return Err(injected("the process has crashed"));
            }
            s.ops.push((op, absolute(path)));
            let n = s.ops.len() as u64;
            if op == Op::Create {
                s.pending_creates.push(absolute(path));
            }
            if matches!(op, Op::Create | Op::Write | Op::Append) {
                let abs = absolute(path);
                s.synced_len.entry(abs).or_insert_with(|| {
                    if op == Op::Create {
                        0
                    } else {
                        std::fs::metadata(path).map_or(0, |m| m.len())
                    }
                });
            }
            match s.at {
                Some((at, Fault::Fail)) if at == n => return Err(injected("I/O error")),
                Some((at, Fault::Crash | Fault::PowerLoss)) if at == n => {
                    s.crashed = true;
                    return Err(injected("crash"));
                }
                _ => {}
            }
            s.hook.clone().map(|h| (h, n))
        };
        if let Some((h, n)) = hook {
            h(n, op, path);
        }
        Ok(())
    }

    pub(super) fn synced(path: &Path) {
        if let Some(state) = state_of(path) {
            let len = std::fs::metadata(path).map_or(0, |m| m.len());
            state.lock().unwrap().synced_len.insert(absolute(path), len);
        }
    }

    pub(super) fn renaming(from: &Path, to: &Path) {
        if let Some(state) = state_of(from) {
            let old = std::fs::read(to).ok();
            let (from, to) = (absolute(from), absolute(to));
            let mut s = state.lock().unwrap();
            // The bytes move with the name: what was synced under `from` is synced under `to`.
            if let Some(len) = s.synced_len.remove(&from) {
                s.synced_len.insert(to.clone(), len);
            }
            s.pending_renames.push((from, to, old));
        }
    }

    pub(super) fn dir_synced(dir: &Path) {
        if let Some(state) = state_of(dir) {
            let dir = absolute(dir);
            let mut s = state.lock().unwrap();
            s.pending_renames
                .retain(|(_, to, _)| to.parent() != Some(dir.as_path()));
            s.pending_creates.retain(|p| p.parent() != Some(dir.as_path()));
        }
    }
}
