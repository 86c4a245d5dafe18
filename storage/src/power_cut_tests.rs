//! Power cuts on the send path (issue #21): a simulated disk keeps what was synced and what was
//! only written; a cut keeps the synced image plus a random subset of the 512-byte sectors
//! written since the last sync (a disk may have flushed some of them, in any order). The send
//! path's schedule runs against it — request + decision + claim (lazy), signed checkpoint
//! (durable), broadcast + outcome (lazy) — and cuts are taken after each of those commits and in
//! the middle of durable commits, 100 per point, at 1 and 16 concurrent senders. Each image is
//! reopened, start-up recovery runs, and then:
//!
//! - the audit log is a prefix of the uncut run's, and verifies;
//! - rows agree with their audit history (the state is a prefix of the commit sequence);
//! - every transaction whose signed checkpoint had returned before the cut has its signed bytes
//!   (it may have been submitted, so recovery must be able to rebroadcast it);
//! - reservations are held exactly by the active rows;
//! - no row is stuck: nothing PENDING or EXECUTING after recovery.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use redb::StorageBackend;
type BackendIoError = std::io::Error;
use serde_json::{Map, json};
use uuid::Uuid;

use crate::*;

const NOW: u64 = 1_750_000_000;
const SECTOR: usize = 512;

/// xorshift64*: deterministic randomness from a printed seed.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One write or length change since the last sync.
#[derive(Debug, Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

/// The simulated disk: what a reader sees (`volatile`), what survives a cut for sure
/// (`durable`), and the changes in between.
#[derive(Debug)]
struct Disk {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    rng: Rng,
    /// Cut in the middle of durable commits: before applying sync number n, with this chance
    /// in a thousand, take an image.
    mid_commit_permille: u64,
    syncs: u64,
    mid_commit_images: Vec<(Vec<u8>, HashSet<Uuid>)>,
    /// Checkpoints that had returned, shared with the senders (read when an image is taken).
    checkpointed: Arc<Mutex<HashSet<Uuid>>>,
}

impl Disk {
    /// The image a power cut leaves: the durable bytes plus a random subset of the sectors
    /// written since, applied in order.
    fn cut_image(&mut self) -> Vec<u8> {
        let mut img = self.durable.clone();
        for p in self.pending.clone() {
            match p {
                Pending::SetLen(len) => {
                    if self.rng.below(2) == 0 {
                        img.resize(len as usize, 0);
                    }
                }
                Pending::Write(off, data) => {
                    for (i, chunk) in data.chunks(SECTOR).enumerate() {
                        if self.rng.below(2) == 0 {
                            let at = off as usize + i * SECTOR;
                            if img.len() < at + chunk.len() {
                                img.resize(at + chunk.len(), 0);
                            }
                            img[at..at + chunk.len()].copy_from_slice(chunk);
                        }
                    }
                }
            }
        }
        img
    }
}

#[derive(Debug, Clone)]
struct CutBackend(Arc<Mutex<Disk>>);

impl StorageBackend for CutBackend {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.0.lock().unwrap().volatile.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let d = self.0.lock().unwrap();
        let (start, end) = (offset as usize, offset as usize + out.len());
        if end > d.volatile.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&d.volatile[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let mut d = self.0.lock().unwrap();
        d.volatile.resize(len as usize, 0);
        d.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        let mut d = self.0.lock().unwrap();
        d.syncs += 1;
        if d.mid_commit_permille > 0 && d.rng.below(1000) < d.mid_commit_permille {
            let checkpointed = d.checkpointed.lock().unwrap().clone();
            let img = d.cut_image();
            d.mid_commit_images.push((img, checkpointed));
        }
        d.durable = d.volatile.clone();
        d.pending.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut d = self.0.lock().unwrap();
        let end = offset as usize + data.len();
        if d.volatile.len() < end {
            d.volatile.resize(end, 0);
        }
        d.volatile[offset as usize..end].copy_from_slice(data);
        d.pending.push(Pending::Write(offset, data.to_vec()));
        Ok(())
    }
}

/// A disk image on its own, to reopen.
#[derive(Debug)]
struct Image(Mutex<Vec<u8>>);

impl StorageBackend for Image {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.0.lock().unwrap().len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let d = self.0.lock().unwrap();
        let end = offset as usize + out.len();
        if end > d.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&d[offset as usize..end]);
        Ok(())
    }
    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        self.0.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> Result<(), BackendIoError> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut d = self.0.lock().unwrap();
        let end = offset as usize + data.len();
        if d.len() < end {
            d.resize(end, 0);
        }
        d[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

/// The points of the send path a cut is taken after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Point {
    Decided,
    Checkpointed,
    Broadcast,
}

/// An image taken at a cut and what had been promised before it.
struct Cut {
    point: &'static str,
    image: Vec<u8>,
    checkpointed: HashSet<Uuid>,
}

fn instant() -> DecisionOutcome {
    DecisionOutcome::Queue {
        tier: Tier::Instant,
        queue_expires_at: None,
        decision: json!({"tier": "INSTANT"}),
        approval_owner: None,
        audits: Vec::new(),
    }
}

/// Runs `senders` × `per_sender` sends, cutting `per_point` times after each send-path commit
/// and about `per_point` times in the middle of durable commits. Returns the cuts and the
/// uncut run's final audit log.
fn run(senders: usize, per_sender: usize, per_point: usize, seed: u64) -> (Vec<Cut>, Vec<AuditRecord>) {
    let checkpointed = Arc::new(Mutex::new(HashSet::new()));
    // Sends make about 1.3 durable commits each (the checkpoints, and barriers under
    // concurrency): aim at `per_point` mid-commit images.
    let total = (senders * per_sender) as u64;
    let disk = Arc::new(Mutex::new(Disk {
        volatile: Vec::new(),
        durable: Vec::new(),
        pending: Vec::new(),
        rng: Rng(seed | 1),
        mid_commit_permille: 0,
        syncs: 0,
        mid_commit_images: Vec::new(),
        checkpointed: checkpointed.clone(),
    }));
    let store = Arc::new(RedbStore::create_on(CutBackend(disk.clone()), NOW).unwrap());
    let agents: Vec<AgentRecord> = (0..senders)
        .map(|i| {
            let mut a =
                AgentRecord::new(Uuid::now_v7(), format!("cut-{i}"), Chain::Ethereum, Network::Testnet, None, NOW);
            a.public_key = format!("0x{:040x}", i + 1);
            a.chain_id = Some(31337);
            store.insert_agent(&a, &OpCtx::new("test", NOW)).unwrap();
            a
        })
        .collect();
    disk.lock().unwrap().mid_commit_permille = (1000 * per_point as u64 / total).clamp(1, 1000);
    // Which occurrence of each point is cut: `per_point` distinct indexes in `0..total`.
    let mut chosen: HashMap<Point, HashSet<u64>> = HashMap::new();
    {
        let mut rng = Rng(seed.rotate_left(17) | 1);
        for p in [Point::Decided, Point::Checkpointed, Point::Broadcast] {
            let set = chosen.entry(p).or_default();
            while set.len() < per_point.min(total as usize) {
                set.insert(rng.below(total));
            }
        }
    }
    let chosen = Arc::new(chosen);
    let counters: Arc<Mutex<HashMap<Point, u64>>> = Arc::default();
    let cuts: Arc<Mutex<Vec<Cut>>> = Arc::default();
    let take = {
        let (disk, checkpointed, cuts, counters, chosen) =
            (disk.clone(), checkpointed.clone(), cuts.clone(), counters.clone(), chosen.clone());
        move |p: Point| {
            let n = {
                let mut c = counters.lock().unwrap();
                let e = c.entry(p).or_default();
                *e += 1;
                *e - 1
            };
            if chosen[&p].contains(&n) {
                // What was promised first, then the disk: a checkpoint that returned is durable.
                let promised = checkpointed.lock().unwrap().clone();
                let image = disk.lock().unwrap().cut_image();
                let point = match p {
                    Point::Decided => "after request+decision+claim",
                    Point::Checkpointed => "after the signed checkpoint",
                    Point::Broadcast => "after broadcast+outcome",
                };
                cuts.lock().unwrap().push(Cut { point, image, checkpointed: promised });
            }
        }
    };
    let take = Arc::new(take);
    let threads: Vec<_> = agents
        .into_iter()
        .map(|a| {
            let (store, checkpointed, take) = (store.clone(), checkpointed.clone(), take.clone());
            std::thread::spawn(move || {
                for n in 0..per_sender {
                    let to = "0x000000000000000000000000000000000000bEEF";
                    let rec = TransactionRecord::native_transfer(Uuid::now_v7(), &a, None, to, 1 + n as u64, NOW);
                    let ctx = OpCtx::new(format!("agent:{}", a.id), NOW);
                    let id = rec.id;
                    store.record_and_decide(&rec, &[], None, &ctx, true, |_| Ok(instant())).unwrap();
                    take(Point::Decided);
                    let hash = format!("0x{:064x}", id.as_u128());
                    store
                        .checkpoint(id, Checkpoint::signed(format!("0x02{:0128x}", id.as_u128()), hash.clone()), NOW)
                        .unwrap();
                    checkpointed.lock().unwrap().insert(id);
                    take(Point::Checkpointed);
                    let b = Broadcast { hash, uncertain: false, metadata: Map::new() };
                    // Every third send is still unconfirmed when its broadcast is recorded.
                    let outcome = if n % 3 == 0 {
                        ChainOutcome::Pending
                    } else {
                        ChainOutcome::Confirmed { fee: Some(Amount::from_u64(21_000)), block: n as u64 }
                    };
                    store.record_broadcast(id, b, outcome, &ctx).unwrap();
                    take(Point::Broadcast);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    store.sync().unwrap();
    let audit = store.audit_rows(0, usize::MAX).unwrap();
    let mut all = std::mem::take(&mut *cuts.lock().unwrap());
    for (image, checkpointed) in std::mem::take(&mut disk.lock().unwrap().mid_commit_images) {
        all.push(Cut { point: "in the middle of a durable commit", image, checkpointed });
    }
    (all, audit)
}

/// Reopens a cut image, runs start-up recovery and checks every promise; `Err` says which.
fn check(cut: &Cut, full_audit: &[AuditRecord]) -> Result<(), String> {
    let store = RedbStore::open_on(Image(Mutex::new(cut.image.clone()))).map_err(|e| format!("reopen: {e}"))?;
    // The audit log is a prefix of the uncut run's.
    let audit = store.audit_rows(0, usize::MAX).map_err(|e| e.to_string())?;
    if audit.len() > full_audit.len() || audit.iter().zip(full_audit).any(|(a, b)| a != b) {
        return Err(format!("the audit log ({} rows) is not a prefix of the run's", audit.len()));
    }
    let by_tx = |event: AuditEventType| -> HashSet<Uuid> {
        audit.iter().filter(|r| r.event_type == event.as_str()).filter_map(|r| r.tx_id).collect()
    };
    let (requested, submitted, confirmed) =
        (by_tx(AuditEventType::TxRequested), by_tx(AuditEventType::TxSubmitted), by_tx(AuditEventType::TxConfirmed));
    let mut rows = Vec::new();
    for a in store.list_agents().map_err(|e| e.to_string())? {
        rows.extend(store.list_transactions(a.id, None, None, usize::MAX, false).map_err(|e| e.to_string())?.0);
    }
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    if !requested.iter().all(|id| ids.contains(id)) {
        return Err("a requested row vanished while its audit row survived".into());
    }
    // Rows agree with their audit history: one commit wrote both.
    for r in &rows {
        let ok = match r.status {
            TxStatus::Executing => requested.contains(&r.id) && !submitted.contains(&r.id),
            TxStatus::Submitted => submitted.contains(&r.id) && !confirmed.contains(&r.id) && r.signed_tx().is_some(),
            TxStatus::Confirmed => confirmed.contains(&r.id) && r.signed_tx().is_some(),
            other => return Err(format!("{}: unexpected status {other} before recovery", r.id)),
        };
        if !ok {
            return Err(format!("{} is {} but its audit history says otherwise", r.id, r.status));
        }
    }
    // Every promised checkpoint survived.
    for id in &cut.checkpointed {
        let r =
            store.get_transaction(*id).map_err(|e| e.to_string())?.ok_or(format!("{id}: checkpointed, then lost"))?;
        if r.signed_tx().is_none() {
            return Err(format!("{id}: checkpointed, then its signed bytes were lost"));
        }
    }
    store.startup_recovery(NOW + 10).map_err(|e| format!("recovery: {e}"))?;
    if !store.verify_audit().map_err(|e| e.to_string())?.valid {
        return Err("the audit chain does not verify".into());
    }
    for a in store.list_agents().map_err(|e| e.to_string())? {
        for r in store.list_transactions(a.id, None, None, usize::MAX, false).map_err(|e| e.to_string())?.0 {
            match r.status {
                TxStatus::Pending | TxStatus::Executing | TxStatus::Queued => {
                    return Err(format!("{} is stuck in {} after recovery", r.id, r.status));
                }
                TxStatus::Submitted if r.signed_tx().is_none() => {
                    return Err(format!("{} is SUBMITTED without signed bytes", r.id));
                }
                _ => {}
            }
            let holds = r.reserved_amount.is_some();
            if holds == r.status.is_terminal() || r.reserved_amount.is_some_and(|x| x != r.native_amount) {
                return Err(format!("{}: {} holds reservation {:?}", r.id, r.status, r.reserved_amount));
            }
        }
    }
    Ok(())
}

fn prove(senders: usize, per_sender: usize, seed: u64) {
    let (cuts, audit) = run(senders, per_sender, 100, seed);
    let mut by_point: HashMap<&str, usize> = HashMap::new();
    for cut in &cuts {
        *by_point.entry(cut.point).or_default() += 1;
        if let Err(e) = check(cut, &audit) {
            panic!("seed {seed}, {senders} senders, cut {}: {e}", cut.point);
        }
    }
    for p in ["after request+decision+claim", "after the signed checkpoint", "after broadcast+outcome"] {
        assert_eq!(by_point.get(p), Some(&100), "{p}: {by_point:?}");
    }
    assert!(by_point.get("in the middle of a durable commit").is_some_and(|n| *n >= 30), "{by_point:?}");
    eprintln!("power cuts, {senders} senders: {by_point:?}");
}

#[test]
fn a_power_cut_on_the_send_path_loses_only_a_suffix_one_sender() {
    prove(1, 150, 0x5eed_0001);
}

#[test]
fn a_power_cut_on_the_send_path_loses_only_a_suffix_sixteen_senders() {
    prove(16, 12, 0x5eed_0016);
}
