//! `surfnet-local`: an offline Solana JSON-RPC node for tests and local demos.
//!
//! The waiaas test suite needs a real Solana node (signature checks, blockhash expiry, fees,
//! the SPL token programs), and no `solana-test-validator` binary is available from the package
//! registries this project may use. surfpool-core embeds an SVM (litesvm) behind the standard
//! JSON-RPC API, so this wrapper starts it in offline mode on the requested port and prints one
//! ready line that test harnesses wait for:
//!
//! ```text
//! surfnet-local ready on 127.0.0.1:<rpc port> (ws <ws port>)
//! ```
//!
//! Usage: `surfnet-local --port <rpc> [--ws-port <ws>] [--slot-time <ms>] [--manual]`.
//! `--manual` disables clock-driven block production.
//!
//! Block control on stdin, one command per line, for tests that need a blockhash to age by an
//! exact number of blocks (surfpool has no RPC that produces blocks on demand):
//!
//! ```text
//! advance <n>     produce n blocks now, then resume the configured production mode;
//!                 answers "advanced <n>" on stdout once they are queued
//! ```

use std::process::ExitCode;

use surfpool_core::surfnet::svm::{SurfnetSvm, SurfnetSvmConfig};
use surfpool_types::{BlockProductionMode, RpcConfig, SimnetCommand, SimnetConfig, SimnetEvent, SurfpoolConfig};

struct Args {
    port: u16,
    ws_port: u16,
    slot_time: u64,
    manual: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut port = None;
    let mut ws_port = None;
    let mut slot_time = 400;
    let mut manual = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => port = Some(value("--port")?.parse().map_err(|e| format!("--port: {e}"))?),
            "--ws-port" => ws_port = Some(value("--ws-port")?.parse().map_err(|e| format!("--ws-port: {e}"))?),
            "--slot-time" => slot_time = value("--slot-time")?.parse().map_err(|e| format!("--slot-time: {e}"))?,
            "--manual" => manual = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let port: u16 = port.ok_or("--port is required")?;
    Ok(Args { port, ws_port: ws_port.unwrap_or(port.wrapping_add(1)), slot_time, manual })
}

/// Reads `advance <n>` lines from stdin and produces blocks through the simnet command channel.
fn spawn_block_control(tx: crossbeam_channel::Sender<SimnetCommand>, manual: bool) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let mut words = line.split_whitespace();
            match (words.next(), words.next().and_then(|n| n.parse::<u64>().ok())) {
                (Some("advance"), Some(n)) => {
                    for _ in 0..n {
                        // Each SlotForward produces one block (and switches to manual mode).
                        if tx.send(SimnetCommand::SlotForward(None)).is_err() {
                            return;
                        }
                    }
                    let mode = if manual { BlockProductionMode::Manual } else { BlockProductionMode::Clock };
                    let _ = tx.send(SimnetCommand::UpdateBlockProductionMode(mode));
                    println!("advanced {n}");
                }
                _ => eprintln!("surfnet-local: unknown command {line:?} (expected: advance <n>)"),
            }
        }
    });
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("surfnet-local: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");

    let svm_config = SurfnetSvmConfig { slot_time: args.slot_time, ..SurfnetSvmConfig::default() };
    let (svm, events_rx, geyser_rx) = match SurfnetSvm::new(svm_config) {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("surfnet-local: cannot create the SVM: {e:?}");
            return ExitCode::from(1);
        }
    };
    let config = SurfpoolConfig {
        simnets: vec![SimnetConfig {
            // Offline: never reach out to mainnet for missing accounts.
            offline_mode: true,
            remote_rpc_url: None,
            slot_time: args.slot_time,
            block_production_mode: if args.manual { BlockProductionMode::Manual } else { BlockProductionMode::Clock },
            ..SimnetConfig::default()
        }],
        rpc: RpcConfig {
            bind_host: "127.0.0.1".into(),
            bind_port: args.port,
            ws_port: args.ws_port,
            ..RpcConfig::default()
        },
        ..SurfpoolConfig::default()
    };
    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
    spawn_block_control(cmd_tx.clone(), args.manual);

    // The runloop reports through a channel that must be drained or it blocks; the drain
    // thread also announces readiness and surfaces fatal errors.
    let (port, ws_port) = (args.port, args.ws_port);
    std::thread::spawn(move || {
        for event in events_rx.iter() {
            match event {
                SimnetEvent::CoreStarted(_) => {
                    println!("surfnet-local ready on 127.0.0.1:{port} (ws {ws_port})");
                }
                SimnetEvent::Aborted(reason) => {
                    eprintln!("surfnet-local: aborted: {reason}");
                    std::process::exit(1);
                }
                SimnetEvent::ErrorLog(_, msg) => eprintln!("surfnet-local: error: {msg}"),
                _ => {}
            }
        }
    });

    let result = runtime.block_on(surfpool_core::start_local_surfnet(svm, config, cmd_tx, cmd_rx, geyser_rx));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("surfnet-local: {e}");
            ExitCode::from(1)
        }
    }
}
