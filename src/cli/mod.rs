//! The command line (01-daemon.md §4): parsing, dispatch and exit codes.
//!
//! Parsing is strict: an unknown command, unknown flag or bad value exits 1 (clap's own default
//! would be 2, which here means "daemon already running"). Each subcommand lives in its own
//! module and returns `Result<(), CliError>`; `main` prints the error and exits with its code.
//!
//! - `local/`: commands that work on the data directory itself (init, start, stop, keystore,
//!   backup, audit, status) — they may run the daemon through `daemon`.
//! - `remote/`: commands that are calls to the running daemon's API, and its client.
//! - `mcp`: the MCP server for agents, itself a client of the API.
//!
//! This folder may call every layer below it; nothing below calls it.

pub(crate) mod local;
mod mcp;
pub(crate) mod password;
pub(crate) mod progress;
pub(crate) mod remote;

use local::{audit, backup, db, health, init, keystore, start, status, stop};
use remote::{agent, channel, emergency, owner, policy, session};

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes (01-daemon.md §4.1).
pub(crate) mod exit {
    pub(crate) const GENERAL: u8 = 1;
    pub(crate) const RUNNING: u8 = 2;
    pub(crate) const NOT_RUNNING: u8 = 3;
    pub(crate) const AUTH: u8 = 4;
    pub(crate) const TIMEOUT: u8 = 5;
}

/// A failed command: the message to print on stderr and the process exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Exit code (1–5).
    pub code: u8,
    /// Printed as is.
    pub message: String,
}

impl CliError {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> CliError {
        CliError { code, message: message.into() }
    }

    pub(crate) fn general(message: impl Into<String>) -> CliError {
        CliError::new(exit::GENERAL, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

#[derive(Debug, Parser)]
#[command(name = "waiaas", version, about = "Self-hosted wallet daemon for AI agents", disable_help_subcommand = true)]
pub(crate) struct Cli {
    /// Data directory (default: $WAIAAS_DATA_DIR, $XDG_DATA_HOME/waiaas, ~/.waiaas).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Initialise the data directory.
    Init(init::InitArgs),
    /// Start the daemon.
    Start(start::StartArgs),
    /// Stop the running daemon.
    Stop(stop::StopArgs),
    /// Show whether the daemon runs and how it is doing.
    Status(status::StatusArgs),
    /// Exit 0 when the daemon answers /health and is not unhealthy (container HEALTHCHECK).
    Health(health::HealthArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Keystore tools (offline).
    #[command(subcommand)]
    Keystore(keystore::KeystoreCommand),
    /// Backup archives.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// The database: schema migrations and, under PostgreSQL, the leader and replicas.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Agents.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Session tokens for agents.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// The session-token secret.
    #[command(subcommand)]
    Secret(session::SecretCommand),
    /// Notification channels.
    #[command(subcommand)]
    Channel(channel::ChannelCommand),
    /// The owner's queue: approve, reject, pending.
    #[command(subcommand)]
    Owner(owner::OwnerCommand),
    /// Policies: limits, allow-lists and tiers.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The kill switch: activate, status, recover.
    #[command(subcommand)]
    KillSwitch(emergency::KillSwitchCommand),
    /// AutoStop rules.
    #[command(subcommand)]
    Autostop(emergency::AutoStopCommand),
    /// The MCP server for agents, and its session token.
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
}

/// `waiaas completions bash|zsh|fish`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Password options shared by commands that need the master password.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct PasswordArgs {
    /// Environment variable holding the master password.
    #[arg(long, value_name = "VAR", default_value = "WAIAAS_MASTER_PASSWORD")]
    pub(crate) password_env: String,
    /// File whose first line is the master password.
    #[arg(long, value_name = "PATH")]
    pub(crate) password_file: Option<PathBuf>,
}

/// Parses `args` and runs the command. Help and version print and succeed.
pub fn run(args: Vec<std::ffi::OsString>) -> Result<(), CliError> {
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        Err(CliError::general(String::new()))
                    } else {
                        Ok(())
                    }
                }
                ErrorKind::InvalidSubcommand => {
                    let name = args.get(1).map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
                    let name = args
                        .iter()
                        .skip(1)
                        .map(|a| a.to_string_lossy())
                        .find(|a| !a.starts_with('-'))
                        .map(|a| a.into_owned())
                        .unwrap_or(name);
                    Err(CliError::general(format!("Unknown command: {name}")))
                }
                _ => Err(CliError::general(e.render().to_string().trim_end().to_string())),
            };
        }
    };
    let data_dir = crate::base::datadir::resolve(cli.data_dir.as_deref());
    match cli.command {
        Command::Init(a) => init::run(&data_dir, a),
        Command::Start(a) => start::run(&data_dir, a),
        Command::Stop(a) => stop::run(&data_dir, a),
        Command::Status(a) => status::run(&data_dir, a),
        Command::Health(a) => health::run(&data_dir, a),
        Command::Completions(a) => {
            use clap::CommandFactory;
            clap_complete::generate(a.shell, &mut Cli::command(), "waiaas", &mut std::io::stdout());
            Ok(())
        }
        Command::Audit(c) => audit::run(&data_dir, c),
        Command::Keystore(c) => keystore::run(&data_dir, c),
        Command::Backup(c) => backup::run(&data_dir, c),
        Command::Db(c) => db::run(&data_dir, c),
        Command::Agent(c) => agent::run(&data_dir, c),
        Command::Session(c) => session::run(&data_dir, c),
        Command::Secret(c) => session::run_secret(&data_dir, c),
        Command::Channel(c) => channel::run(&data_dir, c),
        Command::Policy(c) => policy::run(&data_dir, c),
        Command::Owner(c) => owner::run(&data_dir, c),
        Command::KillSwitch(c) => emergency::run_kill_switch(&data_dir, c),
        Command::Autostop(c) => emergency::run_autostop(&data_dir, c),
        Command::Mcp(c) => mcp::run(&data_dir, c),
    }
}

/// A current-thread tokio runtime for a CLI command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::general(format!("Error: cannot start the async runtime: {e}")))
}
