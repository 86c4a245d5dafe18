//! An in-process fake Ledger (feature `fake-device`, tests only; 03-keys.md §11.9).
//!
//! It answers like the Ethereum and Solana apps of §11.6 — same instructions, chunking and
//! response layouts — signs with keys derived from a test mnemonic (BIP-32 secp256k1 for
//! Ethereum, SLIP-0010 Ed25519 for Solana), and plays a scripted user: approve after a delay,
//! reject, never answer, wrong app, locked, blind signing disabled. It can serve the Speculos TCP
//! framing on an ephemeral port so a daemon configured with `[ledger] transport = "tcp"` talks to
//! it as to a device.
//!
//! It also watches for interleaving: a new command arriving while a chunked one is incomplete is
//! counted, which is how tests prove the device mutex serialises concurrent signatures.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{B256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::local::coins_bip39::{English, Mnemonic};
use hmac::{Hmac, Mac};
use sha2::Sha512;

use super::apps::{App, DerivationPath, eth_ins, sol_ins};
use super::transport::{Apdu, ApduResponse, ApduTransport, TransportError};

/// The default test mnemonic (anvil's): its first Ethereum account is funded on anvil.
pub const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// How the scripted user behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// Approve every prompt after `delay`.
    Approve {
        /// Time before the "button press".
        delay: Duration,
    },
    /// Reject every prompt (0x6985).
    Reject,
    /// Never answer a prompt.
    NeverAnswer,
    /// Another app is open (0x6E00 to everything).
    WrongApp,
    /// The device is locked (0x5515 to everything).
    Locked,
    /// Blind signing disabled (0x6A80 Ethereum, 0x6808 Solana) on signing.
    BlindSigningDisabled,
}

/// Which app is "open".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenApp {
    /// Always Ethereum.
    Ethereum,
    /// Always Solana.
    Solana,
    /// Follows the configuration probe the manager sends first (a user switching apps).
    Auto,
}

#[derive(Debug)]
struct Pending {
    conn: u64,
    app: App,
    ins: u8,
    payload: Vec<u8>,
}

struct State {
    behavior: Behavior,
    open: OpenApp,
    current: App,
    mnemonic: String,
    pending: Option<Pending>,
    log: Vec<(u64, Vec<u8>)>,
    interleavings: u64,
    signatures: u64,
    bogus_v: bool,
    eth_version: (u8, u8, u8),
}

/// The fake device; clones share one device.
#[derive(Clone)]
pub struct FakeDevice {
    state: Arc<Mutex<State>>,
    next_conn: Arc<AtomicU64>,
}

impl Default for FakeDevice {
    fn default() -> Self {
        FakeDevice::new(TEST_MNEMONIC)
    }
}

fn hmac512(key: &[u8], data: &[&[u8]]) -> [u8; 64] {
    let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
    for d in data {
        m.update(d);
    }
    m.finalize().into_bytes().into()
}

/// SLIP-0010 Ed25519 derivation (hardened indices only) from a BIP-39 mnemonic.
pub fn solana_key(mnemonic: &str, path: &DerivationPath) -> Option<ed25519_dalek::SigningKey> {
    let m = Mnemonic::<English>::new_from_phrase(mnemonic).ok()?;
    let seed = m.to_seed(None).ok()?;
    let i = hmac512(b"ed25519 seed", &[&seed]);
    let (mut k, mut c) = (<[u8; 32]>::try_from(&i[..32]).ok()?, <[u8; 32]>::try_from(&i[32..]).ok()?);
    for idx in &path.0 {
        if idx & 0x8000_0000 == 0 {
            return None;
        }
        let i = hmac512(&c, &[&[0u8], &k, &idx.to_be_bytes()]);
        k.copy_from_slice(&i[..32]);
        c.copy_from_slice(&i[32..]);
    }
    Some(ed25519_dalek::SigningKey::from_bytes(&k))
}

/// The BIP-32 secp256k1 key at `path`.
pub fn ethereum_key(mnemonic: &str, path: &DerivationPath) -> Option<PrivateKeySigner> {
    alloy::signers::local::MnemonicBuilder::<English>::default()
        .phrase(mnemonic)
        .derivation_path(format!("m/{}", path.to_text()))
        .ok()?
        .build()
        .ok()
}

fn ok(data: Vec<u8>) -> Option<ApduResponse> {
    Some(ApduResponse { data, sw: 0x9000 })
}

fn sw(sw: u16) -> Option<ApduResponse> {
    Some(ApduResponse { data: Vec::new(), sw })
}

/// Splits `path ‖ rest` (count byte + u32s).
fn split_path(payload: &[u8]) -> Option<(DerivationPath, &[u8])> {
    let n = *payload.first()? as usize;
    let end = 1 + 4 * n;
    if payload.len() < end || n == 0 {
        return None;
    }
    let comps = payload[1..end].chunks(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    Some((DerivationPath(comps), &payload[end..]))
}

/// Total length of a typed transaction `0x02 ‖ rlp list` once its header is available.
fn eth_tx_len(tx: &[u8]) -> Option<usize> {
    let (ty, rest) = tx.split_first()?;
    if *ty > 0x7f {
        // A legacy (untyped) RLP list.
        return rlp_list_len(tx);
    }
    let _ = ty;
    rlp_list_len(rest).map(|l| l + 1)
}

fn rlp_list_len(b: &[u8]) -> Option<usize> {
    let h = *b.first()?;
    match h {
        0xc0..=0xf7 => Some(1 + (h - 0xc0) as usize),
        0xf8..=0xff => {
            let n = (h - 0xf7) as usize;
            let len = b.get(1..1 + n)?.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize);
            Some(1 + n + len)
        }
        _ => None,
    }
}

impl FakeDevice {
    /// A device with keys from `mnemonic`, approving at once, app chosen automatically.
    pub fn new(mnemonic: &str) -> FakeDevice {
        FakeDevice {
            state: Arc::new(Mutex::new(State {
                behavior: Behavior::Approve { delay: Duration::ZERO },
                open: OpenApp::Auto,
                current: App::Ethereum,
                mnemonic: mnemonic.to_string(),
                pending: None,
                log: Vec::new(),
                interleavings: 0,
                signatures: 0,
                bogus_v: false,
                eth_version: (1, 10, 3),
            })),
            next_conn: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Sets the scripted user.
    pub fn set_behavior(&self, b: Behavior) {
        self.state.lock().expect("fake lock").behavior = b;
    }

    /// Sets which app is open.
    pub fn set_app(&self, app: OpenApp) {
        self.state.lock().expect("fake lock").open = app;
    }

    /// Makes the Ethereum app return a wrong `v` byte (the backend must recover the parity).
    pub fn set_bogus_v(&self, on: bool) {
        self.state.lock().expect("fake lock").bogus_v = on;
    }

    /// Sets the reported Ethereum app version.
    pub fn set_eth_version(&self, v: (u8, u8, u8)) {
        self.state.lock().expect("fake lock").eth_version = v;
    }

    /// Every APDU received, with its connection id.
    pub fn log(&self) -> Vec<(u64, Vec<u8>)> {
        self.state.lock().expect("fake lock").log.clone()
    }

    /// Commands that arrived while another chunked command was incomplete.
    pub fn interleavings(&self) -> u64 {
        self.state.lock().expect("fake lock").interleavings
    }

    /// Signatures produced.
    pub fn signatures(&self) -> u64 {
        self.state.lock().expect("fake lock").signatures
    }

    /// The EIP-55 address at `path`.
    pub fn eth_address(&self, path: &str) -> String {
        let m = self.state.lock().expect("fake lock").mnemonic.clone();
        ethereum_key(&m, &DerivationPath::parse(path).expect("path")).expect("key").address().to_checksum(None)
    }

    /// The base58 public key at `path`.
    pub fn solana_pubkey(&self, path: &str) -> String {
        let m = self.state.lock().expect("fake lock").mnemonic.clone();
        let k = solana_key(&m, &DerivationPath::parse(path).expect("path")).expect("hardened path");
        bs58::encode(k.verifying_key().to_bytes()).into_string()
    }

    /// An in-process transport (its own connection id).
    pub fn transport(&self) -> FakeTransport {
        FakeTransport { device: self.clone(), conn: self.next_conn.fetch_add(1, Ordering::Relaxed) }
    }

    /// Handles one APDU. `None` means the device never answers.
    pub fn handle(&self, conn: u64, apdu: &Apdu) -> Option<ApduResponse> {
        let mut st = self.state.lock().expect("fake lock");
        st.log.push((conn, apdu.to_bytes()));
        match st.behavior {
            Behavior::Locked => return sw(0x5515),
            Behavior::WrongApp => return sw(0x6E00),
            _ => {}
        }
        if apdu.cla != 0xE0 {
            return sw(0x6E00);
        }
        let app = match st.open {
            OpenApp::Ethereum => App::Ethereum,
            OpenApp::Solana => App::Solana,
            OpenApp::Auto => {
                // The manager probes the app first; an empty ETH config (06) or Solana config
                // (04) selects the app, as a user switching apps would.
                if apdu.data.is_empty() && apdu.ins == eth_ins::GET_APP_CONFIGURATION {
                    st.current = App::Ethereum;
                } else if apdu.data.is_empty() && apdu.ins == sol_ins::GET_APP_CONFIGURATION {
                    st.current = App::Solana;
                }
                st.current
            }
        };
        // Interleaving: a continuation must follow its own first chunk on the same connection.
        let continuation = match app {
            App::Ethereum => apdu.p1 == 0x80,
            App::Solana => apdu.p2 & 0x01 != 0,
        };
        if let Some(p) = &st.pending
            && (!continuation || p.conn != conn || p.ins != apdu.ins || p.app != app)
        {
            st.interleavings += 1;
            st.pending = None;
        }
        match app {
            App::Ethereum => self.eth(&mut st, conn, apdu, continuation),
            App::Solana => self.sol(&mut st, conn, apdu, continuation),
        }
    }

    fn eth(&self, st: &mut State, conn: u64, apdu: &Apdu, continuation: bool) -> Option<ApduResponse> {
        match apdu.ins {
            eth_ins::GET_APP_CONFIGURATION => {
                let (a, b, c) = st.eth_version;
                ok(vec![0x01, a, b, c])
            }
            eth_ins::GET_PUBLIC_KEY => {
                let Some((path, _)) = split_path(&apdu.data) else { return sw(0x6A80) };
                let key = ethereum_key(&st.mnemonic, &path)?;
                let pk = key.credential().verifying_key().to_encoded_point(false);
                let addr = hex::encode(key.address().as_slice());
                let mut out = vec![65u8];
                out.extend_from_slice(pk.as_bytes());
                out.push(40);
                out.extend_from_slice(addr.as_bytes());
                ok(out)
            }
            eth_ins::SIGN | eth_ins::SIGN_PERSONAL_MESSAGE => {
                let payload = if continuation {
                    let mut p = st.pending.take().map(|p| p.payload).unwrap_or_default();
                    p.extend_from_slice(&apdu.data);
                    p
                } else {
                    apdu.data.clone()
                };
                let Some((path, rest)) = split_path(&payload) else {
                    st.pending = Some(Pending { conn, app: App::Ethereum, ins: apdu.ins, payload });
                    return ok(vec![]);
                };
                let complete_len = if apdu.ins == eth_ins::SIGN {
                    eth_tx_len(rest)
                } else {
                    rest.get(..4).map(|l| 4 + u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
                };
                match complete_len {
                    Some(n) if rest.len() >= n => {}
                    _ => {
                        st.pending = Some(Pending { conn, app: App::Ethereum, ins: apdu.ins, payload });
                        return ok(vec![]);
                    }
                }
                let hash = if apdu.ins == eth_ins::SIGN {
                    keccak256(rest)
                } else {
                    alloy::primitives::eip191_hash_message(&rest[4..])
                };
                self.eth_finish(st, &path, hash)
            }
            eth_ins::SIGN_EIP712 => {
                let Some((path, rest)) = split_path(&apdu.data) else { return sw(0x6A80) };
                if rest.len() != 64 {
                    return sw(0x6A80);
                }
                let mut pre = vec![0x19, 0x01];
                pre.extend_from_slice(rest);
                self.eth_finish(st, &path, keccak256(&pre))
            }
            _ => sw(0x6D00),
        }
    }

    fn eth_finish(&self, st: &mut State, path: &DerivationPath, hash: B256) -> Option<ApduResponse> {
        let key = ethereum_key(&st.mnemonic, path)?;
        match self.user(st, App::Ethereum)? {
            Err(code) => sw(code),
            Ok(()) => {
                let sig = key.sign_hash_sync(&hash).ok()?;
                st.signatures += 1;
                let v = if st.bogus_v { 0x42 } else { u8::from(sig.v()) };
                let mut out = vec![v];
                out.extend_from_slice(&sig.r().to_be_bytes::<32>());
                out.extend_from_slice(&sig.s().to_be_bytes::<32>());
                ok(out)
            }
        }
    }

    fn sol(&self, st: &mut State, conn: u64, apdu: &Apdu, continuation: bool) -> Option<ApduResponse> {
        match apdu.ins {
            sol_ins::GET_APP_CONFIGURATION => ok(vec![0x01, 0x00, 1, 4, 2, 0, 0]),
            sol_ins::GET_PUBKEY => {
                let Some((path, _)) = split_path(&apdu.data) else { return sw(0x6A80) };
                let Some(k) = solana_key(&st.mnemonic, &path) else { return sw(0x6A80) };
                ok(k.verifying_key().to_bytes().to_vec())
            }
            sol_ins::SIGN_MESSAGE | sol_ins::SIGN_OFFCHAIN_MESSAGE => {
                let mut payload =
                    if continuation { st.pending.take().map(|p| p.payload).unwrap_or_default() } else { Vec::new() };
                payload.extend_from_slice(&apdu.data);
                if apdu.p2 & 0x02 != 0 {
                    st.pending = Some(Pending { conn, app: App::Solana, ins: apdu.ins, payload });
                    return ok(vec![]);
                }
                if payload.first() != Some(&1) {
                    return sw(0x6A80);
                }
                let Some((path, message)) = split_path(&payload[1..]) else { return sw(0x6A80) };
                let Some(key) = solana_key(&st.mnemonic, &path) else { return sw(0x6A80) };
                match self.user(st, App::Solana)? {
                    Err(code) => sw(code),
                    Ok(()) => {
                        st.signatures += 1;
                        ok(ed25519_dalek::Signer::sign(&key, message).to_bytes().to_vec())
                    }
                }
            }
            _ => sw(0x6D00),
        }
    }

    /// The scripted user's answer to a prompt: `None` = never answers, `Some(Err(sw))` refuses.
    fn user(&self, st: &mut State, app: App) -> Option<Result<(), u16>> {
        match st.behavior.clone() {
            Behavior::Approve { delay } => {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                Some(Ok(()))
            }
            Behavior::Reject => Some(Err(0x6985)),
            Behavior::NeverAnswer => None,
            Behavior::BlindSigningDisabled => Some(Err(if app == App::Solana { 0x6808 } else { 0x6A80 })),
            Behavior::WrongApp => Some(Err(0x6E00)),
            Behavior::Locked => Some(Err(0x5515)),
        }
    }

    /// Serves the Speculos TCP framing on an ephemeral loopback port until dropped.
    pub fn serve_tcp(&self) -> std::io::Result<FakeServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (device, stop2) = (self.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let device = device.clone();
                        let conn = device.next_conn.fetch_add(1, Ordering::Relaxed);
                        let stop3 = stop2.clone();
                        std::thread::spawn(move || serve_conn(device, conn, stream, stop3));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(FakeServer { port, stop })
    }
}

fn serve_conn(device: FakeDevice, conn: u64, mut s: TcpStream, stop: Arc<AtomicBool>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut len = [0u8; 4];
        match s.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        let n = u32::from_be_bytes(len) as usize;
        let mut buf = vec![0u8; n];
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.read_exact(&mut buf).is_err() {
            return;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let Some(apdu) = Apdu::from_bytes(&buf) else { return };
        match device.handle(conn, &apdu) {
            Some(resp) => {
                let mut out = (resp.data.len() as u32).to_be_bytes().to_vec();
                out.extend_from_slice(&resp.data);
                out.extend_from_slice(&resp.sw.to_be_bytes());
                if s.write_all(&out).is_err() {
                    return;
                }
            }
            // Never answers: keep the connection open until the client gives up.
            None => loop {
                if stop.load(Ordering::Relaxed) || s.read(&mut [0u8; 1]).is_ok_and(|n| n == 0) {
                    return;
                }
            },
        }
    }
}

/// A running fake-device TCP server; stops when dropped.
pub struct FakeServer {
    /// The port.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An in-process transport to the fake device.
pub struct FakeTransport {
    device: FakeDevice,
    conn: u64,
}

impl ApduTransport for FakeTransport {
    fn exchange(&mut self, apdu: &Apdu, timeout: Duration) -> Result<ApduResponse, TransportError> {
        match self.device.handle(self.conn, apdu) {
            Some(r) => Ok(r),
            None => {
                std::thread::sleep(timeout);
                Err(TransportError::Timeout)
            }
        }
    }
}
