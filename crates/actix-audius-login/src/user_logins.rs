//! How many logins of one Audius user are live in this process: a bound on what one account can
//! take of the replay cache.
//!
//! Every successful login leaves two entries in the replay cache (its token and its consumed
//! state) for minutes. A user holding their own key can mint as many tokens as they like, each
//! one a successful login: without a bound, one Audius account could fill the in-memory replay
//! cache, and a full cache refuses every login (it never forgets a live entry). So at most
//! [`AudiusLoginBuilder::max_logins_per_user`](crate::AudiusLoginBuilder::max_logins_per_user)
//! logins of one user are live at once; the next is refused (`429 too_many_logins`) until one
//! expires. Only successful logins count: nobody can spend another user's allowance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Users tracked before the map is swept of users with no live login.
const SWEEP_FLOOR: usize = 1024;

#[derive(Debug, Default)]
struct Live {
    /// User id → when each of their live logins stops counting.
    until: HashMap<u64, Vec<Instant>>,
    /// The map's size at which users with no live login are swept out.
    sweep_at: usize,
}

/// The live logins of each user (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct UserLogins {
    limit: Option<usize>,
    live: Mutex<Live>,
}

impl UserLogins {
    /// At most `limit` live logins per user (`None`: no bound).
    pub(crate) fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            live: Mutex::new(Live {
                until: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether one more login of `user` may be accepted now. A read: counts nothing.
    pub(crate) fn admits(&self, user: u64) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let now = Instant::now();
        self.lock()
            .until
            .get(&user)
            .is_none_or(|list| list.iter().filter(|&&at| at > now).count() < limit)
    }

    /// Counts a login of `user` until `until`.
    pub(crate) fn record(&self, user: u64, until: Instant) {
        if self.limit.is_none() {
            return;
        }
        let now = Instant::now();
        let mut live = self.lock();
        let list = live.until.entry(user).or_default();
        list.retain(|&at| at > now);
        list.push(until);
        if live.until.len() >= live.sweep_at {
            live.until.retain(|_, list| {
                list.retain(|&at| at > now);
                !list.is_empty()
            });
            live.sweep_at = (live.until.len() * 2).max(SWEEP_FLOOR);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bounded_per_user_until_a_login_expires() {
        let logins = UserLogins::new(Some(2));
        let soon = Instant::now() + Duration::from_millis(40);
        let later = Instant::now() + Duration::from_secs(60);
        assert!(logins.admits(7));
        logins.record(7, soon);
        logins.record(7, later);
        assert!(!logins.admits(7), "two live logins: the third is refused");
        assert!(logins.admits(8), "another user is not affected");
        std::thread::sleep(Duration::from_millis(60));
        assert!(logins.admits(7), "one expired");
    }

    #[test]
    fn users_without_live_logins_are_swept() {
        let logins = UserLogins::new(Some(1));
        let past = Instant::now();
        for user in 0..(SWEEP_FLOOR as u64 * 3) {
            logins.record(user, past);
        }
        assert!(logins.lock().until.len() < SWEEP_FLOOR * 2);
        let unbounded = UserLogins::new(None);
        unbounded.record(1, Instant::now() + Duration::from_secs(60));
        assert!(unbounded.admits(1));
        assert!(
            unbounded.lock().until.is_empty(),
            "nothing kept without a bound"
        );
    }
}
