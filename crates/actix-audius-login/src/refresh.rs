//! The code flow's tokens in the session, and their refresh: one refresh per session, and the
//! newest tokens win, within a process and, with a shared replay cache (Redis), across app
//! instances.
//!
//! A refresh token can be used once: Audius answers a second use with "Token reuse detected"
//! and revokes the whole family, which signs the user out. So a session must never refresh
//! twice with the same refresh token, even when a page fires ten API calls at once and every
//! one of them finds the access token expired. This process keeps, per session (keyed by a
//! random family id stored with the tokens at login, so the key is bound to the session and
//! survives session renewal), a lock and the newest tokens it knows (a bounded LRU map,
//! [`Limits::tracked_sessions`](crate::Limits::tracked_sessions)):
//!
//! 1. a request that needs a refresh takes the session's lock; the first one refreshes, records
//!    the new tokens (generation + 1) and writes them to its session;
//! 2. the others wait on the lock, then find tokens newer than their own and use those, and
//!    write them to their sessions too: one `POST /v1/oauth/token` in all;
//! 3. every request whose session changes (whatever the handler did) and carries tokens older
//!    than the newest known has them replaced on the way out (in the middleware), and a request
//!    that arrives with a stale cookie adopts the newest tokens before using them. So every
//!    `Set-Cookie` the browser receives after the refresh carries the newest tokens, whichever
//!    of the concurrent answers it processes last, and a stale cookie is never used to refresh.
//!
//! # Across instances
//!
//! When the replay cache is shared and offers it
//! ([`ReplayCache::refresh_coordination`]; `RedisReplayCache` does), the process lock is only
//! the first stage (one attempt per process and session at a time), and the second is shared
//! ([`RefreshCoordination`], in Redis: a lock per family with a random owner and a time to
//! live, the family's newest tokens and its "dead" mark):
//!
//! - the request that holds the process lock asks the shared state: the family is dead (sign
//!   out), or newer tokens were recorded by another instance (use them, and remember them in
//!   this process: no refresh), or it takes the shared lock, or another instance holds it (wait,
//!   polling, at most the lock's time to live, then `503 session_unavailable`);
//! - the holder refreshes at Audius, bounded by the API client's
//!   [`call_budget`](audius_login::ApiClient::call_budget); the lock's time to live is that
//!   budget plus two shared-state calls and a second, and the holder's deadline is counted from
//!   before it asked for the lock, so a lock cannot expire while its holder may still present
//!   the token (a holder granted the lock too late gives it back unsent), and a crashed holder
//!   blocks the family for that long at most;
//! - with the lock, the holder leaves an in-flight marker (the generation it presents): until
//!   the next generation is published (or the holder says it did not present the token), no
//!   other instance presents that token, even after the lock expired: it answers `503
//!   session_unavailable` for the holder's in-doubt window (ten locks' times to live, during
//!   which a holder that could not publish keeps trying in the background), then signs the
//!   session out;
//! - the refresh runs in a task of its own, which the request awaits: a dropped request
//!   future (a client hanging up, an app's deadline) cuts nothing;
//! - the new tokens are published (never over a newer generation, never into a dead family),
//!   then the lock is released by its owner only (compare-and-delete);
//! - a logout (or a refusal by Audius) marks the family dead in the shared state, atomically
//!   taking back its newest tokens, which are the ones revoked.
//!
//! A shared state that cannot be reached answers `503 session_unavailable`: never a refresh
//! without coordination. The tokens sit in Redis as the session does (see SECURITY.md), for no
//! longer than the refresh token lives (30 days).
//!
//! Without a shared replay cache the coordination is per process: several app instances behind
//! a load balancer should route a session to one instance (sticky sessions); otherwise two
//! instances may refresh the same token and Audius' reuse detection will sign the user out
//! (safe, but a new login). In every setup a refresh whose answer is lost (a timeout after
//! Audius received it) uses the refresh token up: the next refresh is refused and the user logs
//! in again.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_session::{Session, SessionExt as _, SessionStatus};
use actix_web::HttpRequest;
use audius_login::defaults::REFRESH_TOKEN_LIFETIME;
use audius_login::oauth::{AccessToken, OAuthClient, RefreshToken, TokenSet};
use audius_login::replay::{BeginRefresh, LockOwner, Published, RefreshCoordination, ReplayCache};
use audius_login::{ErrorKind, Scope};
use base64::Engine as _;
use lru::LruCache;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::Config;
use crate::error::AudiusLoginError;
use crate::session::TOKENS_KEY;

/// The code flow's tokens, as kept in the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredTokens {
    /// A random id chosen at login: the key of this session's lock and newest tokens.
    #[serde(rename = "f")]
    pub(crate) family: String,
    /// The user the tokens act for.
    #[serde(rename = "u")]
    pub(crate) user_id: u64,
    #[serde(rename = "a")]
    pub(crate) access: AccessToken,
    #[serde(rename = "r")]
    pub(crate) refresh: RefreshToken,
    /// When the access token expires (Unix seconds, the app's clock).
    #[serde(rename = "e")]
    pub(crate) expires_at: i64,
    #[serde(rename = "s")]
    pub(crate) scope: Scope,
    /// 0 at login, + 1 at each refresh.
    #[serde(rename = "g")]
    pub(crate) generation: u64,
}

impl StoredTokens {
    /// The tokens of a fresh login, with a new family id.
    pub(crate) fn new(set: TokenSet, user_id: u64, now: OffsetDateTime) -> Self {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        Self {
            family: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id),
            user_id,
            expires_at: set.expires_at(now).unix_timestamp(),
            access: set.access_token,
            refresh: set.refresh_token,
            scope: set.scope,
            generation: 0,
        }
    }

    /// The tokens after a refresh.
    fn rotated(&self, set: TokenSet, now: OffsetDateTime) -> Self {
        Self {
            family: self.family.clone(),
            user_id: self.user_id,
            expires_at: set.expires_at(now).unix_timestamp(),
            access: set.access_token,
            refresh: set.refresh_token,
            scope: set.scope,
            generation: self.generation + 1,
        }
    }

    pub(crate) fn expiring(&self, now: OffsetDateTime, margin: Duration) -> bool {
        let margin = i64::try_from(margin.as_secs()).unwrap_or(i64::MAX);
        now.unix_timestamp().saturating_add(margin) >= self.expires_at
    }
}

/// What this process knows of one session's tokens.
#[derive(Debug, Default)]
struct Latest {
    tokens: Option<StoredTokens>,
    /// Revoked (logout) or refused by Audius: never refresh again.
    dead: bool,
}

/// One session's refresh lock and newest tokens.
#[derive(Debug, Default)]
pub(crate) struct FamilyState {
    /// Owned guards: the refresh that holds it runs in a task of its own.
    refresh_lock: Arc<tokio::sync::Mutex<()>>,
    latest: Mutex<Latest>,
}

impl FamilyState {
    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `tokens` as the newest unless newer ones are known (never an older
    /// generation over a newer one); gives them back.
    fn record(&self, tokens: StoredTokens) -> StoredTokens {
        let mut latest = self.latest();
        let newer_known = matches!(&latest.tokens, Some(t) if t.generation >= tokens.generation);
        if !newer_known && !latest.dead {
            latest.tokens = Some(tokens.clone());
        }
        tokens
    }

    /// Revoked or refused: never refresh again.
    fn mark_dead(&self) {
        let mut latest = self.latest();
        latest.dead = true;
        latest.tokens = None;
    }
}

/// The sessions this process tracks: a bounded LRU map from family id to [`FamilyState`],
/// allocated as it fills (not up front).
pub(crate) struct Families {
    map: Mutex<LruCache<String, Arc<FamilyState>>>,
    capacity: usize,
}

impl fmt::Debug for Families {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Families")
            .field("tracked", &self.lock().len())
            .finish()
    }
}

/// What a newer-tokens check found.
pub(crate) enum Known {
    /// Nothing newer than what the session holds.
    Same,
    /// Newer tokens.
    Newer(StoredTokens),
    /// The family is revoked.
    Dead,
}

impl Families {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(LruCache::unbounded()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<FamilyState>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, family: &str) -> Arc<FamilyState> {
        let mut map = self.lock();
        if let Some(state) = map.get(family) {
            return state.clone();
        }
        let state = Arc::new(FamilyState::default());
        if map.len() >= self.capacity {
            map.pop_lru();
        }
        map.put(family.to_owned(), state.clone());
        state
    }

    fn peek(&self, family: &str) -> Option<Arc<FamilyState>> {
        self.lock().get(family).cloned()
    }

    pub(crate) fn known(&self, tokens: &StoredTokens) -> Known {
        let Some(state) = self.peek(&tokens.family) else {
            return Known::Same;
        };
        let latest = state.latest();
        if latest.dead {
            return Known::Dead;
        }
        match &latest.tokens {
            Some(t) if t.generation > tokens.generation => Known::Newer(t.clone()),
            _ => Known::Same,
        }
    }

    /// Marks a family revoked: no refresh will be tried with it again.
    pub(crate) fn mark_dead(&self, family: &str) {
        self.entry(family).mark_dead();
    }

    /// The newest refresh token known for these tokens (theirs, or a newer one).
    fn newest(&self, tokens: &StoredTokens) -> StoredTokens {
        match self.known(tokens) {
            Known::Newer(t) => t,
            _ => tokens.clone(),
        }
    }

    /// How many sessions are tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The tokens in the session, if any; an unreadable entry is removed.
pub(crate) fn read_tokens(session: &Session) -> Option<StoredTokens> {
    match session.get::<StoredTokens>(TOKENS_KEY) {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable Audius tokens in the session; dropping them");
            session.remove(TOKENS_KEY);
            None
        }
    }
}

pub(crate) fn write_tokens(
    session: &Session,
    tokens: &StoredTokens,
) -> Result<(), AudiusLoginError> {
    session
        .insert(TOKENS_KEY, tokens)
        .map_err(AudiusLoginError::from)
}

/// The middleware's last step: when the session changed during the request and carries tokens
/// older than the newest this process knows, the newest replace them, so that the cookie (or
/// server-side state) written last always holds the newest tokens.
pub(crate) fn upgrade_session_tokens(req: &HttpRequest, families: &Families) {
    let session = req.get_session();
    if !matches!(
        session.status(),
        SessionStatus::Changed | SessionStatus::Renewed
    ) {
        return;
    }
    let Some(tokens) = read_tokens(&session) else {
        return;
    };
    if let Known::Newer(newer) = families.known(&tokens) {
        tracing::debug!(
            generation = newer.generation,
            "replacing stale Audius tokens in the session"
        );
        if let Err(e) = write_tokens(&session, &newer) {
            tracing::warn!(error = %e, "could not write the newest Audius tokens");
        }
    }
}

/// Revokes the session's tokens at Audius (best effort: a failure is logged) and forgets them
/// here and, with a shared replay cache, in the shared state (the family is marked dead there,
/// so no instance refreshes it again). Bounded by the API client's and the cache's timeouts.
pub(crate) async fn revoke(config: &Config, families: &Families, tokens: &StoredTokens) {
    let newest = retire(families, tokens);
    let newest = retire_shared(config.replay_cache.as_ref(), newest).await;
    send_revocation(&config.oauth, &newest).await;
}

/// Revokes tokens that never reached a session (a login that failed after the code exchange):
/// no request, in this process or another, can know their family, so only Audius is told.
pub(crate) async fn revoke_new(config: &Config, tokens: &StoredTokens) {
    send_revocation(&config.oauth, tokens).await;
}

/// As [`revoke`], without waiting: spawned on the current tokio runtime, if there is one. The
/// family is retired in this process at once (no refresh after this call), in the shared state
/// by the spawned task.
pub(crate) fn revoke_in_background(config: &Config, families: &Families, tokens: StoredTokens) {
    let newest = retire(families, &tokens);
    let oauth = config.oauth.clone();
    let cache = config.replay_cache.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                let newest = retire_shared(cache.as_ref(), newest).await;
                send_revocation(&oauth, &newest).await;
            });
        }
        Err(_) => tracing::warn!("no runtime to revoke the Audius tokens on; not revoked"),
    }
}

/// Marks the family dead here and gives the newest tokens known for it (the ones to revoke:
/// the session may hold an older, already rotated refresh token). The newest must be read
/// before the family is marked dead, which forgets them.
fn retire(families: &Families, tokens: &StoredTokens) -> StoredTokens {
    let newest = families.newest(tokens);
    families.mark_dead(&tokens.family);
    newest
}

/// With a shared replay cache that coordinates refreshes: marks the family dead there, and
/// gives the newest of `newest` and the tokens recorded there (a failure is logged: the
/// revocation at Audius still ends the family, and other instances learn it from Audius'
/// refusal).
async fn retire_shared(cache: &dyn ReplayCache, newest: StoredTokens) -> StoredTokens {
    let Some(shared) = cache.refresh_coordination() else {
        return newest;
    };
    match shared.retire(&newest.family, REFRESH_TOKEN_LIFETIME).await {
        Ok(Some((generation, text))) if generation > newest.generation => {
            match shared_tokens(&newest, generation, &text) {
                Ok(recorded) => recorded,
                Err(_) => {
                    tracing::warn!(
                        "unreadable Audius tokens in the shared state; revoking the session's"
                    );
                    newest
                }
            }
        }
        Ok(_) => newest,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "could not mark the Audius tokens revoked in the shared state; other \
                 instances learn it from Audius"
            );
            newest
        }
    }
}

async fn send_revocation(oauth: &OAuthClient, tokens: &StoredTokens) {
    match oauth.revoke(tokens.refresh.secret()).await {
        Ok(()) => tracing::debug!("revoked the Audius tokens"),
        Err(e) => tracing::warn!(error = %e, "could not revoke the Audius tokens (ignored)"),
    }
}

/// Why a refresh did not give tokens.
pub(crate) enum RefreshFailure {
    /// The family is revoked (or the token refused): the user must log in again.
    Revoked(String),
    /// Audius (or the shared state of a coordinated refresh) could not be reached or answered
    /// oddly: try again later.
    Failed(audius_login::Error),
}

/// Refreshes `seen` (the session's tokens), at most once per session at a time, in this
/// process and, with a shared replay cache that coordinates refreshes, across instances: see
/// the [module docs](self).
///
/// Once this process' lock is taken, the refresh runs in a task of its own, which the request
/// awaits: a request future that is dropped (the client hung up, an app's deadline) never
/// cuts a refresh between Audius' answer and its publication, nor strands the shared lock.
pub(crate) async fn refresh(
    config: &Config,
    families: &Families,
    seen: &StoredTokens,
) -> Result<StoredTokens, RefreshFailure> {
    let family = families.entry(&seen.family);
    // Every wait of this request, for this process' lock and then for another instance's
    // refresh, ends by one deadline: the requests queued here never wait one after another.
    let shared = config.replay_cache.refresh_coordination();
    let give_up_at = Instant::now() + wait_bound(config, shared);
    let Ok(one_at_a_time) =
        tokio::time::timeout_at(give_up_at.into(), family.refresh_lock.clone().lock_owned()).await
    else {
        let message = "another request's refresh of this session did not finish in time";
        return Err(match shared {
            Some(_) => shared_state_unavailable(message.into()),
            None => RefreshFailure::Failed(audius_login::Error::UpstreamUnavailable {
                message: message.into(),
                status: None,
            }),
        });
    };
    {
        let latest = family.latest();
        if latest.dead {
            return Err(RefreshFailure::Revoked(
                "the Audius tokens of this session were revoked".into(),
            ));
        }
        if let Some(t) = &latest.tokens
            && t.generation > seen.generation
        {
            // Another request of this session refreshed while this one waited.
            return Ok(t.clone());
        }
    }
    let job = Job {
        oauth: config.oauth.clone(),
        cache: config.replay_cache.clone(),
        clock: config.clock.clone(),
        bounds: shared.map(|shared| Bounds::of(config, shared)),
        family,
        seen: seen.clone(),
        give_up_at,
    };
    let task = tokio::spawn(async move {
        let result = job.run().await;
        drop(one_at_a_time);
        result
    });
    match task.await {
        Ok(result) => result,
        Err(e) => Err(RefreshFailure::Failed(
            audius_login::Error::UpstreamUnavailable {
                message: format!("the token refresh task failed: {e}"),
                status: None,
            },
        )),
    }
}

/// The first pause of a request waiting for another instance's refresh; it doubles up to
/// [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two looks at the shared state while another instance refreshes.
const LONGEST_PAUSE: Duration = Duration::from_millis(200);
/// The longest pause between two attempts of the background publication.
const LONGEST_PUBLISH_PAUSE: Duration = Duration::from_secs(2);
/// What the holder keeps of its lock's time to live beyond its refresh and its publication.
const LOCK_MARGIN: Duration = Duration::from_millis(500);
/// The in-doubt window, in locks' times to live: how long a holder whose answer from Audius
/// could not be published keeps trying in the background, and how long other instances answer
/// 503 (rather than present the token again) before they sign the session out.
const IN_DOUBT_LOCKS: u32 = 10;

/// How long a coordinated refresh may hold the shared lock, and the lock's time to live.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// The bound on the refresh at Audius (the API client's call budget).
    refresh: Duration,
    /// The lock's time to live: the refresh, then two shared-state calls, and a second.
    lock_ttl: Duration,
    /// One shared-state call's bound.
    store_timeout: Duration,
    /// The holder's in-doubt window ([`IN_DOUBT_LOCKS`] locks' times to live).
    in_doubt: Duration,
}

impl Bounds {
    fn of(config: &Config, shared: &dyn RefreshCoordination) -> Self {
        let refresh = config.oauth.api().call_budget();
        let store_timeout = shared.call_timeout();
        let lock_ttl = refresh
            .saturating_add(store_timeout.saturating_mul(2))
            .saturating_add(Duration::from_secs(1));
        Self {
            refresh,
            lock_ttl,
            store_timeout,
            in_doubt: lock_ttl.saturating_mul(IN_DOUBT_LOCKS),
        }
    }
}

/// How long a request may wait for a refresh of its session by another request: without
/// coordination, one refresh at Audius (and a second); with it, a shared lock's whole time to
/// live and one more call (a holder that crashed blocks the family until its lock expires).
fn wait_bound(config: &Config, shared: Option<&dyn RefreshCoordination>) -> Duration {
    match shared {
        Some(shared) => Bounds::of(config, shared)
            .lock_ttl
            .saturating_add(shared.call_timeout()),
        None => config
            .oauth
            .api()
            .call_budget()
            .saturating_add(Duration::from_secs(1)),
    }
}

fn shared_state_unavailable(message: String) -> RefreshFailure {
    RefreshFailure::Failed(audius_login::Error::StoreUnavailable {
        store: "shared refresh state",
        message,
    })
}

/// The tokens another instance recorded, checked: they must be of the session's family and
/// user and of the generation announced (anything else is refused, never adopted).
fn shared_tokens(
    seen: &StoredTokens,
    generation: u64,
    text: &str,
) -> Result<StoredTokens, RefreshFailure> {
    let tokens: StoredTokens = serde_json::from_str(text).map_err(|e| {
        shared_state_unavailable(format!("unreadable tokens in the shared state: {e}"))
    })?;
    if tokens.family != seen.family
        || tokens.user_id != seen.user_id
        || tokens.generation != generation
    {
        return Err(shared_state_unavailable(
            "the shared state holds tokens of another session or generation".into(),
        ));
    }
    Ok(tokens)
}

/// Whether Audius surely did not rotate the tokens on this failure: it answered "slow down"
/// (429), or the request never left (no host could be connected to: the API client sends a
/// refresh to a second host only when the first did not receive it, so the last failure being
/// a connection failure means no host received it). Any other failure may have followed a
/// rotation: a timeout, a lost answer, a gateway's 5xx. (The API client's error carries no
/// "sent" flag; its words for a failed connection are the signal, pinned by
/// `a_refused_connection_is_known_not_to_have_rotated`.)
fn surely_not_rotated(e: &audius_login::Error) -> bool {
    match e {
        audius_login::Error::UpstreamUnavailable {
            status: Some(429), ..
        } => true,
        audius_login::Error::UpstreamUnavailable {
            status: None,
            message,
        } => message.ends_with(" could not be connected to") || message == "no host to try",
        _ => false,
    }
}

/// One refresh, owned (it runs in a task of its own; see [`refresh`]).
struct Job {
    oauth: OAuthClient,
    cache: Arc<dyn ReplayCache>,
    clock: Arc<dyn audius_login::clock::Clock>,
    /// With a shared state that coordinates refreshes: its bounds.
    bounds: Option<Bounds>,
    family: Arc<FamilyState>,
    seen: StoredTokens,
    give_up_at: Instant,
}

impl Job {
    async fn run(self) -> Result<StoredTokens, RefreshFailure> {
        if let Some(bounds) = self.bounds {
            return self.coordinated(bounds).await;
        }
        let seen = &self.seen;
        tracing::debug!(
            generation = seen.generation,
            "refreshing the Audius access token"
        );
        match self.oauth.refresh(&seen.refresh).await {
            Ok(set) => {
                let fresh = seen.rotated(set, self.clock.now());
                self.family.latest().tokens = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) if e.kind() == ErrorKind::InvalidGrant => {
                tracing::info!(error = %e, "Audius refused the refresh token; the user must log in again");
                self.family.mark_dead();
                Err(RefreshFailure::Revoked(e.to_string()))
            }
            Err(e) => Err(RefreshFailure::Failed(e)),
        }
    }

    /// The refresh when the replay cache coordinates refreshes across instances (the process
    /// lock is held).
    async fn coordinated(self, bounds: Bounds) -> Result<StoredTokens, RefreshFailure> {
        let Some(shared) = self.cache.refresh_coordination() else {
            return Err(shared_state_unavailable(
                "the replay cache stopped coordinating refreshes".into(),
            ));
        };
        let (family, seen) = (&self.family, &self.seen);
        let owner = LockOwner::random();
        let mut pause = FIRST_PAUSE;
        let asked = loop {
            // Before `begin` is sent: the lock cannot have been set earlier, so a deadline
            // counted from here ends before the lock expires, however late the answer comes.
            let asked = Instant::now();
            match shared
                .begin_marked(
                    &seen.family,
                    seen.generation,
                    &owner,
                    bounds.lock_ttl,
                    bounds.in_doubt,
                )
                .await
            {
                Ok(BeginRefresh::Locked) => break asked,
                Ok(BeginRefresh::Newer { generation, tokens }) => {
                    let newer = shared_tokens(seen, generation, &tokens)?;
                    tracing::debug!(
                        generation,
                        "another instance refreshed the Audius tokens; using theirs"
                    );
                    return Ok(family.record(newer));
                }
                Ok(BeginRefresh::Dead) => {
                    family.mark_dead();
                    return Err(RefreshFailure::Revoked(
                        "the Audius tokens of this session were revoked".into(),
                    ));
                }
                Ok(BeginRefresh::InDoubt) => {
                    return Err(shared_state_unavailable(
                        "another instance sent this session's refresh token to Audius and has \
                         not recorded the answer yet"
                            .into(),
                    ));
                }
                Ok(BeginRefresh::Busy) => {
                    if Instant::now() + pause >= self.give_up_at {
                        return Err(shared_state_unavailable(format!(
                            "another instance's refresh of this session did not finish within {:?}",
                            bounds.lock_ttl
                        )));
                    }
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2).min(LONGEST_PAUSE);
                }
                Err(e) => {
                    // The lock (and marker) may have been taken even so (an answer that came
                    // too late): give them back, if Redis hears us. Nothing was sent to Audius.
                    let _ = shared.abandon(&seen.family, &owner).await;
                    return Err(RefreshFailure::Failed(e));
                }
            }
        };

        // The lock is ours until `asked + lock_ttl` at the latest; the refresh must end in
        // time to publish before then.
        let deadline = asked
            .checked_add(bounds.lock_ttl)
            .and_then(|t| t.checked_sub(bounds.store_timeout))
            .and_then(|t| t.checked_sub(LOCK_MARGIN))
            .unwrap_or(asked);
        if deadline.saturating_duration_since(Instant::now()) < bounds.refresh {
            // Too late (this process stalled after sending `begin`): the token is not sent.
            abandon(shared, &seen.family, &owner).await;
            return Err(shared_state_unavailable(
                "the shared refresh lock came too late to refresh within it".into(),
            ));
        }
        tracing::debug!(
            generation = seen.generation,
            "refreshing the Audius access token (coordinated)"
        );
        let sent = Instant::now();
        let outcome =
            tokio::time::timeout_at(deadline.into(), self.oauth.refresh(&seen.refresh)).await;
        let result = match outcome {
            Ok(Ok(set)) => {
                let fresh = seen.rotated(set, self.clock.now());
                // No longer than the new refresh token lives (it was issued after `sent`).
                let ttl = REFRESH_TOKEN_LIFETIME.saturating_sub(sent.elapsed());
                return self
                    .published(shared, bounds, asked, fresh, owner, ttl)
                    .await;
            }
            Ok(Err(e)) if e.kind() == ErrorKind::InvalidGrant => {
                tracing::info!(error = %e, "Audius refused the refresh token; the user must log in again");
                family.mark_dead();
                if let Err(dead) = shared.retire(&seen.family, REFRESH_TOKEN_LIFETIME).await {
                    tracing::warn!(error = %dead, "could not mark the Audius tokens dead in the shared state");
                }
                Err(RefreshFailure::Revoked(e.to_string()))
            }
            Ok(Err(e)) if surely_not_rotated(&e) => {
                abandon(shared, &seen.family, &owner).await;
                return Err(RefreshFailure::Failed(e));
            }
            // The token may have been used up at Audius: the in-flight marker stays, and other
            // instances will not present it again (503, then signed out past the window).
            Ok(Err(e)) => Err(RefreshFailure::Failed(e)),
            Err(_) => Err(RefreshFailure::Failed(
                audius_login::Error::UpstreamUnavailable {
                    message: format!(
                        "the token refresh did not finish within the shared lock ({:?})",
                        bounds.lock_ttl
                    ),
                    status: None,
                },
            )),
        };
        release(shared, &seen.family, &owner).await;
        result
    }

    /// Publishes the tokens the lock's holder obtained, then releases the lock.
    async fn published(
        &self,
        shared: &dyn RefreshCoordination,
        bounds: Bounds,
        asked: Instant,
        fresh: StoredTokens,
        owner: LockOwner,
        ttl: Duration,
    ) -> Result<StoredTokens, RefreshFailure> {
        let (family, seen) = (&self.family, &self.seen);
        let text = match serde_json::to_string(&fresh) {
            Ok(text) => text,
            Err(e) => {
                release(shared, &seen.family, &owner).await;
                return Err(shared_state_unavailable(format!(
                    "cannot write the tokens: {e}"
                )));
            }
        };
        let answer = shared
            .publish(&fresh.family, fresh.generation, &text, ttl)
            .await;
        match answer {
            Ok(Published::Stored) => {
                release(shared, &seen.family, &owner).await;
                Ok(family.record(fresh))
            }
            Ok(Published::Dead) => {
                // Logged out while this refresh ran: the new tokens are revoked too.
                release(shared, &seen.family, &owner).await;
                tracing::info!(
                    "the session logged out during its token refresh; revoking the new tokens"
                );
                family.mark_dead();
                send_revocation(&self.oauth, &fresh).await;
                Err(RefreshFailure::Revoked(
                    "the Audius tokens of this session were revoked".into(),
                ))
            }
            Ok(Published::Superseded { generation }) => {
                // Another holder recorded this generation or a newer one (only possible when
                // the shared state lost its data): those are left alone, and this session
                // keeps the tokens Audius just gave it.
                release(shared, &seen.family, &owner).await;
                tracing::warn!(
                    recorded = generation,
                    ours = fresh.generation,
                    "the shared state already holds newer Audius tokens; not overwritten"
                );
                Ok(family.record(fresh))
            }
            Err(e) => {
                // Audius rotated the tokens, and Redis failed: this request answers 503 like
                // any other Redis failure during a refresh, but the new tokens are not dropped
                // (that would leave the session a used refresh token). This process remembers
                // them (the session's next request here adopts them), and a background task
                // tries to record them in Redis for the whole in-doubt window (meanwhile the
                // in-flight marker keeps other instances from presenting the used token), so
                // that other instances adopt them.
                tracing::warn!(error = %e, "could not record the new Audius tokens in the shared state; retrying in the background");
                family.record(fresh.clone());
                let cache = self.cache.clone();
                let oauth = self.oauth.clone();
                let give_up_at = asked + bounds.in_doubt;
                tokio::spawn(async move {
                    publish_later(cache, oauth, fresh, text, owner, ttl, give_up_at).await;
                });
                Err(RefreshFailure::Failed(e))
            }
        }
    }
}

/// Tries to publish `tokens` until `give_up_at` (the end of the in-doubt window), with
/// backoff, then releases the lock.
async fn publish_later(
    cache: Arc<dyn ReplayCache>,
    oauth: OAuthClient,
    tokens: StoredTokens,
    text: String,
    owner: LockOwner,
    ttl: Duration,
    give_up_at: Instant,
) {
    let Some(shared) = cache.refresh_coordination() else {
        return;
    };
    let mut pause = FIRST_PAUSE;
    while Instant::now() + pause < give_up_at {
        tokio::time::sleep(pause).await;
        pause = pause.saturating_mul(2).min(LONGEST_PUBLISH_PAUSE);
        match shared
            .publish(&tokens.family, tokens.generation, &text, ttl)
            .await
        {
            Ok(Published::Dead) => {
                tracing::info!(
                    "the session logged out while its new Audius tokens were unrecorded; revoking them"
                );
                release(shared, &tokens.family, &owner).await;
                send_revocation(&oauth, &tokens).await;
                return;
            }
            Ok(answer) => {
                tracing::debug!(
                    ?answer,
                    "recorded the new Audius tokens in the shared state, late"
                );
                release(shared, &tokens.family, &owner).await;
                return;
            }
            Err(e) => tracing::debug!(error = %e, "the shared state is still unavailable"),
        }
    }
    tracing::warn!(
        "could not record the new Audius tokens in the shared state within the in-doubt \
         window; other instances will sign the session out"
    );
}

/// Releases the shared lock if `owner` still holds it (a failure is logged: the lock expires).
/// The in-flight marker stays.
async fn release(shared: &dyn RefreshCoordination, family: &str, owner: &LockOwner) {
    match shared.release(family, owner).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "the shared refresh lock had expired (or was taken over) before its release"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not release the shared refresh lock; it expires on its own")
        }
    }
}

/// Releases the shared lock and clears the in-flight marker: the token was not sent to Audius
/// (or surely not used). A failure is logged (the marker then stays: safe).
async fn abandon(shared: &dyn RefreshCoordination, family: &str, owner: &LockOwner) {
    if let Err(e) = shared.abandon(family, owner).await {
        tracing::warn!(error = %e, "could not clear the shared refresh lock and marker");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tokens(generation: u64) -> StoredTokens {
        StoredTokens {
            family: "fam".into(),
            user_id: 1,
            access: AccessToken::new(format!("a{generation}")),
            refresh: RefreshToken::new(format!("r{generation}")),
            expires_at: 1_000,
            scope: Scope::Read,
            generation,
        }
    }

    #[test]
    fn stored_tokens_do_not_print_secrets() {
        let t = tokens(0);
        let shown = format!("{t:?}");
        assert!(shown.contains("AccessToken(..)"), "{shown}");
        assert!(!shown.contains("a0") && !shown.contains("r0"), "{shown}");
        let json = serde_json::to_string(&t).unwrap();
        let back: StoredTokens = serde_json::from_str(&json).unwrap();
        assert_eq!(back.refresh.secret(), "r0");
    }

    #[test]
    fn expiry_with_margin() {
        let t = tokens(0);
        let at = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert!(!t.expiring(at(939), Duration::from_secs(60)));
        assert!(t.expiring(at(940), Duration::from_secs(60)));
        assert!(t.expiring(at(1_000), Duration::ZERO));
        assert!(t.expiring(at(0), Duration::MAX));
    }

    #[test]
    fn families_know_the_newest_and_the_dead() {
        let families = Families::new(2);
        assert!(matches!(families.known(&tokens(0)), Known::Same));
        let state = families.entry("fam");
        state.latest().tokens = Some(tokens(3));
        assert!(matches!(families.known(&tokens(3)), Known::Same));
        match families.known(&tokens(1)) {
            Known::Newer(t) => assert_eq!(t.generation, 3),
            _ => panic!("newer expected"),
        }
        assert_eq!(families.newest(&tokens(0)).refresh.secret(), "r3");
        families.mark_dead("fam");
        assert!(matches!(families.known(&tokens(5)), Known::Dead));
        // Bounded: the least recently used goes.
        families.entry("b");
        families.entry("c");
        assert_eq!(families.len(), 2);
        assert!(families.peek("fam").is_none());
    }

    #[test]
    fn retiring_a_stale_session_revokes_the_newest_tokens() {
        let families = Families::new(4);
        families.entry("fam").latest().tokens = Some(tokens(3));
        // The session still holds generation 1 (a stale cookie): generation 3 is revoked.
        let revoked = retire(&families, &tokens(1));
        assert_eq!(revoked.refresh.secret(), "r3");
        assert!(matches!(families.known(&tokens(3)), Known::Dead));
    }

    #[test]
    fn the_process_never_records_an_older_generation_over_a_newer() {
        let state = FamilyState::default();
        assert_eq!(state.record(tokens(2)).generation, 2);
        // A late holder's older tokens are given back to its request, not remembered.
        assert_eq!(state.record(tokens(1)).generation, 1);
        assert_eq!(state.latest().tokens.as_ref().unwrap().generation, 2);
        state.record(tokens(3));
        assert_eq!(state.latest().tokens.as_ref().unwrap().generation, 3);
        state.mark_dead();
        state.record(tokens(4));
        let latest = state.latest();
        assert!(latest.dead && latest.tokens.is_none(), "dead stays dead");
    }

    #[test]
    fn shared_tokens_of_another_session_are_never_adopted() {
        let seen = tokens(1);
        let text = |t: &StoredTokens| serde_json::to_string(t).unwrap();
        let newer = tokens(2);
        let adopted = shared_tokens(&seen, 2, &text(&newer)).ok().unwrap();
        assert_eq!(adopted.refresh.secret(), "r2");
        // Another family (a family id from another session), another user, a generation that
        // is not the one announced, or unreadable text: refused (503), never adopted.
        let mut other_family = tokens(2);
        other_family.family = "other".into();
        let mut other_user = tokens(2);
        other_user.user_id = 2;
        for bad in [
            text(&other_family),
            text(&other_user),
            text(&tokens(3)),
            "{".into(),
        ] {
            match shared_tokens(&seen, 2, &bad) {
                Err(RefreshFailure::Failed(e)) => {
                    assert_eq!(e.kind(), ErrorKind::StoreUnavailable, "{e}");
                }
                _ => panic!("adopted {bad}"),
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_known_not_to_have_rotated() {
        // A port nobody listens on: the request never leaves.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = audius_login::ApiClient::builder()
            .base_url(format!("http://127.0.0.1:{port}/").parse().unwrap())
            .max_attempts(1)
            .build()
            .unwrap();
        let e = OAuthClient::new(api)
            .refresh(&RefreshToken::new("r"))
            .await
            .err()
            .unwrap();
        assert!(surely_not_rotated(&e), "{e:?}");
        // An answer lost to a timeout, a 5xx, anything unexpected: maybe rotated.
        for maybe in [
            audius_login::Error::UpstreamUnavailable {
                message: "http://a/v1/oauth/token timed out".into(),
                status: None,
            },
            audius_login::Error::UpstreamUnavailable {
                message: "a answered HTTP 502".into(),
                status: Some(502),
            },
        ] {
            assert!(!surely_not_rotated(&maybe), "{maybe:?}");
        }
        assert!(surely_not_rotated(
            &audius_login::Error::UpstreamUnavailable {
                message: "a answered HTTP 429".into(),
                status: Some(429),
            }
        ));
    }

    #[test]
    fn random_family_ids() {
        let set = |a: &str| {
            TokenSet::from_json(&serde_json::json!({
                "access_token": a, "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": "r", "scope": "read"
            }))
            .unwrap()
        };
        let now = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let a = StoredTokens::new(set("a"), 1, now);
        let b = StoredTokens::new(set("b"), 1, now);
        assert_eq!(a.family.len(), 22);
        assert_ne!(a.family, b.family);
        assert_eq!(a.expires_at, 3600);
        let c = a.rotated(set("c"), now);
        assert_eq!((c.family.as_str(), c.generation), (a.family.as_str(), 1));
    }
}
