//! waiaas: a self-hosted wallet daemon for AI agents.
//!
//! AI agents ask the daemon over REST to move funds on EVM chains and Solana; every request
//! passes a policy engine that decides how much human oversight it needs, and keys live behind
//! one signer seam (`waiaas-backends`). State lives in one redb file (`waiaas-storage`).
//!
//! This library is the daemon and the CLI; `main.rs` only parses arguments through [`run`] and
//! maps the result to an exit code.

mod agents;
mod auth;
mod backup;
mod chains;
mod cli;
mod clock;
mod config;
mod daemon;
mod datadir;
mod error;
mod http;
mod killswitch;
mod policy;

pub use cli::{CliError, run};
