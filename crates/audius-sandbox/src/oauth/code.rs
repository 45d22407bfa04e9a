//! The one-time codes issued by the login page, and PKCE.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use audius_login::{Scope, UserId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

/// How long a code lives: 10 minutes.
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Default number of codes kept at once: 10,000 (expired ones are pruned first, then the
/// oldest).
pub(crate) const DEFAULT_CODE_CAPACITY: usize = 10_000;
/// Length of a code, of a PKCE verifier made from 32 bytes, and of an S256 challenge.
pub(crate) const CODE_LEN: usize = 43;

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
    /// A store of 10,000 codes.
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CODE_CAPACITY)
    }
}

impl CodeStore {
    /// A store keeping at most `capacity` codes (at least 1).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
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
pub(crate) fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == CODE_LEN
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::oauth::BUILTIN_APP_API_KEY;

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
}
