//! Authentication (04-auth.md): masterAuth, sessionAuth, ownerAuth and nonces.

pub(crate) mod jwt;
pub(crate) mod master;
pub(crate) mod nonce;
pub(crate) mod owner;
pub(crate) mod siwe;
