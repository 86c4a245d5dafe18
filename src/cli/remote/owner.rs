//! `waiaas owner approve|reject|pending` (01-daemon.md §4): the owner's side of the DELAY and
//! APPROVAL queues. `approve` signs the `approve_tx` message with every option `agent
//! verify-owner` has (Ledger, offline prepare-then-submit, pasted signature); the message's
//! statement carries the approval summary (04-auth.md §7.2), so the owner reads what executes on
//! the wallet or Ledger screen and the daemon refuses the approval if it would execute anything
//! else.

use std::path::Path;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::remote::api::{Api, print_json, print_list};
use crate::cli::remote::owner_sign::{self, SigningArgs};
use crate::cli::{CliError, PasswordArgs};
use crate::domain::auth::owner::OwnerAction;

#[derive(Debug, Subcommand)]
pub(crate) enum OwnerCommand {
    /// Approve an APPROVAL-tier transaction with the owner's signature.
    Approve(ApproveArgs),
    /// Reject a queued DELAY or APPROVAL transaction.
    Reject(RejectArgs),
    /// List queued DELAY and APPROVAL transactions.
    Pending(PendingArgs),
    /// Move an agent's funds to its owner (same as `agent withdraw`).
    Withdraw(crate::cli::remote::emergency::OwnerWithdrawArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ApproveArgs {
    tx_id: String,
    #[command(flatten)]
    signing: SigningArgs,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RejectArgs {
    tx_id: String,
    /// Why (at most 500 characters); `OWNER_REJECTED` when absent.
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PendingArgs {
    /// Only this agent's (name or id).
    #[arg(long)]
    agent: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

fn line(t: &Value) -> String {
    format!(
        "{}  {:<8} {:<12} expires {}  {}",
        t["txId"].as_str().unwrap_or_default(),
        t["tier"].as_str().unwrap_or_default(),
        t["agentName"].as_str().unwrap_or_default(),
        t["expiresAt"].as_str().unwrap_or_default(),
        t["summary"].as_str().unwrap_or_default(),
    )
}

/// The queued transaction `tx_id`, from the pending list.
fn pending_item(api: &Api, tx_id: &str) -> Result<Value, CliError> {
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/owner/pending-approvals?limit=100&cursor={c}"),
            None => "/v1/owner/pending-approvals?limit=100".to_string(),
        };
        let page = api.call(Method::GET, &path, None)?;
        if let Some(t) = page["transactions"].as_array().and_then(|l| l.iter().find(|t| t["txId"] == tx_id)) {
            return Ok(t.clone());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                return Err(CliError::general(format!(
                    "Error: transaction {tx_id} is not waiting for the owner (TX_NOT_PENDING_APPROVAL)\nHint: waiaas owner pending"
                )));
            }
        }
    }
}

pub(crate) fn run(dir: &Path, cmd: OwnerCommand) -> Result<(), CliError> {
    match cmd {
        OwnerCommand::Approve(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let item = pending_item(&api, &a.tx_id)?;
            if item["tier"] != "APPROVAL" {
                return Err(CliError::general(format!(
                    "Error: transaction {} is a DELAY; it executes at {} unless rejected (TX_NOT_PENDING_APPROVAL)",
                    a.tx_id,
                    item["expiresAt"].as_str().unwrap_or("?")
                )));
            }
            let agent =
                api.call(Method::GET, &format!("/v1/agents/{}", item["agentId"].as_str().unwrap_or_default()), None)?;
            let owner = agent["ownerAddress"]
                .as_str()
                .ok_or_else(|| CliError::general("Error: the agent has no owner (NO_OWNER)"))?
                .to_string();
            let summary = item["summary"].as_str().map(str::to_string);
            if let Some(s) = &summary {
                eprintln!("Approving {}: {s}", a.tx_id);
            }
            let target = format!("tx:{}", a.tx_id);
            let chain_id = crate::cli::remote::agent::chain_id_line(&agent);
            let req = owner_sign::Request {
                chain: agent["chain"].as_str().unwrap_or_default(),
                owner: &owner,
                chain_id: &chain_id,
                action: OwnerAction::ApproveTx,
                target: &target,
                summary: summary.as_deref(),
                nonce: None,
            };
            let Some(bearer) = owner_sign::sign(&api, &a.signing, &req)? else { return Ok(()) };
            let v = api.call_as(Method::POST, &format!("/v1/owner/approve/{}", a.tx_id), None, Some(&bearer))?;
            if a.json {
                print_json(&v);
            } else {
                println!("Approved by {}; the transaction is executing.", v["approvedBy"].as_str().unwrap_or(""));
                println!("Follow it with: waiaas owner pending, or GET /v1/transactions/{}", a.tx_id);
            }
        }
        OwnerCommand::Reject(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let body = match &a.reason {
                Some(r) => json!({"reason": r}),
                None => json!({}),
            };
            let v = api.call(Method::POST, &format!("/v1/owner/reject/{}", a.tx_id), Some(&body))?;
            if a.json {
                print_json(&v);
            } else {
                println!("Rejected {} ({})", a.tx_id, v["reason"].as_str().unwrap_or(""));
            }
        }
        OwnerCommand::Withdraw(a) => return crate::cli::remote::emergency::run_withdraw(dir, a.into()),
        OwnerCommand::Pending(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let path = match &a.agent {
                Some(agent) => format!(
                    "/v1/owner/pending-approvals?limit=100&agentId={}",
                    api.agent(agent)?["id"].as_str().unwrap_or_default()
                ),
                None => "/v1/owner/pending-approvals?limit=100".to_string(),
            };
            let v = api.call(Method::GET, &path, None)?;
            print_list(&v, a.json, "transactions", "Nothing is waiting for the owner.", line);
        }
    }
    Ok(())
}
