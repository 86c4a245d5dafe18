//! The policy engine (07-policy.md): pure code that takes a decision snapshot and returns a
//! decision value. No I/O, no async.

pub(crate) mod defaults;
pub(crate) mod scope;
