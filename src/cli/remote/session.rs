//! `waiaas session …` (01-daemon.md §4.7) and `waiaas secret rotate` (§4.9).

use std::path::Path;

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::json;

use crate::cli::remote::api::{Api, print_json};
use crate::cli::{CliError, PasswordArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// Create a session token for an agent.
    Create(CreateArgs),
    /// List sessions.
    List(ListArgs),
    /// Revoke a session.
    Revoke(RevokeArgs),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum TokenOutput {
    #[default]
    Token,
    Json,
    Env,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Agent name or id.
    #[arg(long)]
    agent: Option<String>,
    /// Lifetime in seconds (300–604800).
    #[arg(long)]
    expires_in: Option<u64>,
    /// Per-transaction cap in the agent's native coin (e.g. 1.5).
    #[arg(long)]
    max_amount: Option<String>,
    /// Total cap in the agent's native coin.
    #[arg(long)]
    max_total: Option<String>,
    #[arg(long)]
    max_txs: Option<u64>,
    /// Comma-separated operations (case-insensitive).
    #[arg(long, value_delimiter = ',')]
    allowed_ops: Option<Vec<String>>,
    #[arg(long, value_delimiter = ',')]
    allowed_destinations: Option<Vec<String>>,
    #[arg(long)]
    max_renewals: Option<u32>,
    #[arg(long, value_enum, default_value_t)]
    output: TokenOutput,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[arg(long)]
    agent: Option<String>,
    /// Include expired and revoked sessions.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    id: String,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Rotate the session-token secret.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    password: PasswordArgs,
}

/// Human units → smallest units with `decimals` places (no rounding: extra digits are an error).
pub(crate) fn to_smallest(human: &str, decimals: u32) -> Result<String, CliError> {
    let bad = || CliError::general(format!("Error: '{human}' is not an amount"));
    let (whole, frac) = human.split_once('.').unwrap_or((human, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > decimals as usize {
        return Err(CliError::general(format!("Error: '{human}' has more than {decimals} decimals")));
    }
    let digits = format!("{whole}{frac}{}", "0".repeat(decimals as usize - frac.len()));
    let trimmed = digits.trim_start_matches('0');
    Ok(if trimmed.is_empty() { "0".into() } else { trimmed.into() })
}

pub(crate) fn run(dir: &Path, cmd: SessionCommand) -> Result<(), CliError> {
    match cmd {
        SessionCommand::Create(a) => {
            let agent_arg = a.agent.ok_or_else(|| CliError::general("Error: --agent <name|id> is required."))?;
            if a.expires_in.is_some_and(|e| !(300..=604_800).contains(&e)) {
                return Err(CliError::general("Error: --expires-in must be between 300 (5min) and 604800 (7 days)."));
            }
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&agent_arg)?;
            let decimals = if agent["chain"] == "ethereum" { 18 } else { 9 };
            let mut body = json!({"agentId": agent["id"]});
            if let Some(e) = a.expires_in {
                body["expiresIn"] = json!(e);
            }
            if let Some(m) = &a.max_amount {
                body["maxAmountPerTx"] = json!(to_smallest(m, decimals)?);
            }
            if let Some(m) = &a.max_total {
                body["maxTotalAmount"] = json!(to_smallest(m, decimals)?);
            }
            if let Some(n) = a.max_txs {
                body["maxTransactions"] = json!(n);
            }
            if let Some(ops) = a.allowed_ops {
                body["allowedOperations"] = json!(ops);
            }
            if let Some(d) = a.allowed_destinations {
                body["allowedDestinations"] = json!(d);
            }
            if let Some(r) = a.max_renewals {
                body["maxRenewals"] = json!(r);
            }
            let v = api.call(Method::POST, "/v1/sessions", Some(&body))?;
            match a.output {
                TokenOutput::Token => println!("{}", v["token"].as_str().unwrap_or("")),
                TokenOutput::Json => print_json(&v),
                TokenOutput::Env => {
                    println!("export WAIAAS_SESSION_TOKEN=\"{}\"", v["token"].as_str().unwrap_or(""));
                    println!("export WAIAAS_AGENT_ID=\"{}\"", v["agentId"].as_str().unwrap_or(""));
                    println!("export WAIAAS_AGENT_NAME=\"{}\"", v["agentName"].as_str().unwrap_or(""));
                    println!("export WAIAAS_SESSION_EXPIRES_AT=\"{}\"", v["expiresAt"].as_str().unwrap_or(""));
                }
            }
            Ok(())
        }
        SessionCommand::List(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let mut query = vec![];
            if let Some(agent) = &a.agent {
                query.push(format!("agentId={}", api.agent(agent)?["id"].as_str().unwrap_or_default()));
            }
            if a.all {
                query.push("status=all".into());
            }
            query.push("limit=100".into());
            let v = api.call(Method::GET, &format!("/v1/sessions?{}", query.join("&")), None)?;
            print_json(&v);
            Ok(())
        }
        SessionCommand::Revoke(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::DELETE, &format!("/v1/sessions/{}", a.id), None)?;
            println!("Session {} revoked ({})", a.id, v["trigger"].as_str().unwrap_or(""));
            Ok(())
        }
    }
}

pub(crate) fn run_secret(dir: &Path, cmd: SecretCommand) -> Result<(), CliError> {
    let SecretCommand::Rotate(a) = cmd;
    let api = Api::connect(dir, &a.password, true)?;
    let v = api.call(Method::POST, "/v1/admin/rotate-secret", Some(&json!({})))?;
    println!("Secret rotated. Previous secret expires at: {}", v["previousExpiry"].as_str().unwrap_or(""));
    println!("Existing sessions will remain valid for 5 minutes.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::to_smallest;

    #[test]
    fn human_amounts_convert_exactly() {
        assert_eq!(to_smallest("1.5", 9).unwrap(), "1500000000");
        assert_eq!(to_smallest("0.000000001", 9).unwrap(), "1");
        assert_eq!(to_smallest("2", 18).unwrap(), "2000000000000000000");
        assert_eq!(to_smallest("0", 9).unwrap(), "0");
        assert!(to_smallest("0.0000000001", 9).is_err());
        assert!(to_smallest("1e3", 9).is_err());
        assert!(to_smallest("", 9).is_err());
    }
}
