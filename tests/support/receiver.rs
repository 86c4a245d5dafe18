//! The recording stand-in for the notification services (`scripts/oracles/notify_receiver.py`):
//! a real HTTP server in its own process that answers like Telegram, Discord, Slack, ntfy and a
//! signed-webhook receiver, records what it received, verifies WEBHOOK signatures with Python's
//! `hmac`, and can be told to fail, rate-limit, delay or hang.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::owner::python;

pub(crate) struct Receiver {
    child: Child,
    pub(crate) port: u16,
    http: reqwest::Client,
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oracles/notify_receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the notification receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("LISTENING ").expect("LISTENING <port>").parse().unwrap();
        Receiver { child, port, http: reqwest::Client::new() }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every recorded request, oldest first.
    pub(crate) async fn requests(&self) -> Vec<Value> {
        let v: Value = self.http.get(self.url("/__requests")).send().await.unwrap().json().await.unwrap();
        v.as_array().unwrap().clone()
    }

    /// Recorded requests whose path starts with `prefix`.
    pub(crate) async fn requests_to(&self, prefix: &str) -> Vec<Value> {
        self.requests().await.into_iter().filter(|r| r["path"].as_str().unwrap().starts_with(prefix)).collect()
    }

    /// Waits until `n` requests to `prefix` were recorded (10 s at most) and returns them.
    pub(crate) async fn wait_for(&self, prefix: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.requests_to(prefix).await;
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "only {} of {n} requests to {prefix}: {got:?}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the behaviour of paths starting with `prefix`.
    pub(crate) async fn behave(&self, prefix: &str, b: Value) {
        self.http.post(self.url("/__behave")).json(&json!({ prefix: b })).send().await.unwrap();
    }

    pub(crate) async fn reset(&self) {
        self.http.post(self.url("/__reset")).send().await.unwrap();
    }

    /// Python's `hmac` verdict on a WEBHOOK delivery.
    pub(crate) async fn verify(&self, secret: &str, timestamp: &str, body: &str, signature: &str) -> bool {
        let v: Value = self
            .http
            .post(self.url("/__verify"))
            .json(&json!({"secret": secret, "timestamp": timestamp, "body": body, "signature": signature}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["valid"].as_bool().unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
