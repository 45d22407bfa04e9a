//! The access and refresh tokens issued by the token endpoint, in families.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use audius_login::login_url::normalize_api_key;
use audius_login::{Scope, UserId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::Serialize;
use time::OffsetDateTime;

/// How long an access token lives: one hour.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a refresh token lives: 30 days from its issue.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default number of token families kept at once: 10,000 (dead ones are pruned first, then the
/// oldest).
pub(crate) const DEFAULT_FAMILY_CAPACITY: usize = 10_000;
/// Most tokens one family keeps (access and refresh, used ones included); beyond, the oldest
/// used refresh tokens are forgotten.
pub(crate) const MAX_TOKENS_PER_FAMILY: usize = 2_000;

/// A fresh opaque token: 32 random bytes, base64url (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A pair issued by the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IssuedTokens {
    /// The access token (43 characters).
    pub access_token: String,
    /// The refresh token (43 characters).
    pub refresh_token: String,
    /// The access token's lifetime in seconds (3600).
    pub expires_in: u64,
    /// The scope granted.
    pub scope: Scope,
}

impl IssuedTokens {
    /// The token endpoint's success body (PKCE spec section 2).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope.as_str(),
        })
    }
}

/// What a valid access token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AccessGrant {
    /// The app the tokens were issued to.
    pub client_id: String,
    /// The user the app acts for.
    pub user_id: UserId,
    /// The scope granted.
    pub scope: Scope,
    /// When this access token was issued (the sandbox's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// The family (every token descended from one code).
    pub family: u64,
}

/// Why a refresh token is refused. Each is `invalid_grant` on the wire, with its own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// Unknown (or an access token, or its family was revoked or forgotten).
    #[error("Invalid refresh token")]
    Invalid,
    /// Already used: the whole family is now revoked.
    #[error("Token reuse detected")]
    Reused,
    /// Older than [`REFRESH_TOKEN_LIFETIME`].
    #[error("Refresh token expired")]
    Expired,
    /// `client_id` given and not the family's app.
    #[error("client_id mismatch")]
    ClientMismatch,
}

/// Why an access token is refused: `401 {"code": 401, "error": <text>}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// No `Authorization: Bearer` header.
    #[error("Missing or invalid Authorization header: a Bearer access token is required")]
    Missing,
    /// Unknown (or a refresh token).
    #[error("Invalid access token")]
    Invalid,
    /// Older than [`ACCESS_TOKEN_LIFETIME`].
    #[error("Access token expired")]
    Expired,
    /// Its family was revoked (logout, or refresh-token reuse).
    #[error("Access token revoked")]
    Revoked,
}

#[derive(Debug)]
struct Family {
    client_id: String,
    user_id: UserId,
    scope: Scope,
    revoked: bool,
    created_at: OffsetDateTime,
    /// When its newest refresh token was issued: the family is dead 30 days after.
    last_issued_at: OffsetDateTime,
    /// Every token of the family, oldest first, with whether it is a refresh token.
    tokens: Vec<(String, bool)>,
}

#[derive(Debug, Clone, Copy)]
struct TokenRecord {
    family: u64,
    issued_at: OffsetDateTime,
    used: bool,
}

#[derive(Debug, Default)]
struct TokenState {
    next_family: u64,
    families: HashMap<u64, Family>,
    access: HashMap<String, TokenRecord>,
    refresh: HashMap<String, TokenRecord>,
}

impl TokenState {
    fn forget_family(&mut self, id: u64) {
        if let Some(family) = self.families.remove(&id) {
            for (token, is_refresh) in family.tokens {
                if is_refresh {
                    self.refresh.remove(&token);
                } else {
                    self.access.remove(&token);
                }
            }
        }
    }

    fn revoke_family(&mut self, id: u64) {
        if let Some(family) = self.families.get_mut(&id) {
            family.revoked = true;
        }
    }

    /// Issues a new pair into an existing family.
    fn issue_into(&mut self, id: u64, now: OffsetDateTime) -> Option<IssuedTokens> {
        let access_token = random_token();
        let refresh_token = random_token();
        let record = TokenRecord {
            family: id,
            issued_at: now,
            used: false,
        };
        let family = self.families.get_mut(&id)?;
        family.last_issued_at = now;
        family.tokens.push((access_token.clone(), false));
        family.tokens.push((refresh_token.clone(), true));
        let scope = family.scope;
        let mut dropped = Vec::new();
        if family.tokens.len() > MAX_TOKENS_PER_FAMILY {
            // Forget the oldest tokens other than the two just issued.
            let excess = family.tokens.len() - MAX_TOKENS_PER_FAMILY;
            dropped = family.tokens.drain(..excess).collect();
        }
        for (token, is_refresh) in dropped {
            if is_refresh {
                self.refresh.remove(&token);
            } else {
                self.access.remove(&token);
            }
        }
        self.access.insert(access_token.clone(), record);
        self.refresh.insert(refresh_token.clone(), record);
        Some(IssuedTokens {
            access_token,
            refresh_token,
            expires_in: ACCESS_TOKEN_LIFETIME.as_secs(),
            scope,
        })
    }
}

/// The access and refresh tokens issued by `POST /v1/oauth/token`, grouped in families (every
/// token descended from one code). Shared by every host of a sandbox.
///
/// ```
/// use audius_login::{Scope, UserId};
/// use audius_sandbox::oauth::{RefreshError, TokenStore, BUILTIN_APP_API_KEY};
///
/// let store = TokenStore::default();
/// let now = time::OffsetDateTime::now_utc();
/// let first = store.issue(BUILTIN_APP_API_KEY, UserId::new(44), Scope::Write, now);
/// assert_eq!(store.authenticate(&first.access_token, now)?.user_id, UserId::new(44));
///
/// // Refresh tokens rotate; presenting a used one again revokes the whole family.
/// let second = store.refresh(&first.refresh_token, None, now).unwrap();
/// assert_eq!(store.refresh(&first.refresh_token, None, now), Err(RefreshError::Reused));
/// assert!(store.authenticate(&second.access_token, now).is_err());
/// assert_eq!(store.refresh(&second.refresh_token, None, now), Err(RefreshError::Invalid));
/// # Ok::<(), audius_sandbox::oauth::AccessError>(())
/// ```
#[derive(Debug)]
pub struct TokenStore {
    state: Mutex<TokenState>,
    capacity: usize,
}

impl Default for TokenStore {
    /// A store of 10,000 families.
    fn default() -> Self {
        Self::with_capacity(DEFAULT_FAMILY_CAPACITY)
    }
}

impl TokenStore {
    /// A store keeping at most `families` token families (at least 1).
    pub(crate) fn with_capacity(families: usize) -> Self {
        Self {
            state: Mutex::new(TokenState::default()),
            capacity: families.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a family (a successful code exchange) and issues its first pair. At capacity,
    /// revoked and expired families are forgotten first, then the oldest.
    pub fn issue(
        &self,
        client_id: &str,
        user_id: UserId,
        scope: Scope,
        now: OffsetDateTime,
    ) -> IssuedTokens {
        let mut state = self.lock();
        if state.families.len() >= self.capacity {
            let dead: Vec<u64> = state
                .families
                .iter()
                .filter(|(_, f)| f.revoked || now >= f.last_issued_at + REFRESH_TOKEN_LIFETIME)
                .map(|(id, _)| *id)
                .collect();
            for id in dead {
                state.forget_family(id);
            }
        }
        while state.families.len() >= self.capacity {
            let oldest = state
                .families
                .iter()
                .min_by_key(|(id, f)| (f.created_at, **id))
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => state.forget_family(id),
                None => break,
            }
        }
        let id = state.next_family;
        state.next_family += 1;
        state.families.insert(
            id,
            Family {
                client_id: client_id.to_owned(),
                user_id,
                scope,
                revoked: false,
                created_at: now,
                last_issued_at: now,
                tokens: Vec::new(),
            },
        );
        state
            .issue_into(id, now)
            .expect("the family was inserted just above")
    }

    /// Rotates a refresh token: marks it used and issues a new pair in its family. A used token
    /// presented again revokes the whole family ([`RefreshError::Reused`]). A `client_id`, when
    /// given, must be the family's app (`0x` optional, any case); a mismatch changes nothing.
    pub fn refresh(
        &self,
        refresh_token: &str,
        client_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<IssuedTokens, RefreshError> {
        let mut state = self.lock();
        let record = *state
            .refresh
            .get(refresh_token)
            .ok_or(RefreshError::Invalid)?;
        let family = state
            .families
            .get(&record.family)
            .ok_or(RefreshError::Invalid)?;
        if let Some(given) = client_id
            && normalize_api_key(given).ok().as_deref() != Some(family.client_id.as_str())
        {
            return Err(RefreshError::ClientMismatch);
        }
        if record.used {
            tracing::info!(
                family = record.family,
                "refresh token reuse detected; revoking the family"
            );
            state.revoke_family(record.family);
            return Err(RefreshError::Reused);
        }
        if family.revoked {
            return Err(RefreshError::Invalid);
        }
        if now >= record.issued_at + REFRESH_TOKEN_LIFETIME {
            return Err(RefreshError::Expired);
        }
        if let Some(r) = state.refresh.get_mut(refresh_token) {
            r.used = true;
        }
        state
            .issue_into(record.family, now)
            .ok_or(RefreshError::Invalid)
    }

    /// Revokes the family of `token` (an access or a refresh token). `false` when the token is
    /// unknown (which the endpoint does not reveal: it answers `200 {}` either way).
    pub fn revoke(&self, token: &str) -> bool {
        let mut state = self.lock();
        let family = state
            .access
            .get(token)
            .or_else(|| state.refresh.get(token))
            .map(|r| r.family);
        match family {
            Some(id) => {
                state.revoke_family(id);
                true
            }
            None => false,
        }
    }

    /// What an access token grants at `now`, or why it is refused.
    pub fn authenticate(
        &self,
        access_token: &str,
        now: OffsetDateTime,
    ) -> Result<AccessGrant, AccessError> {
        let state = self.lock();
        let record = state.access.get(access_token).ok_or(AccessError::Invalid)?;
        let family = state
            .families
            .get(&record.family)
            .ok_or(AccessError::Invalid)?;
        if family.revoked {
            return Err(AccessError::Revoked);
        }
        if now >= record.issued_at + ACCESS_TOKEN_LIFETIME {
            return Err(AccessError::Expired);
        }
        Ok(AccessGrant {
            client_id: family.client_id.clone(),
            user_id: family.user_id,
            scope: family.scope,
            issued_at: record.issued_at,
            family: record.family,
        })
    }

    /// Whether the family of `token` (access or refresh) was revoked; `None` for an unknown
    /// token.
    pub fn is_revoked(&self, token: &str) -> Option<bool> {
        let state = self.lock();
        let record = state
            .access
            .get(token)
            .or_else(|| state.refresh.get(token))?;
        state.families.get(&record.family).map(|f| f.revoked)
    }

    /// How many families are kept (revoked ones included, until pruned).
    pub fn families(&self) -> usize {
        self.lock().families.len()
    }

    /// Forgets every token.
    pub fn clear(&self) {
        *self.lock() = TokenState::default();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::oauth::BUILTIN_APP_API_KEY;

    #[test]
    fn token_families() {
        let store = TokenStore::default();
        let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let first = store.issue(BUILTIN_APP_API_KEY, UserId::new(7), Scope::Read, t0);
        assert_eq!(first.access_token.len(), 43);
        assert_eq!(first.refresh_token.len(), 43);
        assert_eq!(first.to_json()["token_type"], "Bearer");
        assert_eq!(first.to_json()["expires_in"], 3600);
        let grant = store.authenticate(&first.access_token, t0).unwrap();
        assert_eq!((grant.user_id, grant.scope), (UserId::new(7), Scope::Read));
        assert_eq!(
            store.authenticate(&first.refresh_token, t0),
            Err(AccessError::Invalid),
            "a refresh token is not an access token"
        );
        assert_eq!(
            store.authenticate(&first.access_token, t0 + ACCESS_TOKEN_LIFETIME),
            Err(AccessError::Expired)
        );
        assert_eq!(
            store.refresh(&first.access_token, None, t0),
            Err(RefreshError::Invalid),
            "an access token is not a refresh token"
        );
        assert_eq!(
            store.refresh(&first.refresh_token, Some(&"ff".repeat(20)), t0),
            Err(RefreshError::ClientMismatch)
        );
        let upper = format!("0x{}", BUILTIN_APP_API_KEY.to_ascii_uppercase());
        let second = store
            .refresh(
                &first.refresh_token,
                Some(&upper),
                t0 + Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(second.scope, Scope::Read);
        // The old access token still works until it expires.
        assert!(store.authenticate(&first.access_token, t0).is_ok());
        assert_eq!(
            store.refresh(&first.refresh_token, None, t0),
            Err(RefreshError::Reused)
        );
        assert_eq!(
            store.authenticate(&second.access_token, t0),
            Err(AccessError::Revoked)
        );
        assert_eq!(
            store.refresh(&second.refresh_token, None, t0),
            Err(RefreshError::Invalid)
        );
        assert_eq!(store.is_revoked(&second.refresh_token), Some(true));
        assert_eq!(store.is_revoked("nope"), None);

        // Expiry of a refresh token, and revocation by either token.
        let other = store.issue(BUILTIN_APP_API_KEY, UserId::new(8), Scope::Write, t0);
        assert_eq!(
            store.refresh(&other.refresh_token, None, t0 + REFRESH_TOKEN_LIFETIME),
            Err(RefreshError::Expired)
        );
        assert!(store.revoke(&other.access_token));
        assert!(!store.revoke("unknown"));
        assert_eq!(
            store.refresh(&other.refresh_token, None, t0),
            Err(RefreshError::Invalid)
        );
    }

    #[test]
    fn token_store_is_bounded() {
        let store = TokenStore::with_capacity(2);
        let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let a = store.issue(BUILTIN_APP_API_KEY, UserId::new(1), Scope::Read, t0);
        let b = store.issue(BUILTIN_APP_API_KEY, UserId::new(2), Scope::Read, t0);
        store.revoke(&b.access_token);
        let c = store.issue(BUILTIN_APP_API_KEY, UserId::new(3), Scope::Read, t0);
        assert_eq!(store.families(), 2, "the revoked family went first");
        assert!(store.authenticate(&a.access_token, t0).is_ok());
        assert_eq!(store.is_revoked(&b.access_token), None);
        let d = store.issue(BUILTIN_APP_API_KEY, UserId::new(4), Scope::Read, t0);
        assert_eq!(store.is_revoked(&a.access_token), None, "then the oldest");
        assert!(store.authenticate(&c.access_token, t0).is_ok());
        assert!(store.authenticate(&d.access_token, t0).is_ok());

        // A family keeps a bounded number of tokens, the newest ones.
        let store = TokenStore::default();
        let mut pair = store.issue(BUILTIN_APP_API_KEY, UserId::new(1), Scope::Read, t0);
        let first = pair.refresh_token.clone();
        for _ in 0..MAX_TOKENS_PER_FAMILY {
            pair = store.refresh(&pair.refresh_token, None, t0).unwrap();
        }
        assert_eq!(
            store.refresh(&first, None, t0),
            Err(RefreshError::Invalid),
            "forgotten"
        );
        assert!(store.refresh(&pair.refresh_token, None, t0).is_ok());
    }
}
