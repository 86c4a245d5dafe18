//! Shared plumbing of the CLI commands that talk to the running daemon: the port from the
//! resolved config, the `/health` probe (exit 3 when unreachable), the master password
//! (01-daemon.md §3.2; the fixed dev password when the config is in dev mode) and agent lookup
//! by name or id.

use std::path::Path;

use reqwest::Method;
use secrecy::SecretString;
use serde_json::Value;

use crate::cli::remote::client::DaemonClient;
use crate::cli::{CliError, PasswordArgs, password};

/// A connected client with its runtime.
pub(crate) struct Api {
    rt: tokio::runtime::Runtime,
    pub(crate) client: DaemonClient,
    pub(crate) port: u16,
    pub(crate) config: Option<crate::runtime::config::Config>,
}

impl Api {
    /// Probes the daemon, then obtains the master password when `master` is set.
    pub(crate) fn connect(dir: &Path, pw: &PasswordArgs, master: bool) -> Result<Api, CliError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let config = crate::runtime::config::load(dir, &Default::default(), &env).ok();
        let port = config.as_ref().map(|c| c.daemon.port).unwrap_or(3100);
        let rt = crate::cli::runtime()?;
        let probe = DaemonClient::new(port, None);
        rt.block_on(probe.health())?;
        let secret = if master {
            let from_env = password::take_env(&pw.password_env);
            let dev = config.as_ref().is_some_and(|c| c.daemon.dev_mode);
            Some(match from_env {
                None if dev && password::file_source(pw).is_none() => SecretString::from(password::DEV_PASSWORD),
                other => password::obtain(pw, other, false)?,
            })
        } else {
            None
        };
        Ok(Api { rt, client: DaemonClient::new(port, secret), port, config })
    }

    pub(crate) fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        self.rt.block_on(self.client.call(method, path, body))
    }

    pub(crate) fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<Value, CliError> {
        self.rt.block_on(self.client.call_as(method, path, body, bearer))
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The `<agent>` argument: a UUID is an id, anything else a name (01-daemon.md §4.1).
    pub(crate) fn agent(&self, arg: &str) -> Result<Value, CliError> {
        if uuid::Uuid::parse_str(arg).is_ok() {
            return self.call(Method::GET, &format!("/v1/agents/{arg}"), None);
        }
        let list = self.call(Method::GET, "/v1/agents", None)?;
        let found =
            list["agents"].as_array().into_iter().flatten().find(|a| {
                a["status"] != "TERMINATED" && a["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(arg))
            });
        match found {
            Some(a) => self.call(Method::GET, &format!("/v1/agents/{}", a["id"].as_str().unwrap_or_default()), None),
            None => Err(CliError::general(format!("Error: Agent '{arg}' not found (AGENT_NOT_FOUND)"))),
        }
    }
}

/// `--output text|json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    #[default]
    Text,
    Json,
}

/// Prints a response body as pretty JSON.
pub(crate) fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A list answer: the whole body as JSON with `--json`, else one `line` per item of `key`
/// (`empty` when there is none).
pub(crate) fn print_list(v: &Value, json: bool, key: &str, empty: &str, line: impl Fn(&Value) -> String) {
    if json {
        return print_json(v);
    }
    let list = v[key].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("{empty}");
    }
    for item in &list {
        println!("{}", line(item));
    }
}
