//! The signer backends of the daemon: the encrypted keystore and the one Ledger device.

use std::sync::Arc;

use waiaas_backends::keystore::KeystoreBackend;
use waiaas_backends::ledger::device::{LedgerBackend, LedgerDevice};
use waiaas_backends::seam::SignerBackend;
use waiaas_storage::Backend;

/// Both backends; which one signs for an agent follows from the agent's `backend`.
#[derive(Clone)]
pub(crate) struct Signers {
    /// Locked while the kill switch is active.
    pub(crate) keystore: Arc<KeystoreBackend>,
    /// Opened lazily; `None` when no transport is available in this build.
    pub(crate) ledger: Option<Arc<LedgerBackend>>,
}

impl Signers {
    /// The backend holding an agent's key.
    pub(crate) fn backend(&self, backend: Backend) -> Option<&dyn SignerBackend> {
        match backend {
            Backend::Keystore => Some(self.keystore.as_ref()),
            Backend::Ledger => self.ledger.as_deref().map(|l| l as &dyn SignerBackend),
        }
    }

    /// The Ledger device, when configured.
    pub(crate) fn ledger_device(&self) -> Option<&Arc<LedgerDevice>> {
        self.ledger.as_ref().map(|l| l.device())
    }

    /// Whether an agent on `backend` can sign right now as far as memory tells (the keystore is
    /// unlocked; a Ledger is only known at signing time).
    pub(crate) async fn ready(&self, backend: Backend) -> bool {
        backend != Backend::Keystore || self.keystore.is_unlocked().await
    }
}

/// The Ledger device `[ledger]` describes: TCP (Speculos, the fake device) or USB HID. `None`
/// when this build has no HID support and HID is configured. The daemon and the CLI's owner
/// signing both open devices through here.
pub(crate) fn ledger_device(config: &crate::runtime::config::LedgerConfig) -> Option<LedgerDevice> {
    use std::time::Duration;
    let timeouts = waiaas_backends::ledger::device::LedgerTimeouts {
        confirm: Duration::from_secs(config.confirm_timeout),
        command: Duration::from_secs(config.command_timeout),
    };
    match config.transport {
        crate::runtime::config::LedgerTransport::Tcp => Some(LedgerDevice::tcp(config.tcp_address.clone(), timeouts)),
        #[cfg(feature = "hid")]
        crate::runtime::config::LedgerTransport::Hid => Some(LedgerDevice::hid(timeouts)),
        #[cfg(not(feature = "hid"))]
        crate::runtime::config::LedgerTransport::Hid => None,
    }
}
