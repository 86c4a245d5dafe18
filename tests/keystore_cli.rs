//! Keystore operations through the real binary: unlock at start, password change, backup
//! archives and restore, and the integrity worker (ACC-067, ACC-068, ACC-072, ACC-073, ACC-074).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use waiaas_backends::keystore::LockedKeystore;
use waiaas_backends::seam::ChainKind;
use waiaas_storage::{AgentRecord, Chain, Network, OpCtx, Store};

use crate::support::nodes::LocalChains;
use crate::support::{Opts, PASSWORD, TestDaemon, cli, init_dir, run, text};

/// Creates a keystore agent while the daemon is stopped, as agent creation does: key file first,
/// then the row.
fn offline_agent(dir: &Path, password: &str, name: &str, chain: Chain) -> AgentRecord {
    let (store, _) = Store::open(&dir.join("data/waiaas.redb"), 8 << 20).unwrap();
    let ks = LockedKeystore::open(&dir.join("keystore")).unwrap().unlock(password.as_bytes(), &[]).unwrap();
    let id = Uuid::now_v7();
    let (kind, network) = match chain {
        Chain::Solana => (ChainKind::Solana, Network::Devnet),
        Chain::Ethereum => (ChainKind::Ethereum, Network::Testnet),
    };
    let public_key = ks.generate(id, kind, network.as_str(), name).unwrap();
    let mut rec = AgentRecord::new(id, name.into(), chain, network, (chain == Chain::Ethereum).then_some(31337), 1);
    rec.public_key = public_key;
    store.insert_agent(&rec, &OpCtx::new("test", 1)).unwrap();
    rec
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn archives(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    v.sort();
    v
}

fn members(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(archive).unwrap()));
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (name, b)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_unlocks_every_key_and_deletes_files_of_terminated_agents() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let a = offline_agent(dir.path(), PASSWORD, "sol-1", Chain::Solana);
    let b = offline_agent(dir.path(), PASSWORD, "evm-1", Chain::Ethereum);
    let gone = offline_agent(dir.path(), PASSWORD, "gone", Chain::Solana);
    {
        let (store, _) = Store::open(&dir.path().join("data/waiaas.redb"), 8 << 20).unwrap();
        store.terminate_agent(gone.id, &OpCtx::new("test", 2)).unwrap();
    }
    // An orphan key file (no agent row) is only logged.
    let orphan = dir.path().join(format!("keystore/{}.json", Uuid::now_v7()));
    std::fs::copy(dir.path().join(format!("keystore/{}.json", a.id)), &orphan).unwrap();
    let chains = LocalChains::start();
    chains.configure(dir.path());
    let d = TestDaemon::start_in(dir, Opts::default()).await;
    assert!(
        d.stdout_text().contains("solana/devnet adapter ready")
            && d.stdout_text().contains("ethereum/testnet adapter ready")
    );
    assert!(d.stdout_text().contains("KeyStore unlocked (2 keys loaded)"), "{}", d.stdout_text());
    let h: Value = d.get("/health").await.json().await.unwrap();
    assert_eq!(h["services"]["keystore"], json!({"status": "unlocked", "keysLoaded": 2}));
    assert!(d.path().join(format!("keystore/{}.json", a.id)).exists());
    assert!(d.path().join(format!("keystore/{}.json", b.id)).exists());
    assert!(!d.path().join(format!("keystore/{}.json", gone.id)).exists(), "the terminated agent's file was deleted");
    assert!(orphan.exists(), "orphans are left alone");
    assert!(d.stderr_text().contains("has no agent; left alone"), "{}", d.stderr_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_file_fails_the_start_naming_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let a = offline_agent(dir.path(), PASSWORD, "a", Chain::Solana);
    std::fs::remove_file(dir.path().join(format!("keystore/{}.json", a.id))).unwrap();
    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["start", "--port", &crate::support::free_port().to_string()]);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&a.id.to_string()), "{}", text(&out.stderr));
}

// ACC-068.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_reencrypts_backs_up_and_only_the_new_password_works() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let agents = [
        offline_agent(dir.path(), PASSWORD, "a", Chain::Solana),
        offline_agent(dir.path(), PASSWORD, "b", Chain::Ethereum),
    ];
    let before: Vec<Value> = agents
        .iter()
        .map(|a| {
            serde_json::from_slice(&std::fs::read(dir.path().join(format!("keystore/{}.json", a.id))).unwrap()).unwrap()
        })
        .collect();
    let new_pw = dir.path().join("new-password");
    std::fs::write(&new_pw, "a brand new password\n").unwrap();
    std::fs::set_permissions(&new_pw, std::fs::Permissions::from_mode(0o600)).unwrap();

    // While the daemon runs the command refuses with exit 2.
    let chains = LocalChains::start();
    chains.configure(dir.path());
    let d = TestDaemon::start_in(dir, Opts::default()).await;
    let mut c = d.cli();
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["keystore", "change-password", "--new-password-file"]).arg(&new_pw);
    assert_eq!(run(c, Duration::from_secs(30)).status.code(), Some(2));
    let mut d = d;
    d.terminate();

    let mut c = cli(d.path());
    c.env("WAIAAS_MASTER_PASSWORD", "wrong password here")
        .args(["keystore", "change-password", "--new-password-file"])
        .arg(&new_pw);
    assert_eq!(run(c, Duration::from_secs(30)).status.code(), Some(4));

    let mut c = cli(d.path());
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["keystore", "change-password", "--new-password-file"]).arg(&new_pw);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 key files re-encrypted"));
    let backups = archives(d.path());
    assert_eq!(backups.len(), 1, "backup_on_rotate left an archive");
    assert_eq!(mode(&backups[0]), 0o600);
    for (a, old) in agents.iter().zip(&before) {
        let new: Value =
            serde_json::from_slice(&std::fs::read(d.path().join(format!("keystore/{}.json", a.id))).unwrap()).unwrap();
        assert_ne!(new["hkdf"]["salt"], old["hkdf"]["salt"]);
        assert_ne!(new["cipher"]["nonce"], old["cipher"]["nonce"]);
        assert_eq!(new["id"], old["id"]);
    }
    // Only the new password starts the daemon now.
    let mut c = cli(d.path());
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["start", "--port", &crate::support::free_port().to_string()]);
    assert_eq!(run(c, Duration::from_secs(30)).status.code(), Some(4));
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d2 = TestDaemon::start_in(dir, Opts { password: Some("a brand new password".into()), ..Opts::default() }).await;
    assert!(d2.stdout_text().contains("KeyStore unlocked (2 keys loaded)"));
    d2.store_when_stopped_has("MASTER_PASSWORD_CHANGED");
}

// ACC-072.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_archives_hold_every_file_with_matching_checksums() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let a = offline_agent(dir.path(), PASSWORD, "a", Chain::Solana);
    // Offline: the CLI builds the archive itself under the lock.
    let mut c = cli(dir.path());
    c.args(["backup", "create"]);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Online: through POST /v1/admin/backup.
    let chains = LocalChains::start();
    chains.configure(dir.path());
    let d = TestDaemon::start_in(dir, Opts::default()).await;
    let r: Value = d.admin_post("/v1/admin/backup", json!({})).await.json().await.unwrap();
    assert_eq!(r["agentCount"], 1);
    let all = archives(d.path());
    assert_eq!(all.len(), 2);
    for archive in &all {
        assert_eq!(mode(archive), 0o600);
        let files = members(archive);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "manifest.json",
            "config.toml",
            "keystore/master.json",
            &format!("keystore/{}.json", a.id),
            "data/waiaas.redb",
        ] {
            assert!(names.contains(&expected), "{expected} missing in {names:?}");
        }
        let manifest: Value =
            serde_json::from_slice(&files.iter().find(|(n, _)| n == "manifest.json").unwrap().1).unwrap();
        assert_eq!((manifest["format"].as_str(), manifest["version"].as_u64()), (Some("waiaas-backup"), Some(1)));
        for entry in manifest["files"].as_array().unwrap() {
            let (_, bytes) = files.iter().find(|(n, _)| n == entry["path"].as_str().unwrap()).unwrap();
            assert_eq!(entry["size"].as_u64().unwrap(), bytes.len() as u64);
            assert_eq!(entry["sha256"].as_str().unwrap(), hex::encode(Sha256::digest(bytes)));
        }
    }
}

/// Rewrites an archive with one change, keeping everything else.
fn tamper(src: &Path, dst: &Path, f: impl Fn(&mut tar::Builder<flate2::write::GzEncoder<std::fs::File>>, &str, &[u8])) {
    let out = flate2::write::GzEncoder::new(std::fs::File::create(dst).unwrap(), flate2::Compression::default());
    let mut b = tar::Builder::new(out);
    for (name, bytes) in members(src) {
        f(&mut b, &name, &bytes);
    }
    b.into_inner().unwrap().finish().unwrap();
}

fn append(b: &mut tar::Builder<flate2::write::GzEncoder<std::fs::File>>, name: &str, bytes: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, bytes).unwrap();
}

// ACC-073.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_rejects_bad_archives_and_restores_a_good_one() {
    // The source installation, with its own password and one agent.
    let src = tempfile::tempdir().unwrap();
    let mut c = cli(src.path());
    c.env("WAIAAS_MASTER_PASSWORD", "archive password 42").args(["init", "--non-interactive"]);
    assert!(run(c, Duration::from_secs(30)).status.success());
    let agent = offline_agent(src.path(), "archive password 42", "archived", Chain::Solana);
    // The archived config points at a local node: the restored daemon's agent must connect.
    let chains = LocalChains::start();
    chains.configure(src.path());
    let mut c = cli(src.path());
    c.args(["backup", "create"]);
    assert!(run(c, Duration::from_secs(30)).status.success());
    let good = archives(src.path()).remove(0);

    // The target installation.
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path());
    let config_before = std::fs::read(dir.path().join("config.toml")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let bad_cases: Vec<(&str, PathBuf)> = vec![
        ("dotdot", {
            let p = work.path().join("dotdot.tar.gz");
            tamper(&good, &p, |b, n, bytes| {
                append(b, n, bytes);
                if n == "manifest.json" {
                    let mut h = tar::Header::new_gnu();
                    h.set_size(1);
                    h.set_mode(0o600);
                    h.set_entry_type(tar::EntryType::Regular);
                    // Bypass the builder's own '..' check by writing the raw name.
                    h.as_gnu_mut().unwrap().name[..4].copy_from_slice(b"../x");
                    h.set_cksum();
                    b.append(&h, &b"x"[..]).unwrap();
                }
            });
            p
        }),
        ("link", {
            let p = work.path().join("link.tar.gz");
            tamper(&good, &p, |b, n, bytes| {
                append(b, n, bytes);
                if n == "manifest.json" {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, "config.toml.link", "/etc/passwd").unwrap();
                }
            });
            p
        }),
        ("checksum", {
            let p = work.path().join("checksum.tar.gz");
            tamper(&good, &p, |b, n, bytes| {
                if n == "config.toml" {
                    let mut changed = bytes.to_vec();
                    changed.extend_from_slice(b"\n# tampered\n");
                    append(b, n, &changed);
                } else {
                    append(b, n, bytes);
                }
            });
            p
        }),
    ];
    for (what, archive) in &bad_cases {
        let mut c = cli(dir.path());
        c.env("WAIAAS_MASTER_PASSWORD", "archive password 42").args(["backup", "restore", "--force"]).arg(archive);
        let out = run(c, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("invalid backup archive"), "{what}: {}", text(&out.stderr));
        assert_eq!(std::fs::read(dir.path().join("config.toml")).unwrap(), config_before, "{what}: nothing changed");
        assert!(
            !std::fs::read_dir(dir.path()).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".restore-"))
        );
    }
    // The wrong archive password exits 4 and changes nothing.
    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", PASSWORD).args(["backup", "restore", "--force"]).arg(&good);
    assert_eq!(run(c, Duration::from_secs(30)).status.code(), Some(4));
    assert_eq!(std::fs::read(dir.path().join("config.toml")).unwrap(), config_before);

    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", "archive password 42").args(["backup", "restore", "--force"]).arg(&good);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.path().join(format!("keystore/{}.json", agent.id)).exists());
    // The daemon now starts with the archive's password and unlocks the archived key.
    let mut c = cli(dir.path());
    c.env("WAIAAS_MASTER_PASSWORD", "archive password 42").args([
        "start",
        "--port",
        &crate::support::free_port().to_string(),
    ]);
    let mut child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    while !line.contains("ready on") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "daemon exited");
        if line.contains("KeyStore unlocked") {
            assert!(line.contains("(1 keys loaded)"), "{line}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let (store, _) = Store::open(&dir.path().join("data/waiaas.redb"), 8 << 20).unwrap();
    assert_eq!(store.audit_by_event("KEYSTORE_RESTORED").unwrap().len(), 1);
}

/// ACC-074: deleting or altering a key file trips the kill switch (actor `system`) at the next
/// integrity run. The dev clock makes "the next interval" immediate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrity_worker_trips_the_kill_switch_on_a_tampered_key_file() {
    for tampering in ["delete", "modify"] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cli(dir.path());
        c.args(["init", "--non-interactive", "--master-password", "waiaas-dev"]);
        assert!(run(c, Duration::from_secs(30)).status.success());
        let a = offline_agent(dir.path(), "waiaas-dev", "watched", Chain::Ethereum);
        crate::support::config_append(dir.path(), "security", "integrity_check_interval = 60");
        let chains = LocalChains::start();
        chains.configure(dir.path());
        let d = TestDaemon::start_in(dir, Opts { dev: true, ..Opts::default() }).await;
        let path = d.path().join(format!("keystore/{}.json", a.id));
        match tampering {
            "delete" => std::fs::remove_file(&path).unwrap(),
            _ => {
                let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                v["network"] = json!("mainnet");
                std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        assert_eq!(d.get("/health").await.json::<Value>().await.unwrap()["status"], "healthy", "not yet checked");
        d.admin_post("/v1/admin/dev/clock", json!({"advanceSeconds": 61})).await;
        let mut locked = Value::Null;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            locked = d.get("/health").await.json().await.unwrap();
            if locked["status"] == "locked" {
                break;
            }
        }
        assert_eq!(locked["status"], "locked", "{tampering}: {locked}");
        assert!(
            locked["killSwitch"]["reason"]
                .as_str()
                .unwrap()
                .starts_with(&format!("INTEGRITY_CHECK_FAILED: agent {}", a.id)),
            "{locked}"
        );
        assert_eq!(locked["services"]["keystore"]["status"], "locked");
        // Other routes are now refused by the guard.
        assert_eq!(d.get("/v1/nonce").await.status(), 503);
    }
}
