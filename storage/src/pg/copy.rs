//! The target side of `waiaas db copy` (13-postgres-ha.md §7): a redb [`Dump`] and the
//! keystore's bytes written into an empty, migrated PostgreSQL database in one transaction,
//! checked before it commits. While it runs it holds the target's leader lock and bumps the
//! epoch, so no replica can lead the database half-copied, and a replica that led before is
//! fenced.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::codec::to_json;
use super::locks;
use super::rows::{self, exec, one};
use super::store::{PgStore, lock, pool_err, verify_in};
use crate::dump::Dump;
use crate::error::StoreError;
use crate::records::owner_key;

/// The keystore as bytes: master.json and each agent's key file, exactly as on disk.
#[derive(Debug, Clone, Default)]
pub struct KeyBytes {
    /// master.json.
    pub master: Vec<u8>,
    /// (agent, its key file).
    pub keys: Vec<(Uuid, Vec<u8>)>,
}

/// What a copy wrote, as checked before it committed.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Rows per table.
    pub counts: BTreeMap<&'static str, u64>,
    /// The audit head `(seq, hash)`, equal to the source's.
    pub audit_head: (u64, String),
    /// Key files copied.
    pub keys: usize,
    /// Ledger agents pinned.
    pub pinned: usize,
}

/// Why a copy wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target holds data already.
    #[error("Target database is not empty ({table} has rows)")]
    NotEmpty {
        /// The first table found with rows.
        table: &'static str,
    },
    /// A replica leads the target.
    #[error("a replica leads the target database; stop every replica that uses it first")]
    LeaderBusy,
    /// What was written does not match the source (rolled back).
    #[error("the copy does not match the source ({what}); nothing was written")]
    Mismatch {
        /// What differs.
        what: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every table the copy fills; each must be empty before.
const TABLES: [&str; 17] = [
    "meta",
    "agents",
    "sessions",
    "transactions",
    "idempotency",
    "pending_approvals",
    "policies",
    "auto_stop_rules",
    "audit_log",
    "notification_channels",
    "notification_log",
    "notification_delivered",
    "wallet_connections",
    "nonces",
    "system_state",
    "keystore_master",
    "keys",
];

impl PgStore {
    /// Copies `dump`, `files` and the Ledger `pins` (agent → replica id) into this database,
    /// which must be migrated and empty. One transaction; nothing is written on any error.
    pub fn copy_from(
        &self,
        dump: &Dump,
        files: &KeyBytes,
        pins: &[(Uuid, String)],
        now: u64,
    ) -> Result<CopyReport, CopyError> {
        self.block(async {
            // The leader lock, on a session of its own for the whole copy.
            let leader = self.opts.connect().await?;
            let (k1, k2) = locks::LEADER;
            let got: bool = leader
                .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&k1, &k2])
                .await
                .map_err(super::map_err)?
                .get(0);
            if !got {
                return Err(CopyError::LeaderBusy);
            }
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(super::map_err)?;
            lock(&tx, locks::GLOBAL, true).await?;
            for table in TABLES {
                let sql = format!("SELECT EXISTS (SELECT 1 FROM {table})");
                if one(&tx, &sql, &[]).await?.get::<_, bool>(0) {
                    return Err(CopyError::NotEmpty { table });
                }
            }
            if one(&tx, "SELECT seq FROM audit_head WHERE id = 1", &[]).await?.get::<_, i64>(0) != 0 {
                return Err(CopyError::NotEmpty { table: "audit_head" });
            }
            exec(
                &tx,
                "UPDATE leader SET epoch = epoch + 1, replica_id = 'db-copy', since = $1 WHERE id = 1",
                &[&(now as i64)],
            )
            .await?;

            if let Some(created) = dump.created_at {
                exec(
                    &tx,
                    "INSERT INTO meta (key, value) VALUES ('created_at', $1)",
                    &[&serde_json::Value::from(created)],
                )
                .await?;
            }
            for a in &dump.agents {
                super::ops::agents::put_agent(&tx, a, true).await?;
            }
            for s in &dump.sessions {
                rows::insert(&tx, "sessions", s.id, s).await?;
            }
            for t in &dump.transactions {
                rows::insert(&tx, "transactions", t.id, t).await?;
            }
            for (agent, key, rec) in &dump.idempotency {
                exec(
                    &tx,
                    "INSERT INTO idempotency (agent_id, key, record) VALUES ($1, $2, $3)",
                    &[agent, key, &to_json("idempotency", rec)?],
                )
                .await?;
            }
            for a in &dump.approvals {
                exec(
                    &tx,
                    "INSERT INTO pending_approvals (tx_id, record) VALUES ($1, $2)",
                    &[&a.tx_id, &to_json("pending_approvals", a)?],
                )
                .await?;
            }
            for p in &dump.policies {
                rows::insert(&tx, "policies", p.id, p).await?;
            }
            for r in &dump.auto_stop_rules {
                rows::insert(&tx, "auto_stop_rules", r.id, r).await?;
            }
            for r in &dump.audit {
                exec(
                    &tx,
                    "INSERT INTO audit_log (seq, record) VALUES ($1, $2)",
                    &[&(r.seq as i64), &to_json("audit_log", r)?],
                )
                .await?;
            }
            exec(
                &tx,
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                &[&(dump.audit_head.seq as i64), &dump.audit_head.hash],
            )
            .await?;
            for c in &dump.channels {
                rows::insert(&tx, "notification_channels", c.id, c).await?;
            }
            for l in &dump.notification_log {
                rows::insert(&tx, "notification_log", l.id, l).await?;
            }
            for (event, reference, log) in &dump.delivered {
                exec(
                    &tx,
                    "INSERT INTO notification_delivered (event, reference_id, log_id) VALUES ($1, $2, $3)",
                    &[event, reference, log],
                )
                .await?;
            }
            for w in &dump.wallet_connections {
                exec(
                    &tx,
                    "INSERT INTO wallet_connections (id, record, owner_key) VALUES ($1, $2, $3)",
                    &[&w.id, &to_json("wallet_connections", w)?, &owner_key(w.chain, &w.owner_address)],
                )
                .await?;
            }
            for (nonce, expires) in &dump.nonces {
                exec(&tx, "INSERT INTO nonces (nonce, expires_at) VALUES ($1, $2)", &[nonce, &(*expires as i64)])
                    .await?;
            }
            for (key, entry) in &dump.system_state {
                exec(
                    &tx,
                    "INSERT INTO system_state (key, value, updated_at) VALUES ($1, $2, $3)",
                    &[key, &to_json("system_state", &entry.value)?, &(entry.updated_at as i64)],
                )
                .await?;
            }
            exec(&tx, "INSERT INTO keystore_master (id, file) VALUES (1, $1)", &[&files.master]).await?;
            for (agent, file) in &files.keys {
                exec(&tx, "INSERT INTO keys (agent_id, file) VALUES ($1, $2)", &[agent, file]).await?;
            }
            for (agent, replica) in pins {
                exec(&tx, "INSERT INTO ledger_pins (agent_id, replica_id) VALUES ($1, $2)", &[agent, replica]).await?;
            }

            // Checked before COMMIT: the counts, the audit chain against the source's head, and
            // every key file byte for byte.
            let mut counts = BTreeMap::new();
            for (table, want) in dump.counts() {
                let got = one(&tx, &format!("SELECT count(*) FROM {table}"), &[]).await?.get::<_, i64>(0) as u64;
                if got != want {
                    return Err(CopyError::Mismatch { what: format!("{table}: {got} rows, the source has {want}") });
                }
                counts.insert(table, got);
            }
            let verified = verify_in(&tx).await?;
            if !verified.valid || (verified.head_seq, verified.head_hash.clone()) != dump.audit_head() {
                return Err(CopyError::Mismatch { what: format!("audit chain {verified:?}") });
            }
            let stored: BTreeMap<Uuid, Vec<u8>> = rows::all(&tx, "SELECT agent_id, file FROM keys", &[])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let master: Vec<u8> = one(&tx, "SELECT file FROM keystore_master WHERE id = 1", &[]).await?.get(0);
            if stored != files.keys.iter().cloned().collect::<BTreeMap<_, _>>() || master != files.master {
                return Err(CopyError::Mismatch { what: "key files".into() });
            }
            tx.commit().await.map_err(super::map_err)?;
            drop(leader);
            Ok(CopyReport { counts, audit_head: dump.audit_head(), keys: files.keys.len(), pinned: pins.len() })
        })
    }
}
