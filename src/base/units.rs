//! Amounts in human units, as owners read them in summaries and notifications.

use waiaas_storage::Amount;

/// Human units: `1500000000` with 9 decimals and symbol SOL → `1.5 SOL` (zeros trimmed).
pub(crate) fn format_units(amount: Amount, decimals: u8, symbol: &str) -> String {
    let digits = amount.to_string();
    let d = decimals as usize;
    let (whole, frac) = if digits.len() > d {
        (digits[..digits.len() - d].to_string(), digits[digits.len() - d..].to_string())
    } else {
        ("0".to_string(), format!("{digits:0>d$}"))
    };
    let frac = frac.trim_end_matches('0');
    let number = if frac.is_empty() { whole } else { format!("{whole}.{frac}") };
    if symbol.is_empty() { number } else { format!("{number} {symbol}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_render_with_trimmed_zeros() {
        assert_eq!(format_units(Amount::from_u64(1_500_000_000), 9, "SOL"), "1.5 SOL");
        assert_eq!(format_units(Amount::from_u64(1), 18, "ETH"), "0.000000000000000001 ETH");
        assert_eq!(format_units(Amount::from_u64(7_000_000), 6, ""), "7");
        assert_eq!(format_units(Amount::ZERO, 9, "SOL"), "0 SOL");
    }
}
