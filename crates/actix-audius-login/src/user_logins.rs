//! How many logins of one Audius user are live in this process: a bound on what one account can
//! take of the replay cache.
//!
//! Every successful login leaves two entries in the replay cache (its token and its consumed
//! state) for minutes. A user holding their own key can mint as many tokens as they like, each
//! one a successful login: without a bound, one Audius account could fill the in-memory replay
//! cache, and a full cache refuses every login (it never forgets a live entry). So at most
//! [`Limits::max_logins_per_user`](crate::Limits::max_logins_per_user)
//! logins of one user are live at once; the next is refused (`429 too_many_logins`) until one
//! expires. Only successful logins count: nobody can spend another user's allowance.
//!
//! A callback is first checked without holding anything ([`UserLogins::admits`]), before any
//! network call, so a user at the limit costs no request. The place is *reserved* only once the
//! token is verified ([`UserLogins::try_reserve`]), atomically, and the reservation counts
//! against the limit while the replay cache records the login, so verified callbacks that
//! arrive together cannot all pass before any of them is counted. A forged token never holds a
//! place, however long its verification waits on Audius. A reservation is kept
//! ([`Reservation::confirm`]) when the login succeeds and released when dropped otherwise (a
//! failed callback, a client that hung up).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Users tracked before the map is swept of users with no live login.
const SWEEP_FLOOR: usize = 1024;

#[derive(Debug, Default)]
struct Live {
    /// User id → when each of their live logins stops counting.
    until: HashMap<u64, Vec<Instant>>,
    /// User id → logins in progress that hold a place (see [`Reservation`]).
    pending: HashMap<u64, usize>,
    /// The map's size at which users with no live login are swept out.
    sweep_at: usize,
}

impl Live {
    /// Whether `user`'s live logins and logins in progress are below `limit`.
    fn has_room(&self, user: u64, limit: usize) -> bool {
        let now = Instant::now();
        let pending = self.pending.get(&user).copied().unwrap_or(0);
        let counted = self
            .until
            .get(&user)
            .map_or(0, |list| list.iter().filter(|&&at| at > now).count());
        counted.saturating_add(pending) < limit
    }
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
                pending: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `user` has room for one more login now (live logins and logins in progress
    /// below the limit), without holding anything: the cheap check before any network call.
    pub(crate) fn admits(&self, user: u64) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        self.lock().has_room(user, limit)
    }

    /// Reserves a place for one more login of `user`, atomically: `None` when the user has as
    /// many live logins and logins in progress as allowed. The place is held until the
    /// reservation is [confirmed](Reservation::confirm) or dropped.
    pub(crate) fn try_reserve(&self, user: u64) -> Option<Reservation<'_>> {
        let Some(limit) = self.limit else {
            return Some(Reservation {
                logins: self,
                user,
                held: false,
            });
        };
        let mut live = self.lock();
        if !live.has_room(user, limit) {
            return None;
        }
        *live.pending.entry(user).or_default() += 1;
        Some(Reservation {
            logins: self,
            user,
            held: true,
        })
    }

    /// Counts a login of `user` until `until`.
    fn record(&self, live: &mut Live, user: u64, until: Instant) {
        let now = Instant::now();
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

    fn release(live: &mut Live, user: u64) {
        if let Some(n) = live.pending.get_mut(&user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.pending.remove(&user);
            }
        }
    }
}

/// A place held for a login in progress (see [`UserLogins::try_reserve`]): released when
/// dropped unless [confirmed](Self::confirm).
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    logins: &'a UserLogins,
    user: u64,
    /// Whether a pending place is held (not without a limit).
    held: bool,
}

impl Reservation<'_> {
    /// The login succeeded: it counts until `until`.
    pub(crate) fn confirm(mut self, until: Instant) {
        if self.held {
            let mut live = self.logins.lock();
            UserLogins::release(&mut live, self.user);
            self.logins.record(&mut live, self.user, until);
            self.held = false;
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held {
            UserLogins::release(&mut self.logins.lock(), self.user);
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
        logins.try_reserve(7).unwrap().confirm(soon);
        logins.try_reserve(7).unwrap().confirm(later);
        assert!(
            logins.try_reserve(7).is_none(),
            "two live logins: the third is refused"
        );
        assert!(
            logins.try_reserve(8).is_some(),
            "another user is not affected"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(logins.try_reserve(7).is_some(), "one expired");
    }

    #[test]
    fn logins_in_progress_hold_their_places_until_dropped() {
        let logins = UserLogins::new(Some(2));
        let a = logins.try_reserve(7).unwrap();
        let b = logins.try_reserve(7).unwrap();
        assert!(
            logins.try_reserve(7).is_none(),
            "two in progress: a third cannot start"
        );
        drop(a);
        let c = logins
            .try_reserve(7)
            .expect("a failed login gave its place back");
        b.confirm(Instant::now() + Duration::from_secs(60));
        assert!(logins.try_reserve(7).is_none(), "one live, one in progress");
        drop(c);
        assert!(logins.try_reserve(7).is_some());
        assert!(logins.lock().pending.is_empty(), "nothing left pending");
    }

    #[test]
    fn users_without_live_logins_are_swept() {
        let logins = UserLogins::new(Some(1));
        let past = Instant::now();
        for user in 0..(SWEEP_FLOOR as u64 * 3) {
            logins.try_reserve(user).unwrap().confirm(past);
        }
        assert!(logins.lock().until.len() < SWEEP_FLOOR * 2);
        let unbounded = UserLogins::new(None);
        unbounded
            .try_reserve(1)
            .unwrap()
            .confirm(Instant::now() + Duration::from_secs(60));
        assert!(unbounded.try_reserve(1).is_some());
        assert!(
            unbounded.lock().until.is_empty(),
            "nothing kept without a bound"
        );
    }
}
