//! The policy stage's cost (issue #12), both halves of it that run inside every decision's
//! write transaction (so every request pays them serially):
//!
//! - `policy_eval/{1,10,100}`: the engine on 1, 10 and 100 enabled policies of mixed types,
//!   passing, for a native transfer — the engine alone (`evaluate`) and what the decision
//!   closure does with the snapshot's effective policies (`parse_evaluate`: parse each stored
//!   rules document, evaluate).
//! - `decision_snapshot/…`: the snapshot read with and without a RATE_LIMIT policy against an
//!   agent with 0 and 100,000 transactions in the last day (counted by the rate counters), and
//!   with 100 stored policies (reading, decoding and resolving them).
//!
//! Run: `cargo bench --bench policy`

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use uuid::Uuid;
use waiaas::bench_support::PolicyProbe;
use waiaas_storage::*;

const NOW: u64 = 1_750_000_000;
const TO: &str = "0x1111111111111111111111111111111111111111";

fn agent(chain: Chain) -> AgentRecord {
    let mut a = AgentRecord::new(Uuid::now_v7(), "bench".into(), chain, Network::Testnet, None, NOW);
    if chain == Chain::Solana {
        a.network = Network::Devnet;
    }
    a.public_key = "0x2222222222222222222222222222222222222222".into();
    a
}

fn transfer(a: &AgentRecord, to: &str, created_at: u64) -> TransactionRecord {
    TransactionRecord::native_transfer(Uuid::now_v7(), a, None, to, 1000, created_at)
}

/// The `i`-th policy of a mixed set; each one applies to the agent and lets the transfer pass.
fn mixed(i: usize) -> (PolicyType, Value) {
    let addr = |n: usize| format!("0x{:040x}", n + 0x1000);
    match i % 8 {
        0 => (
            PolicyType::SpendingLimit,
            json!({"instant_max": "1000000", "notify_max": "2000000", "delay_max": "3000000",
                   "instant_max_usd": "100", "notify_max_usd": "1000", "delay_max_usd": "10000"}),
        ),
        1 => (PolicyType::Whitelist, json!({"allowed_addresses": [addr(i), addr(i + 1), TO]})),
        2 => {
            (PolicyType::TimeRestriction, json!({"allowed_hours": {"start": 0, "end": 0}, "timezone": "Europe/Berlin"}))
        }
        3 => (PolicyType::RateLimit, json!({"max_tx_per_hour": 1000, "max_tx_per_day": 10000})),
        4 => (PolicyType::AllowedTokens, json!({"tokens": [{"mint": addr(i), "symbol": "T"}], "allow_native": true})),
        5 => (PolicyType::ContractWhitelist, json!({"contracts": [{"address": addr(i)}]})),
        6 => (PolicyType::ApprovedSpenders, json!({"spenders": [{"address": addr(i)}]})),
        _ => (PolicyType::MethodWhitelist, json!({"methods": [{"address": addr(i), "selector": "0xa9059cbb"}]})),
    }
}

fn policy(kind: PolicyType, rules: Value, priority: i32) -> PolicyRecord {
    PolicyRecord { chain: Some(Chain::Ethereum), priority, ..PolicyRecord::new(Uuid::now_v7(), kind, rules, NOW) }
}

fn policy_eval(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_eval");
    for n in [1usize, 10, 100] {
        let a = agent(Chain::Ethereum);
        let records: Vec<PolicyRecord> =
            (0..n).map(mixed).enumerate().map(|(i, (k, r))| policy(k, r, i as i32)).collect();
        let probe = PolicyProbe::new(a.clone(), records, transfer(&a, TO, NOW));
        assert_eq!(probe.evaluate(), "INSTANT");
        eprintln!("policy_eval/{n}: {} effective after scope resolution", probe.effective());
        group.bench_function(format!("{n}/evaluate"), |b| b.iter(|| probe.evaluate()));
        group.bench_function(format!("{n}/parse_evaluate"), |b| b.iter(|| probe.parse_evaluate()));
    }
    group.finish();
}

fn decision_snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision_snapshot");
    group.sample_size(50);
    for history in [0usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("bench.redb"), NOW).unwrap();
        let ctx = OpCtx::new("system", NOW);
        let a = agent(Chain::Solana);
        store.insert_agent(&a, &ctx).unwrap();
        // A day of finished transactions, spread evenly over the last 86,400 s.
        for chunk in (0..history).collect::<Vec<_>>().chunks(10_000) {
            let rows: Vec<TransactionRecord> = chunk
                .iter()
                .map(|i| {
                    let at = NOW - 86_399 + (*i as u64 * 86_399 / history as u64);
                    let mut t = transfer(&a, "x", at);
                    t.status = TxStatus::Failed;
                    t.error = Some("INTERNAL_ERROR".into());
                    t.updated_at = at;
                    t
                })
                .collect();
            store.redb().expect("a redb store").raw_insert_transactions(&rows).unwrap();
        }
        let probe = transfer(&a, "x", NOW);
        group.bench_function(format!("history_{history}/no_rate_limit"), |b| {
            b.iter(|| store.dry_run_snapshot(probe.clone(), NOW).unwrap())
        });
        let rate =
            policy(PolicyType::RateLimit, json!({"max_tx_per_hour": 1_000_000, "max_tx_per_day": 10_000_000}), 10);
        let rate = PolicyRecord { chain: None, ..rate };
        store.insert_policy(&rate, &ctx).unwrap();
        let snap = store.dry_run_snapshot(probe.clone(), NOW).unwrap();
        assert_eq!(snap.rate_24h.count, history as u64, "every row of the day is counted");
        group.bench_function(format!("history_{history}/rate_limit"), |b| {
            b.iter(|| store.dry_run_snapshot(probe.clone(), NOW).unwrap())
        });
        if history == 0 {
            // 99 more policies (global, chain solana, mixed types): what reading them costs.
            for i in 1..100 {
                let (k, r) = mixed(i);
                let r = match k {
                    PolicyType::Whitelist => json!({"allowed_addresses": []}),
                    PolicyType::AllowedTokens | PolicyType::ContractWhitelist | PolicyType::ApprovedSpenders => {
                        json!({})
                    }
                    PolicyType::MethodWhitelist => continue,
                    _ => r,
                };
                store
                    .insert_policy(&PolicyRecord { chain: Some(Chain::Solana), ..policy(k, r, i as i32) }, &ctx)
                    .unwrap();
            }
            group.bench_function("history_0/policies_100", |b| {
                b.iter(|| store.dry_run_snapshot(probe.clone(), NOW).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, policy_eval, decision_snapshot);
criterion_main!(benches);
