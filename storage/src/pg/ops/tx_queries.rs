//! Reads of transaction rows on PostgreSQL: single statements over the generated columns and
//! their indexes, never locked or fenced.

use uuid::Uuid;

use super::super::rows;
use super::super::store::PgStore;
use crate::enums::{Tier, TxStatus};
use crate::error::StoreError;
use crate::ops::tx_queries::StatusCounts;
use crate::records::*;

impl PgStore {
    /// Up to `limit` non-terminal top-level rows in `status`, oldest first.
    pub fn active_in_status(&self, status: TxStatus, limit: usize) -> Result<Vec<TransactionRecord>, StoreError> {
        if status.is_terminal() {
            return Ok(Vec::new());
        }
        self.read(async |tx| {
            rows::query(
                tx,
                "transactions",
                "SELECT record::text FROM transactions WHERE status = $1 AND parent_id IS NULL ORDER BY id LIMIT $2",
                &[&status.as_str(), &super::super::rows::sql_limit(limit)],
            )
            .await
        })
    }

    /// Reads one transaction.
    pub fn get_transaction(&self, id: Uuid) -> Result<Option<TransactionRecord>, StoreError> {
        self.read(async |tx| rows::get(tx, "transactions", id).await)
    }

    /// Children of a BATCH parent, by index.
    pub fn batch_children(&self, parent: Uuid) -> Result<Vec<TransactionRecord>, StoreError> {
        self.read(async |tx| {
            rows::query(
                tx,
                "transactions",
                "SELECT record::text FROM transactions WHERE parent_id = $1 ORDER BY batch_index",
                &[&parent],
            )
            .await
        })
    }

    /// A page of an agent's top-level transactions; the rows and whether more exist.
    pub fn list_transactions(
        &self,
        agent: Uuid,
        status: Option<TxStatus>,
        cursor: Option<Uuid>,
        limit: usize,
        desc: bool,
    ) -> Result<(Vec<TransactionRecord>, bool), StoreError> {
        let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
        let sql = format!(
            "SELECT record::text FROM transactions
             WHERE agent_id = $1 AND parent_id IS NULL AND ($2::text IS NULL OR status = $2)
               AND ($3::uuid IS NULL OR id {cmp} $3)
             ORDER BY id {order} LIMIT $4"
        );
        let status = status.map(|s| s.as_str());
        let mut out: Vec<TransactionRecord> = self.read(async |tx| {
            rows::query(
                tx,
                "transactions",
                &sql,
                &[&agent, &status, &cursor, &super::super::rows::sql_limit(limit.saturating_add(1))],
            )
            .await
        })?;
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    /// Whether `agent` has a CONFIRMED top-level row to `to` created before `before`.
    pub fn confirmed_to_before(&self, agent: Uuid, to: &str, before: Uuid) -> Result<bool, StoreError> {
        let rows: Vec<TransactionRecord> = self.read(async |tx| {
            rows::query(
                tx,
                "transactions",
                "SELECT record::text FROM transactions
                 WHERE agent_id = $1 AND parent_id IS NULL AND status = 'CONFIRMED' AND id < $2
                   AND lower(record->>'to_address') = lower($3)",
                &[&agent, &before, &to],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .any(|r| r.to_address.as_deref().is_some_and(|t| owner_key(r.chain, t) == owner_key(r.chain, to))))
    }

    /// How many rows wait in the DELAY and in the APPROVAL queue.
    pub fn queued_by_tier(&self) -> Result<[(Tier, u64); 2], StoreError> {
        self.read(async |tx| {
            let row = super::super::rows::one(
                tx,
                "SELECT count(*) FILTER (WHERE tier = 'DELAY'), count(*) FILTER (WHERE tier = 'APPROVAL')
                     FROM transactions WHERE status = 'QUEUED' AND parent_id IS NULL AND queue_expires_at IS NOT NULL",
                &[],
            )
            .await?;
            Ok([(Tier::Delay, row.get::<_, i64>(0) as u64), (Tier::Approval, row.get::<_, i64>(1) as u64)])
        })
    }

    /// Up to `limit` QUEUED rows of `tier` due at or before `now`, oldest first.
    pub fn due_rows(&self, tier: Tier, now: u64, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        if !matches!(tier, Tier::Delay | Tier::Approval) {
            return Ok(Vec::new());
        }
        self.read(async |tx| {
            let rows = super::super::rows::all(
                tx,
                "SELECT id FROM transactions WHERE status = 'QUEUED' AND tier = $1 AND parent_id IS NULL
                       AND queue_expires_at <= $2 ORDER BY queue_expires_at, id LIMIT $3",
                &[&tier.as_str(), &(now as i64), &super::super::rows::sql_limit(limit)],
            )
            .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Transaction and session counts at `now`, from one snapshot.
    pub fn status_counts(&self, now: u64) -> Result<StatusCounts, StoreError> {
        self.read(async |tx| {
            let row = super::super::rows::one(
                tx,
                "SELECT count(*) FILTER (WHERE status = 'PENDING'), count(*) FILTER (WHERE status = 'QUEUED'),
                            count(*) FILTER (WHERE status = 'EXECUTING'), count(*) FILTER (WHERE status = 'SUBMITTED')
                     FROM transactions WHERE parent_id IS NULL",
                &[],
            )
            .await?;
            let n = |i: usize| row.get::<_, i64>(i) as u64;
            let last: Option<TransactionRecord> = rows::query(
                tx,
                "transactions",
                "SELECT record::text FROM transactions WHERE parent_id IS NULL ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await?
            .pop();
            let live: i64 = super::super::rows::one(
                tx,
                "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1",
                &[&(now as i64)],
            )
            .await?
            .get(0);
            Ok(StatusCounts {
                pending: n(0),
                queued: n(1),
                executing: n(2),
                submitted: n(3),
                last: last.map(|r| (r.id, r.status, r.created_at)),
                active_sessions: live as u64,
            })
        })
    }
}
