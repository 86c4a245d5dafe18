//! Everything a database holds, read in one transaction: the source side of `waiaas db copy`
//! (13-postgres-ha.md §7), which moves a redb deployment onto PostgreSQL. Records are decoded
//! with the shared codec (so a row this binary cannot read stops the copy before anything is
//! written) and written unchanged on the other side; the audit chain keeps its `seq` and
//! hashes, so it verifies against the same head after the move.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::audit::{self, AuditHead, AuditRecord};
use crate::codec::decode;
use crate::db::RedbStore;
use crate::error::StoreError;
use crate::records::*;
use crate::tables::*;

/// The whole state of one deployment.
#[derive(Debug, Clone)]
pub struct Dump {
    pub(crate) created_at: Option<u64>,
    pub(crate) agents: Vec<AgentRecord>,
    pub(crate) sessions: Vec<SessionRecord>,
    pub(crate) transactions: Vec<TransactionRecord>,
    /// (agent, key, record).
    pub(crate) idempotency: Vec<(Uuid, String, IdempotencyRecord)>,
    pub(crate) approvals: Vec<ApprovalRecord>,
    pub(crate) policies: Vec<PolicyRecord>,
    pub(crate) auto_stop_rules: Vec<AutoStopRuleRecord>,
    pub(crate) audit: Vec<AuditRecord>,
    pub(crate) audit_head: AuditHead,
    pub(crate) channels: Vec<ChannelRecord>,
    pub(crate) notification_log: Vec<NotificationLogRecord>,
    /// (event, reference, log row): "delivered once".
    pub(crate) delivered: Vec<(String, String, Uuid)>,
    pub(crate) wallet_connections: Vec<WalletConnectionRecord>,
    /// (nonce, expires_at).
    pub(crate) nonces: Vec<(String, u64)>,
    pub(crate) system_state: Vec<(String, SystemStateEntry)>,
}

impl Dump {
    /// Rows per table, as the copy compares them on both sides.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let n = |v: usize| v as u64;
        BTreeMap::from([
            ("agents", n(self.agents.len())),
            ("sessions", n(self.sessions.len())),
            ("transactions", n(self.transactions.len())),
            ("idempotency", n(self.idempotency.len())),
            ("pending_approvals", n(self.approvals.len())),
            ("policies", n(self.policies.len())),
            ("auto_stop_rules", n(self.auto_stop_rules.len())),
            ("audit_log", n(self.audit.len())),
            ("notification_channels", n(self.channels.len())),
            ("notification_log", n(self.notification_log.len())),
            ("notification_delivered", n(self.delivered.len())),
            ("wallet_connections", n(self.wallet_connections.len())),
            ("nonces", n(self.nonces.len())),
            ("system_state", n(self.system_state.len())),
        ])
    }

    /// The audit head `(seq, hash)`.
    pub fn audit_head(&self) -> (u64, String) {
        (self.audit_head.seq, self.audit_head.hash.clone())
    }

    /// The agents (the copy pins Ledger agents and checks their key files).
    pub fn agents(&self) -> &[AgentRecord] {
        &self.agents
    }
}

fn records<T: DeserializeOwned>(
    tx: &ReadTransaction,
    def: redb::TableDefinition<'_, u128, &[u8]>,
    name: &'static str,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for row in tx.open_table(def)?.iter()? {
        out.push(decode(name, row?.1.value())?);
    }
    Ok(out)
}

impl RedbStore {
    /// Reads everything in one read transaction.
    pub fn dump(&self) -> Result<Dump, StoreError> {
        self.read(|tx| {
            let meta = tx.open_table(META)?;
            let created_at = match meta.get("created_at")? {
                Some(v) => Some(decode::<u64>("meta", v.value())?),
                None => None,
            };
            let audit_head = audit::read_head(&meta)?;
            let mut idempotency = Vec::new();
            for row in tx.open_table(IDEMPOTENCY)?.iter()? {
                let (k, v) = row?;
                let (agent, key) = k.value();
                idempotency.push((Uuid::from_u128(agent), key.to_string(), decode("idempotency", v.value())?));
            }
            let mut audit_rows = Vec::new();
            for row in tx.open_table(AUDIT_LOG)?.iter()? {
                audit_rows.push(decode("audit_log", row?.1.value())?);
            }
            let mut delivered = Vec::new();
            for row in tx.open_table(IDX_NOTIFICATION_DELIVERED)?.iter()? {
                let (k, v) = row?;
                let (event, reference) = k.value();
                delivered.push((event.to_string(), reference.to_string(), Uuid::from_u128(v.value())));
            }
            let mut nonces = Vec::new();
            for row in tx.open_table(NONCES)?.iter()? {
                let (k, v) = row?;
                nonces.push((k.value().to_string(), v.value()));
            }
            let mut system_state = Vec::new();
            for row in tx.open_table(SYSTEM_STATE)?.iter()? {
                let (k, v) = row?;
                system_state.push((k.value().to_string(), decode("system_state", v.value())?));
            }
            Ok(Dump {
                created_at,
                agents: records(tx, AGENTS, "agents")?,
                sessions: records(tx, SESSIONS, "sessions")?,
                transactions: records(tx, TRANSACTIONS, "transactions")?,
                idempotency,
                approvals: records(tx, PENDING_APPROVALS, "pending_approvals")?,
                policies: records(tx, POLICIES, "policies")?,
                auto_stop_rules: records(tx, AUTO_STOP_RULES, "auto_stop_rules")?,
                audit: audit_rows,
                audit_head,
                channels: records(tx, NOTIFICATION_CHANNELS, "notification_channels")?,
                notification_log: records(tx, NOTIFICATION_LOG, "notification_log")?,
                delivered,
                wallet_connections: records(tx, WALLET_CONNECTIONS, "wallet_connections")?,
                nonces,
                system_state,
            })
        })
    }
}
