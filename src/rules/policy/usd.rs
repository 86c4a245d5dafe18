//! USD valuation for the SPENDING_LIMIT USD thresholds (07-policy.md §5), with `rust_decimal`.
//!
//! Prices are fetched by the oracle before the decision transaction; what reaches the engine is
//! a [`Prices`] value with each quote already marked stale or moved, so the engine stays pure.

use rust_decimal::Decimal;
use std::str::FromStr;
use waiaas_storage::{Amount, Chain, Tier};

use super::rules::Thresholds;

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Static,
    CoinGecko,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Static => "static",
            Source::CoinGecko => "coingecko",
        }
    }
}

/// One asset's USD price as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quote {
    pub(crate) price: Decimal,
    /// Older than `price_ttl` (but within `stale_limit`).
    pub(crate) stale: bool,
    /// More than ±50 % away from the previous fetched price of the same asset.
    pub(crate) moved: bool,
    pub(crate) source: Source,
}

/// The prices of the assets one request involves.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Prices {
    pub(crate) native: Option<Quote>,
    /// `(token address as stored, quote, decimals)`.
    pub(crate) tokens: Vec<(String, Quote, u8)>,
}

impl Prices {
    /// The quote and decimals of a token, when priced.
    pub(crate) fn token(&self, chain: Chain, mint: &str) -> Option<(Quote, u8)> {
        self.tokens.iter().find(|(m, _, _)| crate::base::address::same(chain, m, mint)).map(|(_, q, d)| (*q, *d))
    }
}

/// `amount ÷ 10^decimals × price`, saturating at `Decimal::MAX` (far above any threshold).
/// Digits beyond what a `Decimal` holds (28) are cut from the fraction, never the integer.
pub(crate) fn value(amount: Amount, decimals: u8, price: Decimal) -> Decimal {
    let digits = amount.to_string();
    let d = decimals as usize;
    let (int, frac) = if digits.len() > d {
        (digits[..digits.len() - d].to_string(), digits[digits.len() - d..].to_string())
    } else {
        ("0".to_string(), format!("{digits:0>d$}"))
    };
    if int.len() > 28 {
        return Decimal::MAX;
    }
    let keep = 28usize.saturating_sub(int.len()).min(frac.len());
    let text = if keep == 0 { int } else { format!("{int}.{}", &frac[..keep]) };
    let units = Decimal::from_str(&text).unwrap_or(Decimal::MAX);
    units.checked_mul(price).unwrap_or(Decimal::MAX)
}

/// §5: the USD tier of `usd` with the stale and movement adjustments.
pub(crate) fn tier(thresholds: &Thresholds<Decimal>, usd: Decimal, stale: bool, moved: bool) -> Tier {
    let mut t = thresholds.tier(&usd);
    if stale && t == Tier::Instant {
        t = Tier::Notify;
    }
    if moved {
        t = match t {
            Tier::Instant => Tier::Notify,
            Tier::Notify => Tier::Delay,
            Tier::Delay | Tier::Approval => Tier::Approval,
        };
    }
    t
}

/// What the decision records about the USD evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UsdEvaluation {
    pub(crate) value: Decimal,
    pub(crate) price: Decimal,
    pub(crate) stale: bool,
    pub(crate) source: Source,
}

impl UsdEvaluation {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "value": self.value.round_dp(6).normalize().to_string(),
            "price": self.price.normalize().to_string(),
            "stale": self.stale,
            "source": self.source.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn values_scale_by_decimals_and_saturate() {
        assert_eq!(value(Amount::from_u64(1_500_000_000), 9, d("150.25")), d("225.375"));
        assert_eq!(value(Amount::from_u64(1), 9, d("100")), d("0.0000001"));
        assert_eq!(value(Amount::from_u64(0), 18, d("3000")), Decimal::ZERO);
        let wei = Amount::parse("1000000000000000000").unwrap();
        assert_eq!(value(wei, 18, d("3000.5")), d("3000.5"));
        let huge = Amount::parse(&"9".repeat(77)).unwrap();
        assert_eq!(value(huge, 18, d("1")), Decimal::MAX);
        assert_eq!(value(huge, 0, d("0.5")), Decimal::MAX);
    }

    #[test]
    fn stale_and_moved_raise_the_tier() {
        let t = Thresholds { instant: d("10"), notify: d("100"), delay: d("1000") };
        assert_eq!(tier(&t, d("10"), false, false), Tier::Instant);
        assert_eq!(tier(&t, d("10"), true, false), Tier::Notify);
        assert_eq!(tier(&t, d("50"), true, false), Tier::Notify, "stale raises only INSTANT");
        assert_eq!(tier(&t, d("50"), false, true), Tier::Delay);
        assert_eq!(tier(&t, d("5000"), false, true), Tier::Approval);
    }
}
