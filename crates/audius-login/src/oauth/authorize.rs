//! The authorization URL of the code flow (PKCE spec section 1).

use url::Url;

use super::{AUTHORIZE_PATH, CODE_CHALLENGE_METHOD, PkceVerifier};
use crate::error::{ConfigError, Error, Result};
use crate::login_url::{Display, Environment, ResponseMode, Scope, State, normalize_origin};
use crate::redirect_uri::RedirectUri;

/// Builds authorization URLs. See [`AuthorizeUrl::builder`].
#[derive(Debug, Clone, Default)]
pub struct AuthorizeUrl;

impl AuthorizeUrl {
    /// A builder with the defaults of each setter.
    pub fn builder() -> AuthorizeUrlBuilder {
        AuthorizeUrlBuilder::default()
    }
}

/// Builder of `{api}/v1/oauth/authorize?...` with every parameter of PKCE spec section 1.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeUrlBuilder {
    client_id: Option<String>,
    redirect_uri: Option<RedirectUri>,
    scope: Scope,
    state: Option<String>,
    code_challenge: Option<String>,
    response_mode: Option<ResponseMode>,
    origin: Option<String>,
    display: Display,
    environment: Environment,
}

impl AuthorizeUrlBuilder {
    /// `client_id`: the app's API key, 40 hex characters (`0x` optional, any case; sent
    /// lower-case without `0x`). Required.
    pub fn client_id(mut self, key: impl Into<String>) -> Self {
        self.client_id = Some(key.into());
        self
    }

    /// `redirect_uri`: one of the app's registered redirect URIs, or
    /// [`RedirectUri::PostMessage`] for the popup channel. Required.
    pub fn redirect_uri(mut self, uri: RedirectUri) -> Self {
        self.redirect_uri = Some(uri);
        self
    }

    /// `scope`. Default: [`Scope::Read`].
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// `state`, bound to the browser session. Required.
    pub fn state(mut self, state: &State) -> Self {
        self.state = Some(state.secret().to_owned());
        self
    }

    /// `code_challenge` (and `code_challenge_method=S256`) from the verifier kept in the session.
    /// Required (this or [`code_challenge`](Self::code_challenge)).
    pub fn pkce(mut self, verifier: &PkceVerifier) -> Self {
        self.code_challenge = Some(verifier.challenge());
        self
    }

    /// `code_challenge` given directly: 43 base64url characters (an S256 challenge). Default:
    /// none; see [`pkce`](Self::pkce).
    pub fn code_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.code_challenge = Some(challenge.into());
        self
    }

    /// `response_mode`. Default: [`ResponseMode::Query`]. Always sent: the page's own default
    /// changed from fragment to query in 2026, so the URL never relies on it.
    pub fn response_mode(mut self, mode: ResponseMode) -> Self {
        self.response_mode = Some(mode);
        self
    }

    /// `origin`: the opener's origin, required with `postmessage`. Default: none.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// `display`. Default: [`Display::Popup`].
    pub fn display(mut self, display: Display) -> Self {
        self.display = display;
        self
    }

    /// Which Audius API. Default: [`Environment::Production`] (`https://api.audius.co`).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The authorization URL, or [`Error::Config`] when a required parameter is missing or
    /// wrong.
    pub fn build(self) -> Result<Url> {
        let client_id = self
            .client_id
            .as_deref()
            .ok_or_else(|| {
                Error::from(ConfigError::new(
                    "client_id",
                    "the code flow needs client_id, the app's API key",
                ))
            })
            .and_then(crate::login_url::normalize_api_key)?;
        let redirect_uri = self.redirect_uri.ok_or_else(|| {
            Error::from(ConfigError::new(
                "redirect_uri",
                "a redirect URI is required",
            ))
        })?;
        let state = self.state.ok_or_else(|| {
            Error::from(ConfigError::new(
                "state",
                "a state is required (the CSRF defence)",
            ))
        })?;
        let challenge = self.code_challenge.ok_or_else(|| {
            Error::from(ConfigError::new(
                "code_challenge",
                "a PKCE code challenge is required (AuthorizeUrlBuilder::pkce)",
            ))
        })?;
        if challenge.len() != 43
            || !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::new(
                "code_challenge",
                "a code challenge is base64url(SHA-256(verifier)): 43 base64url characters",
            )
            .into());
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
        let base = self.environment.api();
        let mut url = Url::parse(&format!(
            "{}{AUTHORIZE_PATH}",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| {
            Error::from(ConfigError::new(
                "environment",
                format!("bad API URL {base}: {e}"),
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.clear();
            q.append_pair("response_type", "code");
            q.append_pair("client_id", &client_id);
            q.append_pair("redirect_uri", redirect_uri.as_str());
            q.append_pair("scope", self.scope.as_str());
            q.append_pair("state", &state);
            q.append_pair("code_challenge", &challenge);
            q.append_pair("code_challenge_method", CODE_CHALLENGE_METHOD);
            q.append_pair(
                "response_mode",
                self.response_mode.unwrap_or(ResponseMode::Query).as_str(),
            );
            if let Some(origin) = &origin {
                q.append_pair("origin", origin);
            }
            q.append_pair("display", self.display.as_str());
        }
        Ok(url)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn authorize_url_has_every_parameter() {
        let verifier = PkceVerifier::new(RFC_VERIFIER).unwrap();
        let key = "A0D105A0D105A0D105A0D105A0D105A0D105A0D1";
        let url = AuthorizeUrl::builder()
            .client_id(format!("0x{key}"))
            .redirect_uri(RedirectUri::parse("http://localhost:8080/auth/audius/callback").unwrap())
            .scope(Scope::Write)
            .state(&State::new("st").unwrap())
            .pkce(&verifier)
            .build()
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.audius.co/v1/oauth/authorize?response_type=code\
             &client_id=a0d105a0d105a0d105a0d105a0d105a0d105a0d1\
             &redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fauth%2Faudius%2Fcallback\
             &scope=write&state=st&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256&response_mode=query&display=popup"
        );
        let popup = AuthorizeUrl::builder()
            .client_id(key)
            .redirect_uri(RedirectUri::PostMessage)
            .origin("http://localhost:8080/")
            .state(&State::new("st").unwrap())
            .code_challenge(RFC_CHALLENGE)
            .response_mode(ResponseMode::Fragment)
            .display(Display::FullScreen)
            .environment(Environment::Custom {
                login_page: Url::parse("http://127.0.0.1:9/oauth/auth").unwrap(),
                api: Url::parse("http://127.0.0.1:9/prefix/").unwrap(),
            })
            .build()
            .unwrap();
        assert!(
            popup
                .as_str()
                .starts_with("http://127.0.0.1:9/prefix/v1/oauth/authorize?response_type=code&"),
            "{popup}"
        );
        assert!(popup.as_str().contains(
            "&response_mode=fragment&origin=http%3A%2F%2Flocalhost%3A8080&display=fullScreen"
        ));
    }

    #[test]
    fn authorize_url_refusals() {
        let ok = || {
            AuthorizeUrl::builder()
                .client_id("ab".repeat(20))
                .redirect_uri(RedirectUri::parse("https://app.example/cb").unwrap())
                .state(&State::generate())
                .pkce(&PkceVerifier::generate())
        };
        assert!(ok().build().is_ok());
        let no_key = AuthorizeUrl::builder()
            .redirect_uri(RedirectUri::parse("https://app.example/cb").unwrap())
            .state(&State::generate())
            .pkce(&PkceVerifier::generate());
        assert!(no_key.build().is_err());
        assert!(ok().client_id("0x12").build().is_err());
        assert!(ok().code_challenge("short").build().is_err());
        assert!(ok().code_challenge("+".repeat(43)).build().is_err());
        assert!(
            ok().redirect_uri(RedirectUri::PostMessage).build().is_err(),
            "postmessage needs an origin"
        );
        assert!(ok().origin("http://x/path").build().is_err());
        let no_state = AuthorizeUrl::builder()
            .client_id("ab".repeat(20))
            .redirect_uri(RedirectUri::parse("https://app.example/cb").unwrap())
            .pkce(&PkceVerifier::generate());
        assert!(no_state.build().is_err());
    }
}
