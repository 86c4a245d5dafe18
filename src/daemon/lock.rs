//! The instance lock (`daemon.lock`, `flock`) and the PID file (01-daemon.md §5).
//!
//! The lock is held for the whole life of the process; the kernel releases it on any exit, so a
//! stale lock cannot exist. The file also holds the holder's PID as a hint for `stop` and
//! `status`. Offline commands take the same lock so they never run beside the daemon.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// A held instance lock; released when dropped.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    file: File,
    path: PathBuf,
}

/// The lock is held by another process.
#[derive(Debug)]
pub(crate) struct Busy {
    pub(crate) pid: Option<u32>,
}

fn open_lock(path: &Path) -> std::io::Result<File> {
    waiaas_backends::fsutil::refuse_symlink(path)?;
    // Created if missing, never truncated before the lock is ours.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(waiaas_backends::fsutil::nofollow())
        .open(path)
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

impl InstanceLock {
    /// Takes the lock without blocking. `Ok(Err(Busy))` when another process holds it.
    pub(crate) fn try_acquire(path: &Path) -> std::io::Result<Result<InstanceLock, Busy>> {
        let mut file = open_lock(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Ok(InstanceLock { file, path: path.to_path_buf() })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(Err(Busy { pid: read_pid(&mut file) })),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes our PID into the lock file (truncate, write, fsync).
    pub(crate) fn write_pid(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        write!(self.file, "{}", std::process::id())?;
        self.file.sync_all()
    }

    /// The lock file path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether a process exists (`kill(pid, 0)` not failing with ESRCH).
pub(crate) fn process_exists(pid: u32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else { return false };
    !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}

/// Removes a PID file whose process is gone; returns whether it removed one.
pub(crate) fn remove_stale_pid_file(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    match text.trim().parse::<u32>() {
        Ok(pid) if process_exists(pid) && pid != std::process::id() => false,
        _ => std::fs::remove_file(path).is_ok(),
    }
}

/// Writes the PID file: decimal PID, no newline, mode 0644, atomically.
pub(crate) fn write_pid_file(path: &Path) -> std::io::Result<()> {
    waiaas_backends::fsutil::write_atomic(path, std::process::id().to_string().as_bytes(), 0o644)
}
