//! The append-only, hash-chained audit log (02-storage.md §7).
//!
//! Every security-relevant state change appends its audit row **inside the same write
//! transaction** as the change, through [`append`]; so either both the change and its record
//! exist, or neither does. Rows are chained: each row's `hash` covers the previous row's hash, its
//! own sequence number and a canonical JSON encoding of its body, so editing, removing or
//! reordering any row breaks verification from that row on. No operation updates or deletes a
//! row.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit_events::AuditEventType;
use crate::codec::{decode, encode};
use crate::enums::AuditSeverity;
use crate::error::StoreError;
use crate::tables::*;

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Gap-free sequence from 1.
    pub seq: u64,
    /// Unix seconds.
    pub timestamp: u64,
    /// UPPER_SNAKE event name.
    pub event_type: String,
    /// `admin`, `owner:<address>`, `agent:<id>`, `system`, `cli`, …
    pub actor: String,
    /// Agent concerned.
    pub agent_id: Option<Uuid>,
    /// Session concerned.
    pub session_id: Option<Uuid>,
    /// Transaction concerned.
    pub tx_id: Option<Uuid>,
    /// Severity.
    pub severity: AuditSeverity,
    /// Client IP, where known.
    pub ip_address: Option<String>,
    /// Event details (no floating-point numbers).
    pub details: Map<String, Value>,
    /// Previous row's hash (64 zeros for seq 1).
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

/// An audit row to append; `seq`, hashes and timestamp are assigned by [`append`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// The event.
    pub event_type: AuditEventType,
    /// Actor string.
    pub actor: String,
    /// Agent concerned.
    pub agent_id: Option<Uuid>,
    /// Session concerned.
    pub session_id: Option<Uuid>,
    /// Transaction concerned.
    pub tx_id: Option<Uuid>,
    /// Severity.
    pub severity: AuditSeverity,
    /// Client IP.
    pub ip_address: Option<String>,
    /// Details object.
    pub details: Map<String, Value>,
}

impl AuditEvent {
    /// An `info` event with no subject and empty details.
    pub fn new(event_type: AuditEventType, actor: impl Into<String>) -> AuditEvent {
        AuditEvent {
            event_type,
            actor: actor.into(),
            agent_id: None,
            session_id: None,
            tx_id: None,
            severity: AuditSeverity::Info,
            ip_address: None,
            details: Map::new(),
        }
    }

    /// Sets the severity.
    pub fn severity(mut self, s: AuditSeverity) -> Self {
        self.severity = s;
        self
    }

    /// Sets the agent.
    pub fn agent(mut self, id: Uuid) -> Self {
        self.agent_id = Some(id);
        self
    }

    /// Sets the session.
    pub fn session(mut self, id: Option<Uuid>) -> Self {
        self.session_id = id;
        self
    }

    /// Sets the transaction.
    pub fn tx(mut self, id: Uuid) -> Self {
        self.tx_id = Some(id);
        self
    }

    /// Sets the client IP.
    pub fn ip(mut self, ip: Option<String>) -> Self {
        self.ip_address = ip;
        self
    }

    /// Adds one detail field.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// The head of the chain, kept in `meta.audit_head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AuditHead {
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

pub(crate) const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HEAD_KEY: &str = "audit_head";

pub(crate) fn read_head<T: ReadableTable<&'static str, &'static [u8]>>(meta: &T) -> Result<AuditHead, StoreError> {
    match meta.get(HEAD_KEY)? {
        Some(v) => decode("meta", v.value()),
        None => Ok(AuditHead { seq: 0, hash: ZERO_HASH.to_string() }),
    }
}

/// Appends `event` at `now` inside the caller's write transaction and returns its `seq`.
///
/// Reads `meta.audit_head` in that same transaction, so concurrent appends serialise on redb's
/// single writer and the sequence stays gap-free. `dev_mode` adds `"dev_mode": true` to the
/// details (01-daemon.md §3.4).
pub(crate) fn append(tx: &WriteTransaction, event: &AuditEvent, now: u64, dev_mode: bool) -> Result<u64, StoreError> {
    let mut meta = tx.open_table(META)?;
    let head = read_head(&meta)?;
    let record = next_record(&head, event, now, dev_mode)?;
    let seq = record.seq;

    tx.open_table(AUDIT_LOG)?.insert(seq, encode("audit_log", &record)?.as_slice())?;
    if let Some(agent) = record.agent_id {
        tx.open_table(IDX_AUDIT_AGENT)?.insert((agent.as_u128(), seq), ())?;
    }
    tx.open_table(IDX_AUDIT_EVENT)?.insert((record.event_type.as_str(), seq), ())?;
    tx.open_table(IDX_AUDIT_TIME)?.insert((now, seq), ())?;
    let head = AuditHead { seq, hash: record.hash };
    meta.insert(HEAD_KEY, encode("meta", &head)?.as_slice())?;
    Ok(seq)
}

/// The row that follows `head` for `event` at `now`, hashed: the one definition of an audit row,
/// shared by every storage engine (each writes it under its own head lock).
pub(crate) fn next_record(
    head: &AuditHead,
    event: &AuditEvent,
    now: u64,
    dev_mode: bool,
) -> Result<AuditRecord, StoreError> {
    let mut details = event.details.clone();
    if dev_mode {
        details.insert("dev_mode".into(), Value::Bool(true));
    }
    let mut record = AuditRecord {
        seq: head.seq + 1,
        timestamp: now,
        event_type: event.event_type.as_str().to_string(),
        actor: event.actor.clone(),
        agent_id: event.agent_id,
        session_id: event.session_id,
        tx_id: event.tx_id,
        severity: event.severity,
        ip_address: event.ip_address.clone(),
        details,
        prev_hash: head.hash.clone(),
        hash: String::new(),
    };
    record.hash = compute_hash(&record)?;
    Ok(record)
}

/// `SHA-256(prev_hash(32) ‖ seq u64 BE ‖ canonical_json(body))`.
pub fn compute_hash(record: &AuditRecord) -> Result<String, StoreError> {
    let mut prev = [0u8; 32];
    hex::decode_to_slice(&record.prev_hash, &mut prev)
        .map_err(|_| StoreError::Invariant("audit prev_hash is not 64 hex characters"))?;
    let body = serde_json::json!({
        "seq": record.seq,
        "timestamp": record.timestamp,
        "event_type": record.event_type,
        "actor": record.actor,
        "agent_id": record.agent_id,
        "session_id": record.session_id,
        "tx_id": record.tx_id,
        "severity": record.severity,
        "ip_address": record.ip_address,
        "details": record.details,
    });
    let mut canonical = String::new();
    canonical_json(&body, &mut canonical)?;
    let mut h = Sha256::new();
    h.update(prev);
    h.update(record.seq.to_be_bytes());
    h.update(canonical.as_bytes());
    Ok(hex::encode(h.finalize()))
}

/// Canonical JSON (§7): keys sorted by byte order at every level, no whitespace, integers only,
/// strings with serde_json's escaping. Sorting is explicit so the result does not depend on
/// whether some dependency enabled serde_json's `preserve_order`.
pub fn canonical_json(value: &Value, out: &mut String) -> Result<(), StoreError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(StoreError::Invariant("audit details must not contain floating-point numbers"));
            }
            out.push_str(&n.to_string());
        }
        Value::String(s) => out.push_str(&serde_json::to_string(s).expect("strings serialise")),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("strings serialise"));
                out.push(':');
                canonical_json(&map[k], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    /// Whether every row verified.
    pub valid: bool,
    /// Rows checked (up to and including the first invalid one).
    pub checked_entries: u64,
    /// Sequence of the head.
    pub head_seq: u64,
    /// Hash of the head.
    pub head_hash: String,
    /// First row that failed.
    pub first_invalid_seq: Option<u64>,
}

/// Walks seq 1..=head recomputing each hash and checking each link (§7).
pub(crate) fn verify<T, M>(log: &T, meta: &M) -> Result<AuditVerification, StoreError>
where
    T: ReadableTable<u64, &'static [u8]> + ReadableTableMetadata,
    M: ReadableTable<&'static str, &'static [u8]>,
{
    let mut v = Verifier::new(read_head(meta)?);
    for entry in log.iter()? {
        let (k, bytes) = entry?;
        if let Some(broken) = v.row(k.value(), bytes.value()) {
            return Ok(broken);
        }
    }
    Ok(v.finish())
}

/// Walks the chain row by row in `seq` order, on any engine: each row must follow the previous
/// one without a gap, link to its hash and hash to its own; the head must name the last row.
pub(crate) struct Verifier {
    head: AuditHead,
    prev_hash: String,
    checked: u64,
    expected_seq: u64,
}

impl Verifier {
    pub(crate) fn new(head: AuditHead) -> Verifier {
        Verifier { head, prev_hash: ZERO_HASH.to_string(), checked: 0, expected_seq: 1 }
    }

    fn fail(&self, seq: u64) -> AuditVerification {
        AuditVerification {
            valid: false,
            checked_entries: self.checked,
            head_seq: self.head.seq,
            head_hash: self.head.hash.clone(),
            first_invalid_seq: Some(seq),
        }
    }

    /// The next row as stored; `Some` is the verdict when the chain breaks here.
    pub(crate) fn row(&mut self, key: u64, bytes: &[u8]) -> Option<AuditVerification> {
        self.checked += 1;
        if key != self.expected_seq {
            return Some(self.fail(self.expected_seq));
        }
        match decode::<AuditRecord>("audit_log", bytes) {
            Ok(rec)
                if rec.seq == key
                    && rec.prev_hash == self.prev_hash
                    && compute_hash(&rec).ok().as_ref() == Some(&rec.hash) =>
            {
                self.prev_hash = rec.hash;
                self.expected_seq += 1;
                None
            }
            _ => Some(self.fail(key)),
        }
    }

    /// The verdict after the last row: a truncated tail is a break too.
    pub(crate) fn finish(self) -> AuditVerification {
        if self.expected_seq - 1 != self.head.seq || self.prev_hash != self.head.hash {
            return self.fail(self.expected_seq.min(self.head.seq.max(1)));
        }
        AuditVerification {
            valid: true,
            checked_entries: self.checked,
            head_seq: self.head.seq,
            head_hash: self.head.hash,
            first_invalid_seq: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_rejects_floats() {
        let mut out = String::new();
        canonical_json(&json!({"b": 1, "a": {"z": [true, null, "x\"y"], "c": -5}}), &mut out).unwrap();
        assert_eq!(out, r#"{"a":{"c":-5,"z":[true,null,"x\"y"]},"b":1}"#);
        let mut out = String::new();
        assert!(matches!(canonical_json(&json!({"usd": 1.5}), &mut out), Err(StoreError::Invariant(_))));
    }

    #[test]
    fn hash_matches_the_documented_construction() {
        let rec = AuditRecord {
            seq: 1,
            timestamp: 1_700_000_000,
            event_type: "DAEMON_STARTED".into(),
            actor: "system".into(),
            agent_id: None,
            session_id: None,
            tx_id: None,
            severity: AuditSeverity::Info,
            ip_address: None,
            details: json!({"port": 3100}).as_object().unwrap().clone(),
            prev_hash: ZERO_HASH.into(),
            hash: String::new(),
        };
        let body = r#"{"actor":"system","agent_id":null,"details":{"port":3100},"event_type":"DAEMON_STARTED","ip_address":null,"seq":1,"session_id":null,"severity":"info","timestamp":1700000000,"tx_id":null}"#;
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(1u64.to_be_bytes());
        h.update(body.as_bytes());
        assert_eq!(compute_hash(&rec).unwrap(), hex::encode(h.finalize()));
    }
}
