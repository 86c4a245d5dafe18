//! `waiaas policy …` (01-daemon.md §4.10): thin wrappers over `/v1/owner/policies`. A policy is
//! given as a whole body in a file (`--file`) or by its parts on the command line, with the
//! rules as JSON (`--rules`) or read from a file (`--rules-file`). `--json` prints the API
//! response unchanged.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::remote::api::{Api, print_json, print_list};
use crate::cli::remote::channel::read_body;
use crate::cli::{CliError, PasswordArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// List policies (all, or those that concern one agent).
    List(ListArgs),
    /// Add a policy.
    Add(AddArgs),
    /// Change a policy's rules, priority or enabled flag.
    Update(UpdateArgs),
    /// Delete a policy.
    #[command(alias = "remove")]
    Delete(IdArgs),
    /// What a request would get, without sending it.
    DryRun(DryRunArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this agent's policies and the global ones (name or id).
    #[arg(long)]
    agent: Option<String>,
    /// Only this type.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

/// Rules as inline JSON or from a file.
#[derive(Debug, Args)]
pub(crate) struct RulesArgs {
    /// The rules as JSON, e.g. '{"max_tx_per_hour": 10}'.
    #[arg(long, value_name = "JSON", conflicts_with = "rules_file")]
    rules: Option<String>,
    /// A file holding the rules JSON.
    #[arg(long, value_name = "PATH")]
    rules_file: Option<PathBuf>,
}

impl RulesArgs {
    fn value(&self) -> Result<Option<Value>, CliError> {
        match (&self.rules, &self.rules_file) {
            (Some(text), _) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| CliError::general(format!("Error: --rules is not JSON: {e}"))),
            (None, Some(path)) => read_body(path).map(Some),
            (None, None) => Ok(None),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The whole request body (`{agentId?, chain?, type, rules, priority?, enabled?}`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["agent", "chain", "kind", "rules", "rules_file", "priority"])]
    file: Option<PathBuf>,
    /// For one agent (name or id); global when absent.
    #[arg(long)]
    agent: Option<String>,
    /// For one chain (solana or ethereum).
    #[arg(long)]
    chain: Option<String>,
    /// SPENDING_LIMIT, WHITELIST, TIME_RESTRICTION, RATE_LIMIT, ALLOWED_TOKENS,
    /// CONTRACT_WHITELIST, METHOD_WHITELIST, APPROVED_SPENDERS, APPROVE_AMOUNT_LIMIT or
    /// APPROVE_TIER_OVERRIDE.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    #[command(flatten)]
    rules: RulesArgs,
    /// −1000 to 1000; higher wins (agent policies conventionally ≥ 10).
    #[arg(long, allow_hyphen_values = true)]
    priority: Option<i32>,
    /// Store it disabled.
    #[arg(long)]
    disabled: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    id: String,
    /// The whole request body (`{rules?, priority?, enabled?}`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["rules", "rules_file", "priority", "enable", "disable"])]
    file: Option<PathBuf>,
    #[command(flatten)]
    rules: RulesArgs,
    #[arg(long, allow_hyphen_values = true)]
    priority: Option<i32>,
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    #[arg(long)]
    disable: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    id: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DryRunArgs {
    /// The agent (name or id).
    #[arg(long)]
    agent: String,
    /// The send body to evaluate.
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    /// A JSON array of candidate policies evaluated instead of the stored ones.
    #[arg(long, value_name = "PATH")]
    policies: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

fn line(p: &Value) -> String {
    let scope = match (p["agentId"].as_str(), p["chain"].as_str()) {
        (Some(a), _) => format!("agent {a}"),
        (None, Some(c)) => format!("global {c}"),
        (None, None) => "global".into(),
    };
    format!(
        "{}  {:<22} {:<44} priority {:>5}  {}  {}",
        p["id"].as_str().unwrap_or_default(),
        p["type"].as_str().unwrap_or_default(),
        scope,
        p["priority"],
        if p["enabled"] == json!(true) { "enabled " } else { "disabled" },
        p["rules"],
    )
}

fn decision(v: &Value) -> String {
    if v["allowed"] == json!(true) {
        let mut s = format!("allowed, tier {}", v["tier"].as_str().unwrap_or("?"));
        if v["downgraded"] == json!(true) {
            s.push_str(" (downgraded from APPROVAL: the owner is not verified)");
        }
        if let Some(d) = v["delaySeconds"].as_u64() {
            s.push_str(&format!(", executes {d} s after it is queued"));
        }
        if let Some(p) = v["policyId"].as_str() {
            s.push_str(&format!(", set by policy {p}"));
        }
        s
    } else {
        format!("denied: {} ({})", v["code"].as_str().unwrap_or("?"), v["reason"].as_str().unwrap_or(""))
    }
}

pub(crate) fn run(dir: &Path, cmd: PolicyCommand) -> Result<(), CliError> {
    match cmd {
        PolicyCommand::List(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let mut query = Vec::new();
            if let Some(agent) = &a.agent {
                query.push(format!("agentId={}", api.agent(agent)?["id"].as_str().unwrap_or_default()));
            }
            if let Some(k) = &a.kind {
                query.push(format!("type={k}"));
            }
            let path = if query.is_empty() {
                "/v1/owner/policies".into()
            } else {
                format!("/v1/owner/policies?{}", query.join("&"))
            };
            let v = api.call(Method::GET, &path, None)?;
            print_list(&v, a.json, "policies", "No policies.", line);
        }
        PolicyCommand::Add(a) => {
            let body = match &a.file {
                Some(f) => read_body(f)?,
                None => {
                    let kind =
                        a.kind.clone().ok_or_else(|| CliError::general("Error: give --file or --type with --rules"))?;
                    let rules = a
                        .rules
                        .value()?
                        .ok_or_else(|| CliError::general("Error: give the rules with --rules or --rules-file"))?;
                    let mut b = json!({"type": kind, "rules": rules, "enabled": !a.disabled});
                    if let Some(c) = &a.chain {
                        b["chain"] = json!(c);
                    }
                    if let Some(p) = a.priority {
                        b["priority"] = json!(p);
                    }
                    b
                }
            };
            let api = Api::connect(dir, &a.password, true)?;
            let mut body = body;
            if let Some(agent) = &a.agent {
                body["agentId"] = api.agent(agent)?["id"].clone();
            }
            let v = api.call(Method::POST, "/v1/owner/policies", Some(&body))?;
            if a.json { print_json(&v) } else { println!("Policy added: {}", line(&v)) }
        }
        PolicyCommand::Update(a) => {
            let body = match &a.file {
                Some(f) => read_body(f)?,
                None => {
                    let mut b = json!({});
                    if let Some(r) = a.rules.value()? {
                        b["rules"] = r;
                    }
                    if let Some(p) = a.priority {
                        b["priority"] = json!(p);
                    }
                    if a.enable || a.disable {
                        b["enabled"] = json!(a.enable);
                    }
                    b
                }
            };
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::PUT, &format!("/v1/owner/policies/{}", a.id), Some(&body))?;
            if a.json { print_json(&v) } else { println!("Policy updated: {}", line(&v)) }
        }
        PolicyCommand::Delete(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::DELETE, &format!("/v1/owner/policies/{}", a.id), None)?;
            if a.json { print_json(&v) } else { println!("Policy {} deleted", a.id) }
        }
        PolicyCommand::DryRun(a) => {
            let request = read_body(&a.file)?;
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            let mut body = json!({"agentId": agent["id"], "transaction": request});
            if let Some(p) = &a.policies {
                body["policies"] = read_body(p)?;
            }
            let v = api.call(Method::POST, "/v1/owner/policies/dry-run", Some(&body))?;
            if a.json { print_json(&v) } else { println!("{}", decision(&v)) }
        }
    }
    Ok(())
}
