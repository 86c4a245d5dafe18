//! Backup archives (03-keys.md §9): create, list, validate and restore.
//!
//! An archive is a gzip tar of `manifest.json`, `config.toml`, `keystore/master.json`, the key
//! files and a consistent snapshot of the database, with every file's size and SHA-256 in the
//! manifest. Nothing extra is encrypted: key files already are, but config and database are
//! plaintext, so archives are protected like the data directory (mode 0600 in a 0700 directory).
//! Restoring validates everything before touching the data directory, and swaps config,
//! keystore and database in as a unit.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use waiaas_backends::fsutil;
use waiaas_storage::{AgentStatus, AuditEventType, Backend, Store, StoreError};

use crate::base::datadir::Layout;

/// Archive members: (name, bytes).
pub(crate) type Members = Vec<(String, Vec<u8>)>;

/// One archived file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManifestFile {
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) created_at: String,
    pub(crate) daemon_version: String,
    pub(crate) schema_version: u64,
    pub(crate) agent_count: u64,
    pub(crate) files: Vec<ManifestFile>,
}

/// A created archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Created {
    pub(crate) path: PathBuf,
    pub(crate) size_bytes: u64,
    pub(crate) agent_count: u64,
    pub(crate) created_at: u64,
}

/// Why a backup operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.display().to_string(), source }
}

fn stamp(secs: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs as i64, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl crate::base::error::Coded for BackupError {
    fn code(&self) -> crate::base::error::ErrorCode {
        crate::base::error::ErrorCode::InternalError
    }
}

/// An archive of the running daemon (a consistent database snapshot; writers are not blocked),
/// audited `BACKUP_CREATED`. Automatic archives (the backup worker) are pruned to
/// `backup_keep`; manual ones to `keep_manual`.
pub(crate) async fn create_running(
    db: &crate::runtime::Db,
    layout: &Layout,
    now: u64,
    automatic: bool,
    keep: usize,
    actor: &str,
) -> Result<Created, BackupError> {
    let (store, l) = (db.store().clone(), layout.clone());
    let created = tokio::task::spawn_blocking(move || create(&l, now, automatic, |p| store.snapshot_to(p)))
        .await
        .map_err(|e| BackupError::Invalid(format!("backup task failed: {e}")))??;
    let ev = waiaas_storage::AuditEvent::new(AuditEventType::BackupCreated, actor)
        .detail("path", created.path.display().to_string())
        .detail("agentCount", created.agent_count)
        .detail("automatic", automatic);
    let ctx = waiaas_storage::OpCtx::new(actor, now);
    db.call(move |s| s.append_audit(ev, &ctx)).await?;
    let l = layout.clone();
    match tokio::task::spawn_blocking(move || prune(&l, automatic, keep)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("cannot prune old backups: {e}"),
        Err(e) => tracing::warn!("backup prune task failed: {e}"),
    }
    Ok(created)
}

/// Whether `name` is an archive member we accept (§9.3 step 2).
fn allowed_member(name: &str) -> bool {
    matches!(name, "manifest.json" | "config.toml" | "keystore/master.json" | "data/waiaas.redb")
        || name
            .strip_prefix("keystore/")
            .and_then(|f| f.strip_suffix(".json"))
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
}

/// Creates an archive in `backups/`. `snapshot` writes a consistent copy of the database to the
/// given path (the daemon's open store, or one opened under the instance lock).
pub(crate) fn create(
    layout: &Layout,
    now: u64,
    automatic: bool,
    snapshot: impl FnOnce(&Path) -> Result<(), StoreError>,
) -> Result<Created, BackupError> {
    fsutil::create_private_dir(&layout.backups()).map_err(io(&layout.backups()))?;
    let work = layout.backups().join(format!(".work-{}-{}", std::process::id(), stamp(now)));
    let _ = std::fs::remove_dir_all(&work);
    fsutil::create_private_dir(&work.join("data")).map_err(io(&work))?;
    let result = (|| {
        let db_copy = work.join("data/waiaas.redb");
        snapshot(&db_copy)?;
        let agent_count = {
            let (store, _) = Store::open(&db_copy, 8 << 20)?;
            store.list_agents()?.iter().filter(|a| a.status != AgentStatus::Terminated).count() as u64
        };
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        let cfg = layout.config();
        if cfg.exists() {
            members.push(("config.toml".into(), fsutil::read_nofollow(&cfg).map_err(io(&cfg))?));
        }
        members.push((
            "keystore/master.json".into(),
            fsutil::read_nofollow(&layout.master()).map_err(io(&layout.master()))?,
        ));
        for (id, path) in waiaas_backends::keystore::rotate::key_files(&layout.keystore())
            .map_err(|e| BackupError::Invalid(e.to_string()))?
        {
            members.push((format!("keystore/{id}.json"), fsutil::read_nofollow(&path).map_err(io(&path))?));
        }
        members.push(("data/waiaas.redb".into(), std::fs::read(&db_copy).map_err(io(&db_copy))?));
        let manifest = Manifest {
            format: "waiaas-backup".into(),
            version: 1,
            created_at: crate::base::clock::iso(now),
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            schema_version: waiaas_storage::SCHEMA_VERSION,
            agent_count,
            files: members
                .iter()
                .map(|(p, b)| ManifestFile { path: p.clone(), size: b.len() as u64, sha256: sha256_hex(b) })
                .collect(),
        };
        let prefix = if automatic { "waiaas-backup-auto" } else { "waiaas-backup" };
        // Names sort by time; a second archive within the same second gets a `-N` suffix
        // instead of replacing the first.
        let mut target = layout.backups().join(format!("{prefix}-{}.tar.gz", stamp(now)));
        let mut n = 1;
        while target.exists() {
            target = layout.backups().join(format!("{prefix}-{}-{n}.tar.gz", stamp(now)));
            n += 1;
        }
        let mut tar_bytes = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut tar_bytes, flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            let mut add = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o600);
                h.set_mtime(now);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, name, bytes)
            };
            add("manifest.json", &serde_json::to_vec_pretty(&manifest).expect("serialisable")).map_err(io(&target))?;
            for (name, bytes) in &members {
                add(name, bytes).map_err(io(&target))?;
            }
            tar.into_inner().and_then(|gz| gz.finish()).map_err(io(&target))?;
        }
        fsutil::write_atomic(&target, &tar_bytes, 0o600).map_err(io(&target))?;
        Ok(Created { path: target, size_bytes: tar_bytes.len() as u64, agent_count, created_at: now })
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Deletes the oldest archives of one kind (manual or automatic) beyond `keep`.
pub(crate) fn prune(layout: &Layout, automatic: bool, keep: usize) -> Result<usize, BackupError> {
    let mut names: Vec<PathBuf> =
        list(layout)?.into_iter().filter(|e| e.automatic == automatic).map(|e| e.path).collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for p in &names[..excess] {
        std::fs::remove_file(p).map_err(io(p))?;
    }
    Ok(excess)
}

/// An archive in `backups/`.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) automatic: bool,
    pub(crate) manifest: Option<Manifest>,
}

/// Archives in `backups/`, oldest first (names sort by time).
pub(crate) fn list(layout: &Layout) -> Result<Vec<Listed>, BackupError> {
    let dir = layout.backups();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(out) };
    for e in entries {
        let path = e.map_err(io(&dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if !(name.starts_with("waiaas-backup-") && name.ends_with(".tar.gz")) {
            continue;
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let manifest = read_archive(&path).ok().map(|(m, _)| m);
        out.push(Listed { automatic: name.starts_with("waiaas-backup-auto-"), path, size, manifest });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Reads and validates an archive completely in memory (§9.3 step 2): a gzip tar of only
/// regular files with allowed names, no absolute paths, `..` or links, sizes and SHA-256 values
/// matching the manifest, manifest version 1, schema not newer than this binary.
pub(crate) fn read_archive(path: &Path) -> Result<(Manifest, Members), BackupError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut members = Vec::new();
    let bad = |m: String| BackupError::Invalid(m);
    for entry in archive.entries().map_err(|e| bad(format!("not a gzip tar archive: {e}")))? {
        let mut entry = entry.map_err(|e| bad(format!("corrupt archive: {e}")))?;
        let kind = entry.header().entry_type();
        let name_path = entry.path().map_err(|e| bad(format!("bad member name: {e}")))?.into_owned();
        let name = name_path.to_string_lossy().into_owned();
        if !kind.is_file() {
            return Err(bad(format!("{name}: only regular files are allowed (found {kind:?})")));
        }
        if name_path.is_absolute() || name_path.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad(format!("{name}: absolute paths and '..' are not allowed")));
        }
        if !allowed_member(&name) {
            return Err(bad(format!("{name}: unexpected file")));
        }
        if members.iter().any(|(n, _): &(String, Vec<u8>)| *n == name) {
            return Err(bad(format!("{name}: duplicate member")));
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        members.push((name, bytes));
    }
    let manifest_bytes = members
        .iter()
        .find(|(n, _)| n == "manifest.json")
        .map(|(_, b)| b.clone())
        .ok_or_else(|| bad("manifest.json is missing".into()))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| bad(format!("manifest.json: {e}")))?;
    if manifest.format != "waiaas-backup" || manifest.version != 1 {
        return Err(bad(format!("unsupported backup format {} v{}", manifest.format, manifest.version)));
    }
    if manifest.schema_version > waiaas_storage::SCHEMA_VERSION {
        return Err(bad(format!(
            "backup schema v{} is newer than this binary's v{}",
            manifest.schema_version,
            waiaas_storage::SCHEMA_VERSION
        )));
    }
    let files: Vec<(String, Vec<u8>)> = members.into_iter().filter(|(n, _)| n != "manifest.json").collect();
    if files.len() != manifest.files.len() {
        return Err(bad("the archive's files do not match the manifest".into()));
    }
    for (name, bytes) in &files {
        let m = manifest
            .files
            .iter()
            .find(|f| f.path == *name)
            .ok_or_else(|| bad(format!("{name} is not in the manifest")))?;
        if m.size != bytes.len() as u64 || m.sha256 != sha256_hex(bytes) {
            return Err(bad(format!("{name}: size or SHA-256 does not match the manifest")));
        }
    }
    for required in ["keystore/master.json", "data/waiaas.redb"] {
        if !files.iter().any(|(n, _)| n == required) {
            return Err(bad(format!("{required} is missing")));
        }
    }
    Ok((manifest, files))
}

/// Writes validated members under `dir` (0700 directories, 0600 files).
pub(crate) fn extract(files: &[(String, Vec<u8>)], dir: &Path) -> Result<(), BackupError> {
    for sub in ["", "keystore", "data"] {
        fsutil::create_private_dir(&dir.join(sub)).map_err(io(dir))?;
    }
    for (name, bytes) in files {
        let p = dir.join(name);
        fsutil::write_atomic(&p, bytes, 0o600).map_err(io(&p))?;
    }
    Ok(())
}

/// Reconciles an extracted database with its key files (§9.3 step 4): every non-terminated
/// keystore agent needs a key file with matching public key, chain and network (an error);
/// key files without an agent and agents without a key file are warnings.
pub(crate) fn reconcile(store: &Store, keystore_dir: &Path) -> Result<Vec<String>, BackupError> {
    let mut warnings = Vec::new();
    let files =
        waiaas_backends::keystore::rotate::key_files(keystore_dir).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let agents = store.list_agents()?;
    for a in agents.iter().filter(|a| a.status != AgentStatus::Terminated && a.backend == Backend::Keystore) {
        let Some((_, path)) = files.iter().find(|(id, _)| *id == a.id) else {
            return Err(BackupError::Invalid(format!("agent {} has no key file in the archive", a.id)));
        };
        let f = waiaas_backends::keystore::keyfile::KeyFile::load(path)
            .map_err(|e| BackupError::Invalid(format!("agent {}: {e}", a.id)))?;
        if f.public_key != a.public_key || f.chain != a.chain.as_str() || f.network != a.network.as_str() {
            return Err(BackupError::Invalid(format!("agent {}: key file does not match the database", a.id)));
        }
    }
    for (id, _) in &files {
        if !agents.iter().any(|a| a.id == *id) {
            warnings.push(format!("key file {id}.json has no agent in the database"));
        }
    }
    Ok(warnings)
}
