//! The storage seam (13-postgres-ha.md §3): one closed enum over the storage engines, and the
//! trait every engine implements.
//!
//! [`StoreOps`] is the business operation, not the table: each method is one atomic operation of
//! 02-storage.md with the same signature on every engine, so the daemon, the CLI and the tests
//! never learn which engine they run on. [`Store`] is the closed enum the daemon holds (like the
//! signer backends, README rule 6): a new engine is a new variant, and the compiler lists every
//! place that has to learn about it.
//!
//! The operation list lives once, in the `store_ops!` invocation below. From it the macro
//! generates the trait, the redb implementation (which forwards to [`RedbStore`]'s inherent
//! methods, where each operation's contract is documented) and the enum's dispatching methods.
//! What only one engine has (a file path, redb's integrity check, the idle-sync thread) stays off
//! the trait and is reached through [`Store::redb`].

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use uuid::Uuid;

use crate::db::RedbStore;
#[cfg(feature = "postgres")]
use crate::pg::PgStore;
use crate::*;

/// Declares the operations once and generates the trait, the redb forwarding impl and the enum's
/// dispatch. Every operation takes `&self`; engines that need exclusive access lock inside.
macro_rules! store_ops {
    ($( $(#[$meta:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        /// Every storage operation of 02-storage.md, implemented once per engine.
        ///
        /// The contract of each operation is documented on [`RedbStore`], the reference engine.
        pub trait StoreOps {
            $(
                $(#[$meta])*
                #[doc = concat!("See [`RedbStore::", stringify!($name), "`].")]
                #[allow(clippy::unused_unit, clippy::too_many_arguments)]
                fn $name(&self $(, $arg: $ty)*) -> $ret;
            )*
        }

        impl StoreOps for RedbStore {
            $(
                #[allow(clippy::unused_unit, clippy::too_many_arguments)]
                fn $name(&self $(, $arg: $ty)*) -> $ret {
                    RedbStore::$name(self $(, $arg)*)
                }
            )*
        }

        #[cfg(feature = "postgres")]
        impl StoreOps for PgStore {
            $(
                #[allow(clippy::unused_unit, clippy::too_many_arguments)]
                fn $name(&self $(, $arg: $ty)*) -> $ret {
                    PgStore::$name(self $(, $arg)*)
                }
            )*
        }

        impl Store {
            $(
                $(#[$meta])*
                #[doc = concat!("See [`RedbStore::", stringify!($name), "`].")]
                #[allow(clippy::unused_unit, clippy::too_many_arguments)]
                pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match self {
                        Store::Redb(s) => StoreOps::$name(s $(, $arg)*),
                        #[cfg(feature = "postgres")]
                        Store::Postgres(s) => StoreOps::$name(s $(, $arg)*),
                    }
                }
            )*
        }
    };
}

/// The waiaas database, on one of the storage engines.
#[derive(Debug)]
pub enum Store {
    /// One redb file on this host (the default; 02-storage.md).
    Redb(RedbStore),
    /// A PostgreSQL database shared by replicas (13-postgres-ha.md).
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
}

impl Store {
    /// Creates a new redb database file; see [`RedbStore::create`].
    pub fn create(path: &Path, now: u64) -> Result<Store, StoreError> {
        RedbStore::create(path, now).map(Store::Redb)
    }

    /// Opens (and upgrades) an existing redb database file; see [`RedbStore::open`].
    pub fn open(path: &Path, cache_bytes: usize) -> Result<(Store, OpenReport), StoreError> {
        RedbStore::open(path, cache_bytes).map(|(s, r)| (Store::Redb(s), r))
    }

    /// The redb engine, when this store is one (file path, integrity check, idle sync).
    pub fn redb(&self) -> Option<&RedbStore> {
        match self {
            Store::Redb(s) => Some(s),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => None,
        }
    }

    /// The PostgreSQL engine, when this store is one (leadership, epoch).
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Option<&PgStore> {
        match self {
            Store::Postgres(s) => Some(s),
            Store::Redb(_) => None,
        }
    }

    /// The PostgreSQL engine, for an operation that exists only there (`Invariant` otherwise:
    /// callers reach it only under postgres).
    #[cfg(feature = "postgres")]
    pub fn require_postgres(&self) -> Result<&PgStore, StoreError> {
        self.postgres().ok_or(StoreError::Invariant("an operation of the PostgreSQL engine ran on redb"))
    }

    /// The redb engine, mutably (its integrity check needs `&mut`).
    pub fn redb_mut(&mut self) -> Option<&mut RedbStore> {
        match self {
            Store::Redb(s) => Some(s),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => None,
        }
    }

    /// Starts the idle timer: a thread that, every `every` (the daemon uses 25 ms, within the
    /// 50 ms bound of issue #21), makes pending lazy commits durable. It holds only a weak
    /// reference and ends with the store.
    pub fn start_idle_sync(store: &std::sync::Arc<Store>, every: std::time::Duration) {
        let weak = std::sync::Arc::downgrade(store);
        let spawned = std::thread::Builder::new().name("waiaas-idle-sync".into()).spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(store) = weak.upgrade() else { return };
                if store.has_lazy_commits()
                    && let Err(e) = store.sync()
                {
                    eprintln!("waiaas-storage: the idle sync failed: {e}");
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!(
                "waiaas-storage: cannot start the idle sync thread ({e}); lazy commits become durable with the next durable one"
            );
        }
    }

    /// A page of the top-level transactions of several agents (one owner's, in the console),
    /// merged by id — UUID v7, so by creation time — newest first when `desc`. Returns the rows
    /// and whether more exist. Each agent's page is read on its own (a read is a snapshot; the
    /// page is for display). Built on [`StoreOps::list_transactions`], so every engine agrees.
    pub fn list_transactions_of(
        &self,
        agents: &[Uuid],
        status: Option<TxStatus>,
        cursor: Option<Uuid>,
        limit: usize,
        desc: bool,
    ) -> Result<(Vec<TransactionRecord>, bool), StoreError> {
        let mut all = Vec::new();
        let mut more = false;
        for a in agents {
            let (rows, m) = self.list_transactions(*a, status, cursor, limit, desc)?;
            more |= m;
            all.extend(rows);
        }
        all.sort_by_key(|r| r.id);
        if desc {
            all.reverse();
        }
        if all.len() > limit {
            all.truncate(limit);
            more = true;
        }
        Ok((all, more))
    }

    /// Non-terminated agents whose owner is `address` on `chain` (the owner scope, less the
    /// terminated).
    pub fn agents_owned_by(&self, chain: Chain, address: &str) -> Result<Vec<AgentRecord>, StoreError> {
        let mut out = self.owner_scope(chain, address)?;
        out.retain(|a| a.status != AgentStatus::Terminated);
        Ok(out)
    }

    /// `DELETE /v1/owner/notification-channels/:id`: disables the channel under the
    /// minimum-channels rule (see [`StoreOps::update_channel`]). Channels are never physically
    /// deleted.
    pub fn disable_channel(&self, id: Uuid, rule: MinChannels, ctx: &OpCtx) -> Result<ChannelRecord, StoreError> {
        self.update_channel(id, &ChannelChange { enabled: Some(false), ..ChannelChange::default() }, rule, ctx)
    }

    /// The engine's name as `/health` and `waiaas status` show it.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Redb(_) => "redb",
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => "postgres",
        }
    }
}

store_ops! {
    // engine, audit append and verification
    fn size_bytes(&self) -> u64;
    fn set_dev_mode(&self, on: bool) -> ();
    fn sync(&self) -> Result<(), StoreError>;
    fn has_lazy_commits(&self) -> bool;
    fn sequence(&self) -> (u64, u64);
    fn commits(&self) -> u64;
    fn stats(&self) -> StatsSnapshot;
    fn append_audit(&self, ev: AuditEvent, ctx: &OpCtx) -> Result<u64, StoreError>;
    fn verify_audit(&self) -> Result<AuditVerification, StoreError>;
    fn snapshot_to(&self, path: &Path) -> Result<(), StoreError>;
    fn created_at(&self) -> Result<u64, StoreError>;
    // agents
    fn insert_agent(&self, rec: &AgentRecord, ctx: &OpCtx) -> Result<(), StoreError>;
    fn insert_agent_with(&self, rec: &AgentRecord, extra: Option<AuditEvent>, ctx: &OpCtx) -> Result<(), StoreError>;
    fn agent_activity(&self, now: u64) -> Result<HashMap<Uuid, (u64, u64)>, StoreError>;
    fn get_agent(&self, id: Uuid) -> Result<Option<AgentRecord>, StoreError>;
    fn find_agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>, StoreError>;
    fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError>;
    fn scan_agents(&self) -> Result<AgentScan, StoreError>;
    fn owner_scope(&self, chain: Chain, address: &str) -> Result<Vec<AgentRecord>, StoreError>;
    fn update_agent_name(&self, id: Uuid, name: &str, ctx: &OpCtx) -> Result<AgentRecord, StoreError>;
    fn set_agent_status(&self, id: Uuid, expected: AgentStatus, new_status: AgentStatus, reason: Option<String>, ctx: &OpCtx) -> Result<AgentRecord, StoreError>;
    fn terminate_agent(&self, id: Uuid, ctx: &OpCtx) -> Result<TerminationReport, StoreError>;
    fn delete_agent(&self, id: Uuid) -> Result<(), StoreError>;
    fn set_owner(&self, agent_id: Uuid, new_address: Option<&str>, expect: OwnerState, ctx: &OpCtx) -> Result<SetOwnerOutcome, StoreError>;
    fn disconnect_owner(&self, chain: Chain, address: &str, ctx: &OpCtx) -> Result<(u64, u64), StoreError>;
    fn mark_owner_verified(&self, agent_id: Uuid, address: &str, ctx: &OpCtx) -> Result<bool, StoreError>;
    // approvals
    fn approve_transaction(&self, id: Uuid, owner: &str, payload: Option<serde_json::Value>, ctx: &OpCtx) -> Result<ApprovalResult, StoreError>;
    fn reject_transaction(&self, id: Uuid, reason: &str, owner: Option<&str>, ctx: &OpCtx) -> Result<RejectResult, StoreError>;
    fn expire_due_approvals(&self, now: u64) -> Result<Vec<TransactionRecord>, StoreError>;
    fn queued_rows(&self, agent: Option<Uuid>) -> Result<Vec<TransactionRecord>, StoreError>;
    fn get_approval(&self, id: Uuid) -> Result<Option<ApprovalRecord>, StoreError>;
    // autostop
    fn consecutive_failures(&self, agent: Uuid, cap: u64) -> Result<u64, StoreError>;
    fn created_since(&self, agent: Uuid, since: u64, cap: u64) -> Result<u64, StoreError>;
    fn confirmed_volume_since(&self, agent: Uuid, since: u64) -> Result<Amount, StoreError>;
    fn autonomous_volume_on_day(&self, agent: Uuid, day: u64) -> Result<Amount, StoreError>;
    fn autonomous_transfers_to_since(&self, agent: Uuid, to: &str, since: u64, cap: u64) -> Result<u64, StoreError>;
    fn auto_stop_suspend(&self, agent: Uuid, reason: &str, rule: Uuid, ctx: &OpCtx) -> Result<bool, StoreError>;
    // decision
    fn decide_transaction(&self, id: Uuid, ctx: &OpCtx, evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>) -> Result<(TransactionRecord, DecisionOutcome), StoreError>;
    fn decide_and_claim(&self, id: Uuid, ctx: &OpCtx, evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>) -> Result<(TransactionRecord, DecisionOutcome), StoreError>;
    fn record_and_decide(&self, rec: &TransactionRecord, children: &[TransactionRecord], idempotency: Option<&IdempotencyClaim>, ctx: &OpCtx, claim_inline: bool, evaluate: impl FnOnce(&DecisionSnapshot) -> Result<DecisionOutcome, StoreError>) -> Result<Recorded, StoreError>;
    fn dry_run_snapshot(&self, tx_rec: TransactionRecord, now: u64) -> Result<DecisionSnapshot, StoreError>;
    // idempotency
    fn complete_idempotency(&self, agent: Uuid, key: &str, status: u16, body: &Value, now: u64) -> Result<(), StoreError>;
    fn cleanup_idempotency(&self, before: u64) -> Result<u64, StoreError>;
    // killswitch
    fn activate_kill_switch(&self, reason: &str, actor: KillSwitchActor, ctx: &OpCtx) -> Result<ActivationReport, StoreError>;
    fn kill_switch_state(&self) -> Result<KillSwitchState, StoreError>;
    fn recovery_start(&self, wait: u64, signer: Option<(Chain, String)>, ctx: &OpCtx) -> Result<u64, StoreError>;
    fn recovery_fail(&self, ctx: &OpCtx) -> Result<RecoveryFailure, StoreError>;
    fn recovery_complete(&self, ctx: &OpCtx) -> Result<u64, StoreError>;
    // notify
    fn insert_channel(&self, c: &ChannelRecord, ctx: &OpCtx) -> Result<(), StoreError>;
    fn update_channel(&self, id: Uuid, change: &ChannelChange, rule: MinChannels, ctx: &OpCtx) -> Result<ChannelRecord, StoreError>;
    fn get_channel(&self, id: Uuid) -> Result<Option<ChannelRecord>, StoreError>;
    fn list_channels(&self) -> Result<Vec<ChannelRecord>, StoreError>;
    fn record_channel_health(&self, id: Uuid, healthy: bool, now: u64) -> Result<ChannelRecord, StoreError>;
    fn record_notifications(&self, entries: &[NotificationLogRecord], audit: Option<AuditEvent>, ctx: &OpCtx) -> Result<(), StoreError>;
    fn was_delivered(&self, event: &str, reference: &str) -> Result<bool, StoreError>;
    fn list_notification_log(&self, q: &LogQuery) -> Result<(Vec<NotificationLogRecord>, bool), StoreError>;
    fn prune_notification_log(&self, before: u64) -> Result<u64, StoreError>;
    fn notification_log_len(&self) -> Result<u64, StoreError>;
    // policies
    fn insert_policy(&self, p: &PolicyRecord, ctx: &OpCtx) -> Result<(), StoreError>;
    fn update_policy(&self, id: Uuid, change: &PolicyChange, ctx: &OpCtx) -> Result<PolicyRecord, StoreError>;
    fn get_policy(&self, id: Uuid) -> Result<Option<PolicyRecord>, StoreError>;
    fn delete_policy(&self, id: Uuid, ctx: &OpCtx) -> Result<PolicyRecord, StoreError>;
    fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError>;
    fn insert_auto_stop_rule(&self, r: &AutoStopRuleRecord, ctx: &OpCtx) -> Result<(), StoreError>;
    fn list_auto_stop_rules(&self) -> Result<Vec<AutoStopRuleRecord>, StoreError>;
    fn connect_wallet(&self, rec: &WalletConnectionRecord, ctx: &OpCtx) -> Result<(), StoreError>;
    fn list_wallet_connections(&self) -> Result<Vec<WalletConnectionRecord>, StoreError>;
    fn wallet_connection(&self, chain: Chain, address: &str) -> Result<Option<WalletConnectionRecord>, StoreError>;
    fn get_auto_stop_rule(&self, id: Uuid) -> Result<Option<AutoStopRuleRecord>, StoreError>;
    fn update_auto_stop_rule(&self, id: Uuid, change: &RuleChange, ctx: &OpCtx) -> Result<AutoStopRuleRecord, StoreError>;
    fn delete_auto_stop_rule(&self, id: Uuid, ctx: &OpCtx) -> Result<AutoStopRuleRecord, StoreError>;
    // sessions
    fn create_session(&self, rec: &SessionRecord, max_live: u64, ctx: &OpCtx) -> Result<(), StoreError>;
    fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError>;
    fn session_by_token_hash(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError>;
    fn list_sessions(&self, agent: Option<Uuid>) -> Result<Vec<SessionRecord>, StoreError>;
    fn renew_session(&self, id: Uuid, expected_hash: &[u8; 32], new_hash: [u8; 32], new_expires_at: u64, ctx: &OpCtx) -> Result<RenewOutcome, StoreError>;
    fn revoke_session(&self, id: Uuid, trigger: Option<&str>, ctx: &OpCtx) -> Result<SessionRecord, StoreError>;
    fn cleanup_sessions(&self, now: u64) -> Result<SessionCleanup, StoreError>;
    // system
    fn seed_initial(&self, seed: &InitSeed, now: u64) -> Result<(), StoreError>;
    fn system_value(&self, key: &str) -> Result<Option<Value>, StoreError>;
    fn kill_switch_status(&self) -> Result<KillSwitchStatus, StoreError>;
    fn jwt_secrets(&self) -> Result<Option<JwtSecrets>, StoreError>;
    fn ensure_jwt_secret(&self, secret: &str, now: u64) -> Result<JwtSecrets, StoreError>;
    fn rotate_jwt_secret(&self, new: &str, ctx: &OpCtx) -> Result<RotateOutcome, StoreError>;
    fn expire_previous_secret(&self, ctx: &OpCtx) -> Result<bool, StoreError>;
    fn insert_nonce(&self, nonce: &str, expires_at: u64) -> Result<(), StoreError>;
    fn consume_nonce(&self, nonce: &str, now: u64) -> Result<bool, StoreError>;
    fn cleanup_nonces(&self, now: u64) -> Result<u64, StoreError>;
    fn audit_rows(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    fn audit_by_event(&self, event: &str) -> Result<Vec<AuditRecord>, StoreError>;
    fn query_audit(&self, q: &AuditQuery) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError>;
    // tx_lifecycle
    fn record_request(&self, rec: &TransactionRecord, children: &[TransactionRecord], idempotency: Option<&IdempotencyClaim>, ctx: &OpCtx) -> Result<RecordOutcome, StoreError>;
    fn fail_transaction(&self, id: Uuid, from: TxStatus, failure: &TxFailure, ctx: &OpCtx) -> Result<TransactionRecord, StoreError>;
    fn record_chain_outcome(&self, id: Uuid, outcome: ChainOutcome, ctx: &OpCtx) -> Result<TransactionRecord, StoreError>;
    fn confirm_transaction(&self, id: Uuid, fee: Option<Amount>, block: Option<u64>, ctx: &OpCtx) -> Result<TransactionRecord, StoreError>;
    fn record_broadcast(&self, id: Uuid, broadcast: Broadcast, outcome: ChainOutcome, ctx: &OpCtx) -> Result<TransactionRecord, StoreError>;
    fn checkpoint(&self, id: Uuid, checkpoint: Checkpoint, now: u64) -> Result<(), StoreError>;
    fn claim_for_execution(&self, id: Uuid, ctx: &OpCtx) -> Result<ClaimOutcome, StoreError>;
    // tx_queries
    fn active_in_status(&self, status: TxStatus, limit: usize) -> Result<Vec<TransactionRecord>, StoreError>;
    fn get_transaction(&self, id: Uuid) -> Result<Option<TransactionRecord>, StoreError>;
    fn batch_children(&self, parent: Uuid) -> Result<Vec<TransactionRecord>, StoreError>;
    fn list_transactions(&self, agent: Uuid, status: Option<TxStatus>, cursor: Option<Uuid>, limit: usize, desc: bool) -> Result<(Vec<TransactionRecord>, bool), StoreError>;
    fn confirmed_to_before(&self, agent: Uuid, to: &str, before: Uuid) -> Result<bool, StoreError>;
    fn queued_by_tier(&self) -> Result<[(Tier, u64); 2], StoreError>;
    fn due_rows(&self, tier: Tier, now: u64, limit: usize) -> Result<Vec<Uuid>, StoreError>;
    fn status_counts(&self, now: u64) -> Result<StatusCounts, StoreError>;
    // tx_recovery
    fn sweep_pending(&self, now: u64, min_age: u64) -> Result<u64, StoreError>;
    fn startup_recovery(&self, now: u64) -> Result<RecoveryReport, StoreError>;
}
