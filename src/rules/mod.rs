//! Pure rules: the policy engine and the approval summary. Values in, values out — no I/O, no
//! async, no clock reads; this folder may call only `base`.

pub(crate) mod policy;
pub(crate) mod summary;
