//! The CLI's HTTP client for the running daemon (01-daemon.md §4.1, §3.3): always
//! `http://127.0.0.1:{port}`, a `/health` probe first, API errors printed as
//! `Error: <message> (<code>)` plus `Hint: <hint>`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::cli::{CliError, exit};

pub(crate) struct DaemonClient {
    base: String,
    http: reqwest::Client,
    master: Option<SecretString>,
}

impl DaemonClient {
    pub(crate) fn new(port: u16, master: Option<SecretString>) -> DaemonClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(180))
            .build()
            .expect("a default reqwest client builds");
        DaemonClient { base: format!("http://127.0.0.1:{port}"), http, master }
    }

    fn not_running(&self) -> CliError {
        CliError::new(
            exit::NOT_RUNNING,
            format!(
                "Error: Cannot connect to WAIaaS daemon at {}. Run 'waiaas start' first.",
                self.base.trim_start_matches("http://")
            ),
        )
    }

    /// `GET /health`; a connection failure is exit 3.
    pub(crate) async fn health(&self) -> Result<Value, CliError> {
        let r = self
            .http
            .get(format!("{}/health", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|_| self.not_running())?;
        r.json().await.map_err(|_| self.not_running())
    }

    /// `GET /ready`: `{ready, reasons?}` whatever the status (503 carries the reasons).
    pub(crate) async fn ready(&self) -> Option<Value> {
        let r = self.http.get(format!("{}/ready", self.base)).timeout(Duration::from_secs(5)).send().await.ok()?;
        r.json().await.ok()
    }

    /// Calls an API route and returns the body of a 2xx answer.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        self.call_as(method, path, body, None).await
    }

    /// As [`call`](Self::call), with an `Authorization: Bearer <bearer>` header (an owner
    /// payload) next to the master password.
    pub(crate) async fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<Value, CliError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(pw) = &self.master {
            req = req.header("X-Master-Password", pw.expose_secret());
        }
        if let Some(b) = bearer {
            req = req.header("Authorization", format!("Bearer {b}"));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|_| self.not_running())?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["code"].as_str().unwrap_or("UNKNOWN");
        let mut msg = format!("Error: {} ({code})", body["message"].as_str().unwrap_or("request failed"));
        if let Some(h) = body["hint"].as_str() {
            msg.push_str(&format!("\nHint: {h}"));
        }
        let exit_code = match code {
            "INVALID_MASTER_PASSWORD" | "MASTER_PASSWORD_REQUIRED" | "MASTER_PASSWORD_LOCKED" => exit::AUTH,
            _ => exit::GENERAL,
        };
        Err(CliError::new(exit_code, msg))
    }
}
