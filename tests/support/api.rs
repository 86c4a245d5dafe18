//! The agent and operator calls most tests make, and what they read off the answers.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestDaemon;

pub(crate) const ETH: u128 = 1_000_000_000_000_000_000;
pub(crate) const SOL: u64 = 1_000_000_000;

/// The `id` field of a JSON object.
pub(crate) fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The error code of an error envelope.
pub(crate) fn code(v: &Value) -> Option<&str> {
    v["code"].as_str()
}

/// `POST /v1/transactions/send` with a session token.
pub(crate) async fn send(d: &TestDaemon, token: &str, body: Value) -> (u16, Value) {
    d.bearer("POST", "/v1/transactions/send", token, Some(body)).await
}

/// `GET /v1/transactions/:id` with the agent's session token.
pub(crate) async fn row(d: &TestDaemon, token: &str, tx: &str) -> Value {
    let (st, v) = d.bearer("GET", &format!("/v1/transactions/{tx}"), token, None).await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Polls the row until `done` holds (15 s at most, daemon time untouched).
pub(crate) async fn wait_row(d: &TestDaemon, token: &str, tx: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = row(d, token, tx).await;
        if done(&r) || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the row to reach `status` and asserts it did.
pub(crate) async fn wait_status(d: &TestDaemon, token: &str, tx: &str, status: &str) -> Value {
    let r = wait_row(d, token, tx, |r| r["status"] == status).await;
    assert_eq!(r["status"], status, "{r}");
    r
}

/// Polls the agent (master password) until `done` holds (15 s at most).
pub(crate) async fn wait_agent(d: &TestDaemon, agent: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, a) = d.master("GET", &format!("/v1/agents/{agent}"), None).await;
        if done(&a) || Instant::now() > deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
