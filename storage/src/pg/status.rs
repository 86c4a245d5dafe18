//! The leader row and the replicas, as `waiaas db status` shows them (13-postgres-ha.md §6.3).
//! Read-only: one REPEATABLE READ snapshot, no locks taken.

use tokio_postgres::Client;

use super::locks;
use crate::error::StoreError;

/// The `leader` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// Bumped by every takeover (and `db copy`).
    pub epoch: u64,
    /// Who took the current epoch (`None` before the first takeover).
    pub replica_id: Option<String>,
    /// When, in unix seconds.
    pub since: Option<u64>,
}

/// One `replicas` row, and whether that replica runs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Its `[database].replica_id`.
    pub replica_id: String,
    /// Host name it reported.
    pub host: String,
    /// Process id it reported.
    pub pid: u64,
    /// Its waiaas version.
    pub version: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Its replica lock is held: the process holds a live session.
    pub live: bool,
}

/// Reads the leader row and every replica, with liveness from `pg_locks` (this database's
/// rows only: advisory locks are per database, `pg_locks` is per cluster).
pub async fn read(client: &Client) -> Result<(Leader, Vec<Replica>), StoreError> {
    let leader = client
        .query_one("SELECT epoch, replica_id, since FROM leader WHERE id = 1", &[])
        .await
        .map_err(super::map_err)?;
    let leader = Leader {
        epoch: leader.get::<_, i64>(0) as u64,
        replica_id: leader.get(1),
        since: leader.get::<_, Option<i64>>(2).map(|s| s as u64),
    };
    let held = client
        .query(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&(locks::replica("").0 as i64)],
        )
        .await
        .map_err(super::map_err)?;
    let held: Vec<u32> = held.iter().map(|r| r.get::<_, i64>(0) as u32).collect();
    let rows = client
        .query("SELECT replica_id, host, pid, version, started_at FROM replicas ORDER BY replica_id", &[])
        .await
        .map_err(super::map_err)?;
    let replicas = rows
        .iter()
        .map(|r| {
            let replica_id: String = r.get(0);
            let live = held.contains(&(locks::replica(&replica_id).1 as u32));
            Replica {
                replica_id,
                host: r.get(1),
                pid: r.get::<_, i64>(2) as u64,
                version: r.get(3),
                started_at: r.get::<_, i64>(4) as u64,
                live,
            }
        })
        .collect();
    Ok((leader, replicas))
}
