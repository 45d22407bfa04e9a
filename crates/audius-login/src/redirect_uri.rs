//! `redirect_uri` rules (spec section 5), judged strictly.
//!
//! ```
//! use audius_login::{RedirectUri, redirect_uri::RedirectRule};
//!
//! let uri = RedirectUri::parse("https://app.example/auth/callback")?;
//! assert_eq!(uri.as_str(), "https://app.example/auth/callback");
//! assert!(RedirectUri::parse("PostMessage")?.is_post_message());
//!
//! let err = RedirectUri::parse("https://app.example/a/%2e%2e/admin").unwrap_err();
//! assert_eq!(err.rule(), RedirectRule::Traversal);
//! let err = RedirectUri::parse("http://10.0.0.1/cb").unwrap_err();
//! assert_eq!(err.rule(), RedirectRule::IpHost);
//! # Ok::<(), audius_login::redirect_uri::RedirectUriError>(())
//! ```
//!
//! The rules, in the order they are checked (the first that fails is reported):
//!
//! 1. **syntax**: not empty, at most [`MAX_REDIRECT_URI_LEN`] characters;
//! 2. **scheme**: not `javascript:`, `data:`, `vbscript:` or `file:`;
//! 3. **fragment**: no `#`;
//! 4. **traversal**: no `/..` or `\..`;
//! 5. **syntax**: only URI characters (RFC 3986), well-formed `%XX` escapes, parses as a URL;
//! 6. **userinfo**: no `user:pass@`;
//! 7. **ip_host**: the host is not an IP literal unless loopback (`127.0.0.0/8`, `[::1]`), judged
//!    after normalisation (`0x7f.1`, `2130706433` are IPv4 literals).
//!
//! Rules 2, 3, 4, 6 and 7 are also judged on the text percent-decoded once, as the Audius page
//! decodes `redirect_uri` again before using it, and rules 2, 3 and 4 on the normalised URL
//! (the text actually sent). `postmessage` (any case) is accepted as the
//! popup answer channel.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use percent_encoding::percent_decode_str;
use url::{Host, Url};

use crate::defaults::MAX_REDIRECT_URI_LEN;

/// Schemes refused outright.
const REFUSED_SCHEMES: [&str; 4] = ["javascript", "data", "vbscript", "file"];

/// Which rule a redirect URI broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RedirectRule {
    /// Not a URI: empty, too long, invalid characters or escapes, or does not parse.
    Syntax,
    /// A refused scheme (`javascript:`, `data:`, `vbscript:`, `file:`).
    Scheme,
    /// Has a fragment (`#`).
    Fragment,
    /// Has userinfo (`user:pass@`).
    Userinfo,
    /// Has a path traversal (`/..` or `\..`).
    Traversal,
    /// The host is an IP address that is not loopback.
    IpHost,
}

impl RedirectRule {
    /// The snake-case name used in machine output: `syntax`, `scheme`, `fragment`, `userinfo`,
    /// `traversal`, `ip_host`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Scheme => "scheme",
            Self::Fragment => "fragment",
            Self::Userinfo => "userinfo",
            Self::Traversal => "traversal",
            Self::IpHost => "ip_host",
        }
    }
}

impl fmt::Display for RedirectRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused redirect URI: the rule it broke, and why in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid redirect URI ({rule}): {message}")]
pub struct RedirectUriError {
    rule: RedirectRule,
    message: String,
}

impl RedirectUriError {
    fn new(rule: RedirectRule, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }

    /// The rule that failed.
    pub fn rule(&self) -> RedirectRule {
        self.rule
    }

    /// Why, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A redirect URI that passed every rule, or `postmessage`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RedirectUri {
    /// `postmessage`: the answer is posted to the opener window (popup flow).
    PostMessage,
    /// A URL the login page navigates to.
    Url(Url),
}

impl RedirectUri {
    /// Judges a redirect URI by the rules of this module.
    pub fn parse(input: &str) -> Result<Self, RedirectUriError> {
        use RedirectRule::*;
        if input.is_empty() {
            return Err(RedirectUriError::new(Syntax, "the redirect URI is empty"));
        }
        if input.len() > MAX_REDIRECT_URI_LEN {
            return Err(RedirectUriError::new(
                Syntax,
                format!("longer than {MAX_REDIRECT_URI_LEN} characters"),
            ));
        }
        if input.eq_ignore_ascii_case("postmessage") {
            return Ok(Self::PostMessage);
        }
        let url = judge(input)?;
        if url.as_str().len() > MAX_REDIRECT_URI_LEN {
            // `https:host/...` gains `//` when normalised.
            return Err(RedirectUriError::new(
                Syntax,
                format!("longer than {MAX_REDIRECT_URI_LEN} characters (after normalisation)"),
            ));
        }
        // What is sent is the normalised URL: it must pass every rule on its own, and stay
        // itself (`itT:/./%2f8` normalises to `itt:/%2f8`, whose decoded form `itt://8` has an
        // IP host that the input's decoded form `itT:/.//8` did not have).
        if url.as_str() != input {
            let again = judge(url.as_str()).map_err(|e| {
                let message = if e.message.ends_with("(after normalisation)") {
                    e.message
                } else {
                    format!("{} (after normalisation)", e.message)
                };
                RedirectUriError::new(e.rule, message)
            })?;
            if again != url {
                return Err(RedirectUriError::new(
                    Syntax,
                    format!("the URL changes each time it is normalised ({url}, then {again})"),
                ));
            }
        }
        Ok(Self::Url(url))
    }

    /// `true` for [`RedirectUri::PostMessage`].
    pub fn is_post_message(&self) -> bool {
        matches!(self, Self::PostMessage)
    }

    /// The URL, unless this is `postmessage`.
    pub fn url(&self) -> Option<&Url> {
        match self {
            Self::PostMessage => None,
            Self::Url(url) => Some(url),
        }
    }

    /// The normalised text sent as `redirect_uri`: `postmessage`, or the URL.
    pub fn as_str(&self) -> &str {
        match self {
            Self::PostMessage => "postmessage",
            Self::Url(url) => url.as_str(),
        }
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RedirectUri {
    type Err = RedirectUriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Every rule but the length and `postmessage` ones, on one text: the URL it parses to.
fn judge(input: &str) -> Result<Url, RedirectUriError> {
    use RedirectRule::*;
    let decoded = percent_decode_str(input).decode_utf8_lossy();
    for (form, text) in [("", input), (" (after percent-decoding)", decoded.as_ref())] {
        check_text(text, form)?;
        check_userinfo_text(text, form)?;
    }
    // The page decodes once more before parsing, and the URL parser then reads `%2e%2e` as
    // `..` and `%2f`, `%5c` as separators: traversal is judged on the text decoded twice too
    // (`%252e%252e`, `%252f..%252f`: review 13).
    let twice = percent_decode_str(&decoded).decode_utf8_lossy();
    if twice.contains("/..") || twice.contains("\\..") {
        return Err(RedirectUriError::new(
            RedirectRule::Traversal,
            "a redirect URI may not contain a path traversal (/.. or \\..) (after \
             percent-decoding twice)",
        ));
    }
    check_characters(input)?;
    // The decoded form, when it is a URL, must pass the URL rules too.
    if decoded != input
        && let Ok(url) = Url::parse(&decoded)
    {
        check_url(&url, " (after percent-decoding)")?;
    }
    let url = Url::parse(input)
        .map_err(|e| RedirectUriError::new(Syntax, format!("not a valid URL: {e}")))?;
    check_url(&url, "")?;
    // What is sent is the normalised URL: it must pass the text rules too (`http:..`
    // normalises to `http://../`), and hold only RFC 3986 characters (the URL parser
    // percent-decodes hosts: `http://%60x/` is the host "`x", which it allows).
    check_text(url.as_str(), " (after normalisation)")?;
    check_characters(url.as_str()).map_err(|e| {
        RedirectUriError::new(
            RedirectRule::Syntax,
            format!("{} (after normalisation)", e.message()),
        )
    })?;
    Ok(url)
}

/// Scheme, fragment and traversal rules on a text form.
fn check_text(text: &str, form: &str) -> Result<(), RedirectUriError> {
    use RedirectRule::*;
    // What a browser would take as the scheme: strip leading controls and spaces it ignores.
    let trimmed = text.trim_start_matches(|c: char| c <= ' ');
    if let Some(colon) = trimmed.find(':') {
        let scheme: String = trimmed[..colon]
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect::<String>()
            .to_ascii_lowercase();
        if REFUSED_SCHEMES.contains(&scheme.as_str()) {
            return Err(RedirectUriError::new(
                Scheme,
                format!("the scheme {scheme:?} is refused{form}"),
            ));
        }
    }
    if text.contains('#') {
        return Err(RedirectUriError::new(
            Fragment,
            format!("a redirect URI may not have a fragment (#){form}"),
        ));
    }
    if text.contains("/..") || text.contains("\\..") {
        return Err(RedirectUriError::new(
            Traversal,
            format!("a redirect URI may not contain a path traversal (/.. or \\..){form}"),
        ));
    }
    Ok(())
}

/// Userinfo in the text's authority, even an empty one (`https://@host/`, `https://:@host/`),
/// which the URL parser drops without a trace (review 13).
fn check_userinfo_text(text: &str, form: &str) -> Result<(), RedirectUriError> {
    let Some((_, rest)) = text.split_once("://") else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(RedirectUriError::new(
            RedirectRule::Userinfo,
            format!("a redirect URI may not carry userinfo (user:pass@){form}"),
        ));
    }
    Ok(())
}

/// Only RFC 3986 characters, and well-formed escapes.
fn check_characters(input: &str) -> Result<(), RedirectUriError> {
    let bytes = input.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b);
        if !ok {
            let shown = input[i..].chars().next().unwrap_or('?');
            return Err(RedirectUriError::new(
                RedirectRule::Syntax,
                format!("invalid character {shown:?} at byte {i}"),
            ));
        }
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err(RedirectUriError::new(
                    RedirectRule::Syntax,
                    format!("invalid percent-escape at byte {i}"),
                ));
            }
        }
    }
    Ok(())
}

/// Userinfo and IP-host rules on a parsed URL.
fn check_url(url: &Url, form: &str) -> Result<(), RedirectUriError> {
    use RedirectRule::*;
    if REFUSED_SCHEMES.contains(&url.scheme()) {
        return Err(RedirectUriError::new(
            Scheme,
            format!("the scheme {:?} is refused{form}", url.scheme()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriError::new(
            Userinfo,
            format!("a redirect URI may not carry userinfo (user:pass@){form}"),
        ));
    }
    if url.fragment().is_some() {
        return Err(RedirectUriError::new(
            Fragment,
            format!("a redirect URI may not have a fragment (#){form}"),
        ));
    }
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        // Opaque hosts of custom schemes are not normalised by the URL parser: judge them as a
        // browser would judge them in an http URL.
        Some(Host::Domain(d)) if !url.is_special() => Url::parse(&format!("http://{d}/"))
            .ok()
            .and_then(|u| match u.host() {
                Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            }),
        _ => None,
    };
    if let Some(ip) = ip {
        let loopback = match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
        };
        if !loopback {
            return Err(RedirectUriError::new(
                IpHost,
                format!(
                    "the host {ip} is an IP address; only loopback addresses are allowed{form}"
                ),
            ));
        }
    }
    if url.is_special() && url.host_str().is_none_or(str::is_empty) {
        return Err(RedirectUriError::new(
            Syntax,
            format!("an {} redirect URI needs a host{form}", url.scheme()),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use RedirectRule::*;

    #[test]
    fn table() {
        let accepted = [
            ("https://app.example/cb", "https://app.example/cb"),
            (
                "http://localhost:8080/auth/audius/callback",
                "http://localhost:8080/auth/audius/callback",
            ),
            ("http://127.0.0.1:3000/cb", "http://127.0.0.1:3000/cb"),
            ("http://127.9.9.9/cb", "http://127.9.9.9/cb"),
            ("http://[::1]:3000/cb", "http://[::1]:3000/cb"),
            ("http://0x7f.1/cb", "http://127.0.0.1/cb"),
            ("http://2130706433/cb", "http://127.0.0.1/cb"),
            ("myapp://callback", "myapp://callback"),
            (
                "https://APP.example/cb?x=1&y=%20",
                "https://app.example/cb?x=1&y=%20",
            ),
            ("https://app.example/a/b..c", "https://app.example/a/b..c"),
        ];
        for (input, normalised) in accepted {
            let uri = RedirectUri::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(uri.as_str(), normalised);
        }
        assert_eq!(
            RedirectUri::parse("postMESSAGE").unwrap(),
            RedirectUri::PostMessage
        );

        let refused = [
            ("", Syntax),
            ("not a url", Syntax),
            ("https://app.example/cb#frag", Fragment),
            ("https://app.example/cb%23frag", Fragment),
            ("https://user:pw@app.example/cb", Userinfo),
            ("https://user@app.example/cb", Userinfo),
            ("https://app.example/a/../b", Traversal),
            ("https://app.example/a/..b", Traversal),
            ("https://app.example/a/%2e%2e/b", Traversal),
            ("https://app.example/a%2f..%2fb", Traversal),
            ("https://app.example\\..\\b", Traversal),
            ("http:..", Traversal),
            ("http://10.0.0.1/cb", IpHost),
            ("http://167772161/cb", IpHost),
            ("http://3232235777/cb", IpHost),
            ("http://0x0a.1/cb", IpHost),
            ("http://[2001:db8::1]/cb", IpHost),
            ("http://[::ffff:10.0.0.1]/cb", IpHost),
            ("myapp://10.1.2.3/cb", IpHost),
            ("javascript:alert(1)", Scheme),
            ("JavaScript:alert(1)", Scheme),
            ("data:text/html,hi", Scheme),
            ("vbscript:msgbox", Scheme),
            ("file:///etc/passwd", Scheme),
            ("javascript%3Aalert(1)", Scheme),
            ("https://app.example/c b", Syntax),
            ("https://app.example/cb%zz", Syntax),
            ("https://app.example/<script>", Syntax),
            ("https://good.example%40evil.example/", Userinfo),
        ];
        for (input, rule) in refused {
            let err = RedirectUri::parse(input).expect_err(input);
            assert_eq!(err.rule(), rule, "{input}: {err}");
        }
        let long = format!("https://app.example/{}", "a".repeat(MAX_REDIRECT_URI_LEN));
        assert_eq!(RedirectUri::parse(&long).unwrap_err().rule(), Syntax);
    }
}
