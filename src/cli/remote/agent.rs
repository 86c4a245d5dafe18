//! `waiaas agent …` (01-daemon.md §4.6): thin wrappers over `/v1/agents`, plus the owner
//! signing flow for `set-owner` on a LOCKED agent and `verify-owner`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::remote::api::{Api, Output, print_json};
use crate::cli::remote::owner_sign::{self, SigningArgs};
use crate::cli::{CliError, PasswordArgs, password};
use crate::domain::auth::owner::OwnerAction;

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Create an agent.
    Create(CreateArgs),
    /// List agents.
    List(ListArgs),
    /// Show one agent.
    Info(InfoArgs),
    /// Set or change the owner address.
    SetOwner(SetOwnerArgs),
    /// Remove the owner (GRACE agents only).
    RemoveOwner(RemoveOwnerArgs),
    /// Prove control of the owner address (GRACE → LOCKED).
    VerifyOwner(VerifyOwnerArgs),
    /// Suspend an agent.
    Suspend(SuspendArgs),
    /// Resume a suspended agent.
    Resume(AgentArg),
    /// Terminate an agent (irreversible).
    Terminate(TerminateArgs),
    /// Export an agent's key file.
    Export(ExportArgs),
    /// Import a key file as a new agent.
    Import(ImportArgs),
    /// Move the agent's funds to its verified owner (works while the kill switch is on).
    Withdraw(crate::cli::remote::emergency::WithdrawArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    chain: Option<String>,
    #[arg(long)]
    network: Option<String>,
    #[arg(long)]
    owner: Option<String>,
    #[arg(long)]
    backend: Option<String>,
    #[arg(long, value_name = "PATH")]
    derivation_path: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    agent: String,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AgentArg {
    agent: String,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SetOwnerArgs {
    agent: String,
    address: String,
    #[command(flatten)]
    signing: SigningArgs,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RemoveOwnerArgs {
    agent: String,
    /// Skip the confirmation.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyOwnerArgs {
    agent: String,
    #[command(flatten)]
    signing: SigningArgs,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SuspendArgs {
    agent: String,
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TerminateArgs {
    agent: String,
    /// Skip the confirmation.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    agent: String,
    /// Where to write the key file (never overwritten).
    #[arg(long, value_name = "PATH")]
    output: PathBuf,
    /// File holding the export password (else prompted twice).
    #[arg(long, value_name = "PATH")]
    export_password_file: Option<PathBuf>,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    path: PathBuf,
    #[arg(long)]
    name: Option<String>,
    /// File holding the key file's password (else prompted).
    #[arg(long, value_name = "PATH")]
    key_password_file: Option<PathBuf>,
    #[command(flatten)]
    password: PasswordArgs,
}

/// The CLI's network aliases (`mainnet-beta`, `sepolia`); the API takes canonical names only.
fn canonical_network(n: &str) -> &str {
    match n {
        "mainnet-beta" => "mainnet",
        "sepolia" => "testnet",
        other => other,
    }
}

fn confirm(question: &str) -> Result<bool, CliError> {
    if !password::interactive() {
        return Err(CliError::general("Error: confirmation needed but stdin is not a terminal; use --force"));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| CliError::general(format!("Error: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn print_agent(a: &Value) {
    println!("Agent {} ({})", a["name"].as_str().unwrap_or(""), a["id"].as_str().unwrap_or(""));
    println!("  Chain:    {}/{}", a["chain"].as_str().unwrap_or(""), a["network"].as_str().unwrap_or(""));
    if let Some(id) = a["chainId"].as_u64() {
        println!("  Chain ID: {id}");
    }
    println!("  Address:  {}", a["address"].as_str().unwrap_or(""));
    println!("  Backend:  {}", a["backend"].as_str().unwrap_or(""));
    println!("  Status:   {}", a["status"].as_str().unwrap_or(""));
    match a["ownerAddress"].as_str() {
        Some(o) => println!("  Owner:    {o} ({})", a["ownerState"].as_str().unwrap_or("")),
        None => println!("  Owner:    none"),
    }
}

fn id_of(a: &Value) -> String {
    a["id"].as_str().unwrap_or_default().to_string()
}

pub(crate) fn run(dir: &Path, cmd: AgentCommand) -> Result<(), CliError> {
    match cmd {
        AgentCommand::Create(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let mut body = json!({});
            for (k, v) in [
                ("name", a.name),
                ("chain", a.chain),
                ("network", a.network.as_deref().map(canonical_network).map(str::to_string)),
                ("owner", a.owner),
                ("backend", a.backend),
                ("derivationPath", a.derivation_path),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let created = api.call(Method::POST, "/v1/agents", Some(&body))?;
            match a.output {
                Output::Json => print_json(&created),
                Output::Text => {
                    println!("Agent created.");
                    print_agent(&created);
                }
            }
            Ok(())
        }
        AgentCommand::List(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let list = api.call(Method::GET, "/v1/agents", None)?;
            match a.output {
                Output::Json => print_json(&list),
                Output::Text => {
                    let agents = list["agents"].as_array().cloned().unwrap_or_default();
                    if agents.is_empty() {
                        println!("No agents.");
                    }
                    for x in agents {
                        println!(
                            "{:<20} {:<10} {:<17} {:<45} {}",
                            x["name"].as_str().unwrap_or(""),
                            x["status"].as_str().unwrap_or(""),
                            format!("{}/{}", x["chain"].as_str().unwrap_or(""), x["network"].as_str().unwrap_or("")),
                            x["address"].as_str().unwrap_or(""),
                            x["id"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Ok(())
        }
        AgentCommand::Info(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            match a.output {
                Output::Json => print_json(&agent),
                Output::Text => {
                    print_agent(&agent);
                    if agent["ownerAddress"].is_null() {
                        println!("Hint: waiaas agent set-owner {} <address>", agent["name"].as_str().unwrap_or(""));
                    }
                }
            }
            Ok(())
        }
        AgentCommand::SetOwner(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            let id = id_of(&agent);
            let mut bearer = None;
            let chain = agent["chain"].as_str().unwrap_or_default();
            let parsed: waiaas_storage::Chain = chain.parse().map_err(|_| CliError::general("Error: unknown chain"))?;
            let same =
                agent["ownerAddress"].as_str().is_some_and(|o| crate::base::address::same(parsed, o, &a.address));
            if agent["ownerState"] == "LOCKED" && !same {
                let new = crate::base::address::normalize(parsed, &a.address)
                    .ok_or_else(|| CliError::general("Error: Invalid owner address format (VALIDATION_ERROR)"))?;
                let target = format!("agent:{id}:owner:{new}");
                let chain_id = chain_id_line(&agent);
                let req = owner_sign::Request {
                    chain,
                    owner: agent["ownerAddress"].as_str().unwrap_or_default(),
                    chain_id: &chain_id,
                    action: OwnerAction::ChangeOwner,
                    target: &target,
                    summary: None,
                    nonce: None,
                };
                match owner_sign::sign(&api, &a.signing, &req)? {
                    Some(b) => bearer = Some(b),
                    None => return Ok(()),
                }
            }
            let body = json!({"owner": a.address});
            let updated = api.call_as(Method::PATCH, &format!("/v1/agents/{id}"), Some(&body), bearer.as_deref())?;
            println!(
                "Owner of {} is {} ({})",
                updated["name"].as_str().unwrap_or(""),
                updated["ownerAddress"].as_str().unwrap_or(""),
                updated["ownerState"].as_str().unwrap_or("")
            );
            Ok(())
        }
        AgentCommand::RemoveOwner(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            if !a.force {
                eprintln!("Removing the owner means: APPROVAL-tier transactions become DELAY, withdraw is disabled,");
                eprintln!("and kill-switch recovery waits 24 h when no agent has an owner.");
                if !confirm("Remove the owner?")? {
                    return Err(CliError::general("Aborted."));
                }
            }
            let updated =
                api.call(Method::PATCH, &format!("/v1/agents/{}", id_of(&agent)), Some(&json!({"owner": null})))?;
            println!("Owner removed from {}", updated["name"].as_str().unwrap_or(""));
            Ok(())
        }
        AgentCommand::VerifyOwner(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            let id = id_of(&agent);
            let owner = agent["ownerAddress"].as_str().ok_or_else(|| {
                CliError::general("Error: the agent has no owner (NO_OWNER)\nHint: waiaas agent set-owner")
            })?;
            let target = format!("agent:{id}");
            let chain_id = chain_id_line(&agent);
            let req = owner_sign::Request {
                chain: agent["chain"].as_str().unwrap_or_default(),
                owner,
                chain_id: &chain_id,
                action: OwnerAction::VerifyOwner,
                target: &target,
                summary: None,
                nonce: None,
            };
            let Some(bearer) = owner_sign::sign(&api, &a.signing, &req)? else { return Ok(()) };
            let v = api.call_as(Method::POST, &format!("/v1/owner/agents/{id}/verify"), None, Some(&bearer))?;
            println!(
                "Owner {} verified; the agent is {}",
                v["ownerAddress"].as_str().unwrap_or(""),
                v["ownerState"].as_str().unwrap_or("")
            );
            Ok(())
        }
        AgentCommand::Suspend(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            let body = match a.reason {
                Some(r) => json!({"reason": r}),
                None => json!({}),
            };
            let v = api.call(Method::POST, &format!("/v1/agents/{}/suspend", id_of(&agent)), Some(&body))?;
            println!("Agent {} suspended", v["name"].as_str().unwrap_or(""));
            Ok(())
        }
        AgentCommand::Resume(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            let v = api.call(Method::POST, &format!("/v1/agents/{}/resume", id_of(&agent)), Some(&json!({})))?;
            println!("Agent {} resumed", v["name"].as_str().unwrap_or(""));
            Ok(())
        }
        AgentCommand::Terminate(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            if !a.force
                && !confirm(&format!(
                    "Terminate {} and delete its key? This cannot be undone.",
                    agent["name"].as_str().unwrap_or("")
                ))?
            {
                return Err(CliError::general("Aborted."));
            }
            let v = api.call(Method::DELETE, &format!("/v1/agents/{}", id_of(&agent)), None)?;
            println!(
                "Agent terminated ({} sessions revoked, {} transactions cancelled)",
                v["sessionsRevoked"], v["transactionsCancelled"]
            );
            Ok(())
        }
        AgentCommand::Export(a) => {
            if a.output.exists() {
                return Err(CliError::general(format!("Error: {} already exists", a.output.display())));
            }
            let api = Api::connect(dir, &a.password, true)?;
            let agent = api.agent(&a.agent)?;
            let pw = match &a.export_password_file {
                Some(p) => password::read_file(p)?,
                None => {
                    let pw = password::prompt("Export password: ")?;
                    let again = password::prompt("Confirm export password: ")?;
                    use secrecy::ExposeSecret;
                    if pw.expose_secret() != again.expose_secret() {
                        return Err(CliError::general("Error: Passwords do not match."));
                    }
                    pw
                }
            };
            use secrecy::ExposeSecret;
            if pw.expose_secret().chars().count() < 12 {
                return Err(CliError::general("Error: the export password needs at least 12 characters"));
            }
            let body = json!({"password": pw.expose_secret()});
            let v = api.call(Method::POST, &format!("/v1/agents/{}/export", id_of(&agent)), Some(&body))?;
            let text = serde_json::to_string_pretty(&v["keystore"]).unwrap_or_default();
            waiaas_backends::fsutil::write_atomic(&a.output, text.as_bytes(), 0o600)
                .map_err(|e| CliError::general(format!("Error: cannot write {}: {e}", a.output.display())))?;
            println!("Key file written to {} (mode 0600)", a.output.display());
            Ok(())
        }
        AgentCommand::Withdraw(a) => crate::cli::remote::emergency::run_withdraw(dir, a),
        AgentCommand::Import(a) => {
            let text = std::fs::read_to_string(&a.path)
                .map_err(|e| CliError::general(format!("Error: cannot read {}: {e}", a.path.display())))?;
            let file: Value = serde_json::from_str(&text)
                .map_err(|e| CliError::general(format!("Error: {} is not JSON: {e}", a.path.display())))?;
            let api = Api::connect(dir, &a.password, true)?;
            let pw = match &a.key_password_file {
                Some(p) => password::read_file(p)?,
                None if file.is_array() => secrecy::SecretString::from(""),
                None => password::prompt("Key file password: ")?,
            };
            use secrecy::ExposeSecret;
            let mut body = json!({"keystore": file, "password": pw.expose_secret()});
            if let Some(n) = a.name {
                body["name"] = json!(n);
            }
            let v = api.call(Method::POST, "/v1/agents/import", Some(&body))?;
            println!("Agent imported.");
            print_agent(&v);
            Ok(())
        }
    }
}

/// The `Chain ID` line of an owner message for this agent.
pub(crate) fn chain_id_line(agent: &Value) -> String {
    match agent["chainId"].as_u64() {
        Some(id) => id.to_string(),
        None => agent["network"].as_str().unwrap_or_default().to_string(),
    }
}
