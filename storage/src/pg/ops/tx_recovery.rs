//! The zombie sweep and start-up recovery on PostgreSQL: the shared rules (`zombie`,
//! `restart_rule`) over the active rows, 500 per transaction, with the batch's agents locked
//! in ascending order so a concurrent send or approval waits instead of racing the sweep.

use uuid::Uuid;

use super::super::rows::lock_agents;
use super::super::store::{Global, PgStore};
use super::super::txrows::{get_tx, transition_in};
use crate::db::OpCtx;
use crate::enums::TxStatus;
use crate::error::StoreError;
use crate::ops::tx_recovery::{RecoveryReport, SweepStep, restart_rule, resumable, swept_event, zombie};
use crate::records::*;

impl PgStore {
    /// Zombie sweep: old PENDING rows expire (`RESERVATION_TIMEOUT`).
    pub fn sweep_pending(&self, now: u64, min_age: u64) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(min_age);
        self.sweep(now, "status = 'PENDING'", |rec| zombie(rec, cutoff)).map(|r| r.pending_expired)
    }

    /// Start-up (and takeover) recovery, 06-pipeline.md §10.
    pub fn startup_recovery(&self, now: u64) -> Result<RecoveryReport, StoreError> {
        let mut report = self.sweep(now, "status IN ('PENDING', 'QUEUED', 'EXECUTING', 'SUBMITTED')", restart_rule)?;
        report.resume = self
            .active_in_status(TxStatus::Executing, usize::MAX)?
            .iter()
            .filter(|r| resumable(r))
            .map(|r| r.id)
            .collect();
        Ok(report)
    }

    fn sweep(
        &self,
        now: u64,
        filter: &str,
        decide: impl Fn(&TransactionRecord) -> SweepStep,
    ) -> Result<RecoveryReport, StoreError> {
        const BATCH: i64 = 500;
        let mut report = RecoveryReport::default();
        let ctx = OpCtx::new("system", now);
        let sql = format!(
            "SELECT id, agent_id FROM transactions WHERE parent_id IS NULL AND {filter} AND id > $1 ORDER BY id LIMIT $2"
        );
        let mut after = Uuid::nil();
        loop {
            let (done, last) = self.write(Global::Shared, async |tx| {
                let rows = super::super::rows::all(tx, &sql, &[&after, &BATCH]).await?;
                let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
                let agents: Vec<Uuid> = rows.iter().map(|r| r.get(1)).collect();
                lock_agents(tx, &agents).await?;
                let mut batch = RecoveryReport::default();
                for id in &ids {
                    let rec = get_tx(tx, *id).await?;
                    if let Some((to, patch, event)) = decide(&rec) {
                        let from = rec.status;
                        let new = transition_in(tx, *id, from, to, patch, now).await?;
                        self.audit(tx, swept_event(event, &new, from), &ctx).await?;
                        batch.count(from, to);
                    }
                }
                Ok(((ids.len() as i64) < BATCH, (ids.last().copied(), batch)))
            })?;
            let (last_id, batch) = last;
            report.pending_expired += batch.pending_expired;
            report.queued_failed += batch.queued_failed;
            report.resubmitted += batch.resubmitted;
            report.executing_failed += batch.executing_failed;
            match last_id {
                Some(id) if !done => after = id,
                _ => return Ok(report),
            }
        }
    }
}
