//! `waiaas mcp serve|setup|refresh-token` (01-daemon.md §1.3, §4.11; 10-notifications-clients.md
//! §6): the Model Context Protocol server agents reach their wallet through, and the commands
//! that give it a session token.
//!
//! The server is a client of the daemon's REST API with one session token: it exposes only the
//! agent's routes (no master password, no owner or admin action). It lives under `cli/` because
//! it speaks HTTP to the daemon, like every other command here. The session manager keeps the
//! token alive: it renews at 60 % of the token's lifetime and writes a token that came from the
//! `mcp-token` file back to it *before* using the new one, so a crash never leaves the file
//! holding a token the daemon already replaced.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use clap::{Args, Subcommand};
use reqwest::Method;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServiceExt};
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, RwLock};

use super::{CliError, PasswordArgs};
use crate::cli::remote::api::{Api, print_json};
use crate::domain::pipeline::kinds;
use waiaas_storage::TxType;

/// The token file's name in the data directory.
const TOKEN_FILE: &str = "mcp-token";

#[derive(Debug, Subcommand)]
pub(crate) enum McpCommand {
    /// Run the MCP server on stdio (started by the MCP client, e.g. Claude Desktop).
    Serve,
    /// Create a session for an agent, write `mcp-token` and print the client config.
    Setup(SetupArgs),
    /// Replace the session in `mcp-token` with a fresh one with the same limits.
    RefreshToken(RefreshArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// Agent name or id (needed when there are several).
    #[arg(long)]
    agent: Option<String>,
    /// Session lifetime in seconds.
    #[arg(long, default_value_t = 604_800)]
    expires_in: u64,
    /// Per-transaction amount limit of the session (smallest unit).
    #[arg(long)]
    max_amount: Option<String>,
    /// Allowed operations (comma separated, e.g. TRANSFER,TOKEN_TRANSFER).
    #[arg(long, value_delimiter = ',')]
    allowed_ops: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    output: crate::cli::remote::api::Output,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RefreshArgs {
    #[arg(long, value_enum, default_value_t)]
    output: crate::cli::remote::api::Output,
    #[command(flatten)]
    password: PasswordArgs,
}

// --- The token file (01-daemon.md §1.3) ----------------------------------------------------

/// Reads `mcp-token`: a symlink, a missing file or anything that is not `wai_sess_` plus a
/// three-part JWT reads as no token.
pub(crate) fn read_token(dir: &Path) -> Option<String> {
    let path = dir.join(TOKEN_FILE);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if meta.file_type().is_symlink() {
        tracing::warn!("{} is a symlink: ignored", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let token = text.trim();
    let jwt = token.strip_prefix("wai_sess_")?;
    (jwt.split('.').count() == 3 && jwt.split('.').all(|p| !p.is_empty())).then(|| token.to_string())
}

/// Writes `mcp-token` (0600, temp file and rename; the directory 0700 when created); refuses a
/// symlink at the target.
pub(crate) fn write_token(dir: &Path, token: &str) -> Result<PathBuf, String> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let path = dir.join(TOKEN_FILE);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!("{} is a symlink; refusing to write the token through it", path.display()));
    }
    waiaas_backends::fsutil::write_atomic(&path, token.as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The unverified claims of a session token (`iat`, `exp`, `sid`, `aid`): the server only
/// schedules with them; the daemon verifies the token on every call.
pub(crate) fn claims(token: &str) -> Option<Value> {
    let jwt = token.strip_prefix("wai_sess_")?;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

// --- The session manager ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    Active,
    /// Cannot be renewed any more: tools fail once the token expires.
    Expired,
    /// A 401 survived re-reading the token file.
    Error,
}

struct Session {
    token: RwLock<String>,
    /// The data directory when the token came from `mcp-token` (written back on renewal).
    file_dir: Option<PathBuf>,
    state: Mutex<SessionState>,
}

impl Session {
    async fn token(&self) -> String {
        self.token.read().await.clone()
    }

    /// Swaps in a renewed token: to the file first (when it came from one), then in memory.
    async fn install(&self, token: String) -> Result<(), String> {
        if let Some(dir) = &self.file_dir {
            write_token(dir, &token)?;
        }
        *self.token.write().await = token;
        Ok(())
    }

    /// The 401 rule: re-read the token file once; `true` when it held a different token.
    async fn reread(&self) -> bool {
        let Some(dir) = &self.file_dir else { return false };
        match read_token(dir) {
            Some(t) if t != *self.token.read().await => {
                *self.token.write().await = t;
                true
            }
            _ => false,
        }
    }
}

/// One answer of the daemon.
struct Answer {
    status: u16,
    body: Value,
}

#[derive(Clone)]
struct Daemon {
    http: reqwest::Client,
    base: String,
}

impl Daemon {
    /// The daemon's time (`/health`), in Unix seconds.
    async fn now(&self) -> Option<u64> {
        let a = self.call(Method::GET, "/health", None, None).await.ok()?;
        a.body["timestamp"].as_str().and_then(crate::domain::auth::siwe::parse_time).map(|t| t.max(0) as u64)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if method != Method::GET {
            req = req.header("Idempotency-Key", uuid::Uuid::new_v4().to_string());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| format!("cannot reach the daemon at {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }
}

/// Renews at 60 % of `exp − iat`, for as long as the session can be renewed (§6).
async fn renewal_loop(daemon: Daemon, session: Arc<Session>) {
    loop {
        let token = session.token().await;
        let Some(c) = claims(&token) else { return };
        let (iat, exp) = (c["iat"].as_u64().unwrap_or(0), c["exp"].as_u64().unwrap_or(0));
        let sid = c["sid"].as_str().unwrap_or_default().to_string();
        let at = iat + (exp.saturating_sub(iat)) * 6 / 10;
        // The daemon's clock decides (it checks the renewal window, and dev mode can move it):
        // wait in steps of at most 10 s, re-reading it.
        let now = daemon.now().await.unwrap_or_else(unix_now);
        if now < at {
            tokio::time::sleep(Duration::from_secs((at - now).min(10))).await;
            continue;
        }
        if session.token().await != token {
            continue; // replaced meanwhile (re-read after a 401)
        }
        match daemon.call(Method::PUT, &format!("/v1/sessions/{sid}/renew"), Some(&token), None).await {
            Ok(a) if a.status == 200 => {
                let new = a.body["token"].as_str().unwrap_or_default().to_string();
                if let Err(e) = session.install(new).await {
                    tracing::error!("MCP session renewal: {e}");
                    *session.state.lock().await = SessionState::Error;
                    return;
                }
                tracing::info!("MCP session {sid} renewed");
            }
            Ok(a) => match a.body["code"].as_str() {
                Some("RENEWAL_TOO_EARLY") => {
                    let when =
                        a.body["details"]["renewableAt"].as_str().and_then(crate::domain::auth::siwe::parse_time);
                    let now = daemon.now().await.unwrap_or_else(unix_now);
                    let wait = when.map_or(60, |w| (w.max(0) as u64).saturating_sub(now)).min(60);
                    tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
                }
                Some("RENEWAL_LIMIT_REACHED" | "SESSION_ABSOLUTE_LIFETIME_EXCEEDED") => {
                    *session.state.lock().await = SessionState::Expired;
                    return;
                }
                _ => {
                    tracing::warn!("MCP session renewal refused: {}", a.body);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            },
            Err(e) => {
                tracing::warn!("MCP session renewal: {e}; retrying in 60 s");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// --- Tools -------------------------------------------------------------------------------------

fn schema(properties: Value, required: &[&str]) -> Arc<Map<String, Value>> {
    let v = json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
    Arc::new(v.as_object().cloned().unwrap_or_default())
}

fn tools() -> Vec<Tool> {
    let s = |t: &str| json!({"type": t});
    let mut out = vec![
        Tool::new("get_address", "The agent wallet's address, chain and network.", schema(json!({}), &[])),
        Tool::new("get_balance", "The native balance of the agent wallet.", schema(json!({}), &[])),
        Tool::new("get_assets", "Every asset (native and tokens) the agent wallet holds.", schema(json!({}), &[])),
        Tool::new(
            "dry_run",
            "Evaluate a transaction (the API send body) without sending it: policy tier, fee, simulation.",
            schema(json!({"transaction": s("object")}), &["transaction"]),
        ),
        Tool::new(
            "get_transaction",
            "One transaction by id.",
            schema(json!({"transaction_id": s("string")}), &["transaction_id"]),
        ),
        Tool::new(
            "list_transactions",
            "The agent's transactions, newest first.",
            schema(json!({"status": s("string"), "limit": s("integer"), "cursor": s("string")}), &[]),
        ),
        Tool::new("list_pending_transactions", "Transactions waiting (DELAY or APPROVAL).", schema(json!({}), &[])),
        Tool::new("get_session_info", "This session's limits, usage and expiry.", schema(json!({}), &[])),
    ];
    // The sending tools, whose inputs come from the transaction-type table, after the reads.
    out.splice(3..3, send_tools().iter().map(SendTool::tool));
    out
}

/// A tool that sends a transaction: the types it can send (tried in order: the first whose
/// required inputs are all given wins, the last is the default) and whether it takes `memo` and
/// `priority`. Its inputs are the types' fields from `domain::pipeline::kinds`, in snake_case; a
/// `token` field is given flat, as `token_mint` and `token_decimals`.
struct SendTool {
    name: &'static str,
    doc: &'static str,
    kinds: &'static [TxType],
    memo: bool,
    priority: bool,
}

fn send_tools() -> &'static [SendTool] {
    &[
        SendTool {
            name: "send_token",
            doc: "Send the native coin, or a token when token_mint is given. Amounts are strings in the smallest unit.",
            kinds: &[TxType::TokenTransfer, TxType::Transfer],
            memo: true,
            priority: true,
        },
        SendTool {
            name: "call_contract",
            doc: "Call a contract (EVM calldata) or program (Solana instruction data and accounts).",
            kinds: &[TxType::ContractCall],
            memo: true,
            priority: true,
        },
        SendTool {
            name: "approve_token",
            doc: "Approve a spender for a token amount.",
            kinds: &[TxType::Approve],
            memo: false,
            priority: false,
        },
        SendTool {
            name: "send_batch",
            doc: "Send several instructions in one transaction (Solana).",
            kinds: &[TxType::Batch],
            memo: true,
            priority: false,
        },
    ]
}

/// The tool inputs of one API field: `(input name, JSON schema)`.
fn inputs_of(field: &kinds::Field) -> Vec<(String, Value)> {
    match field.shape {
        kinds::Shape::Token => vec![
            ("token_mint".into(), json!({"type": "string"})),
            ("token_decimals".into(), json!({"type": "integer", "minimum": 0, "maximum": 18})),
        ],
        shape => vec![(kinds::snake(field.name), shape.schema())],
    }
}

/// The input that must be given for a required field.
fn required_input(field: &kinds::Field) -> String {
    if field.shape == kinds::Shape::Token { "token_mint".into() } else { kinds::snake(field.name) }
}

/// The inputs a type requires whatever the chain.
fn required_inputs(t: TxType) -> Vec<(String, kinds::Shape)> {
    kinds::kind(t)
        .fields
        .iter()
        .filter(|f| f.need == kinds::Need::Required)
        .map(|f| (required_input(f), f.shape))
        .collect()
}

impl SendTool {
    fn takes(&self, common: &str) -> bool {
        (common == "memo" && self.memo) || (common == "priority" && self.priority)
    }

    fn tool(&self) -> Tool {
        let mut props = Map::new();
        for k in self.kinds {
            for field in kinds::kind(*k).fields {
                for (name, schema) in inputs_of(field) {
                    props.entry(name).or_insert(schema);
                }
            }
        }
        for (name, schema) in kinds::COMMON {
            if self.takes(name) {
                props.insert((*name).into(), schema());
            }
        }
        // Required: what every type the tool sends requires.
        let per_kind: Vec<Vec<String>> =
            self.kinds.iter().map(|k| required_inputs(*k).into_iter().map(|(n, _)| n).collect()).collect();
        let required: Vec<&str> =
            per_kind[0].iter().filter(|r| per_kind.iter().all(|p| p.contains(r))).map(String::as_str).collect();
        Tool::new(self.name, self.doc, schema(Value::Object(props), &required))
    }

    /// The API send body for `args`, or which input is missing.
    fn body(&self, args: &Map<String, Value>) -> Result<Value, String> {
        let given = |name: &str| args.get(name).is_some_and(|v| !v.is_null());
        let missing = |t: TxType| required_inputs(t).into_iter().find(|(name, _)| !given(name));
        let Some(t) = self.kinds.iter().copied().find(|t| missing(*t).is_none()) else {
            let default = *self.kinds.last().expect("a tool sends at least one type");
            let (input, shape) = missing(default).expect("not every input is given");
            let what = if shape == kinds::Shape::Instructions { "an array" } else { "a string" };
            return Err(format!("`{input}` ({what}) is required"));
        };
        let mut b = json!({"type": t.as_str()});
        for field in kinds::kind(t).fields {
            if field.shape == kinds::Shape::Token {
                if given("token_mint") {
                    let mut token = json!({"mint": args["token_mint"]});
                    if given("token_decimals") {
                        token["decimals"] = args["token_decimals"].clone();
                    }
                    b["token"] = token;
                }
            } else if given(&kinds::snake(field.name)) {
                b[field.name] = args[&kinds::snake(field.name)].clone();
            }
        }
        for (name, _) in kinds::COMMON {
            if self.takes(name) && given(name) {
                b[*name] = args[*name].clone();
            }
        }
        Ok(b)
    }
}

/// An API call: method, path and body; `Err` is an input error.
type Route = Result<(Method, String, Option<Value>), String>;

/// A tool call as an API call.
fn api_call_for(name: &str, args: &Map<String, Value>, sid: &str) -> Route {
    let get = |k: &str| args.get(k).cloned();
    let text = |k: &str| -> Result<String, String> {
        args.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("`{k}` (a string) is required"))
    };
    let send = "/v1/transactions/send".to_string();
    Ok(match name {
        "get_address" => (Method::GET, "/v1/wallet/address".into(), None),
        "get_balance" => (Method::GET, "/v1/wallet/balance".into(), None),
        "get_assets" => (Method::GET, "/v1/wallet/assets".into(), None),
        name if send_tools().iter().any(|t| t.name == name) => {
            let tool = send_tools().iter().find(|t| t.name == name).expect("just found");
            (Method::POST, send, Some(tool.body(args)?))
        }
        "dry_run" => {
            let t = get("transaction").filter(Value::is_object).ok_or("`transaction` (an object) is required")?;
            (Method::POST, "/v1/transactions/dry-run".into(), Some(t))
        }
        "get_transaction" => {
            let id = text("transaction_id")?;
            if uuid::Uuid::parse_str(&id).is_err() {
                return Err("`transaction_id` must be a UUID".into());
            }
            (Method::GET, format!("/v1/transactions/{id}"), None)
        }
        "list_transactions" => {
            let mut q = Vec::new();
            for k in ["status", "limit", "cursor"] {
                match get(k) {
                    Some(Value::String(v)) => q.push(format!("{k}={}", urlencode(&v))),
                    Some(Value::Number(n)) => q.push(format!("{k}={n}")),
                    _ => {}
                }
            }
            let qs = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
            (Method::GET, format!("/v1/transactions{qs}"), None)
        }
        "list_pending_transactions" => (Method::GET, "/v1/transactions/pending".into(), None),
        "get_session_info" => (Method::GET, format!("/v1/sessions/{sid}"), None),
        other => return Err(format!("unknown tool {other}")),
    })
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An error result the agent can act on: the envelope's fields.
fn error_result(code: &str, message: &str, hint: Option<&str>, retryable: bool, details: Value) -> CallToolResult {
    let v = json!({"code": code, "message": message, "hint": hint, "retryable": retryable, "details": details});
    CallToolResult::error(vec![ContentBlock::text(v.to_string())])
}

/// The server: tools and resources over one session.
#[derive(Clone)]
pub(crate) struct WalletServer {
    daemon: Daemon,
    session: Arc<Session>,
}

impl WalletServer {
    /// Calls the daemon with the session token, applying the 401 rule. `route` builds the call
    /// from the token's session id, so a retry with a re-read token addresses its own session.
    async fn api(&self, route: impl Fn(&str) -> Route) -> Result<Answer, String> {
        let state = *self.session.state.lock().await;
        let token = self.session.token().await;
        let expired = claims(&token).and_then(|c| c["exp"].as_u64()).is_some_and(|exp| exp <= unix_now());
        if state == SessionState::Expired && expired {
            return Ok(Answer {
                status: 401,
                body: json!({"code": "AUTH_TOKEN_EXPIRED", "message": "The MCP session expired and cannot be renewed",
                             "hint": "Run: waiaas mcp refresh-token", "retryable": false}),
            });
        }
        let (method, path, body) = route(&WalletServer::sid(&token))?;
        let a = self.daemon.call(method, &path, Some(&token), body.as_ref()).await?;
        let unauthorized = a.status == 401
            && matches!(a.body["code"].as_str(), Some("AUTH_TOKEN_EXPIRED" | "AUTH_TOKEN_INVALID" | "SESSION_REVOKED"));
        if !unauthorized {
            return Ok(a);
        }
        if self.session.reread().await {
            let token = self.session.token().await;
            let (method, path, body) = route(&WalletServer::sid(&token))?;
            let again = self.daemon.call(method, &path, Some(&token), body.as_ref()).await?;
            if again.status != 401 {
                return Ok(again);
            }
        }
        *self.session.state.lock().await = SessionState::Error;
        let mut body = a.body;
        body["hint"] = json!("Run: waiaas mcp refresh-token");
        Ok(Answer { status: a.status, body })
    }

    fn sid(token: &str) -> String {
        claims(token).and_then(|c| c["sid"].as_str().map(str::to_string)).unwrap_or_default()
    }
}

impl ServerHandler for WalletServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("waiaas", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "A self-hosted wallet for this agent. Amounts are strings in the smallest unit (wei, lamports). \
                 Sends above the owner's limits wait (DELAY) or need the owner's approval (APPROVAL): \
                 follow them with get_transaction.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        // The input is checked once; it does not depend on the session.
        match api_call_for(&request.name, &args, "") {
            Ok(_) => {}
            Err(e) if e.starts_with("unknown tool") => return Err(McpError::invalid_params(e, None)),
            Err(e) => return Ok(error_result("VALIDATION_ERROR", &e, None, false, Value::Null).into()),
        }
        let result = match self.api(|sid| api_call_for(&request.name, &args, sid)).await {
            Ok(a) if (200..300).contains(&a.status) => {
                CallToolResult::success(vec![ContentBlock::text(a.body.to_string())])
            }
            Ok(a) => error_result(
                a.body["code"].as_str().unwrap_or("UNKNOWN"),
                a.body["message"].as_str().unwrap_or("request failed"),
                a.body["hint"].as_str(),
                a.body["retryable"].as_bool().unwrap_or(false),
                a.body.get("details").cloned().unwrap_or(Value::Null),
            ),
            Err(e) => {
                error_result("CONNECTION_ERROR", &e, Some("Is the daemon running? waiaas status"), true, Value::Null)
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let r = |uri: &str, name: &str, d: &str| {
            let mut x = Resource::new(uri, name).with_description(d);
            x.mime_type = Some("application/json".into());
            x
        };
        Ok(ListResourcesResult::with_all_items(vec![
            r("waiaas://wallet/address", "wallet-address", "The agent wallet's address"),
            r("waiaas://wallet/balance", "wallet-balance", "The agent wallet's native balance"),
            r("waiaas://system/status", "system-status", "Daemon health"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let path = match request.uri.as_str() {
            "waiaas://wallet/address" => "/v1/wallet/address",
            "waiaas://wallet/balance" => "/v1/wallet/balance",
            "waiaas://system/status" => "/health",
            other => return Err(McpError::invalid_params(format!("unknown resource {other}"), None)),
        };
        let a = self
            .api(|_| Ok((Method::GET, path.to_string(), None)))
            .await
            .map_err(|e| McpError::internal_error(e, None))?;
        if !(200..300).contains(&a.status) {
            return Err(McpError::internal_error(
                a.body["message"].as_str().unwrap_or("request failed").to_string(),
                Some(a.body),
            ));
        }
        Ok(ReadResourceResult::new(vec![ResourceContents::text(a.body.to_string(), request.uri)]).into())
    }
}

/// The base URL: `WAIAAS_BASE_URL`, else the data directory's configured port, else 3100.
fn base_url(dir: &Path) -> String {
    if let Ok(u) = std::env::var("WAIAAS_BASE_URL") {
        return u.trim_end_matches('/').to_string();
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let port = crate::runtime::config::load(dir, &Default::default(), &env).map(|c| c.daemon.port).unwrap_or(3100);
    format!("http://127.0.0.1:{port}")
}

fn serve(dir: &Path) -> Result<(), CliError> {
    let (token, file_dir) = match std::env::var("WAIAAS_SESSION_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        Some(t) => (t.trim().to_string(), None),
        None => match read_token(dir) {
            Some(t) => (t, Some(dir.to_path_buf())),
            None => {
                return Err(CliError::general(format!(
                    "Error: no session token (WAIAAS_SESSION_TOKEN, or {}). Run: waiaas mcp setup",
                    dir.join(TOKEN_FILE).display()
                )));
            }
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::general(format!("Error: cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(180))
            .build()
            .map_err(|e| CliError::general(format!("Error: {e}")))?;
        let daemon = Daemon { http, base: base_url(dir) };
        let session =
            Arc::new(Session { token: RwLock::new(token), file_dir, state: Mutex::new(SessionState::Active) });
        tokio::spawn(renewal_loop(daemon.clone(), session.clone()));
        let server = WalletServer { daemon, session };
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| CliError::general(format!("Error: MCP initialisation failed: {e}")))?;
        running.waiting().await.map_err(|e| CliError::general(format!("Error: MCP server: {e}")))?;
        Ok(())
    })
}

/// The Claude Desktop config file of this platform.
fn claude_config_path() -> String {
    if cfg!(target_os = "macos") {
        "~/Library/Application Support/Claude/claude_desktop_config.json".into()
    } else {
        "~/.config/Claude/claude_desktop_config.json".into()
    }
}

fn setup(dir: &Path, a: SetupArgs) -> Result<(), CliError> {
    let api = Api::connect(dir, &a.password, true)?;
    let agent = match &a.agent {
        Some(x) => api.agent(x)?,
        None => {
            let list = api.call(Method::GET, "/v1/agents", None)?;
            let live: Vec<Value> = list["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["status"] != "TERMINATED")
                .cloned()
                .collect();
            match live.len() {
                0 => return Err(CliError::general("No agents found")),
                1 => live[0].clone(),
                _ => {
                    let names: Vec<String> = live
                        .iter()
                        .map(|x| format!("  {} ({})", x["name"].as_str().unwrap_or(""), x["id"].as_str().unwrap_or("")))
                        .collect();
                    return Err(CliError::general(format!(
                        "Multiple agents found. Use --agent <name|id> to specify.\n{}",
                        names.join("\n")
                    )));
                }
            }
        }
    };
    let mut constraints = json!({});
    if let Some(m) = &a.max_amount {
        constraints["maxAmountPerTx"] = json!(m);
    }
    if !a.allowed_ops.is_empty() {
        constraints["allowedOperations"] = json!(a.allowed_ops);
    }
    let body =
        json!({"agentId": agent["id"], "expiresIn": a.expires_in, "maxRenewals": 30, "constraints": constraints});
    let s = api.call(Method::POST, "/v1/sessions", Some(&body))?;
    let path = write_token(dir, s["token"].as_str().unwrap_or_default())
        .map_err(|e| CliError::general(format!("Error: {e}")))?;
    let snippet = json!({"mcpServers": {"waiaas": {"command": "waiaas", "args": ["mcp", "serve"],
        "env": {"WAIAAS_DATA_DIR": dir.display().to_string(), "WAIAAS_BASE_URL": format!("http://127.0.0.1:{}", api.port)}}}});
    if a.output == crate::cli::remote::api::Output::Json {
        print_json(&json!({"agentId": agent["id"], "agentName": agent["name"], "sessionId": s["sessionId"],
            "expiresAt": s["expiresAt"], "tokenPath": path.display().to_string(), "configPath": claude_config_path()}));
    } else {
        println!(
            "Session {} for agent {} written to {}",
            s["sessionId"].as_str().unwrap_or(""),
            agent["name"].as_str().unwrap_or(""),
            path.display()
        );
        println!("Add this to {}:\n", claude_config_path());
        println!("{}", serde_json::to_string_pretty(&snippet).unwrap_or_default());
    }
    Ok(())
}

fn refresh(dir: &Path, a: RefreshArgs) -> Result<(), CliError> {
    let old = read_token(dir).ok_or_else(|| CliError::general("No token file found. Run: waiaas mcp setup"))?;
    let c = claims(&old).ok_or_else(|| CliError::general("No token file found. Run: waiaas mcp setup"))?;
    let sid = c["sid"].as_str().unwrap_or_default().to_string();
    let api = Api::connect(dir, &a.password, true)?;
    let current = api.call(Method::GET, &format!("/v1/sessions/{sid}"), None).map_err(|e| {
        if e.message.contains("SESSION_NOT_FOUND") {
            CliError::general(format!("Session '{sid}' not found. Run: waiaas mcp setup"))
        } else {
            e
        }
    })?;
    let lifetime = c["exp"].as_u64().unwrap_or(0).saturating_sub(c["iat"].as_u64().unwrap_or(0)).max(300);
    let body = json!({"agentId": current["agentId"], "expiresIn": lifetime,
        "constraints": current.get("constraints").cloned().unwrap_or(json!({})),
        "maxRenewals": current.get("maxRenewals").cloned().unwrap_or(json!(30))});
    let s = api.call(Method::POST, "/v1/sessions", Some(&body))?;
    let path = write_token(dir, s["token"].as_str().unwrap_or_default())
        .map_err(|e| CliError::general(format!("Error: {e}")))?;
    let revoked = match api.call(Method::DELETE, &format!("/v1/sessions/{sid}"), None) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("Warning: the old session was not revoked: {}", e.message);
            false
        }
    };
    if a.output == crate::cli::remote::api::Output::Json {
        print_json(&json!({"oldSessionId": sid, "newSessionId": s["sessionId"], "agentId": current["agentId"],
            "agentName": current["agentName"], "expiresAt": s["expiresAt"], "tokenPath": path.display().to_string(),
            "oldSessionRevoked": revoked}));
    } else {
        println!("Session {sid} replaced by {} ({})", s["sessionId"].as_str().unwrap_or(""), path.display());
    }
    Ok(())
}

pub(crate) fn run(dir: &Path, cmd: McpCommand) -> Result<(), CliError> {
    match cmd {
        McpCommand::Serve => serve(dir),
        McpCommand::Setup(a) => setup(dir, a),
        McpCommand::RefreshToken(a) => refresh(dir, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_inputs_map_to_the_api_in_camel_case() {
        let args = |v: Value| v.as_object().cloned().unwrap();
        let (m, p, b) = api_call_for(
            "send_token",
            &args(json!({"to": "x", "amount": "5", "token_mint": "m", "token_decimals": 6})),
            "s",
        )
        .unwrap();
        assert_eq!((m, p.as_str()), (Method::POST, "/v1/transactions/send"));
        assert_eq!(
            b.unwrap(),
            json!({"type": "TOKEN_TRANSFER", "to": "x", "amount": "5", "token": {"mint": "m", "decimals": 6}})
        );
        let (_, _, b) =
            api_call_for("call_contract", &args(json!({"contract_address": "c", "instruction_data": "AQ=="})), "s")
                .unwrap();
        assert_eq!(b.unwrap(), json!({"type": "CONTRACT_CALL", "contractAddress": "c", "instructionData": "AQ=="}));
        let (_, p, _) =
            api_call_for("list_transactions", &args(json!({"status": "CONFIRMED", "limit": 5})), "s").unwrap();
        assert_eq!(p, "/v1/transactions?status=CONFIRMED&limit=5");
        assert_eq!(api_call_for("get_session_info", &Map::new(), "sid-1").unwrap().1, "/v1/sessions/sid-1");
        assert!(api_call_for("send_token", &args(json!({"to": "x"})), "s").unwrap_err().contains("amount"));
        assert!(api_call_for("get_transaction", &args(json!({"transaction_id": "nope"})), "s").is_err());
        assert_eq!(tools().len(), 12);
    }

    /// Every sending tool, given its inputs, builds a body the daemon's own send-body parser
    /// accepts (both come from the transaction-type table; this checks the renaming between them).
    #[test]
    fn every_send_tool_builds_a_body_the_parser_accepts() {
        use waiaas_storage::{AgentRecord, Chain, Network};
        let agent = |chain: Chain, key: &str| {
            let network = if chain == Chain::Solana { Network::Devnet } else { Network::Testnet };
            let mut a = AgentRecord::new(uuid::Uuid::now_v7(), "a".into(), chain, network, Some(31337), 0);
            a.public_key = key.into();
            a
        };
        let (evm, sol) = ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM");
        let cases = [
            ("send_token", Chain::Ethereum, json!({"to": evm, "amount": "5"})),
            (
                "send_token",
                Chain::Ethereum,
                json!({"to": evm, "amount": "5", "token_mint": evm, "token_decimals": 6, "memo": "m"}),
            ),
            (
                "call_contract",
                Chain::Ethereum,
                json!({"contract_address": evm, "calldata": "0xa9059cbb", "value": "1"}),
            ),
            (
                "call_contract",
                Chain::Solana,
                json!({"contract_address": sol, "instruction_data": "AQ==",
                "accounts": [{"pubkey": sol, "isSigner": false, "isWritable": true}]}),
            ),
            ("approve_token", Chain::Solana, json!({"token_mint": sol, "spender": sol, "amount": "0"})),
            (
                "send_batch",
                Chain::Solana,
                json!({"instructions": [{"to": sol, "amount": "1"}, {"to": sol, "amount": "2"}]}),
            ),
        ];
        for (tool, chain, args) in cases {
            let key = if chain == Chain::Solana { sol } else { evm };
            let (_, _, body) = api_call_for(tool, args.as_object().unwrap(), "s").unwrap();
            let body = body.unwrap();
            let v = crate::domain::pipeline::request::validate(body.to_string().as_bytes(), &agent(chain, key));
            assert!(v.is_ok(), "{tool} {args} -> {body} -> {:?}", v.err());
        }
    }

    // ACC-034: 0600 via temp file and rename; a symlink at the path fails the write and reads
    // as no token; a file without the prefix or three JWT parts reads as no token.
    #[test]
    fn the_token_file_reads_only_session_tokens_and_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_token(dir.path()), None);
        std::fs::write(dir.path().join(TOKEN_FILE), "  wai_sess_a.b.c\n").unwrap();
        assert_eq!(read_token(dir.path()).as_deref(), Some("wai_sess_a.b.c"));
        std::fs::write(dir.path().join(TOKEN_FILE), "wai_sess_a.b").unwrap();
        assert_eq!(read_token(dir.path()), None);
        std::fs::remove_file(dir.path().join(TOKEN_FILE)).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "wai_sess_a.b.c").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(TOKEN_FILE)).unwrap();
        assert_eq!(read_token(dir.path()), None, "a symlink reads as no token");
        assert!(write_token(dir.path(), "wai_sess_x.y.z").is_err(), "and is not written through");
        std::fs::remove_file(dir.path().join(TOKEN_FILE)).unwrap();
        let path = write_token(dir.path(), "wai_sess_x.y.z").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
