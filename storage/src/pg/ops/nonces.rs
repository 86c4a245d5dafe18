//! EVM nonces handed out by the database (13-postgres-ha.md §5): a claim per (address, nonce),
//! at most one per (transaction, slot), taken under the agent lock. A transaction asking again
//! gets the nonce it holds, so one logical transaction can never hold two nonces for one slot;
//! two transactions can never hold one nonce (the claims' primary key).
//!
//! A nonce is handed out as the lowest one at or above the chain's pending count that no claim
//! holds. A claim is released only for a transaction that never reached the node, so such a
//! nonce is free; the next send of the address fills the gap it left (the spec's NOOP fill is
//! not built, see `resync`).

use uuid::Uuid;

use super::super::rows::{exec, lock_agent, one, opt};
use super::super::store::{Global, PgStore};
use crate::error::StoreError;

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
    /// handed out rewinds `next`; `EVM_NONCE_TOO_LOW` (`rewind = false`) never does. Returns the
    /// nonce released, if it held one.
    pub fn release_evm_nonce(
        &self,
        account: &NonceAccount,
        tx: Uuid,
        slot: NonceSlot,
        rewind: bool,
    ) -> Result<Option<u64>, StoreError> {
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
            if rewind {
                exec(
                    t,
                    "UPDATE evm_nonces SET next = $3::bigint WHERE chain_id = $1 AND address = $2 AND next = $3::bigint + 1",
                    &[&chain, &addr, &n],
                )
                .await?;
            }
            Ok(Some(n as u64))
        })
    }

    /// A new leader's resync of one account (13-postgres-ha.md §6.2 step 4), after recovery:
    /// claims below the chain's mined count `mined` are done, and claims of transactions that
    /// will never be sent (no longer SUBMITTED or CONFIRMED, or gone) are dropped; then `next`
    /// becomes `max(pending, 1 + highest remaining claim)`. `None` when nothing changed.
    pub fn resync_evm_nonces(
        &self,
        account: &NonceAccount,
        mined: u64,
        pending: u64,
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
            Ok((before != Some(after) || dropped > 0).then_some(Resynced {
                before: before.unwrap_or(0),
                after,
                dropped,
            }))
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
            Ok(super::super::rows::all(
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
    use crate::pg::test_db::TestDb;

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
        assert_eq!(s.release_evm_nonce(&a, t1, NonceSlot::Main, true).unwrap(), Some(2));
        assert_eq!(s.evm_nonce_next(1, &a.address).unwrap(), Some(2), "the last one rewinds");
        assert_eq!(s.release_evm_nonce(&a, t0, NonceSlot::Reset, false).unwrap(), Some(1));
        assert_eq!(s.evm_nonce_next(1, &a.address).unwrap(), Some(2), "not the last: no rewind");
        assert_eq!(s.assign_evm_nonce(&a, t2, NonceSlot::Main, 0).unwrap(), 1, "the gap is reused");
        assert_eq!(s.assign_evm_nonce(&a, t3, NonceSlot::Main, 7).unwrap(), 7, "the chain is ahead");
        assert_eq!(s.evm_nonce_next(1, &a.address).unwrap(), Some(8));
        // Resync: nothing of these transactions exists as a row, so every claim is dropped.
        let r = s.resync_evm_nonces(&a, 3, 3).unwrap().unwrap();
        assert_eq!(r, Resynced { before: 8, after: 3, dropped: 3 });
        assert_eq!(s.evm_nonce_claims_for_tests(1, &a.address).unwrap(), Vec::<u64>::new());
        assert_eq!(s.resync_evm_nonces(&a, 3, 3).unwrap(), None, "nothing changes twice");
    }
}
