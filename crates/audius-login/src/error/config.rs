//! [`ConfigError`]: a setting, or settings together, that cannot work.

use std::borrow::Cow;
use std::fmt;

/// A builder (or a constructor taking settings) was given a setting that cannot work: which
/// setting, and why.
///
/// Carried by [`Error::Config`](crate::Error::Config) (kind [`ErrorKind::Config`](crate::ErrorKind::Config)).
/// Framework crates building on this one (`actix-audius-login`, `audius-sandbox`) report their
/// own settings with it too, through [`ConfigError::new`].
///
/// `Display` gives the reason only (it names the setting in words); [`setting`](Self::setting)
/// gives the setting's name for code.
///
/// ```
/// use audius_login::{ConfigError, Error, ErrorKind};
///
/// let e = Error::from(ConfigError::new("timeout", "the timeout must be above zero"));
/// assert_eq!(e.kind(), ErrorKind::Config);
/// assert_eq!(e.to_string(), "configuration error: the timeout must be above zero");
/// let Error::Config(config) = &e else { unreachable!() };
/// assert_eq!(config.setting(), "timeout");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    setting: &'static str,
    reason: Cow<'static, str>,
}

impl ConfigError {
    /// The error for `setting` (its name as the builder's setter spells it, such as
    /// `"redirect_uri"` or `"api_key"`), with the reason in words.
    pub fn new(setting: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }

    /// The setting at fault, as its setter is named (`"api_key"`, `"hosts"`, `"redis_url"`...).
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// Why it cannot work, in words.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}
