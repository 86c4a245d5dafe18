//! The device manager (03-keys.md §11.4) and the Ledger signer backend.
//!
//! One [`LedgerDevice`] per process owns the transport behind one mutex: **every** device
//! operation, for any agent or purpose, holds it from the app check to the last APDU, so the
//! device never sees two conversations interleaved. The transport opens lazily and is closed on
//! any transport error or timeout, so the next operation reopens it. Operations that need a
//! button press use `confirm_timeout`, the others `command_timeout`; waiting for the mutex is
//! bounded by 300 s.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::consensus::SignableTransaction;
use alloy::primitives::Address;
use async_trait::async_trait;
use uuid::Uuid;

use super::apps::{self, App, DerivationPath};
use super::transport::{Apdu, ApduTransport, TcpTransport, TransportError};
use crate::seam::{
    self, BackendKind, ChainKind, KeyRef, SignContext, SignIntent, SignOutput, SignerBackend, SignerError,
};

/// Opens a transport.
pub type Opener = Arc<dyn Fn(Duration) -> Result<Box<dyn ApduTransport>, TransportError> + Send + Sync>;

/// Timeouts from `[ledger]`.
#[derive(Debug, Clone, Copy)]
pub struct LedgerTimeouts {
    /// Operations that need a button press.
    pub confirm: Duration,
    /// Operations without user interaction.
    pub command: Duration,
}

impl Default for LedgerTimeouts {
    fn default() -> Self {
        LedgerTimeouts { confirm: Duration::from_secs(120), command: Duration::from_secs(10) }
    }
}

/// How long an operation may wait for another one to release the device.
const MUTEX_WAIT: Duration = Duration::from_secs(300);

type Slot = Arc<tokio::sync::Mutex<Option<Box<dyn ApduTransport>>>>;

/// The one device of this process.
pub struct LedgerDevice {
    opener: Opener,
    slot: Slot,
    timeouts: LedgerTimeouts,
    waiting: Mutex<HashSet<Uuid>>,
}

enum OpError {
    Transport(TransportError),
    Signer(SignerError),
}

impl From<SignerError> for OpError {
    fn from(e: SignerError) -> Self {
        OpError::Signer(e)
    }
}

/// One conversation with the device, run on a blocking thread while the mutex is held.
struct Session<'a> {
    t: &'a mut dyn ApduTransport,
    app: App,
}

impl Session<'_> {
    fn xchg(&mut self, apdu: &Apdu, timeout: Duration) -> Result<Vec<u8>, OpError> {
        let resp = self.t.exchange(apdu, timeout).map_err(OpError::Transport)?;
        apps::check_sw(resp.sw, self.app)?;
        Ok(resp.data)
    }

    /// Sends the chunks of one command; returns the last response.
    fn xchg_all(&mut self, apdus: &[Apdu], timeout: Duration) -> Result<Vec<u8>, OpError> {
        let mut last = Vec::new();
        for a in apdus {
            last = self.xchg(a, timeout)?;
        }
        Ok(last)
    }

    /// GET_APP_CONFIGURATION of the expected app; a wrong app is `DeviceUnavailable`.
    fn ensure_app(&mut self, timeout: Duration) -> Result<(u8, u8, u8), OpError> {
        let data = self.xchg(&apps::app_configuration(self.app), timeout)?;
        apps::parse_app_version(self.app, &data).ok_or_else(|| {
            OpError::Signer(SignerError::DeviceUnavailable { reason: format!("open the {} app", self.app.name()) })
        })
    }
}

impl LedgerDevice {
    /// A device reached through `opener`.
    pub fn new(opener: Opener, timeouts: LedgerTimeouts) -> LedgerDevice {
        LedgerDevice {
            opener,
            slot: Arc::new(tokio::sync::Mutex::new(None)),
            timeouts,
            waiting: Mutex::new(HashSet::new()),
        }
    }

    /// A device (Speculos or the fake device) at `host:port`.
    pub fn tcp(addr: String, timeouts: LedgerTimeouts) -> LedgerDevice {
        let opener: Opener =
            Arc::new(move |t| TcpTransport::connect(&addr, t).map(|t| Box::new(t) as Box<dyn ApduTransport>));
        LedgerDevice::new(opener, timeouts)
    }

    /// A physical device over USB HID.
    #[cfg(feature = "hid")]
    pub fn hid(timeouts: LedgerTimeouts) -> LedgerDevice {
        let opener: Opener =
            Arc::new(|_| super::transport::HidTransport::open().map(|t| Box::new(t) as Box<dyn ApduTransport>));
        LedgerDevice::new(opener, timeouts)
    }

    /// Whether a signature for `tx_id` is currently waiting for the device.
    pub fn is_waiting(&self, tx_id: Uuid) -> bool {
        self.waiting.lock().expect("waiting lock").contains(&tx_id)
    }

    /// Runs `op` with exclusive access to the device.
    async fn run<R, F>(&self, app: App, tx_id: Option<Uuid>, op: F) -> Result<R, SignerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Session<'_>, LedgerTimeouts) -> Result<R, OpError> + Send + 'static,
    {
        if let Some(id) = tx_id {
            self.waiting.lock().expect("waiting lock").insert(id);
        }
        let result = self.run_inner(app, op).await;
        if let Some(id) = tx_id {
            self.waiting.lock().expect("waiting lock").remove(&id);
        }
        result
    }

    async fn run_inner<R, F>(&self, app: App, op: F) -> Result<R, SignerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Session<'_>, LedgerTimeouts) -> Result<R, OpError> + Send + 'static,
    {
        let mut guard = tokio::time::timeout(MUTEX_WAIT, self.slot.clone().lock_owned())
            .await
            .map_err(|_| SignerError::DeviceUnavailable { reason: "device busy".into() })?;
        let opener = self.opener.clone();
        let timeouts = self.timeouts;
        let joined = tokio::task::spawn_blocking(move || {
            if guard.is_none() {
                match opener(timeouts.command) {
                    Ok(t) => *guard = Some(t),
                    Err(e) => return Err(map_transport(e)),
                }
            }
            let t = guard.as_mut().expect("opened above");
            let mut session = Session { t: t.as_mut(), app };
            match op(&mut session, timeouts) {
                Ok(r) => Ok(r),
                Err(OpError::Signer(e)) => Err(e),
                Err(OpError::Transport(e)) => {
                    // Close on any transport failure; the next operation reopens.
                    *guard = None;
                    Err(map_transport(e))
                }
            }
        })
        .await;
        joined.map_err(|e| SignerError::Internal(format!("device task failed: {e}")))?
    }

    /// Reads the address (Ethereum) or public key (Solana) at `path` without display.
    pub async fn get_address(&self, chain: ChainKind, path: &DerivationPath) -> Result<String, SignerError> {
        let path = path.clone();
        match chain {
            ChainKind::Ethereum => {
                self.run(App::Ethereum, None, move |s, t| {
                    s.ensure_app(t.command)?;
                    let data = s.xchg(&apps::eth_get_public_key(&path, false), t.command)?;
                    Ok(apps::eth_parse_public_key(&data)?.to_checksum(None))
                })
                .await
            }
            ChainKind::Solana => {
                self.run(App::Solana, None, move |s, t| {
                    s.ensure_app(t.command)?;
                    let data = s.xchg(&apps::sol_get_pubkey(&path, false), t.command)?;
                    let pk: [u8; 32] = data
                        .try_into()
                        .map_err(|_| SignerError::Internal("GET_PUBKEY did not return 32 bytes".into()))?;
                    Ok(bs58::encode(pk).into_string())
                })
                .await
            }
        }
    }

    /// Signs `intent` with the key at `path` (`public_key` is used to pick the parity and build
    /// the off-chain envelope). Needs a button press: bounded by `confirm_timeout` and the
    /// context's deadline. Crate-private: signatures leave the crate through
    /// `seam::sign_verified` over a [`LedgerBackend`].
    pub(crate) async fn sign(
        &self,
        key: &KeyRef,
        path: &DerivationPath,
        intent: &SignIntent,
        ctx: &SignContext,
    ) -> Result<SignOutput, SignerError> {
        let left = ctx.deadline.saturating_duration_since(Instant::now());
        let path = path.clone();
        let intent = intent.clone();
        let public_key = key.public_key.clone();
        match key.chain {
            ChainKind::Ethereum => {
                let address: Address = seam::parse_evm_address(&public_key)
                    .ok_or_else(|| SignerError::Internal("bad EVM address".into()))?;
                self.run(App::Ethereum, ctx.tx_id, move |s, t| {
                    let confirm = t.confirm.min(left);
                    let version = s.ensure_app(t.command)?;
                    let hash = seam::evm_signing_hash(&intent)?;
                    let apdus = match &intent {
                        SignIntent::EvmTransaction(tx) => {
                            let mut buf = Vec::new();
                            tx.encode_for_signing(&mut buf);
                            apps::eth_sign_transaction(&path, &buf)
                        }
                        SignIntent::Eip191Message(m) => apps::eth_sign_personal_message(&path, m),
                        SignIntent::Eip712(td) => {
                            if version < (1, 6, 0) {
                                return Err(OpError::Signer(SignerError::Unsupported {
                                    intent: "Eip712 (Ethereum app below 1.6.0)",
                                }));
                            }
                            let domain = td.domain().separator();
                            let struct_hash =
                                td.hash_struct().map_err(|e| SignerError::Internal(format!("EIP-712: {e}")))?;
                            vec![apps::eth_sign_eip712_hashed(&path, domain, struct_hash)]
                        }
                        other => return Err(OpError::Signer(SignerError::Unsupported { intent: other.name() })),
                    };
                    let data = s.xchg_all(&apdus, confirm)?;
                    let sig = apps::eth_parse_signature(&data, &hash, address)?;
                    Ok(SignOutput::Secp256k1 { r: sig.r().to_be_bytes(), s: sig.s().to_be_bytes(), y_parity: sig.v() })
                })
                .await
            }
            ChainKind::Solana => {
                let pk = seam::parse_solana_address(&public_key)
                    .ok_or_else(|| SignerError::Internal("bad Solana address".into()))?;
                self.run(App::Solana, ctx.tx_id, move |s, t| {
                    let confirm = t.confirm.min(left);
                    s.ensure_app(t.command)?;
                    let apdus = match &intent {
                        SignIntent::SolanaMessage(m) => apps::sol_sign(apps::sol_ins::SIGN_MESSAGE, &path, m),
                        SignIntent::SolanaOffchainMessage(_) => {
                            let envelope = seam::solana_signing_bytes(&intent, &pk)?;
                            apps::sol_sign(apps::sol_ins::SIGN_OFFCHAIN_MESSAGE, &path, &envelope)
                        }
                        other => return Err(OpError::Signer(SignerError::Unsupported { intent: other.name() })),
                    };
                    let data = s.xchg_all(&apdus, confirm)?;
                    let sig: [u8; 64] =
                        data.try_into().map_err(|_| SignerError::Internal("signature is not 64 bytes".into()))?;
                    Ok(SignOutput::Ed25519(sig))
                })
                .await
            }
        }
    }
}

fn map_transport(e: TransportError) -> SignerError {
    match e {
        TransportError::Timeout => SignerError::Timeout,
        TransportError::NotFound => SignerError::DeviceUnavailable { reason: "no Ledger device connected".into() },
        other => SignerError::DeviceUnavailable { reason: other.to_string() },
    }
}

/// The Ledger as a signer backend.
pub struct LedgerBackend {
    device: Arc<LedgerDevice>,
}

impl LedgerBackend {
    /// Wraps the process's device.
    pub fn new(device: Arc<LedgerDevice>) -> LedgerBackend {
        LedgerBackend { device }
    }

    /// The device.
    pub fn device(&self) -> &Arc<LedgerDevice> {
        &self.device
    }
}

impl SignerBackend for LedgerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ledger
    }

    fn supports(&self, key: &KeyRef, intent: &SignIntent) -> bool {
        key.backend == BackendKind::Ledger && key.chain == intent.chain() && key.derivation_path.is_some()
    }
}

#[async_trait]
impl crate::seam::raw::RawSigner for LedgerBackend {
    async fn sign(&self, key: &KeyRef, intent: &SignIntent, ctx: &SignContext) -> Result<SignOutput, SignerError> {
        let path = key
            .derivation_path
            .as_deref()
            .and_then(DerivationPath::parse)
            .ok_or_else(|| SignerError::Internal("ledger key without a valid derivation path".into()))?;
        self.device.sign(key, &path, intent, ctx).await
    }
}
