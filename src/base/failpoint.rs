//! Crash failpoints for the process crash matrix (issue #21). `WAIAAS_FAILPOINT=<point>[:<n>]`
//! makes the daemon kill itself with SIGKILL — no destructors, no flush, exactly what `kill -9`
//! does — the `n`-th time (default: the first) any task passes `<point>`. The tests choose the
//! point and `n`, so a crash can land between any two steps of the send path without racing a
//! signal against the step.
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
    const ALL: [(Point, &'static str); 7] = [
        (Point::Decided, "after_decide"),
        (Point::Signed, "after_sign"),
        (Point::Checkpointed, "after_checkpoint"),
        (Point::Submitted, "after_submit"),
        (Point::OutcomeRecorded, "after_outcome"),
        (Point::Approved, "after_approve"),
        (Point::KillSwitchActivated, "after_kill_switch"),
    ];
}

struct Armed {
    point: Point,
    /// Passes left before the crash.
    left: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("WAIAAS_FAILPOINT").ok()?;
            let (name, n) = match spec.split_once(':') {
                Some((name, n)) => (name, n.parse().ok()?),
                None => (spec.as_str(), 1u64),
            };
            let Some((point, _)) = Point::ALL.iter().find(|(_, s)| *s == name) else {
                tracing::warn!("WAIAAS_FAILPOINT={spec}: no such failpoint; ignored");
                return None;
            };
            tracing::warn!("WAIAAS_FAILPOINT armed: SIGKILL at pass {n} of {name}");
            Some(Armed { point: *point, left: AtomicU64::new(n.max(1)) })
        })
        .as_ref()
}

/// Passes `point`: the armed pass kills the process.
pub(crate) fn pass(point: Point) {
    let Some(a) = armed() else { return };
    if a.point == point && a.left.fetch_sub(1, Ordering::SeqCst) == 1 {
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; this line is never reached.
        std::process::abort();
    }
}
