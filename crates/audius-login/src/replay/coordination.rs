//! Coordination of the OAuth code flow's token refresh between app instances: see
//! [`RefreshCoordination`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore as _;

use crate::error::Result;

/// The owner of a refresh lock: 128 random bits, chosen by the caller for each attempt, so
/// that only the caller that took a lock can release it.
#[derive(Clone, PartialEq, Eq)]
pub struct LockOwner(String);

impl LockOwner {
    /// A new owner: 16 random bytes, as 32 hex digits.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// The owner's text, as stored in the lock.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LockOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockOwner({})", self.0)
    }
}

/// What [`RefreshCoordination::begin`] found. (Exhaustive: the protocol's five answers.)
#[derive(Clone, PartialEq, Eq)]
pub enum BeginRefresh {
    /// The lock is the caller's, for the time to live it asked: refresh, then
    /// [`publish`](RefreshCoordination::publish) and [`release`](RefreshCoordination::release).
    Locked,
    /// Another caller holds the lock and no newer tokens are known yet: wait, then begin again.
    Busy,
    /// Tokens newer than the generation the caller has: use them instead of refreshing.
    Newer {
        /// Their generation.
        generation: u64,
        /// The tokens, as [`publish`](RefreshCoordination::publish)ed.
        tokens: String,
    },
    /// The family was retired (logout) or refused by Audius, or its refresh token was sent to
    /// Audius by a holder that never published the answer and the in-doubt window passed: never
    /// refresh it again.
    Dead,
    /// No lock is held and nothing newer is recorded, but a holder sent the refresh token of
    /// this generation (or a newer one) to Audius and has not published the answer yet (it may
    /// be cut off from the store, retrying): presenting the token again would be a reuse.
    /// Answer "unavailable, try again later"; once the holder's in-doubt window has passed,
    /// [`begin`](RefreshCoordination::begin) answers [`Dead`](Self::Dead) instead.
    InDoubt,
}

impl fmt::Debug for BeginRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locked => f.write_str("Locked"),
            Self::Busy => f.write_str("Busy"),
            // The tokens are secrets: never printed.
            Self::Newer { generation, .. } => f
                .debug_struct("Newer")
                .field("generation", generation)
                .finish_non_exhaustive(),
            Self::Dead => f.write_str("Dead"),
            Self::InDoubt => f.write_str("InDoubt"),
        }
    }
}

/// What [`RefreshCoordination::publish`] did. (Exhaustive: the protocol's three answers.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Recorded (or already recorded, identical, by an earlier attempt of the same call).
    Stored,
    /// Not recorded: the family already has this generation (other tokens) or a newer one.
    Superseded {
        /// The generation recorded.
        generation: u64,
    },
    /// Not recorded: the family is dead.
    Dead,
}

/// The shared state that coordinates the code flow's refresh between app instances. Every
/// method is bounded in time by the implementation (an unreachable or slow store is
/// [`Error::StoreUnavailable`](crate::Error::StoreUnavailable)), and fails rather than
/// guessing: a caller that cannot reach it must not refresh.
///
/// A refresh token can be used once: Audius answers a second use with "Token reuse detected"
/// and revokes the whole token family, which signs the user out. Within one process a lock per
/// session is enough; several instances behind a load balancer need a lock they all see, and
/// the newest tokens where they all find them, so that the instance that waited adopts the
/// tokens another instance obtained instead of refreshing the used token again.
///
/// This trait is that shared state, per token *family* (a random id chosen at
/// login, bound to the session): a lock with an owner and a time to live, the family's newest
/// tokens with their generation (0 at login, + 1 at each refresh), and a "dead" mark (logged
/// out, or refused by Audius). A [`ReplayCache`](super::ReplayCache) that is shared between
/// instances offers it through
/// [`refresh_coordination`](super::ReplayCache::refresh_coordination); with the `redis`
/// feature `RedisReplayCache` does, on its own connection and key prefix.
///
/// The protocol, for a request that finds its access token expired (generation `seen`):
///
/// 1. [`begin`](Self::begin): atomically, the family is dead
///    ([`BeginRefresh::Dead`]: sign out), or tokens newer than `seen` are known
///    ([`BeginRefresh::Newer`]: use them, no refresh), or the lock is taken for this caller
///    ([`BeginRefresh::Locked`]), or another holder has it ([`BeginRefresh::Busy`]: wait a
///    little, then begin again);
///    A holder that takes the lock with [`begin_marked`](Self::begin_marked) also leaves an
///    *in-flight marker* (the generation it is about to present, when, and how long it may
///    take to publish): while it lives, no other caller gets the lock for that generation,
///    even after the lock expired ([`BeginRefresh::InDoubt`], then, past the holder's window,
///    [`BeginRefresh::Dead`]): a refresh token that may have reached Audius is never presented
///    again;
/// 2. the holder refreshes at Audius, within a bound shorter than the lock's time to live
///    (counted from before `begin` was sent);
/// 3. [`publish`](Self::publish) records the new tokens (and clears an older in-flight
///    marker), but never over a newer generation and never into a dead family (fencing: a
///    holder whose lock expired cannot overwrite what a later holder recorded);
/// 4. [`release`](Self::release) deletes the lock only if this caller still
///    owns it (compare-and-delete): a holder whose lock expired and was taken by another
///    never releases the other's lock. A holder that knows its request never reached Audius
///    (or that Audius answered it with an error, not with tokens) calls
///    [`abandon`](Self::abandon) instead, which also clears its in-flight marker; a holder that
///    does not know (a timeout, a lost answer) releases and leaves the marker.
///
/// A logout [`retire`](Self::retire)s the family: marked dead, its newest
/// tokens handed back (to revoke them at Audius) and forgotten.
///
/// What is stored: the tokens as the caller gives them (an opaque text; the actix crate stores
/// its session entry, access and refresh token included), for the time the caller gives (no
/// longer than the refresh token lives). They are as sensitive as a session: keep the store
/// as private as the session store.
///
/// A family id is the caller's (random, bound to the session); implementations may limit its
/// length ([`Error::TooLarge`](crate::Error::TooLarge) beyond 256 bytes for Redis).
#[async_trait]
pub trait RefreshCoordination: Send + Sync + fmt::Debug {
    /// The longest one call may take (its timeout). A lock's time to live must cover the
    /// refresh and then a [`publish`](Self::publish): callers add this to it.
    fn call_timeout(&self) -> Duration;

    /// [`begin_marked`](Self::begin_marked) without leaving an in-flight marker (a caller
    /// that only looks, or takes the lock for something else than presenting a token). Other
    /// holders' markers are honoured all the same.
    async fn begin(
        &self,
        family: &str,
        seen_generation: u64,
        owner: &LockOwner,
        lock_ttl: Duration,
    ) -> Result<BeginRefresh> {
        self.begin_marked(family, seen_generation, owner, lock_ttl, Duration::ZERO)
            .await
    }

    /// Atomically: [`BeginRefresh::Dead`] if the family is dead, else
    /// [`BeginRefresh::Newer`] if tokens of a generation above `seen_generation` are recorded,
    /// else, when another owner's in-flight marker for `seen_generation` (or a newer one)
    /// lives: [`BeginRefresh::Busy`] while its lock is held, [`BeginRefresh::InDoubt`] within
    /// its window, and past it the family is marked dead ([`BeginRefresh::Dead`]); else the
    /// lock for `owner` for `lock_ttl` ([`BeginRefresh::Locked`]; also when `owner` already
    /// holds it, as when a call is sent again), with, when `in_doubt_window` is above zero, an
    /// in-flight marker of `owner` for `seen_generation` that makes others wait that long
    /// for its publication; else [`BeginRefresh::Busy`].
    async fn begin_marked(
        &self,
        family: &str,
        seen_generation: u64,
        owner: &LockOwner,
        lock_ttl: Duration,
        in_doubt_window: Duration,
    ) -> Result<BeginRefresh>;

    /// Deletes the lock if `owner` holds it (compare-and-delete). `Ok(true)` when deleted,
    /// `Ok(false)` when the lock had expired or belongs to another owner (left alone). An
    /// in-flight marker is left (the token may have reached Audius).
    async fn release(&self, family: &str, owner: &LockOwner) -> Result<bool>;

    /// [`release`](Self::release), and deletes `owner`'s in-flight marker: for a holder that
    /// knows its refresh token did not reach Audius, or was answered with an error rather
    /// than new tokens. Default: [`release`](Self::release) only (the marker stays: safe).
    async fn abandon(&self, family: &str, owner: &LockOwner) -> Result<bool> {
        self.release(family, owner).await
    }

    /// Records `tokens` as the family's newest, of `generation`, for `ttl`, unless the family
    /// is dead or has this generation (other tokens) or a newer one: a late holder never
    /// writes an older generation over a newer one.
    async fn publish(
        &self,
        family: &str,
        generation: u64,
        tokens: &str,
        ttl: Duration,
    ) -> Result<Published>;

    /// Marks the family dead for `ttl` (no refresh will be tried with it again, by any
    /// instance), and forgets its tokens and its in-flight marker: the newest recorded, if any, are returned (the
    /// generation and the tokens), to be revoked.
    async fn retire(&self, family: &str, ttl: Duration) -> Result<Option<(u64, String)>>;
}
