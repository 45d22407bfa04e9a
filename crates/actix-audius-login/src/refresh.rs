//! The code flow's tokens in the session, and their refresh: one refresh per session, and the
//! newest tokens win.
//!
//!
//! A refresh token can be used once: Audius answers a second use with "Token reuse detected"
//! and revokes the whole family, which signs the user out. So a session must never refresh
//! twice with the same refresh token, even when a page fires ten API calls at once and every
//! one of them finds the access token expired. This process keeps, per session (keyed by a
//! random family id stored with the tokens at login, so the key is bound to the session and
//! survives session renewal), a lock and the newest tokens it knows (a bounded LRU map,
//! [`AudiusLoginBuilder::tracked_sessions`](crate::AudiusLoginBuilder::tracked_sessions)):
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
//! The coordination is per process. Several app instances behind a load balancer should route
//! a session to one instance (sticky sessions); otherwise two instances may refresh the same
//! token and Audius' reuse detection will sign the user out (safe, but a new login).
//! Likewise, a refresh whose answer is lost (a timeout after Audius received it) uses the
//! refresh token up: the next refresh is refused and the user logs in again.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_session::{Session, SessionExt as _, SessionStatus};
use actix_web::HttpRequest;
use audius_login::oauth::{AccessToken, OAuthClient, RefreshToken, TokenSet};
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
    refresh_lock: tokio::sync::Mutex<()>,
    latest: Mutex<Latest>,
}

impl FamilyState {
    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
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
        let state = self.entry(family);
        let mut latest = state.latest();
        latest.dead = true;
        latest.tokens = None;
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
/// here. Bounded by the API client's timeouts.
pub(crate) async fn revoke(oauth: &OAuthClient, families: &Families, tokens: &StoredTokens) {
    let newest = retire(families, tokens);
    send_revocation(oauth, &newest).await;
}

/// As [`revoke`], without waiting: spawned on the current tokio runtime, if there is one. The
/// family is retired at once (no refresh after this call).
pub(crate) fn revoke_in_background(oauth: &OAuthClient, families: &Families, tokens: StoredTokens) {
    let newest = retire(families, &tokens);
    let oauth = oauth.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move { send_revocation(&oauth, &newest).await });
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
    /// Audius could not be reached or answered oddly: try again later.
    Failed(audius_login::Error),
}

/// Refreshes `seen` (the session's tokens), at most once per session at a time: see the
/// [module docs](self).
pub(crate) async fn refresh(
    config: &Config,
    families: &Families,
    seen: &StoredTokens,
) -> Result<StoredTokens, RefreshFailure> {
    let family = families.entry(&seen.family);
    let _one_at_a_time = family.refresh_lock.lock().await;
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
    tracing::debug!(
        generation = seen.generation,
        "refreshing the Audius access token"
    );
    match config.oauth.refresh(&seen.refresh).await {
        Ok(set) => {
            let fresh = seen.rotated(set, config.clock.now());
            family.latest().tokens = Some(fresh.clone());
            Ok(fresh)
        }
        Err(e) if e.kind() == ErrorKind::InvalidGrant => {
            tracing::info!(error = %e, "Audius refused the refresh token; the user must log in again");
            let mut latest = family.latest();
            latest.dead = true;
            latest.tokens = None;
            Err(RefreshFailure::Revoked(e.to_string()))
        }
        Err(e) => Err(RefreshFailure::Failed(e)),
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
