//! Addresses: the one place that says what a valid address of a chain is, how it is stored
//! (EIP-55 checksummed on EVM, base58 on Solana) and when two addresses are the same (EVM
//! case-insensitive, Solana exact — the key of storage's owner index).

use waiaas_backends::seam::{parse_evm_address, parse_solana_address};
use waiaas_storage::Chain;

/// The address as stored, or `None` when it is not an address of `chain`. EVM input may be any
/// case, but mixed case must carry a valid EIP-55 checksum; Solana input must be base58 of 32
/// bytes.
pub(crate) fn normalize(chain: Chain, address: &str) -> Option<String> {
    match chain {
        Chain::Ethereum => parse_evm_address(address).map(|a| a.to_checksum(None)),
        Chain::Solana => parse_solana_address(address).map(|_| address.to_string()),
    }
}

/// Whether two addresses of `chain` name the same account.
pub(crate) fn same(chain: Chain, a: &str, b: &str) -> bool {
    waiaas_storage::owner_key(chain, a) == waiaas_storage::owner_key(chain, b)
}

/// Whether `list` contains `address`.
pub(crate) fn listed<'a>(chain: Chain, list: impl IntoIterator<Item = &'a String>, address: &str) -> bool {
    list.into_iter().any(|x| same(chain, x, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evm_compares_case_insensitively_and_solana_exactly() {
        let lower = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
        let sum = normalize(Chain::Ethereum, lower).unwrap();
        assert_eq!(sum, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
        assert!(same(Chain::Ethereum, lower, &sum));
        assert!(normalize(Chain::Ethereum, "0x70997970C51812dc3a010c7d01b50e0d17dc79c8").is_none(), "bad checksum");
        let sol = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";
        assert!(same(Chain::Solana, sol, sol));
        assert!(!same(Chain::Solana, sol, &sol.to_lowercase()));
        assert!(listed(Chain::Ethereum, std::slice::from_ref(&sum), lower));
    }
}
