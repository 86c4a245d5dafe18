//! Basics every layer uses: addresses, the clock, the error-code vocabulary, request validation,
//! the data-directory layout and human units. Pure helpers; this folder calls nothing else in
//! the crate.

pub(crate) mod address;
pub(crate) mod clock;
pub(crate) mod datadir;
pub(crate) mod error;
pub(crate) mod failpoint;
pub(crate) mod rlimit;
pub(crate) mod units;
pub(crate) mod validation;
