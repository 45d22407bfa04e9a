//! How much of everything a run measures: `--smoke`, `--quick` or the full run.

use std::time::Duration;

/// The sizes of a run: rounds, durations, logins, the memory run. Made by [`Plan::new`] (the
/// full run or `--quick`) or [`Plan::smoke`].
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) quick: bool,
    /// `--null-check`: a second bare server in place of this project's app over loopback.
    pub(crate) null_check: bool,
    /// Generated sandbox users (tokens are deterministic per user per second).
    pub(crate) users: usize,
    /// Interleaved rounds of the request figures.
    pub(crate) rounds: usize,
    /// In process: time per app per round.
    pub(crate) inproc_round: Duration,
    /// Loopback HTTP: time per app per round, and connections.
    pub(crate) http_round: Duration,
    pub(crate) http_connections: usize,
    /// Logins per verifier, in rounds alternating the verifiers, and concurrent flows.
    pub(crate) logins: usize,
    pub(crate) login_rounds: usize,
    pub(crate) login_concurrency: usize,
    /// Callbacks timed alone (local verifier).
    pub(crate) callbacks: usize,
    /// Memory run: logins, authenticated requests after each, replay and user cache sizes. The
    /// replay cache never forgets a live entry and refuses logins when full: it holds two
    /// entries a login (token and state), so it is sized never to fill, and its entries live
    /// seconds (see `figures::memory`) so that it reaches a steady size.
    pub(crate) mem_logins: usize,
    pub(crate) mem_requests_per_login: usize,
    pub(crate) mem_replay_capacity: usize,
    pub(crate) mem_user_capacity: usize,
    /// Token verification: rounds and iterations per round.
    pub(crate) verify_rounds: usize,
    pub(crate) verify_iterations: usize,
    /// Two instances: logins per instance count (one, two), in `login_rounds` rounds; logins
    /// whose callback is delivered to both instances at once; how long Redis stays down.
    pub(crate) scale_logins: usize,
    pub(crate) race_logins: usize,
    pub(crate) outage: Duration,
    /// Two instances: keep-alive connections to each instance in the efficiency runs (the
    /// load a instance gets is the same with one instance and with two). Four, not the 8 of the
    /// other loopback figures: the second instance shares its core with the load generator,
    /// redis-server and the sandbox (`BENCHMARKS.md` gives what other settings measured).
    pub(crate) scale_connections: usize,
}

impl Plan {
    /// Tiny sizes, for the test that checks the last line's shape (`--smoke`): the figures mean
    /// nothing.
    pub fn smoke() -> Self {
        Self {
            quick: true,
            null_check: false,
            users: 120,
            rounds: 1,
            inproc_round: Duration::from_millis(5),
            http_round: Duration::from_millis(40),
            http_connections: 2,
            logins: 20,
            login_rounds: 2,
            login_concurrency: 2,
            callbacks: 8,
            mem_logins: 20,
            mem_requests_per_login: 2,
            mem_replay_capacity: 2 * 20,
            mem_user_capacity: 10,
            verify_rounds: 1,
            verify_iterations: 5,
            scale_logins: 8,
            race_logins: 4,
            outage: Duration::from_millis(300),
            scale_connections: 1,
        }
    }

    /// The full run (about 3 minutes), or with `quick` fewer and shorter rounds and a smaller
    /// memory run (under a minute).
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                null_check: false,
                users: 2_000,
                rounds: 5,
                inproc_round: Duration::from_millis(80),
                http_round: Duration::from_millis(250),
                http_connections: 8,
                logins: 600,
                login_rounds: 3,
                login_concurrency: 4,
                callbacks: 500,
                mem_logins: 2_000,
                mem_requests_per_login: 10,
                mem_replay_capacity: 2 * 2_000,
                mem_user_capacity: 250,
                verify_rounds: 7,
                verify_iterations: 300,
                scale_logins: 300,
                race_logins: 100,
                outage: Duration::from_secs(1),
                scale_connections: 4,
            }
        } else {
            Self {
                quick,
                null_check: false,
                users: 5_000,
                rounds: 15,
                inproc_round: Duration::from_millis(400),
                http_round: Duration::from_secs(1),
                http_connections: 8,
                logins: 4_000,
                login_rounds: 5,
                login_concurrency: 4,
                callbacks: 2_000,
                mem_logins: 10_000,
                mem_requests_per_login: 10,
                mem_replay_capacity: 2 * 10_000,
                mem_user_capacity: 1_000,
                verify_rounds: 25,
                verify_iterations: 2_000,
                scale_logins: 1_500,
                race_logins: 500,
                outage: Duration::from_secs(1),
                scale_connections: 4,
            }
        }
    }

    /// With `on`, a second bare server stands in for this project's app over loopback (the
    /// harness check of `--null-check`); off by default.
    pub fn null_check(mut self, on: bool) -> Self {
        self.null_check = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_smaller() {
        let (quick, full) = (Plan::new(true), Plan::new(false));
        assert!(quick.rounds < full.rounds && quick.mem_logins < full.mem_logins);
        assert_eq!(full.mem_logins, 10_000);
        assert_eq!(full.mem_logins * full.mem_requests_per_login, 100_000);
    }
}
