//! The README's run command, end to end (issue #24): `scripts/run-local.sh --exit-after-demo`
//! on its own ports, in a non-TTY shell, with the binaries this test run already built
//! (`WAIAAS_BIN`) and an anvil this test started (`WAIAAS_EVM_RPC`), so that the chain and the
//! database can be checked after the script has stopped everything it started.

use std::process::{Command, Stdio};
use std::time::Duration;

use waiaas_storage::{AgentStatus, Tier, TxStatus};

use crate::support::nodes::Anvil;
use crate::support::{free_port, text, wait_timeout};

const RECIPIENT: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const WEI_PER_CENTI_ETH: u128 = 10_000_000_000_000_000;

// The demo ends with exit code 0, prints no traceback and no `Error` line; its INSTANT 0.01 ETH
// and its owner-approved 6 ETH are CONFIRMED in the database it leaves behind, the recipient holds
// exactly 6.01 ETH more on anvil, and the agent is still ACTIVE (ACC-222b in the demo itself).
#[test]
fn the_readme_run_command_completes_its_demo() {
    let anvil = Anvil::start();
    let run = tempfile::tempdir().unwrap();
    let before = crate::support::evm::balance(&anvil.url, RECIPIENT);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("bash")
        .arg(root.join("scripts/run-local.sh"))
        .arg("--exit-after-demo")
        .env("WAIAAS_BIN", env!("CARGO_BIN_EXE_waiaas"))
        .env("WAIAAS_EVM_RPC", &anvil.url)
        .env("WAIAAS_RUN_DIR", run.path())
        .env("WAIAAS_PORT", free_port().to_string())
        .env_remove("WAIAAS_MASTER_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = |mut s: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let status = wait_timeout(&mut child, Duration::from_secs(300)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("run-local.sh did not finish within 300 s");
    });
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let all = format!("{out}\n{err}");
    let daemon_log = std::fs::read_to_string(run.path().join(".daemon.log")).unwrap_or_default();
    assert!(status.success(), "exit {status}\n--- output\n{all}\n--- daemon log\n{daemon_log}");
    assert!(!all.contains("Traceback"), "{all}");
    let errors: Vec<&str> = all.lines().filter(|l| l.contains("Error")).collect();
    assert!(errors.is_empty(), "Error lines: {errors:?}\n{all}");
    assert!(out.contains("Demo complete"), "{out}");

    assert_eq!(
        crate::support::evm::balance(&anvil.url, RECIPIENT) - before,
        601 * WEI_PER_CENTI_ETH,
        "exactly 6.01 ETH"
    );
    let (store, _) =
        waiaas_storage::Store::open(&run.path().join(".local-run/data/waiaas.redb"), 8 << 20).expect("the demo's db");
    let agent = store.find_agent_by_name("demo-evm").unwrap().expect("the demo agent");
    assert_eq!(agent.status, AgentStatus::Active, "{:?}", agent.suspension_reason);
    let (rows, _) = store.list_transactions(agent.id, None, None, 10, false).unwrap();
    let seen: Vec<(Option<Tier>, TxStatus, String)> =
        rows.iter().map(|r| (r.tier, r.status, r.native_amount.to_string())).collect();
    assert_eq!(
        seen,
        vec![
            (Some(Tier::Instant), TxStatus::Confirmed, (WEI_PER_CENTI_ETH).to_string()),
            (Some(Tier::Approval), TxStatus::Confirmed, (600 * WEI_PER_CENTI_ETH).to_string()),
        ],
        "{out}"
    );
}

// Issue #19, 12-operations.md §7: every command the banner prints runs as printed in a
// non-interactive shell (no TTY, no password in the environment) and exits 0, while the script
// keeps serving; SIGTERM to the script then stops the daemon it started. This run also asks for
// the local Solana node (WAIAAS_RUN_SOLANA=1), whose address the banner then prints and whose
// health the daemon reports.
#[test]
fn every_banner_command_runs_as_printed_in_a_non_tty_shell() {
    use std::io::BufRead;
    let anvil = Anvil::start();
    let run = tempfile::tempdir().unwrap();
    let port = free_port();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("bash")
        .arg(root.join("scripts/run-local.sh"))
        .env("WAIAAS_BIN", env!("CARGO_BIN_EXE_waiaas"))
        .env("WAIAAS_EVM_RPC", &anvil.url)
        .env("WAIAAS_RUN_DIR", run.path())
        .env("WAIAAS_PORT", port.to_string())
        .env("WAIAAS_RUN_SOLANA", "1")
        .env_remove("WAIAAS_MASTER_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let mut in_try = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).expect("the banner");
        if line.trim_start().starts_with("Ctrl-C stops") {
            break;
        }
        if let Some(node) = line.trim_start().strip_prefix("Local Solana node:") {
            assert!(node.trim().starts_with("http://127.0.0.1:"), "the Solana node was started: {line}");
        }
        if line.trim_start().starts_with("Try, in another terminal") {
            in_try = true;
        } else if in_try && !line.trim().is_empty() {
            banner.push(line.trim().to_string());
        }
    }
    assert_eq!(banner.len(), 7, "{banner:?}");
    let script: String = banner.iter().map(|c| format!("{c}\nrc=$?; echo; echo \"step-exit=$rc\"\n")).collect();
    let out = Command::new("bash")
        .args(["-c", &script])
        .env_remove("WAIAAS_MASTER_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    let exits: Vec<&str> = shown.lines().filter(|l| l.starts_with("step-exit=")).collect();
    assert_eq!(exits, vec!["step-exit=0"; 7], "{script}\n{shown}");
    assert!(shown.contains("demo-evm"), "agent list names the demo agent: {shown}");
    crate::support::signal(child.id(), "TERM");
    assert!(wait_timeout(&mut child, Duration::from_secs(30)).is_some(), "the script stops on SIGTERM");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "and its daemon with it");
}
