//! The HTTP layer of the real daemon (ACC-038 … ACC-046, ACC-226, ACC-227): health, request
//! ids, security headers, host guard, CORS, rate limits, body limit, 404/405 and the envelope.

use serde_json::{Value, json};

use crate::support::{Opts, RawConn};

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

/// Checks the flat error envelope and that its requestId equals the header (ACC-226).
fn assert_envelope(headers: &reqwest::header::HeaderMap, body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string());
    assert!(body["retryable"].is_boolean());
    assert_eq!(body["requestId"].as_str().unwrap(), headers["x-request-id"].to_str().unwrap());
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    for k in keys {
        assert!(
            ["code", "message", "hint", "details", "requestId", "retryable"].contains(&k.as_str()),
            "unexpected {k}"
        );
    }
}

// ACC-038.
daemon_test!(health_is_public_and_both_paths_agree, |d| {
    let a = json_of(d.get("/health").await).await;
    for key in ["status", "version", "uptime", "timestamp", "services", "killSwitch"] {
        assert!(a.get(key).is_some(), "{key} missing: {a}");
    }
    assert_eq!(a["status"], "healthy");
    assert_eq!(a["services"]["database"]["status"], "ok");
    assert_eq!(a["killSwitch"], json!({"active": false, "status": "NORMAL", "activatedAt": null, "reason": null}));
    let b = json_of(d.get("/v1/health").await).await;
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("uptime");
        v.as_object_mut().unwrap().remove("timestamp");
        v
    };
    assert_eq!(strip(a), strip(b));
});

// ACC-039, ACC-040, ACC-046, ACC-226.
daemon_test!(request_ids_security_headers_and_envelopes, |d| {
    let r = d.get("/health").await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(
        id.len() == 26
            && id.starts_with("req_")
            && id[4..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
    for (h, v) in
        [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"), ("referrer-policy", "no-referrer")]
    {
        assert_eq!(r.headers()[h], v);
    }
    assert!(r.headers().get("strict-transport-security").is_none());
    let r = d.http.get(d.url("/health")).header("X-Request-ID", "client.id:42-x_y").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "client.id:42-x_y");
    let r = d.http.get(d.url("/health")).header("X-Request-ID", "has spaces").send().await.unwrap();
    assert_ne!(r.headers()["x-request-id"], "has spaces");

    let r = d.get("/v1/nothing-here").await;
    assert_eq!(r.status(), 404);
    let h = r.headers().clone();
    assert_envelope(&h, &json_of(r).await, "ROUTE_NOT_FOUND");
    let r = d.http.delete(d.url("/v1/nonce")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    let h = r.headers().clone();
    assert_envelope(&h, &json_of(r).await, "METHOD_NOT_ALLOWED");
});

// ACC-041.
daemon_test!(the_host_guard_refuses_foreign_and_missing_hosts, |d| {
    let port = d.port;
    for (host, expect) in [
        (Some("evil.com".to_string()), 403),
        (None, 403),
        (Some(format!("localhost:{port}")), 200),
        (Some("127.0.0.1".to_string()), 200),
        (Some("localhost".to_string()), 200),
        (Some(format!("127.0.0.1:{}", port + 1)), 403),
    ] {
        let mut c = RawConn::connect(port);
        let host_line = host.as_ref().map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
        // HTTP/1.0 lets the request omit Host entirely.
        c.send(&format!("GET /health HTTP/1.0\r\n{host_line}\r\n"));
        let r = c.read_response();
        assert_eq!(r.status, expect, "{host:?}");
        if expect == 403 {
            assert_eq!(r.body["code"], "INVALID_HOST");
            assert_eq!(r.body["message"], "Forbidden: invalid host header");
        }
    }
});

// ACC-042.
daemon_test!(
    cors_allows_only_known_origins,
    Opts { config: vec![("security", "cors_origins = [\"https://app.example\"]".into())], ..Opts::default() },
    |d| {
        let preflight = |origin: &'static str| {
            d.http
                .request(reqwest::Method::OPTIONS, d.url("/v1/admin/status"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "PATCH")
                .send()
        };
        let r = preflight("http://evil.com").await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
        for origin in ["tauri://localhost", "https://app.example"] {
            let r = preflight(origin).await.unwrap();
            assert_eq!(r.status(), 204);
            assert_eq!(r.headers()["access-control-allow-origin"], origin);
            assert!(r.headers()["access-control-allow-methods"].to_str().unwrap().contains("PATCH"));
            assert_eq!(r.headers()["access-control-max-age"], "600");
        }
        let own = format!("http://127.0.0.1:{}", d.port);
        let r = d.http.get(d.url("/health")).header("Origin", own.clone()).send().await.unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], own.as_str());
        assert!(r.headers()["access-control-expose-headers"].to_str().unwrap().contains("X-RateLimit-Remaining"));
    }
);

// ACC-043.
daemon_test!(
    the_global_rate_limit_refuses_with_headers,
    // AutoStop left as seeded: the harness's rule calls would spend this test's request budget.
    Opts { config: vec![("security", "rate_limit_global_ip_rpm = 100".into())], autostop: true, ..Opts::default() },
    |d| {
        for i in 0..100 {
            let r = d.get("/health").await;
            assert_eq!(r.status(), 200, "request {i}");
            assert_eq!(r.headers()["x-ratelimit-remaining"], (99 - i).to_string().as_str());
        }
        let started = std::time::Instant::now();
        let r = d.get("/health").await;
        assert_eq!(r.status(), 429);
        // Issue #22: the refusal is held back a second, so a flood cannot loop on it.
        assert!(started.elapsed() >= std::time::Duration::from_millis(900), "{:?}", started.elapsed());
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(r.headers()["x-ratelimit-limit"], "100");
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
        assert!(r.headers().get("x-ratelimit-reset").is_some());
        let h = r.headers().clone();
        let body = json_of(r).await;
        assert_envelope(&h, &body, "RATE_LIMIT_EXCEEDED");
        assert_eq!(body["retryable"], true);
        assert_eq!(body["details"]["stage"], "global");
        assert_eq!(body["details"]["window"], "1m");
        assert_eq!(body["details"]["limit"], 100);
        // A refused request does not count; the refusal is audited (once per minute).
        d.terminate();
        let audited = d.store().audit_by_event("RATE_LIMIT_EXCEEDED").unwrap();
        assert_eq!(audited.len(), 1);
    }
);

// ACC-044: sends have their own per-session bucket (`rate_limit_tx_rpm`, default 10). The
// limiter runs before the body is read, so it counts every send whatever its outcome (here
// each is refused by validation: amount 0), and other routes of the same session are not
// held back by it.
daemon_test!(the_eleventh_send_in_a_minute_is_refused_for_that_session, |d| {
    let agent = d.create_agent(json!({})).await;
    let session = d.create_session(agent["id"].as_str().unwrap(), json!({})).await;
    let token = session["token"].as_str().unwrap();
    let body = json!({"to": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "amount": "0"});
    for i in 0..10 {
        let (st, v) = d.bearer("POST", "/v1/transactions/send", token, Some(body.clone())).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("VALIDATION_ERROR")), "send {i}: {v}");
    }
    let (st, v) = d.bearer("POST", "/v1/transactions/send", token, Some(body.clone())).await;
    assert_eq!(
        (st, v["code"].as_str(), v["details"]["stage"].as_str()),
        (429, Some("RATE_LIMIT_EXCEEDED"), Some("session")),
        "{v}"
    );
    assert_eq!(v["details"]["limit"], 10, "{v}");
    let (st, v) = d.bearer("GET", "/v1/wallet/address", token, None).await;
    assert_eq!((st, v["address"].as_str()), (200, agent["address"].as_str()), "{v}");
    // Another session of the same agent has its own bucket.
    let other = d.create_session(agent["id"].as_str().unwrap(), json!({})).await;
    let (st, v) = d.bearer("POST", "/v1/transactions/send", other["token"].as_str().unwrap(), Some(body)).await;
    assert_eq!(st, 400, "{v}");
});

// ACC-045.
daemon_test!(bodies_over_256_kib_get_413, |d| {
    let big = "x".repeat(300_000);
    let r = d
        .http
        .post(d.url("/v1/admin/shutdown"))
        .header("X-Master-Password", d.password())
        .header("Content-Type", "application/json")
        .body(format!("{{\"pad\":\"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let h = r.headers().clone();
    assert_envelope(&h, &json_of(r).await, "PAYLOAD_TOO_LARGE");
    assert_eq!(d.get("/health").await.status(), 200, "the oversized shutdown request did nothing");
    // Auth comes before the body limit: without a password the answer is 401.
    let r = d
        .http
        .post(d.url("/v1/admin/shutdown"))
        .header("Content-Type", "application/json")
        .body(format!("{{\"p\":\"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
});

// Issue #22: a refusal sent before the body was read says `Connection: close`, so a client
// that reuses its connection without probing the socket first (Python's `http.client`) opens a
// new one instead of writing into a closed socket; an answer after the body was read keeps the
// connection alive.
daemon_test!(refusals_before_the_body_is_read_close_the_connection_and_say_so, |d| {
    let script = r#"
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
big = json.dumps({"to": "0x" + "1" * 40, "amount": "1", "memo": "x" * 200000}).encode()
out = []
def ask(method, path, body=None, headers={}):
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    r.read()
    out.append([r.status, r.getheader("Connection")])
ask("POST", "/v1/transactions/send", big, {"Authorization": "Bearer a.b.c", "Content-Type": "application/json"})
ask("GET", "/health")
ask("POST", "/v1/admin/shutdown", b"{}", {"Content-Type": "application/json"})
ask("POST", "/v1/agents", b"{\"chain\": \"bitcoin\"}", {"X-Master-Password": sys.argv[2], "Content-Type": "application/json"})
ask("GET", "/health")
print(json.dumps(out))
"#;
    let out = std::process::Command::new(crate::support::owner::python())
        .args(["-c", script, &d.port.to_string(), d.password()])
        .output()
        .unwrap();
    assert!(out.status.success(), "http.client failed: {}", crate::support::text(&out.stderr));
    let answers: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answers,
        json!([
            [401, "close"],
            [200, null],
            // Even two unread bytes: the daemon does not guess whether they arrived.
            [401, "close"],
            // Read to the end, then refused: the connection stays open.
            [400, null],
            [200, null]
        ]),
        "{answers}"
    );
});

/// A connection from `ip` (a loopback alias) to the daemon.
async fn connect_from(ip: &str, port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap()
}

/// Reads until the peer closes (or `within` passes): what it sent, and whether it closed.
async fn read_to_close(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

// Issue #22, connection hygiene: a cap per client IP (the one past it gets 503
// TOO_MANY_CONNECTIONS with Retry-After at once, while another address is served), a header
// timeout that closes slow senders and idle keep-alive connections alike, and a body timeout
// (408 REQUEST_TIMEOUT).
daemon_test!(
    connection_caps_and_timeouts_hold_off_slow_and_greedy_clients,
    Opts {
        config: vec![(
            "daemon",
            "max_connections = 64\nmax_connections_per_ip = 20\nheader_timeout = 2\nbody_timeout = 2".into()
        )],
        ..Opts::default()
    },
    |d| {
        use tokio::io::AsyncWriteExt;
        let secs = std::time::Duration::from_secs;
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(connect_from("127.0.0.1", d.port).await);
        }
        // The 21st from the same address: refused before it sends anything.
        let mut over = connect_from("127.0.0.1", d.port).await;
        let (answer, closed) = read_to_close(&mut over, secs(5)).await;
        assert!(closed, "the refused connection is closed: {answer}");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("retry-after: 5") && lower.contains("connection: close"), "{answer}");
        assert!(answer.contains("\"code\":\"TOO_MANY_CONNECTIONS\""), "{answer}");
        // Another address is served meanwhile.
        let mut other = connect_from("127.0.0.2", d.port).await;
        let started = std::time::Instant::now();
        other.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
        let (answer, _) = read_to_close(&mut other, secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(started.elapsed() < secs(1), "served in {:?}", started.elapsed());
        // A slow header: one byte now and then never completes a request head; it is closed
        // with the idle ones once the header timeout (2 s) passes — measured with a margin.
        let mut slow = connect_from("127.0.0.3", d.port).await;
        slow.write_all(b"GET /hea").await.unwrap();
        let started = std::time::Instant::now();
        for c in held.iter_mut().chain(std::iter::once(&mut slow)) {
            let (answer, closed) = read_to_close(c, secs(8)).await;
            assert!(closed, "closed by the header timeout");
            assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
        }
        let took = started.elapsed();
        assert!(took >= secs(1) && took < secs(8), "closed after {took:?}");
        // The slots are free again.
        let mut again = connect_from("127.0.0.1", d.port).await;
        again.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
        assert!(read_to_close(&mut again, secs(5)).await.0.starts_with("HTTP/1.1 200"));
        // A body that stops arriving: 408 REQUEST_TIMEOUT after body_timeout, and the
        // connection closes.
        let mut body = connect_from("127.0.0.1", d.port).await;
        let head = format!(
            "POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Master-Password: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\"",
            d.password()
        );
        body.write_all(head.as_bytes()).await.unwrap();
        let (answer, closed) = read_to_close(&mut body, secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"REQUEST_TIMEOUT\""), "{answer}");
        assert!(closed);
        assert_eq!(d.master("GET", "/v1/agents", None).await.1["agents"].as_array().map(Vec::len), Some(0));
    }
);

// ACC-227.
daemon_test!(
    garbage_bodies_and_wrong_content_types_are_validation_errors,
    Opts { dev: true, ..Opts::default() },
    |d| {
        let post = |body: &'static str, ct: &'static str| {
            d.http
                .post(d.url("/v1/admin/dev/clock"))
                .header("X-Master-Password", "waiaas-dev")
                .header("Content-Type", ct)
                .body(body)
                .send()
        };
        for (body, ct, issue) in [
            ("{not json", "application/json", "invalid_json"),
            ("{\"advanceSeconds\": 10, \"extra\": 1}", "application/json", "unrecognized_keys"),
            ("{\"advanceSeconds\": \"ten\"}", "application/json", "invalid_type"),
            ("{}", "application/json", "required"),
            ("{\"advanceSeconds\": 10}", "text/plain", "invalid_content_type"),
            ("\u{0}\u{1}\u{2}garbage", "application/json", "invalid_json"),
        ] {
            let r = post(body, ct).await.unwrap();
            assert_eq!(r.status(), 400, "{body}");
            let h = r.headers().clone();
            let v = json_of(r).await;
            assert_envelope(&h, &v, "VALIDATION_ERROR");
            let issue0 = &v["details"]["issues"][0];
            assert_eq!(issue0["code"], issue, "{body}: {v}");
            assert!(issue0["path"].is_string() && issue0["message"].is_string());
        }
        assert_eq!(d.get("/health").await.status(), 200, "no panic took the daemon down");
    }
);

daemon_test!(master_routes_need_the_master_password, |d| {
    let r = d.get("/v1/admin/status").await;
    assert_eq!(r.status(), 401);
    let h = r.headers().clone();
    assert_envelope(&h, &json_of(r).await, "MASTER_PASSWORD_REQUIRED");
    let r = d.http.get(d.url("/v1/admin/status")).header("X-Master-Password", "not the password").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["code"], "INVALID_MASTER_PASSWORD");
    let r = d.admin_get("/v1/admin/status").await;
    assert_eq!(r.status(), 200);
    let s = json_of(r).await;
    assert_eq!(s["daemon"]["pid"], d.pid());
    assert_eq!(s["database"]["schemaVersion"], waiaas_storage::SCHEMA_VERSION);
    assert!(s["workers"]["session-cleanup"].is_object());
});

daemon_test!(nonces_are_fresh_hex_with_an_expiry, |d| {
    let a = json_of(d.get("/v1/nonce").await).await;
    let b = json_of(d.get("/v1/auth/nonce").await).await;
    for v in [&a, &b] {
        let n = v["nonce"].as_str().unwrap();
        assert!(n.len() == 32 && n.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{n}");
        let exp = chrono::DateTime::parse_from_rfc3339(v["expiresAt"].as_str().unwrap()).unwrap().timestamp();
        let now = chrono::Utc::now().timestamp();
        assert!((now + 290..=now + 301).contains(&exp));
    }
    assert_ne!(a["nonce"], b["nonce"]);
});

daemon_test!(the_openapi_document_lists_every_route_and_scheme, |d| {
    let doc = json_of(d.get("/doc").await).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["info"]["title"], "WAIaaS");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(["masterPassword", "sessionToken", "ownerSignature"].iter().all(|s| schemes.contains_key(*s)));
    let ops: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert!(ops >= 9);
    assert_eq!(doc["paths"]["/v1/admin/status"]["get"]["x-waiaas-kill-switch-allowed"], true);
});

/// What the daemon has written: audit entries (the verified chain's length), agents, sessions,
/// and the agent's transactions.
async fn written(d: &crate::support::TestDaemon, token: &str) -> Vec<(&'static str, u64)> {
    let (_, audit) = d.master("GET", "/v1/admin/audit-log/verify", None).await;
    let (_, agents) = d.master("GET", "/v1/agents", None).await;
    let (_, sessions) = d.master("GET", "/v1/sessions", None).await;
    let (_, txs) = d.bearer("GET", "/v1/transactions?limit=100", token, None).await;
    let len = |v: &Value| {
        // A listing is an object with one array (`agents`, `sessions`, `items`) or an array.
        let items = v.as_object().and_then(|o| o.values().find(|x| x.is_array())).unwrap_or(v);
        items.as_array().map_or(u64::MAX, |a| a.len() as u64)
    };
    vec![
        ("audit entries", audit["checkedEntries"].as_u64().expect("checkedEntries")),
        ("agents", len(&agents)),
        ("sessions", len(&sessions)),
        ("transactions", len(&txs)),
    ]
}

// Issue #22, bad input stays bad input: the inputs the fuzz targets cover, as they arrive over
// HTTP — malformed session tokens, send bodies, owner payloads and SIWE messages, key files
// with crafted KDF costs — each get their documented error code, and nothing is written: the
// audit chain, the agents, the sessions and the transactions are exactly as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_documented_error_and_writes_nothing() {
    use base64::Engine;

    use crate::support::owner::{Msg, evm_sign};
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let anvil = crate::support::nodes::Anvil::start();
    let d = crate::support::TestDaemon::start(Opts {
        config: vec![("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", anvil.url))],
        ..Opts::default()
    })
    .await;
    const OWNER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    const OWNER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let a = d.create_agent(json!({"chain": "ethereum", "name": "bad-input", "owner": OWNER})).await;
    let aid = a["id"].as_str().unwrap().to_string();
    let token = d.create_session(&aid, json!({})).await["token"].as_str().unwrap().to_string();
    let before = written(&d, &token).await;
    let mut answers: Vec<(String, u16, String)> = Vec::new();
    let mut note = |what: &str, (status, v): (u16, Value)| {
        answers.push((what.to_string(), status, v["code"].as_str().unwrap_or("-").to_string()));
    };

    // Session tokens.
    let none =
        format!("wai_sess_{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(r#"{"iss":"waiaas","exp":9999999999}"#))
            + "x";
    for (what, t) in
        [("token: garbage", "wai_sess_x"), ("token: three parts", "wai_sess_a.b.c"), ("token: alg none", &none)]
    {
        note(what, d.bearer("GET", "/v1/wallet/address", t, None).await);
    }
    // Send bodies (raw bytes, as a client could send them).
    for (what, body) in [
        ("send: not JSON", "{\"to\": "),
        ("send: unknown field", r#"{"to":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","amount":"1","fee":"9"}"#),
        ("send: bad address", r#"{"to":"0x7099","amount":"1"}"#),
        ("send: negative amount", r#"{"to":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","amount":"-1"}"#),
        ("send: batch on EVM", r#"{"type":"BATCH","instructions":[{},{}]}"#),
        ("send: long memo", &format!(r#"{{"to":"{OWNER}","amount":"1","memo":"{}"}}"#, "m".repeat(201))),
    ] {
        let r = d
            .http
            .post(d.url("/v1/transactions/send"))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        note(what, (status, r.json().await.unwrap_or(Value::Null)));
    }
    // Owner payloads and SIWE messages, on the owner-verification route.
    let path = format!("/v1/owner/agents/{aid}/verify");
    let target = format!("agent:{aid}");
    note("owner: not base64", d.bearer("POST", &path, "%%%not-base64%%%", Some(json!({}))).await);
    note("owner: not JSON", d.bearer("POST", &path, &b64("{\"chain\":"), Some(json!({}))).await);
    let m = Msg::new(&d, "ethereum", OWNER, "verify_owner", &target, "31337").await;
    let mut p: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(m.evm(OWNER_KEY)).unwrap())
            .unwrap();
    p["timestamp"] = json!("yesterday");
    note("owner: bad timestamp", d.bearer("POST", &path, &b64(&p.to_string()), Some(json!({}))).await);
    let mut unknown = m.clone();
    unknown.nonce = "0123456789abcdef0123456789abcdef".into();
    note("owner: unknown nonce", d.bearer("POST", &path, &unknown.evm(OWNER_KEY), Some(json!({}))).await);
    // A fresh nonce each: a malformed message (a trailing line), and a signature by another key.
    let m = Msg::new(&d, "ethereum", OWNER, "verify_owner", &target, "31337").await;
    let mut p: Value = serde_json::from_str(
        &String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(m.evm(OWNER_KEY)).unwrap()).unwrap(),
    )
    .unwrap();
    p["message"] = json!(format!("{}\n", m.text()));
    p["signature"] = json!(evm_sign(OWNER_KEY, &format!("{}\n", m.text())));
    note("owner: malformed SIWE", d.bearer("POST", &path, &b64(&p.to_string()), Some(json!({}))).await);
    let m = Msg::new(&d, "ethereum", OWNER, "verify_owner", &target, "31337").await;
    let other_key = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
    note("owner: another signer", d.bearer("POST", &path, &m.evm(other_key), Some(json!({}))).await);
    // Key files: crafted KDF costs, a wrong format, a short Solana keypair.
    let file = json!({"format": "waiaas-keystore", "version": 1, "kdf": {"memoryCost": 4_000_000_000u64}});
    let v3 =
        json!({"version": 3, "crypto": {"kdf": "scrypt", "kdfparams": {"n": 1u64 << 30, "r": 8, "p": 1, "dklen": 32}}});
    for (what, keystore) in [
        ("import: malformed key file", file),
        ("import: scrypt 128 GiB", v3),
        ("import: short keypair", json!([1, 2, 3])),
    ] {
        note(what, d.master("POST", "/v1/agents/import", Some(json!({"keystore": keystore, "password": "x"}))).await);
    }

    let expected: Vec<(&str, u16, &str)> = vec![
        // Not `wai_sess_` and three parts: no token at all (04-auth.md §3.1).
        ("token: garbage", 401, "AUTH_TOKEN_MISSING"),
        ("token: three parts", 401, "AUTH_TOKEN_INVALID"),
        ("token: alg none", 401, "AUTH_TOKEN_INVALID"),
        ("send: not JSON", 400, "VALIDATION_ERROR"),
        ("send: unknown field", 400, "VALIDATION_ERROR"),
        ("send: bad address", 400, "VALIDATION_ERROR"),
        ("send: negative amount", 400, "VALIDATION_ERROR"),
        ("send: batch on EVM", 400, "BATCH_NOT_SUPPORTED"),
        ("send: long memo", 400, "VALIDATION_ERROR"),
        ("owner: not base64", 401, "INVALID_SIGNATURE"),
        ("owner: not JSON", 401, "INVALID_SIGNATURE"),
        ("owner: bad timestamp", 401, "INVALID_SIGNATURE"),
        ("owner: unknown nonce", 401, "INVALID_NONCE"),
        ("owner: malformed SIWE", 401, "INVALID_SIGNATURE"),
        ("owner: another signer", 401, "INVALID_SIGNATURE"),
        ("import: malformed key file", 400, "KEYSTORE_IMPORT_FAILED"),
        ("import: scrypt 128 GiB", 400, "KEYSTORE_IMPORT_FAILED"),
        ("import: short keypair", 400, "KEYSTORE_IMPORT_FAILED"),
    ];
    let got: Vec<(&str, u16, &str)> = answers.iter().map(|(w, s, c)| (w.as_str(), *s, c.as_str())).collect();
    assert_eq!(got, expected);
    // Each code and status is the one fixtures/api/error-codes.tsv (09-api.md §7) documents.
    let table = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/api/error-codes.tsv")).unwrap();
    let documented: std::collections::HashMap<&str, u16> = table
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?, f.next()?.parse().ok()?))
        })
        .collect();
    for (what, status, code) in &expected {
        assert_eq!(documented.get(code), Some(status), "{what}: {code} is documented with another status");
    }
    assert_eq!(written(&d, &token).await, before, "bad input wrote something");
    assert!(before.iter().all(|(_, n)| *n != u64::MAX), "the counts are real: {before:?}");
    assert!(before[..3].iter().all(|(_, n)| *n > 0), "the setup wrote: {before:?}");
}
