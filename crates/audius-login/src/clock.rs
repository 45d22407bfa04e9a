//! Time, injectable: verifiers judge `iat` against a [`Clock`], which tests can move.
//!
//! ```
//! use std::time::Duration;
//! use audius_login::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::at_unix(1_764_288_000);
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(clock.now().unix_timestamp(), 1_764_288_060);
//! ```

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to: for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Mutex::new(at))
    }

    /// A clock showing a Unix time in seconds (out-of-range values show the Unix epoch).
    pub fn at_unix(seconds: i64) -> Self {
        Self::new(
            OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    /// Sets the time.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A clock that never goes backwards: it shows the wrapped clock's time, or the highest time it
/// showed before when the wrapped clock is now behind it.
///
/// Why: a token's age is judged on the app's clock, and its replay entry must outlive its
/// acceptance. The built-in [`MemoryReplayCache`](crate::replay::MemoryReplayCache) of the
/// actix layer expires its entries on this same clock
/// ([`MemoryReplayCache::with_clock`](crate::replay::MemoryReplayCache::with_clock)), so a
/// token stays remembered for as long as this clock finds it young enough, whatever the wall
/// clock does (an NTP step back, a VM restored from a snapshot). Never going backwards keeps a
/// step *forward* then back from purging entries (on the forward step) that the step back would
/// make young again. While the wrapped clock is behind, this clock stands still: tokens do not
/// age and entries do not expire until it catches up.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use audius_login::clock::{Clock, ManualClock, MonotonicClock};
///
/// let wall = Arc::new(ManualClock::at_unix(1_764_288_000));
/// let clock = MonotonicClock::new(wall.clone());
/// assert_eq!(clock.now().unix_timestamp(), 1_764_288_000);
/// wall.advance(Duration::from_secs(60));
/// assert_eq!(clock.now().unix_timestamp(), 1_764_288_060);
/// // Stepped back by an hour: this clock does not follow.
/// wall.set(time::OffsetDateTime::from_unix_timestamp(1_764_284_460).unwrap());
/// assert_eq!(clock.now().unix_timestamp(), 1_764_288_060);
/// ```
#[derive(Debug)]
pub struct MonotonicClock {
    inner: Arc<dyn Clock>,
    /// The highest time shown.
    highest: Mutex<Option<OffsetDateTime>>,
}

impl MonotonicClock {
    /// A clock that follows `inner` forwards only.
    pub fn new(inner: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            highest: Mutex::new(None),
        }
    }

    /// The wrapped clock.
    pub fn inner(&self) -> &Arc<dyn Clock> {
        &self.inner
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> OffsetDateTime {
        let wall = self.inner.now();
        let mut highest = self.highest.lock().unwrap_or_else(|p| p.into_inner());
        let shown = highest.map_or(wall, |h| h.max(wall));
        *highest = Some(shown);
        shown
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_step_back_is_not_followed_until_the_wall_clock_catches_up() {
        let wall = Arc::new(ManualClock::at_unix(1_000_000));
        let clock = MonotonicClock::new(wall.clone());
        assert_eq!(clock.now().unix_timestamp(), 1_000_000);
        wall.advance(Duration::from_secs(10));
        assert_eq!(
            clock.now().unix_timestamp(),
            1_000_010,
            "forwards: followed"
        );
        wall.set(OffsetDateTime::from_unix_timestamp(999_000).unwrap());
        assert_eq!(
            clock.now().unix_timestamp(),
            1_000_010,
            "backwards: not followed (it stands still)"
        );
        wall.set(OffsetDateTime::from_unix_timestamp(1_000_005).unwrap());
        assert_eq!(clock.now().unix_timestamp(), 1_000_010, "still behind");
        // The wall clock catches up: followed again.
        wall.set(OffsetDateTime::from_unix_timestamp(1_000_100).unwrap());
        assert_eq!(clock.now().unix_timestamp(), 1_000_100);
    }
}
