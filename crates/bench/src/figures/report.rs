//! The last line of a run (the headline figures as one JSON object), and how the run prints as
//! it goes.

use std::io::Write as _;

use serde::Serialize;

/// The headline figures: the binary prints them as its last line, one JSON object whose keys
/// are [`REPORT_KEYS`](crate::REPORT_KEYS), in that order.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Report {
    pub(crate) auth_vs_identity: f64,
    pub(crate) auth_vs_bare: f64,
    pub(crate) anon_vs_bare: f64,
    pub(crate) logins_per_s_api: f64,
    pub(crate) logins_per_s_local: f64,
    pub(crate) callback_p99_us_local: f64,
    pub(crate) verify_vs_libsecp256k1: f64,
    pub(crate) session_cookie_bytes: u64,
    pub(crate) rss_growth_ratio: f64,
    pub(crate) auth_vs_identity_lookup: f64,
    pub(crate) auth_vs_identity_redis_lookup: f64,
    pub(crate) auth_vs_identity_redis: f64,
    pub(crate) auth_vs_bare_redis: f64,
    pub(crate) logins_per_s_two_instances: f64,
    pub(crate) two_instances_vs_one: f64,
    pub(crate) redis_outage_503_s: f64,
}

/// Prints a line at once (the run reports as it goes, so a slow part shows where it is).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

/// `x` to three decimals (the ratios of the report).
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `x` to one decimal (the rates and latencies of the report).
pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Bytes in MiB, for printing.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_has_exactly_the_documented_keys() {
        let json = serde_json::to_value(Report::default()).unwrap_or_default();
        let keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, crate::REPORT_KEYS);
    }
}
