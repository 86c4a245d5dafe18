#![doc = include_str!("../README.md")]

pub mod fsutil;
pub mod keystore;
pub mod ledger;
pub mod seam;
mod secp;
