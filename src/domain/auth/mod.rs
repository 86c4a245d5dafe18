//! Authentication (04-auth.md): masterAuth, sessionAuth, ownerAuth and nonces.
//!
//! What a successful check establishes about the caller is a value of this module (e.g.
//! [`SessionContext`]); reading it from request headers is the HTTP layer's job.

pub(crate) mod jwt;
pub(crate) mod master;
pub(crate) mod nonce;
pub(crate) mod owner;
pub(crate) mod siwe;

use waiaas_storage::{AgentRecord, SessionRecord};

/// An authenticated session: the request context of 04-auth.md §3.2 step 5.
#[derive(Debug, Clone)]
pub(crate) struct SessionContext {
    pub(crate) session: SessionRecord,
    pub(crate) agent: AgentRecord,
    /// SHA-256 of the presented token (the renewal compare-and-swap value).
    pub(crate) token_hash: [u8; 32],
}

impl SessionContext {
    /// The audit actor of the agent (04-auth.md §1).
    pub(crate) fn actor(&self) -> String {
        format!("agent:{}", self.agent.id)
    }
}
