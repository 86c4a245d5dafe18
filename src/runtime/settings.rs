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
    /// `[owner_console].enabled` (11-owner-console.md §1); not reloadable.
    pub(crate) console: bool,
    /// `[daemon].public_url`, `""` or an https origin; not reloadable.
    pub(crate) public_url: String,
}

impl Settings {
    pub(crate) fn new(config: Config) -> Settings {
        Settings {
            port: config.daemon.port,
            dev_mode: config.daemon.dev_mode,
            console: config.owner_console_enabled,
            public_url: config.daemon.public_url.clone(),
            current: Arc::new(RwLock::new(Arc::new(config))),
        }
    }

    /// Where the owner console is published, for links in notifications
    /// (11-owner-console.md §6): `public_url` when set, else `http://127.0.0.1:<port>` when the
    /// daemon listens there; `None` when the console is off or its address is unknown.
    pub(crate) fn console_base(&self) -> Option<String> {
        if !self.console {
            return None;
        }
        if !self.public_url.is_empty() {
            return Some(self.public_url.clone());
        }
        (self.get().daemon.hostname == "127.0.0.1").then(|| format!("http://127.0.0.1:{}", self.port))
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
