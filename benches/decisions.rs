//! Durable signed decisions per second (issue #21), in process: N sender threads each run the
//! send path's storage schedule against one real redb file, with a stub chain (nothing is
//! submitted; the chain "confirms" at once):
//!
//! 1. `record_and_decide` — request, decision (INSTANT) and claim: one **lazy** commit;
//! 2. a real secp256k1 signature (RFC 6979, as the keystore signer makes it);
//! 3. `checkpoint` with the signed bytes — **durable**, the only wait;
//! 4. `record_broadcast` with the confirmed outcome — lazy.
//!
//! A decision counts once its signed checkpoint returned (durable). Reported per sender count:
//! decisions/s, p50/p99 of the time from recording to the durable checkpoint, commits and
//! fsyncs per send, and the group-commit batch size (commits made durable per fsync).
//!
//! Run: `cargo bench --bench decisions [-- --senders 1,8,32,128 --sends 4000]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use alloy::signers::SignerSync;
use serde_json::{Map, json};
use uuid::Uuid;
use waiaas_storage::*;

const NOW: u64 = 1_750_000_000;

fn agent(store: &Store, i: usize) -> AgentRecord {
    let mut a = AgentRecord::new(Uuid::now_v7(), format!("bench-{i}"), Chain::Ethereum, Network::Testnet, None, NOW);
    a.public_key = format!("0x{:040x}", i + 1);
    a.chain_id = Some(31337);
    store.insert_agent(&a, &OpCtx::new("bench", NOW)).unwrap();
    a
}

fn instant() -> DecisionOutcome {
    DecisionOutcome::Queue {
        tier: Tier::Instant,
        queue_expires_at: None,
        decision: json!({"tier": "INSTANT", "policyId": null, "downgraded": false}),
        approval_owner: None,
        audits: Vec::new(),
    }
}

/// One send through the schedule; returns the time to the durable checkpoint.
fn send(store: &Store, a: &AgentRecord, signer: &alloy::signers::local::PrivateKeySigner, n: u64) -> Duration {
    let t0 = Instant::now();
    let rec = TransactionRecord::native_transfer(
        Uuid::now_v7(),
        a,
        None,
        "0x000000000000000000000000000000000000bEEF",
        n,
        NOW,
    );
    let ctx = OpCtx::new(format!("agent:{}", a.id), NOW);
    let id = rec.id;
    match store.record_and_decide(&rec, &[], None, &ctx, true, |_| Ok(instant())).unwrap() {
        Recorded::Decided(row, _) => assert_eq!(row.status, TxStatus::Executing),
        Recorded::Existing(_) => unreachable!("no idempotency key"),
    }
    let hash = B256::from_slice(&id.as_u128().to_be_bytes().repeat(2));
    let sig = signer.sign_hash_sync(&hash).unwrap();
    let bytes = format!("0x02{}", hex::encode(sig.as_bytes()));
    let expected = format!("{hash}");
    store.checkpoint(id, Checkpoint::signed(bytes, expected.clone()), NOW).unwrap();
    let took = t0.elapsed();
    let b = Broadcast { hash: expected, uncertain: false, metadata: Map::new() };
    store
        .record_broadcast(id, b, ChainOutcome::Confirmed { fee: Some(Amount::from_u64(21_000)), block: n }, &ctx)
        .unwrap();
    took
}

fn run(senders: usize, total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::create(&dir.path().join("bench.redb"), NOW).unwrap());
    let agents: Vec<AgentRecord> = (0..senders).map(|i| agent(&store, i)).collect();
    let per = total.div_ceil(senders);
    let before = store.stats();
    let started = Instant::now();
    let threads: Vec<_> = agents
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let store = store.clone();
            std::thread::spawn(move || {
                let signer =
                    alloy::signers::local::PrivateKeySigner::from_bytes(&B256::repeat_byte(i as u8 + 1)).unwrap();
                (0..per).map(|n| send(&store, &a, &signer, n as u64 + 1)).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut lat: Vec<f64> =
        threads.into_iter().flat_map(|t| t.join().unwrap()).map(|d| d.as_secs_f64() * 1e3).collect();
    let wall = started.elapsed().as_secs_f64();
    let after = store.stats();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = lat.len() as f64;
    let pct = |p: f64| lat[((p / 100.0) * (n - 1.0)).round() as usize];
    let commits = (after.commits - before.commits) as f64;
    let fsyncs = (after.fsyncs - before.fsyncs) as f64;
    println!(
        "| {senders} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.3} | {:.1} |",
        lat.len(),
        n / wall,
        pct(50.0),
        pct(99.0),
        commits / n,
        fsyncs / n,
        commits / fsyncs.max(1.0),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds it; only `cargo bench` runs it.
    }
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let senders: Vec<usize> =
        arg("--senders").unwrap_or_else(|| "1,8,32,128".into()).split(',').map(|s| s.trim().parse().unwrap()).collect();
    let total: usize = arg("--sends").map(|s| s.parse().unwrap()).unwrap_or(4000);
    println!(
        "| senders | sends | durable signed decisions/s | p50 ms | p99 ms | commits/send | fsyncs/send | batch (commits/fsync) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for s in senders {
        run(s, total);
    }
}
