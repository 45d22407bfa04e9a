//! Return-to sanitising: where the browser may go after login.
//!
//! Only a path on the app's own origin is ever followed. Anything that could leave the origin
//! (an absolute URL, a scheme-relative `//host`, a backslash that browsers read as a slash, an
//! escape that decodes to one of those, control characters that browsers strip) is refused, and
//! the caller falls back to its landing page.
//!
//! ```
//! use audius_login::return_to::sanitize_return_to;
//!
//! assert_eq!(sanitize_return_to("/artists?page=2").as_deref(), Some("/artists?page=2"));
//! assert_eq!(sanitize_return_to("/a/../b").as_deref(), Some("/b"));
//! assert_eq!(sanitize_return_to("//evil.example/"), None);
//! assert_eq!(sanitize_return_to("/%5cevil.example"), None);
//! assert_eq!(sanitize_return_to("https://evil.example/"), None);
//! ```

use percent_encoding::percent_decode_str;
use url::Url;

use crate::defaults::MAX_RETURN_TO_LEN;

const BASE: &str = "http://return-to.invalid/";

/// Returns the normalised path (with query and fragment) when `input` is a same-origin path,
/// else `None`. The normalised path passes every rule itself (and is kept as it is), so
/// sanitising is idempotent: `/./%2f%2fevil` is refused, since its normal form `/%2f%2fevil`
/// decodes to `//evil`.
pub fn sanitize_return_to(input: &str) -> Option<String> {
    let out = sanitize_once(input)?;
    if out != input && sanitize_once(&out).as_deref() != Some(out.as_str()) {
        return None;
    }
    Some(out)
}

/// Every rule, on one text: its normal form, when it passes.
fn sanitize_once(input: &str) -> Option<String> {
    if input.is_empty() || input.len() > MAX_RETURN_TO_LEN {
        return None;
    }
    // Visible ASCII only: no spaces, tabs, newlines or controls (browsers strip some of them,
    // which can turn `/\t/evil` into `//evil`), no backslashes (read as `/`).
    if !input
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b'\\')
    {
        return None;
    }
    let decoded = percent_decode_str(input).decode_utf8().ok()?;
    for text in [input, decoded.as_ref()] {
        let mut chars = text.chars();
        if chars.next() != Some('/') || matches!(chars.next(), Some('/' | '\\')) {
            return None;
        }
        if text.chars().any(|c| c.is_control() || c == '\\') {
            return None;
        }
    }
    let base = Url::parse(BASE).ok()?;
    let url = base.join(input).ok()?;
    if url.scheme() != base.scheme()
        || url.host() != base.host()
        || url.port() != base.port()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let out = &url.as_str()[BASE.len() - 1..];
    // The normalised form must still be a plain path.
    (out.starts_with('/') && !out.starts_with("//")).then(|| out.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kept() {
        for (input, out) in [
            ("/", "/"),
            ("/me", "/me"),
            ("/a/b?c=d&e=%2F#top", "/a/b?c=d&e=%2F#top"),
            ("/?url=http://example.com", "/?url=http://example.com"),
            ("/http:/example.com", "/http:/example.com"),
            ("/.example.com", "/.example.com"),
            ("/a/./b/../c", "/a/c"),
        ] {
            assert_eq!(sanitize_return_to(input).as_deref(), Some(out), "{input}");
        }
    }

    #[test]
    fn refused() {
        for input in [
            "",
            "me",
            "//evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "/%2f%2fevil.example",
            "/%2F/evil.example",
            "/%5cevil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/%09/evil.example",
            "/a\r\nSet-Cookie: x=1",
            "/a%0d%0aSet-Cookie:x=1",
            "/caf\u{e9}",
            // Found by the fuzzer: a dot segment hid the `//` of the normal form.
            "/./%2f%2f%67%6f%6f%67%/%",
            "/./%2f%2fevil.example",
        ] {
            assert_eq!(sanitize_return_to(input), None, "{input:?}");
        }
        assert_eq!(
            sanitize_return_to(&format!("/{}", "a".repeat(MAX_RETURN_TO_LEN))),
            None
        );
    }
}
