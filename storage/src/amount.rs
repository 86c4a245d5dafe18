//! Amounts in smallest units (lamports, wei, token base units).
//!
//! Amounts are stored and exchanged as canonical decimal strings — digits only, no sign, no
//! leading zeros (`"0"` for zero), at most 78 digits — and parsed into [`U256`] for every
//! comparison and sum. Floating point never touches an amount. A string that is not canonical is
//! rejected before it can be stored, so two equal amounts always have equal text.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative integer amount in smallest units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub U256);

/// Why a string is not a canonical amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Empty string.
    #[error("amount is empty")]
    Empty,
    /// A character other than `0`–`9`.
    #[error("amount must contain only decimal digits")]
    NotDigits,
    /// A leading zero in a non-zero amount (e.g. `"007"`).
    #[error("amount must not have leading zeros")]
    LeadingZero,
    /// More than 78 digits, or above 2^256 − 1.
    #[error("amount is too large")]
    TooLarge,
    /// A sum that does not fit 256 bits.
    #[error("amount arithmetic overflowed")]
    Overflow,
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(U256::ZERO);

    /// Parses a canonical decimal string.
    pub fn parse(s: &str) -> Result<Amount, AmountError> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotDigits);
        }
        if s.len() > 1 && s.starts_with('0') {
            return Err(AmountError::LeadingZero);
        }
        if s.len() > 78 {
            return Err(AmountError::TooLarge);
        }
        U256::from_str_radix(s, 10).map(Amount).map_err(|_| AmountError::TooLarge)
    }

    /// From a `u64` (Solana lamports and most test values).
    pub fn from_u64(v: u64) -> Amount {
        Amount(U256::from(v))
    }

    /// Checked addition.
    pub fn checked_add(self, other: Amount) -> Result<Amount, AmountError> {
        self.0.checked_add(other.0).map(Amount).ok_or(AmountError::Overflow)
    }

    /// Addition clamped at the largest amount (sums that only measure, never move funds).
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }

    /// Subtraction clamped at zero.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// The value as `u64` when it fits.
    pub fn to_u64(self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Amount::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(Amount::parse("0").unwrap(), Amount::ZERO);
        assert_eq!(Amount::parse("1000000000").unwrap().to_u64(), Some(1_000_000_000));
        assert_eq!(Amount::parse("007"), Err(AmountError::LeadingZero));
        assert_eq!(Amount::parse(""), Err(AmountError::Empty));
        assert_eq!(Amount::parse("-1"), Err(AmountError::NotDigits));
        assert_eq!(Amount::parse("1.5"), Err(AmountError::NotDigits));
        assert_eq!(Amount::parse("1e9"), Err(AmountError::NotDigits));
        let max = U256::MAX.to_string();
        assert_eq!(max.len(), 78);
        assert_eq!(Amount::parse(&max).unwrap().0, U256::MAX);
        // 78 digits but above 2^256 - 1
        assert_eq!(Amount::parse(&"9".repeat(78)), Err(AmountError::TooLarge));
        assert_eq!(Amount::parse(&"1".repeat(79)), Err(AmountError::TooLarge));
        assert_eq!(Amount(U256::MAX).checked_add(Amount::from_u64(1)), Err(AmountError::Overflow));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(a in any::<u128>(), b in any::<u128>()) {
            let v = Amount(U256::from(a) * U256::from(b));
            prop_assert_eq!(Amount::parse(&v.to_string()).unwrap(), v);
        }

        #[test]
        fn addition_matches_u128(a in any::<u64>(), b in any::<u64>()) {
            let sum = Amount::from_u64(a).checked_add(Amount::from_u64(b)).unwrap();
            prop_assert_eq!(sum.to_string(), (a as u128 + b as u128).to_string());
        }
    }
}
