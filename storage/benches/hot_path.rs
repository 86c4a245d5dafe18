//! The storage hot path: one durable (`Durability::Immediate`, fsync) redb write transaction
//! that performs a status compare-and-swap and appends a hash-chained audit row.
//!
//! Every signed request pays several of these, so their median is the floor of per-request
//! daemon latency. (The decision snapshot against a long history is in the root package's
//! `benches/policy.rs`, which can build that history in bulk.)
//! Run: `cargo bench -p waiaas-storage --bench hot_path`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use uuid::Uuid;
use waiaas_storage::*;

const NOW: u64 = 1_750_000_000;

fn agent() -> AgentRecord {
    let mut a = AgentRecord::new(Uuid::now_v7(), "bench".into(), Chain::Solana, Network::Devnet, None, NOW);
    a.public_key = "bench-pk".into();
    a
}

fn transfer(agent: &AgentRecord) -> TransactionRecord {
    let mut t = TransactionRecord::pending(
        Uuid::now_v7(),
        agent,
        None,
        TxType::Transfer,
        json!({"type": "TRANSFER", "to": "x", "amount": "1"}),
        NOW,
    );
    t.amount = Amount::from_u64(1);
    t.native_amount = Amount::from_u64(1);
    t.to_address = Some("x".into());
    t
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

    // Transaction CAS PENDING -> FAILED (index maintenance, reservation rule) + its TX_FAILED
    // audit row. Rows are prepared outside the timed region.
    let failure = TxFailure::new("INTERNAL_ERROR");
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
                store.fail_transaction(*id, TxStatus::Pending, &failure, &ctx).unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
