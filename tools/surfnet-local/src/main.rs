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
//! `--manual` disables clock-driven block production (blocks then advance only through the
//! `surfnet_*` cheat-code RPCs), which lets tests age a blockhash deterministically.

use std::process::ExitCode;

use surfpool_core::surfnet::svm::{SurfnetSvm, SurfnetSvmConfig};
use surfpool_types::{BlockProductionMode, RpcConfig, SimnetConfig, SimnetEvent, SurfpoolConfig};

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
