//! `waiaas stop` (01-daemon.md §4.4): SIGTERM, then wait for the instance lock to free up.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;

use crate::base::datadir::Layout;
use crate::cli::{CliError, exit};
use crate::daemon::lock::{self, InstanceLock};

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Seconds to wait for a graceful stop before SIGKILL.
    #[arg(long, default_value_t = 35)]
    timeout: u64,
    /// SIGKILL at once.
    #[arg(long)]
    force: bool,
}

/// The PID file path from the config, or its default when the config does not load.
pub(crate) fn pid_file(dir: &Path) -> std::path::PathBuf {
    let env: Vec<(String, String)> = std::env::vars().collect();
    crate::runtime::config::load(dir, &Default::default(), &env)
        .map(|c| c.daemon.pid_file)
        .unwrap_or_else(|_| dir.join("daemon.pid"))
}

fn signal(pid: u32, sig: rustix::process::Signal) -> Result<(), CliError> {
    let p =
        rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| CliError::general(format!("invalid PID {pid}")))?;
    rustix::process::kill_process(p, sig).map_err(|e| CliError::general(format!("cannot signal PID {pid}: {e}")))
}

pub(crate) fn run(dir: &Path, args: StopArgs) -> Result<(), CliError> {
    let layout = Layout::new(dir.to_path_buf());
    let pid_path = pid_file(dir);
    let busy = match InstanceLock::try_acquire(&layout.lock()) {
        Ok(Ok(held)) => {
            drop(held);
            let stale = lock::remove_stale_pid_file(&pid_path);
            let suffix = if stale { " (stale PID file removed)" } else { "" };
            return Err(CliError::new(exit::NOT_RUNNING, format!("Error: No running daemon found{suffix}")));
        }
        Ok(Err(busy)) => busy,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::new(exit::NOT_RUNNING, "Error: No running daemon found"));
        }
        Err(e) => return Err(CliError::general(format!("Error: cannot read {}: {e}", layout.lock().display()))),
    };
    let pid = busy
        .pid
        .or_else(|| std::fs::read_to_string(&pid_path).ok().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| CliError::general("Error: the daemon holds the lock but its PID is unknown"))?;
    if args.force {
        signal(pid, rustix::process::Signal::KILL)?;
        let _ = std::fs::remove_file(&pid_path);
        println!("WAIaaS daemon (PID: {pid}) killed forcefully");
        println!("Warning: Graceful shutdown was skipped. Keys may not have been zeroed.");
        return Ok(());
    }
    signal(pid, rustix::process::Signal::TERM)?;
    println!("Stopping WAIaaS daemon (PID: {pid})...");
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        if let Ok(Ok(held)) = InstanceLock::try_acquire(&layout.lock()) {
            drop(held);
            println!("WAIaaS daemon (PID: {pid}) stopped gracefully");
            return Ok(());
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("Daemon did not stop within {}s, sending SIGKILL", args.timeout);
    let _ = signal(pid, rustix::process::Signal::KILL);
    std::thread::sleep(Duration::from_secs(1));
    let _ = std::fs::remove_file(&pid_path);
    eprintln!("Warning: Graceful shutdown was skipped. Keys may not have been zeroed.");
    Err(CliError::new(exit::TIMEOUT, String::new()))
}
