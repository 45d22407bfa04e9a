//! The one error type of the crate, and the small enums that say what went wrong.
//!
//! Every failure of parsing, verification or an API call is an [`Error`]. Its [`ErrorKind`] is a
//! stable, matchable summary that maps onto the Audius `verify_token` answers (spec section 4.1):
//!
//! | kind | Audius answer | meaning |
//! |---|---|---|
//! | [`ErrorKind::Malformed`] | 400 | the token cannot be parsed ([`TokenPart`] says where) |
//! | [`ErrorKind::BadSignature`] | 404 `... wallet could not be recovered` | no signer can be recovered |
//! | [`ErrorKind::WalletMismatch`] | 404 `... invalid wallet`, 403 `... does not match the user` | the signer is not the user (nor an approved manager), or the account is deactivated |
//! | [`ErrorKind::AudienceMismatch`] | — | the token was approved for another app: its `apiKey` is not this app's (the app's check) |
//! | [`ErrorKind::Stale`] | — | `iat` is older than the maximum age (the app's check) |
//! | [`ErrorKind::Replayed`] | — | the token was already accepted once (the app's check) |
//! | [`ErrorKind::ReplayCacheFull`] | — | the in-memory replay cache is full of live entries: logins are refused until some expire |
//! | [`ErrorKind::TooLarge`] | — | an input or an answer is over its size limit |
//! | [`ErrorKind::UpstreamUnavailable`] | connect error, timeout, 5xx, 429 | Audius could not be reached |
//! | [`ErrorKind::UpstreamUnexpected`] | any other answer | Audius answered something this crate does not understand |
//! | [`ErrorKind::InvalidRedirectUri`] | — | a redirect URI breaks a rule of spec section 5 |
//! | [`ErrorKind::Config`] | — | a builder was given settings that cannot work |
//!
//! The authorization-code flow (`docs/protocol-pkce.md`) adds:
//!
//! | kind | Audius answer | meaning |
//! |---|---|---|
//! | [`ErrorKind::InvalidGrant`] | 400 `invalid_grant` | the code or refresh token is invalid, expired, used or revoked, or does not match (verifier, client, redirect URI): the user must log in again |
//! | [`ErrorKind::AccessDenied`] | `error=access_denied` on the redirect | the user declined |
//! | [`ErrorKind::OAuthRefused`] | any other OAuth error (`invalid_request`, ...) | the request itself was refused |
//! | [`ErrorKind::InvalidAccessToken`] | 401 on a Bearer call | the access token is missing, invalid, expired or revoked |
//! | [`ErrorKind::InsufficientScope`] | 403 `... write scope required` | the token's scope does not allow the call |
//! | [`ErrorKind::StoreUnavailable`] | — | a shared store (the Redis replay cache) could not be reached in time |

use std::fmt;
use std::time::Duration;

use crate::redirect_uri::RedirectUriError;

/// A stable summary of an [`Error`], for matching and for machine output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The token cannot be parsed (an HTTP 400 class answer).
    Malformed,
    /// No signer can be recovered from the signature (Audius answers 404).
    BadSignature,
    /// The signer does not own the account, and is not its approved manager (Audius: 403 or 404);
    /// or the account (or the manager) is deactivated.
    WalletMismatch,
    /// The token was approved for another app: its `apiKey` claim is missing or differs from
    /// the app's API key.
    AudienceMismatch,
    /// The in-memory replay cache holds as many live entries as it may: a new one cannot be
    /// recorded without forgetting one that still protects a token, so the login is refused.
    ReplayCacheFull,
    /// The token was issued longer ago than the maximum age allows, or carries no usable `iat`.
    Stale,
    /// The token was already accepted once.
    Replayed,
    /// An input or an upstream answer is over its size limit.
    TooLarge,
    /// Audius could not be reached: connection refused, timeout, 5xx or 429 on every host tried.
    UpstreamUnavailable,
    /// Audius answered, but not in a way this crate understands (status and message kept).
    UpstreamUnexpected,
    /// A redirect URI breaks one of the rules of spec section 5.
    InvalidRedirectUri,
    /// A builder was given settings that cannot work together.
    Config,
    /// A shared store (such as the Redis replay cache) could not be reached, failed, or did not
    /// answer within its timeout. Nothing is known about the token: try again later.
    StoreUnavailable,
    /// The OAuth server refused a code or refresh token (`invalid_grant`): invalid, expired,
    /// already used, revoked, or issued for another client, redirect URI or verifier.
    InvalidGrant,
    /// The user declined the authorization (`error=access_denied` on the redirect).
    AccessDenied,
    /// The OAuth server refused the request itself (`invalid_request`, `unsupported_grant_type`,
    /// or another OAuth error code).
    OAuthRefused,
    /// The API refused a Bearer access token (401): missing, invalid, expired or revoked.
    InvalidAccessToken,
    /// The access token's scope does not allow the call (403, `write` scope required).
    InsufficientScope,
}

impl ErrorKind {
    /// The snake-case name used in machine output (`"malformed"`, `"bad_signature"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::WalletMismatch => "wallet_mismatch",
            Self::AudienceMismatch => "audience_mismatch",
            Self::ReplayCacheFull => "replay_cache_full",
            Self::Stale => "stale",
            Self::Replayed => "replayed",
            Self::TooLarge => "too_large",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamUnexpected => "upstream_unexpected",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::Config => "config",
            Self::StoreUnavailable => "store_unavailable",
            Self::InvalidGrant => "invalid_grant",
            Self::AccessDenied => "access_denied",
            Self::OAuthRefused => "oauth_refused",
            Self::InvalidAccessToken => "invalid_access_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of a token was wrong, for [`Error::Malformed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenPart {
    /// The overall shape: not three `.`-separated segments, or empty.
    Structure,
    /// The header segment (first).
    Header,
    /// The payload segment (second): not base64url, or not a JSON object.
    Payload,
    /// The `userId` claim: missing, of the wrong type, or not a hashid or decimal id.
    UserId,
    /// The signature segment (third): not base64url, not hex, or not 65 bytes.
    Signature,
    /// Audius said the token is malformed, without saying where.
    Unknown,
}

impl TokenPart {
    /// The snake-case name used in machine output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Structure => "structure",
            Self::Header => "header",
            Self::Payload => "payload",
            Self::UserId => "user_id",
            Self::Signature => "signature",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for TokenPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an over-size limit was about, for [`Error::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limited {
    /// A token given to the library.
    Token,
    /// A body answered by the Audius API.
    ResponseBody,
    /// Some other input (a URI, a state, a form).
    Input,
}

impl fmt::Display for Limited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Token => "token",
            Self::ResponseBody => "response body",
            Self::Input => "input",
        })
    }
}

/// Everything that can go wrong in this crate.
///
/// Match on [`Error::kind`] for a stable summary; the variants carry the details (which part of a
/// token, the server's status and message, the limit that was crossed). `Display` gives one
/// readable line. Cloneable, so that concurrent lookups sharing one request can each be given
/// its outcome.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token cannot be parsed.
    #[error("malformed token ({part}): {message}")]
    Malformed {
        /// Which part was wrong.
        part: TokenPart,
        /// What was wrong, in words (the server's words when the Audius API said it).
        message: String,
    },
    /// No signer can be recovered from the signature.
    #[error("bad signature: {message}")]
    BadSignature {
        /// What was wrong, in words.
        message: String,
    },
    /// The signer is neither the account's wallet nor an approved, non-revoked manager of it,
    /// or the account (or the manager) is deactivated.
    #[error("wallet mismatch: {message}")]
    WalletMismatch {
        /// The HTTP status Audius gave (403 or 404). `None` when Audius was not asked (local
        /// verification): the local verifier does not know which of the two Audius would give,
        /// so it claims neither.
        status: Option<u16>,
        /// What was wrong, in words.
        message: String,
    },
    /// The token was approved for another app: its `apiKey` claim is missing or is not the
    /// app's API key (compared in normalised form: lower case, no `0x`).
    #[error("audience mismatch: {message}")]
    AudienceMismatch {
        /// The token's `apiKey`, normalised when it reads as a key, as given otherwise (cut to
        /// 64 characters); `None` when the token carries none.
        found: Option<String>,
        /// What was wrong, in words.
        message: String,
    },
    /// The in-memory replay cache is full of live entries; see [`ErrorKind::ReplayCacheFull`].
    #[error(
        "the replay cache is full: {capacity} entries are still live, and forgetting one would \
         let its token be used again; logins are refused until entries expire"
    )]
    ReplayCacheFull {
        /// The cache's capacity.
        capacity: usize,
    },
    /// The token is older than the maximum age, or has no usable `iat` while an age is enforced.
    #[error("stale token: {message}")]
    Stale {
        /// When the token says it was issued, if it says so.
        issued_at: Option<time::OffsetDateTime>,
        /// The maximum age that was enforced.
        max_age: Duration,
        /// What was wrong, in words.
        message: String,
    },
    /// The token was already accepted once.
    #[error("replayed token: this token was already used to log in")]
    Replayed,
    /// An input or an answer is over its size limit.
    #[error("{what} too large: over the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: Limited,
        /// The limit, in bytes.
        limit: usize,
    },
    /// Audius could not be reached on any host tried.
    #[error("Audius is unavailable: {message}")]
    UpstreamUnavailable {
        /// What happened (the last failure), in words.
        message: String,
        /// The HTTP status of the last answer, when there was one (5xx, 429).
        status: Option<u16>,
    },
    /// Audius answered something unexpected.
    #[error("Audius answered unexpectedly (HTTP {status}): {message}")]
    UpstreamUnexpected {
        /// The HTTP status of the answer.
        status: u16,
        /// The server's message when it gave one, else a description of the answer.
        message: String,
    },
    /// A redirect URI breaks one of the rules of spec section 5.
    #[error(transparent)]
    InvalidRedirectUri(#[from] RedirectUriError),
    /// A builder was given settings that cannot work.
    #[error("configuration error: {0}")]
    Config(String),
    /// A shared store (such as the Redis replay cache) could not be reached, failed, or did not
    /// answer within its timeout.
    #[error("the {store} is unavailable: {message}")]
    StoreUnavailable {
        /// Which store (`"replay cache"`, ...).
        store: &'static str,
        /// What happened, in words (never a token).
        message: String,
    },
    /// An OAuth endpoint (or the authorization redirect) answered an OAuth error:
    /// `{"error": code, "error_description": text}`.
    #[error("OAuth error {code} (HTTP {status}): {description}")]
    OAuth {
        /// The `error` code.
        code: OAuthErrorCode,
        /// The `error_description` (empty when none was given).
        description: String,
        /// The HTTP status of the answer (0 when the error came on a redirect, not an answer).
        status: u16,
    },
    /// The API refused the Bearer access token (401).
    #[error("access token refused (HTTP 401): {message}")]
    InvalidAccessToken {
        /// The server's message.
        message: String,
    },
    /// The access token's scope does not allow the call (403).
    #[error("insufficient scope (HTTP 403): {message}")]
    InsufficientScope {
        /// The server's message.
        message: String,
    },
}

/// The `error` code of an OAuth error answer (RFC 6749 section 5.2, and `access_denied` from
/// section 4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`: a parameter is missing or the body cannot be parsed.
    InvalidRequest,
    /// `invalid_grant`: the code or refresh token is refused.
    InvalidGrant,
    /// `invalid_client`.
    InvalidClient,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`.
    InvalidScope,
    /// `access_denied`: the user declined.
    AccessDenied,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// Any other code, as given (cut to 64 characters).
    Other(String),
}

impl OAuthErrorCode {
    /// Reads a code (unknown codes are kept as [`OAuthErrorCode::Other`]).
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_grant" => Self::InvalidGrant,
            "invalid_client" => Self::InvalidClient,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "access_denied" => Self::AccessDenied,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            other => Self::Other(other.chars().take(64).collect()),
        }
    }

    /// The code as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Other(code) => code,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The stable summary of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Malformed { .. } => ErrorKind::Malformed,
            Self::BadSignature { .. } => ErrorKind::BadSignature,
            Self::WalletMismatch { .. } => ErrorKind::WalletMismatch,
            Self::AudienceMismatch { .. } => ErrorKind::AudienceMismatch,
            Self::ReplayCacheFull { .. } => ErrorKind::ReplayCacheFull,
            Self::Stale { .. } => ErrorKind::Stale,
            Self::Replayed => ErrorKind::Replayed,
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            Self::UpstreamUnavailable { .. } => ErrorKind::UpstreamUnavailable,
            Self::UpstreamUnexpected { .. } => ErrorKind::UpstreamUnexpected,
            Self::InvalidRedirectUri(_) => ErrorKind::InvalidRedirectUri,
            Self::Config(_) => ErrorKind::Config,
            Self::StoreUnavailable { .. } => ErrorKind::StoreUnavailable,
            Self::OAuth { code, .. } => match code {
                OAuthErrorCode::InvalidGrant => ErrorKind::InvalidGrant,
                OAuthErrorCode::AccessDenied => ErrorKind::AccessDenied,
                _ => ErrorKind::OAuthRefused,
            },
            Self::InvalidAccessToken { .. } => ErrorKind::InvalidAccessToken,
            Self::InsufficientScope { .. } => ErrorKind::InsufficientScope,
        }
    }

    /// The HTTP status an app should answer its own client with for this error.
    ///
    /// 400 for input that cannot be parsed, 401 for a token, code or grant that is refused (a
    /// token for another app included), 403 for a declined authorization or an insufficient
    /// scope, 413 for over-size input, 502 when Audius answered something unexpected or refused
    /// the request itself, 503 when it or a shared store cannot be reached or the replay cache
    /// is full, 500 for configuration errors.
    pub fn suggested_status(&self) -> u16 {
        match self.kind() {
            ErrorKind::Malformed | ErrorKind::InvalidRedirectUri => 400,
            ErrorKind::BadSignature
            | ErrorKind::WalletMismatch
            | ErrorKind::AudienceMismatch
            | ErrorKind::Stale
            | ErrorKind::Replayed
            | ErrorKind::InvalidGrant
            | ErrorKind::InvalidAccessToken => 401,
            ErrorKind::AccessDenied | ErrorKind::InsufficientScope => 403,
            ErrorKind::TooLarge => 413,
            ErrorKind::UpstreamUnexpected | ErrorKind::OAuthRefused => 502,
            ErrorKind::UpstreamUnavailable
            | ErrorKind::StoreUnavailable
            | ErrorKind::ReplayCacheFull => 503,
            ErrorKind::Config => 500,
        }
    }

    pub(crate) fn malformed(part: TokenPart, message: impl Into<String>) -> Self {
        Self::Malformed {
            part,
            message: message.into(),
        }
    }

    pub(crate) fn bad_signature(message: impl Into<String>) -> Self {
        Self::BadSignature {
            message: message.into(),
        }
    }

    pub(crate) fn unavailable(message: impl Into<String>, status: Option<u16>) -> Self {
        Self::UpstreamUnavailable {
            message: message.into(),
            status,
        }
    }
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
