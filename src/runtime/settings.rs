//! The live configuration: replaced as a whole on SIGHUP, read as a snapshot.

use std::sync::{Arc, RwLock};

use crate::runtime::config::Config;

/// The current [`Config`] plus the values that never change while the daemon runs.
#[derive(Clone)]
pub(crate) struct Settings {
    current: Arc<RwLock<Arc<Config>>>,
    /// The port the daemon listens on (the owner-message domain is bound to it).
    pub(crate) port: u16,
    /// Dev mode (01-daemon.md §3.4); not reloadable.
    pub(crate) dev_mode: bool,
}

impl Settings {
    pub(crate) fn new(config: Config) -> Settings {
        Settings {
            port: config.daemon.port,
            dev_mode: config.daemon.dev_mode,
            current: Arc::new(RwLock::new(Arc::new(config))),
        }
    }

    /// A snapshot of the current configuration.
    pub(crate) fn get(&self) -> Arc<Config> {
        self.current.read().expect("config lock").clone()
    }

    /// Installs a reloaded configuration.
    pub(crate) fn replace(&self, config: Config) {
        *self.current.write().expect("config lock") = Arc::new(config);
    }
}
