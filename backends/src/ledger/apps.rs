//! The Ethereum and Solana app protocols (03-keys.md §11.4–§11.6) as pure functions: APDU
//! encoders with their chunking rules, response parsers, derivation paths and the status-word
//! mapping. No I/O here, so each encoder is checked byte for byte against the APDUs Ledger's
//! official JS clients emit (`fixtures/ledger/`).

use alloy::primitives::{Address, B256, Signature, U256, keccak256};

use super::transport::Apdu;
use crate::seam::SignerError;

/// CLA of both apps.
pub const CLA: u8 = 0xE0;

/// Ethereum app instructions.
pub mod eth_ins {
    /// GET_PUBLIC_KEY
    pub const GET_PUBLIC_KEY: u8 = 0x02;
    /// SIGN (transaction)
    pub const SIGN: u8 = 0x04;
    /// GET_APP_CONFIGURATION
    pub const GET_APP_CONFIGURATION: u8 = 0x06;
    /// SIGN_PERSONAL_MESSAGE
    pub const SIGN_PERSONAL_MESSAGE: u8 = 0x08;
    /// SIGN_EIP712 (hashed)
    pub const SIGN_EIP712: u8 = 0x0C;
}

/// Solana app instructions.
pub mod sol_ins {
    /// GET_APP_CONFIGURATION
    pub const GET_APP_CONFIGURATION: u8 = 0x04;
    /// GET_PUBKEY
    pub const GET_PUBKEY: u8 = 0x05;
    /// SIGN_MESSAGE (transaction)
    pub const SIGN_MESSAGE: u8 = 0x06;
    /// SIGN_OFFCHAIN_MESSAGE
    pub const SIGN_OFFCHAIN_MESSAGE: u8 = 0x07;
}

/// Which app an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// Ethereum.
    Ethereum,
    /// Solana.
    Solana,
}

impl App {
    /// Name shown in "open the … app".
    pub fn name(self) -> &'static str {
        match self {
            App::Ethereum => "Ethereum",
            App::Solana => "Solana",
        }
    }
}

/// Default derivation paths.
pub const DEFAULT_ETH_PATH: &str = "44'/60'/0'/0/0";
/// Default Solana path.
pub const DEFAULT_SOL_PATH: &str = "44'/501'/0'/0'";

/// A parsed BIP-32 path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivationPath(pub Vec<u32>);

impl DerivationPath {
    /// The path the Ledger apps use for the first account: Ethereum `44'/60'/0'/0/0`, Solana
    /// `44'/501'/0'/0'`.
    pub fn default_text(chain: crate::seam::ChainKind) -> &'static str {
        match chain {
            crate::seam::ChainKind::Ethereum => "44'/60'/0'/0/0",
            crate::seam::ChainKind::Solana => "44'/501'/0'/0'",
        }
    }

    /// Parses `44'/60'/0'/0/0` (optional `m/` prefix, 1–10 components, `'` hardened).
    pub fn parse(s: &str) -> Option<DerivationPath> {
        let s = s.strip_prefix("m/").unwrap_or(s);
        let parts: Vec<&str> = s.split('/').collect();
        if parts.is_empty() || parts.len() > 10 {
            return None;
        }
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            let (num, hardened) = match p.strip_suffix('\'') {
                Some(n) => (n, true),
                None => (p, false),
            };
            if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = num.parse().ok()?;
            if n >= 0x8000_0000 {
                return None;
            }
            out.push(if hardened { n | 0x8000_0000 } else { n });
        }
        Some(DerivationPath(out))
    }

    /// One count byte, then each component as u32 BE (bit 31 set when hardened).
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = vec![self.0.len() as u8];
        for c in &self.0 {
            out.extend_from_slice(&c.to_be_bytes());
        }
        out
    }

    /// Canonical text form.
    pub fn to_text(&self) -> String {
        self.0
            .iter()
            .map(|c| if c & 0x8000_0000 != 0 { format!("{}'", c & 0x7FFF_FFFF) } else { c.to_string() })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Maps a status word to its error (03-keys.md §11.5). `0x9000` is success.
pub fn check_sw(sw: u16, app: App) -> Result<(), SignerError> {
    match sw {
        0x9000 => Ok(()),
        0x6985 => Err(SignerError::UserRejected),
        0x6982 | 0x5515 => Err(SignerError::DeviceUnavailable { reason: "device locked".into() }),
        0x6D00 | 0x6E00 | 0x6E01 | 0x6511 => {
            Err(SignerError::DeviceUnavailable { reason: format!("open the {} app", app.name()) })
        }
        0x6A80 => Err(SignerError::Refused {
            status_word: sw,
            hint: match app {
                App::Ethereum => "Enable blind signing (contract data) in the Ethereum app settings".into(),
                App::Solana => "The Solana app refused the message as invalid".into(),
            },
        }),
        0x6808 => Err(SignerError::Refused {
            status_word: sw,
            hint: "Enable blind signing in the Solana app settings".into(),
        }),
        other => Err(SignerError::Internal(format!("unexpected status word 0x{other:04X}"))),
    }
}

/// The GET_APP_CONFIGURATION APDU of `app`.
pub fn app_configuration(app: App) -> Apdu {
    let ins = match app {
        App::Ethereum => eth_ins::GET_APP_CONFIGURATION,
        App::Solana => sol_ins::GET_APP_CONFIGURATION,
    };
    Apdu { cla: CLA, ins, p1: 0, p2: 0, data: Vec::new() }
}

/// App version from a GET_APP_CONFIGURATION response: Ethereum `[flags, major, minor, patch, …]`
/// (≥ 4 bytes), Solana `[blind, display, major, minor, patch, …]` (≥ 5 bytes; longer accepted).
pub fn parse_app_version(app: App, data: &[u8]) -> Option<(u8, u8, u8)> {
    match app {
        App::Ethereum if data.len() >= 4 => Some((data[1], data[2], data[3])),
        App::Solana if data.len() >= 5 => Some((data[2], data[3], data[4])),
        _ => None,
    }
}

/// The Ethereum app's chunk size for a payload: the largest `c ≤ 255` with `len % c != 3`
/// (a remainder of 3 triggers a parsing bug in the app).
pub fn eth_chunk_size(len: usize) -> usize {
    (1..=255).rev().find(|c| len % c != 3).unwrap_or(255)
}

fn eth_chunked(ins: u8, payload: &[u8]) -> Vec<Apdu> {
    let c = eth_chunk_size(payload.len());
    payload
        .chunks(c)
        .enumerate()
        .map(|(i, chunk)| Apdu { cla: CLA, ins, p1: if i == 0 { 0x00 } else { 0x80 }, p2: 0x00, data: chunk.to_vec() })
        .collect()
}

/// GET_PUBLIC_KEY (no chain code).
pub fn eth_get_public_key(path: &DerivationPath, display: bool) -> Apdu {
    Apdu { cla: CLA, ins: eth_ins::GET_PUBLIC_KEY, p1: u8::from(display), p2: 0x00, data: path.serialize() }
}

/// Parses `[pk_len][pubkey][addr_len][address ASCII]`, checking the address is keccak(pubkey).
pub fn eth_parse_public_key(data: &[u8]) -> Result<Address, SignerError> {
    let bad = |w: &str| SignerError::Internal(format!("malformed GET_PUBLIC_KEY response: {w}"));
    let pk_len = *data.first().ok_or_else(|| bad("empty"))? as usize;
    let pk = data.get(1..1 + pk_len).ok_or_else(|| bad("public key"))?;
    let addr_len = *data.get(1 + pk_len).ok_or_else(|| bad("address length"))? as usize;
    let addr_text = data.get(2 + pk_len..2 + pk_len + addr_len).ok_or_else(|| bad("address"))?;
    if pk.len() != 65 || pk[0] != 0x04 {
        return Err(bad("not an uncompressed secp256k1 key"));
    }
    let derived = Address::from_slice(&keccak256(&pk[1..])[12..]);
    let text = std::str::from_utf8(addr_text).map_err(|_| bad("address is not ASCII"))?;
    let text = text.strip_prefix("0x").unwrap_or(text);
    let claimed: Address = format!("0x{text}").parse().map_err(|_| bad("address is not hex"))?;
    if claimed != derived {
        return Err(bad("address does not match the public key"));
    }
    Ok(derived)
}

/// SIGN for an EIP-1559 transaction: `path ‖ 0x02 ‖ rlp(unsigned fields)`, chunked.
pub fn eth_sign_transaction(path: &DerivationPath, encoded_for_signing: &[u8]) -> Vec<Apdu> {
    let mut payload = path.serialize();
    payload.extend_from_slice(encoded_for_signing);
    eth_chunked(eth_ins::SIGN, &payload)
}

/// SIGN_PERSONAL_MESSAGE: `path ‖ len u32 BE ‖ message`, chunked.
pub fn eth_sign_personal_message(path: &DerivationPath, message: &[u8]) -> Vec<Apdu> {
    let mut payload = path.serialize();
    payload.extend_from_slice(&(message.len() as u32).to_be_bytes());
    payload.extend_from_slice(message);
    eth_chunked(eth_ins::SIGN_PERSONAL_MESSAGE, &payload)
}

/// SIGN_EIP712 (hashed): `path ‖ domain separator ‖ struct hash`, one APDU.
pub fn eth_sign_eip712_hashed(path: &DerivationPath, domain_separator: B256, struct_hash: B256) -> Apdu {
    let mut data = path.serialize();
    data.extend_from_slice(domain_separator.as_slice());
    data.extend_from_slice(struct_hash.as_slice());
    Apdu { cla: CLA, ins: eth_ins::SIGN_EIP712, p1: 0, p2: 0, data }
}

/// Parses `v ‖ r ‖ s` and determines the y-parity by recovery: the device's `v` is not trusted,
/// the parity that recovers `expected` over `hash` is used (neither → `Internal`).
pub fn eth_parse_signature(data: &[u8], hash: &B256, expected: Address) -> Result<Signature, SignerError> {
    if data.len() < 65 {
        return Err(SignerError::Internal(format!("signature response of {} bytes", data.len())));
    }
    let r = U256::from_be_slice(&data[1..33]);
    let s = U256::from_be_slice(&data[33..65]);
    for parity in [false, true] {
        let sig = Signature::new(r, s, parity);
        if sig.recover_address_from_prehash(hash).ok() == Some(expected) {
            return Ok(sig);
        }
    }
    Err(SignerError::Internal("the device signature recovers neither parity to the agent's address".into()))
}

/// GET_PUBKEY.
pub fn sol_get_pubkey(path: &DerivationPath, display: bool) -> Apdu {
    Apdu { cla: CLA, ins: sol_ins::GET_PUBKEY, p1: u8::from(display), p2: 0, data: path.serialize() }
}

const P2_EXTEND: u8 = 0x01;
const P2_MORE: u8 = 0x02;

/// SIGN_MESSAGE / SIGN_OFFCHAIN_MESSAGE: `0x01 ‖ path ‖ message`, 255-byte chunks; P2 `MORE` on
/// every chunk but the last, `EXTEND` on every chunk but the first.
pub fn sol_sign(ins: u8, path: &DerivationPath, message: &[u8]) -> Vec<Apdu> {
    let mut payload = vec![0x01];
    payload.extend_from_slice(&path.serialize());
    payload.extend_from_slice(message);
    let chunks: Vec<&[u8]> = payload.chunks(255).collect();
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut p2 = 0;
            if i + 1 < n {
                p2 |= P2_MORE;
            }
            if i > 0 {
                p2 |= P2_EXTEND;
            }
            Apdu { cla: CLA, ins, p1: 0x01, p2, data: c.to_vec() }
        })
        .collect()
}

/// Reassembles a chunked command's payload (tests compare it with the official clients').
pub fn reassemble(apdus: &[Apdu]) -> Vec<u8> {
    apdus.iter().flat_map(|a| a.data.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_paths_parse_and_serialise() {
        let p = DerivationPath::parse("m/44'/60'/0'/0/0").unwrap();
        assert_eq!(hex::encode(p.serialize()), "058000002c8000003c800000000000000000000000");
        assert_eq!(p.to_text(), "44'/60'/0'/0/0");
        assert_eq!(
            hex::encode(DerivationPath::parse(DEFAULT_SOL_PATH).unwrap().serialize()),
            "048000002c800001f58000000080000000"
        );
        for bad in ["", "44'/x", "44''", "1/2/3/4/5/6/7/8/9/10/11", "2147483648", "44'//0"] {
            assert!(DerivationPath::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn eth_chunks_never_leave_a_remainder_of_3() {
        for len in 1..2000 {
            let c = eth_chunk_size(len);
            assert!(c <= 255 && len % c != 3, "len {len} chunk {c}");
        }
        assert_eq!(eth_chunk_size(255 + 3), 254);
        let path = DerivationPath::parse(DEFAULT_ETH_PATH).unwrap();
        let apdus = eth_sign_transaction(&path, &vec![0xAB; 500]);
        assert_eq!(apdus[0].p1, 0x00);
        assert!(apdus[1..].iter().all(|a| a.p1 == 0x80));
        assert_eq!(reassemble(&apdus).len(), 21 + 500);
    }

    #[test]
    fn solana_chunk_flags() {
        let path = DerivationPath::parse(DEFAULT_SOL_PATH).unwrap();
        let one = sol_sign(sol_ins::SIGN_MESSAGE, &path, &[1; 100]);
        assert_eq!((one.len(), one[0].p2), (1, 0));
        let three = sol_sign(sol_ins::SIGN_MESSAGE, &path, &[1; 600]);
        assert_eq!(three.iter().map(|a| a.p2).collect::<Vec<_>>(), vec![0x02, 0x03, 0x01]);
        assert!(three.iter().all(|a| a.p1 == 0x01 && a.data.len() <= 255));
    }

    #[test]
    fn status_words_map_to_typed_errors() {
        assert_eq!(check_sw(0x6985, App::Ethereum), Err(SignerError::UserRejected));
        assert!(
            matches!(check_sw(0x6E00, App::Solana), Err(SignerError::DeviceUnavailable { reason }) if reason == "open the Solana app")
        );
        assert!(matches!(check_sw(0x5515, App::Ethereum), Err(SignerError::DeviceUnavailable { .. })));
        assert!(matches!(check_sw(0x6808, App::Solana), Err(SignerError::Refused { status_word: 0x6808, .. })));
        assert!(matches!(check_sw(0x6F00, App::Solana), Err(SignerError::Internal(m)) if m.contains("0x6F00")));
        // A 7-byte Solana configuration response is accepted (ACC-085).
        assert_eq!(parse_app_version(App::Solana, &[1, 0, 1, 4, 2, 9, 9]), Some((1, 4, 2)));
        assert_eq!(parse_app_version(App::Solana, &[1, 0, 1, 4]), None);
    }
}
