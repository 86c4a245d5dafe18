//! The kill switch's cascade (issue #14): `activate_kill_switch` — one write transaction that
//! flips the state, revokes sessions, cancels every PENDING/QUEUED row (reservations released)
//! and suspends every ACTIVE agent — on a store holding 100, 1,000 and 5,000 rows to cancel
//! across ten agents. The HTTP answer follows this commit with in-memory steps only (guard,
//! keystore lock, worker stop), so this is what the 200 ms response target is about.
//!
//! Run: `cargo bench --bench killswitch`

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use uuid::Uuid;
use waiaas_storage::*;

const NOW: u64 = 1_750_000_000;

/// A fresh store with ten ACTIVE agents and `rows` PENDING transfers spread over them.
fn store_with(rows: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(&dir.path().join("bench.redb"), NOW).unwrap();
    let ctx = OpCtx::new("bench", NOW);
    let agents: Vec<AgentRecord> = (0..10)
        .map(|i| {
            let mut a = AgentRecord::new(Uuid::now_v7(), format!("a{i}"), Chain::Ethereum, Network::Testnet, None, NOW);
            a.public_key = format!("0x{:040x}", i + 1);
            a.chain_id = Some(31337);
            store.insert_agent(&a, &ctx).unwrap();
            a
        })
        .collect();
    let txs: Vec<TransactionRecord> = (0..rows)
        .map(|i| {
            let a = &agents[i % agents.len()];
            let mut t = TransactionRecord::native_transfer(
                Uuid::now_v7(),
                a,
                None,
                "0x1111111111111111111111111111111111111111",
                1000,
                NOW,
            );
            t.reserved_amount = Some(t.amount);
            t
        })
        .collect();
    for chunk in txs.chunks(1000) {
        store.redb().expect("a redb store").raw_insert_transactions(chunk).unwrap();
    }
    (dir, store)
}

fn cascade(c: &mut Criterion) {
    let mut g = c.benchmark_group("activate_kill_switch");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for rows in [100usize, 1_000, 5_000] {
        g.bench_function(format!("rows_{rows}"), |b| {
            b.iter_batched(
                || store_with(rows),
                |(dir, store)| {
                    let r = store
                        .activate_kill_switch("bench", KillSwitchActor::Admin, &OpCtx::new("admin", NOW + 1))
                        .unwrap();
                    assert_eq!(r.transactions_cancelled as usize, rows);
                    (dir, store)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, cascade);
criterion_main!(benches);
