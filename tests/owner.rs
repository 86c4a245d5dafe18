//! ownerAuth and the owner lifecycle against the real daemon and a real anvil node
//! (04-auth.md §7–§9; ACC-113 … ACC-128, ACC-084). Every accepted signature is made by a tool
//! waiaas shares no code with (eth-account, `cast wallet sign`, PyNaCl, the Ledger fake device
//! only for the CLI's `--ledger` path).

use std::sync::Arc;

use serde_json::{Value, json};
use waiaas_storage::{AgentStatus, Amount, DecisionOutcome, OpCtx, Tier, TransactionRecord, TxStatus, TxType};

use crate::support::api::id;
use crate::support::evm::opts;
use crate::support::nodes::Anvil;
use crate::support::owner::*;
use crate::support::{Opts, TestDaemon, run, text};

async fn evm_agent(d: &TestDaemon, owner: Option<&str>) -> Value {
    let mut body = json!({"chain": "ethereum"});
    if let Some(o) = owner {
        body["owner"] = json!(o);
    }
    d.create_agent(body).await
}

async fn verify(d: &TestDaemon, agent: &str, bearer: &str) -> (u16, Value) {
    d.bearer("POST", &format!("/v1/owner/agents/{agent}/verify"), bearer, None).await
}

async fn evm_msg(d: &TestDaemon, owner: &str, agent: &str) -> Msg {
    Msg::new(d, "ethereum", owner, "verify_owner", &format!("agent:{agent}"), "31337").await
}

// ACC-115, ACC-116, ACC-122, ACC-126 (lowercase accepted, stored checksummed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_owner_signatures_by_eth_account_and_cast_verify() {
    let anvil = Anvil::start();
    let d = TestDaemon::start(opts(&anvil, &[])).await;
    let a = evm_agent(&d, Some(&EVM_ADDR_0.to_lowercase())).await;
    assert_eq!((a["ownerAddress"].as_str(), a["ownerState"].as_str()), (Some(EVM_ADDR_0), Some("GRACE")));
    assert_eq!(a["chainId"], 31337);
    let aid = id(&a);

    // A bad signature, then a valid one from another key: 401, then 403.
    let m = evm_msg(&d, EVM_ADDR_0, &aid).await;
    let wrong = evm_sign(EVM_KEY_0, "some other text");
    let (st, v) = verify(&d, &aid, &m.payload(&wrong)).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_SIGNATURE")));
    let m = evm_msg(&d, EVM_ADDR_1, &aid).await;
    let (st, v) = verify(&d, &aid, &m.evm(EVM_KEY_1)).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("OWNER_MISMATCH")));

    // cast, then eth-account: verified once, idempotent after.
    let m = evm_msg(&d, EVM_ADDR_0, &aid).await;
    let (st, v) = verify(&d, &aid, &m.payload(&cast_sign(EVM_KEY_0, &m.text()))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["ownerState"].as_str(), v["ownerAddress"].as_str()), (Some("LOCKED"), Some(EVM_ADDR_0)));
    let m = evm_msg(&d, EVM_ADDR_0, &aid).await;
    let (st, v2) = verify(&d, &aid, &m.evm(EVM_KEY_0)).await;
    assert_eq!(st, 200);
    assert_eq!(v2["verifiedAt"], v["verifiedAt"]);
    let rows = d.audit("OWNER_VERIFIED").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"], format!("owner:{EVM_ADDR_0}"));

    // An agent without an owner.
    let none = evm_agent(&d, None).await;
    let m = evm_msg(&d, EVM_ADDR_0, &id(&none)).await;
    let (st, v) = verify(&d, &id(&none), &m.evm(EVM_KEY_0)).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("NO_OWNER")));
    // No payload at all, or a session token: 401 UNAUTHORIZED.
    let (st, v) = d.call("POST", &format!("/v1/owner/agents/{aid}/verify"), &[], None).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("UNAUTHORIZED")));
}

// ACC-119: raw text, the Ledger-layout envelope (format 0 and 1) and the compact envelope.
daemon_test!(siws_signatures_verify_in_every_accepted_encoding, Opts { dev: true, ..Opts::default() }, |d| {
    let (seed, pubkey) = sol_owner(0x42);
    for mode in ["raw", "ledger0", "ledger1", "compact0", "compact1"] {
        let a = d.create_agent(json!({"owner": pubkey})).await;
        let m = Msg::new(&d, "solana", &pubkey, "verify_owner", &format!("agent:{}", id(&a)), "devnet").await;
        let (st, v) = verify(&d, &id(&a), &m.sol(&seed, mode)).await;
        assert_eq!(st, 200, "{mode}: {v}");
        assert_eq!(v["ownerState"], "LOCKED");
    }
    // A signature by another key, and one over different bytes.
    let a = d.create_agent(json!({"owner": pubkey})).await;
    let (other_seed, _) = sol_owner(0x43);
    let m = Msg::new(&d, "solana", &pubkey, "verify_owner", &format!("agent:{}", id(&a)), "devnet").await;
    let (st, v) = verify(&d, &id(&a), &m.sol(&other_seed, "raw")).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_SIGNATURE")));
    let m = Msg::new(&d, "solana", &pubkey, "verify_owner", &format!("agent:{}", id(&a)), "devnet").await;
    let (st, v) = verify(&d, &id(&a), &m.payload(&sol_sign(&seed, "raw", "not the message"))).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_SIGNATURE")));
    // The wrong network in Chain ID.
    let m = Msg::new(&d, "solana", &pubkey, "verify_owner", &format!("agent:{}", id(&a)), "mainnet").await;
    let (st, v) = verify(&d, &id(&a), &m.sol(&seed, "raw")).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("OWNER_ACTION_MISMATCH")));
});

// ACC-113 (memory), ACC-114, ACC-117, ACC-118: every binding is checked, each with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_bound_elsewhere_or_stale_are_refused() {
    let anvil = Anvil::start();
    let d = TestDaemon::start(opts(&anvil, &[])).await;
    let a = id(&evm_agent(&d, Some(EVM_ADDR_0)).await);
    let b = id(&evm_agent(&d, Some(EVM_ADDR_0)).await);
    let expect = async |m: &Msg, status: u16, code: &str| {
        let (st, v) = verify(&d, &a, &m.evm(EVM_KEY_0)).await;
        assert_eq!((st, v["code"].as_str()), (status, Some(code)), "{}", m.text());
    };
    // Another target, another action, another chain id: 403 OWNER_ACTION_MISMATCH.
    let mut m = evm_msg(&d, EVM_ADDR_0, &b).await;
    expect(&m, 403, "OWNER_ACTION_MISMATCH").await;
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    m.action = "recover".into();
    m.target = "system".into();
    expect(&m, 403, "OWNER_ACTION_MISMATCH").await;
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    m.action = "change_owner".into();
    expect(&m, 403, "OWNER_ACTION_MISMATCH").await;
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    m.chain_id = "1".into();
    expect(&m, 403, "OWNER_ACTION_MISMATCH").await;
    // Another domain, a Nonce line that is not the payload's, a validity over 300 s, a
    // 6-minute-old message: 401 INVALID_SIGNATURE.
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    m.domain = format!("evil.com:{}", d.port);
    expect(&m, 401, "INVALID_SIGNATURE").await;
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    let payload_nonce = m.nonce.clone();
    m.nonce = nonce(&d).await;
    let signed_text = m.text();
    let sig = evm_sign(EVM_KEY_0, &signed_text);
    let mut body: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, m.payload(&sig)).unwrap(),
    )
    .unwrap();
    body["nonce"] = json!(payload_nonce);
    let forged = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, body.to_string());
    let (st, v) = verify(&d, &a, &forged).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_SIGNATURE")));
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    let issued = chrono::DateTime::parse_from_rfc3339(&m.issued_at).unwrap().timestamp();
    m.expires = iso(issued + 301);
    expect(&m, 401, "INVALID_SIGNATURE").await;
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    m.issued_at = iso(issued - 360);
    m.expires = iso(issued - 60);
    expect(&m, 401, "INVALID_SIGNATURE").await;
    // Nonces: never issued, and reused.
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    m.nonce = "00".repeat(16);
    expect(&m, 401, "INVALID_NONCE").await;
    m = evm_msg(&d, EVM_ADDR_0, &a).await;
    let first = m.evm(EVM_KEY_0);
    assert_eq!(verify(&d, &a, &first).await.0, 200);
    let (st, v) = verify(&d, &a, &first).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_NONCE")), "a replayed payload");
    // Nothing else changed state.
    let (_, bv) = d.master("GET", &format!("/v1/agents/{b}"), None).await;
    assert_eq!(bv["ownerState"], "GRACE");
}

// ACC-120: a contract wallet deployed on anvil answers ERC-1271.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_wallet_owners_verify_through_erc1271() {
    let anvil = Anvil::start();
    let compiled: Value = serde_json::from_slice(
        &std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/contracts/compiled.json"))
            .unwrap(),
    )
    .unwrap();
    let bytecode = compiled["MiniWallet"]["bytecode"].as_str().unwrap();
    let out = std::process::Command::new(cast())
        .args(["send", "--json", "--rpc-url", &anvil.url, "--private-key", EVM_KEY_0, "--create", bytecode])
        .args(["constructor(address)", EVM_ADDR_1])
        .output()
        .unwrap();
    assert!(out.status.success(), "deploy: {}", text(&out.stderr));
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    let wallet = receipt["contractAddress"].as_str().unwrap().to_string();

    let d = TestDaemon::start(opts(&anvil, &[])).await;
    let a = id(&evm_agent(&d, Some(&wallet)).await);
    // Signed by a key the wallet does not accept: the contract says no.
    let m = evm_msg(&d, &wallet, &a).await;
    let (st, v) = verify(&d, &a, &m.payload(&evm_sign(EVM_KEY_2, &m.text()))).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_SIGNATURE")));
    // A non-65-byte signature reaches the contract too and is refused.
    let m = evm_msg(&d, &wallet, &a).await;
    let (st, v) = verify(&d, &a, &m.payload("0x1234")).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_SIGNATURE")));
    // Signed by the wallet's owner key: isValidSignature returns 0x1626ba7e.
    let m = evm_msg(&d, &wallet, &a).await;
    let (st, v) = verify(&d, &a, &m.payload(&evm_sign(EVM_KEY_1, &m.text()))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ownerState"], "LOCKED");
    // With the node gone, a contract check cannot run: 503 and the nonce stays consumed.
    let a2 = id(&evm_agent(&d, Some(&wallet)).await);
    let m = evm_msg(&d, &wallet, &a2).await;
    let payload = m.payload(&evm_sign(EVM_KEY_1, &m.text()));
    drop(anvil);
    let (st, v) = verify(&d, &a2, &payload).await;
    assert_eq!((st, v["code"].as_str()), (503, Some("ADAPTER_NOT_AVAILABLE")), "{v}");
}

// ACC-121: ten concurrent successful verifications flip GRACE → LOCKED once.
daemon_test!(concurrent_verifications_lock_exactly_once, Opts { dev: true, ..Opts::default() }, |d| {
    let (seed, pubkey) = sol_owner(0x51);
    let a = id(&d.create_agent(json!({"owner": pubkey})).await);
    let mut payloads = Vec::new();
    for _ in 0..10 {
        let m = Msg::new(&d, "solana", &pubkey, "verify_owner", &format!("agent:{a}"), "devnet").await;
        payloads.push(m.sol(&seed, "raw"));
    }
    let d = Arc::new(d);
    let tasks: Vec<_> = payloads
        .into_iter()
        .map(|p| {
            let (d, a) = (d.clone(), a.clone());
            tokio::spawn(async move { verify(&d, &a, &p).await.0 })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(d.audit("OWNER_VERIFIED").await.len(), 1);
});

// ACC-123, ACC-124, ACC-126: the owner state machine through PATCH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_changes_follow_the_lifecycle_rules() {
    let anvil = Anvil::start();
    let d = TestDaemon::start(opts(&anvil, &[])).await;
    let a = id(&evm_agent(&d, None).await);
    let patch = async |body: Value, bearer: Option<String>| {
        let mut h = vec![("X-Master-Password", d.password().to_string())];
        if let Some(b) = bearer {
            h.push(("Authorization", format!("Bearer {b}")));
        }
        d.call("PATCH", &format!("/v1/agents/{a}"), &h, Some(body)).await
    };
    // Address validation.
    let bad_checksum = format!("0x{}", &EVM_ADDR_0[2..].replace('F', "f").replacen('a', "A", 1));
    for bad in [bad_checksum.as_str(), "0x1234", "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"] {
        let (st, v) = patch(json!({"owner": bad}), None).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{bad}");
    }
    // NONE → GRACE → GRACE (changed) → same again (no-op) → NONE.
    let (st, v) = patch(json!({"owner": EVM_ADDR_0.to_uppercase().replace("0X", "0x")}), None).await;
    assert_eq!((st, v["ownerState"].as_str(), v["ownerAddress"].as_str()), (200, Some("GRACE"), Some(EVM_ADDR_0)));
    let (_, v) = patch(json!({"owner": EVM_ADDR_1}), None).await;
    assert_eq!(v["ownerAddress"], EVM_ADDR_1);
    let changed = d.audit("OWNER_ADDRESS_CHANGED").await.len();
    let (st, _) = patch(json!({"owner": EVM_ADDR_1.to_lowercase()}), None).await;
    assert_eq!(st, 200);
    assert_eq!(d.audit("OWNER_ADDRESS_CHANGED").await.len(), changed, "setting the same address is a no-op");
    let (st, v) = patch(json!({"owner": null}), None).await;
    assert_eq!((st, v["ownerState"].as_str()), (200, Some("NONE")));
    assert_eq!(d.audit("OWNER_REMOVED").await.len(), 1);
    assert_eq!(d.audit("OWNER_REMOVED").await[0]["severity"], "warning");

    // LOCKED: removal forbidden; a change needs the current owner's change_owner signature.
    patch(json!({"owner": EVM_ADDR_0}), None).await;
    let m = evm_msg(&d, EVM_ADDR_0, &a).await;
    assert_eq!(verify(&d, &a, &m.evm(EVM_KEY_0)).await.0, 200);
    let (st, v) = patch(json!({"owner": null}), None).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("OWNER_LOCKED")));
    let (st, v) = patch(json!({"owner": EVM_ADDR_1}), None).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("OWNER_AUTH_REQUIRED")));
    let target = format!("agent:{a}:owner:{EVM_ADDR_1}");
    // Signed by the new owner instead of the current one.
    let m = Msg::new(&d, "ethereum", EVM_ADDR_1, "change_owner", &target, "31337").await;
    let (st, v) = patch(json!({"owner": EVM_ADDR_1}), Some(m.evm(EVM_KEY_1))).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("OWNER_MISMATCH")));
    // Bound to another new address.
    let m =
        Msg::new(&d, "ethereum", EVM_ADDR_0, "change_owner", &format!("agent:{a}:owner:{EVM_ADDR_0}"), "31337").await;
    let (st, v) = patch(json!({"owner": EVM_ADDR_1}), Some(m.evm(EVM_KEY_0))).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("OWNER_ACTION_MISMATCH")));
    // The right one.
    let m = Msg::new(&d, "ethereum", EVM_ADDR_0, "change_owner", &target, "31337").await;
    let (st, v) = patch(json!({"owner": EVM_ADDR_1}), Some(m.evm(EVM_KEY_0))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["ownerState"].as_str(), v["ownerAddress"].as_str()), (Some("LOCKED"), Some(EVM_ADDR_1)));
    let last = d.audit("OWNER_ADDRESS_CHANGED").await.pop().unwrap();
    assert_eq!(last["actor"], format!("owner:{EVM_ADDR_0}+admin"));
    assert_eq!(last["details"]["previousAddress"], EVM_ADDR_0);
}

fn pending(agent: &waiaas_storage::AgentRecord, now: u64) -> TransactionRecord {
    let request = json!({"type": "TRANSFER", "to": EVM_ADDR_1, "amount": "1"});
    let mut t = TransactionRecord::pending(uuid::Uuid::now_v7(), agent, None, TxType::Transfer, request, now);
    t.amount = Amount::from_u64(1);
    t.native_amount = Amount::from_u64(1);
    t.to_address = Some(EVM_ADDR_1.into());
    t
}

/// Inserts a QUEUED row of `tier` for `agent` (the daemon is stopped).
fn insert_queued(store: &waiaas_storage::Store, agent: &waiaas_storage::AgentRecord, tier: Tier) -> uuid::Uuid {
    let now = chrono::Utc::now().timestamp() as u64;
    let rec = pending(agent, now);
    let ctx = OpCtx::new("test", now);
    store.record_request(&rec, &[], None, &ctx).unwrap();
    let queue = DecisionOutcome::Queue {
        tier,
        queue_expires_at: Some(now + 86_400),
        decision: json!({"tier": tier.as_str()}),
        approval_owner: agent.owner_address.clone(),
        audits: Vec::new(),
    };
    store.decide_transaction(rec.id, &ctx, |_| Ok(queue)).unwrap();
    rec.id
}

// ACC-113 (redb, across a restart), ACC-125, ACC-127, ACC-128.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_change_and_disconnect_only_touch_pending_approvals() {
    let anvil = Anvil::start();
    let o = opts(&anvil, &[("security", "nonce_storage = \"redb\"".to_string())]);
    let mut d = TestDaemon::start(o.clone()).await;
    let a = evm_agent(&d, Some(EVM_ADDR_0)).await;
    let b = evm_agent(&d, Some(EVM_ADDR_0)).await;
    let session = d.create_session(&id(&a), json!({})).await;
    // ACC-128: master auth, and a second connect replaces the first.
    let body = json!({"address": EVM_ADDR_0, "chain": "ethereum"});
    let (st, v) = d.call("POST", "/v1/owner/connect", &[], Some(body.clone())).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("MASTER_PASSWORD_REQUIRED")));
    let (st, first) = d.master("POST", "/v1/owner/connect", Some(body.clone())).await;
    assert_eq!(st, 201, "{first}");
    let (_, second) = d.master("POST", "/v1/owner/connect", Some(body.clone())).await;
    assert_ne!(first["connectionId"], second["connectionId"]);
    let (st, _) = d.master("POST", "/v1/owner/connect", Some(json!({"address": "0x12", "chain": "ethereum"}))).await;
    assert_eq!(st, 400);
    // A nonce issued before the restart (redb storage).
    let m = evm_msg(&d, EVM_ADDR_0, &id(&b)).await;
    let early = m.evm(EVM_KEY_0);

    d.terminate();
    let (t_approval_a, t_delay_a, t_approval_b);
    {
        let store = d.store();
        assert_eq!(store.list_wallet_connections().unwrap().len(), 1);
        let rec_a = store.get_agent(id(&a).parse().unwrap()).unwrap().unwrap();
        let rec_b = store.get_agent(id(&b).parse().unwrap()).unwrap().unwrap();
        t_approval_a = insert_queued(&store, &rec_a, Tier::Approval);
        t_delay_a = insert_queued(&store, &rec_a, Tier::Delay);
        t_approval_b = insert_queued(&store, &rec_b, Tier::Approval);
    }
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    // Same port: the signed message names the daemon's domain.
    let mut d = TestDaemon::start_in(dir, Opts { port: Some(d.port), ..o.clone() }).await;
    // The pre-restart nonce still works once (redb), then never again.
    let (st, v) = verify(&d, &id(&b), &early).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = verify(&d, &id(&b), &early).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("INVALID_NONCE")));

    // ACC-125: A's owner changes (GRACE): its APPROVAL row is cancelled, DELAY and sessions stay.
    let (st, v) = d.master("PATCH", &format!("/v1/agents/{}", id(&a)), Some(json!({"owner": EVM_ADDR_1}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(d.bearer("GET", "/v1/wallet/address", session["token"].as_str().unwrap(), None).await.0, 200);
    // ACC-127: disconnect EVM_ADDR_0 now affects B only.
    let (st, v) =
        d.master("DELETE", "/v1/owner/disconnect", Some(json!({"address": EVM_ADDR_0, "chain": "ethereum"}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["affectedAgents"].as_u64(), v["expiredTransactions"].as_u64()), (Some(1), Some(1)));
    let (st, v) =
        d.master("DELETE", "/v1/owner/disconnect", Some(json!({"address": EVM_ADDR_0, "chain": "solana"}))).await;
    assert_eq!(st, 400, "an EVM address is not a Solana one: {v}");
    let (st, v) = d
        .master(
            "DELETE",
            "/v1/owner/disconnect",
            Some(json!({"address": "0x000000000000000000000000000000000000dead", "chain": "ethereum"})),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (404, Some("OWNER_NOT_FOUND")));

    d.terminate();
    let store = d.store();
    let get = |t| store.get_transaction(t).unwrap().unwrap();
    assert_eq!(
        (get(t_approval_a).status, get(t_approval_a).error.as_deref()),
        (TxStatus::Cancelled, Some("OWNER_ADDRESS_CHANGED"))
    );
    assert_eq!(get(t_delay_a).status, TxStatus::Queued);
    assert_eq!(
        (get(t_approval_b).status, get(t_approval_b).error.as_deref()),
        (TxStatus::Expired, Some("OWNER_DISCONNECTED"))
    );
    assert!(store.list_wallet_connections().unwrap().is_empty());
    let rec_b = store.get_agent(id(&b).parse().unwrap()).unwrap().unwrap();
    assert_eq!(rec_b.owner_address.as_deref(), Some(EVM_ADDR_0), "disconnect keeps owner_address");
    assert_eq!(rec_b.status, AgentStatus::Active);
}

// ACC-084 (verify-owner half; approvals arrive with the approval flow): the CLI signs the SIWE
// message on the Ledger (fake device over TCP) and the daemon accepts it. Also the offline
// prepare-then-submit path with a cast signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_owner_signing_on_a_ledger_and_offline() {
    let anvil = Anvil::start();
    let fake = waiaas_backends::ledger::fake::FakeDevice::default();
    let server = fake.serve_tcp().unwrap();
    let ledger_cfg = ("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"", server.address()));
    let d = TestDaemon::start(opts(&anvil, &[ledger_cfg])).await;
    let ledger_owner = fake.eth_address("44'/60'/0'/0/0");
    assert_eq!(ledger_owner, EVM_ADDR_0, "the fake device uses anvil's mnemonic");
    let a = evm_agent(&d, Some(&ledger_owner)).await;
    let cli = |args: &[&str]| {
        let mut c = d.cli();
        c.env("WAIAAS_MASTER_PASSWORD", d.password()).args(args);
        run(c, std::time::Duration::from_secs(60))
    };
    let out = cli(&["agent", "verify-owner", a["name"].as_str().unwrap(), "--ledger"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("LOCKED"));
    assert!(fake.log().iter().any(|(_, apdu)| apdu[1] == 0x08), "SIGN_PERSONAL_MESSAGE (INS 0x08) was used");

    // A Solana owner on the Ledger signs the off-chain envelope (INS 0x07).
    let sol_owner = fake.solana_pubkey("44'/501'/0'/0'");
    let s = d.create_agent(json!({"owner": sol_owner})).await;
    let out = cli(&["agent", "verify-owner", s["id"].as_str().unwrap(), "--ledger"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(fake.log().iter().any(|(_, apdu)| apdu[1] == 0x07));

    // A device whose key is not the owner's is refused before signing.
    let other = evm_agent(&d, Some(EVM_ADDR_1)).await;
    let before = fake.signatures();
    let out = cli(&["agent", "verify-owner", other["name"].as_str().unwrap(), "--ledger"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not the owner"), "{}", text(&out.stderr));
    assert_eq!(fake.signatures(), before);

    // Offline: prepare, sign elsewhere (cast), submit.
    let msg_path = d.path().join("to-sign.txt");
    let out = cli(&[
        "agent",
        "verify-owner",
        other["name"].as_str().unwrap(),
        "--prepare-only",
        "--message-out",
        msg_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&msg_path).unwrap().permissions().mode() & 0o777, 0o600);
    let message = std::fs::read_to_string(&msg_path).unwrap();
    let sig = cast_sign(EVM_KEY_1, &message);
    let out = cli(&[
        "agent",
        "verify-owner",
        other["name"].as_str().unwrap(),
        "--message-file",
        msg_path.to_str().unwrap(),
        "--signature",
        &sig,
    ]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let (_, v) = d.master("GET", &format!("/v1/agents/{}", id(&other)), None).await;
    assert_eq!(v["ownerState"], "LOCKED");
}
