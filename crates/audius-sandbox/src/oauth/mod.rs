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

mod code;
mod tokens;

pub use code::{
    AuthorizationCode, CODE_LIFETIME, CodeError, CodeStore, pkce_challenge, verify_pkce,
};
pub(crate) use code::{DEFAULT_CODE_CAPACITY, is_s256_challenge};
pub(crate) use tokens::DEFAULT_FAMILY_CAPACITY;
pub use tokens::{
    ACCESS_TOKEN_LIFETIME, AccessError, AccessGrant, IssuedTokens, REFRESH_TOKEN_LIFETIME,
    RefreshError, TokenStore,
};

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
