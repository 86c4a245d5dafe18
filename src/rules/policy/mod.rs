//! The policy engine (07-policy.md): pure code that takes the effective policies of an agent and
//! one request and returns a decision value. No I/O, no async: the decision transaction hands
//! it everything (rate counts, notification availability, prices, the time), and the same
//! functions serve the real decision and both dry runs.
//!
//! - `rules`: the typed rules of each policy type and their validation (`INVALID_RULES`).
//! - `engine`: the evaluation order, tiers, BATCH phases, downgrade and restricted mode.
//! - `usd`: USD valuation for the SPENDING_LIMIT USD thresholds.
//! - `scope`: which policies apply to an agent (re-exported from storage, one implementation).

pub(crate) mod engine;
pub(crate) mod rules;
pub(crate) mod scope;
pub(crate) mod usd;

pub(crate) use engine::{Context, Decision, Defaults, Op, evaluate};
pub(crate) use rules::Policy;

#[cfg(test)]
mod tests;
