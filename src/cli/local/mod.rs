//! Commands that work on the data directory itself, whether or not the daemon runs: set-up, the
//! daemon's start and stop, the offline keystore, backups, the audit check, the status and health
//! probes.

pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod db;
pub(crate) mod health;
pub(crate) mod init;
pub(crate) mod keystore;
pub(crate) mod quickstart;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod stop;
