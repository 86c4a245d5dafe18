//! Crash failpoints for the process crash matrix (issue #21) and the HA tests (13-postgres-ha.md
//! §9). `WAIAAS_FAILPOINT=<point>[:<n>[:pause]]` makes the daemon kill itself with SIGKILL — no
//! destructors, no flush, exactly what `kill -9` does — the `n`-th time (default: the first) any
//! task passes `<point>`; with `pause` it stops itself with SIGSTOP instead, and carries on from
//! that very step when the test sends SIGCONT (the fencing test pauses a leader that way while
//! another replica takes over). The tests choose the point and `n`, so a crash can land between
//! any two steps of the send path without racing a signal against the step.
//!
//! Unset (every real deployment), a pass is one load of an initialised `OnceLock`. The variable
//! is read once, at the first pass; an unknown point name is ignored with a warning, so a typo
//! never kills a daemon.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The places a crash is injected, in send-path order; each is named for the step just done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// The request, the decision and the claim are committed (non-durably).
    Decided,
    /// The transaction is signed; nothing about the signature is stored yet.
    Signed,
    /// The signed checkpoint is durable; nothing was sent.
    Checkpointed,
    /// The node accepted the bytes; the broadcast is not recorded.
    Submitted,
    /// The outcome (broadcast + status) is committed but not yet durable.
    OutcomeRecorded,
    /// An owner's approval is committed; the execution has not started.
    Approved,
    /// The kill switch's activation and its cascade are committed; keys not yet locked.
    KillSwitchActivated,
}

impl Point {
    /// Names; 13-postgres-ha.md §9 calls two of them differently, and both spellings work.
    const ALL: [(Point, &'static str); 9] = [
        (Point::Decided, "after_decide"),
        (Point::Signed, "after_sign"),
        (Point::Checkpointed, "after_checkpoint"),
        (Point::Checkpointed, "after_checkpoint_signed"),
        (Point::Submitted, "after_submit"),
        (Point::Submitted, "after_broadcast"),
        (Point::OutcomeRecorded, "after_outcome"),
        (Point::Approved, "after_approve"),
        (Point::KillSwitchActivated, "after_kill_switch"),
    ];
}

struct Armed {
    point: Point,
    /// Passes left before the crash.
    left: AtomicU64,
    /// SIGSTOP instead of SIGKILL.
    pause: bool,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("WAIAAS_FAILPOINT").ok()?;
            let mut parts = spec.split(':');
            let name = parts.next()?;
            let n = match parts.next() {
                Some(n) => n.parse().ok()?,
                None => 1u64,
            };
            let pause = match parts.next() {
                None => false,
                Some("pause") => true,
                Some(other) => {
                    tracing::warn!("WAIAAS_FAILPOINT={spec}: unknown action {other:?}; ignored");
                    return None;
                }
            };
            let Some((point, _)) = Point::ALL.iter().find(|(_, s)| *s == name) else {
                tracing::warn!("WAIAAS_FAILPOINT={spec}: no such failpoint; ignored");
                return None;
            };
            let action = if pause { "SIGSTOP" } else { "SIGKILL" };
            tracing::warn!("WAIAAS_FAILPOINT armed: {action} at pass {n} of {name}");
            Some(Armed { point: *point, left: AtomicU64::new(n.max(1)), pause })
        })
        .as_ref()
}

/// Passes `point`: the armed pass kills (or stops) the process.
pub(crate) fn pass(point: Point) {
    let Some(a) = armed() else { return };
    if a.point == point && a.left.fetch_sub(1, Ordering::SeqCst) == 1 {
        if a.pause {
            // Every thread stops here; SIGCONT resumes this one just after the step.
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
            return;
        }
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; this line is never reached.
        std::process::abort();
    }
}
