//! Shared pieces of the benchmarks of Log In with Audius for actix-web: the apps compared, a
//! login driver against the embedded sandbox, a bounded HTTP load generator, statistics and
//! memory readings. The binary `audius-login-bench` and the criterion benches use them.

#![forbid(unsafe_code)]

pub mod apps;
pub mod load;
pub mod login;
pub mod stats;

/// The keys of the JSON object the binary prints as its last line, in order (the figures of
/// issue #7; BENCHMARKS.md says what each measures).
pub const REPORT_KEYS: [&str; 9] = [
    "auth_vs_identity",
    "auth_vs_bare",
    "anon_vs_bare",
    "logins_per_s_api",
    "logins_per_s_local",
    "callback_p99_us_local",
    "verify_vs_libsecp256k1",
    "session_cookie_bytes",
    "rss_growth_ratio",
];

/// The error type of the benchmarks: anything, with a message.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// A result of the benchmarks.
pub type BenchResult<T> = Result<T, BenchError>;
