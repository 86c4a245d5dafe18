//! Progress for the long CLI operations (12-operations.md §6): a spinner with what is happening
//! on a terminal; nothing at all when stdout is not one (scripts, CI, `--json`), so the output a
//! script parses never changes.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A running step; dropped or finished, it clears itself.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A spinner saying `what`, shown only on a TTY (and never with `--json`).
    pub(crate) fn start(what: impl Into<String>, json: bool) -> Progress {
        if json || !std::io::stdout().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress(Some(bar))
    }

    /// Replaces the message (a further step of the same operation).
    pub(crate) fn step(&self, what: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(what.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
