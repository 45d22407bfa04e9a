//! The benchmarks of Log In with Audius for actix-web.
//!
//! - [`apps`]: the apps compared (bare, actix-identity, this project; actix-identity with a
//!   profile lookup, in process or from Redis; on the cookie store or any session store);
//! - [`login`]: a login driver against the embedded sandbox;
//! - [`load`]: HTTP/1.1 connections and a bounded load generator;
//! - [`stats`]: medians, percentiles, memory readings;
//! - [`figures`]: what the binary `audius-login-bench` measures with them, and in which order;
//! - [`profile`]: the binary's `--profile` mode.
//!
//! The binary and the criterion benches (`benches/micro.rs`) use them.

#![forbid(unsafe_code)]

pub mod apps;
pub mod figures;
pub mod load;
pub mod login;
pub mod profile;
pub mod stats;

/// The keys of the JSON object the binary prints as its last line, in order (`BENCHMARKS.md`
/// says what each measures).
pub const REPORT_KEYS: [&str; 16] = [
    "auth_vs_identity",
    "auth_vs_bare",
    "anon_vs_bare",
    "logins_per_s_api",
    "logins_per_s_local",
    "callback_p99_us_local",
    "verify_vs_libsecp256k1",
    "session_cookie_bytes",
    "rss_growth_ratio",
    "auth_vs_identity_lookup",
    "auth_vs_identity_redis_lookup",
    "auth_vs_identity_redis",
    "auth_vs_bare_redis",
    "logins_per_s_two_instances",
    "two_instances_vs_one",
    "redis_outage_503_s",
];

/// The error type of the benchmarks: anything, with a message.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// A result of the benchmarks.
pub type BenchResult<T> = Result<T, BenchError>;
