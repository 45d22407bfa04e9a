//! How a round's figure is read from its blocks: not their mean, but a low quantile of their
//! times (a high one of their rates), past the blocks another process slowed down.

use std::time::Duration;

use crate::stats::percentile;

/// The quantile of block times a round's figure is read from: 0.2, the time below which the
/// fastest fifth of its blocks ran. A block that another process preempted is slow and falls
/// above it; this is what makes the figures hold on a shared machine.
pub(super) const BLOCK_QUANTILE: f64 = 0.2;

/// The `q`-quantile (0 to 1) of `times`, nearest rank; zero when empty.
pub(super) fn quantile(times: &[Duration], q: f64) -> Duration {
    percentile(times, q * 100.0)
}

/// The rate a round takes from its chunks' rates: the one above 80% of them (the 20th
/// percentile of the time per request), past the chunks another process slowed down.
pub(super) fn upper_quantile(rates: &[f64]) -> f64 {
    if rates.is_empty() {
        return f64::NAN;
    }
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((1.0 - BLOCK_QUANTILE) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_read_past_its_slow_blocks() {
        let times: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(quantile(&times, BLOCK_QUANTILE), Duration::from_millis(2));
        let rates: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(upper_quantile(&rates), 8.0);
        assert!(upper_quantile(&[]).is_nan());
    }
}
