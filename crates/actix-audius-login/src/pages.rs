//! The small pages and assets this crate serves: error pages, the fragment bridge, the button's
//! stylesheet and the popup script. No external assets.

use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The popup (postmessage) script.
pub(crate) const LOGIN_JS: &str = include_str!("../assets/login.js");
/// The button stylesheet.
pub(crate) const BUTTON_CSS: &str = include_str!("../assets/button.css");
/// The fragment bridge's script (inlined, allowed by its hash in the page's CSP).
const BRIDGE_JS: &str = include_str!("../assets/bridge.js");

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A short content hash, for cache-busting asset URLs and ETags.
pub(crate) fn content_version(content: &str) -> String {
    hex_prefix(&Sha256::digest(content.as_bytes()), 8)
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

fn base_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;\
         max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1b1b1f;line-height:1.5}}\
         h1{{font-size:1.4rem}}a{{color:#7e1bcc}}code{{font-size:.85em;color:#666}}</style>\
         </head><body>{body}</body></html>\n",
        title = escape(title),
    )
}

/// The error page browsers get.
pub(crate) fn error_page(
    title: &str,
    message: &str,
    code: &str,
    login_path: &str,
    landing: &str,
) -> String {
    base_page(
        title,
        &format!(
            "<main data-audius-error=\"{code}\"><h1>{title}</h1><p>{message}</p>\
             <p><a href=\"{login}\">Log in with Audius</a> · <a href=\"{landing}\">Home</a></p>\
             <p><code>{code}</code></p></main>",
            code = escape(code),
            title = escape(title),
            message = escape(message),
            login = escape(login_path),
            landing = escape(landing),
        ),
    )
}

/// The page served at the callback in fragment mode: reads `location.hash`, removes it from
/// history, posts it to the callback, and goes on to the return-to.
pub(crate) fn bridge_page(callback_path: &str, login_path: &str) -> String {
    base_page(
        "Signing you in…",
        &format!(
            "<main id=\"audius-bridge\" data-callback=\"{callback}\"><h1>Signing you in…</h1>\
             <p data-status>One moment.</p><p data-retry hidden><a href=\"{login}\">Try again</a></p>\
             <noscript><p>JavaScript is needed to finish signing in with Audius.</p></noscript>\
             </main><script>{BRIDGE_JS}</script>",
            callback = escape(callback_path),
            login = escape(login_path),
        ),
    )
}

/// The Content-Security-Policy of the bridge page: nothing but its own inline script and
/// same-origin requests.
pub(crate) fn bridge_csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(BRIDGE_JS));
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
    })
}

/// The Audius-style logo mark, drawn for this crate (not Audius' trademark file).
pub(crate) const LOGO_SVG: &str = "<svg class=\"audius-login-button__logo\" viewBox=\"0 0 24 24\" \
     aria-hidden=\"true\" focusable=\"false\"><path fill=\"currentColor\" d=\"M12 2.5 1.6 20.4c-.3.5.1 \
     1.1.7 1.1h19.4c.6 0 1-.6.7-1.1L12 2.5Zm0 5.3 4.1 7.1h-2.6L12 12.3l-1.5 2.6H7.9L12 7.8Zm-5.6 \
     9.7h11.2l1.4 2.4H5l1.4-2.4Z\"/></svg>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            escape("<script>alert('x')&\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn csp_carries_the_bridge_hash() {
        assert!(bridge_csp().contains("script-src 'sha256-"));
        assert_eq!(content_version("x").len(), 16);
    }
}
