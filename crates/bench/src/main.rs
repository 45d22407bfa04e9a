//! `audius-login-bench`: the performance figures of Log In with Audius for actix-web.
//!
//! ```text
//! audius-login-bench [--quick]
//! ```
//!
//! Prints what it measures as it goes, then, as its last line, one JSON object with the
//! headline figures (see `BENCHMARKS.md` at the workspace root). Every ratio compares against a
//! baseline measured in the same process, interleaved with it, as the median of rounds. What is
//! measured, and how, is in the library: `audius_login_bench::figures`.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Instant;

use audius_login_bench::figures::{self, Plan, say};
use audius_login_bench::profile::{self, ProfileConfig};
use clap::Parser;

/// Measures Log In with Audius for actix-web against actix-identity and a bare app.
#[derive(Debug, Parser)]
#[command(name = "audius-login-bench", version)]
struct Args {
    /// Fewer and shorter rounds, smaller memory run: finishes in well under a minute.
    #[arg(long)]
    quick: bool,
    /// A few seconds of everything, tiny sizes: for the test that checks the last line's shape
    /// (the figures mean nothing).
    #[arg(long, hide = true, conflicts_with = "quick")]
    smoke: bool,
    /// Profiling aid: log in, then make only `--profile-requests` in-process requests of one
    /// configuration, inside `profile_loop` (for `valgrind --tool=callgrind
    /// --toggle-collect='*profile_loop*'`); prints no figures.
    #[arg(long, value_enum, value_name = "CONFIG")]
    profile: Option<ProfileConfig>,
    /// Requests made by `--profile`.
    #[arg(long, default_value_t = 20_000)]
    profile_requests: usize,
    /// Harness check: over loopback, a second bare server stands in for this project's app
    /// (same cookie, same paths), so the three ratios measure the harness's own bias and should
    /// come out near 1 (`auth_vs_identity` near the cookie's cost alone). The rest of the run is
    /// as usual.
    #[arg(long, conflicts_with = "profile")]
    null_check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    if let Some(config) = args.profile {
        return match profile::run(config, args.profile_requests) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("audius-login-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let plan = if args.smoke {
        Plan::smoke()
    } else {
        Plan::new(args.quick)
    }
    .null_check(args.null_check);
    match figures::run(&plan) {
        Ok(report) => {
            say(format!("done in {:.1} s", started.elapsed().as_secs_f64()));
            match serde_json::to_string(&report) {
                Ok(json) => {
                    say(json);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("audius-login-bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("audius-login-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
