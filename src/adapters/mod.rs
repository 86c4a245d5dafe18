//! The outside world: chain nodes (`chains`), notification services (`notify`) and price
//! sources (`oracle`). This folder may call `base`, `rules` and `runtime`; the domain calls it.

pub(crate) mod chains;
pub(crate) mod notify;
pub(crate) mod oracle;
