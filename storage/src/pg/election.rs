//! The election connection (13-postgres-ha.md §6.1): one connection outside the pool that holds
//! this replica's lock and, while it leads, the leader lock. Both are session-level advisory
//! locks, so PostgreSQL frees them the moment this connection dies — a `kill -9`, a crash or a
//! cut network (after the keepalive gives up) is a release, with nobody left to forget it.

use tokio_postgres::Client;
use uuid::Uuid;

use super::status::{Leader, read as read_status};
use super::{PgOptions, locks, map_err};
use crate::error::StoreError;

/// What a replica says about itself in `replicas`.
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u64,
    /// waiaas version.
    pub version: String,
    /// Unix seconds.
    pub started_at: u64,
}

/// The election connection.
pub struct Election {
    client: Client,
    replica_id: String,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election").field("replica_id", &self.replica_id).finish()
    }
}

impl Election {
    /// Opens the connection (keepalives on, and the server checks the client every second) and
    /// takes the replica lock. `Ok(None)`: another live process holds this `replica_id`.
    pub async fn register(opts: &PgOptions, info: &ReplicaInfo) -> Result<Option<Election>, StoreError> {
        let client = opts.connect().await?;
        // PostgreSQL ≥ 14: notice a vanished client within a second even while idle in a query.
        client.batch_execute("SET client_connection_check_interval = 1000").await.map_err(map_err)?;
        let (k1, k2) = locks::replica(&opts.replica_id);
        let got: bool =
            client.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&k1, &k2]).await.map_err(map_err)?.get(0);
        if !got {
            return Ok(None);
        }
        client
            .execute(
                "INSERT INTO replicas (replica_id, boot_id, host, pid, version, started_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (replica_id) DO UPDATE SET boot_id = EXCLUDED.boot_id, host = EXCLUDED.host,
                   pid = EXCLUDED.pid, version = EXCLUDED.version, started_at = EXCLUDED.started_at",
                &[
                    &opts.replica_id,
                    &Uuid::new_v4(),
                    &info.host,
                    &(info.pid as i64),
                    &info.version,
                    &(info.started_at as i64),
                ],
            )
            .await
            .map_err(map_err)?;
        Ok(Some(Election { client, replica_id: opts.replica_id.clone() }))
    }

    /// Tries the leader lock once (a standby calls this every `leader_check_ms`).
    pub async fn try_lead(&self) -> Result<bool, StoreError> {
        let (k1, k2) = locks::LEADER;
        Ok(self.client.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&k1, &k2]).await.map_err(map_err)?.get(0))
    }

    /// The leader's heartbeat: a round trip on the connection that holds the lock.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client.execute("SELECT 1", &[]).await.map_err(map_err).map(|_| ())
    }

    /// Gives the leader lock back (graceful shutdown), so a standby takes over at its next poll.
    pub async fn release(&self) -> Result<(), StoreError> {
        let (k1, k2) = locks::LEADER;
        self.client.execute("SELECT pg_advisory_unlock($1, $2)", &[&k1, &k2]).await.map_err(map_err).map(|_| ())
    }

    /// The `leader` row as the database has it now.
    pub async fn leader(&self) -> Result<Leader, StoreError> {
        Ok(read_status(&self.client).await?.0)
    }
}
