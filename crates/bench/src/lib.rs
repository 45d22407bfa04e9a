//! Shared pieces of the benchmarks of Log In with Audius for actix-web: the apps compared, a
//! login driver against the embedded sandbox, a bounded HTTP load generator, statistics and
//! memory readings. The binary `audius-login-bench` and the criterion benches use them.

#![forbid(unsafe_code)]

pub mod apps;
pub mod load;
pub mod login;
pub mod stats;

/// The error type of the benchmarks: anything, with a message.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// A result of the benchmarks.
pub type BenchResult<T> = Result<T, BenchError>;
