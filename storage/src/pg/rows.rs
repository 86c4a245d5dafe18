//! Row access inside a PostgreSQL transaction: the counterpart of `rows.rs`. Each record table
//! keys on `id uuid` and keeps the record in `record jsonb`; the generated columns follow by
//! themselves. Table names are the static names of the schema, never input.

use deadpool_postgres::Transaction;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::codec::{from_text, to_json};
use super::map_err;
use crate::error::StoreError;
use crate::records::*;

/// Rows of `record::text` decoded by the shared codec.
pub(crate) async fn query<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    table: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<T>, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    let rows = tx.query(&stmt, params).await.map_err(map_err)?;
    rows.iter().map(|r| from_text(table, r.get::<_, &str>(0))).collect()
}

/// One row by id, if present.
pub(crate) async fn get<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    table: &'static str,
    id: Uuid,
) -> Result<Option<T>, StoreError> {
    let sql = format!("SELECT record::text FROM {table} WHERE id = $1");
    Ok(query(tx, table, &sql, &[&id]).await?.pop())
}

/// One row by id; `NotFound` when absent.
pub(crate) async fn must_get<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    table: &'static str,
    id: Uuid,
) -> Result<T, StoreError> {
    get(tx, table, id).await?.ok_or_else(|| StoreError::not_found(table, id))
}

/// Inserts a new row; the primary key or a backstop constraint refuses a duplicate.
pub(crate) async fn insert<T: Serialize>(
    tx: &Transaction<'_>,
    table: &'static str,
    id: Uuid,
    rec: &T,
) -> Result<(), StoreError> {
    let sql = format!("INSERT INTO {table} (id, record) VALUES ($1, $2)");
    let stmt = tx.prepare_cached(&sql).await.map_err(map_err)?;
    tx.execute(&stmt, &[&id, &to_json(table, rec)?]).await.map_err(map_err)?;
    Ok(())
}

/// Replaces an existing row; `NotFound` when it is gone.
pub(crate) async fn update<T: Serialize>(
    tx: &Transaction<'_>,
    table: &'static str,
    id: Uuid,
    rec: &T,
) -> Result<(), StoreError> {
    let sql = format!("UPDATE {table} SET record = $2 WHERE id = $1");
    let stmt = tx.prepare_cached(&sql).await.map_err(map_err)?;
    match tx.execute(&stmt, &[&id, &to_json(table, rec)?]).await.map_err(map_err)? {
        0 => Err(StoreError::not_found(table, id)),
        _ => Ok(()),
    }
}

/// Deletes a row; whether it existed.
pub(crate) async fn delete(tx: &Transaction<'_>, table: &'static str, id: Uuid) -> Result<bool, StoreError> {
    let sql = format!("DELETE FROM {table} WHERE id = $1");
    let stmt = tx.prepare_cached(&sql).await.map_err(map_err)?;
    Ok(tx.execute(&stmt, &[&id]).await.map_err(map_err)? > 0)
}

/// Whether a row with this id exists.
pub(crate) async fn exists(tx: &Transaction<'_>, table: &'static str, id: Uuid) -> Result<bool, StoreError> {
    let sql = format!("SELECT 1 FROM {table} WHERE id = $1");
    let stmt = tx.prepare_cached(&sql).await.map_err(map_err)?;
    Ok(tx.query_opt(&stmt, &[&id]).await.map_err(map_err)?.is_some())
}

/// An agent; `NotFound` when absent.
pub(crate) async fn get_agent(tx: &Transaction<'_>, id: Uuid) -> Result<AgentRecord, StoreError> {
    must_get(tx, "agents", id).await
}

/// A `system_state` value.
pub(crate) async fn get_state(tx: &Transaction<'_>, key: &str) -> Result<Option<Value>, StoreError> {
    let stmt = tx.prepare_cached("SELECT value FROM system_state WHERE key = $1").await.map_err(map_err)?;
    Ok(tx.query_opt(&stmt, &[&key]).await.map_err(map_err)?.map(|r| r.get(0)))
}

/// Sets a `system_state` value.
pub(crate) async fn set_state(tx: &Transaction<'_>, key: &str, value: Value, now: u64) -> Result<(), StoreError> {
    let value = to_json("system_state", &value)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO system_state (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
        )
        .await
        .map_err(map_err)?;
    tx.execute(&stmt, &[&key, &value, &(now as i64)]).await.map_err(map_err)?;
    Ok(())
}

/// Takes an agent's lock (§5), after G.
pub(crate) async fn lock_agent(tx: &Transaction<'_>, id: Uuid) -> Result<(), StoreError> {
    super::store::lock(tx, super::locks::agent(id), true).await
}

/// Takes several agents' locks in ascending id order (the one order every operation uses).
pub(crate) async fn lock_agents(tx: &Transaction<'_>, ids: &[Uuid]) -> Result<(), StoreError> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    for id in ids {
        lock_agent(tx, id).await?;
    }
    Ok(())
}

/// A row count as a SQL `LIMIT` (a `usize::MAX` "no limit" becomes `i64::MAX`).
pub(crate) fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `execute` through the connection's statement cache: one round trip, not two (an uncached
/// statement is parsed and described first).
pub(crate) async fn exec(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    tx.execute(&stmt, params).await.map_err(map_err)
}

/// `query_one` through the statement cache.
pub(crate) async fn one(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<tokio_postgres::Row, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    tx.query_one(&stmt, params).await.map_err(map_err)
}

/// `query_opt` through the statement cache.
pub(crate) async fn opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    tx.query_opt(&stmt, params).await.map_err(map_err)
}

/// `query` through the statement cache.
pub(crate) async fn all(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    tx.query(&stmt, params).await.map_err(map_err)
}
