//! The keystore's files and the master-password lockout in the shared database
//! (13-postgres-ha.md §3, §5): every replica decrypts the same master.json and key files, and a
//! lockout one replica starts holds on all of them. The bytes are opaque here — the keystore
//! (crate `waiaas-backends`) parses and checks them.

use uuid::Uuid;

use super::super::rows::{exec, get_state, opt, set_state};
use super::super::store::{Global, PgStore};
use crate::error::StoreError;

/// The masterAuth counter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MasterAuthState {
    /// Consecutive wrong passwords since the last right one or lockout.
    pub failures: u64,
    /// When the lockout ends (unix seconds), if one was started.
    pub lockout_until: Option<u64>,
}

impl MasterAuthState {
    /// Whether a right password has anything to reset.
    pub fn dirty(&self) -> bool {
        self.failures > 0 || self.lockout_until.is_some()
    }
}

/// What one wrong master password did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterAuthFailure {
    /// This failure started a lockout.
    pub locked_now: bool,
}

impl PgStore {
    /// master.json's bytes, if `init` stored them.
    pub fn keystore_master(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(async |tx| Ok(opt(tx, "SELECT file FROM keystore_master WHERE id = 1", &[]).await?.map(|r| r.get(0))))
    }

    /// Stores master.json unless one is there (`init`; not fenced, no leader exists yet).
    /// Returns whether these bytes were stored.
    pub fn put_keystore_master(&self, file: &[u8]) -> Result<bool, StoreError> {
        self.unfenced_serializable(async |tx| {
            let n =
                exec(tx, "INSERT INTO keystore_master (id, file) VALUES (1, $1) ON CONFLICT (id) DO NOTHING", &[&file])
                    .await?;
            Ok(n == 1)
        })
    }

    /// An agent's key file.
    pub fn key_file(&self, agent: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(async |tx| {
            Ok(opt(tx, "SELECT file FROM keys WHERE agent_id = $1", &[&agent]).await?.map(|r| r.get(0)))
        })
    }

    /// Writes an agent's key file (a new agent, an import). Fenced: only the leader creates keys.
    pub fn put_key_file(&self, agent: Uuid, file: &[u8]) -> Result<(), StoreError> {
        self.write(Global::Shared, async |tx| {
            exec(
                tx,
                "INSERT INTO keys (agent_id, file) VALUES ($1, $2) ON CONFLICT (agent_id) DO UPDATE SET file = EXCLUDED.file",
                &[&agent, &file],
            )
            .await?;
            Ok(())
        })
    }

    /// Deletes an agent's key file (termination, a failed creation); a missing one is fine.
    pub fn delete_key_file(&self, agent: Uuid) -> Result<(), StoreError> {
        self.write(Global::Shared, async |tx| {
            exec(tx, "DELETE FROM keys WHERE agent_id = $1", &[&agent]).await?;
            Ok(())
        })
    }

    /// The masterAuth counter as stored: consecutive failures, and the lockout's end (unix
    /// seconds) if one was started. One read, for every masterAuth request.
    pub fn master_auth_state(&self) -> Result<MasterAuthState, StoreError> {
        self.read(async |tx| {
            Ok(MasterAuthState {
                failures: get_state(tx, "master_auth_failures").await?.and_then(|v| v.as_u64()).unwrap_or(0),
                lockout_until: get_state(tx, "master_auth_lockout_until").await?.and_then(|v| v.as_u64()),
            })
        })
    }

    /// Counts one wrong master password (04-auth.md §2): the `max`-th consecutive one starts a
    /// lockout of `lockout_secs` from `now` and resets the count. The count row is locked for
    /// the transaction, so concurrent failures on any replicas each count.
    pub fn master_auth_failure(&self, now: u64, max: u32, lockout_secs: u64) -> Result<MasterAuthFailure, StoreError> {
        self.write(Global::Shared, async |tx| {
            exec(
                tx,
                "INSERT INTO system_state (key, value, updated_at) VALUES ('master_auth_failures', '0', $1)
                 ON CONFLICT (key) DO NOTHING",
                &[&(now as i64)],
            )
            .await?;
            let row = opt(tx, "SELECT value FROM system_state WHERE key = 'master_auth_failures' FOR UPDATE", &[])
                .await?
                .ok_or(StoreError::Invariant("master_auth_failures row"))?;
            let count = row.get::<_, serde_json::Value>(0).as_u64().unwrap_or(0) + 1;
            let locked_now = count >= u64::from(max);
            let count = if locked_now { 0 } else { count };
            set_state(tx, "master_auth_failures", count.into(), now).await?;
            if locked_now {
                set_state(tx, "master_auth_lockout_until", (now + lockout_secs).into(), now).await?;
            }
            Ok(MasterAuthFailure { locked_now })
        })
    }

    /// A right master password after failures: the count starts over and any lockout ends.
    /// (The caller writes only when [`master_auth_state`](Self::master_auth_state) showed
    /// something to reset.)
    pub fn master_auth_reset(&self, now: u64) -> Result<(), StoreError> {
        self.write(Global::Shared, async |tx| {
            set_state(tx, "master_auth_failures", 0.into(), now).await?;
            set_state(tx, "master_auth_lockout_until", serde_json::Value::Null, now).await?;
            Ok(())
        })
    }
}
