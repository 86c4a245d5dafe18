//! EVM nonces handed out by the database (13-postgres-ha.md §5): a claim per (address, nonce),
//! at most one per (transaction, slot), taken under the agent lock. A transaction asking again
//! gets the nonce it holds, so one logical transaction can never hold two nonces for one slot;
//! two transactions can never hold one nonce (the claims' primary key).
//!
//! A nonce is handed out as the lowest one at or above the chain's pending count that no claim
//! holds. A claim is released only for a transaction that never reached the node, so such a
//! nonce is free. A free nonce below `next` is a *gap*: the node holds every later transaction
//! back until something is mined there. Either the address's next send takes it, or the leader
//! fills it with a NOOP (§6.2 step 4): [`PgStore::record_nonce_fill`] records the NOOP's row
//! and claims the gap for it in one transaction, so a send and a NOOP can never both have it.

use uuid::Uuid;

use super::super::rows::{all, exec, lock_agent, one, opt};
use super::super::store::{Global, PgStore};
use super::super::txrows::insert_tx;
use crate::audit::AuditEvent;
use crate::audit_events::AuditEventType;
use crate::db::OpCtx;
use crate::enums::AuditSeverity;
use crate::error::StoreError;
use crate::records::TransactionRecord;

/// The SQL condition "this `transactions` row is not a NOOP gap fill": a fill is the system's,
/// and no rate limit or AutoStop rule counts it (13-postgres-ha.md §6.2 step 4). A literal, so
/// the queries that use it are joined with `concat!` at compile time, not formatted per call.
macro_rules! not_a_fill {
    () => {
        "NOT coalesce((record->'metadata'->>'nonceFill')::boolean, false)"
    };
}
pub(crate) use not_a_fill;

/// Which nonce of a transaction: its own, or the approve reset sent before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceSlot {
    /// The transaction itself.
    Main,
    /// `approve(spender, 0)` before an approve over a non-zero allowance.
    Reset,
}

impl NonceSlot {
    fn as_str(self) -> &'static str {
        match self {
            NonceSlot::Main => "main",
            NonceSlot::Reset => "reset",
        }
    }
}

/// One EVM account's nonce row: which chain, which address (lower-case hex), whose lock.
#[derive(Debug, Clone)]
pub struct NonceAccount {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// `0x…` address, any case.
    pub address: String,
    /// The agent that owns the address (its advisory lock serialises the account).
    pub agent: Uuid,
}

impl NonceAccount {
    fn key(&self) -> (i64, String) {
        (self.chain_id as i64, self.address.to_ascii_lowercase())
    }
}

/// A released nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The nonce given back.
    pub nonce: u64,
    /// A rewind was asked for but the nonce was not the last one handed out: it is now a gap
    /// below a claimed nonce, for the leader to fill.
    pub gap: bool,
}

/// What a resync changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resynced {
    /// `next` before.
    pub before: u64,
    /// `next` after.
    pub after: u64,
    /// Claims dropped (mined, or held by a transaction that will never be sent).
    pub dropped: u64,
}

impl PgStore {
    /// The nonce of `tx`'s `slot` on `account`: the one it holds, or the lowest free one at or
    /// above `chain_pending` (the node's pending count), claimed in the same transaction.
    pub fn assign_evm_nonce(
        &self,
        account: &NonceAccount,
        tx: Uuid,
        slot: NonceSlot,
        chain_pending: u64,
    ) -> Result<u64, StoreError> {
        let (chain, addr) = account.key();
        self.write(Global::Shared, async |t| {
            lock_agent(t, account.agent).await?;
            if let Some(row) =
                opt(t, "SELECT nonce FROM evm_nonce_claims WHERE tx_id = $1 AND slot = $2", &[&tx, &slot.as_str()])
                    .await?
            {
                return Ok(row.get::<_, i64>(0) as u64);
            }
            exec(
                t,
                "INSERT INTO evm_nonces (chain_id, address, next) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
                &[&chain, &addr],
            )
            .await?;
            let pending = chain_pending as i64;
            // The lowest n ≥ pending without a claim: below `next` only a released claim's gap
            // can be free; at `next` (or `pending`, if the chain is ahead) everything is.
            let n: i64 = one(
                t,
                "SELECT min(n) FROM generate_series($3::bigint,
                        (SELECT GREATEST(next, $3::bigint) FROM evm_nonces WHERE chain_id = $1 AND address = $2)) n
                  WHERE NOT EXISTS (SELECT 1 FROM evm_nonce_claims c
                                     WHERE c.chain_id = $1 AND c.address = $2 AND c.nonce = n)",
                &[&chain, &addr, &pending],
            )
            .await?
            .get(0);
            exec(
                t,
                "INSERT INTO evm_nonce_claims (chain_id, address, nonce, tx_id, slot) VALUES ($1, $2, $3, $4, $5)",
                &[&chain, &addr, &n, &tx, &slot.as_str()],
            )
            .await?;
            exec(
                t,
                "UPDATE evm_nonces SET next = GREATEST(next, $3::bigint + 1) WHERE chain_id = $1 AND address = $2",
                &[&chain, &addr, &n],
            )
            .await?;
            Ok(n as u64)
        })
    }

    /// Gives back the nonce `tx`'s `slot` holds, for a transaction that never reached the node
    /// (a failure before or at submit, `EVM_NONCE_TOO_LOW` before a rebuild). The last nonce
    /// handed out rewinds `next`; `EVM_NONCE_TOO_LOW` (`rewind = false`) never does (the chain
    /// is past it: no gap). Returns what it released, if `tx` held that slot.
    pub fn release_evm_nonce(
        &self,
        account: &NonceAccount,
        tx: Uuid,
        slot: NonceSlot,
        rewind: bool,
    ) -> Result<Option<Released>, StoreError> {
        let (chain, addr) = account.key();
        self.write(Global::Shared, async |t| {
            lock_agent(t, account.agent).await?;
            let Some(row) = opt(
                t,
                "DELETE FROM evm_nonce_claims WHERE tx_id = $1 AND slot = $2 RETURNING nonce",
                &[&tx, &slot.as_str()],
            )
            .await?
            else {
                return Ok(None);
            };
            let n: i64 = row.get(0);
            let mut gap = false;
            if rewind {
                gap = exec(
                    t,
                    "UPDATE evm_nonces SET next = $3::bigint WHERE chain_id = $1 AND address = $2 AND next = $3::bigint + 1",
                    &[&chain, &addr, &n],
                )
                .await?
                    == 0;
            }
            Ok(Some(Released { nonce: n as u64, gap }))
        })
    }

    /// The nonce `tx`'s `slot` holds, if any. A NOOP fill builds with exactly its claimed nonce
    /// and never asks for another.
    pub fn held_evm_nonce(&self, tx: Uuid, slot: NonceSlot) -> Result<Option<u64>, StoreError> {
        self.read(async |t| {
            Ok(opt(t, "SELECT nonce FROM evm_nonce_claims WHERE tx_id = $1 AND slot = $2", &[&tx, &slot.as_str()])
                .await?
                .map(|r| r.get::<_, i64>(0) as u64))
        })
    }

    /// The gaps of an account: each nonce in `[pending, next)` that no claim holds, ascending.
    /// `pending` is the node's pending count, which stops at the node's first missing nonce.
    pub fn evm_nonce_gaps(&self, account: &NonceAccount, pending: u64) -> Result<Vec<u64>, StoreError> {
        let (chain, addr) = account.key();
        self.read(async |t| {
            Ok(all(
                t,
                "SELECT n FROM evm_nonces e, generate_series($3::bigint, e.next - 1) n
                  WHERE e.chain_id = $1 AND e.address = $2
                    AND NOT EXISTS (SELECT 1 FROM evm_nonce_claims c
                                     WHERE c.chain_id = $1 AND c.address = $2 AND c.nonce = n)
                  ORDER BY n",
                &[&chain, &addr, &(pending as i64)],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect())
        })
    }

    /// Records the NOOP that fills the gap at `nonce` (§6.2 step 4): `fill` (a claimed, EXECUTING
    /// 0-value self-transfer with `metadata.nonceFill`) is inserted, claims `nonce` for its main
    /// slot, and `NONCE_GAP_FILLED` is audited, in one transaction under the agent lock. `false`,
    /// with nothing written, when the gap is gone: a send took the nonce, or a resync moved `next`
    /// to or below it.
    pub fn record_nonce_fill(
        &self,
        account: &NonceAccount,
        fill: &TransactionRecord,
        nonce: u64,
        ctx: &OpCtx,
    ) -> Result<bool, StoreError> {
        let (chain, addr) = account.key();
        let n = nonce as i64;
        self.write(Global::Shared, async |t| {
            lock_agent(t, account.agent).await?;
            let open = opt(
                t,
                "SELECT 1 FROM evm_nonces e WHERE e.chain_id = $1 AND e.address = $2 AND $3::bigint < e.next
                    AND NOT EXISTS (SELECT 1 FROM evm_nonce_claims c
                                     WHERE c.chain_id = $1 AND c.address = $2 AND c.nonce = $3::bigint)",
                &[&chain, &addr, &n],
            )
            .await?;
            if open.is_none() {
                return Ok(false);
            }
            insert_tx(t, fill).await?;
            exec(
                t,
                "INSERT INTO evm_nonce_claims (chain_id, address, nonce, tx_id, slot) VALUES ($1, $2, $3, $4, 'main')",
                &[&chain, &addr, &n, &fill.id],
            )
            .await?;
            let ev = AuditEvent::new(AuditEventType::NonceGapFilled, "system")
                .severity(AuditSeverity::Warning)
                .agent(account.agent)
                .tx(fill.id)
                .detail("address", account.address.clone())
                .detail("chainId", account.chain_id)
                .detail("nonce", nonce);
            self.audit(t, ev, ctx).await?;
            Ok(true)
        })
    }

    /// A new leader's resync of one account (13-postgres-ha.md §6.2 step 4), after recovery:
    /// claims below the chain's mined count `mined` are done, and claims of transactions that
    /// will never be sent (no longer SUBMITTED or CONFIRMED, or gone) are dropped; then `next`
    /// becomes `max(pending, 1 + highest remaining claim)`. A change is audited
    /// (`NONCE_RESYNCED`); `None` when nothing changed.
    pub fn resync_evm_nonces(
        &self,
        account: &NonceAccount,
        mined: u64,
        pending: u64,
        ctx: &OpCtx,
    ) -> Result<Option<Resynced>, StoreError> {
        let (chain, addr) = account.key();
        self.write(Global::Shared, async |t| {
            lock_agent(t, account.agent).await?;
            let dropped = exec(
                t,
                "DELETE FROM evm_nonce_claims c WHERE c.chain_id = $1 AND c.address = $2
                   AND (c.nonce < $3 OR NOT EXISTS (SELECT 1 FROM transactions x
                         WHERE x.id = c.tx_id AND x.status IN ('SUBMITTED', 'CONFIRMED')))",
                &[&chain, &addr, &(mined as i64)],
            )
            .await?;
            let before = opt(t, "SELECT next FROM evm_nonces WHERE chain_id = $1 AND address = $2", &[&chain, &addr])
                .await?
                .map(|r| r.get::<_, i64>(0) as u64);
            let highest: Option<i64> = one(
                t,
                "SELECT max(nonce) FROM evm_nonce_claims WHERE chain_id = $1 AND address = $2",
                &[&chain, &addr],
            )
            .await?
            .get(0);
            let after = (pending as i64).max(highest.map_or(0, |h| h + 1));
            exec(
                t,
                "INSERT INTO evm_nonces (chain_id, address, next) VALUES ($1, $2, $3)
                 ON CONFLICT (chain_id, address) DO UPDATE SET next = EXCLUDED.next",
                &[&chain, &addr, &after],
            )
            .await?;
            let after = after as u64;
            if before == Some(after) && dropped == 0 {
                return Ok(None);
            }
            let r = Resynced { before: before.unwrap_or(0), after, dropped };
            let ev = AuditEvent::new(AuditEventType::NonceResynced, "system")
                .agent(account.agent)
                .detail("address", account.address.clone())
                .detail("chainId", account.chain_id)
                .detail("mined", mined)
                .detail("pending", pending)
                .detail("before", r.before)
                .detail("after", r.after)
                .detail("droppedClaims", r.dropped);
            self.audit(t, ev, ctx).await?;
            Ok(Some(r))
        })
    }

    /// `next` of an account, if it has a row.
    pub fn evm_nonce_next(&self, chain_id: u64, address: &str) -> Result<Option<u64>, StoreError> {
        let addr = address.to_ascii_lowercase();
        self.read(async |t| {
            Ok(opt(t, "SELECT next FROM evm_nonces WHERE chain_id = $1 AND address = $2", &[&(chain_id as i64), &addr])
                .await?
                .map(|r| r.get::<_, i64>(0) as u64))
        })
    }

    /// Every claimed nonce of an account, ascending (tests).
    #[cfg(test)]
    pub(crate) fn evm_nonce_claims_for_tests(&self, chain_id: u64, address: &str) -> Result<Vec<u64>, StoreError> {
        let addr = address.to_ascii_lowercase();
        self.read(async |t| {
            Ok(all(
                t,
                "SELECT nonce FROM evm_nonce_claims WHERE chain_id = $1 AND address = $2 ORDER BY nonce",
                &[&(chain_id as i64), &addr],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enums::{Chain, Network};
    use crate::pg::test_db::TestDb;
    use crate::records::AgentRecord;

    fn account() -> NonceAccount {
        NonceAccount { chain_id: 1, address: "0xAbC0000000000000000000000000000000000001".into(), agent: Uuid::nil() }
    }

    // A transaction asking again keeps its nonce; a released last nonce rewinds, a released
    // earlier one is the next one handed out; the chain being ahead skips to its pending count.
    #[test]
    fn claims_are_per_transaction_and_gaps_are_reused() {
        let db = TestDb::new();
        let s = db.leader("nonces");
        let a = account();
        let (t0, t1, t2, t3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(s.assign_evm_nonce(&a, t0, NonceSlot::Main, 0).unwrap(), 0);
        assert_eq!(s.assign_evm_nonce(&a, t0, NonceSlot::Main, 0).unwrap(), 0, "asked again: the same");
        assert_eq!(s.assign_evm_nonce(&a, t0, NonceSlot::Reset, 0).unwrap(), 1, "its other slot");
        assert_eq!(s.assign_evm_nonce(&a, t1, NonceSlot::Main, 0).unwrap(), 2);
        assert_eq!(
            s.release_evm_nonce(&a, t1, NonceSlot::Main, true).unwrap(),
            Some(Released { nonce: 2, gap: false })
        );
        assert_eq!(s.evm_nonce_next(1, &a.address).unwrap(), Some(2), "the last one rewinds");
        assert_eq!(
            s.release_evm_nonce(&a, t0, NonceSlot::Reset, false).unwrap(),
            Some(Released { nonce: 1, gap: false }),
            "EVM_NONCE_TOO_LOW: the chain is past it"
        );
        assert_eq!(s.evm_nonce_next(1, &a.address).unwrap(), Some(2), "not the last: no rewind");
        assert_eq!(s.assign_evm_nonce(&a, t2, NonceSlot::Main, 0).unwrap(), 1, "the gap is reused");
        assert_eq!(s.assign_evm_nonce(&a, t3, NonceSlot::Main, 7).unwrap(), 7, "the chain is ahead");
        assert_eq!(s.evm_nonce_next(1, &a.address).unwrap(), Some(8));
        // Resync: nothing of these transactions exists as a row, so every claim is dropped.
        let ctx = OpCtx::new("system", 1_700_000_000);
        let r = s.resync_evm_nonces(&a, 3, 3, &ctx).unwrap().unwrap();
        assert_eq!(r, Resynced { before: 8, after: 3, dropped: 3 });
        assert_eq!(s.evm_nonce_claims_for_tests(1, &a.address).unwrap(), Vec::<u64>::new());
        assert_eq!(s.resync_evm_nonces(&a, 3, 3, &ctx).unwrap(), None, "nothing changes twice");
        let audited = s.audit_by_event("NONCE_RESYNCED").unwrap();
        assert_eq!(audited.len(), 1, "one change, one NONCE_RESYNCED");
        assert_eq!(audited[0].details["after"], 3);
    }

    fn fill_row(agent: &AgentRecord, now: u64) -> TransactionRecord {
        TransactionRecord::nonce_fill(Uuid::now_v7(), agent, 0, now)
    }

    // A release that cannot rewind leaves a gap; the gap is filled exactly once, the fill's row
    // holds the nonce, and no rate or AutoStop count sees the fill.
    #[test]
    fn a_gap_is_filled_once_and_the_fill_counts_for_nothing() {
        let db = TestDb::new();
        let s = db.leader("fills");
        let now = 1_700_000_000;
        let ctx = OpCtx::new("system", now);
        let mut agent = AgentRecord::new(Uuid::now_v7(), "e".into(), Chain::Ethereum, Network::Testnet, Some(1), now);
        agent.public_key = "0x00000000000000000000000000000000000000e1".into();
        s.insert_agent(&agent, &ctx).unwrap();
        let a = NonceAccount { chain_id: 1, address: agent.public_key.clone(), agent: agent.id };
        let (t0, t1) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(s.assign_evm_nonce(&a, t0, NonceSlot::Main, 0).unwrap(), 0);
        assert_eq!(s.assign_evm_nonce(&a, t1, NonceSlot::Main, 0).unwrap(), 1);
        assert_eq!(s.release_evm_nonce(&a, t0, NonceSlot::Main, true).unwrap(), Some(Released { nonce: 0, gap: true }));
        assert_eq!(s.evm_nonce_gaps(&a, 0).unwrap(), vec![0]);
        assert_eq!(s.evm_nonce_gaps(&a, 1).unwrap(), Vec::<u64>::new(), "the node is past it");

        let fill = fill_row(&agent, now);
        assert!(s.record_nonce_fill(&a, &fill, 0, &ctx).unwrap());
        assert_eq!(s.held_evm_nonce(fill.id, NonceSlot::Main).unwrap(), Some(0));
        assert_eq!(s.evm_nonce_gaps(&a, 0).unwrap(), Vec::<u64>::new());
        let late = fill_row(&agent, now);
        assert!(!s.record_nonce_fill(&a, &late, 0, &ctx).unwrap(), "filled already");
        assert!(!s.record_nonce_fill(&a, &late, 2, &ctx).unwrap(), "at next: not a gap");
        assert!(s.get_transaction(late.id).unwrap().is_none(), "a refused fill writes nothing");
        let audited = s.audit_by_event("NONCE_GAP_FILLED").unwrap();
        assert_eq!(audited.len(), 1);
        assert_eq!((audited[0].actor.as_str(), audited[0].tx_id), ("system", Some(fill.id)));
        assert_eq!(audited[0].details["nonce"], 0);

        // The fill is the agent's only row: no count sees it.
        assert_eq!(s.created_since(agent.id, 0, 10).unwrap(), 0, "hourly AutoStop");
        s.exec_for_tests(
            "UPDATE transactions SET record = jsonb_set(record, '{status}', '\"FAILED\"') WHERE id = $1",
            &[&fill.id],
        )
        .unwrap();
        assert_eq!(s.consecutive_failures(agent.id, 10).unwrap(), 0, "consecutive failures");
    }
}
