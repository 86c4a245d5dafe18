//! The data directory (01-daemon.md §1): where it is, what it holds, and the hygiene rules every
//! command applies to it.

use std::path::{Path, PathBuf};

/// Resolves the data directory: `--data-dir`, then `WAIAAS_DATA_DIR`, then
/// `$XDG_DATA_HOME/waiaas`, then `~/.waiaas`.
pub(crate) fn resolve(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return absolute(p);
    }
    if let Some(p) = std::env::var_os("WAIAAS_DATA_DIR").filter(|v| !v.is_empty()) {
        return absolute(Path::new(&p));
    }
    if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return absolute(&Path::new(&p).join("waiaas"));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".waiaas")
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Layout {
        Layout { root }
    }
    pub(crate) fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub(crate) fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    pub(crate) fn keystore(&self) -> PathBuf {
        self.root.join("keystore")
    }
    pub(crate) fn master(&self) -> PathBuf {
        self.keystore().join("master.json")
    }
    pub(crate) fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub(crate) fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }
    pub(crate) fn lock(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }
    /// Whether `init` has run at least partly (start requires config.toml or data/).
    pub(crate) fn looks_initialised(&self) -> bool {
        self.config().is_file() || self.data().is_dir()
    }
}

/// A data directory (or a file in it) owned by someone else than the process (12-operations.md
/// §1): `init` and `start` refuse it (exit 3) rather than fail later on a file they cannot
/// open, or — running as root — create files the real owner can no longer read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignOwner {
    pub(crate) path: PathBuf,
    pub(crate) owner: u32,
    pub(crate) euid: u32,
    pub(crate) egid: u32,
}

impl std::fmt::Display for ForeignOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Inside a container the path we see is not the one the operator can chown.
        let fix = if in_container() { "<host path>".to_string() } else { self.path.display().to_string() };
        write!(
            f,
            "Data directory {} is owned by UID {}, but waiaas runs as UID {}. Fix: chown -R {}:{} {fix}",
            self.path.display(),
            self.owner,
            self.euid,
            self.euid,
            self.egid
        )
    }
}

fn in_container() -> bool {
    Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists()
}

/// Checks that the data directory and what the daemon opens in it (config, database, keystore,
/// logs) belong to the process's effective UID. Missing paths are fine: they will be created.
pub(crate) fn check_owner(layout: &Layout) -> Result<(), ForeignOwner> {
    use std::os::unix::fs::MetadataExt;
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let mut paths = vec![layout.root.clone(), layout.config(), layout.data(), layout.keystore(), layout.logs()];
    paths.extend(std::fs::read_dir(layout.keystore()).into_iter().flatten().flatten().map(|e| e.path()));
    paths.extend(std::fs::read_dir(layout.data()).into_iter().flatten().flatten().map(|e| e.path()));
    for path in paths {
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.uid() != euid
        {
            let shown = if path == layout.root { path } else { layout.root.clone() };
            return Err(ForeignOwner { path: shown, owner: meta.uid(), euid, egid });
        }
    }
    Ok(())
}

/// Filesystem magic numbers of network filesystems on which locks and fsync may not behave.
#[cfg(target_os = "linux")]
const NETWORK_FS: &[(i64, &str)] = &[(0x6969, "NFS"), (0x517B, "SMB"), (0xFF53_4D42, "CIFS"), (0xFE53_4D42, "SMB2")];

/// A warning when `dir` is on NFS or SMB/CIFS (Linux only).
pub(crate) fn network_fs_warning(dir: &Path) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let st = rustix::fs::statfs(dir).ok()?;
        let magic = st.f_type as i64;
        NETWORK_FS.iter().find(|(m, _)| *m == magic).map(|(_, name)| {
            format!("Warning: {} is on a {name} filesystem; file locks and fsync may not behave.", dir.display())
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        None
    }
}

/// A warning when the process umask is looser than 0077.
pub(crate) fn umask_warning() -> Option<String> {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    rustix::process::umask(old);
    let bits = old.bits();
    (bits & 0o077 != 0o077)
        .then(|| format!("Warning: umask {bits:04o} is looser than 0077; waiaas sets file modes itself."))
}
