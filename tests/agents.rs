//! Agents through the API and the CLI (09-api.md §6.3, 01-daemon.md §4.6–4.7, §4.9, §4.12;
//! 03-keys.md §4, §7, §11.7): keystore and Ledger (fake device) agents, export/import, the
//! lifecycle, and the agent/session/secret commands and `init --quickstart`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{Value, json};
use waiaas_backends::keystore::import::ImportSource;
use waiaas_backends::ledger::fake::{Behavior, FakeDevice, OpenApp};

use crate::support::api::id;
use crate::support::nodes::Anvil;
use crate::support::owner::cast;
use crate::support::{Opts, TestDaemon, cli, run, text};

fn dev() -> Opts {
    Opts { dev: true, ..Opts::default() }
}

fn hex_len(v: &Value, n: usize) -> bool {
    v.as_str().is_some_and(|s| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit()))
}

// ACC-058, ACC-059 and the creation defaults and validation of 09-api.md §6.3.
// ACC-230, ACC-231, ACC-232.
daemon_test!(
    agent_creation_defaults_validation_and_key_file,
    Opts {
        dev: true,
        config: vec![("rpc", "ethereum_testnet = \"http://127.0.0.1:1\"\nsolana_testnet = \"\"".into())],
        ..Opts::default()
    },
    |d| {
        let a = d.create_agent(json!({})).await;
        assert_eq!(
            (
                a["name"].as_str(),
                a["chain"].as_str(),
                a["network"].as_str(),
                a["backend"].as_str(),
                a["status"].as_str()
            ),
            (Some("agent-01"), Some("solana"), Some("devnet"), Some("keystore"), Some("ACTIVE"))
        );
        assert!(a["chainId"].is_null() && a["derivationPath"].is_null() && a["ownerState"] == "NONE");
        let path = d.path().join(format!("keystore/{}.json", id(&a)));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let master: Value =
            serde_json::from_slice(&std::fs::read(d.path().join("keystore/master.json")).unwrap()).unwrap();
        assert_eq!((file["format"].as_str(), file["version"].as_u64()), (Some("waiaas-keystore"), Some(1)));
        assert!(hex_len(&file["cipher"]["nonce"], 24) && hex_len(&file["cipher"]["tag"], 32));
        assert!(hex_len(&file["hkdf"]["salt"], 64) && hex_len(&file["cipher"]["ciphertext"], 128));
        assert_eq!(file["kdf"], master["kdf"]);
        assert_eq!(file["publicKey"], a["address"]);
        assert_eq!(d.create_agent(json!({})).await["name"], "agent-02");

        let bad = [
            (json!({"name": "AGENT-01"}), 409, "DUPLICATE_RESOURCE"),
            (json!({"name": "01a20720-35f1-71b6-ad39-b122ba7f419b"}), 400, "VALIDATION_ERROR"),
            (json!({"name": "x".repeat(101)}), 400, "VALIDATION_ERROR"),
            (json!({"chain": "bitcoin"}), 400, "VALIDATION_ERROR"),
            (json!({"chain": "ethereum", "network": "devnet"}), 400, "VALIDATION_ERROR"),
            (json!({"derivationPath": "44'/501'/0'/0'"}), 400, "VALIDATION_ERROR"),
            (
                json!({"owner": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "ownerAddress": "other"}),
                400,
                "VALIDATION_ERROR",
            ),
            (json!({"owner": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"}), 400, "VALIDATION_ERROR"),
            (json!({"backend": "hsm"}), 400, "VALIDATION_ERROR"),
            (json!({"colour": "red"}), 400, "VALIDATION_ERROR"),
            (json!({"network": "testnet"}), 400, "CHAIN_NOT_SUPPORTED"),
            (json!({"chain": "ethereum"}), 503, "ADAPTER_NOT_AVAILABLE"),
        ];
        for (body, status, code) in bad {
            let (st, v) = d.master("POST", "/v1/agents", Some(body.clone())).await;
            assert_eq!((st, v["code"].as_str()), (status, Some(code)), "{body}: {v}");
            if code == "VALIDATION_ERROR" && body.get("chain").is_some() && body["chain"] == "bitcoin" {
                assert!(
                    v["details"]["issues"][0]["message"]
                        .as_str()
                        .unwrap()
                        .contains("Unsupported chain 'bitcoin'. Supported: solana, ethereum.")
                );
            }
        }
        let (_, list) = d.master("GET", "/v1/agents", None).await;
        assert_eq!(list["agents"].as_array().unwrap().len(), 2, "no failed creation left a row");
        let files = std::fs::read_dir(d.path().join("keystore"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json"))
            .count();
        assert_eq!(files, 3, "master.json + two key files");
    }
);

// The operator lifecycle, ACC-067 (termination deletes the key file).
// ACC-233.
daemon_test!(agent_lifecycle_from_creation_to_termination, dev(), |d| {
    let a = d.create_agent(json!({"name": "alpha"})).await;
    let aid = id(&a);
    let s = d.create_session(&aid, json!({})).await;
    let (_, list) = d.master("GET", "/v1/agents", None).await;
    assert_eq!(
        (list["agents"][0]["sessionCount"].as_u64(), list["agents"][0]["totalTxCount"].as_u64()),
        (Some(1), Some(0))
    );
    let (st, info) = d.master("GET", &format!("/v1/agents/{aid}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(info["activeSessions"].as_array().unwrap().len(), 1);
    assert_eq!(info["recentTransactions"], json!([]));
    let policies = info["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1, "the seeded Solana SPENDING_LIMIT applies, the Ethereum one does not: {policies:?}");
    assert_eq!((policies[0]["level"].as_str(), policies[0]["effective"].as_bool()), (Some("chain"), Some(true)));

    let b = d.create_agent(json!({"name": "beta"})).await;
    let (st, v) = d.master("PATCH", &format!("/v1/agents/{aid}"), Some(json!({"name": "BETA"}))).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("DUPLICATE_RESOURCE")));
    let (st, v) = d.master("PATCH", &format!("/v1/agents/{aid}"), Some(json!({"name": "gamma"}))).await;
    assert_eq!((st, v["name"].as_str()), (200, Some("gamma")));

    let (st, v) =
        d.master("POST", &format!("/v1/agents/{aid}/suspend"), Some(json!({"reason": "odd behaviour"}))).await;
    assert_eq!(
        (st, v["status"].as_str(), v["suspensionReason"].as_str()),
        (200, Some("SUSPENDED"), Some("manual: odd behaviour"))
    );
    let (st, v) = d.master("POST", &format!("/v1/agents/{aid}/suspend"), Some(json!({}))).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("AGENT_SUSPENDED")));
    let (st, v) =
        d.master("POST", &format!("/v1/agents/{aid}/suspend"), Some(json!({"reason": "x".repeat(501)}))).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = d.master("POST", &format!("/v1/agents/{aid}/resume"), None).await;
    assert_eq!((st, v["status"].as_str(), v["suspendedAt"].is_null()), (200, Some("ACTIVE"), true));
    let (st, v) = d.master("POST", &format!("/v1/agents/{aid}/resume"), None).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("INVALID_STATE_TRANSITION")));

    let key_file = d.path().join(format!("keystore/{aid}.json"));
    assert!(key_file.exists());
    let (st, v) = d.master("DELETE", &format!("/v1/agents/{aid}"), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["sessionsRevoked"].as_u64(), v["transactionsCancelled"].as_u64()),
        (Some("TERMINATED"), Some(1), Some(0))
    );
    assert!(!key_file.exists(), "the key file is deleted");
    let (st, v) = d.bearer("GET", "/v1/wallet/address", s["token"].as_str().unwrap(), None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("SESSION_REVOKED")));
    for (m, p, body) in [
        ("DELETE", format!("/v1/agents/{aid}"), None),
        ("PATCH", format!("/v1/agents/{aid}"), Some(json!({"name": "delta"}))),
        ("POST", format!("/v1/agents/{aid}/suspend"), Some(json!({}))),
    ] {
        let (st, v) = d.master(m, &p, body).await;
        assert_eq!((st, v["code"].as_str()), (410, Some("AGENT_TERMINATED")), "{m} {p}");
    }
    let (st, v) = d.master("GET", &format!("/v1/agents/{aid}"), None).await;
    assert_eq!((st, v["status"].as_str(), v["terminatedAt"].is_string()), (200, Some("TERMINATED"), true));
    // The name is free again; unknown ids are 404.
    assert_eq!(d.create_agent(json!({"name": "gamma"})).await["name"], "gamma");
    let (st, v) = d.master("GET", "/v1/agents/not-a-uuid", None).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("AGENT_NOT_FOUND")));
    let _ = b;
});

// ACC-070, ACC-071 and the import formats of 03-keys.md §7.
daemon_test!(export_and_import_move_keys_between_agents, dev(), |d| {
    let a = d.create_agent(json!({"name": "exported"})).await;
    let aid = id(&a);
    let (st, v) = d.master("POST", &format!("/v1/agents/{aid}/export"), Some(json!({"password": "short"}))).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) =
        d.master("POST", &format!("/v1/agents/{aid}/export"), Some(json!({"password": "export password 1"}))).await;
    assert_eq!(st, 200, "{v}");
    let file = v["keystore"].clone();
    assert_eq!((file["format"].as_str(), file["version"].as_u64()), (Some("waiaas-keystore"), Some(1)));
    assert!(file["metadata"]["exportedAt"].is_string());
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(d.path().join(format!("keystore/{aid}.json"))).unwrap()).unwrap();
    assert_ne!(file["cipher"]["nonce"], on_disk["cipher"]["nonce"]);
    assert_ne!(file["hkdf"]["salt"], on_disk["hkdf"]["salt"]);
    assert_ne!(file["kdf"]["salt"], on_disk["kdf"]["salt"], "a fresh Argon2id block for the export password");
    // Only the export password opens it.
    let opened = ImportSource::detect(&file).unwrap().decrypt(b"export password 1").unwrap();
    assert_eq!(opened.secret.public_key().unwrap(), a["address"].as_str().unwrap());
    assert!(ImportSource::detect(&file).unwrap().decrypt(d.password().as_bytes()).is_err());
    let rows = d.audit("AGENT_KEY_EXPORTED").await;
    assert_eq!((rows.len(), rows[0]["severity"].as_str()), (1, Some("warning")));

    let import = |body: Value| d.master("POST", "/v1/agents/import", Some(body));
    let (st, v) = import(json!({"keystore": file, "password": "export password 1", "name": "copy"})).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("DUPLICATE_RESOURCE")), "the key is in use");
    let (st, v) = import(json!({"keystore": file, "password": "wrong password 99", "name": "copy"})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("KEYSTORE_DECRYPT_FAILED")));
    let mut v2 = file.clone();
    v2["version"] = json!(2);
    let (st, v) = import(json!({"keystore": v2, "password": "export password 1"})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("UNSUPPORTED_KEYSTORE_VERSION")));
    let (st, v) = import(json!({"keystore": {"hello": 1}, "password": "x"})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("KEYSTORE_IMPORT_FAILED")));

    assert_eq!(d.master("DELETE", &format!("/v1/agents/{aid}"), None).await.0, 200);
    let (st, v) = import(json!({"keystore": file, "password": "export password 1", "name": "copy"})).await;
    assert_eq!(st, 201, "{v}");
    assert_ne!(v["id"], a["id"]);
    assert_eq!((v["address"].clone(), v["name"].as_str()), (a["address"].clone(), Some("copy")));
    assert!(d.path().join(format!("keystore/{}.json", id(&v))).exists());
    assert_eq!(d.audit("AGENT_KEY_IMPORTED").await.len(), 1);
    // The imported key signs for the new agent: export it again with another password.
    let (st, _) = d
        .master("POST", &format!("/v1/agents/{}/export", id(&v)), Some(json!({"password": "second password 2"})))
        .await;
    assert_eq!(st, 200);

    // A Solana CLI keypair from solders.
    let out = std::process::Command::new(crate::support::owner::python())
        .args(["-c", "import json; from solders.keypair import Keypair; k = Keypair(); print(json.dumps(list(bytes(k)))); print(k.pubkey())"])
        .output()
        .unwrap();
    let out = text(&out.stdout);
    let mut lines = out.lines();
    let keypair: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let (st, v) = import(json!({"keystore": keypair, "password": ""})).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["address"], lines.next().unwrap().trim());
});

// ACC-079 and 03-keys.md §11.7: Ledger agents read their key from the device (fake device over
// the Speculos TCP framing); EVM agents take the node's chain id; a cast V3 keystore imports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_and_ledger_agents_bind_to_node_and_device() {
    let anvil = Anvil::start();
    let fake = FakeDevice::default();
    let server = fake.serve_tcp().unwrap();
    let d = TestDaemon::start(Opts {
        dev: true,
        config: vec![
            ("rpc", format!("ethereum_testnet = \"{}\"\nethereum_testnet_chain_id = 31337", anvil.url)),
            ("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"\nconfirm_timeout = 10", server.address())),
        ],
        ..Opts::default()
    })
    .await;
    let e = d.create_agent(json!({"chain": "ethereum"})).await;
    assert_eq!((e["chainId"].as_u64(), e["network"].as_str()), (Some(31337), Some("testnet")));

    let l = d.create_agent(json!({"chain": "ethereum", "backend": "ledger"})).await;
    assert_eq!(l["address"], fake.eth_address("44'/60'/0'/0/0"));
    assert_eq!((l["derivationPath"].as_str(), l["backend"].as_str()), (Some("44'/60'/0'/0/0"), Some("ledger")));
    let gets: Vec<Vec<u8>> = fake.log().into_iter().map(|(_, a)| a).filter(|a| a[1] == 0x02).collect();
    assert_eq!(gets[0][2], 0x00, "read without display");
    let golden: Value = serde_json::from_slice(
        &std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ledger/golden.json")).unwrap(),
    )
    .unwrap();
    let recorded = serde_json::to_string(&golden).unwrap();
    assert!(recorded.contains(&hex::encode(&gets[0])), "the address APDU equals the recorded official-client bytes");
    let s = d.create_agent(json!({"backend": "ledger"})).await;
    assert_eq!(s["address"], fake.solana_pubkey("44'/501'/0'/0'"));
    assert_eq!(s["derivationPath"], "44'/501'/0'/0'");
    let sol_get: Vec<u8> = fake.log().into_iter().map(|(_, a)| a).find(|a| a[1] == 0x05).unwrap();
    assert!(recorded.contains(&hex::encode(&sol_get)));
    // Same key again: 409; export: 400; wrong app / no device: 503.
    let (st, v) = d.master("POST", "/v1/agents", Some(json!({"chain": "ethereum", "backend": "ledger"}))).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("DUPLICATE_RESOURCE")));
    let (st, v) = d
        .master("POST", &format!("/v1/agents/{}/export", id(&l)), Some(json!({"password": "export password 1"})))
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("BACKEND_OPERATION_UNSUPPORTED")));
    let other = json!({"chain": "ethereum", "backend": "ledger", "derivationPath": "44'/60'/0'/0/1"});
    fake.set_behavior(Behavior::WrongApp);
    let (st, v) = d.master("POST", "/v1/agents", Some(other.clone())).await;
    assert_eq!((st, v["code"].as_str()), (503, Some("SIGNER_UNAVAILABLE")), "{v}");
    fake.set_behavior(Behavior::Approve { delay: Duration::ZERO });
    fake.set_app(OpenApp::Auto);
    drop(server);
    let (st, v) = d.master("POST", "/v1/agents", Some(other)).await;
    assert_eq!((st, v["code"].as_str()), (503, Some("SIGNER_UNAVAILABLE")), "{v}");

    // A V3 keystore written by cast becomes an EVM agent with the address cast reports.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(cast())
        .args(["wallet", "new"])
        .arg(dir.path())
        .args(["--unsafe-password", "v3 password 1234"])
        .output()
        .unwrap();
    let address = text(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Address:").map(|a| a.trim().to_string()))
        .unwrap();
    let path = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let v3: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let (st, v) =
        d.master("POST", "/v1/agents/import", Some(json!({"keystore": v3, "password": "v3 password 1234"}))).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["address"].as_str(), v["chain"].as_str(), v["chainId"].as_u64()),
        (Some(address.as_str()), Some("ethereum"), Some(31337))
    );
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "exit {:?}\n{}\n{}", out.status.code(), text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

// 01-daemon.md §4.6, §4.7, §4.9 (secret rotate) and the exit codes of §4.1.
// ACC-032, ACC-033.
daemon_test!(agent_session_and_secret_commands, |d| {
    let cmd = |args: &[&str]| {
        let mut c = d.cli();
        c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(args);
        run(c, Duration::from_secs(60))
    };
    let created: Value = serde_json::from_str(&ok(&cmd(&[
        "agent",
        "create",
        "--name",
        "bot",
        "--network",
        "devnet",
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(created["name"], "bot");
    assert!(ok(&cmd(&["agent", "list"])).contains("bot"));
    let info = ok(&cmd(&["agent", "info", "bot"]));
    assert!(
        info.contains(created["address"].as_str().unwrap()) && info.contains("waiaas agent set-owner bot <address>")
    );

    let out = cmd(&["session", "create"]);
    assert_eq!((out.status.code(), text(&out.stderr).trim()), (Some(1), "Error: --agent <name|id> is required."));
    let out = cmd(&["session", "create", "--agent", "bot", "--expires-in", "100"]);
    assert!(text(&out.stderr).contains("--expires-in must be between 300 (5min) and 604800 (7 days)."));
    let token = ok(&cmd(&["session", "create", "--agent", "bot"])).trim().to_string();
    assert!(token.starts_with("wai_sess_"));
    let env = ok(&cmd(&[
        "session",
        "create",
        "--agent",
        "bot",
        "--output",
        "env",
        "--max-amount",
        "1.5",
        "--allowed-ops",
        "transfer,Token_Transfer",
    ]));
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines.len(), 4);
    for (line, var) in
        lines.iter().zip(["WAIAAS_SESSION_TOKEN", "WAIAAS_AGENT_ID", "WAIAAS_AGENT_NAME", "WAIAAS_SESSION_EXPIRES_AT"])
    {
        assert!(line.starts_with(&format!("export {var}=\"")), "{line}");
    }
    let json: Value = serde_json::from_str(&ok(&cmd(&[
        "session",
        "create",
        "--agent",
        "bot",
        "--output",
        "json",
        "--max-total",
        "0.25",
    ])))
    .unwrap();
    assert_eq!(json["constraints"]["maxTotalAmount"], "250000000", "SOL has 9 decimals");
    let (_, list) = d.master("GET", "/v1/sessions", None).await;
    let with_ops =
        list["sessions"].as_array().unwrap().iter().find(|s| !s["constraints"]["allowedOperations"].is_null()).unwrap();
    assert_eq!(with_ops["constraints"]["maxAmountPerTx"], "1500000000");
    assert_eq!(with_ops["constraints"]["allowedOperations"], json!(["TRANSFER", "TOKEN_TRANSFER"]));
    let listed: Value = serde_json::from_str(&ok(&cmd(&["session", "list", "--agent", "bot"]))).unwrap();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 3);
    let sid = json["sessionId"].as_str().unwrap();
    assert!(ok(&cmd(&["session", "revoke", sid])).contains("revoked"));

    ok(&cmd(&["agent", "suspend", "bot", "--reason", "test"]));
    let (st, _) = d.bearer("GET", "/v1/wallet/address", &token, None).await;
    assert_eq!(st, 409);
    ok(&cmd(&["agent", "resume", "bot"]));
    assert_eq!(d.bearer("GET", "/v1/wallet/address", &token, None).await.0, 200);

    let out = ok(&cmd(&["secret", "rotate"]));
    assert!(
        out.contains("Secret rotated. Previous secret expires at: ")
            && out.contains("Existing sessions will remain valid for 5 minutes.")
    );
    let out = cmd(&["secret", "rotate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("ROTATION_TOO_RECENT"));

    // Export through the CLI writes 0600 and refuses to overwrite; terminate needs --force
    // without a terminal.
    let pw = d.path().join("export-pw");
    std::fs::write(&pw, "export password 1\n").unwrap();
    let out_file = d.path().join("bot-key.json");
    ok(&cmd(&[
        "agent",
        "export",
        "bot",
        "--output",
        out_file.to_str().unwrap(),
        "--export-password-file",
        pw.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777, 0o600);
    let again = cmd(&[
        "agent",
        "export",
        "bot",
        "--output",
        out_file.to_str().unwrap(),
        "--export-password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(!cmd(&["agent", "terminate", "bot"]).status.success());
    ok(&cmd(&["agent", "terminate", "bot", "--force"]));
    let out = cmd(&[
        "agent",
        "import",
        out_file.to_str().unwrap(),
        "--name",
        "bot2",
        "--key-password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(ok(&out).contains(created["address"].as_str().unwrap()));

    // Exit 4 on a wrong password, 3 when the daemon is not there.
    let mut c = d.cli();
    c.env("WAIAAS_MASTER_PASSWORD", "wrong password!!").args(["agent", "list"]);
    assert_eq!(run(c, Duration::from_secs(30)).status.code(), Some(4));
    let mut c = cli(d.path());
    c.env("WAIAAS_DAEMON_PORT", crate::support::free_port().to_string())
        .env("WAIAAS_MASTER_PASSWORD", d.password())
        .args(["agent", "list"]);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cannot connect to WAIaaS daemon"), "{out:?}");
});

// 01-daemon.md §4.12: one command to a running daemon with an agent and a session.
// ACC-037.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_leaves_a_running_daemon_with_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("qs");
    let port = crate::support::free_port();
    let mut c = cli(&data);
    c.env("WAIAAS_DAEMON_PORT", port.to_string()).args(["init", "--quickstart"]);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(
        (out.status.code(), text(&out.stderr).trim()),
        (Some(1), "Error: --chain is required for quickstart mode.")
    );

    let mut c = cli(&data);
    c.env("WAIAAS_DAEMON_PORT", port.to_string()).args([
        "init",
        "--quickstart",
        "--chain",
        "solana",
        "--agent-name",
        "qs-bot",
    ]);
    let out = run(c, Duration::from_secs(120));
    let stdout = ok(&out);
    let stop = || {
        let mut c = cli(&data);
        c.arg("stop");
        run(c, Duration::from_secs(60))
    };
    for step in ["[1/4]", "[2/4]", "[3/4]", "[4/4]", "export WAIAAS_SESSION_TOKEN=\""] {
        assert!(stdout.contains(step), "{step} missing from {stdout}");
    }
    let pw_file = data.join(".master-password");
    assert_eq!(std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&pw_file).unwrap().trim().len(), 32);
    assert!(stdout.contains(&format!("Next time: waiaas start --password-file {}", pw_file.display())));
    let token =
        stdout.lines().find_map(|l| l.strip_prefix("export WAIAAS_SESSION_TOKEN=\"")).unwrap().trim_end_matches('"');
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/wallet/address"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["chain"], "solana");
    assert!(stop().status.success());
}

// Issue #24: what quickstart prints as its next steps runs as printed, one after the other, in
// a non-interactive shell (no TTY, no password in the environment): each exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_next_steps_run_as_printed_in_a_non_tty_shell() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("qs");
    let port = crate::support::free_port();
    let mut c = cli(&data);
    c.env("WAIAAS_DAEMON_PORT", port.to_string()).args(["init", "--quickstart", "--chain", "solana"]);
    let out = run(c, Duration::from_secs(120));
    let stdout = ok(&out);
    let steps: Vec<&str> =
        stdout.lines().skip_while(|l| !l.starts_with("Next steps")).skip(1).filter(|l| !l.is_empty()).collect();
    assert_eq!(steps.len(), 5, "{stdout}");
    // One shell for all of them (the export feeds the curl); each step's status is printed.
    let script: String = steps.iter().map(|s| format!("{s}\nrc=$?; echo; echo \"step-exit=$rc\"\n")).collect();
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("WAIAAS_DAEMON_PORT", port.to_string())
        .env_remove("WAIAAS_MASTER_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    let exits: Vec<&str> = shown.lines().filter(|l| l.starts_with("step-exit=")).collect();
    assert_eq!(exits, vec!["step-exit=0"; 5], "{script}\n{shown}");
    assert!(shown.contains("\"chain\":\"solana\""), "the curl read the agent's address: {shown}");
}
