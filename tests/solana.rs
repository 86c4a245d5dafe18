//! Solana on the real surfnet-local node (05-chains.md §3; the Solana lines of ACC-130 …
//! ACC-150 and ACC-249). Balances are read back from the node; token mints are written with
//! surfpool's `surfnet_setAccount` cheat code, agent token balances with
//! `surfnet_setTokenAccount`, and blocks are produced on demand through the node's block
//! control to age blockhashes by exact amounts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use spl_token_2022_interface::extension::ExtensionType;

use crate::support::TestDaemon;
use crate::support::api::{SOL, send};
use crate::support::nodes::Surfnet;
use crate::support::rpc_proxy::RpcProxy;
use crate::support::solana::{MEMO, TOKEN, TOKEN_2022};
use crate::support::solana::{
    ata, balance, create_mint, daemon, existing_address, fee_of, fresh_address, fund_tokens, funded_agent, logs, rpc,
    token_balance,
};

// ACC-150, ACC-249, 05-chains.md §3.5: SOL transfers (with a memo) land with exact balances;
// two identical transfers back to back both land under different signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sol_transfers_confirm_with_exact_balances() {
    let node = Surfnet::start();
    let d = daemon(&node.url, &[]).await;
    let (agent, t) = funded_agent(&d, &node.url, 5, json!({})).await;
    d.permit(agent["id"].as_str().unwrap(), &[], &[], &[]).await;
    let me = agent["address"].as_str().unwrap().to_string();
    let to = fresh_address();
    let valid_before =
        rpc(&node.url, "getLatestBlockhash", json!([{"commitment": "confirmed"}]))["value"]["lastValidBlockHeight"]
            .as_u64()
            .unwrap();
    let (st, v) = send(&d, &t, json!({"to": to, "amount": "1500000000", "memo": "invoice 42"})).await;
    assert_eq!((st, v["status"].as_str(), v["tier"].as_str()), (200, Some("CONFIRMED"), Some("INSTANT")), "{v}");
    let sig = v["txHash"].as_str().unwrap();
    assert_eq!(balance(&node.url, &to), 1_500_000_000);
    let fee = fee_of(&node.url, sig);
    assert_eq!(balance(&node.url, &me), 5 * SOL - 1_500_000_000 - fee);
    assert_eq!(v["fee"], fee.to_string(), "the response reports the fee the node charged");
    assert!(logs(&node.url, sig).iter().any(|l| l.contains("invoice 42")), "the memo is on chain");
    let (first_id, first_sig) = (v["transactionId"].as_str().unwrap().to_string(), sig.to_string());

    let other = existing_address(&node.url);
    let (s1, v1) = send(&d, &t, json!({"to": other, "amount": "1000"})).await;
    let (s2, v2) = send(&d, &t, json!({"to": other, "amount": "1000"})).await;
    assert_eq!(
        (s1, v1["status"].as_str(), s2, v2["status"].as_str()),
        (200, Some("CONFIRMED"), 200, Some("CONFIRMED")),
        "{v1} {v2}"
    );
    assert_ne!(v1["txHash"], v2["txHash"]);
    assert_eq!(balance(&node.url, &other), SOL + 2000);
    // A small amount to a new account would leave it below the rent-exempt minimum: the
    // simulation says so and nothing is signed.
    let (st, v) = send(&d, &t, json!({"to": fresh_address(), "amount": "1000"})).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("SIMULATION_FAILED")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("InsufficientFundsForRent"), "{v}");

    // ACC-135: the row keeps the blockhash the first transfer was built on (the one on chain)
    // and the node's lastValidBlockHeight for it, fetched during that send: at least the value
    // the node reported just before it, and within a few blocks of it.
    let mut d = d;
    d.terminate();
    let meta = row_meta(&d, &first_id);
    let landed = rpc(
        &node.url,
        "getTransaction",
        json!([first_sig, {"encoding": "json", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}]),
    );
    assert_eq!(meta["blockhash"], landed["transaction"]["message"]["recentBlockhash"], "{meta:?}");
    let last_valid = meta["lastValidBlockHeight"].as_u64().unwrap();
    assert!((valid_before..=valid_before + 20).contains(&last_valid), "{last_valid} vs {valid_before} before the send");
}

// ACC-140, ACC-141, ACC-142, ACC-150: SPL and Token-2022 transfers, ATA creation with rent in
// the fee, refused extensions, a token account as destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_transfers_create_atas_and_refuse_dangerous_extensions() {
    let node = Surfnet::start();
    let d = daemon(&node.url, &[crate::support::sink::notifications_on()]).await;
    let _sink = d.sink_channel().await;
    let (agent, t) = funded_agent(&d, &node.url, 2, json!({})).await;
    let me = agent["address"].as_str().unwrap().to_string();
    let rent = rpc(&node.url, "getMinimumBalanceForRentExemption", json!([165])).as_u64().unwrap();
    // Every mint of the test exists up front, so one ALLOWED_TOKENS policy lists them all (the
    // unknown mint at the end is listed too: the chain, not the policy, must refuse it).
    let mint = create_mint(&node.url, TOKEN, 6, &[]);
    let mint22 = create_mint(&node.url, TOKEN_2022, 9, &[]);
    let bad: Vec<(ExtensionType, String)> = [ExtensionType::TransferFeeConfig, ExtensionType::TransferHook]
        .into_iter()
        .map(|ext| (ext, create_mint(&node.url, TOKEN_2022, 6, &[ext])))
        .collect();
    let unknown = fresh_address();
    let listed = [mint.as_str(), mint22.as_str(), bad[0].1.as_str(), bad[1].1.as_str(), unknown.as_str()];
    d.permit(agent["id"].as_str().unwrap(), &listed, &[], &[]).await;

    // SPL (Token program) to a wallet without an ATA.
    fund_tokens(&node.url, &me, &mint, TOKEN, 1_000_000);
    let wallet = fresh_address();
    let sol_before = balance(&node.url, &me);
    let (st, v) = send(
        &d,
        &t,
        json!({"type": "TOKEN_TRANSFER", "to": wallet, "amount": "250000", "token": {"mint": mint, "decimals": 6}}),
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    assert_eq!(
        v["estimatedFee"],
        (5000 + rent).to_string(),
        "network fee + rent of a 165-byte account (priority 0 here)"
    );
    assert_eq!(token_balance(&node.url, &ata(&wallet, &mint, TOKEN)), Some(250_000));
    assert_eq!(token_balance(&node.url, &ata(&me, &mint, TOKEN)), Some(750_000));
    let fee = fee_of(&node.url, v["txHash"].as_str().unwrap());
    assert_eq!(balance(&node.url, &me), sol_before - fee - rent, "the agent paid the ATA's rent");
    // The ATA exists now: a second transfer creates nothing.
    let (_, v) =
        send(&d, &t, json!({"type": "TOKEN_TRANSFER", "to": wallet, "amount": "1", "token": {"mint": mint}})).await;
    assert_eq!(v["estimatedFee"], "5000");

    // Token-2022 without extensions.
    fund_tokens(&node.url, &me, &mint22, TOKEN_2022, 5_000);
    let (st, v) =
        send(&d, &t, json!({"type": "TOKEN_TRANSFER", "to": wallet, "amount": "1234", "token": {"mint": mint22}}))
            .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    assert_eq!(token_balance(&node.url, &ata(&wallet, &mint22, TOKEN_2022)), Some(1234));

    // Refused extensions: nothing signed, nothing moved.
    for (ext, bad) in &bad {
        let before = balance(&node.url, &me);
        let (st, v) =
            send(&d, &t, json!({"type": "TOKEN_TRANSFER", "to": wallet, "amount": "1", "token": {"mint": bad}})).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("UNSUPPORTED_TOKEN_EXTENSION")), "{ext:?}: {v}");
        assert_eq!(balance(&node.url, &me), before);
    }
    // A token account as destination; wrong decimals; an unknown mint.
    let my_ata = ata(&me, &mint, TOKEN);
    let (st, v) =
        send(&d, &t, json!({"type": "TOKEN_TRANSFER", "to": my_ata, "amount": "1", "token": {"mint": mint}})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("INVALID_ADDRESS")), "{v}");
    let (st, v) = send(
        &d,
        &t,
        json!({"type": "TOKEN_TRANSFER", "to": wallet, "amount": "1", "token": {"mint": mint, "decimals": 9}}),
    )
    .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("INVALID_TOKEN_MINT")), "{v}");
    let (st, v) =
        send(&d, &t, json!({"type": "TOKEN_TRANSFER", "to": wallet, "amount": "1", "token": {"mint": unknown}})).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("TOKEN_NOT_FOUND")), "{v}");
    let (st, v) =
        send(&d, &t, json!({"type": "TOKEN_TRANSFER", "to": wallet, "amount": "999999999", "token": {"mint": mint}}))
            .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("INSUFFICIENT_TOKEN_BALANCE")), "{v}");

    // The assets listing shows the tokens next to SOL.
    let (st, assets) = d.bearer("GET", "/v1/wallet/assets", &t, None).await;
    assert_eq!(st, 200, "{assets}");
    let list = assets["assets"].as_array().unwrap();
    assert_eq!(list[0]["type"], "native");
    assert!(list.iter().any(|a| a["mint"] == mint.as_str() && a["balance"] == "749999"), "{assets}");
}

// 05-chains.md §3.8–3.10: approve / revoke, a program call, a batch (atomic, ATAs counted),
// and the batch size limits.
// ACC-143, ACC-175.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_program_calls_and_batches_confirm() {
    let node = Surfnet::start();
    let d = daemon(&node.url, &[crate::support::sink::notifications_on()]).await;
    let _sink = d.sink_channel().await;
    let (agent, t) = funded_agent(&d, &node.url, 3, json!({})).await;
    let me = agent["address"].as_str().unwrap().to_string();
    let mint = create_mint(&node.url, TOKEN, 6, &[]);
    fund_tokens(&node.url, &me, &mint, TOKEN, 1_000_000);
    let my_ata = ata(&me, &mint, TOKEN);
    let spender = fresh_address();
    d.permit(agent["id"].as_str().unwrap(), &[&mint], &[MEMO], &[&spender]).await;

    let (st, v) = send(
        &d,
        &t,
        json!({"type": "APPROVE", "token": {"mint": mint, "decimals": 6}, "spender": spender, "amount": "4000"}),
    )
    .await;
    assert_eq!(
        (st, v["status"].as_str(), v["methodSignature"].as_str()),
        (200, Some("CONFIRMED"), Some("ApproveChecked")),
        "{v}"
    );
    let info = &rpc(
        &node.url,
        "getAccountInfo",
        json!([my_ata, {"encoding": "jsonParsed", "commitment": "confirmed"}]),
    )["value"]["data"]["parsed"]["info"];
    assert_eq!(
        (info["delegate"].as_str(), info["delegatedAmount"]["amount"].as_str()),
        (Some(spender.as_str()), Some("4000"))
    );
    let (st, v) =
        send(&d, &t, json!({"type": "APPROVE", "token": {"mint": mint}, "spender": spender, "amount": "0"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let info = &rpc(
        &node.url,
        "getAccountInfo",
        json!([my_ata, {"encoding": "jsonParsed", "commitment": "confirmed"}]),
    )["value"]["data"]["parsed"]["info"];
    assert!(info["delegate"].is_null(), "revoked: {info}");

    // A program call: the memo program, signed by the agent.
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"hello from a program call");
    let (st, v) = send(
        &d,
        &t,
        json!({"type": "CONTRACT_CALL", "contractAddress": MEMO, "instructionData": data,
        "accounts": [{"pubkey": me, "isSigner": true, "isWritable": false}]}),
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    assert!(logs(&node.url, v["txHash"].as_str().unwrap()).iter().any(|l| l.contains("hello from a program call")));

    // A batch: SOL + SPL to a fresh wallet (its ATA is created in the same transaction) + a
    // program call, atomically; the children share the parent's status and hash.
    let (w1, w2) = (existing_address(&node.url), fresh_address());
    let (st, v) = send(&d, &t, json!({"type": "BATCH", "instructions": [
        {"type": "TRANSFER", "to": w1, "amount": "7000"},
        {"type": "TOKEN_TRANSFER", "to": w2, "amount": "333", "token": {"mint": mint}},
        {"type": "CONTRACT_CALL", "contractAddress": MEMO, "instructionData": data, "accounts": [{"pubkey": me, "isSigner": true, "isWritable": false}]},
    ]})).await;
    assert_eq!((st, v["status"].as_str(), v["type"].as_str()), (200, Some("CONFIRMED"), Some("BATCH")), "{v}");
    assert_eq!(balance(&node.url, &w1), SOL + 7000);
    assert_eq!(token_balance(&node.url, &ata(&w2, &mint, TOKEN)), Some(333));
    let (_, detail) =
        d.bearer("GET", &format!("/v1/transactions/{}", v["transactionId"].as_str().unwrap()), &t, None).await;
    let ins = detail["instructions"].as_array().unwrap();
    assert_eq!(ins.len(), 3);
    assert_eq!(
        ins.iter().map(|i| i["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["TRANSFER", "TOKEN_TRANSFER", "CONTRACT_CALL"]
    );
    let (_, list) = d.bearer("GET", "/v1/transactions?limit=1", &t, None).await;
    assert_eq!(list["transactions"][0]["type"], "BATCH", "only the parent is listed");

    // Twelve SPL transfers to fresh wallets are 24 instructions once their ATAs are added.
    let many: Vec<Value> = (0..12)
        .map(|_| json!({"type": "TOKEN_TRANSFER", "to": fresh_address(), "amount": "1", "token": {"mint": mint}}))
        .collect();
    let (st, v) = send(&d, &t, json!({"type": "BATCH", "instructions": many})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("BATCH_SIZE_EXCEEDED")), "{v}");
    // Two large program calls do not fit in 1232 bytes.
    let big = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vec![b'x'; 700]);
    let call = json!({"type": "CONTRACT_CALL", "contractAddress": MEMO, "instructionData": big, "accounts": [{"pubkey": me, "isSigner": true, "isWritable": false}]});
    let (st, v) = send(&d, &t, json!({"type": "BATCH", "instructions": [call.clone(), call]})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("BATCH_SIZE_EXCEEDED")), "{v}");
}

fn row_meta(d: &TestDaemon, id: &str) -> serde_json::Map<String, Value> {
    d.store().get_transaction(id.parse().unwrap()).unwrap().unwrap().metadata
}

// ACC-136, ACC-137 and the rebuild rule of 05-chains.md §3.6, with real blocks: a blockhash
// aged to < 20 s of life is refreshed and lands; one past lastValidBlockHeight is rebuilt; a
// huge slot jump that leaves block height alone does not trip the guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_freshness_guard_reads_block_height() {
    let node = Arc::new(Surfnet::start());
    let proxy = RpcProxy::start(&node.url);
    let d = daemon(&proxy.url, &[]).await;
    let (_, t) = funded_agent(&d, &node.url, 2, json!({})).await;
    let to = existing_address(&node.url);

    // Stale: ~125 blocks pass between the build and signing (~26 left ≈ 10 s < 20 s). First
    // let the adapter's 5 s blockhash cache lapse, so the build fetches its own.
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    let n = node.clone();
    proxy.before("simulateTransaction", move || n.advance(125));
    let hashes = proxy.count("getLatestBlockhash");
    let (st, stale) = send(&d, &t, json!({"to": to, "amount": "100"})).await;
    assert_eq!((st, stale["status"].as_str()), (200, Some("CONFIRMED")), "{stale}");
    assert_eq!(proxy.count("getLatestBlockhash") - hashes, 2, "the build's blockhash, then the refresh");
    assert_eq!(proxy.count("simulateTransaction"), 1, "a refresh re-signs the same instructions, no rebuild");

    // Expired: ~170 blocks pass (lastValidBlockHeight is height + 151); it is rebuilt from scratch.
    let n = node.clone();
    proxy.before("simulateTransaction", move || n.advance(170));
    let (st, expired) = send(&d, &t, json!({"to": to, "amount": "200"})).await;
    assert_eq!((st, expired["status"].as_str()), (200, Some("CONFIRMED")), "{expired}");
    assert_eq!(proxy.count("simulateTransaction"), 3, "built and simulated twice");

    // A slot jump of 100000 with block height unchanged: no refresh, no rebuild.
    let n = node.clone();
    proxy.before("simulateTransaction", move || {
        let slot = n.rpc("getSlot", json!([{"commitment": "confirmed"}])).as_u64().unwrap();
        n.rpc("surfnet_timeTravel", json!([{"absoluteSlot": slot + 100_000}]));
    });
    let hashes = proxy.count("getLatestBlockhash");
    let (st, jumped) = send(&d, &t, json!({"to": to, "amount": "300"})).await;
    assert_eq!((st, jumped["status"].as_str()), (200, Some("CONFIRMED")), "{jumped}");
    assert!(proxy.count("getLatestBlockhash") - hashes <= 1, "no refresh");
    assert_eq!(proxy.count("getSlot"), 0, "the daemon never asks for the slot");
    assert!(proxy.count("getBlockHeight") >= 3);
    assert_eq!(balance(&node.url, &to), SOL + 600);

    let mut d = d;
    d.terminate();
    assert_eq!(row_meta(&d, stale["transactionId"].as_str().unwrap())["retryCount"], 1);
    assert_eq!(row_meta(&d, expired["transactionId"].as_str().unwrap())["retryCount"], 1);
    assert_eq!(row_meta(&d, jumped["transactionId"].as_str().unwrap())["retryCount"], 0);
}

// ACC-133, ACC-134, ACC-139, issue 6: the caches and the fee bump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_and_the_fee_bump() {
    let node = Surfnet::start();
    let proxy = RpcProxy::start(&node.url);
    let d = daemon(&proxy.url, &[]).await;
    let (_, t) = funded_agent(&d, &node.url, 2, json!({})).await;
    let to = existing_address(&node.url);

    // Two builds within 5 s share a blockhash; the fee median is fetched once per 30 s.
    let (b0, f0) = (proxy.count("getLatestBlockhash"), proxy.count("getRecentPrioritizationFees"));
    for amount in ["1", "2"] {
        let (st, v) = send(&d, &t, json!({"to": to, "amount": amount})).await;
        assert_eq!(st, 200, "{v}");
    }
    assert_eq!(proxy.count("getLatestBlockhash") - b0, 1);
    assert_eq!(proxy.count("getRecentPrioritizationFees") - f0, 1);
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (st, _) = send(&d, &t, json!({"to": to, "amount": "3"})).await;
    assert_eq!(st, 200);
    assert_eq!(proxy.count("getLatestBlockhash") - b0, 2, "a new blockhash after 5 s");
    assert_eq!(proxy.count("getRecentPrioritizationFees") - f0, 1, "the fee is still cached");

    // Fee bump: one insufficient-fee answer, then success at max(ceil(1.5 × 0), 1000).
    proxy.fail("sendTransaction", 1, -32002, "Transaction simulation failed: InsufficientFeeForTransaction");
    let (st, bumped) = send(&d, &t, json!({"to": to, "amount": "4"})).await;
    assert_eq!((st, bumped["status"].as_str()), (200, Some("CONFIRMED")), "{bumped}");
    let (_, audit) = d.master("GET", "/v1/admin/audit-log?eventType=FEE_BUMP_ATTEMPTED", None).await;
    let row = &audit["entries"][0];
    assert_eq!(row["txId"], bumped["transactionId"]);
    assert_eq!(
        (row["details"]["originalCuPrice"].as_u64(), row["details"]["bumpedCuPrice"].as_u64()),
        (Some(0), Some(1000))
    );
    // Twice: the bump happens once, then the transaction fails.
    proxy.fail("sendTransaction", 2, -32002, "Transaction simulation failed: InsufficientFeeForTransaction");
    let (st, v) = send(&d, &t, json!({"to": to, "amount": "5"})).await;
    assert_eq!(
        (st, v["code"].as_str(), v["details"]["category"].as_str()),
        (408, Some("SOLANA_INSUFFICIENT_FEE"), Some("STALE")),
        "{v}"
    );
    assert_eq!(balance(&node.url, &to), SOL + 1 + 2 + 3 + 4);
    let mut d = d;
    d.terminate();
    assert_eq!(row_meta(&d, bumped["transactionId"].as_str().unwrap())["cuPrice"], 1000);

    // A failing fee lookup gives 0 and the build succeeds (a fresh daemon: an empty cache).
    let proxy2 = RpcProxy::start(&node.url);
    let d2 = daemon(&proxy2.url, &[]).await;
    let (_, t2) = funded_agent(&d2, &node.url, 1, json!({})).await;
    proxy2.fail("getRecentPrioritizationFees", 5, -32603, "internal error");
    let (st, v) = send(&d2, &t2, json!({"to": to, "amount": "6"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let (st, _) = send(&d2, &t2, json!({"to": to, "amount": "7"})).await;
    assert_eq!(st, 200);
    assert_eq!(proxy2.count("getRecentPrioritizationFees"), 1, "the failure is cached like a success");
}

// Issue 6 / ACC-080: a Ledger Solana agent (fake device over TCP) signs with INS 0x06.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_solana_agent_signs_on_the_fake_device() {
    let node = Surfnet::start();
    let fake = waiaas_backends::ledger::fake::FakeDevice::default();
    let server = fake.serve_tcp().unwrap();
    let ledger = ("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"", server.address()));
    let d = daemon(&node.url, &[ledger]).await;
    let (agent, t) = funded_agent(&d, &node.url, 1, json!({"backend": "ledger"})).await;
    assert_eq!(agent["address"], fake.solana_pubkey("44'/501'/0'/0'"));
    let to = existing_address(&node.url);
    let (st, v) = send(&d, &t, json!({"to": to, "amount": "4242"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    assert_eq!(balance(&node.url, &to), SOL + 4242);
    assert!(fake.log().iter().any(|(_, apdu)| apdu[1] == 0x06), "signed with SIGN_MESSAGE (INS 0x06)");
    drop(server);
}

// 03-keys.md §11.7: a slow button press can outlive the blockhash, so a Ledger Solana agent's
// signature is guarded again after the device answers. The node advances while the device
// "waits": ~125 blocks leave < 20 s of life (refresh, sign again, same build); ~170 blocks
// pass lastValidBlockHeight (rebuild from scratch, sign again). Either way it lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_signature_that_outlives_its_blockhash_is_guarded_again() {
    let node = Arc::new(Surfnet::start());
    let proxy = Arc::new(RpcProxy::start(&node.url));
    let fake = waiaas_backends::ledger::fake::FakeDevice::default();
    let server = fake.serve_tcp().unwrap();
    let ledger = ("ledger", format!("transport = \"tcp\"\ntcp_address = \"{}\"", server.address()));
    let d = daemon(&proxy.url, &[ledger]).await;
    let (_, t) = funded_agent(&d, &node.url, 1, json!({"backend": "ledger"})).await;
    let to = existing_address(&node.url);
    let signs = || fake.log().iter().filter(|(_, apdu)| apdu[1] == 0x06).count();

    // Baseline: how many SIGN_MESSAGE APDUs one signature takes.
    let (st, v) = send(&d, &t, json!({"to": to, "amount": "100"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{v}");
    let per_signature = signs();
    assert!(per_signature > 0);

    for (blocks, simulations) in [(125, 1), (170, 2)] {
        // Let the daemon's 5 s blockhash cache lapse, so the build fetches a blockhash whose
        // lastValidBlockHeight is the current height + 151. (A cached one can predate the
        // node's first transaction, at which surfpool re-bases its block height, and then
        // carry ~30 blocks more life than the arithmetic below assumes.)
        tokio::time::sleep(Duration::from_millis(5500)).await;
        // After the simulation, the first getBlockHeight is the guard before signing and the
        // second the guard after the device answered: the chain moves just before that one.
        // The hook holds the proxy weakly: an unconsumed hook must not keep it (and the node)
        // alive past a failed assertion.
        let (p, n) = (Arc::downgrade(&proxy), node.clone());
        proxy.before("simulateTransaction", move || {
            if let Some(p) = p.upgrade() {
                p.before_nth("getBlockHeight", 1, move || n.advance(blocks));
            }
        });
        let (sims, before) = (proxy.count("simulateTransaction"), signs());
        let (st, v) = send(&d, &t, json!({"to": to, "amount": blocks.to_string()})).await;
        assert_eq!((st, v["status"].as_str()), (200, Some("CONFIRMED")), "{blocks} blocks: {v}");
        assert_eq!(signs() - before, 2 * per_signature, "{blocks} blocks: the device signed twice");
        assert_eq!(proxy.count("simulateTransaction") - sims, simulations, "{blocks} blocks");
    }
    assert_eq!(balance(&node.url, &to), SOL + 100 + 125 + 170, "each transfer landed once");
    drop(server);
}
