//! The Ledger backend (03-keys.md §11): agent keys that never leave a Ledger device.
//!
//! Layers, bottom up: `transport` moves APDUs (USB HID, or TCP with the Speculos framing);
//! `apps` encodes the Ethereum and Solana app commands and maps status words; `device` owns the
//! one device of the process behind a mutex and implements the signer backend. `alloy-signer-
//! ledger` is not used: it owns its HID stack (which cannot be linked beside `hidapi`) and cannot
//! run over a custom transport, which is what lets the same code drive Speculos and the fake
//! device.

pub mod apps;
pub mod device;
#[cfg(feature = "fake-device")]
pub mod fake;
pub mod transport;

#[cfg(test)]
mod golden_tests;

#[cfg(all(test, feature = "fake-device"))]
mod fake_tests;
