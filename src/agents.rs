//! Agents: the link between agent rows (storage) and their keys (backends).

use waiaas_backends::keystore::AgentKeyInfo;
use waiaas_backends::seam::{BackendKind, ChainKind, KeyRef};
use waiaas_storage::{AgentRecord, Backend, Chain};

/// The backends crate's chain family for a storage chain.
pub(crate) fn chain_kind(c: Chain) -> ChainKind {
    match c {
        Chain::Solana => ChainKind::Solana,
        Chain::Ethereum => ChainKind::Ethereum,
    }
}

/// What the keystore needs to know about a keystore-backed agent.
pub(crate) fn key_info(a: &AgentRecord) -> AgentKeyInfo {
    AgentKeyInfo {
        agent_id: a.id,
        chain: chain_kind(a.chain),
        network: a.network.as_str().into(),
        public_key: a.public_key.clone(),
    }
}

/// The signer-seam reference to an agent's key.
pub(crate) fn key_ref(a: &AgentRecord) -> KeyRef {
    KeyRef {
        agent_id: Some(a.id),
        chain: chain_kind(a.chain),
        public_key: a.public_key.clone(),
        backend: match a.backend {
            Backend::Keystore => BackendKind::Keystore,
            Backend::Ledger => BackendKind::Ledger,
        },
        derivation_path: a.derivation_path.clone(),
    }
}
