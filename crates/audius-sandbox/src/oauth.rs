//! The authorization-code flow with PKCE (`docs/protocol-pkce.md`): registered developer apps,
//! the store of one-time codes issued by the login page, and the store of the access and
//! refresh tokens issued for them.
//!
//! The login page issues codes (`response_type=code`); the [`CodeStore`] keeps, for each, what
//! the exchange at `POST /v1/oauth/token` must check: the app, the redirect URI, the challenge,
//! the scope, the user, when it was issued (10-minute life, on the sandbox's clock) and whether
//! it was already used (the first attempt uses it up, even a failed one). The [`TokenStore`]
//! keeps the token families: one-hour access tokens, 30-day rotating refresh tokens, reuse
//! detection and revocation.
//!
//! ```
//! use audius_login::{Scope, UserId};
//! use audius_sandbox::oauth::{AuthorizationCode, CodeStore, pkce_challenge, verify_pkce};
//!
//! let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
//! let challenge = pkce_challenge(verifier);
//! assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"); // RFC 7636, appendix B
//!
//! let store = CodeStore::default();
//! let now = time::OffsetDateTime::now_utc();
//! let code = store.issue(AuthorizationCode::new(
//!     audius_sandbox::oauth::BUILTIN_APP_API_KEY, "postmessage", &challenge, Scope::Read,
//!     UserId::new(44), now,
//! ));
//! assert_eq!(code.len(), 43);
//! let grant = store.redeem(&code, now)?;
//! assert!(verify_pkce(verifier, &grant.code_challenge));
//! assert!(store.redeem(&code, now).is_err(), "a code is used once");
//! # Ok::<(), audius_sandbox::oauth::CodeError>(())
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use audius_login::login_url::normalize_api_key;
use audius_login::defaults::MAX_REDIRECT_URI_LEN;
use audius_login::{RedirectUri, Scope, UserId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

use crate::error::SandboxError;

/// The API key of the built-in app: `a0d105a0d105a0d105a0d105a0d105a0d105a0d1`.
pub const BUILTIN_APP_API_KEY: &str = "a0d105a0d105a0d105a0d105a0d105a0d105a0d1";
/// The name of the built-in app.
pub const BUILTIN_APP_NAME: &str = "Sandbox Demo App";
/// The redirect URIs registered for the built-in app.
pub const BUILTIN_APP_REDIRECT_URIS: [&str; 3] = [
    "http://127.0.0.1:8080/auth/audius/callback",
    "http://localhost:8080/auth/audius/callback",
    "postmessage",
];
/// Most redirect URIs one app may register.
pub const MAX_REDIRECT_URIS: usize = 50;
/// How long a code lives: 10 minutes.
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Default number of codes kept at once: 10,000 (expired ones are pruned first, then the
/// oldest).
pub const DEFAULT_CODE_CAPACITY: usize = 10_000;
/// Length of a code, of a PKCE verifier made from 32 bytes, and of an S256 challenge.
pub const CODE_LEN: usize = 43;

/// A registered developer app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeveloperApp {
    /// The app's name, shown on the login page.
    pub name: String,
    /// The app's key (`api_key` / `client_id`): 40 lower-case hex characters.
    pub api_key: String,
    /// The redirect URIs the app registered (exact match; `postmessage` any case).
    pub redirect_uris: Vec<String>,
}

impl DeveloperApp {
    /// An app. The key is normalised (`0x` removed, lower case); fails when the name is blank
    /// or over 256 characters, the key is not 40 hex characters, there are more than 50
    /// redirect URIs, or one of them breaks the rules of spec section 5.
    pub fn new(
        name: impl Into<String>,
        api_key: &str,
        redirect_uris: Vec<String>,
    ) -> Result<Self, SandboxError> {
        let name = name.into();
        if name.trim().is_empty() || name.chars().count() > 256 {
            return Err(SandboxError::Directory(
                "an app name is 1 to 256 characters, not blank".into(),
            ));
        }
        let api_key = normalize_api_key(api_key).map_err(|_| {
            SandboxError::Directory(format!(
                "app {name:?}: an API key is exactly 40 hex characters (0x optional)"
            ))
        })?;
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(SandboxError::Directory(format!(
                "app {name:?}: at most {MAX_REDIRECT_URIS} redirect URIs"
            )));
        }
        for uri in &redirect_uris {
            if uri.len() > MAX_REDIRECT_URI_LEN {
                return Err(SandboxError::Directory(format!(
                    "app {name:?}: a redirect URI is at most {MAX_REDIRECT_URI_LEN} characters"
                )));
            }
            RedirectUri::parse(uri)
                .map_err(|e| SandboxError::Directory(format!("app {name:?}: {uri:?}: {e}")))?;
        }
        Ok(Self {
            name,
            api_key,
            redirect_uris,
        })
    }

    /// The built-in app: [`BUILTIN_APP_NAME`], key [`BUILTIN_APP_API_KEY`], redirect URIs
    /// [`BUILTIN_APP_REDIRECT_URIS`].
    pub fn builtin() -> Self {
        Self {
            name: BUILTIN_APP_NAME.to_owned(),
            api_key: BUILTIN_APP_API_KEY.to_owned(),
            redirect_uris: BUILTIN_APP_REDIRECT_URIS.map(str::to_owned).to_vec(),
        }
    }

    /// Judges a `redirect_uri` for this app in the code flow: it must equal one of the
    /// registered URIs exactly (`postmessage` in any case); an app with none registered falls
    /// back to the rules of spec section 5, `http`/`https` only, and `postmessage`.
    pub fn check_redirect_uri(&self, uri: &str) -> Result<RedirectUri, String> {
        if self.redirect_uris.is_empty() {
            let parsed = RedirectUri::parse(uri).map_err(|e| e.to_string())?;
            return match &parsed {
                RedirectUri::Url(url) if !matches!(url.scheme(), "http" | "https") => Err(format!(
                    "the app registered no redirect URIs, so only http(s) URLs and postmessage \
                     are accepted, not {}:",
                    url.scheme()
                )),
                _ => Ok(parsed),
            };
        }
        let registered = self.redirect_uris.iter().any(|r| {
            r == uri || (r.eq_ignore_ascii_case("postmessage") && uri.eq_ignore_ascii_case(r))
        });
        if !registered {
            return Err(format!(
                "{uri:?} is not one of the redirect URIs registered for the app {:?}",
                self.name
            ));
        }
        RedirectUri::parse(uri).map_err(|e| e.to_string())
    }
}

/// What a code was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuthorizationCode {
    /// The app's key, normalised (40 lower-case hex characters).
    pub client_id: String,
    /// The `redirect_uri` exactly as the app sent it.
    pub redirect_uri: String,
    /// The PKCE challenge: `base64url(SHA-256(verifier))`.
    pub code_challenge: String,
    /// The challenge method: always `S256`.
    pub code_challenge_method: String,
    /// The scope granted.
    pub scope: Scope,
    /// The user who approved.
    pub user_id: UserId,
    /// When the user approved (the sandbox's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Whether an exchange was already attempted with this code.
    pub used: bool,
}

impl AuthorizationCode {
    /// A fresh, unused grant with method `S256`.
    pub fn new(
        client_id: &str,
        redirect_uri: &str,
        code_challenge: &str,
        scope: Scope,
        user_id: UserId,
        issued_at: OffsetDateTime,
    ) -> Self {
        Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: code_challenge.to_owned(),
            code_challenge_method: "S256".to_owned(),
            scope,
            user_id,
            issued_at,
            used: false,
        }
    }

    /// When the code stops being accepted.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.issued_at + CODE_LIFETIME
    }

    /// Whether the code has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at()
    }
}

/// Why a code cannot be exchanged. All three are the same answer on the wire
/// (`invalid_grant`, "Authorization code is invalid, expired, or already used").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// No such code.
    #[error("Authorization code is invalid, expired, or already used")]
    Unknown,
    /// Older than [`CODE_LIFETIME`].
    #[error("Authorization code is invalid, expired, or already used")]
    Expired,
    /// Already presented once.
    #[error("Authorization code is invalid, expired, or already used")]
    Used,
}

/// The one-time codes issued by the login page. Shared by every host of a sandbox.
#[derive(Debug)]
pub struct CodeStore {
    codes: Mutex<HashMap<String, AuthorizationCode>>,
    capacity: usize,
}

impl Default for CodeStore {
    /// A store of [`DEFAULT_CODE_CAPACITY`] codes.
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CODE_CAPACITY)
    }
}

impl CodeStore {
    /// A store keeping at most `capacity` codes (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            codes: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AuthorizationCode>> {
        self.codes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a grant under a fresh code (32 random bytes, base64url: 43 characters) and
    /// returns the code. Expired codes are pruned first; at capacity the oldest is dropped.
    pub fn issue(&self, grant: AuthorizationCode) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let code = URL_SAFE_NO_PAD.encode(bytes);
        let mut codes = self.lock();
        if codes.len() >= self.capacity {
            let now = grant.issued_at;
            codes.retain(|_, g| !g.is_expired(now));
        }
        while codes.len() >= self.capacity {
            let oldest = codes
                .iter()
                .min_by_key(|(_, g)| g.issued_at)
                .map(|(c, _)| c.clone());
            match oldest {
                Some(c) => codes.remove(&c),
                None => break,
            };
        }
        codes.insert(code.clone(), grant);
        code
    }

    /// Uses a code up and returns what it was issued for. The first attempt uses it up, even
    /// when the code turns out expired or the caller's later checks (verifier, client, redirect
    /// URI) fail.
    pub fn redeem(&self, code: &str, now: OffsetDateTime) -> Result<AuthorizationCode, CodeError> {
        let mut codes = self.lock();
        let grant = codes.get_mut(code).ok_or(CodeError::Unknown)?;
        if grant.used {
            return Err(CodeError::Used);
        }
        grant.used = true;
        if grant.is_expired(now) {
            return Err(CodeError::Expired);
        }
        Ok(grant.clone())
    }

    /// What a code was issued for, without using it.
    pub fn peek(&self, code: &str) -> Option<AuthorizationCode> {
        self.lock().get(code).cloned()
    }

    /// How many codes are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no code is kept.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets every code.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// The S256 challenge of a verifier: `base64url(SHA-256(verifier))`, no padding.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` (43 to 128 characters of `A-Z a-z 0-9 - . _ ~`, RFC 7636) matches an S256
/// `challenge`, compared in constant time.
pub fn verify_pkce(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = pkce_challenge(verifier);
    well_formed
        && computed.len() == challenge.len()
        && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// Whether a text can be an S256 challenge: exactly 43 base64url characters.
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == CODE_LEN
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How long an access token lives: one hour.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a refresh token lives: 30 days from its issue.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default number of token families kept at once: 10,000 (dead ones are pruned first, then the
/// oldest).
pub const DEFAULT_FAMILY_CAPACITY: usize = 10_000;
/// Most tokens one family keeps (access and refresh, used ones included); beyond, the oldest
/// used refresh tokens are forgotten.
pub const MAX_TOKENS_PER_FAMILY: usize = 2_000;

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
    pub fn to_json(&self) -> serde_json::Value {
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
    /// A store of [`DEFAULT_FAMILY_CAPACITY`] families.
    fn default() -> Self {
        Self::with_capacity(DEFAULT_FAMILY_CAPACITY)
    }
}

impl TokenStore {
    /// A store keeping at most `families` token families (at least 1).
    pub fn with_capacity(families: usize) -> Self {
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

    fn grant(at: OffsetDateTime) -> AuthorizationCode {
        AuthorizationCode::new(
            BUILTIN_APP_API_KEY,
            "postmessage",
            &pkce_challenge(&"v".repeat(43)),
            Scope::Write,
            UserId::new(7),
            at,
        )
    }

    #[test]
    fn codes_expire_and_are_used_once() {
        let store = CodeStore::default();
        let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let code = store.issue(grant(t0));
        assert!(is_s256_challenge(
            &store.peek(&code).unwrap().code_challenge
        ));
        assert_eq!(
            store.redeem(&code, t0 + Duration::from_secs(600)),
            Err(CodeError::Expired)
        );
        assert_eq!(store.redeem(&code, t0), Err(CodeError::Used));
        assert_eq!(store.redeem("nope", t0), Err(CodeError::Unknown));
        let code = store.issue(grant(t0));
        let g = store.redeem(&code, t0 + Duration::from_secs(599)).unwrap();
        assert_eq!(g.user_id, UserId::new(7));
        assert!(store.peek(&code).unwrap().used);
    }

    #[test]
    fn capacity_prunes_expired_then_oldest() {
        let store = CodeStore::with_capacity(2);
        let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let a = store.issue(grant(t0));
        let b = store.issue(grant(t0 + Duration::from_secs(1)));
        let c = store.issue(grant(t0 + Duration::from_secs(2)));
        assert_eq!(store.len(), 2);
        assert!(store.peek(&a).is_none());
        assert!(store.peek(&b).is_some() && store.peek(&c).is_some());
        let d = store.issue(grant(t0 + Duration::from_secs(3600)));
        assert_eq!(store.len(), 1, "both expired codes pruned");
        assert!(store.peek(&d).is_some());
    }

    #[test]
    fn pkce() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = pkce_challenge(v);
        assert!(verify_pkce(v, &c));
        assert!(!verify_pkce("short", &pkce_challenge("short")));
        assert!(!verify_pkce(
            v,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!is_s256_challenge("abc"));
        assert!(!is_s256_challenge(&"+".repeat(43)));
    }

    #[test]
    fn app_redirects() {
        let app = DeveloperApp::builtin();
        assert!(app.check_redirect_uri("PostMessage").is_ok());
        assert!(
            app.check_redirect_uri("http://localhost:8080/auth/audius/callback")
                .is_ok()
        );
        assert!(
            app.check_redirect_uri("http://localhost:8080/auth/audius/callback/")
                .is_err()
        );
        let open = DeveloperApp::new("Open", &"ab".repeat(20), vec![]).unwrap();
        assert!(open.check_redirect_uri("https://x.example/cb").is_ok());
        assert!(open.check_redirect_uri("myapp://cb").is_err());
        assert!(open.check_redirect_uri("http://10.0.0.1/cb").is_err());
        assert!(DeveloperApp::new("Bad", &"ab".repeat(20), vec!["javascript:x".into()]).is_err());
        assert!(DeveloperApp::new(" ", &"ab".repeat(20), vec![]).is_err());
    }
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
