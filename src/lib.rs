//! waiaas: a self-hosted wallet daemon for AI agents.
//!
//! AI agents ask the daemon over REST to move funds on EVM chains and Solana; every request
//! passes a policy engine that decides how much human oversight it needs, and keys live behind
//! one signer seam (`waiaas-backends`). State lives in one redb file (`waiaas-storage`).
//!
//! This library is the daemon and the CLI; `main.rs` only parses arguments through [`run`] and
//! maps the result to an exit code.

mod agents;
mod auth;
mod backup;
mod chains;
mod cli;
mod clock;
mod config;
mod daemon;
mod datadir;
mod error;
mod http;
mod killswitch;
mod pipeline;
mod policy;

pub use cli::{CliError, run};

#[doc(hidden)]
pub mod bench_support {
    //! Entry points for `benches/` only: not an API, no stability promise.

    use waiaas_backends::keystore::master::MasterFile;

    /// masterAuth as the daemon runs it (cache, semaphore, lockout).
    pub struct MasterAuthProbe(crate::auth::master::MasterAuth);

    impl MasterAuthProbe {
        /// A verifier for `file` with an empty cache.
        pub fn new(file: MasterFile) -> Self {
            MasterAuthProbe(crate::auth::master::MasterAuth::new(file))
        }

        /// Fills the cache as a successful start does.
        pub fn prime(&self, password: &[u8]) {
            self.0.prime(password)
        }

        /// One `X-Master-Password` check; true when accepted.
        pub async fn verify(&self, header: &str) -> bool {
            matches!(self.0.verify(Some(header), 0).await, crate::auth::master::MasterOutcome::Ok)
        }
    }
}
