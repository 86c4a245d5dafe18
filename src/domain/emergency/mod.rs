//! The emergency controls of 08-killswitch-autostop.md: the kill switch, AutoStop and the
//! withdrawal of an agent's funds to its owner.

pub(crate) mod autostop;
pub(crate) mod killswitch;
pub(crate) mod withdraw;
