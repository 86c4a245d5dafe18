//! `waiaas status` (01-daemon.md §4.5). Always exits 0.

use std::path::Path;

use clap::Args;
use serde_json::{Value, json};

use crate::base::datadir::Layout;
use crate::cli::{CliError, PasswordArgs, password, remote::client::DaemonClient};
use crate::daemon::lock::{self, InstanceLock};

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

pub(crate) fn run(dir: &Path, args: StatusArgs) -> Result<(), CliError> {
    let layout = Layout::new(dir.to_path_buf());
    // A master password is used only when available without prompting.
    let master = password::take_env(&args.password.password_env)
        .or_else(|| password::file_source(&args.password).and_then(|p| password::read_file(&p).ok()));
    let busy = match InstanceLock::try_acquire(&layout.lock()) {
        Ok(Err(busy)) => busy,
        other => {
            drop(other);
            let stale = lock::remove_stale_pid_file(&crate::cli::local::stop::pid_file(dir));
            if args.json {
                let mut v = json!({"running": false});
                if stale {
                    v["stalePidCleaned"] = Value::Bool(true);
                }
                println!("{v}");
            } else {
                println!("WAIaaS daemon is not running");
            }
            return Ok(());
        }
    };
    let pid = busy.pid.or_else(|| {
        std::fs::read_to_string(crate::cli::local::stop::pid_file(dir)).ok().and_then(|s| s.trim().parse().ok())
    });
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = crate::runtime::config::load(dir, &Default::default(), &env).ok();
    let port = config.as_ref().map(|c| c.daemon.port).unwrap_or(3100);
    // `Database: postgres postgres://u:***@host:5432/db` (13-postgres-ha.md §6.3): never the password.
    let pg_url = config.as_ref().and_then(|c| match &c.database.backend {
        crate::runtime::config::StorageBackend::Postgres(pg) => Some(pg.url.redacted().to_string()),
        crate::runtime::config::StorageBackend::Redb => None,
    });
    let rt = crate::cli::runtime()?;
    let client = DaemonClient::new(port, master.clone());
    let health = rt.block_on(client.health());
    let ready = rt.block_on(client.ready());
    let admin = if master.is_some() && health.is_ok() {
        rt.block_on(client.call(reqwest::Method::GET, "/v1/admin/status", None)).ok()
    } else {
        None
    };
    match health {
        Ok(h) => {
            if args.json {
                let mut v = json!({"running": true, "pid": pid});
                if let (Value::Object(out), Value::Object(h)) = (&mut v, h) {
                    out.extend(h);
                }
                if let Some(a) = admin {
                    v["admin"] = a;
                }
                if let Some(r) = ready {
                    v["readiness"] = r;
                }
                let ha = v["services"]["database"]["ha"].clone();
                if !ha.is_null() {
                    v["ha"] = ha;
                }
                println!("{v}");
            } else {
                println!(
                    "WAIaaS daemon is running (PID: {})",
                    pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
                );
                println!("  Status:      {}", h["status"].as_str().unwrap_or("?"));
                println!("  Uptime:      {}s", h["uptime"]);
                println!("  Address:     127.0.0.1:{port}");
                println!("  Kill switch: {}", h["killSwitch"]["status"].as_str().unwrap_or("?"));
                if let Some(url) = &pg_url {
                    println!("  Database:    postgres {url}");
                    let ha = &h["services"]["database"]["ha"];
                    match ha["role"].as_str() {
                        Some("leader") => println!("  Role:        leader (epoch {})", ha["epoch"]),
                        Some(_) => println!(
                            "  Role:        standby (leader {}, epoch {})",
                            ha["leaderReplicaId"].as_str().unwrap_or("none"),
                            ha["epoch"]
                        ),
                        None => {}
                    }
                }
                if let Some(r) = &ready {
                    let reasons: Vec<&str> =
                        r["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    if r["ready"] == true {
                        println!("  Ready:       yes");
                    } else {
                        println!("  Ready:       no ({})", reasons.join(", "));
                    }
                }
                if let Some(adapters) = h["services"]["adapters"].as_object() {
                    for (name, a) in adapters {
                        println!("  Adapter {name}: {}", a["status"].as_str().unwrap_or("?"));
                    }
                }
                if let Some(a) = admin {
                    println!("  Agents:      {} active, {} total", a["agents"]["active"], a["agents"]["total"]);
                    println!("  Sessions:    {} active", a["sessions"]["active"]);
                    println!("  Memory:      {} bytes RSS", a["resources"]["memoryRssBytes"]);
                }
            }
        }
        Err(_) => {
            if args.json {
                println!("{}", json!({"running": true, "pid": pid, "healthy": false}));
            } else {
                println!(
                    "WAIaaS daemon is running (PID: {}) but not responding",
                    pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
                );
            }
        }
    }
    Ok(())
}
