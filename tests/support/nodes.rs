//! The real local components: anvil (EVM), surfnet-local (Solana) and Speculos (Ledger). Each
//! starts on free ports, waits until it answers, and is stopped (and reaped) on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{free_port, tool};

fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    if super::wait_timeout(child, Duration::from_secs(3)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits for a line on the child's stdout matching `pred`, returning it.
fn wait_line(child: &mut Child, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool + Send + 'static) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && pred(&line) {
                let _ = tx.send(line);
                sent = true;
            }
        }
    });
    rx.recv_timeout(timeout).unwrap_or_else(|_| panic!("{what} did not become ready within {timeout:?}"))
}

/// An anvil node.
pub(crate) struct Anvil {
    child: Child,
    pub port: u16,
    pub url: String,
}

impl Anvil {
    /// `anvil --port 0 --chain-id <id>` plus extra arguments.
    pub(crate) fn start_with(chain_id: u64, extra: &[&str]) -> Anvil {
        let bin = tool("WAIAAS_TOOL_ANVIL", "foundry-1.7.1/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", "0", "--chain-id", &chain_id.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start anvil");
        let line = wait_line(&mut child, "anvil", Duration::from_secs(20), |l| l.contains("Listening on "));
        let addr = line.rsplit("Listening on ").next().unwrap().trim().to_string();
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Anvil { child, port, url: format!("http://{addr}") }
    }

    pub(crate) fn start() -> Anvil {
        Anvil::start_with(31337, &[])
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The surfnet-local Solana node (a workspace binary).
pub(crate) struct Surfnet {
    child: Child,
    pub port: u16,
    pub url: String,
    /// The node's block-control stdin (`advance <n>`).
    control: std::sync::Mutex<Option<std::process::ChildStdin>>,
}

fn surfnet_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WAIAAS_TOOL_SURFNET") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/main-<hash> → target/<profile>/surfnet-local
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("surfnet-local");
    assert!(p.exists(), "{} missing: run `cargo build -p surfnet-local` (scripts/test.sh does)", p.display());
    p
}

impl Surfnet {
    pub(crate) fn start_with(extra: &[&str]) -> Surfnet {
        for _ in 0..3 {
            let (port, ws) = (free_port(), free_port());
            let mut child = Command::new(surfnet_bin())
                .args(["--port", &port.to_string(), "--ws-port", &ws.to_string()])
                .args(extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start surfnet-local");
            let control = child.stdin.take();
            let (tx, rx) = mpsc::channel();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains(" ready on ") {
                        let _ = tx.send(());
                    }
                }
            });
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if rx.try_recv().is_ok() {
                    return Surfnet {
                        child,
                        port,
                        url: format!("http://127.0.0.1:{port}"),
                        control: std::sync::Mutex::new(control),
                    };
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    stop(&mut child);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("surfnet-local did not start");
    }

    pub(crate) fn start() -> Surfnet {
        Surfnet::start_with(&[])
    }

    /// Produces `n` blocks now and waits until the node's confirmed block height shows (nearly)
    /// all of them; the node's own clock keeps producing blocks meanwhile.
    pub(crate) fn advance(&self, n: u64) {
        use std::io::Write;
        let before = self.block_height();
        let mut c = self.control.lock().unwrap();
        let stdin = c.as_mut().expect("surfnet control");
        writeln!(stdin, "advance {n}").unwrap();
        stdin.flush().unwrap();
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.block_height() + 10 < before + n {
            assert!(
                Instant::now() < deadline,
                "surfnet did not advance {n} blocks: {before} -> {}",
                self.block_height()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `getBlockHeight` at `confirmed`.
    pub(crate) fn block_height(&self) -> u64 {
        self.rpc("getBlockHeight", serde_json::json!([{"commitment": "confirmed"}])).as_u64().unwrap()
    }

    /// A blocking JSON-RPC call (usable from hooks running on plain threads).
    pub(crate) fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        rpc_blocking(&self.url, method, params)
    }
}

/// A minimal blocking JSON-RPC POST over a plain socket.
pub(crate) fn rpc_blocking(url: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let json = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let start = json.find('{').unwrap_or(0);
    let end = json.rfind('}').map(|e| e + 1).unwrap_or(json.len());
    let v: serde_json::Value = serde_json::from_str(&json[start..end]).unwrap_or(serde_json::Value::Null);
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

impl Drop for Surfnet {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The Speculos emulator running the Boilerplate app.
pub(crate) struct Speculos {
    child: Child,
    pub apdu_port: u16,
    pub api_port: u16,
}

impl Speculos {
    /// Starts Speculos (nanox, headless) with optional automation rules.
    pub(crate) fn start(automation: Option<&str>) -> Speculos {
        let bin = tool("WAIAAS_TOOL_SPECULOS", "speculos-0.27.1/venv/bin/speculos");
        let app = tool("WAIAAS_TOOL_SPECULOS_APP", "speculos-0.27.1/apps/boil.elf");
        for _ in 0..3 {
            let (apdu_port, api_port) = (free_port(), free_port());
            let mut cmd = Command::new(&bin);
            cmd.args(["--model", "nanox", "--display", "headless"]).args([
                "--apdu-port",
                &apdu_port.to_string(),
                "--api-port",
                &api_port.to_string(),
            ]);
            if let Some(rules) = automation {
                cmd.arg("--automation").arg(format!("file:{rules}"));
            }
            let mut child = cmd.arg(&app).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start speculos");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                let apdu = std::net::TcpStream::connect(("127.0.0.1", apdu_port)).is_ok();
                let api = std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok();
                if apdu && api {
                    return Speculos { child, apdu_port, api_port };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            stop(&mut child);
        }
        panic!("speculos did not start");
    }

    pub(crate) fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }
}

impl Drop for Speculos {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Both local chain nodes, for daemons whose agents must connect at start (01-daemon.md §6
/// step 4 fails the start when agents exist and none of their adapters connects).
pub(crate) struct LocalChains {
    pub anvil: Anvil,
    pub solana: Surfnet,
}

impl LocalChains {
    pub(crate) fn start() -> LocalChains {
        LocalChains { anvil: Anvil::start(), solana: Surfnet::start() }
    }

    /// The `[rpc]` lines pointing `solana/devnet` and `ethereum/testnet` (chain id 31337) here.
    pub(crate) fn rpc(&self) -> String {
        format!(
            "solana_devnet = \"{}\"\nethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337",
            self.solana.url, self.anvil.url
        )
    }

    /// Writes [`rpc`](Self::rpc) into a data directory's config.toml.
    pub(crate) fn configure(&self, dir: &std::path::Path) {
        super::config_append(dir, "rpc", &self.rpc());
    }
}
