//! The storage hot path: one durable (`Durability::Immediate`, fsync) redb write transaction
//! that performs a status compare-and-swap and appends a hash-chained audit row.
//!
//! Every signed request pays several of these, so their median is the floor of per-request
//! daemon latency. Also: the decision snapshot's cost against a long history.
//! Run: `cargo bench -p waiaas-storage --bench hot_path`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use uuid::Uuid;
use waiaas_storage::*;

const NOW: u64 = 1_750_000_000;

fn agent() -> AgentRecord {
    AgentRecord {
        id: Uuid::now_v7(),
        name: "bench".into(),
        chain: Chain::Solana,
        network: Network::Devnet,
        chain_id: None,
        backend: Backend::Keystore,
        derivation_path: None,
        public_key: "bench-pk".into(),
        status: AgentStatus::Active,
        owner_address: None,
        owner_verified: false,
        owner_verified_at: None,
        suspended_at: None,
        suspension_reason: None,
        terminated_at: None,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn transfer(agent: &AgentRecord) -> TransactionRecord {
    TransactionRecord {
        id: Uuid::now_v7(),
        agent_id: agent.id,
        session_id: None,
        parent_id: None,
        batch_index: None,
        chain: agent.chain,
        network: agent.network,
        tx_type: TxType::Transfer,
        status: TxStatus::Pending,
        tier: None,
        request: json!({"type": "TRANSFER", "to": "x", "amount": "1"}),
        amount: Amount::from_u64(1),
        native_amount: Amount::from_u64(1),
        to_address: Some("x".into()),
        token_mint: None,
        contract_address: None,
        method_signature: None,
        spender_address: None,
        approved_amount: None,
        tx_hash: None,
        reserved_amount: None,
        queued_at: None,
        queue_expires_at: None,
        executed_at: None,
        idempotency_key: None,
        error: None,
        metadata: Default::default(),
        created_at: NOW,
        updated_at: NOW,
    }
}

fn hot_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(&dir.path().join("bench.redb"), NOW).unwrap();
    let ctx = OpCtx::new("system", NOW);
    let a = agent();
    store.insert_agent(&a, &ctx).unwrap();

    let mut group = c.benchmark_group("storage");
    group.sample_size(30).measurement_time(Duration::from_secs(15));

    // Agent status CAS (ACTIVE <-> SUSPENDED) + audit append: read, compare, write, chain.
    let mut active = true;
    group.bench_function("durable_cas_plus_audit/agent_status", |b| {
        b.iter(|| {
            let (from, to) = if active {
                (AgentStatus::Active, AgentStatus::Suspended)
            } else {
                (AgentStatus::Suspended, AgentStatus::Active)
            };
            store.set_agent_status(a.id, from, to, Some("bench".into()), &ctx).unwrap();
            active = !active;
        })
    });

    // Transaction CAS QUEUED -> EXECUTING (index maintenance) + TX_APPROVED-style audit row.
    // Rows are prepared outside the timed region.
    group.bench_function("durable_cas_plus_audit/tx_transition", |b| {
        b.iter_custom(|iters| {
            let ids: Vec<Uuid> = (0..iters)
                .map(|_| {
                    let t = transfer(&a);
                    store.record_request(&t, &[], None, &ctx).unwrap();
                    t.id
                })
                .collect();
            let start = Instant::now();
            for id in &ids {
                let ev = AuditEvent::new("TX_CLAIMED", "system").tx(*id);
                store
                    .transition(
                        *id,
                        TxStatus::Pending,
                        TxStatus::Queued,
                        TxPatch { tier: Some(Tier::Instant), ..TxPatch::default() },
                        Some(ev),
                        &ctx,
                    )
                    .unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// The decision snapshot (read inside every decision's write transaction) against an agent with
/// a day's history of 0 and 2,000 finished transactions: without a RATE_LIMIT policy it reads
/// only the agent's active rows, so its cost must not grow with history; with one it scans and
/// decodes the day (what that policy costs).
fn decision_snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision_snapshot");
    group.sample_size(50);
    for history in [0usize, 2000] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("bench.redb"), NOW).unwrap();
        let ctx = OpCtx::new("system", NOW);
        let a = agent();
        store.insert_agent(&a, &ctx).unwrap();
        for _ in 0..history {
            let t = transfer(&a);
            store.record_request(&t, &[], None, &ctx).unwrap();
            store.transition(t.id, TxStatus::Pending, TxStatus::Failed, TxPatch::default(), None, &ctx).unwrap();
        }
        let probe = transfer(&a);
        group.bench_function(format!("history_{history}"), |b| {
            b.iter(|| store.dry_run_snapshot(probe.clone(), NOW).unwrap())
        });
        if history > 0 {
            let rate = PolicyRecord {
                id: Uuid::now_v7(),
                agent_id: None,
                chain: None,
                policy_type: PolicyType::RateLimit,
                rules: json!({"max_per_hour": 10}),
                priority: 10,
                enabled: true,
                created_at: NOW,
                updated_at: NOW,
            };
            store.insert_policy(&rate, &ctx).unwrap();
            group.bench_function(format!("history_{history}_with_rate_limit_policy"), |b| {
                b.iter(|| store.dry_run_snapshot(probe.clone(), NOW).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hot_path, decision_snapshot);
criterion_main!(benches);
