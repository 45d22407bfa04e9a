//! [`VerifyOptions`], the checks every verifier makes after its own, and [`PreparedToken`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::Wallet;
use crate::clock::{Clock, SystemClock};
use crate::defaults;
use crate::error::{ConfigError, Error, Result};
use crate::replay::ReplayKey;
use crate::token::{Claims, Token};

use super::ProfileSource;

/// Settings shared by both verifiers.
#[derive(Clone)]
pub struct VerifyOptions {
    max_age: Option<Duration>,
    clock_skew: Duration,
    clock: Arc<dyn Clock>,
    pub(super) max_token_bytes: usize,
    pub(super) profile_source: ProfileSource,
    api_key: Option<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            max_age: None,
            clock_skew: defaults::CLOCK_SKEW,
            clock: Arc::new(SystemClock),
            max_token_bytes: defaults::MAX_TOKEN_BYTES,
            profile_source: ProfileSource::UserRecord,
            api_key: None,
        }
    }
}

/// An API key in the form keys are compared in: no `0x`/`0X`, lower case, trimmed.
fn normalized_key(key: &str) -> String {
    let key = key.trim();
    key.strip_prefix("0x")
        .or_else(|| key.strip_prefix("0X"))
        .unwrap_or(key)
        .to_ascii_lowercase()
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("max_age", &self.max_age)
            .field("clock_skew", &self.clock_skew)
            .field("clock", &self.clock)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("profile_source", &self.profile_source)
            .field("api_key", &self.api_key)
            .finish()
    }
}

impl VerifyOptions {
    /// Refuse tokens whose `iat` is older than this (or missing). Default: `None` (no limit; the
    /// actix layer sets 5 minutes).
    pub fn max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    /// Grace for clocks that disagree, both ways. Default: 30 s.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The clock `iat` is judged against. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Longest token accepted. Default: 16 KiB.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Where the profile's fields come from. Default: [`ProfileSource::UserRecord`].
    pub fn profile_source(mut self, source: ProfileSource) -> Self {
        self.profile_source = source;
        self
    }

    /// The app's API key: a token whose `apiKey` claim is missing or another key is refused
    /// ([`Error::AudienceMismatch`]), before any network call. Keys are compared without `0x`
    /// and case-insensitively. Default: `None`, which accepts a token approved for *any* app:
    /// set it whenever the app has a key.
    ///
    /// The key must be an Audius API key: 40 hex characters once trimmed and stripped of
    /// `0x`/`0X`. Anything else (an empty or blank key, `0x` alone, a prefix) is refused with
    /// [`Error::Config`]: it would otherwise make tokens whose `apiKey` is `""`, `"0x"` or blank
    /// "this app's".
    ///
    /// ```
    /// use audius_login::VerifyOptions;
    ///
    /// let options = VerifyOptions::default().api_key(Some("0XB1D1B1D1B1D1B1D1B1D1B1D1B1D1B1D1B1D1B1D1"))?;
    /// assert_eq!(options.get_api_key(), Some("b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1"));
    /// for bad in ["", "  ", "0x", "b1d1"] {
    ///     assert!(VerifyOptions::default().api_key(Some(bad)).is_err());
    /// }
    /// # Ok::<(), audius_login::Error>(())
    /// ```
    pub fn api_key(mut self, key: Option<&str>) -> Result<Self> {
        self.api_key = match key {
            Some(key) => {
                let normalized = normalized_key(key);
                if normalized.len() != 40 || !normalized.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ConfigError::new(
                        "api_key",
                        "an Audius API key is 40 hex characters (with or without 0x); this one \
                         would match tokens approved for no app, or for another",
                    )
                    .into());
                }
                Some(normalized)
            }
            None => None,
        };
        Ok(self)
    }

    /// The age limit set with [`max_age`](Self::max_age) (`None`: no limit).
    pub fn get_max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// The grace for clocks that disagree, set with [`clock_skew`](Self::clock_skew).
    pub fn get_clock_skew(&self) -> Duration {
        self.clock_skew
    }

    /// The clock `iat` is judged against, set with [`clock`](Self::clock).
    pub fn get_clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The API key tokens must carry (normalised), if any.
    pub fn get_api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// Longest token accepted.
    pub fn get_max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// The checks on claims that need no network: the age (refusing an `iat` too old, in the
    /// future, or missing, when an age is enforced), then
    /// [`check_audience`](Self::check_audience).
    pub fn check_claims(&self, claims: &Claims) -> Result<()> {
        self.check_age(claims)?;
        self.check_audience(claims)
    }

    /// Refuses claims approved for another app: with an [`api_key`](Self::api_key) set, the
    /// token's `apiKey` must be that key (normalised). Without one, every token passes.
    pub fn check_audience(&self, claims: &Claims) -> Result<()> {
        let Some(expected) = &self.api_key else {
            return Ok(());
        };
        let found = match claims.get("apiKey") {
            Some(Value::String(key)) => Some(normalized_key(key)),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string().chars().take(64).collect()),
        };
        match &found {
            Some(key) if key == expected => Ok(()),
            Some(key) => {
                // The token's text: quoted (escaped) and cut, as it reaches logs.
                let found: String = key.chars().take(64).collect();
                Err(Error::AudienceMismatch {
                    message: format!(
                        "the token was approved for another app (apiKey {found:?}), not this one"
                    ),
                    found: Some(found),
                })
            }
            None => Err(Error::AudienceMismatch {
                message: "the token carries no apiKey: it was not approved for this app".into(),
                found: None,
            }),
        }
    }

    /// Refuses claims whose `iat` is too old, in the future, or missing, when an age is enforced.
    pub(crate) fn check_age(&self, claims: &Claims) -> Result<()> {
        let Some(max_age) = self.max_age else {
            return Ok(());
        };
        let stale = |issued_at, message: String| Error::Stale {
            issued_at,
            max_age,
            message,
        };
        let Some(issued_at) = claims.issued_at() else {
            return Err(stale(None, "the token carries no usable iat".into()));
        };
        // Cannot overflow: `time` holds dates within ±9999 years, and their difference fits.
        let age = self.clock.now() - issued_at;
        let skew = time::Duration::try_from(self.clock_skew).unwrap_or(time::Duration::MAX);
        let limit = time::Duration::try_from(max_age).unwrap_or(time::Duration::MAX);
        if age > limit.saturating_add(skew) {
            return Err(stale(
                Some(issued_at),
                format!(
                    "issued {}s ago; the limit is {}s",
                    age.whole_seconds(),
                    max_age.as_secs()
                ),
            ));
        }
        if age < -skew {
            return Err(stale(
                Some(issued_at),
                format!("issued {}s in the future", -age.whole_seconds()),
            ));
        }
        Ok(())
    }
}

/// A token parsed, its signer recovered and its replay key computed: the part of verification
/// that needs no network, done first (spec 4.1's order: a token that is both unrecoverable and
/// broken is a [`BadSignature`](Error::BadSignature), as Audius answers 404 for it).
///
/// ```
/// use audius_login::verify::PreparedToken;
///
/// # let text = include_str!("../../tests/fixtures/basic.token").trim();
/// let prepared = PreparedToken::parse(text, 16 * 1024)?;
/// assert_eq!(prepared.claims().user_id.get(), 44);
/// assert_eq!(prepared.signer().to_string(), "0x5bb302630d6412513edf124f0c3819d5c7fc228a");
/// // The token's identity for the replay cache, whatever its spelling.
/// let _key = prepared.replay_key();
/// # Ok::<(), audius_login::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PreparedToken {
    token: Token,
    signer: Wallet,
    replay_key: ReplayKey,
}

impl PreparedToken {
    /// Parses `text` (at most `max_bytes`), recovers its signer and computes its replay key.
    pub fn parse(text: &str, max_bytes: usize) -> Result<Self> {
        let (token, signer) = Token::parse_and_recover(text, max_bytes)?;
        let replay_key = ReplayKey::for_token(token.signing_input(), &signer);
        Ok(Self {
            token,
            signer,
            replay_key,
        })
    }

    /// The parsed token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The token's claims.
    pub fn claims(&self) -> &Claims {
        self.token.claims()
    }

    /// The wallet that signed the token (not yet known to own the account).
    pub fn signer(&self) -> Wallet {
        self.signer
    }

    /// The token's identity for a [`ReplayCache`](crate::replay::ReplayCache): the same for
    /// every spelling of the signature the parser accepts.
    pub fn replay_key(&self) -> &ReplayKey {
        &self.replay_key
    }

    /// The token's text, as given.
    pub fn as_str(&self) -> &str {
        self.token.as_str()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        Claims::from_map(v.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn age_rules() {
        let clock = Arc::new(ManualClock::at_unix(1_000_000));
        let opts = VerifyOptions::default()
            .max_age(Some(Duration::from_secs(300)))
            .clock(clock.clone());
        let at = |iat: i64| claims(json!({"userId": "eYorL", "iat": iat}));
        assert!(opts.check_age(&at(1_000_000)).is_ok());
        assert!(opts.check_age(&at(1_000_000 - 300 - 30)).is_ok());
        assert_eq!(
            opts.check_age(&at(1_000_000 - 331)).unwrap_err().kind(),
            crate::ErrorKind::Stale
        );
        assert!(opts.check_age(&at(1_000_000 + 30)).is_ok());
        assert_eq!(
            opts.check_age(&at(1_000_000 + 31)).unwrap_err().kind(),
            crate::ErrorKind::Stale
        );
        assert_eq!(
            opts.check_age(&claims(json!({"userId": "eYorL"})))
                .unwrap_err()
                .kind(),
            crate::ErrorKind::Stale
        );
        let string_iat = claims(json!({"userId": "eYorL", "iat": "1000000"}));
        assert!(opts.check_age(&string_iat).is_ok());
        assert!(
            VerifyOptions::default().check_age(&at(0)).is_ok(),
            "no limit by default"
        );
    }
}
