//! Idempotency records (06-pipeline.md §9): the stored response of a finished request, and the
//! hourly cleanup. The record itself is created with the request (`record_request`).

use redb::ReadableTable;
use serde_json::Value;
use uuid::Uuid;

use crate::codec::{decode, encode};
use crate::db::{Commit, RedbStore};
use crate::error::StoreError;
use crate::records::*;
use crate::tables::*;

impl RedbStore {
    /// Stores the final HTTP response of an idempotent request so replays return it unchanged.
    /// Lazy (issue #21): lost in a crash, the record is left without a response; a replay then
    /// gets `IDEMPOTENCY_IN_PROGRESS` with the transaction id, whose row holds the outcome, and
    /// the key still never creates a second transaction.
    pub fn complete_idempotency(
        &self,
        agent: Uuid,
        key: &str,
        status: u16,
        body: &Value,
        now: u64,
    ) -> Result<(), StoreError> {
        self.write_with(Commit::Lazy, |tx| {
            let mut table = tx.open_table(IDEMPOTENCY)?;
            let k = (agent.as_u128(), key);
            let Some(existing) = table.get(k)?.map(|v| decode::<IdempotencyRecord>("idempotency", v.value())) else {
                return Err(StoreError::not_found("idempotency", key));
            };
            let mut rec = existing?;
            rec.completed_at = Some(now);
            rec.response_status = Some(status);
            rec.response_body = Some(body.clone());
            table.insert(k, encode("idempotency", &rec)?.as_slice())?;
            Ok(())
        })
    }

    /// Deletes idempotency records created before `before` (worker, hourly). Returns the count.
    pub fn cleanup_idempotency(&self, before: u64) -> Result<u64, StoreError> {
        self.write(|tx| {
            let keys: Vec<(u64, u128, String)> = {
                let idx = tx.open_table(IDX_IDEMPOTENCY_TIME)?;
                idx.range((0u64, 0u128, "")..(before, 0u128, ""))?
                    .map(|r| {
                        r.map(|(k, _)| {
                            let (t, a, s) = k.value();
                            (t, a, s.to_string())
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            let mut idx = tx.open_table(IDX_IDEMPOTENCY_TIME)?;
            let mut table = tx.open_table(IDEMPOTENCY)?;
            for (t, a, s) in &keys {
                idx.remove((*t, *a, s.as_str()))?;
                table.remove((*a, s.as_str()))?;
            }
            Ok(keys.len() as u64)
        })
    }
}
