//! A scripted JSON-RPC proxy in front of a real node: it forwards every request unchanged
//! unless a rule says otherwise — delay a method, answer it with an error a number of times,
//! hold it while a hook runs — and counts calls per method. This is how tests produce the node
//! behaviours a healthy local node never shows (slow answers, internal errors, a competing
//! transaction landing just before ours) while everything else stays real.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Rules {
    delays: HashMap<String, Duration>,
    /// method → (remaining count, JSON-RPC error object)
    errors: HashMap<String, (u32, Value)>,
    /// method → (calls to let through first, hook run once before the next one is forwarded)
    hooks: HashMap<String, (u32, Hook)>,
    /// Drop (do not forward, do not answer) this method's requests.
    blackhole: Option<String>,
    counts: HashMap<String, u32>,
    /// Every `eth_sendRawTransaction` payload forwarded to the node, in order (repeats kept).
    raw_txs: Vec<String>,
}

/// The running proxy; stops when dropped.
pub(crate) struct RpcProxy {
    pub url: String,
    rules: Arc<Mutex<Rules>>,
    stop: Arc<AtomicBool>,
}

impl RpcProxy {
    pub(crate) fn start(upstream: &str) -> RpcProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let rules = Arc::new(Mutex::new(Rules::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let (r, s) = (rules.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, up) = (r.clone(), upstream.clone());
                        std::thread::spawn(move || serve(conn, &up, &r));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        RpcProxy { url: format!("http://127.0.0.1:{port}"), rules, stop }
    }

    /// Answers `method` after `d`.
    pub(crate) fn delay(&self, method: &str, d: Duration) {
        self.rules.lock().unwrap().delays.insert(method.into(), d);
    }

    /// Answers the next `n` calls of `method` with a JSON-RPC error.
    pub(crate) fn fail(&self, method: &str, n: u32, code: i64, message: &str) {
        self.rules.lock().unwrap().errors.insert(method.into(), (n, json!({"code": code, "message": message})));
    }

    /// Runs `hook` before the next `method` request is forwarded.
    pub(crate) fn before(&self, method: &str, hook: impl FnOnce() + Send + 'static) {
        self.before_nth(method, 0, hook);
    }

    /// Lets `skip` `method` requests through untouched, then runs `hook` before the next one.
    pub(crate) fn before_nth(&self, method: &str, skip: u32, hook: impl FnOnce() + Send + 'static) {
        self.rules.lock().unwrap().hooks.insert(method.into(), (skip, Box::new(hook)));
    }

    /// Swallows `method` requests (no forward, no answer) until cleared with `None`.
    pub(crate) fn blackhole(&self, method: Option<&str>) {
        self.rules.lock().unwrap().blackhole = method.map(str::to_string);
    }

    pub(crate) fn clear(&self) {
        let mut r = self.rules.lock().unwrap();
        r.delays.clear();
        r.errors.clear();
        r.hooks.clear();
        r.blackhole = None;
    }

    /// The hashes (0x-hex, lower case) of the raw transactions forwarded so far that the node
    /// at `node_url` now holds, mined or pending: what the daemon must have on record.
    pub(crate) fn held_by(&self, node_url: &str) -> HashSet<String> {
        let raw = self.rules.lock().unwrap().raw_txs.clone();
        let sent: HashSet<String> = raw
            .iter()
            .map(|r| {
                let bytes = alloy::primitives::hex::decode(r.trim_start_matches("0x")).unwrap();
                format!("{:#x}", alloy::primitives::keccak256(bytes))
            })
            .collect();
        sent.into_iter()
            .filter(|h| !super::nodes::rpc_blocking(node_url, "eth_getTransactionByHash", json!([h])).is_null())
            .collect()
    }

    /// Calls of `method` seen so far.
    pub(crate) fn count(&self, method: &str) -> u32 {
        self.rules.lock().unwrap().counts.get(method).copied().unwrap_or(0)
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_request(conn: &mut BufReader<TcpStream>) -> Option<(Vec<String>, Vec<u8>)> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let len = headers
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    Some((headers, body))
}

fn respond(conn: &mut TcpStream, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}

fn forward(upstream: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut r = BufReader::new(up);
    let (headers, body) = {
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).ok()? == 0 {
                break;
            }
            let l = line.trim_end().to_string();
            if l.is_empty() {
                break;
            }
            headers.push(l);
        }
        let mut body = Vec::new();
        r.read_to_end(&mut body).ok()?;
        (headers, body)
    };
    let chunked =
        headers.iter().any(|h| h.to_ascii_lowercase().starts_with("transfer-encoding") && h.contains("chunked"));
    Some(if chunked { dechunk(&body) } else { body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&b[..pos]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
    out
}

/// What the rules say about one call of a request.
struct Verdict {
    delay: Option<Duration>,
    error: Option<Value>,
    hook: Option<Hook>,
    hole: bool,
}

/// Counts `method` and takes what the rules say about this call of it.
fn verdict(rules: &Mutex<Rules>, method: &str) -> Verdict {
    let mut r = rules.lock().unwrap();
    *r.counts.entry(method.to_string()).or_default() += 1;
    let delay = r.delays.get(method).copied();
    let error = match r.errors.get_mut(method) {
        Some((n, e)) if *n > 0 => {
            *n -= 1;
            Some(e.clone())
        }
        _ => None,
    };
    let hook = match r.hooks.get_mut(method) {
        Some((skip, _)) if *skip > 0 => {
            *skip -= 1;
            None
        }
        Some(_) => r.hooks.remove(method).map(|(_, h)| h),
        None => None,
    };
    Verdict { delay, error, hook, hole: r.blackhole.as_deref() == Some(method) }
}

/// Serves one connection. A JSON-RPC batch gets the rules call by call, as if its calls had
/// come one by one: each is counted, a hook or delay of any runs before forwarding, a
/// blackholed one holds the whole answer, and a scripted error replaces that call's answer
/// only (the others are forwarded).
fn serve(conn: TcpStream, upstream: &str, rules: &Mutex<Rules>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    while let Some((_headers, body)) = read_request(&mut reader) {
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let calls: Vec<Value> = match &req {
            Value::Array(calls) => calls.clone(),
            one => vec![one.clone()],
        };
        let verdicts: Vec<Verdict> =
            calls.iter().map(|c| verdict(rules, c["method"].as_str().unwrap_or_default())).collect();
        if verdicts.iter().any(|v| v.hole) {
            // Hold the connection open without answering until the client gives up.
            std::thread::sleep(Duration::from_secs(120));
            return;
        }
        let mut errors = Vec::new();
        for v in verdicts {
            if let Some(h) = v.hook {
                h();
            }
            if let Some(d) = v.delay {
                std::thread::sleep(d);
            }
            errors.push(v.error);
        }
        let error_answer = |call: &Value, e: &Value| json!({"jsonrpc": "2.0", "id": call["id"], "error": e});
        let forwarded: Vec<Value> =
            calls.iter().zip(&errors).filter(|(_, e)| e.is_none()).map(|(c, _)| c.clone()).collect();
        // Recorded before forwarding: whatever leaves here may have reached the node.
        rules.lock().unwrap().raw_txs.extend(
            forwarded
                .iter()
                .filter(|c| c["method"] == "eth_sendRawTransaction")
                .filter_map(|c| c["params"][0].as_str().map(str::to_string)),
        );
        let answer = match (&req, forwarded.is_empty()) {
            (Value::Array(_), _) => {
                let mut answers: HashMap<String, Value> = HashMap::new();
                if !forwarded.is_empty() {
                    let Some(a) = forward(upstream, &serde_json::to_vec(&forwarded).unwrap()) else { return };
                    for one in serde_json::from_slice::<Vec<Value>>(&a).unwrap_or_default() {
                        answers.insert(one["id"].to_string(), one);
                    }
                }
                let all: Vec<Value> = calls
                    .iter()
                    .zip(&errors)
                    .map(|(c, e)| match e {
                        Some(e) => error_answer(c, e),
                        None => answers.remove(&c["id"].to_string()).unwrap_or(Value::Null),
                    })
                    .collect();
                serde_json::to_vec(&all).unwrap()
            }
            (_, true) => serde_json::to_vec(&error_answer(&req, errors[0].as_ref().unwrap())).unwrap(),
            (_, false) => match forward(upstream, &body) {
                Some(a) => a,
                None => return,
            },
        };
        respond(&mut writer, &answer);
    }
}
