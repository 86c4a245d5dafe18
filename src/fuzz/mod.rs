//! Fuzz targets (docs/fuzzing.md): one function per parser that faces the outside. Each takes
//! arbitrary bytes, runs them through the same code the daemon runs, and panics when an invariant
//! that must hold for *any* input breaks — a round trip that does not come back, a canonical form
//! that is not a fixed point, a panic inside the parser itself.
//!
//! Two drivers call [`run`]:
//! - `fuzz/` (libFuzzer, coverage-guided, built by `scripts/fuzz.sh` on the stable toolchain) for
//!   the millions of executions;
//! - the unit test below, on every run of the test command: the seeds of [`seeds`] (made from the
//!   committed fixtures), the committed regression inputs of `fuzz/regressions/<target>/`, and a
//!   few thousand deterministic mutations of them, so a parser that starts to panic on an input
//!   near a seed fails CI.
//!
//! This is the top layer, beside `cli`: it may call any module below, and nothing calls it.

use std::path::Path;
use std::str::FromStr;

use serde_json::{Value, json};
use waiaas_backends::keystore::import::ImportSource;
use waiaas_backends::keystore::keyfile::KeyFile;
use waiaas_backends::keystore::master::MasterFile;
use waiaas_backends::ledger::apps::{self, App};
use waiaas_backends::ledger::transport::{Apdu, HidReassembler, hid_frames, split_sw};
use waiaas_storage::{AgentRecord, Amount, Chain, JwtSecrets, Network, TransactionRecord, TxType};

use crate::domain::auth::jwt::{JwtKeys, OWNER_PREFIX, PREFIX};
use crate::domain::auth::owner::{self, Payload};
use crate::domain::auth::siwe::{SiweMessage, parse_time};
use crate::domain::pipeline::request;
use crate::rules::summary::{Summary, approval_summary};
use crate::runtime::config;

/// A fuzz target: bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name, as `scripts/fuzz.sh` and `fuzz/main.rs` select them.
pub const TARGETS: &[(&str, Target)] = &[
    ("siwe", siwe),
    ("owner_payload", owner_payload),
    ("owner_verify", owner_verify),
    ("send_body", send_body),
    ("config_toml", config_toml),
    ("jwt", jwt),
    ("keystore", keystore),
    ("master_json", master_json),
    ("apdu_ethereum", apdu_ethereum),
    ("apdu_solana", apdu_solana),
    ("approval_summary", approval_summary_round_trip),
];

/// The daemon time the time-bound targets check against: the fixtures' `Issued At`.
const NOW: u64 = 1_796_644_800; // 2026-12-07T12:00:00Z

/// The SIWE/SIWS parser: whatever parses prints back byte for byte, and parses again to itself.
pub fn siwe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(m) = SiweMessage::from_str(text) else { return };
    let printed = m.to_string();
    assert_eq!(printed, text, "render(parse(s)) != s");
    assert_eq!(SiweMessage::from_str(&printed).as_ref(), Ok(&m), "parse(render(m)) != m");
    for t in [Some(&m.issued_at), m.expiration_time.as_ref(), m.not_before.as_ref()].into_iter().flatten() {
        let _ = parse_time(t);
    }
}

/// The owner payload as it arrives in `Authorization: Bearer` (base64url JSON): a payload that
/// decodes encodes back to one that decodes to the same fields.
pub fn owner_payload(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let _ = owner::bearer(Some(raw));
    let Ok(p) = owner::decode(raw) else { return };
    let again = owner::decode(&p.encode()).expect("an encoded payload decodes");
    assert_eq!(again, p);
}

/// The owner signature verifier, steps 2, 3, 5 and 6 of 04-auth.md §7.3 (step 4, the nonce, is
/// a store lookup): the input is the payload's JSON, so mutations reach the message and the
/// signature rather than the base64 layer.
pub fn owner_verify(data: &[u8]) {
    let Ok(p) = serde_json::from_slice::<Payload>(data) else { return };
    let Ok(p) = owner::decode(&p.encode()) else { return };
    let chain = Chain::from_str(&p.chain).expect("decode checked the chain");
    // Step 3 against a clock that agrees with the payload, so step 5 is reached.
    let Some(ts) = parse_time(&p.timestamp) else { return };
    let now = u64::try_from(ts).unwrap_or(0);
    let domains = [("127.0.0.1:3100".to_string(), "http://127.0.0.1:3100".to_string())];
    let checked = owner::check_message(&domains, &p, chain, now);
    if let Ok(msg) = &checked {
        assert_eq!(msg.to_string(), p.message, "a checked message is the text that was signed");
        assert_eq!(msg.nonce, p.nonce);
    }
    match chain {
        Chain::Ethereum => {
            // `v` may be written 0/1 or 27/28 (§7.4): both spellings of one parity recover the
            // same signer.
            if let Ok((_, sig)) = owner::evm_parts(&p)
                && let Some(signer) = owner::recover_eoa(&sig, &p.message)
            {
                let mut other = sig.clone();
                other[64] = match sig[64] {
                    v @ (0 | 1) => v + 27,
                    v => v - 27,
                };
                assert_eq!(owner::recover_eoa(&other, &p.message), Some(signer), "v {} and {}", sig[64], other[64]);
            }
        }
        Chain::Solana => {
            let _ = owner::verify_solana(&p);
        }
    }
}

fn fuzz_agent(chain: Chain) -> AgentRecord {
    let (network, chain_id, key) = match chain {
        Chain::Ethereum => (Network::Testnet, Some(31337), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
        Chain::Solana => (Network::Devnet, None, "Gymcte79ALGtFrWybRxqb7M7uRjnbjgaHjGgQf1v4qB8"),
    };
    let mut a = AgentRecord::new(uuid::Uuid::nil(), "fuzz".into(), chain, network, chain_id, NOW);
    a.public_key = key.into();
    a
}

/// The send body (`POST /v1/transactions/send`) for an EVM and a Solana agent: an accepted body's
/// canonical request is a fixed point (it validates again to itself and the same hash), which is
/// what stage 5 relies on when it rebuilds a queued row.
pub fn send_body(data: &[u8]) {
    for chain in [Chain::Ethereum, Chain::Solana] {
        let agent = fuzz_agent(chain);
        let Ok(v) = request::validate(data, &agent) else { continue };
        let bytes = serde_json::to_vec(&v.canonical).expect("JSON");
        let again = request::validate(&bytes, &agent).expect("a canonical request validates");
        assert_eq!(again.canonical, v.canonical, "the canonical request is not a fixed point");
        assert_eq!(again.request_hash, v.request_hash);
        assert_eq!(again.kind, v.kind);
        request::rebuild(&v.canonical, &agent).expect("a canonical request rebuilds");
    }
}

/// `config.toml` loading, with no environment and no flags: an error, or a configuration.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = Path::new("/nonexistent/waiaas-fuzz");
    let _ = config::load_from(dir, &dir.join("config.toml"), Some(text), &config::Overrides::default(), &[]);
}

/// The fixed keys of the `jwt` target: a current and a previous secret, rotated 100 s before
/// [`NOW`], so both verification paths run.
fn fuzz_keys() -> JwtKeys {
    JwtKeys::from_secrets(&JwtSecrets {
        current: "11".repeat(32),
        previous: Some("22".repeat(32)),
        rotated_at: Some(NOW - 100),
    })
    .expect("hex secrets")
}

/// Session and owner-console tokens: whatever verifies is unexpired and carries the issuer.
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let keys = fuzz_keys();
    if let Ok(c) = keys.verify(token, NOW) {
        assert!(c.exp > NOW && c.iss == "waiaas", "an expired or foreign session token verified");
    }
    if let Ok(c) = keys.verify_owner(token, NOW) {
        assert!(c.exp > NOW, "an expired owner token verified");
    }
}

/// A key file (and the import formats it shares a parser with): a file that parses writes back
/// to JSON that parses to the same file.
pub fn keystore(data: &[u8]) {
    if let Ok(f) = KeyFile::from_json(data) {
        let again = KeyFile::from_json(&serde_json::to_vec(&f).expect("JSON")).expect("a parsed key file reparses");
        assert_eq!(again, f);
        let _ = f.chain_kind();
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data)
        && let Ok(source) = ImportSource::detect(&value)
    {
        let _ = source.chain();
    }
}

/// `master.json`: same round trip.
pub fn master_json(data: &[u8]) {
    if let Ok(f) = MasterFile::from_json(data) {
        let again = MasterFile::from_json(&serde_json::to_vec(&f).expect("JSON")).expect("a parsed file reparses");
        assert_eq!(again, f);
    }
}

/// What a device answers, fed as USB HID packets, then through every response parser of `app`.
fn apdu(app: App, data: &[u8]) {
    // The wire form of a command (the fake device's side) round-trips.
    if let Some(cmd) = Apdu::from_bytes(data) {
        assert_eq!(cmd.to_bytes(), data);
        let frames = hid_frames(data);
        let mut r = HidReassembler::default();
        let whole = frames.iter().find_map(|f| r.push(f).expect("our own frames")).expect("complete");
        assert_eq!(whole, data);
    }
    let mut r = HidReassembler::default();
    let mut raw = None;
    for packet in data.chunks(64) {
        match r.push(packet) {
            Ok(Some(done)) => {
                raw = Some(done);
                break;
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
    let Some(raw) = raw else { return };
    let Ok(resp) = split_sw(raw) else { return };
    let _ = apps::check_sw(resp.sw, app);
    let _ = apps::parse_app_version(app, &resp.data);
    match app {
        App::Ethereum => {
            let _ = apps::eth_parse_public_key(&resp.data);
            let expected: alloy::primitives::Address =
                "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().expect("address");
            let hash = alloy::primitives::keccak256(b"fuzz");
            if let Ok(sig) = apps::eth_parse_signature(&resp.data, &hash, expected) {
                assert_eq!(sig.recover_address_from_prehash(&hash).ok(), Some(expected));
            }
        }
        // The Solana app's public key and signature are taken by length alone (32, 64 bytes).
        App::Solana => {}
    }
}

/// Ledger Ethereum app responses.
pub fn apdu_ethereum(data: &[u8]) {
    apdu(App::Ethereum, data)
}

/// Ledger Solana app responses.
pub fn apdu_solana(data: &[u8]) {
    apdu(App::Solana, data)
}

/// Reads fuzz bytes as the fields of a row.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn text(&mut self) -> String {
        let n = self.byte() as usize % 64;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }

    fn amount(&mut self) -> Amount {
        let n = self.byte() as usize % 33;
        let digits: String = self.take(n).iter().map(|b| char::from(b'0' + b % 10)).collect();
        Amount::parse(if digits.is_empty() { "0" } else { &digits }).unwrap_or(Amount::ZERO)
    }

    fn opt(&mut self) -> Option<String> {
        (self.byte() & 1 == 1).then(|| self.text())
    }
}

/// The approval summary: for any row, the summary text parses back to the fields it was made
/// from, uses only what an EIP-4361 statement allows, and survives a SIWE message round trip.
pub fn approval_summary_round_trip(data: &[u8]) {
    let mut b = Bytes(data);
    let chain = if b.byte() & 1 == 0 { Chain::Ethereum } else { Chain::Solana };
    let kind = TxType::ALL[b.byte() as usize % TxType::ALL.len()];
    let mut agent = fuzz_agent(chain);
    agent.network = Network::ALL[b.byte() as usize % Network::ALL.len()];
    let mut req = serde_json::Map::new();
    if b.byte() & 1 == 1 {
        req.insert("token".into(), json!({"decimals": b.byte()}));
    }
    if b.byte() & 1 == 1 {
        req.insert("calldata".into(), json!(b.text()));
    }
    if b.byte() & 1 == 1 {
        req.insert("instructions".into(), Value::Array(vec![json!({}); b.byte() as usize % 25]));
    }
    let mut row = TransactionRecord::pending(uuid::Uuid::nil(), &agent, None, kind, Value::Object(req), NOW);
    row.amount = b.amount();
    row.native_amount = b.amount();
    row.to_address = b.opt();
    row.token_mint = b.opt();
    row.contract_address = b.opt();
    row.spender_address = b.opt();
    let native = b.text();

    let fields = Summary::of(&row, &native);
    let text = approval_summary(&row, &native);
    assert_eq!(Summary::parse(&text).as_ref(), Some(&fields), "the summary {text:?} does not parse back");
    // Inside an approve_tx message, as the daemon builds it.
    let msg = format!(
        "127.0.0.1:3100 wants you to sign in with your Ethereum account:\n\
         0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n\n\
         WAIaaS Owner Action: approve_tx tx:{} ({text})\n\n\
         URI: http://127.0.0.1:3100\nVersion: 1\nChain ID: 31337\nNonce: 0123456789abcdef0123456789abcdef\n\
         Issued At: 2026-12-07T12:00:00Z\nExpiration Time: 2026-12-07T12:05:00Z\nRequest ID: tx:{}",
        row.id, row.id
    );
    let parsed = SiweMessage::from_str(&msg).unwrap_or_else(|e| panic!("summary {text:?} breaks the message: {e}"));
    assert_eq!(parsed.to_string(), msg);
}

/// Seed inputs of `target`, made from the committed fixtures and from what the daemon itself
/// writes (a fresh `config.toml`, tokens it issues, bodies the docs show).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let owner: Vec<Value> = serde_json::from_str(include_str!("../../fixtures/owner/vectors.json")).expect("fixture");
    let keystore: Value = serde_json::from_str(include_str!("../../fixtures/keystore/vectors.json")).expect("fixture");
    let golden: Value = serde_json::from_str(include_str!("../../fixtures/ledger/golden.json")).expect("fixture");
    let payload = |v: &Value| {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let message = text("message");
        let line = |k: &str| message.lines().find_map(|l| l.strip_prefix(k).map(str::to_string)).unwrap_or_default();
        Payload {
            chain: text("chain"),
            address: text("address"),
            action: text("action"),
            nonce: line("Nonce: "),
            timestamp: line("Issued At: "),
            message: text("message"),
            signature: text("signature"),
        }
    };
    let json_of = |p: &Payload| {
        serde_json::to_vec(&json!({
            "chain": p.chain, "address": p.address, "action": p.action, "nonce": p.nonce,
            "timestamp": p.timestamp, "message": p.message, "signature": p.signature,
        }))
        .expect("JSON")
    };
    match target {
        "siwe" => owner.iter().filter_map(|v| v["message"].as_str()).map(|m| m.as_bytes().to_vec()).collect(),
        "owner_payload" => owner.iter().map(|v| payload(v).encode().into_bytes()).collect(),
        "owner_verify" => owner.iter().map(|v| json_of(&payload(v))).collect(),
        "send_body" => [
            json!({"type": "TRANSFER", "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "amount": "1000"}),
            json!({"to": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "amount": "5", "memo": "hi", "priority": "high"}),
            json!({"type": "TOKEN_TRANSFER", "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "amount": "25",
                   "token": {"mint": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "decimals": 6}}),
            json!({"type": "CONTRACT_CALL", "contractAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                   "calldata": "0xa9059cbb", "value": "0"}),
            json!({"type": "CONTRACT_CALL", "contractAddress": "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr",
                   "instructionData": "aGk=", "accounts": [
                       {"pubkey": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "isSigner": false, "isWritable": true}]}),
            json!({"type": "APPROVE", "spender": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "amount": "100",
                   "token": {"mint": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "decimals": 6}}),
            json!({"type": "BATCH", "instructions": [
                {"type": "TRANSFER", "to": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "amount": "1"},
                {"type": "TOKEN_TRANSFER", "to": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "amount": "2",
                 "token": {"mint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "decimals": 6}}]}),
        ]
        .iter()
        .map(|v| serde_json::to_vec(v).expect("JSON"))
        .collect(),
        "config_toml" => vec![
            crate::runtime::config::schema::commented_config(&"ab".repeat(32)).into_bytes(),
            b"[daemon]\nport = 3100\nmax_connections = 4096\n[security]\nsession_ttl = 3600\n".to_vec(),
        ],
        "jwt" => {
            let keys = fuzz_keys();
            let (owner_token, _) = keys.issue_owner("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "ethereum", NOW);
            vec![
                keys.issue(uuid::Uuid::nil(), uuid::Uuid::max(), NOW, NOW + 3600).into_bytes(),
                owner_token.into_bytes(),
                format!("{PREFIX}a.b.c").into_bytes(),
                format!("{OWNER_PREFIX}a.b.c").into_bytes(),
            ]
        }
        "keystore" => {
            let mut out: Vec<Vec<u8>> = keystore["files"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| serde_json::to_vec(&f["file"]).expect("JSON"))
                .collect();
            out.push(serde_json::to_vec(&vec![7u8; 64]).expect("JSON"));
            out.push(br#"{"version":3,"crypto":{"cipher":"aes-128-ctr"}}"#.to_vec());
            out
        }
        "master_json" => vec![serde_json::to_vec(&keystore["master"]).expect("JSON")],
        "apdu_ethereum" | "apdu_solana" => {
            // Each golden response (data ‖ status word) as the HID packets a device sends.
            let mut out = Vec::new();
            collect_hex(&golden, &mut |bytes| {
                out.push(hid_frames(&bytes).concat());
                out.push(bytes);
            });
            out
        }
        "approval_summary" => (0u8..16).map(|i| (0..200).map(|j| i.wrapping_mul(31).wrapping_add(j)).collect()).collect(),
        _ => Vec::new(),
    }
}

/// Every hex string (with or without `0x`) anywhere in `v`.
fn collect_hex(v: &Value, f: &mut dyn FnMut(Vec<u8>)) {
    match v {
        Value::String(s) => {
            let h = s.strip_prefix("0x").unwrap_or(s);
            if h.len() >= 4
                && h.len() % 2 == 0
                && let Ok(bytes) = hex::decode(h)
            {
                f(bytes)
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_hex(i, f)),
        Value::Object(m) => m.values().for_each(|i| collect_hex(i, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small mutator for the test command's short run (libFuzzer does the real work), seeded
    /// so a failure's input comes back on the next run.
    struct Mutator(rand::rngs::StdRng);

    impl Mutator {
        fn new(seed: u64) -> Mutator {
            Mutator(rand::SeedableRng::seed_from_u64(seed))
        }

        fn next(&mut self) -> u64 {
            rand::RngCore::next_u64(&mut self.0)
        }

        fn below(&mut self, n: usize) -> usize {
            if n == 0 { 0 } else { rand::Rng::gen_range(&mut self.0, 0..n) }
        }

        /// One to four edits of `input`, sometimes spliced with `other`.
        fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
            const TOKENS: &[&[u8]] = &[
                b"\"",
                b"{",
                b"}",
                b"[",
                b"]",
                b"\n",
                b":",
                b",",
                b"0",
                b"-1",
                b"99999999999999999999999",
                b"\xff",
                b" ",
                b"\\u0000",
                b"null",
                b"0x",
                b"=",
            ];
            let mut out = input.to_vec();
            for _ in 0..1 + self.below(4) {
                let at = self.below(out.len() + 1);
                match self.below(7) {
                    0 if !out.is_empty() => {
                        let i = self.below(out.len());
                        out[i] ^= 1 << self.below(8);
                    }
                    1 if !out.is_empty() => {
                        let i = self.below(out.len());
                        out[i] = self.next() as u8;
                    }
                    2 => out.insert(at, self.next() as u8),
                    3 if !out.is_empty() => {
                        let end = (at + 1 + self.below(16)).min(out.len());
                        out.drain(at.min(end)..end);
                    }
                    4 => {
                        let t = TOKENS[self.below(TOKENS.len())];
                        out.splice(at..at, t.iter().copied());
                    }
                    5 if !out.is_empty() => {
                        let start = self.below(out.len());
                        let end = (start + 1 + self.below(32)).min(out.len());
                        let piece = out[start..end].to_vec();
                        out.splice(at..at, piece);
                    }
                    _ if !other.is_empty() => {
                        let cut = self.below(other.len());
                        out.truncate(at);
                        out.extend_from_slice(&other[cut..]);
                    }
                    _ => {}
                }
            }
            out
        }
    }

    /// Committed regression inputs of `target` (`fuzz/regressions/<target>/`).
    fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.path().display().to_string(), std::fs::read(e.path()).expect("readable")))
            .collect();
        out.sort();
        out
    }

    /// Every target, on its seeds, its regression inputs and 1,500 mutations of them. A panic
    /// names the target and the input (hex), which `scripts/fuzz.sh --replay` reproduces.
    #[test]
    fn every_fuzz_target_survives_its_corpus_and_mutations_of_it() {
        let mut executed = 0;
        for (name, target) in TARGETS {
            let mut inputs = seeds(name);
            assert!(!inputs.is_empty(), "{name} has no seeds");
            for (path, bytes) in regressions(name) {
                assert!(!bytes.is_empty() || path.ends_with("empty"), "{path}");
                inputs.push(bytes);
            }
            let mut m = Mutator::new(0x5eed ^ name.len() as u64);
            let mut all = inputs.clone();
            for i in 0..1_500 {
                let a = &inputs[i % inputs.len()];
                let b = &inputs[m.below(inputs.len())];
                all.push(m.mutate(a, b));
            }
            for input in &all {
                let outcome = std::panic::catch_unwind(|| target(input));
                assert!(outcome.is_ok(), "target {name} panicked on input {}", hex::encode(input));
                executed += 1;
            }
        }
        assert!(executed >= TARGETS.len() * 1_500);
    }

    /// The seeds reach the deep end of their targets (a seed that no longer parses would leave a
    /// target fuzzing only its error paths).
    #[test]
    fn the_seeds_are_accepted_inputs() {
        for s in seeds("siwe") {
            SiweMessage::from_str(std::str::from_utf8(&s).unwrap()).unwrap();
        }
        for s in seeds("owner_payload") {
            owner::decode(std::str::from_utf8(&s).unwrap()).unwrap();
        }
        // The loopback vectors pass step 5, and their signatures verify (EIP-191 or Ed25519).
        let mut verified = 0;
        for s in seeds("owner_verify") {
            let p: Payload = serde_json::from_slice(&s).unwrap();
            if !p.message.starts_with("127.0.0.1:3100 ") {
                continue;
            }
            let chain = Chain::from_str(&p.chain).unwrap();
            let now = parse_time(&p.timestamp).unwrap() as u64;
            let domains = [("127.0.0.1:3100".to_string(), "http://127.0.0.1:3100".to_string())];
            owner::check_message(&domains, &p, chain, now).unwrap();
            match chain {
                Chain::Ethereum => {
                    let (address, sig) = owner::evm_parts(&p).unwrap();
                    assert_eq!(owner::recover_eoa(&sig, &p.message), Some(address));
                }
                Chain::Solana => owner::verify_solana(&p).unwrap(),
            }
            verified += 1;
        }
        assert!(verified >= 8, "{verified}");
        let agents = [fuzz_agent(Chain::Ethereum), fuzz_agent(Chain::Solana)];
        for s in seeds("send_body") {
            let why: Vec<String> =
                agents.iter().filter_map(|a| request::validate(&s, a).err()).map(|e| e.message).collect();
            assert!(why.len() < 2, "{}: {why:?}", String::from_utf8_lossy(&s));
        }
        let dir = Path::new("/nonexistent");
        for s in seeds("config_toml") {
            let text = String::from_utf8(s).unwrap();
            config::load_from(dir, &dir.join("config.toml"), Some(&text), &config::Overrides::default(), &[]).unwrap();
        }
        let keys = fuzz_keys();
        let jwt = seeds("jwt");
        keys.verify(std::str::from_utf8(&jwt[0]).unwrap(), NOW).unwrap();
        keys.verify_owner(std::str::from_utf8(&jwt[1]).unwrap(), NOW).unwrap();
        for s in &seeds("keystore")[..2] {
            KeyFile::from_json(s).unwrap();
        }
        MasterFile::from_json(&seeds("master_json")[0]).unwrap();
        // The golden responses reassemble from their HID packets and carry a status word.
        let apdus = seeds("apdu_ethereum");
        let mut reassembled = 0;
        for pair in apdus.chunks(2) {
            let mut r = HidReassembler::default();
            if let Some(Ok(Some(raw))) = pair[0].chunks(64).map(|p| r.push(p)).find(|x| !matches!(x, Ok(None))) {
                assert_eq!(raw, pair[1]);
                reassembled += 1;
            }
        }
        assert!(reassembled >= 8, "{reassembled}");
    }
}
