//! Storage rules proven against real redb files: uniqueness, closed enums and invariants,
//! cascades, compare-and-swap races, the audit chain, and the decision transaction.

use std::sync::{Arc, Barrier};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit_events::AuditEventType;
use crate::in_tx::TxPatch;
use crate::ops::decision::DecisionOutcome;
use crate::tables::*;
use crate::*;

pub(crate) const NOW: u64 = 1_750_000_000;

/// Reaches beneath the public operations to build states and tamper offline. An unchecked
/// transition and an edit of a stored row exist on both engines, so tests that use them run in
/// the conformance suite; `engine()` reaches redb's own internals (its tables, counters, write
/// slot, file), and a test that uses it is a redb engine test.
trait Hooks {
    fn engine(&self) -> &RedbStore;
    /// A CAS transition outside any operation (the transition table still applies).
    fn transition(
        &self,
        id: Uuid,
        from: TxStatus,
        to: TxStatus,
        patch: TxPatch,
        audit: Option<AuditEvent>,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError>;
    /// Rewrites an agent's stored record as `edit` leaves its JSON.
    fn tamper_agent(&self, a: &AgentRecord, edit: impl FnOnce(&mut Value));
    /// Rewrites audit row `seq` (`Some`), or deletes it (`None`).
    fn tamper_audit(&self, seq: u64, rec: Option<&AuditRecord>);
}

impl Hooks for Store {
    fn engine(&self) -> &RedbStore {
        self.redb().expect("a redb engine test")
    }

    fn transition(
        &self,
        id: Uuid,
        from: TxStatus,
        to: TxStatus,
        patch: TxPatch,
        audit: Option<AuditEvent>,
        ctx: &OpCtx,
    ) -> Result<TransactionRecord, StoreError> {
        match self {
            Store::Redb(r) => r.transition(id, from, to, patch, audit, ctx),
            #[cfg(feature = "postgres")]
            Store::Postgres(p) => p.transition_for_tests(id, from, to, patch, audit, ctx),
        }
    }

    fn tamper_agent(&self, a: &AgentRecord, edit: impl FnOnce(&mut Value)) {
        let mut v: Value = serde_json::to_value(a).unwrap();
        edit(&mut v);
        match self {
            Store::Redb(r) => r
                .write(|tx| {
                    tx.open_table(AGENTS)?.insert(a.id.as_u128(), serde_json::to_vec(&v).unwrap().as_slice())?;
                    Ok(())
                })
                .unwrap(),
            #[cfg(feature = "postgres")]
            Store::Postgres(p) => {
                p.exec_for_tests("UPDATE agents SET record = $2 WHERE id = $1", &[&a.id, &v]).unwrap();
            }
        }
    }

    fn tamper_audit(&self, seq: u64, rec: Option<&AuditRecord>) {
        match self {
            Store::Redb(r) => r
                .write(|tx| {
                    let mut t = tx.open_table(AUDIT_LOG)?;
                    match rec {
                        Some(rec) => t.insert(seq, serde_json::to_vec(rec).unwrap().as_slice())?,
                        None => t.remove(seq)?,
                    };
                    Ok(())
                })
                .unwrap(),
            #[cfg(feature = "postgres")]
            Store::Postgres(p) => {
                let seq = seq as i64;
                match rec {
                    Some(rec) => p.exec_for_tests(
                        "UPDATE audit_log SET record = $2 WHERE seq = $1",
                        &[&seq, &serde_json::to_value(rec).unwrap()],
                    ),
                    None => p.exec_for_tests("DELETE FROM audit_log WHERE seq = $1", &[&seq]),
                }
                .unwrap();
            }
        }
    }
}

/// The engine a test runs on: redb unless the conformance instantiation below says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EngineKind {
    Redb,
    #[cfg(feature = "postgres")]
    Postgres,
}

thread_local! {
    static ENGINE: std::cell::Cell<EngineKind> = const { std::cell::Cell::new(EngineKind::Redb) };
}

/// What keeps a test's store alive: its folder, or its PostgreSQL database.
pub(crate) enum Fixture {
    Dir(tempfile::TempDir),
    /// Dropping it drops the database.
    #[cfg(feature = "postgres")]
    Pg(#[allow(dead_code)] crate::pg::test_db::TestDb),
}

impl Fixture {
    /// The folder of a redb store (engine tests only).
    fn path(&self) -> &std::path::Path {
        match self {
            Fixture::Dir(d) => d.path(),
            #[cfg(feature = "postgres")]
            Fixture::Pg(_) => panic!("a redb engine test ran on PostgreSQL"),
        }
    }
}

/// A fresh, empty store on this test's engine; on PostgreSQL it leads (epoch 1).
pub(crate) fn temp_store() -> (Fixture, Store) {
    match ENGINE.get() {
        EngineKind::Redb => {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::create(&dir.path().join("waiaas.redb"), NOW).unwrap();
            (Fixture::Dir(dir), store)
        }
        #[cfg(feature = "postgres")]
        EngineKind::Postgres => {
            let db = crate::pg::test_db::TestDb::new();
            let store = Store::Postgres(db.leader("test"));
            (Fixture::Pg(db), store)
        }
    }
}

/// The conformance suite on PostgreSQL: each listed test runs again on a fresh database. A test
/// joins the list when the operations it uses have their PostgreSQL implementation; tests that
/// reach beneath the operations (`Engine`) stay redb engine tests.
#[cfg(feature = "postgres")]
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[test]
                fn $test() {
                    super::ENGINE.set(super::EngineKind::Postgres);
                    super::$test();
                }
            )*
        }
    };
}

#[cfg(feature = "postgres")]
conformance!(
    session_token_hash_is_unique,
    live_session_limit_counts_only_live_sessions,
    auto_stop_rule_scope_and_type_are_unique_and_nonces_single_use,
    a_second_wallet_connection_for_the_same_owner_and_chain_replaces_the_first,
    invariants_are_checked_before_any_write,
    owner_verification_flips_once_under_concurrency,
    two_concurrent_renewals_with_one_token_have_one_winner,
    dev_mode_marks_every_audit_row,
    idempotency_key_returns_the_existing_record_and_writes_nothing,
    approve_reject_and_expire_race_with_one_winner,
    twenty_concurrent_decisions_against_a_cap_of_five_reserve_exactly_five,
    a_failure_inside_decide_transaction_leaves_the_row_pending,
    session_cleanup_nulls_session_id_on_its_transactions,
    agent_name_and_public_key_are_unique_among_live_agents,
    an_owner_change_cancels_queued_approvals_but_not_delays,
    delete_agent_restricts_on_transactions_and_cascades_the_rest,
    sweep_pending_expires_only_old_rows,
    termination_cancels_queued_work_revokes_sessions_and_refuses_while_executing,
    startup_recovery_applies_the_restart_rules,
    confirmation_moves_the_reservation_into_session_usage,
    kill_switch_activation_cascades_once_and_leaves_executing_rows,
    transaction_hash_is_unique_among_top_level_rows,
    a_row_tampered_to_hold_an_invalid_enum_fails_to_deserialise,
    illegal_status_transitions_are_refused_and_terminal_rows_never_change,
    a_cas_transition_raced_from_16_threads_has_exactly_one_winner,
    the_snapshot_counts_in_flight_rows_and_reads_rates_only_for_a_rate_limit_policy,
    the_audit_chain_verifies_and_detects_a_tampered_row,
    a_truncated_audit_tail_is_detected,
    auto_stop_measures_count_the_agents_rows,
);

// ACC-301: every test listed in `conformance!` runs on PostgreSQL too, each on a fresh database
// (the redb engine tests left out test redb itself: its file, counters, snapshots and write
// slot). This test shows the PostgreSQL half fails, never skips, without the cluster: it runs
// one of them in a child process of this binary with `WAIAAS_TEST_PG_URL` removed.
#[test]
#[cfg(feature = "postgres")]
fn without_the_cluster_the_postgres_half_fails_rather_than_skips() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["tests::postgres::session_token_hash_is_unique", "--exact", "--test-threads", "1"])
        .env_remove("WAIAAS_TEST_PG_URL")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("1 failed") && text.contains("WAIAAS_TEST_PG_URL is unset"), "{text}");
}

/// The setup most tests share: a fresh store holding one ACTIVE Solana agent ("a").
fn store_with_agent() -> (Fixture, Store, AgentRecord) {
    let (dir, store) = temp_store();
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    (dir, store, a)
}

pub(crate) fn ctx() -> OpCtx {
    OpCtx::new("admin", NOW)
}

fn id_at(t: u64) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, t, rand_nanos()))
}

fn rand_nanos() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed) % 999_000
}

pub(crate) fn agent(name: &str, pk: &str) -> AgentRecord {
    let mut a = AgentRecord::new(id_at(NOW), name.into(), Chain::Solana, Network::Devnet, None, NOW);
    a.public_key = pk.into();
    a
}

fn constraints() -> SessionConstraints {
    SessionConstraints {
        max_amount_per_tx: None,
        max_total_amount: None,
        max_transactions: None,
        allowed_operations: None,
        allowed_destinations: None,
        allowed_tokens: None,
        allowed_contracts: None,
        allowed_spenders: None,
        expires_in: 86_400,
        max_renewals: 30,
        renewal_reject_window: 3600,
    }
}

pub(crate) fn session(agent: Uuid, token: u8) -> SessionRecord {
    SessionRecord {
        id: id_at(NOW),
        agent_id: agent,
        token_hash: Hash32([token; 32]),
        constraints: constraints(),
        usage: UsageStats::default(),
        expires_at: NOW + 86_400,
        absolute_expires_at: NOW + 30 * 86_400,
        renewal_count: 0,
        max_renewals: 30,
        last_renewed_at: None,
        revoked_at: None,
        revoke_trigger: None,
        created_at: NOW,
    }
}

pub(crate) fn transfer(agent: &AgentRecord, session: Option<Uuid>, amount: u64) -> TransactionRecord {
    TransactionRecord::native_transfer(id_at(NOW), agent, session, "x", amount, NOW)
}

pub(crate) fn queue(tier: Tier) -> DecisionOutcome {
    DecisionOutcome::Queue {
        tier,
        queue_expires_at: matches!(tier, Tier::Delay | Tier::Approval).then_some(NOW + 300),
        decision: json!({"tier": tier}),
        approval_owner: (tier == Tier::Approval).then(|| "owner".to_string()),
        audits: vec![AuditEvent::new(AuditEventType::TxQueued, "system")],
    }
}

/// QUEUED → EXECUTING through the public claim.
fn claim(store: &Store, id: Uuid) {
    assert!(matches!(store.claim_for_execution(id, &ctx()).unwrap(), ClaimOutcome::Claimed(_)));
}

fn audit_count(store: &Store) -> u64 {
    store.verify_audit().unwrap().head_seq
}

// ---------------------------------------------------------------- uniqueness

// ACC-048.
#[test]
fn agent_name_and_public_key_are_unique_among_live_agents() {
    let (_d, store) = temp_store();
    let a = agent("Alpha", "pk1");
    store.insert_agent(&a, &ctx()).unwrap();
    let before = audit_count(&store);

    let same_name = agent("ALPHA", "pk2");
    assert!(matches!(store.insert_agent(&same_name, &ctx()), Err(StoreError::Unique { index: "idx_agent_name" })));
    let same_pk = agent("beta", "pk1");
    assert!(matches!(store.insert_agent(&same_pk, &ctx()), Err(StoreError::Unique { index: "idx_agent_public_key" })));
    // Refused inserts leave no partial rows and no audit rows.
    assert!(store.get_agent(same_name.id).unwrap().is_none());
    assert!(store.get_agent(same_pk.id).unwrap().is_none());
    assert_eq!(audit_count(&store), before);

    // Renaming onto a taken name is refused too.
    let b = agent("beta", "pk2");
    store.insert_agent(&b, &ctx()).unwrap();
    assert!(matches!(store.update_agent_name(b.id, "alpha", &ctx()), Err(StoreError::Unique { .. })));

    // A terminated agent releases both.
    store.terminate_agent(a.id, &ctx()).unwrap();
    store.insert_agent(&agent("alpha", "pk1"), &ctx()).unwrap();
}

#[test]
fn session_token_hash_is_unique() {
    let (_d, store, a) = store_with_agent();
    store.create_session(&session(a.id, 7), 5, &ctx()).unwrap();
    let dup = session(a.id, 7);
    assert!(matches!(store.create_session(&dup, 5, &ctx()), Err(StoreError::Unique { index: "idx_session_token" })));
    assert!(store.get_session(dup.id).unwrap().is_none());
}

#[test]
fn live_session_limit_counts_only_live_sessions() {
    let (_d, store, a) = store_with_agent();
    let s1 = session(a.id, 1);
    store.create_session(&s1, 2, &ctx()).unwrap();
    store.create_session(&session(a.id, 2), 2, &ctx()).unwrap();
    let err = store.create_session(&session(a.id, 3), 2, &ctx()).unwrap_err();
    assert!(matches!(err, StoreError::Limit { limit: 2, current: 2, .. }));
    store.revoke_session(s1.id, Some("manual_revoke"), &ctx()).unwrap();
    store.create_session(&session(a.id, 3), 2, &ctx()).unwrap();
}

#[test]
fn transaction_hash_is_unique_among_top_level_rows() {
    let (_d, store, a) = store_with_agent();
    let submit = |t: &TransactionRecord| {
        store.record_request(t, &[], None, &ctx()).unwrap();
        store.decide_transaction(t.id, &ctx(), |_| Ok(queue(Tier::Instant))).unwrap();
        store.transition(t.id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), None, &ctx()).unwrap();
        store.transition(
            t.id,
            TxStatus::Executing,
            TxStatus::Submitted,
            TxPatch { tx_hash: Some("0xsame".into()), ..TxPatch::default() },
            None,
            &ctx(),
        )
    };
    submit(&transfer(&a, None, 1)).unwrap();
    let second = transfer(&a, None, 1);
    assert!(matches!(submit(&second), Err(StoreError::Unique { index: "idx_tx_hash" })));
    assert_eq!(store.get_transaction(second.id).unwrap().unwrap().status, TxStatus::Executing);
}

#[test]
fn idempotency_key_returns_the_existing_record_and_writes_nothing() {
    let (_d, store, a) = store_with_agent();
    let claim = IdempotencyClaim { key: "k1".into(), request_hash: Hash32([9; 32]) };
    let first = transfer(&a, None, 5);
    assert_eq!(store.record_request(&first, &[], Some(&claim), &ctx()).unwrap(), RecordOutcome::Recorded);
    let before = audit_count(&store);
    let second = transfer(&a, None, 5);
    match store.record_request(&second, &[], Some(&claim), &ctx()).unwrap() {
        RecordOutcome::Existing(rec) => assert_eq!(rec.tx_id, Some(first.id)),
        other => panic!("{other:?}"),
    }
    assert!(store.get_transaction(second.id).unwrap().is_none());
    assert_eq!(audit_count(&store), before);
    // The key is scoped to the agent: another agent may use it.
    let b = agent("b", "pk2");
    store.insert_agent(&b, &ctx()).unwrap();
    assert_eq!(
        store.record_request(&transfer(&b, None, 5), &[], Some(&claim), &ctx()).unwrap(),
        RecordOutcome::Recorded
    );
}

#[test]
fn auto_stop_rule_scope_and_type_are_unique_and_nonces_single_use() {
    let (_d, store) = temp_store();
    let rule = |agent: Option<Uuid>| AutoStopRuleRecord {
        agent_id: agent,
        ..AutoStopRuleRecord::new(
            id_at(NOW),
            AutoStopRuleType::HourlyRate,
            json!({"maxTxPerHour": 50}),
            AutoStopAction::SuspendAgent,
            NOW,
        )
    };
    store.insert_auto_stop_rule(&rule(None), &ctx()).unwrap();
    assert!(matches!(
        store.insert_auto_stop_rule(&rule(None), &ctx()),
        Err(StoreError::Unique { index: "idx_auto_stop_scope" })
    ));
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    store.insert_auto_stop_rule(&rule(Some(a.id)), &ctx()).unwrap();

    store.insert_nonce("n1", NOW + 300).unwrap();
    assert!(matches!(store.insert_nonce("n1", NOW + 300), Err(StoreError::Unique { index: "nonces" })));
    assert!(store.consume_nonce("n1", NOW).unwrap());
    assert!(!store.consume_nonce("n1", NOW).unwrap());
    store.insert_nonce("old", NOW - 1).unwrap();
    assert!(!store.consume_nonce("old", NOW).unwrap(), "expired nonces are refused");
    assert!(!store.consume_nonce("never-issued", NOW).unwrap());
}

#[test]
fn a_second_wallet_connection_for_the_same_owner_and_chain_replaces_the_first() {
    let (_d, store) = temp_store();
    let conn = |addr: &str| WalletConnectionRecord {
        id: id_at(NOW),
        owner_address: addr.into(),
        chain: Chain::Ethereum,
        wc_session_topic: None,
        wc_pairing_topic: None,
        connected_at: NOW,
        last_active_at: NOW,
        metadata: json!({}),
    };
    store.connect_wallet(&conn("0xAbC"), &ctx()).unwrap();
    let second = conn("0xabc");
    store.connect_wallet(&second, &ctx()).unwrap();
    let all = store.list_wallet_connections().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, second.id);
}

// ---------------------------------------------------------------- enums and invariants

#[test]
fn invariants_are_checked_before_any_write() {
    let (_d, store) = temp_store();
    let mut bad = agent("a", "pk");
    bad.owner_verified = true;
    bad.owner_verified_at = Some(NOW);
    assert!(matches!(bad.check(), Err(StoreError::Invariant("owner_verified implies owner_address"))));

    let mut evm_without_chain_id = agent("b", "0xabc");
    evm_without_chain_id.chain = Chain::Ethereum;
    evm_without_chain_id.network = Network::Testnet;
    assert!(matches!(store.insert_agent(&evm_without_chain_id, &ctx()), Err(StoreError::Invariant(_))));

    let mut evm_devnet = evm_without_chain_id.clone();
    evm_devnet.chain_id = Some(1);
    evm_devnet.network = Network::Devnet;
    assert!(matches!(store.insert_agent(&evm_devnet, &ctx()), Err(StoreError::Invariant(_))));

    let mut ledger_without_path = agent("c", "pk3");
    ledger_without_path.backend = Backend::Ledger;
    assert!(matches!(store.insert_agent(&ledger_without_path, &ctx()), Err(StoreError::Invariant(_))));

    for name in ["", " padded", &"x".repeat(101), "0190b5a0-0000-7000-8000-000000000000"] {
        assert!(matches!(store.insert_agent(&agent(name, "pk4"), &ctx()), Err(StoreError::Invariant(_))), "{name:?}");
    }
    assert!(store.list_agents().unwrap().is_empty());
    assert_eq!(audit_count(&store), 0);
}

// ACC-047.
#[test]
fn a_row_tampered_to_hold_an_invalid_enum_fails_to_deserialise() {
    let (_d, store, a) = store_with_agent();
    // Offline tampering: rewrite the stored JSON with status BOGUS.
    store.tamper_agent(&a, |v| v["status"] = json!("BOGUS"));
    assert!(matches!(store.get_agent(a.id), Err(StoreError::Serde { table: "agents", .. })));
    // Unknown fields are refused too (a newer schema's row).
    store.tamper_agent(&a, |v| v["future_field"] = json!(1));
    assert!(matches!(store.get_agent(a.id), Err(StoreError::Serde { .. })));
}

// ACC-163.
#[test]
fn illegal_status_transitions_are_refused_and_terminal_rows_never_change() {
    let (_d, store, a) = store_with_agent();
    let t = transfer(&a, None, 1);
    store.record_request(&t, &[], None, &ctx()).unwrap();
    // PENDING → SUBMITTED is not in the table.
    assert!(matches!(
        store.transition(t.id, TxStatus::Pending, TxStatus::Submitted, TxPatch::default(), None, &ctx()),
        Err(StoreError::Conflict { .. })
    ));
    store.transition(t.id, TxStatus::Pending, TxStatus::Cancelled, TxPatch::error("X"), None, &ctx()).unwrap();
    for to in TxStatus::ALL {
        assert!(store.transition(t.id, TxStatus::Cancelled, *to, TxPatch::default(), None, &ctx()).is_err());
    }
}

// ---------------------------------------------------------------- cascades

// ACC-051.
#[test]
fn delete_agent_restricts_on_transactions_and_cascades_the_rest() {
    let (_d, store, a) = store_with_agent();
    store.record_request(&transfer(&a, None, 1), &[], None, &ctx()).unwrap();
    assert!(matches!(store.delete_agent(a.id), Err(StoreError::Restricted { .. })));
    assert!(store.get_agent(a.id).unwrap().is_some());

    let b = agent("b", "pk2");
    store.insert_agent(&b, &ctx()).unwrap();
    let s = session(b.id, 3);
    store.create_session(&s, 5, &ctx()).unwrap();
    let policy = PolicyRecord {
        agent_id: Some(b.id),
        priority: 10,
        ..PolicyRecord::new(id_at(NOW), PolicyType::Whitelist, json!({"allowed_addresses": []}), NOW)
    };
    store.insert_policy(&policy, &ctx()).unwrap();
    store
        .insert_auto_stop_rule(
            &AutoStopRuleRecord {
                agent_id: Some(b.id),
                ..AutoStopRuleRecord::new(
                    id_at(NOW),
                    AutoStopRuleType::HourlyRate,
                    json!({}),
                    AutoStopAction::Warn,
                    NOW,
                )
            },
            &ctx(),
        )
        .unwrap();
    store.delete_agent(b.id).unwrap();
    assert!(store.get_agent(b.id).unwrap().is_none());
    assert!(store.get_session(s.id).unwrap().is_none());
    assert!(store.session_by_token_hash(&[3; 32]).unwrap().is_none());
    assert!(store.list_policies().unwrap().is_empty());
    assert!(store.list_auto_stop_rules().unwrap().is_empty());
    // Its name and key are free again.
    store.insert_agent(&agent("b", "pk2"), &ctx()).unwrap();
}

// ACC-052.
#[test]
fn session_cleanup_nulls_session_id_on_its_transactions() {
    let (_d, store, a) = store_with_agent();
    let mut s = session(a.id, 1);
    s.expires_at = NOW + 300;
    store.create_session(&s, 5, &ctx()).unwrap();
    let t = transfer(&a, Some(s.id), 1);
    store.record_request(&t, &[], None, &ctx()).unwrap();
    let mut revoked = session(a.id, 2);
    revoked.expires_at = NOW + 7 * 86_400;
    store.create_session(&revoked, 5, &ctx()).unwrap();
    store.revoke_session(revoked.id, Some("manual_revoke"), &ctx()).unwrap();

    // Not yet expired, revoked less than a day ago: nothing happens.
    assert_eq!(store.cleanup_sessions(NOW + 100).unwrap(), SessionCleanup::default());
    let report = store.cleanup_sessions(NOW + 86_401).unwrap();
    assert_eq!(report.expired, 1);
    assert_eq!(report.revoked, 1);
    assert!(store.get_session(s.id).unwrap().is_none());
    let t = store.get_transaction(t.id).unwrap().unwrap();
    assert_eq!(t.session_id, None, "set null, the row survives");
    assert_eq!(store.audit_by_event("SESSION_EXPIRED").unwrap().len(), 1);
    assert_eq!(store.audit_by_event("SESSION_CLEANUP").unwrap()[0].details["count"], json!(1));
}

#[test]
fn termination_cancels_queued_work_revokes_sessions_and_refuses_while_executing() {
    let (_d, store, a) = store_with_agent();
    let s = session(a.id, 1);
    store.create_session(&s, 5, &ctx()).unwrap();
    let queued = transfer(&a, Some(s.id), 10);
    store.record_request(&queued, &[], None, &ctx()).unwrap();
    store.decide_transaction(queued.id, &ctx(), |_| Ok(queue(Tier::Delay))).unwrap();
    let executing = transfer(&a, Some(s.id), 10);
    store.record_request(&executing, &[], None, &ctx()).unwrap();
    store.decide_transaction(executing.id, &ctx(), |_| Ok(queue(Tier::Instant))).unwrap();
    claim(&store, executing.id);

    let err = store.terminate_agent(a.id, &ctx()).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { ref actual, .. } if actual == "EXECUTING"));
    store.fail_transaction(executing.id, TxStatus::Executing, &TxFailure::new("X"), &ctx()).unwrap();

    let report = store.terminate_agent(a.id, &ctx()).unwrap();
    assert_eq!((report.sessions_revoked, report.transactions_cancelled), (1, 1));
    let q = store.get_transaction(queued.id).unwrap().unwrap();
    assert_eq!(
        (q.status, q.error.as_deref(), q.reserved_amount),
        (TxStatus::Cancelled, Some("AGENT_TERMINATED"), None)
    );
    assert_eq!(store.get_session(s.id).unwrap().unwrap().revoke_trigger.as_deref(), Some("agent_terminated"));
    assert!(store.due_rows(Tier::Delay, u64::MAX, 10).unwrap().is_empty(), "queue index cleaned");
    assert!(matches!(store.terminate_agent(a.id, &ctx()), Err(StoreError::Conflict { .. })));
}

#[test]
fn an_owner_change_cancels_queued_approvals_but_not_delays() {
    let (_d, store) = temp_store();
    let mut a = agent("a", "pk");
    a.owner_address = Some("owner".into());
    store.insert_agent(&a, &ctx()).unwrap();
    assert!(store.mark_owner_verified(a.id, "owner", &ctx()).unwrap());
    let approval = transfer(&a, None, 1);
    store.record_request(&approval, &[], None, &ctx()).unwrap();
    store.decide_transaction(approval.id, &ctx(), |_| Ok(queue(Tier::Approval))).unwrap();
    let delay = transfer(&a, None, 1);
    store.record_request(&delay, &[], None, &ctx()).unwrap();
    store.decide_transaction(delay.id, &ctx(), |_| Ok(queue(Tier::Delay))).unwrap();

    // The caller authorised a change from GRACE, but the agent is LOCKED: nothing changes.
    assert!(matches!(store.set_owner(a.id, Some("new"), OwnerState::Grace, &ctx()), Err(StoreError::Conflict { .. })));
    let out = store.set_owner(a.id, Some("new"), OwnerState::Locked, &ctx()).unwrap();
    assert_eq!(out.approvals_cancelled, 1);
    assert_eq!(out.agent.owner_state(), OwnerState::Locked);
    assert_eq!(store.get_transaction(approval.id).unwrap().unwrap().error.as_deref(), Some("OWNER_ADDRESS_CHANGED"));
    assert_eq!(store.get_transaction(delay.id).unwrap().unwrap().status, TxStatus::Queued);
    // The same address again is a no-op without audit.
    let before = audit_count(&store);
    assert!(!store.set_owner(a.id, Some("new"), OwnerState::Locked, &ctx()).unwrap().changed);
    assert_eq!(audit_count(&store), before);
    // LOCKED owners cannot be removed.
    assert!(store.set_owner(a.id, None, OwnerState::Locked, &ctx()).is_err());
}

// ---------------------------------------------------------------- concurrency

#[test]
fn a_cas_transition_raced_from_16_threads_has_exactly_one_winner() {
    let (_d, store) = temp_store();
    let store = Arc::new(store);
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    let t = transfer(&a, None, 1);
    store.record_request(&t, &[], None, &ctx()).unwrap();
    store.decide_transaction(t.id, &ctx(), |_| Ok(queue(Tier::Delay))).unwrap();

    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.transition(t.id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), None, &ctx())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(StoreError::Conflict { .. }))).count();
    assert_eq!((winners, conflicts), (1, 15));
}

// Approve, reject, the timeout and a second approval race for one APPROVAL row, 100 times:
// exactly one of them changes it, the approval is consumed at most once, and a losing path
// leaves the reservation released.
#[test]
fn approve_reject_and_expire_race_with_one_winner() {
    let (_d, store) = temp_store();
    let store = Arc::new(store);
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    for _ in 0..100 {
        let t = transfer(&a, None, 1);
        store.record_request(&t, &[], None, &ctx()).unwrap();
        store.decide_transaction(t.id, &ctx(), |_| Ok(queue(Tier::Approval))).unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let (store, barrier) = (store.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match k {
                        0 | 1 => matches!(
                            store.approve_transaction(t.id, "owner", None, &ctx()).unwrap(),
                            ApprovalResult::Approved(_)
                        ),
                        2 => matches!(
                            store.reject_transaction(t.id, "no", None, &ctx()).unwrap(),
                            RejectResult::Rejected(_)
                        ),
                        _ => !store.expire_due_approvals(NOW + 300).unwrap().is_empty(),
                    }
                })
            })
            .collect();
        let won: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        let row = store.get_transaction(t.id).unwrap().unwrap();
        let approval = store.get_approval(t.id).unwrap().unwrap();
        let settled = [approval.approved_at.is_some(), approval.rejected_at.is_some(), approval.expired_at.is_some()];
        assert_eq!(settled.iter().filter(|s| **s).count(), 1, "settled once: {approval:?}");
        match row.status {
            TxStatus::Executing => assert!(approval.approved_at.is_some() && row.reserved_amount.is_some()),
            TxStatus::Cancelled | TxStatus::Expired => assert_eq!(row.reserved_amount, None),
            s => panic!("{s}"),
        }
    }
}

#[test]
fn twenty_concurrent_decisions_against_a_cap_of_five_reserve_exactly_five() {
    let (_d, store) = temp_store();
    let store = Arc::new(store);
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    let s = session(a.id, 1);
    store.create_session(&s, 5, &ctx()).unwrap();
    let amount = 100u64;
    let cap = Amount::from_u64(5 * amount);
    let ids: Vec<Uuid> = (0..20)
        .map(|_| {
            let t = transfer(&a, Some(s.id), amount);
            store.record_request(&t, &[], None, &ctx()).unwrap();
            t.id
        })
        .collect();
    let barrier = Arc::new(Barrier::new(ids.len()));
    let handles: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.decide_transaction(id, &ctx(), |snap| {
                    let total = snap.session.as_ref().unwrap().usage.total_amount;
                    let after =
                        total.checked_add(snap.session_reserved).unwrap().checked_add(snap.tx.native_amount).unwrap();
                    Ok(if after > cap {
                        DecisionOutcome::Cancel { error: "SESSION_LIMIT_TOTAL".into(), denial: None, audits: vec![] }
                    } else {
                        queue(Tier::Instant)
                    })
                })
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap().unwrap().1).collect();
    let accepted = outcomes.iter().filter(|o| matches!(o, DecisionOutcome::Queue { .. })).count();
    assert_eq!(accepted, 5);
}

// The snapshot's session figures come from the agent's active index (a few rows, however long
// the history), and the hour/day counts are read only when a RATE_LIMIT policy applies.
#[test]
fn the_snapshot_counts_in_flight_rows_and_reads_rates_only_for_a_rate_limit_policy() {
    let (_d, store, a) = store_with_agent();
    let s = session(a.id, 1);
    store.create_session(&s, 5, &ctx()).unwrap();
    let other = session(a.id, 2);
    store.create_session(&other, 5, &ctx()).unwrap();
    let decided = |session: Uuid| {
        let t = transfer(&a, Some(session), 100);
        store.record_request(&t, &[], None, &ctx()).unwrap();
        store.decide_transaction(t.id, &ctx(), |_| Ok(queue(Tier::Instant))).unwrap();
        t.id
    };
    let (live1, _live2, done) = (decided(s.id), decided(s.id), decided(s.id));
    decided(other.id);
    store.transition(done, TxStatus::Queued, TxStatus::Failed, TxPatch::error("X"), None, &ctx()).unwrap();
    let cancelled = transfer(&a, Some(s.id), 5);
    store.record_request(&cancelled, &[], None, &ctx()).unwrap();
    store.transition(cancelled.id, TxStatus::Pending, TxStatus::Cancelled, TxPatch::error("X"), None, &ctx()).unwrap();

    let probe = transfer(&a, Some(s.id), 1);
    let snap = store.dry_run_snapshot(probe.clone(), NOW).unwrap();
    assert_eq!(snap.session_in_flight, 2, "this session's two live rows; not the failed one, not the other session's");
    let each = store.get_transaction(live1).unwrap().unwrap().reserved_amount.unwrap();
    assert_eq!(snap.session_reserved, each.checked_add(each).unwrap());
    assert_eq!((snap.rate_1h, snap.rate_24h), (Window::default(), Window::default()), "no RATE_LIMIT policy: not read");

    let rate = PolicyRecord {
        priority: 10,
        ..PolicyRecord::new(id_at(NOW), PolicyType::RateLimit, json!({"max_per_hour": 10}), NOW)
    };
    store.insert_policy(&rate, &ctx()).unwrap();
    let snap = store.dry_run_snapshot(probe.clone(), NOW + 10).unwrap();
    // Four counted (live, live, failed, other session); the cancelled one is not.
    assert_eq!((snap.rate_1h.count, snap.rate_24h.count), (4, 4));
    assert_eq!((snap.rate_1h.oldest, snap.rate_24h.oldest), (Some(NOW), Some(NOW)));
    // Two hours on, they leave the hour but stay in the day.
    let snap = store.dry_run_snapshot(probe.clone(), NOW + 7200).unwrap();
    assert_eq!((snap.rate_1h.count, snap.rate_1h.oldest, snap.rate_24h.count), (0, None, 4));
}

mod rate_counters {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// A new request, `dt` seconds after the previous step.
        Insert { dt: u64 },
        /// The `n`-th row (mod count) ends CANCELLED, EXPIRED or FAILED (`how` 0, 1, 2).
        End { n: usize, how: u8 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => prop_oneof![0..3u64, 50..70u64, 3500..3700u64, 80_000..90_000u64].prop_map(|dt| Step::Insert { dt }),
            1 => (any::<usize>(), 0..3u8).prop_map(|(n, how)| Step::End { n, how }),
        ]
    }

    /// What a scan of every row says: counted rows created at or after `from`.
    pub(super) fn by_scan(store: &Store, agent: Uuid, from: u64) -> Window {
        let (rows, _) = store.list_transactions(agent, None, None, 10_000, true).unwrap();
        let counted: Vec<u64> = rows
            .iter()
            .filter(|r| !matches!(r.status, TxStatus::Cancelled | TxStatus::Expired) && r.created_at >= from)
            .map(|r| r.created_at)
            .collect();
        Window { count: counted.len() as u64, oldest: counted.iter().min().copied() }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        // ACC-192 (the counting rule): the bucketed counters agree with a scan of the rows —
        // CANCELLED and EXPIRED rows never count — for every window edge: inside
        // and across minute, hour and day boundaries, after cancellations, expiries and
        // failures (which still count), and when buckets older than two days were pruned.
        #[test]
        fn counters_agree_with_a_scan(steps in proptest::collection::vec(step(), 1..40), offset in 0..3600u64) {
            let (_d, store, a) = store_with_agent();
            let rate = PolicyRecord::new(id_at(NOW), PolicyType::RateLimit, json!({"max_tx_per_hour": 1}), NOW);
            store.insert_policy(&rate, &ctx()).unwrap();
            let mut now = NOW + offset;
            let mut ids = Vec::new();
            for s in steps {
                match s {
                    Step::Insert { dt } => {
                        now += dt;
                        let mut t = transfer(&a, None, 1);
                        t.id = id_at(now);
                        t.created_at = now;
                        t.updated_at = now;
                        store.record_request(&t, &[], None, &OpCtx::new("agent", now)).unwrap();
                        ids.push(t.id);
                    }
                    Step::End { n, how } if !ids.is_empty() => {
                        let id = ids[n % ids.len()];
                        let to = [TxStatus::Cancelled, TxStatus::Expired, TxStatus::Failed][how as usize];
                        // Rows already ended refuse the transition; that is fine here.
                        let _ = store.engine().transition(id, TxStatus::Pending, to, TxPatch::error("X"), None, &OpCtx::new("s", now));
                    }
                    Step::End { .. } => {}
                }
            }
            let probe = transfer(&a, None, 1);
            for q in [0u64, 1, 59, 60, 61, 3599, 3600, 3601, 86_399, 86_400, 86_401] {
                let at = now + q;
                let snap = store.dry_run_snapshot(probe.clone(), at).unwrap();
                prop_assert_eq!(snap.rate_1h, by_scan(&store, a.id, at.saturating_sub(3600)), "hour at +{}", q);
                prop_assert_eq!(snap.rate_24h, by_scan(&store, a.id, at.saturating_sub(86_400)), "day at +{}", q);
            }
        }
    }

    // The decision leaves out the request being decided, which is itself counted.
    #[test]
    fn the_decided_request_is_not_counted() {
        let (_d, store, a) = store_with_agent();
        let rate = PolicyRecord::new(id_at(NOW), PolicyType::RateLimit, json!({"max_tx_per_hour": 1}), NOW);
        store.insert_policy(&rate, &ctx()).unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let t = transfer(&a, None, 1);
            store.record_request(&t, &[], None, &ctx()).unwrap();
            store
                .decide_transaction(t.id, &ctx(), |snap| {
                    seen.push(snap.rate_1h);
                    Ok(queue(Tier::Instant))
                })
                .unwrap();
        }
        let counts: Vec<u64> = seen.iter().map(|w| w.count).collect();
        assert_eq!(counts, [0, 1, 2]);
        assert_eq!(seen[0].oldest, None, "the only row in its second is the excluded one");
        assert_eq!(seen[1].oldest, Some(NOW));
    }
}

mod autostop_counters {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// A new request to address `to`, `dt` seconds after the previous step, decided
        /// APPROVAL (owner-sanctioned) or INSTANT.
        Insert { dt: u64, to: u8, approval: bool, amount: u64 },
        /// The `n`-th row (mod count) runs to CONFIRMED, or to FAILED (`ok` false).
        End { n: usize, ok: bool },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => (prop_oneof![0..3u64, 3500..3700u64, 40_000..90_000u64], 0..3u8, any::<bool>(), 1..1_000u64)
                .prop_map(|(dt, to, approval, amount)| Step::Insert { dt, to, approval, amount }),
            2 => (any::<usize>(), any::<bool>()).prop_map(|(n, ok)| Step::End { n, ok }),
        ]
    }

    /// What a scan of every row says: the autonomous confirmed volume of rows created on
    /// `day`, and how many autonomous confirmed transfers to `to` were created at or after `since`.
    pub(super) fn by_scan(store: &Store, agent: Uuid, day: u64, to: &str, since: u64) -> (Amount, u64) {
        let (rows, _) = store.list_transactions(agent, Some(TxStatus::Confirmed), None, 10_000, true).unwrap();
        let autonomous = rows.iter().filter(|r| !r.owner_sanctioned());
        let volume = autonomous
            .clone()
            .filter(|r| r.created_at - r.created_at % 86_400 == day - day % 86_400)
            .fold(Amount::ZERO, |s, r| s.saturating_add(r.native_amount));
        let n = autonomous.filter(|r| r.to_address.as_deref() == Some(to) && r.created_at >= since).count();
        (volume, n as u64)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        // ACC-222b (the counting rule) and issue #21: the DAILY_LIMIT_THRESHOLD volume and the
        // ANOMALY_PATTERN same-address counts, kept as counters in the rows' own write
        // transactions, agree with a scan of the rows — owner-approved and failed rows never
        // count — across day boundaries and after pruning.
        #[test]
        fn counters_agree_with_a_scan(steps in proptest::collection::vec(step(), 1..40), offset in 0..86_400u64) {
            let (_d, store, a) = store_with_agent();
            let mut now = NOW + offset;
            let mut ids = Vec::new();
            for s in steps {
                let c = OpCtx::new("s", now);
                match s {
                    Step::Insert { dt, to, approval, amount } => {
                        now += dt;
                        let mut t = transfer(&a, None, amount);
                        t.id = id_at(now);
                        (t.created_at, t.updated_at) = (now, now);
                        t.to_address = Some(format!("to{to}"));
                        let c = OpCtx::new("agent", now);
                        store.record_request(&t, &[], None, &c).unwrap();
                        let tier = if approval { Tier::Approval } else { Tier::Instant };
                        store.decide_transaction(t.id, &c, |_| Ok(queue(tier))).unwrap();
                        ids.push(t.id);
                    }
                    Step::End { n, ok } if !ids.is_empty() => {
                        let id = ids.remove(n % ids.len());
                        store.engine().transition(id, TxStatus::Queued, TxStatus::Executing, TxPatch::default(), None, &c).unwrap();
                        if ok {
                            let p = TxPatch { tx_hash: Some(format!("h{id}")), ..TxPatch::default() };
                            store.engine().transition(id, TxStatus::Executing, TxStatus::Submitted, p, None, &c).unwrap();
                            store.confirm_transaction(id, None, Some(1), &c).unwrap();
                        } else {
                            store.engine().transition(id, TxStatus::Executing, TxStatus::Failed, TxPatch::error("X"), None, &c).unwrap();
                        }
                    }
                    Step::End { .. } => {}
                }
            }
            for q in [0u64, 1, 3599, 3600, 3601, 86_399, 86_400] {
                let at = now.saturating_sub(q);
                for to in ["to0", "to1", "to2"] {
                    let since = at.saturating_sub(3600);
                    let (volume, n) = by_scan(&store, a.id, at, to, since);
                    prop_assert_eq!(store.autonomous_volume_on_day(a.id, at).unwrap(), volume, "day of -{}", q);
                    prop_assert_eq!(store.autonomous_transfers_to_since(a.id, to, since, u64::MAX).unwrap(), n, "{} since -{}", to, q);
                    prop_assert_eq!(store.autonomous_transfers_to_since(a.id, to, since, 1).unwrap(), n.min(1), "capped");
                }
            }
            // The v2 -> v3 upgrade builds the same counters from the rows alone (pruned
            // entries excepted: compare only windows inside the kept two days).
            store.engine().write(crate::autostop_counts::rebuild).unwrap();
            for q in [0u64, 3600, 86_399] {
                let at = now.saturating_sub(q);
                for to in ["to0", "to1", "to2"] {
                    let since = at.saturating_sub(3600);
                    let (volume, n) = by_scan(&store, a.id, at, to, since);
                    prop_assert_eq!(store.autonomous_volume_on_day(a.id, at).unwrap(), volume, "rebuilt, day of -{}", q);
                    prop_assert_eq!(store.autonomous_transfers_to_since(a.id, to, since, u64::MAX).unwrap(), n, "rebuilt");
                }
            }
        }
    }
}

// ACC-057.
#[test]
fn a_failure_inside_decide_transaction_leaves_the_row_pending() {
    let (_d, store, a) = store_with_agent();
    let t = transfer(&a, None, 1);
    store.record_request(&t, &[], None, &ctx()).unwrap();
    let before = audit_count(&store);
    let err = store.decide_transaction(t.id, &ctx(), |_| Err(StoreError::Invariant("injected failure"))).unwrap_err();
    assert!(matches!(err, StoreError::Invariant("injected failure")));
    let row = store.get_transaction(t.id).unwrap().unwrap();
    assert_eq!((row.status, row.reserved_amount, row.tier), (TxStatus::Pending, None, None));
    assert_eq!(audit_count(&store), before);
}

#[test]
fn owner_verification_flips_once_under_concurrency() {
    let (_d, store) = temp_store();
    let store = Arc::new(store);
    let mut a = agent("a", "pk");
    a.owner_address = Some("owner".into());
    store.insert_agent(&a, &ctx()).unwrap();
    let barrier = Arc::new(Barrier::new(10));
    let flips: usize = (0..10)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.mark_owner_verified(a.id, "owner", &ctx()).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap() as usize)
        .sum();
    assert_eq!(flips, 1);
    assert_eq!(store.audit_by_event("OWNER_VERIFIED").unwrap().len(), 1);
}

// ACC-049.
#[test]
fn two_concurrent_renewals_with_one_token_have_one_winner() {
    let (_d, store) = temp_store();
    let store = Arc::new(store);
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    let s = session(a.id, 1);
    store.create_session(&s, 5, &ctx()).unwrap();
    let later = OpCtx::new("agent", NOW + 50_000);
    let barrier = Arc::new(Barrier::new(2));
    let results: Vec<_> = [[2u8; 32], [3u8; 32]]
        .into_iter()
        .map(|new_hash| {
            let (store, barrier, later) = (store.clone(), barrier.clone(), later.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.renew_session(s.id, &[1; 32], new_hash, NOW + 50_000 + 86_400, &later)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(RenewOutcome::Renewed(_)))).count(), 1);
    assert_eq!(results.iter().filter(|r| matches!(r, Err(StoreError::Conflict { .. }))).count(), 1);
}

// ---------------------------------------------------------------- audit chain

// ACC-053.
#[test]
fn the_audit_chain_verifies_and_detects_a_tampered_row() {
    let (_d, store) = temp_store();
    for i in 0..20u64 {
        store
            .append_audit(
                AuditEvent::new(AuditEventType::ConfigReloaded, "system").detail("i", i),
                &OpCtx::new("system", NOW + i),
            )
            .unwrap();
    }
    let v = store.verify_audit().unwrap();
    assert_eq!((v.valid, v.checked_entries, v.head_seq, v.first_invalid_seq), (true, 20, 20, None));

    // Every row's hash is SHA-256(prev ‖ seq ‖ canonical body) and links to its predecessor.
    let rows = store.audit_rows(0, 100).unwrap();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.hash, audit::compute_hash(r).unwrap());
        if i > 0 {
            assert_eq!(r.prev_hash, rows[i - 1].hash);
        }
    }

    // Alter seq 7's details offline.
    let mut r = rows[6].clone();
    r.details.insert("i".into(), json!(999));
    store.tamper_audit(7, Some(&r));
    let v = store.verify_audit().unwrap();
    assert_eq!((v.valid, v.first_invalid_seq), (false, Some(7)));
}

#[test]
fn a_truncated_audit_tail_is_detected() {
    let (_d, store) = temp_store();
    for _ in 0..3 {
        store.append_audit(AuditEvent::new(AuditEventType::ConfigReloaded, "system"), &ctx()).unwrap();
    }
    store.tamper_audit(3, None);
    assert!(!store.verify_audit().unwrap().valid);
}

#[test]
fn dev_mode_marks_every_audit_row() {
    let (_d, store) = temp_store();
    store.set_dev_mode(true);
    store.append_audit(AuditEvent::new(AuditEventType::ConfigReloaded, "system"), &ctx()).unwrap();
    assert_eq!(store.audit_rows(0, 1).unwrap()[0].details["dev_mode"], json!(true));
}

// ---------------------------------------------------------------- recovery

// ACC-165, ACC-171.
#[test]
fn startup_recovery_applies_the_restart_rules() {
    let (_d, store, a) = store_with_agent();
    let mk = |tier: Option<Tier>| {
        let t = transfer(&a, None, 1);
        store.record_request(&t, &[], None, &ctx()).unwrap();
        if let Some(tier) = tier {
            store.decide_transaction(t.id, &ctx(), |_| Ok(queue(tier))).unwrap();
        }
        t.id
    };
    let pending = mk(None);
    let instant = mk(Some(Tier::Instant));
    let delay = mk(Some(Tier::Delay));
    let signed = mk(Some(Tier::Instant));
    let unsigned = mk(Some(Tier::Notify));
    for id in [signed, unsigned] {
        claim(&store, id);
    }
    store.checkpoint(signed, crate::Checkpoint::signed("0xdeadbeef", "0xhash"), NOW).unwrap();

    let r = store.startup_recovery(NOW + 10).unwrap();
    assert_eq!(
        r,
        RecoveryReport { pending_expired: 1, queued_failed: 1, resubmitted: 1, executing_failed: 1, resume: vec![] }
    );
    let get = |id| store.get_transaction(id).unwrap().unwrap();
    assert_eq!((get(pending).status, get(pending).error.as_deref()), (TxStatus::Expired, Some("RESERVATION_TIMEOUT")));
    assert_eq!((get(instant).status, get(instant).error.as_deref()), (TxStatus::Failed, Some("DAEMON_RESTARTED")));
    assert_eq!(get(delay).status, TxStatus::Queued);
    let s = get(signed);
    assert_eq!((s.status, s.tx_hash.as_deref()), (TxStatus::Submitted, Some("0xhash")));
    assert_eq!(s.metadata["broadcastUncertain"], json!(true));
    assert_eq!(get(unsigned).status, TxStatus::Failed);
}

// ACC-165.
#[test]
fn sweep_pending_expires_only_old_rows() {
    let (_d, store, a) = store_with_agent();
    let t = transfer(&a, None, 1);
    store.record_request(&t, &[], None, &ctx()).unwrap();
    assert_eq!(store.sweep_pending(NOW + 899, 900).unwrap(), 0);
    assert_eq!(store.sweep_pending(NOW + 900, 900).unwrap(), 1);
    assert_eq!(store.get_transaction(t.id).unwrap().unwrap().status, TxStatus::Expired);
}

#[test]
fn confirmation_moves_the_reservation_into_session_usage() {
    let (_d, store, a) = store_with_agent();
    let s = session(a.id, 1);
    store.create_session(&s, 5, &ctx()).unwrap();
    let t = transfer(&a, Some(s.id), 250);
    store.record_request(&t, &[], None, &ctx()).unwrap();
    store.decide_transaction(t.id, &ctx(), |_| Ok(queue(Tier::Instant))).unwrap();
    assert_eq!(store.get_transaction(t.id).unwrap().unwrap().reserved_amount, Some(Amount::from_u64(250)));
    claim(&store, t.id);
    let b = Broadcast { hash: "h".into(), uncertain: false, metadata: Default::default() };
    store.record_broadcast(t.id, b, ChainOutcome::Pending, &ctx()).unwrap();
    let done = store.confirm_transaction(t.id, Some(Amount::from_u64(5000)), Some(42), &ctx()).unwrap();
    assert_eq!((done.status, done.reserved_amount), (TxStatus::Confirmed, None));
    let usage = store.get_session(s.id).unwrap().unwrap().usage;
    assert_eq!((usage.total_tx, usage.total_amount, usage.last_tx_at), (1, Amount::from_u64(250), Some(NOW)));
}

// AutoStop's measures (07-autostop.md) read the agent's rows the same way on both engines:
// failures since the last confirmation, rows created in the hour, confirmed transfers to one
// address and the day's confirmed volume.
#[test]
fn auto_stop_measures_count_the_agents_rows() {
    let (_d, store, a) = store_with_agent();
    // Ids order rows by time (seconds apart here: within a millisecond v7 ids are random).
    let run = |amount: u64, confirm: bool| {
        let mut t = transfer(&a, None, amount);
        t.id = id_at(NOW + amount);
        store.record_request(&t, &[], None, &ctx()).unwrap();
        store.decide_transaction(t.id, &ctx(), |_| Ok(queue(Tier::Instant))).unwrap();
        claim(&store, t.id);
        if confirm {
            let b = Broadcast { hash: format!("h{}", t.id), uncertain: false, metadata: Default::default() };
            store.record_broadcast(t.id, b, ChainOutcome::Pending, &ctx()).unwrap();
            store.confirm_transaction(t.id, None, Some(1), &ctx()).unwrap();
        } else {
            store.fail_transaction(t.id, TxStatus::Executing, &TxFailure::new("X"), &ctx()).unwrap();
        }
        t
    };
    assert_eq!(store.consecutive_failures(a.id, 10).unwrap(), 0, "no rows");
    run(1, false);
    let confirmed = run(2, true);
    run(3, false);
    run(4, false);
    assert_eq!(store.consecutive_failures(a.id, 10).unwrap(), 2, "since the last confirmation");
    assert_eq!(store.consecutive_failures(a.id, 1).unwrap(), 1, "capped");
    assert_eq!(store.created_since(a.id, NOW - 3600, 10).unwrap(), 4);
    assert_eq!(store.created_since(a.id, NOW - 3600, 3).unwrap(), 3, "capped");
    let to = confirmed.to_address.clone().unwrap();
    assert_eq!(store.autonomous_transfers_to_since(a.id, &to, NOW - 3600, 10).unwrap(), 1);
    assert_eq!(store.autonomous_volume_on_day(a.id, NOW).unwrap(), Amount::from_u64(2));
}

// ---------------------------------------------------------------- schema and snapshots

// ACC-056.
#[test]
fn a_database_from_a_newer_schema_is_refused_and_a_foreign_file_is_not_waiaas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let store = Store::create(&path, NOW).unwrap();
    store
        .engine()
        .write(|tx| {
            tx.open_table(META)?.insert("schema_version", b"4".as_slice())?;
            Ok(())
        })
        .unwrap();
    drop(store);
    assert!(matches!(
        Store::open(&path, 1 << 20),
        Err(StoreError::Schema(SchemaError::Newer { found: 4, supported: 3 }))
    ));

    let foreign = dir.path().join("foreign.redb");
    drop(redb::Database::create(&foreign).unwrap());
    assert!(matches!(Store::open(&foreign, 1 << 20), Err(StoreError::Schema(SchemaError::NotWaiaas))));
}

#[test]
fn every_released_schema_fixture_opens_and_reads() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/db");
    let mut seen = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("redb") {
            continue;
        }
        seen += 1;
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.redb");
        std::fs::copy(&path, &copy).unwrap();
        let (store, report) = Store::open(&copy, 1 << 20).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(report.version, SCHEMA_VERSION);
        let mut counted_volume_seen = false;
        // Every record of the fixture decodes under the current schema.
        assert!(!store.list_agents().unwrap().is_empty());
        assert!(!store.list_sessions(None).unwrap().is_empty());
        assert!(!store.list_policies().unwrap().is_empty());
        assert!(store.verify_audit().unwrap().valid);
        let rate = PolicyRecord::new(id_at(NOW), PolicyType::RateLimit, json!({"max_tx_per_hour": 1}), NOW);
        store.insert_policy(&rate, &ctx()).unwrap();
        for a in store.list_agents().unwrap() {
            let (rows, _) = store.list_transactions(a.id, None, None, 100, true).unwrap();
            let Some(last) = rows.iter().map(|r| r.created_at).max() else { continue };
            for r in &rows {
                store.batch_children(r.id).unwrap();
            }
            // The rate counters (v2) agree with the rows, whichever version wrote them.
            let snap = store.dry_run_snapshot(transfer(&a, None, 1), last).unwrap();
            assert_eq!(snap.rate_24h, rate_counters::by_scan(&store, a.id, last - 86_400), "{}", path.display());
            assert!(snap.rate_24h.count > 0, "{}: the fixture has counted rows", path.display());
            // The AutoStop counters (v3) agree with the rows, whichever version wrote them.
            for r in &rows {
                let to = r.to_address.as_deref().unwrap_or("");
                let (volume, n) = autostop_counters::by_scan(&store, a.id, r.created_at, to, r.created_at);
                counted_volume_seen |= !volume.is_zero();
                assert_eq!(store.autonomous_volume_on_day(a.id, r.created_at).unwrap(), volume, "{}", path.display());
                let counted = store.autonomous_transfers_to_since(a.id, to, r.created_at, u64::MAX).unwrap();
                assert_eq!(counted, n, "{}", path.display());
            }
        }
        // From v3 on, the fixture holds a confirmed INSTANT transfer, so the check above compares
        // a non-zero counter (older fixtures have none to count).
        let v: u32 = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.strip_prefix('v')?.parse().ok()).unwrap();
        assert!(v < 3 || counted_volume_seen, "{}: no counted volume", path.display());
    }
    assert!(seen >= 1, "no fixture databases found in {}", fixtures.display());
}

#[test]
fn a_snapshot_is_a_consistent_openable_copy() {
    let (dir, store) = temp_store();
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    let snap = dir.path().join("snap.redb");
    store.snapshot_to(&snap).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&snap).unwrap().permissions().mode() & 0o777, 0o600);
    let (copy, _) = Store::open(&snap, 1 << 20).unwrap();
    assert_eq!(copy.get_agent(a.id).unwrap().unwrap(), a);
    assert!(copy.verify_audit().unwrap().valid);
}

#[test]
fn kill_switch_activation_cascades_once_and_leaves_executing_rows() {
    let (_d, store) = temp_store();
    let store = Arc::new(store);
    let a = agent("a", "pk");
    store.insert_agent(&a, &ctx()).unwrap();
    let mut already = agent("b", "pk2");
    already.status = AgentStatus::Active;
    store.insert_agent(&already, &ctx()).unwrap();
    store
        .set_agent_status(already.id, AgentStatus::Active, AgentStatus::Suspended, Some("manual".into()), &ctx())
        .unwrap();
    let s = session(a.id, 1);
    store.create_session(&s, 5, &ctx()).unwrap();
    let queued = transfer(&a, Some(s.id), 1);
    store.record_request(&queued, &[], None, &ctx()).unwrap();
    store.decide_transaction(queued.id, &ctx(), |_| Ok(queue(Tier::Delay))).unwrap();
    let executing = transfer(&a, Some(s.id), 1);
    store.record_request(&executing, &[], None, &ctx()).unwrap();
    store.decide_transaction(executing.id, &ctx(), |_| Ok(queue(Tier::Instant))).unwrap();
    claim(&store, executing.id);

    let barrier = Arc::new(Barrier::new(2));
    let results: Vec<_> = (0..2)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.activate_kill_switch("test", KillSwitchActor::Admin, &ctx())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let report = results.iter().find_map(|r| r.as_ref().ok()).copied().expect("one activation wins");
    assert_eq!(results.iter().filter(|r| matches!(r, Err(StoreError::Conflict { .. }))).count(), 1);
    assert_eq!((report.sessions_revoked, report.transactions_cancelled, report.agents_suspended), (1, 1, 1));
    assert_eq!(store.kill_switch_status().unwrap(), KillSwitchStatus::Activated);
    let a_now = store.get_agent(a.id).unwrap().unwrap();
    assert_eq!(a_now.suspension_reason.as_deref(), Some("KILL_SWITCH: test"));
    assert_eq!(
        store.get_agent(already.id).unwrap().unwrap().suspension_reason.as_deref(),
        Some("manual"),
        "keeps its reason"
    );
    assert_eq!(store.get_transaction(executing.id).unwrap().unwrap().status, TxStatus::Executing, "untouched");
    let q = store.get_transaction(queued.id).unwrap().unwrap();
    assert_eq!((q.status, q.error.as_deref()), (TxStatus::Cancelled, Some("KILL_SWITCH")));
    assert_eq!(store.audit_by_event("KILL_SWITCH_ACTIVATED").unwrap().len(), 1);
}

// The daemon runs a lazy commit on its async task only while nobody holds or wants the write
// slot (src/runtime/db.rs): the flag must be up for the whole of a write, commit included, and
// down again after it, on the error path too.
#[test]
fn the_write_slot_is_busy_exactly_while_a_writer_holds_or_waits_for_it() {
    let (_dir, store) = temp_store();
    let store = Arc::new(store);
    assert!(!store.engine().write_slot_busy());
    let (inside, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (s, i, r) = (store.clone(), inside.clone(), release.clone());
    let writer = std::thread::spawn(move || {
        s.engine().write_with(Commit::Lazy, |_tx| {
            i.wait();
            r.wait();
            Ok(())
        })
    });
    inside.wait();
    assert!(store.engine().write_slot_busy(), "a writer holds the slot");
    release.wait();
    writer.join().unwrap().unwrap();
    assert!(!store.engine().write_slot_busy());
    assert!(store.has_lazy_commits(), "the lazy commit is not durable yet");
    let failed: Result<(), StoreError> =
        store.engine().write_with(Commit::Lazy, |_tx| Err(StoreError::Invariant("planted failure")));
    assert!(failed.is_err());
    assert!(!store.engine().write_slot_busy(), "an aborted write gives the slot back");
    store.sync().unwrap();
    assert!(!store.has_lazy_commits());
}
