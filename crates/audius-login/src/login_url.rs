//! Building the URL of the Audius login page (implicit flow, spec section 1), and the `state`
//! that protects it.
//!
//! ```
//! use audius_login::{Environment, LoginUrl, RedirectUri, ResponseMode, State};
//!
//! let state = State::generate();
//! let url = LoginUrl::builder()
//!     .app_name("My App")
//!     .redirect_uri(RedirectUri::parse("https://app.example/auth/callback")?)
//!     .response_mode(ResponseMode::Query)
//!     .state(&state)
//!     .environment(Environment::Production)
//!     .build()?;
//! assert!(url.as_str().starts_with("https://audius.co/oauth/auth?scope=read&app_name=My+App&"));
//! assert!(url.as_str().contains("&response_mode=query"));
//! # Ok::<(), audius_login::Error>(())
//! ```

use std::fmt;

use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use url::Url;

use crate::error::{ConfigError, Error, Result};
use crate::redirect_uri::RedirectUri;

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The anti-CSRF `state` of one login attempt: 256 random bits, base64url (43 characters).
///
/// Compare it only with [`State::matches`] (constant time); it has no `PartialEq` so that it
/// cannot be compared by accident, and its `Debug` does not show it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct State(String);

impl State {
    /// Length of a generated state, in characters.
    pub const GENERATED_LEN: usize = 43;
    /// Longest state accepted back from a client, in bytes.
    pub const MAX_LEN: usize = 512;

    /// A fresh state from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A state given by the caller (for example a fixed one in tests). Must be 1 to
    /// [`State::MAX_LEN`] URL-safe characters (`A-Z a-z 0-9 - _ . ~`).
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        if value.is_empty()
            || value.len() > Self::MAX_LEN
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        {
            return Err(ConfigError::new(
                "state",
                "a state must be 1 to 512 URL-safe characters (A-Z a-z 0-9 - _ . ~)",
            )
            .into());
        }
        Ok(Self(value))
    }

    /// The state's text, to send on the wire.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this state, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("State(..)")
    }
}

/// What the app asks for (`scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Identity only (default).
    #[default]
    Read,
    /// Act for the user; needs an API key.
    Write,
}

impl Scope {
    /// `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// How the answer comes back to a URL redirect URI (`response_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseMode {
    /// `#state=..&token=..` (the page's default for the implicit flow).
    #[default]
    Fragment,
    /// `?state=..&token=..`, existing query kept.
    Query,
}

impl ResponseMode {
    /// `fragment` or `query`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fragment => "fragment",
            Self::Query => "query",
        }
    }
}

/// How the login page shows itself (`display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Display {
    /// `popup` (the page's default).
    #[default]
    #[serde(rename = "popup")]
    Popup,
    /// `fullScreen`.
    #[serde(rename = "fullScreen")]
    FullScreen,
}

impl Display {
    /// `popup` or `fullScreen`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Popup => "popup",
            Self::FullScreen => "fullScreen",
        }
    }
}

/// Which Audius to talk to: its login page and its API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Environment {
    /// `https://audius.co/oauth/auth` and `https://api.audius.co` (default).
    #[default]
    Production,
    /// `https://staging.audius.co/oauth/auth` and `https://api.staging.audius.co`.
    Staging,
    /// Any other deployment, such as a local sandbox.
    Custom {
        /// The login page (`.../oauth/auth`).
        login_page: Url,
        /// The API base URL (`{api}/v1/...`).
        api: Url,
    },
}

impl Environment {
    /// A custom environment from the base URL of a server that serves both the login page at
    /// `/oauth/auth` and the API (as the sandbox does).
    pub fn custom_base(base: &Url) -> Result<Self> {
        let login_page = base.join("/oauth/auth").map_err(|e| {
            Error::from(ConfigError::new(
                "base_url",
                format!("bad base URL {base}: {e}"),
            ))
        })?;
        Ok(Self::Custom {
            login_page,
            api: base.clone(),
        })
    }

    /// The login page URL.
    pub fn login_page(&self) -> Url {
        match self {
            Self::Production => parse_static("https://audius.co/oauth/auth"),
            Self::Staging => parse_static("https://staging.audius.co/oauth/auth"),
            Self::Custom { login_page, .. } => login_page.clone(),
        }
    }

    /// The API base URL.
    pub fn api(&self) -> Url {
        match self {
            Self::Production => parse_static("https://api.audius.co"),
            Self::Staging => parse_static("https://api.staging.audius.co"),
            Self::Custom { api, .. } => api.clone(),
        }
    }

    /// The origin of the login page: what `event.origin` is for a popup's message.
    pub fn login_origin(&self) -> String {
        self.login_page().origin().ascii_serialization()
    }
}

fn parse_static(s: &str) -> Url {
    Url::parse(s).expect("static URL is valid")
}

/// Checks an app API key: 40 hex characters (a `0x` prefix is removed), returned lower-case.
pub fn normalize_api_key(key: &str) -> Result<String> {
    let hex_part = key.strip_prefix("0x").unwrap_or(key);
    if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            ConfigError::new("api_key", "an Audius API key is exactly 40 hex characters").into(),
        );
    }
    Ok(hex_part.to_ascii_lowercase())
}

/// Checks a web origin (`scheme://host[:port]`, nothing after it) and returns its serialisation.
pub fn normalize_origin(origin: &str) -> Result<String> {
    let url = Url::parse(origin).map_err(|e| {
        Error::from(ConfigError::new(
            "origin",
            format!("bad origin {origin:?}: {e}"),
        ))
    })?;
    let serialized = url.origin().ascii_serialization();
    let rest_is_empty = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if serialized == "null" || !rest_is_empty || !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            "origin",
            format!("an origin is scheme://host[:port] over http or https, got {origin:?}"),
        )
        .into());
    }
    Ok(serialized)
}

/// Builds login page URLs. See [`LoginUrl::builder`].
#[derive(Debug, Clone, Default)]
pub struct LoginUrl;

impl LoginUrl {
    /// A builder with the defaults of each setter.
    pub fn builder() -> LoginUrlBuilder {
        LoginUrlBuilder::default()
    }
}

/// Builder of a login page URL. Every parameter of spec section 1.
#[derive(Debug, Clone, Default)]
pub struct LoginUrlBuilder {
    scope: Scope,
    app_name: Option<String>,
    api_key: Option<String>,
    redirect_uri: Option<RedirectUri>,
    origin: Option<String>,
    state: Option<String>,
    response_mode: ResponseMode,
    display: Display,
    environment: Environment,
}

impl LoginUrlBuilder {
    /// `scope`. Default: [`Scope::Read`]. `write` needs an API key.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// `app_name`, shown to the user. Default: none (then an API key is needed).
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }

    /// `api_key`: 40 hex characters. Default: none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// `redirect_uri`: a URL, or [`RedirectUri::PostMessage`] for the popup channel. Required.
    pub fn redirect_uri(mut self, uri: RedirectUri) -> Self {
        self.redirect_uri = Some(uri);
        self
    }

    /// `origin`: the opener's origin, required with `postmessage`. Default: none.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// `state`. Default: none (not recommended: it is the CSRF defence).
    pub fn state(mut self, state: &State) -> Self {
        self.state = Some(state.secret().to_owned());
        self
    }

    /// `response_mode`. Default: [`ResponseMode::Fragment`]. Always sent explicitly (with
    /// `postmessage` the page ignores it).
    pub fn response_mode(mut self, mode: ResponseMode) -> Self {
        self.response_mode = mode;
        self
    }

    /// `display`. Default: [`Display::Popup`].
    pub fn display(mut self, display: Display) -> Self {
        self.display = display;
        self
    }

    /// Which login page. Default: [`Environment::Production`].
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The login page URL, or [`Error::Config`] when a required parameter is missing or wrong.
    pub fn build(self) -> Result<Url> {
        let redirect_uri = self.redirect_uri.ok_or_else(|| {
            Error::from(ConfigError::new(
                "redirect_uri",
                "a redirect URI is required",
            ))
        })?;
        let api_key = self.api_key.as_deref().map(normalize_api_key).transpose()?;
        if self.app_name.is_none() && api_key.is_none() {
            return Err(
                ConfigError::new("app_name", "an app name or an API key is required").into(),
            );
        }
        if self
            .app_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty() || n.len() > 256)
        {
            return Err(ConfigError::new("app_name", "an app name is 1 to 256 characters").into());
        }
        if self.scope == Scope::Write && api_key.is_none() {
            return Err(ConfigError::new("scope", "scope write needs an API key").into());
        }
        let origin = match (&redirect_uri, self.origin.as_deref()) {
            (RedirectUri::PostMessage, None) => {
                return Err(ConfigError::new(
                    "origin",
                    "redirect_uri=postmessage needs the opener's origin",
                )
                .into());
            }
            (_, Some(o)) => Some(normalize_origin(o)?),
            (_, None) => None,
        };
        let mut url = self.environment.login_page();
        {
            let mut q = url.query_pairs_mut();
            q.clear();
            q.append_pair("scope", self.scope.as_str());
            if let Some(name) = &self.app_name {
                q.append_pair("app_name", name);
            }
            if let Some(key) = &api_key {
                q.append_pair("api_key", key);
            }
            q.append_pair("redirect_uri", redirect_uri.as_str());
            if let Some(origin) = &origin {
                q.append_pair("origin", origin);
            }
            if let Some(state) = &self.state {
                q.append_pair("state", state);
            }
            q.append_pair("response_mode", self.response_mode.as_str());
            q.append_pair("display", self.display.as_str());
        }
        Ok(url)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn states_are_random_and_url_safe() {
        let a = State::generate();
        let b = State::generate();
        assert_eq!(a.secret().len(), State::GENERATED_LEN);
        assert!(!a.matches(b.secret()));
        assert!(a.matches(a.secret()));
        assert!(
            a.secret()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(format!("{a:?}"), "State(..)");
        assert!(State::new("a b").is_err());
        assert!(State::new("").is_err());
        assert!(State::new("abc-DEF_1.2~").is_ok());
    }

    #[test]
    fn postmessage_url() {
        let url = LoginUrl::builder()
            .app_name("A")
            .redirect_uri(RedirectUri::PostMessage)
            .origin("http://localhost:8080/")
            .state(&State::new("s1").unwrap())
            .environment(Environment::Staging)
            .build()
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://staging.audius.co/oauth/auth?scope=read&app_name=A&redirect_uri=postmessage\
             &origin=http%3A%2F%2Flocalhost%3A8080&state=s1&response_mode=fragment&display=popup"
        );
    }

    #[test]
    fn refusals() {
        let base = || LoginUrl::builder().redirect_uri(RedirectUri::PostMessage);
        assert!(base().origin("http://x").build().is_err(), "no app");
        assert!(base().app_name("A").build().is_err(), "no origin");
        assert!(
            base()
                .app_name("A")
                .origin("http://x/path")
                .build()
                .is_err()
        );
        assert!(
            base()
                .app_name("A")
                .origin("http://x")
                .scope(Scope::Write)
                .build()
                .is_err()
        );
        assert!(base().api_key("0x12").origin("http://x").build().is_err());
        let ok = base()
            .api_key(format!("0x{}", "AB".repeat(20)))
            .origin("http://x")
            .scope(Scope::Write)
            .build()
            .unwrap();
        assert!(
            ok.as_str()
                .contains(&format!("api_key={}", "ab".repeat(20)))
        );
    }
}
