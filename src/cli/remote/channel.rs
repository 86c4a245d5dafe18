//! `waiaas channel …` (01-daemon.md §4.10): thin wrappers over `/v1/owner/notification-channels`
//! with bodies read from JSON files. `--json` prints the API response unchanged.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::remote::api::{Api, print_json, print_list};
use crate::cli::{CliError, PasswordArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum ChannelCommand {
    /// List notification channels (secrets masked).
    List(ListArgs),
    /// Add a channel: `{type, name, config, priority?, enabled?}` from a JSON file.
    Add(FileArgs),
    /// Change a channel: `{name?, config?, priority?, enabled?}` from a JSON file.
    Update(UpdateArgs),
    /// Disable a channel (channels are never deleted).
    Disable(IdArgs),
    /// Send a TEST message through one channel.
    Test(IdArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Print the API response as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FileArgs {
    /// The request body.
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    id: String,
    #[command(flatten)]
    body: FileArgs,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    id: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

/// A JSON request body from a file.
pub(crate) fn read_body(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::general(format!("Error: cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| CliError::general(format!("Error: {} is not JSON: {e}", path.display())))
}

fn line(c: &Value) -> String {
    format!(
        "{}  {:<8} {:<24} priority {:>4}  {}  health {}",
        c["id"].as_str().unwrap_or_default(),
        c["type"].as_str().unwrap_or_default(),
        c["name"].as_str().unwrap_or_default(),
        c["priority"],
        if c["enabled"] == json!(true) { "enabled " } else { "disabled" },
        match c["lastHealthStatus"].as_bool() {
            Some(true) => "ok",
            Some(false) => "failing",
            None => "unknown",
        }
    )
}

pub(crate) fn run(dir: &Path, cmd: ChannelCommand) -> Result<(), CliError> {
    match cmd {
        ChannelCommand::List(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::GET, "/v1/owner/notification-channels", None)?;
            print_list(&v, a.json, "channels", "No notification channels.", line);
        }
        ChannelCommand::Add(a) => {
            let body = read_body(&a.file)?;
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::POST, "/v1/owner/notification-channels", Some(&body))?;
            if a.json { print_json(&v) } else { println!("Channel added: {}", line(&v)) }
        }
        ChannelCommand::Update(UpdateArgs { id, body: a }) => {
            let body = read_body(&a.file)?;
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::PUT, &format!("/v1/owner/notification-channels/{id}"), Some(&body))?;
            if a.json { print_json(&v) } else { println!("Channel updated: {}", line(&v)) }
        }
        ChannelCommand::Disable(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let v = api.call(Method::DELETE, &format!("/v1/owner/notification-channels/{}", a.id), None)?;
            if a.json { print_json(&v) } else { println!("Channel {} disabled", a.id) }
        }
        ChannelCommand::Test(a) => {
            let api = Api::connect(dir, &a.password, true)?;
            let v =
                api.call(Method::POST, &format!("/v1/owner/notification-channels/{}/test", a.id), Some(&json!({})))?;
            if a.json {
                print_json(&v);
            } else if v["delivered"] == json!(true) {
                println!("Test message delivered");
            } else {
                return Err(CliError::general(format!(
                    "Error: the test message was not delivered: {}",
                    v["error"].as_str().unwrap_or("unknown error")
                )));
            }
        }
    }
    Ok(())
}
