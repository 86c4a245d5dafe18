//! AutoStop's cost per CONFIRMED event against the day's history (issue #21): the storage reads
//! that evaluating DAILY_LIMIT_THRESHOLD and ANOMALY_PATTERN makes for one confirmation, for an
//! agent with 0, 10,000 and 100,000 confirmed transfers earlier the same UTC day.
//!
//! - `autostop_event/counters/N`: what the evaluation reads since schema v3 — the day's
//!   autonomous volume (one counter) and the same-address count in the last hour (a range
//!   capped at the rule's stop threshold, 10 here).
//! - `autostop_event/day_scan/N`: what it read before — every row the agent created since
//!   midnight, decoded (the dashboard's `confirmed_volume_since` is that scan).
//! - `confirm_with_counters/N`: the write side, one confirmation's durable commit with the
//!   counters kept in step.
//!
//! Run: `cargo bench --bench autostop`

use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;
use waiaas_storage::*;

/// Midday, UTC: the history fits in the day before it.
const NOW: u64 = 1_750_032_000 + 43_200;

fn agent() -> AgentRecord {
    let mut a = AgentRecord::new(Uuid::now_v7(), "bench".into(), Chain::Ethereum, Network::Testnet, Some(31337), NOW);
    a.public_key = "0x2222222222222222222222222222222222222222".into();
    a
}

fn confirmed(a: &AgentRecord, i: u64) -> TransactionRecord {
    let created_at = NOW - 1 - (i % 40_000);
    let id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, created_at, (i % 999_999) as u32));
    let to = format!("0x{:040x}", i % 50);
    let mut t = TransactionRecord::native_transfer(id, a, None, &to, 1000, created_at);
    t.tier = Some(Tier::Instant);
    t.status = TxStatus::Confirmed;
    t.tx_hash = Some(format!("0x{i:064x}"));
    t.executed_at = Some(created_at);
    t
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("autostop_event");
    g.sample_size(20);
    for n in [0u64, 10_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("b.redb"), NOW).unwrap();
        let ctx = OpCtx::new("system", NOW);
        let a = agent();
        store.insert_agent(&a, &ctx).unwrap();
        let rows: Vec<_> = (0..n).map(|i| confirmed(&a, i)).collect();
        for chunk in rows.chunks(10_000) {
            store.redb().expect("a redb store").raw_insert_transactions(chunk).unwrap();
        }
        let to = format!("0x{:040x}", 7);
        let midnight = NOW - NOW % 86_400;
        // The two agree (a bench that measured different answers would prove nothing).
        let expected = Amount::from_u64(1000 * n);
        assert_eq!(store.autonomous_volume_on_day(a.id, NOW).unwrap(), expected);
        assert_eq!(store.confirmed_volume_since(a.id, midnight).unwrap(), expected);
        g.bench_function(format!("counters/{n}"), |b| {
            b.iter(|| {
                let v = store.autonomous_volume_on_day(a.id, NOW).unwrap();
                let k = store.autonomous_transfers_to_since(a.id, &to, NOW - 3600, 10).unwrap();
                (v, k)
            })
        });
        if n <= 10_000 {
            // 100k rows take ~1 s per iteration; 10k shows the slope.
            g.bench_function(format!("day_scan/{n}"), |b| {
                b.iter(|| store.confirmed_volume_since(a.id, midnight).unwrap())
            });
        }
        let mut i = 1_000_000u64;
        g.bench_function(format!("confirm_with_counters/{n}"), |b| {
            b.iter(|| {
                let mut t = confirmed(&a, i);
                t.created_at = NOW;
                t.id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, NOW, (i % 999_999) as u32));
                t.status = TxStatus::Submitted;
                t.executed_at = None;
                i += 1;
                store.redb().expect("a redb store").raw_insert_transactions(std::slice::from_ref(&t)).unwrap();
                store.confirm_transaction(t.id, None, Some(1), &ctx).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
