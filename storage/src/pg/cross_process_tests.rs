//! 13-postgres-ha.md §9, the "exactly one of N" line: two processes × 10 threads on one database. The test re-runs its own binary twice
//! as workers (`WAIAAS_ACC302_CHILD`); each worker opens its own pool on the same database,
//! waits for a common start instant and fires 10 threads at once. Whatever the interleaving
//! between processes, exactly the allowed number succeed:
//! - 20 `decide_and_claim` of amount `a` against a session cap of `5a`: exactly 5 reserve;
//! - 20 approvals of one APPROVAL-tier transaction: exactly 1 approves;
//! - 20 kill-switch activations: exactly 1 activates;
//! - 2,000 EVM nonce assignments for one address (20 threads × 100): unique and contiguous.

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::PgStore;
use super::test_db::{TestDb, options};
use crate::tests::{agent, ctx, queue, session, transfer};
use crate::*;

const TEST: &str = "pg::cross_process_tests::two_processes_of_ten_threads_let_exactly_the_allowed_number_through";
const AMOUNT: u64 = 100;

/// The one EVM account the nonce race assigns from, locked as agent `agent`.
fn nonce_account(agent: Uuid) -> super::NonceAccount {
    super::NonceAccount { chain_id: 31337, address: "0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266".into(), agent }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One worker process: 10 threads run `phase` on its share of `ids`; prints `WON <n>`.
fn worker() {
    let env = |k: &str| std::env::var(k).unwrap();
    let store = Arc::new(PgStore::connect(options(&env("WAIAAS_ACC302_URL"), &env("WAIAAS_ACC302_CHILD"))).unwrap());
    store.adopt_epoch_for_tests(1);
    let ids: Vec<Uuid> = env("WAIAAS_ACC302_IDS").split(',').map(|s| s.parse().unwrap()).collect();
    let phase = env("WAIAAS_ACC302_PHASE");
    let start_at: u64 = env("WAIAAS_ACC302_START_MS").parse().unwrap();
    let cap = Amount::from_u64(5 * AMOUNT);
    let barrier = Arc::new(Barrier::new(ids.len()));
    let handles: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let (store, barrier, phase) = (store.clone(), barrier.clone(), phase.clone());
            std::thread::spawn(move || {
                barrier.wait();
                std::thread::sleep(Duration::from_millis(start_at.saturating_sub(now_ms())));
                match phase.as_str() {
                    "decide" => {
                        let (_, outcome) = store
                            .decide_and_claim(id, &ctx(), |snap| {
                                let used = snap.session.as_ref().unwrap().usage.total_amount;
                                let overflow = |_| StoreError::Invariant("amount overflow");
                                let after = used
                                    .checked_add(snap.session_reserved)
                                    .and_then(|x| x.checked_add(snap.tx.native_amount))
                                    .map_err(overflow)?;
                                Ok(if after > cap {
                                    DecisionOutcome::Cancel {
                                        error: "SESSION_LIMIT_TOTAL".into(),
                                        denial: None,
                                        audits: vec![],
                                    }
                                } else {
                                    queue(Tier::Instant)
                                })
                            })
                            .unwrap();
                        matches!(outcome, DecisionOutcome::Queue { .. })
                    }
                    "approve" => {
                        matches!(
                            store.approve_transaction(id, "owner", None, &ctx()).unwrap(),
                            ApprovalResult::Approved(_)
                        )
                    }
                    "kill" => store.activate_kill_switch("race", KillSwitchActor::Admin, &ctx()).is_ok(),
                    "nonce" => {
                        let account = nonce_account(id);
                        (0..100).all(|_| {
                            store.assign_evm_nonce(&account, Uuid::now_v7(), super::NonceSlot::Main, 0).is_ok()
                        })
                    }
                    other => panic!("phase {other}"),
                }
            })
        })
        .collect();
    let won = handles.into_iter().map(|h| h.join().unwrap()).filter(|w| *w).count();
    println!("WON {won}");
}

/// Runs two workers on `ids` (10 each) and returns how many calls won in total.
fn race(db: &TestDb, phase: &str, ids: &[Uuid]) -> usize {
    let start_at = now_ms() + 1500;
    let children: Vec<_> = (0..2)
        .map(|k| {
            let share: Vec<String> = ids.iter().skip(k * 10).take(10).map(Uuid::to_string).collect();
            Command::new(std::env::current_exe().unwrap())
                .args([TEST, "--exact", "--nocapture", "--test-threads", "1"])
                .env("WAIAAS_ACC302_CHILD", format!("worker-{k}"))
                .env("WAIAAS_ACC302_URL", db.url())
                .env("WAIAAS_ACC302_PHASE", phase)
                .env("WAIAAS_ACC302_IDS", share.join(","))
                .env("WAIAAS_ACC302_START_MS", start_at.to_string())
                .output()
                .unwrap()
        })
        .collect();
    children
        .iter()
        .map(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "worker failed: {text} {}", String::from_utf8_lossy(&out.stderr));
            // The harness prints its own progress around ours: take the digits after the marker.
            let after = text.split("WON ").nth(1).unwrap_or_else(|| panic!("no result: {text}"));
            after.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<usize>().unwrap()
        })
        .sum()
}

// ACC-302: caps, approvals, the kill switch and 2,000 nonce assignments across two processes.
#[test]
fn two_processes_of_ten_threads_let_exactly_the_allowed_number_through() {
    if std::env::var("WAIAAS_ACC302_CHILD").is_ok() {
        return worker();
    }
    let db = TestDb::new();
    let store = db.leader("parent");
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    let s = session(a.id, 1);
    store.create_session(&s, 5, &ctx()).unwrap();

    // Caps: 20 requests of `a` against a remaining cap of 5a.
    let ids: Vec<Uuid> = (0..20)
        .map(|_| {
            let t = transfer(&a, Some(s.id), AMOUNT);
            store.record_request(&t, &[], None, &ctx()).unwrap();
            t.id
        })
        .collect();
    assert_eq!(race(&db, "decide", &ids), 5, "exactly five reserve");
    let reserved: Vec<_> =
        ids.iter().filter_map(|id| store.get_transaction(*id).unwrap().unwrap().reserved_amount).collect();
    assert_eq!(reserved.len(), 5);

    // Approvals: 20 approvals of one transaction.
    let t = transfer(&a, None, 1);
    store.record_request(&t, &[], None, &ctx()).unwrap();
    store.decide_transaction(t.id, &ctx(), |_| Ok(queue(Tier::Approval))).unwrap();
    assert_eq!(race(&db, "approve", &[t.id; 20]), 1, "exactly one approval");
    let approval = store.get_approval(t.id).unwrap().unwrap();
    assert!(approval.approved_at.is_some() && approval.rejected_at.is_none());

    // The kill switch: 20 activations.
    assert_eq!(race(&db, "kill", &[Uuid::nil(); 20]), 1, "exactly one activation");
    assert_eq!(store.audit_by_event("KILL_SWITCH_ACTIVATED").unwrap().len(), 1);
    assert!(store.verify_audit().unwrap().valid, "one chain across both processes");

    // 2,000 nonce assignments for one address, 20 threads in two processes.
    let owner = Uuid::now_v7();
    assert_eq!(race(&db, "nonce", &[owner; 20]), 20, "every thread made its 100 assignments");
    let claimed = store.evm_nonce_claims_for_tests(31337, &nonce_account(owner).address).unwrap();
    assert_eq!(claimed, (0..2000).collect::<Vec<u64>>(), "unique and contiguous");
    assert_eq!(store.evm_nonce_next(31337, &nonce_account(owner).address).unwrap(), Some(2000));
}
