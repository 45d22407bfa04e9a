//! What the token endpoint gives: the access and refresh tokens (secrets that do not print) and
//! the [`TokenSet`] holding them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::defaults::{MAX_EXPIRES_IN, MAX_OAUTH_TOKEN_LEN};
use crate::error::{Error, Limited, Result};
use crate::login_url::Scope;

macro_rules! secret_token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a token's text (as read back from storage).
            pub fn new(token: impl Into<String>) -> Self {
                Self(token.into())
            }

            /// The token's text, to send on the wire.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Whether `candidate` is this token, compared in constant time.
            pub fn matches(&self, candidate: &str) -> bool {
                crate::login_url::constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_token!(
    /// An OAuth access token: `Authorization: Bearer <token>` on API calls, valid one hour.
    /// Opaque, not a JWT. Prints as `AccessToken(..)`; no `PartialEq`, no `Display`.
    AccessToken
);

secret_token!(
    /// An OAuth refresh token: exchanged for a new pair, once (it rotates). Valid 30 days.
    /// Opaque. Prints as `RefreshToken(..)`; no `PartialEq`, no `Display`.
    RefreshToken
);

/// What a successful code exchange or refresh gives (PKCE spec section 2).
///
/// `Debug` shows the lifetime and scope, never the tokens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token (a new one on every refresh; the old one is used up).
    pub refresh_token: RefreshToken,
    /// `token_type`: always `Bearer`.
    pub token_type: String,
    /// `expires_in`: the access token's lifetime (one hour at Audius).
    pub expires_in: Duration,
    /// `scope`: what the tokens allow.
    pub scope: Scope,
}

impl TokenSet {
    /// Reads a token answer: `{"access_token", "token_type": "Bearer", "expires_in",
    /// "refresh_token", "scope"}`. Anything missing or of the wrong type is an
    /// [`Error::UpstreamUnexpected`] (status 200).
    pub fn from_json(value: &Value) -> Result<Self> {
        let bad = |message: String| Error::UpstreamUnexpected {
            status: 200,
            message,
        };
        let token = |key: &str| -> Result<String> {
            match value.get(key).and_then(Value::as_str) {
                Some(t) if !t.is_empty() && t.len() <= MAX_OAUTH_TOKEN_LEN => Ok(t.to_owned()),
                Some(t) if !t.is_empty() => Err(Error::TooLarge {
                    what: Limited::ResponseBody,
                    limit: MAX_OAUTH_TOKEN_LEN,
                }),
                _ => Err(bad(format!("the token answer has no {key}"))),
            }
        };
        let access_token = AccessToken(token("access_token")?);
        let refresh_token = RefreshToken(token("refresh_token")?);
        let token_type = value
            .get("token_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(bad(format!(
                "the token answer's token_type is {:?}, not Bearer",
                token_type.chars().take(32).collect::<String>()
            )));
        }
        let expires_in = match value.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64().filter(|s| *s > 0).ok_or_else(|| {
                bad("the token answer's expires_in is not a positive integer".into())
            })?,
            _ => return Err(bad("the token answer has no expires_in number".into())),
        };
        let scope = value
            .get("scope")
            .and_then(Value::as_str)
            .and_then(parse_scope)
            .ok_or_else(|| bad("the token answer's scope is not read or write".into()))?;
        Ok(Self {
            access_token,
            refresh_token,
            token_type: "Bearer".to_owned(),
            expires_in: Duration::from_secs(expires_in).min(MAX_EXPIRES_IN),
            scope,
        })
    }

    /// When the access token expires, for tokens received at `received_at`.
    pub fn expires_at(&self, received_at: OffsetDateTime) -> OffsetDateTime {
        received_at + self.expires_in
    }
}

/// Reads a scope as the PKCE spec writes it: `read`, `write`, or a space-separated list of those
/// (containing `write` means `write`). `None` for anything else.
pub(crate) fn parse_scope(text: &str) -> Option<Scope> {
    let mut scope = None;
    for part in text.split(' ').filter(|p| !p.is_empty()) {
        match part {
            "read" => {
                scope.get_or_insert(Scope::Read);
            }
            "write" => scope = Some(Scope::Write),
            _ => return None,
        }
    }
    scope
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    #[test]
    fn secrets_do_not_print() {
        let set = TokenSet::from_json(&json!({
            "access_token": "A".repeat(43), "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "R".repeat(43), "scope": "write"
        }))
        .unwrap();
        let shown = format!("{set:?}");
        assert!(
            !shown.contains("AAAA") && !shown.contains("RRRR"),
            "{shown}"
        );
        assert!(shown.contains("AccessToken(..)") && shown.contains("RefreshToken(..)"));
        assert_eq!(set.expires_in, Duration::from_secs(3600));
        assert_eq!(set.scope, Scope::Write);
        assert!(set.access_token.matches(&"A".repeat(43)));
        assert!(!set.access_token.matches("A"));
        let t0 = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        assert_eq!(set.expires_at(t0).unix_timestamp(), 4_600);
    }

    #[test]
    fn token_answers_are_checked() {
        let good = json!({
            "access_token": "a", "token_type": "bearer", "expires_in": 10,
            "refresh_token": "r", "scope": "read write"
        });
        assert_eq!(TokenSet::from_json(&good).unwrap().scope, Scope::Write);
        for (key, value) in [
            ("access_token", json!(null)),
            ("access_token", json!("")),
            ("refresh_token", json!(5)),
            ("token_type", json!("MAC")),
            ("expires_in", json!("3600")),
            ("expires_in", json!(0)),
            ("expires_in", json!(-5)),
            ("scope", json!("admin")),
            ("scope", json!(null)),
        ] {
            let mut v = good.clone();
            v[key] = value;
            let e = TokenSet::from_json(&v).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UpstreamUnexpected, "{key}: {e}");
        }
        let mut v = good.clone();
        v["access_token"] = json!("x".repeat(MAX_OAUTH_TOKEN_LEN + 1));
        assert_eq!(
            TokenSet::from_json(&v).unwrap_err().kind(),
            ErrorKind::TooLarge
        );
        let mut v = good;
        v["expires_in"] = json!(u64::MAX);
        assert_eq!(TokenSet::from_json(&v).unwrap().expires_in, MAX_EXPIRES_IN);
    }

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("read"), Some(Scope::Read));
        assert_eq!(parse_scope("write"), Some(Scope::Write));
        assert_eq!(parse_scope("write read"), Some(Scope::Write));
        assert_eq!(parse_scope("read read"), Some(Scope::Read));
        assert_eq!(parse_scope(""), None);
        assert_eq!(parse_scope("read profile"), None);
    }
}
