//! What happens to unfinished rows when the daemon was not there to finish them (06-pipeline.md
//! §10): the zombie sweep and start-up recovery, both in batches of 500 rows per write
//! transaction.

use redb::ReadableTable;
use serde_json::Value;
use uuid::Uuid;

use crate::audit_events::AuditEventType;
use crate::db::{OpCtx, RedbStore};
use crate::enums::{AuditSeverity, Tier, TxStatus};
use crate::error::StoreError;
use crate::in_tx::{TxFailure, TxPatch, transition_in, tx_event};
use crate::records::*;
use crate::rows::get_tx;
use crate::tables::*;

/// Counts from [`RedbStore::startup_recovery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// PENDING → EXPIRED.
    pub pending_expired: u64,
    /// QUEUED INSTANT/NOTIFY → FAILED.
    pub queued_failed: u64,
    /// EXECUTING with a signed checkpoint → SUBMITTED (uncertain broadcast).
    pub resubmitted: u64,
    /// EXECUTING without a checkpoint → FAILED.
    pub executing_failed: u64,
    /// EXECUTING DELAY/APPROVAL rows without a signed checkpoint, kept EXECUTING: claimed by
    /// the DELAY worker or an owner's approval but never signed, so the daemon executes them
    /// again (nothing was broadcast).
    pub resume: Vec<Uuid>,
}

/// What a sweep does to one row: the target, its patch and the event to audit.
pub(crate) type SweepStep = Option<(TxStatus, TxPatch, AuditEventType)>;

/// The zombie sweep's rule: a PENDING row created at or before `cutoff` expires.
pub(crate) fn zombie(rec: &TransactionRecord, cutoff: u64) -> SweepStep {
    (rec.status == TxStatus::Pending && rec.created_at <= cutoff)
        .then(|| (TxStatus::Expired, TxPatch::error("RESERVATION_TIMEOUT"), AuditEventType::TxExpired))
}

/// EXECUTING DELAY/APPROVAL rows never signed: kept, and executed again.
pub(crate) fn resumable(rec: &TransactionRecord) -> bool {
    rec.status == TxStatus::Executing
        && matches!(rec.tier, Some(Tier::Delay | Tier::Approval))
        && rec.signed_tx().is_none()
}

/// Start-up recovery's rule (06-pipeline.md §10) for one active row.
pub(crate) fn restart_rule(rec: &TransactionRecord) -> SweepStep {
    match rec.status {
        _ if resumable(rec) => None,
        TxStatus::Pending => {
            Some((TxStatus::Expired, TxPatch::error("RESERVATION_TIMEOUT"), AuditEventType::TxExpired))
        }
        TxStatus::Queued if matches!(rec.tier, Some(Tier::Instant | Tier::Notify)) => {
            Some((TxStatus::Failed, TxPatch::error("DAEMON_RESTARTED"), AuditEventType::TxFailed))
        }
        TxStatus::Executing => match (rec.signed_tx(), rec.expected_hash()) {
            (Some(_), Some(hash)) => {
                let mut patch = TxPatch { tx_hash: Some(hash.to_string()), ..TxPatch::default() };
                patch.metadata.insert("broadcastUncertain".into(), Value::Bool(true));
                Some((TxStatus::Submitted, patch, AuditEventType::TxSubmitted))
            }
            _ => Some((TxStatus::Failed, TxPatch::error("DAEMON_RESTARTED"), AuditEventType::TxFailed)),
        },
        _ => None,
    }
}

/// The audit row of a swept row.
pub(crate) fn swept_event(event: AuditEventType, new: &TransactionRecord, from: TxStatus) -> crate::audit::AuditEvent {
    match event {
        AuditEventType::TxFailed => TxFailure::new(new.error.clone().unwrap_or_default()).event(new, "system"),
        AuditEventType::TxSubmitted => tx_event(event, new, "system"),
        _ => tx_event(event, new, "system").severity(AuditSeverity::Warning).detail("error", new.error.clone()),
    }
    .detail("from", from.as_str())
}

impl RecoveryReport {
    /// Counts one move.
    pub(crate) fn count(&mut self, from: TxStatus, to: TxStatus) {
        match (from, to) {
            (TxStatus::Pending, _) => self.pending_expired += 1,
            (TxStatus::Queued, _) => self.queued_failed += 1,
            (TxStatus::Executing, TxStatus::Submitted) => self.resubmitted += 1,
            _ => self.executing_failed += 1,
        }
    }
}

impl RedbStore {
    /// Zombie sweep: PENDING top-level rows created at or before `now − min_age` become EXPIRED
    /// (`RESERVATION_TIMEOUT`), 500 rows per write transaction. Returns how many.
    pub fn sweep_pending(&self, now: u64, min_age: u64) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(min_age);
        self.sweep(now, |rec| zombie(rec, cutoff)).map(|r| r.pending_expired)
    }

    /// Startup recovery (06-pipeline.md §10), 500 rows per write transaction: PENDING → EXPIRED;
    /// QUEUED INSTANT/NOTIFY → FAILED; EXECUTING with a signed checkpoint → SUBMITTED with
    /// `broadcastUncertain`; EXECUTING without: INSTANT/NOTIFY → FAILED (their request died with
    /// the process), DELAY/APPROVAL kept and listed in `resume` (the owner's approval or the
    /// cooldown still stands; issue #13). QUEUED DELAY/APPROVAL rows are kept.
    pub fn startup_recovery(&self, now: u64) -> Result<RecoveryReport, StoreError> {
        let mut report = self.sweep(now, restart_rule)?;
        report.resume = self
            .active_in_status(TxStatus::Executing, usize::MAX)?
            .iter()
            .filter(|r| resumable(r))
            .map(|r| r.id)
            .collect();
        Ok(report)
    }

    /// Walks every active top-level row and applies `decide`, in batches of 500 rows per write
    /// transaction, each changed row audited.
    fn sweep(
        &self,
        now: u64,
        decide: impl Fn(&TransactionRecord) -> Option<(TxStatus, TxPatch, AuditEventType)>,
    ) -> Result<RecoveryReport, StoreError> {
        const BATCH: usize = 500;
        let mut report = RecoveryReport::default();
        let ctx = OpCtx::new("system", now);
        let mut after: Option<(u128, u128)> = None;
        loop {
            let (done, last) = self.write(|tx| {
                let keys: Vec<(u128, u128)> = {
                    let idx = tx.open_table(IDX_TX_ACTIVE)?;
                    let range = match after {
                        Some(k) => idx.range(k..)?,
                        None => idx.range::<(u128, u128)>(..)?,
                    };
                    range
                        .map(|r| r.map(|(k, _)| k.value()))
                        .filter(|k| k.as_ref().map(|k| Some(*k) != after).unwrap_or(true))
                        .take(BATCH)
                        .collect::<Result<_, _>>()?
                };
                for (_, id) in &keys {
                    let id = Uuid::from_u128(*id);
                    let rec = get_tx(tx, id)?;
                    if let Some((to, patch, event)) = decide(&rec) {
                        let from = rec.status;
                        let new = transition_in(tx, id, from, to, patch, now)?;
                        self.audit(tx, swept_event(event, &new, from), &ctx)?;
                        report.count(from, to);
                    }
                }
                Ok((keys.len() < BATCH, keys.last().copied()))
            })?;
            if done {
                return Ok(report);
            }
            after = last;
        }
    }
}
