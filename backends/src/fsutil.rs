//! File hygiene for the data directory (01-daemon.md §1.2).
//!
//! Whole files are written to a temp file in the same directory (`.<name>.<pid>.<8 hex>.tmp`,
//! mode 0600 set at `open`), fsync-ed, then renamed over the target, and the directory is
//! fsync-ed; the temp file is removed on any failure. Opens refuse symlinks. These rules keep a
//! crash from leaving a half-written key file or config behind, and keep a symlink planted in
//! the data directory from redirecting a write.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

/// `O_NOFOLLOW` for `custom_flags`.
pub fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Fails with `InvalidInput` naming the path when `path` is a symlink.
pub fn refuse_symlink(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            Err(io::Error::new(io::ErrorKind::InvalidInput, format!("refusing to use symlink {}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically with `mode` (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    refuse_symlink(path)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp: PathBuf = dir.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), rand::thread_rng().next_u32()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(nofollow()).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and missing parents) with mode 0700; an existing symlink is refused.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    refuse_symlink(dir)?;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Reads a whole file, refusing symlinks.
pub fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = OpenOptions::new().read(true).custom_flags(nofollow()).open(path)?;
    let mut out = Vec::new();
    io::Read::read_to_end(&mut f, &mut out)?;
    Ok(out)
}

/// The permission bits of `path` (not following symlinks).
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(mode_of(&p).unwrap(), 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_atomic(&link, b"y", 0o600).is_err());
        assert!(read_nofollow(&link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }
}
