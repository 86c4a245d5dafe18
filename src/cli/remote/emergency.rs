//! The emergency commands (01-daemon.md §4.8–4.9, 08-killswitch-autostop.md):
//! `waiaas kill-switch activate|status|recover`, `waiaas agent withdraw` (also reachable as the
//! spec's `owner withdraw --agent`) and `waiaas autostop list|add|update|delete`.
//!
//! Recovery signs the owner's `recover` message with the shared signing flow; its nonce comes
//! from the kill-switch status (`recoveryNonce`), because `/v1/nonce` does not pass the guard
//! while the switch is on.

use std::path::Path;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::remote::api::{Api, print_json, print_list};
use crate::cli::remote::owner_sign::{self, SigningArgs};
use crate::cli::{CliError, PasswordArgs};
use crate::domain::auth::owner::OwnerAction;

#[derive(Debug, Subcommand)]
pub(crate) enum KillSwitchCommand {
    /// Activate the kill switch: revoke every session, cancel queued work, lock the keys.
    Activate(ActivateArgs),
    /// Show the state and, while active, the recovery progress.
    Status(JsonArgs),
    /// Recover: step 1 (with the owner's signature when an owner exists) starts the wait;
    /// step 2, after it, unlocks the keys and returns to NORMAL.
    Recover(RecoverArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ActivateArgs {
    /// Why (1–500 characters; kept in the audit log).
    #[arg(long)]
    reason: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct JsonArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// The owner who signs, when several owners exist.
    #[arg(long, value_name = "ADDRESS")]
    owner: Option<String>,
    #[command(flatten)]
    signing: SigningArgs,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

/// What both spellings of withdraw take besides the agent.
#[derive(Debug, Args)]
pub(crate) struct WithdrawOptions {
    /// `all` (native and tokens) or `native`.
    #[arg(long, default_value = "all")]
    scope: String,
    /// EVM: ERC-20 contract addresses to sweep (repeatable).
    #[arg(long = "token", value_name = "ADDRESS")]
    tokens: Vec<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

/// `agent withdraw <agent>` (the spelling).
#[derive(Debug, Args)]
pub(crate) struct WithdrawArgs {
    /// Agent name or id.
    agent: String,
    #[command(flatten)]
    options: WithdrawOptions,
}

/// `owner withdraw --agent <agent>` (the spec's spelling).
#[derive(Debug, Args)]
pub(crate) struct OwnerWithdrawArgs {
    #[arg(long)]
    agent: String,
    #[command(flatten)]
    options: WithdrawOptions,
}

impl From<OwnerWithdrawArgs> for WithdrawArgs {
    fn from(a: OwnerWithdrawArgs) -> WithdrawArgs {
        WithdrawArgs { agent: a.agent, options: a.options }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum AutoStopCommand {
    /// List the rules (global and per agent).
    List(JsonArgs),
    /// Add a rule.
    Add(RuleAddArgs),
    /// Change a rule's config, action or enabled flag.
    Update(RuleUpdateArgs),
    /// Delete a rule.
    Delete(RuleDeleteArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RuleAddArgs {
    /// CONSECUTIVE_FAILURES, TIME_RESTRICTION, DAILY_LIMIT_THRESHOLD, HOURLY_RATE or
    /// ANOMALY_PATTERN.
    #[arg(long = "type")]
    kind: String,
    /// The rule's config as JSON, e.g. '{"maxTxPerHour": 100}'.
    #[arg(long)]
    config: String,
    /// WARN, SUSPEND_AGENT or KILL_SWITCH.
    #[arg(long)]
    action: String,
    /// Only this agent (name or id); global when absent.
    #[arg(long)]
    agent: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RuleUpdateArgs {
    id: String,
    #[arg(long)]
    config: Option<String>,
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    enabled: Option<bool>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RuleDeleteArgs {
    id: String,
    #[command(flatten)]
    password: PasswordArgs,
}

fn rule_line(r: &Value) -> String {
    format!(
        "{}  {:<22} {:<13} {:<8} {} {}",
        r["id"].as_str().unwrap_or_default(),
        r["type"].as_str().unwrap_or_default(),
        r["action"].as_str().unwrap_or_default(),
        if r["enabled"] == true { "enabled" } else { "disabled" },
        r["agentId"].as_str().map_or("global".to_string(), |a| format!("agent {a}")),
        r["config"],
    )
}

fn json_arg(name: &str, text: &str) -> Result<Value, CliError> {
    serde_json::from_str(text).map_err(|e| CliError::general(format!("Error: --{name} is not JSON: {e}")))
}

pub(crate) fn run_kill_switch(dir: &Path, cmd: KillSwitchCommand) -> Result<(), CliError> {
    match cmd {
        KillSwitchCommand::Activate(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::POST, "/v1/admin/kill-switch", Some(&json!({"reason": a.reason})))?;
            if a.json {
                print_json(&v);
            } else {
                println!(
                    "Kill switch ACTIVATED: {} sessions revoked, {} transactions cancelled, {} agents suspended ({} ms).",
                    v["sessionsRevoked"], v["transactionsCancelled"], v["agentsSuspended"], v["cascadeDurationMs"]
                );
                println!("Recover with: waiaas kill-switch recover");
            }
        }
        KillSwitchCommand::Status(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::GET, "/v1/admin/kill-switch", None)?;
            if a.json {
                print_json(&v);
            } else {
                print_status(&v);
            }
        }
        KillSwitchCommand::Recover(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let status = api.call(Method::GET, "/v1/admin/kill-switch", None)?;
            let bearer = match status["status"].as_str() {
                Some("ACTIVATED") if status["recovery"]["hasOwner"] == true => {
                    let Some(b) = owner_signature(&api, &a, &status)? else { return Ok(()) };
                    Some(b)
                }
                _ => None,
            };
            let v = api.call_as(Method::POST, "/v1/admin/recover", Some(&json!({})), bearer.as_deref())?;
            if a.json {
                print_json(&v);
            } else if v["recovered"] == true {
                println!("Recovered: the daemon is NORMAL again; {} agents reactivated.", v["agentsReactivated"]);
            } else {
                println!(
                    "Recovery started: run `waiaas kill-switch recover` again after {} ({} s).",
                    v["recoveryEligibleAt"].as_str().unwrap_or("?"),
                    v["waitSeconds"]
                );
            }
        }
    }
    Ok(())
}

fn print_status(v: &Value) {
    println!("Kill switch: {}", v["status"].as_str().unwrap_or("?"));
    if let Some(at) = v["activatedAt"].as_str() {
        println!(
            "Activated {at} by {} ({})",
            v["actor"].as_str().unwrap_or("?"),
            v["reason"].as_str().unwrap_or("no reason")
        );
    }
    let r = &v["recovery"];
    if r.is_object() {
        println!("Owner signature needed: {}; wait {} s", r["hasOwner"], r["waitSeconds"]);
        if let Some(e) = r["eligibleAt"].as_str() {
            println!("Recovery eligible at {e} ({} s from now)", r["remainingSeconds"]);
        }
        if let Some(l) = r["lockoutUntil"].as_str() {
            println!("Locked out until {l} after {} wrong passwords", r["failedAttempts"]);
        }
    }
}

/// Step 1's owner signature: the owner from the status (`--owner` picks one of several), its
/// chain id or network, the status's recovery nonce.
fn owner_signature(api: &Api, a: &RecoverArgs, status: &Value) -> Result<Option<String>, CliError> {
    let owners = status["owners"].as_array().cloned().unwrap_or_default();
    let owner = match &a.owner {
        Some(want) => owners.iter().find(|o| o["address"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(want))),
        None if owners.len() == 1 => owners.first(),
        None => {
            let list: Vec<&str> = owners.iter().filter_map(|o| o["address"].as_str()).collect();
            return Err(CliError::general(format!(
                "Error: several owners can sign ({}); pick one with --owner <address>",
                list.join(", ")
            )));
        }
    }
    .ok_or_else(|| CliError::general("Error: no such owner among the daemon's agents"))?;
    let chain = owner["chain"].as_str().unwrap_or_default();
    let chain_id = match owner.get("chainIds").or(owner.get("networks")).and_then(|l| l.get(0)) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err(CliError::general("Error: the kill-switch status names no chain for the owner")),
    };
    let nonce = status["recoveryNonce"]["nonce"].as_str().unwrap_or_default();
    let req = owner_sign::Request {
        chain,
        owner: owner["address"].as_str().unwrap_or_default(),
        chain_id: &chain_id,
        action: OwnerAction::Recover,
        target: "system",
        summary: None,
        nonce: Some(nonce),
    };
    owner_sign::sign(api, &a.signing, &req)
}

pub(crate) fn run_withdraw(dir: &Path, w: WithdrawArgs) -> Result<(), CliError> {
    let a = &w.options;
    let api = Api::connect(dir, &a.password, true)?;
    let id = match uuid::Uuid::parse_str(&w.agent) {
        // The guard refuses agent lookups while the switch is on; an id needs none.
        Ok(id) => id.to_string(),
        Err(_) => api.agent(&w.agent)?["id"].as_str().unwrap_or_default().to_string(),
    };
    let mut body = json!({"scope": a.scope});
    if !a.tokens.is_empty() {
        body["tokens"] = json!(a.tokens);
    }
    let progress =
        crate::cli::progress::Progress::start("Withdrawing to the owner (one transaction per asset)", a.json);
    let v = api.call(Method::POST, &format!("/v1/owner/agents/{id}/withdraw"), Some(&body))?;
    drop(progress);
    let failed = v["failed"].as_array().cloned().unwrap_or_default();
    if a.json {
        print_json(&v);
    } else {
        println!(
            "Withdrew {} native and {} token balances to {} in {} transactions.",
            v["nativeRecovered"].as_str().unwrap_or("0"),
            v["tokensRecovered"].as_array().map_or(0, Vec::len),
            v["destination"].as_str().unwrap_or("?"),
            v["totalTransactions"]
        );
        for t in v["tokensRecovered"].as_array().into_iter().flatten() {
            println!("  swept: {} of {}", t["amount"].as_str().unwrap_or("?"), t["mint"].as_str().unwrap_or("?"));
        }
        for f in &failed {
            println!("  failed: {} ({})", f["mint"].as_str().unwrap_or("?"), f["error"].as_str().unwrap_or("?"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::general(format!("Error: {} part(s) of the withdrawal failed", failed.len())))
    }
}

pub(crate) fn run_autostop(dir: &Path, cmd: AutoStopCommand) -> Result<(), CliError> {
    match cmd {
        AutoStopCommand::List(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::GET, "/v1/admin/auto-stop/rules", None)?;
            print_list(&v, a.json, "rules", "No AutoStop rules.", rule_line);
        }
        AutoStopCommand::Add(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let mut body = json!({"type": a.kind, "config": json_arg("config", &a.config)?, "action": a.action,
                "enabled": !a.disabled});
            if let Some(agent) = &a.agent {
                body["agentId"] = api.agent(agent)?["id"].clone();
            }
            let v = api.call(Method::POST, "/v1/admin/auto-stop/rules", Some(&body))?;
            if a.json {
                print_json(&v);
            } else {
                println!("Rule {} created", v["id"].as_str().unwrap_or_default());
            }
        }
        AutoStopCommand::Update(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let mut body = json!({});
            if let Some(c) = &a.config {
                body["config"] = json_arg("config", c)?;
            }
            if let Some(x) = &a.action {
                body["action"] = json!(x);
            }
            if let Some(e) = a.enabled {
                body["enabled"] = json!(e);
            }
            let v = api.call(Method::PUT, &format!("/v1/admin/auto-stop/rules/{}", a.id), Some(&body))?;
            if a.json {
                print_json(&v);
            } else {
                println!("Rule {} updated", a.id);
            }
        }
        AutoStopCommand::Delete(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            api.call(Method::DELETE, &format!("/v1/admin/auto-stop/rules/{}", a.id), None)?;
            println!("Rule {} deleted", a.id);
        }
    }
    Ok(())
}
