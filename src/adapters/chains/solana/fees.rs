//! Solana fees (05-chains.md §3.3–3.4): the priority-fee median cached 30 s, the compute-unit
//! price by priority, the compute-unit limit from the simulation, and the fee estimate.

use std::time::{Duration, Instant};

use waiaas_storage::Amount;

use super::super::types::{FeeEstimate, Priority};
use super::SolanaAdapter;

const FEE_TTL: Duration = Duration::from_secs(30);
pub(super) const MAX_CU_LIMIT: u32 = 1_400_000;
pub(super) const LAMPORTS_PER_SIGNATURE: u64 = 5000;

/// The median of the recent prioritisation fees (05-chains.md §3.3): middle value, the floor
/// of the mean of the two middle values for an even count, 0 when empty.
pub(crate) fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => ((v[n / 2 - 1] as u128 + v[n / 2] as u128) / 2) as u64,
    }
}

/// The compute-unit limit after a simulation: `max(ceil(units × 1.2), 1000)`, capped at the
/// 1.4 M the runtime allows.
pub(crate) fn cu_limit_for(units: u64) -> u32 {
    (units.saturating_mul(12).div_ceil(10)).clamp(1000, MAX_CU_LIMIT as u64) as u32
}

impl SolanaAdapter {
    /// The median prioritisation fee, cached 30 s; a failed fetch is 0 and cached too.
    pub(crate) async fn priority_fee(&self) -> u64 {
        let mut cache = self.prio_fee.lock().await;
        if let Some((v, at)) = *cache
            && at.elapsed() < FEE_TTL
        {
            return v;
        }
        let v = match self.client.get_recent_prioritization_fees(&[]).await {
            Ok(fees) => median(fees.iter().map(|f| f.prioritization_fee).collect()),
            Err(e) => {
                tracing::debug!("getRecentPrioritizationFees failed, using 0: {e}");
                0
            }
        };
        *cache = Some((v, Instant::now()));
        v
    }

    pub(super) fn cu_price(base: u64, prio: Priority) -> u64 {
        match prio {
            Priority::Low => base / 2,
            Priority::Medium => base,
            Priority::High => base.saturating_mul(2),
        }
    }

    pub(super) fn fee(cu_price: u64, cu_limit: u32, account_creation: u64) -> FeeEstimate {
        let priority = ((cu_price as u128 * cu_limit as u128).div_ceil(1_000_000)) as u64;
        let total = LAMPORTS_PER_SIGNATURE + priority + account_creation;
        FeeEstimate {
            network_fee: Amount::from_u64(LAMPORTS_PER_SIGNATURE),
            priority_fee: Amount::from_u64(priority),
            account_creation_fee: Amount::from_u64(account_creation),
            total_fee: Amount::from_u64(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_follows_the_spec() {
        assert_eq!(median(vec![1, 3, 2]), 2);
        assert_eq!(median(vec![1, 2, 3, 10]), 2);
        assert_eq!(median(vec![]), 0);
        assert_eq!(median(vec![u64::MAX, u64::MAX]), u64::MAX);
    }

    // ACC-138.
    #[test]
    fn compute_limits_follow_the_simulation() {
        assert_eq!(cu_limit_for(150), 1000);
        assert_eq!(cu_limit_for(1000), 1200);
        assert_eq!(cu_limit_for(1001), 1202);
        assert_eq!(cu_limit_for(10_000_000), MAX_CU_LIMIT);
    }
}
