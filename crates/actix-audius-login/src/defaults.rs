//! Every default of this crate's settings, and the limits the builder holds them to, in one
//! place. The setters' docs state each default in words; the values live here.
//!
//! The core crate's defaults that this crate passes on ([`VerifyOptions`]' clock skew, the user
//! directory's cache) are named here too, so that a reader finds every number in one file.
//!
//! [`VerifyOptions`]: audius_login::VerifyOptions

use std::time::Duration;

/// The longest duration any setting accepts: 100 years. Longer ones (such as `Duration::MAX`
/// meant as "never") could overflow the time arithmetic built on them, so
/// [`AudiusLoginBuilder::build`](crate::AudiusLoginBuilder::build) refuses them.
pub(crate) const MAX_SETTING_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The largest capacity a cache setting accepts (`user_cache_capacity`, `tracked_sessions`):
/// 10,000,000 entries. Larger ones (such as `usize::MAX` meant as "unbounded") are refused by
/// [`AudiusLoginBuilder::build`](crate::AudiusLoginBuilder::build) rather than risk an
/// allocation the process cannot make.
pub(crate) const MAX_CACHE_CAPACITY: usize = 10_000_000;

// Routes.

/// The login route's path.
pub(crate) const LOGIN_PATH: &str = "/auth/audius/login";
/// The logout route's path.
pub(crate) const LOGOUT_PATH: &str = "/auth/logout";
/// Where the button's script and stylesheet are served.
pub(crate) const ASSETS_PATH: &str = "/auth/audius/assets";
/// Where the browser goes when no valid return-to is given, and after logout.
pub(crate) const LANDING_PATH: &str = "/";

// Logins.

/// The oldest `iat` accepted at the callback: 5 minutes (the core's `VerifyOptions` has no
/// maximum age by default; this crate always enforces one).
pub(crate) const MAX_TOKEN_AGE: Duration = Duration::from_secs(300);
/// How long a login attempt (its state) stays valid: 10 minutes.
pub(crate) const ATTEMPT_TTL: Duration = Duration::from_secs(600);
/// Most login attempts pending at once in one session.
pub(crate) const MAX_PENDING_ATTEMPTS: usize = 5;
/// Sign the user out this long after login: 30 days, as long as Audius' refresh tokens live
/// (and Auth.js' default session age).
pub(crate) const LOGIN_DEADLINE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default [`Limits::max_logins_per_user`](crate::Limits::max_logins_per_user):
/// 30 live logins of one user in this process.
pub(crate) const DEFAULT_MAX_LOGINS_PER_USER: usize = 30;

// The built-in verifiers' user directory (the core crate's defaults).

/// Time a user record stays cached: 5 minutes.
pub(crate) const USER_CACHE_TTL: Duration = audius_login::defaults::USER_CACHE_TTL;
/// Most user records cached: 10,000.
pub(crate) const USER_CACHE_CAPACITY: usize = audius_login::defaults::USER_CACHE_CAPACITY;
/// How old a cached record may be and still decide a login: 30 s.
pub(crate) const USER_REFETCH_INTERVAL: Duration = audius_login::defaults::REFETCH_INTERVAL;

// The code flow.

/// Refresh an access token this long before it expires: 60 s.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Sessions tracked for refresh coordination: 10,000.
pub(crate) const TRACKED_SESSIONS: usize = 10_000;
/// [`Limits::callback_body_timeout`](crate::Limits::callback_body_timeout).
pub(crate) const CALLBACK_BODY_TIMEOUT: Duration = Duration::from_secs(10);

// The button.

/// The button's label, as in the Audius SDK.
pub(crate) const BUTTON_TEXT: &str = "Continue With Audius";

// The session-store wrappers (`crate::store`).

/// The bound on every call of a `GuardedStore`: 2 s.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// The `Retry-After` of a `SessionStoreGuard` answer: 5 s.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(5);
/// The message of a `SessionStoreGuard` answer.
pub(crate) const UNAVAILABLE_MESSAGE: &str =
    "Sessions are unavailable right now; please try again in a moment.";
