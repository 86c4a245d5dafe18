//! `waiaas start` (01-daemon.md §4.3): foreground, or `-d` to re-execute as a detached child
//! that reports readiness through a one-line JSON handshake on a pipe.

use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Args;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::base::datadir::Layout;
use crate::cli::local::init::InitArgs;
use crate::cli::{CliError, PasswordArgs, exit, password};
use crate::daemon::{self, StartError, StartOptions};
use crate::runtime::config::{self, Overrides};

/// Environment variable telling a background child which fd carries the handshake.
const HANDSHAKE_FD: &str = "WAIAAS_HANDSHAKE_FD";

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Listen port (overrides config and environment).
    #[arg(long)]
    port: Option<u16>,
    /// Log level.
    #[arg(long, value_parser = ["trace", "debug", "info", "warn", "error"])]
    log_level: Option<String>,
    #[command(flatten)]
    password: PasswordArgs,
    /// Dev mode: fixed password "waiaas-dev", debug logging.
    #[arg(long)]
    dev: bool,
}

impl StartArgs {
    fn overrides(&self) -> Overrides {
        Overrides { port: self.port, log_level: self.log_level.clone(), dev: self.dev }
    }
}

pub(crate) fn run(dir: &Path, args: StartArgs) -> Result<(), CliError> {
    if args.daemon {
        return background(dir, &args);
    }
    // Read (and remove) the password variable and the handshake fd while single-threaded.
    let mut env_password = password::take_env(&args.password.password_env);
    if init_on_start() && !Layout::new(dir.to_path_buf()).config().exists() {
        // First run in a container (12-operations.md §1): initialise from the same password
        // source the start uses, then start.
        let pw = password::obtain(&args.password, env_password.take(), false)?;
        println!("WAIAAS_INIT_ON_START: initialising {}", dir.display());
        crate::cli::local::init::run(dir, InitArgs::first_run(pw.expose_secret().to_string()))?;
        env_password = Some(pw);
    }
    let handshake = match std::env::var(HANDSHAKE_FD).ok().and_then(|v| v.parse::<i32>().ok()) {
        Some(fd) => {
            // SAFETY: single-threaded (see `password::take_env`).
            unsafe { std::env::remove_var(HANDSHAKE_FD) };
            // SAFETY: the parent dup2-ed the write end of its pipe onto this fd before exec and
            // nothing else in this process owns it.
            Some(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::general(format!("cannot start the async runtime: {e}")))?;
    let source = args.password.clone();
    let opts = StartOptions {
        data_dir: dir.to_path_buf(),
        overrides: args.overrides(),
        password: Box::new(move || password::obtain(&source, env_password, false).map_err(|e| e.message)),
        foreground: handshake.is_none(),
    };
    let result = runtime.block_on(async move {
        let mut handshake = handshake;
        match daemon::start(opts).await {
            Ok(running) => {
                send_handshake(&mut handshake, json!({"type": "ready", "pid": std::process::id()}));
                daemon::serve(running).await;
                Ok(())
            }
            Err(e) => {
                let e = start_failure(e);
                send_handshake(&mut handshake, json!({"type": "error", "error": e.message, "exitCode": e.code}));
                Err(e)
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// `WAIAAS_INIT_ON_START=true` (or 1/yes): an uninitialised data directory is initialised first.
fn init_on_start() -> bool {
    std::env::var("WAIAAS_INIT_ON_START").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The exit code of each way a start can fail (01-daemon.md §4.1).
fn start_failure(e: StartError) -> CliError {
    let code = match &e {
        StartError::NotInitialised | StartError::ForeignOwner(_) => exit::NOT_RUNNING,
        StartError::AlreadyRunning { .. } => exit::RUNNING,
        StartError::WrongPassword => exit::AUTH,
        StartError::Password(_) | StartError::Failed(_) => exit::GENERAL,
        StartError::Schema(waiaas_storage::SchemaError::NotInitialised) => exit::NOT_RUNNING,
        StartError::Schema(_) => exit::GENERAL,
        StartError::ReplicaBusy(_) => exit::RUNNING,
    };
    CliError::new(code, e.to_string())
}

/// Background mode: the one-line ready/error answer to the parent `start -d` (see [`background`]).
fn send_handshake(file: &mut Option<std::fs::File>, msg: serde_json::Value) {
    if let Some(mut f) = file.take() {
        let _ = writeln!(f, "{msg}");
    }
}

fn background(dir: &Path, args: &StartArgs) -> Result<(), CliError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = config::load(dir, &args.overrides(), &env).map_err(|e| CliError::general(e.to_string()))?;
    let has_env = std::env::var(&args.password.password_env).is_ok_and(|v| !v.is_empty());
    if !config.daemon.dev_mode && !has_env && password::file_source(&args.password).is_none() {
        return Err(CliError::general(
            "Cannot use interactive password in daemon mode. Set WAIAAS_MASTER_PASSWORD or use --password-file.",
        ));
    }
    let log_path = config.daemon.log_file.clone();
    if let Some(parent) = log_path.parent() {
        waiaas_backends::fsutil::create_private_dir(parent)
            .map_err(|e| CliError::general(format!("cannot create {}: {e}", parent.display())))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| CliError::general(format!("cannot open {}: {e}", log_path.display())))?;
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| CliError::general(format!("cannot create a pipe: {e}")))?;

    let exe = std::env::current_exe().map_err(|e| CliError::general(format!("cannot find the waiaas binary: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir").arg(dir).arg("start").arg("--password-env").arg(&args.password.password_env);
    if let Some(p) = args.port {
        cmd.arg("--port").arg(p.to_string());
    }
    if let Some(l) = &args.log_level {
        cmd.arg("--log-level").arg(l);
    }
    if let Some(f) = &args.password.password_file {
        cmd.arg("--password-file").arg(f);
    }
    if args.dev {
        cmd.arg("--dev");
    }
    cmd.env(HANDSHAKE_FD, "3")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| CliError::general(e.to_string()))?)
        .stderr(log);
    let raw_write = write_end.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (setsid, dup2).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid().map_err(std::io::Error::from)?;
            let target = OwnedFd::from_raw_fd(3);
            let src = std::os::fd::BorrowedFd::borrow_raw(raw_write);
            let r = rustix::io::dup2(src, &mut std::mem::ManuallyDrop::new(target));
            r.map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|e| CliError::general(format!("cannot start the daemon: {e}")))?;
    drop(write_end);

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(std::fs::File::from(read_end)).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(line) if !line.trim().is_empty() => {
            let msg: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
            if msg["type"] == "ready" {
                println!("WAIaaS daemon started in background (PID: {})", msg["pid"]);
                println!("Logs: {}", log_path.display());
                Ok(())
            } else {
                let code = msg["exitCode"].as_u64().unwrap_or(1) as u8;
                let _ = child.wait();
                Err(CliError::new(code, msg["error"].as_str().unwrap_or("daemon start failed").to_string()))
            }
        }
        Ok(_) => {
            let status = child.wait().ok().and_then(|s| s.code()).unwrap_or(1) as u8;
            Err(CliError::new(
                status.max(exit::GENERAL),
                format!("The daemon exited during start; see {}", log_path.display()),
            ))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(CliError::general("Daemon startup timed out"))
        }
    }
}
