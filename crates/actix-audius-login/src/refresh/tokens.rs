//! The code flow's tokens as the session keeps them, and what this process knows of each
//! session's newest ones (its [`Families`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use audius_login::Scope;
use audius_login::oauth::{AccessToken, OAuthClient, RefreshToken, TokenSet};
use base64::Engine as _;
use lru::LruCache;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
    pub(super) fn rotated(&self, set: TokenSet, now: OffsetDateTime) -> Self {
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
pub(super) struct Latest {
    pub(super) tokens: Option<StoredTokens>,
    /// Revoked (logout) or refused by Audius: never refresh again.
    pub(super) dead: bool,
}

/// One session's refresh lock and newest tokens.
#[derive(Debug, Default)]
pub(crate) struct FamilyState {
    /// Owned guards: the refresh that holds it runs in a task of its own.
    pub(super) refresh_lock: Arc<tokio::sync::Mutex<()>>,
    latest: Mutex<Latest>,
}

impl FamilyState {
    pub(super) fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `tokens` as the newest unless newer ones are known (never an older
    /// generation over a newer one); gives them back.
    pub(super) fn record(&self, tokens: StoredTokens) -> StoredTokens {
        let mut latest = self.latest();
        let newer_known = matches!(&latest.tokens, Some(t) if t.generation >= tokens.generation);
        if !newer_known && !latest.dead {
            latest.tokens = Some(tokens.clone());
        }
        tokens
    }

    /// Revoked or refused: never refresh again.
    pub(super) fn mark_dead(&self) {
        let mut latest = self.latest();
        latest.dead = true;
        latest.tokens = None;
    }
}

/// The sessions this process tracks: a bounded LRU map from family id to [`FamilyState`],
/// allocated as it fills (not up front).
pub(crate) struct Families {
    map: Mutex<LruCache<String, Arc<FamilyState>>>,
    /// Every family state by id, weakly: one evicted from the LRU while something still holds
    /// it (a refresh in flight, a late publication) is found again, so a session's state is
    /// never split in two (a logout marking a new state dead while the late publication holds
    /// the old one: review 6). Dead weak entries are swept as it grows.
    held: Mutex<HashMap<String, Weak<FamilyState>>>,
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
            held: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<FamilyState>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<FamilyState>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn entry(&self, family: &str) -> Arc<FamilyState> {
        let mut map = self.lock();
        if let Some(state) = map.get(family) {
            return state.clone();
        }
        let state = {
            let mut held = self.held();
            match held.get(family).and_then(Weak::upgrade) {
                Some(state) => state,
                None => {
                    if held.len() >= self.capacity.saturating_mul(2) {
                        held.retain(|_, state| state.strong_count() > 0);
                    }
                    let state = Arc::new(FamilyState::default());
                    held.insert(family.to_owned(), Arc::downgrade(&state));
                    state
                }
            }
        };
        if map.len() >= self.capacity {
            map.pop_lru();
        }
        map.put(family.to_owned(), state.clone());
        state
    }

    pub(super) fn peek(&self, family: &str) -> Option<Arc<FamilyState>> {
        let mut map = self.lock();
        if let Some(state) = map.get(family) {
            return Some(state.clone());
        }
        let state = self.held().get(family).and_then(Weak::upgrade)?;
        if map.len() >= self.capacity {
            map.pop_lru();
        }
        map.put(family.to_owned(), state.clone());
        Some(state)
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
    pub(super) fn newest(&self, tokens: &StoredTokens) -> StoredTokens {
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

/// Why a refresh did not give tokens.
pub(crate) enum RefreshFailure {
    /// The family is revoked (or the token refused): the user must log in again.
    Revoked(String),
    /// Audius (or the shared state of a coordinated refresh) could not be reached or answered
    /// oddly: try again later.
    Failed(audius_login::Error),
}

/// Revokes `tokens` at Audius (a failure is logged and ignored).
pub(super) async fn send_revocation(oauth: &OAuthClient, tokens: &StoredTokens) {
    match oauth.revoke(tokens.refresh.secret()).await {
        Ok(()) => tracing::debug!("revoked the Audius tokens"),
        Err(e) => tracing::warn!(error = %e, "could not revoke the Audius tokens (ignored)"),
    }
}
