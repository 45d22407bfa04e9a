//! Registered developer apps.

use audius_login::RedirectUri;
use audius_login::login_url::normalize_api_key;
use audius_login::redirect_uri::MAX_REDIRECT_URI_LEN;
use serde::Serialize;

use crate::error::SandboxError;
use crate::oauth::{BUILTIN_APP_API_KEY, BUILTIN_APP_NAME, BUILTIN_APP_REDIRECT_URIS};

/// Most redirect URIs one app may register.
pub(crate) const MAX_REDIRECT_URIS: usize = 50;

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
    pub(crate) fn check_redirect_uri(&self, uri: &str) -> Result<RedirectUri, String> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
