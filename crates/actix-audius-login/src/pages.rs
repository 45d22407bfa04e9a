//! The small pages and assets this crate serves: error pages, the fragment bridge, the button's
//! stylesheet and the popup script. No external assets.

use std::sync::OnceLock;

use base64::Engine as _;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

/// The popup (postmessage) script.
pub(crate) const LOGIN_JS: &str = include_str!("../assets/login.js");
/// The button stylesheet.
pub(crate) const BUTTON_CSS: &str = include_str!("../assets/button.css");
/// The fragment bridge's script (inlined, allowed by its hash in the page's CSP).
const BRIDGE_JS: &str = include_str!("../assets/bridge.js");

/// A short content hash, for cache-busting asset URLs and ETags.
pub(crate) fn content_version(content: &str) -> String {
    hex_prefix(&Sha256::digest(content.as_bytes()), 8)
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// The page around `body`: the same head and style for every page this crate serves.
fn base_page(title: &str, body: Markup) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
                style { (PreEscaped(PAGE_CSS)) }
            }
            body { (body) }
        }
    };
    let mut page = page.into_string();
    page.push('\n');
    page
}

/// The style of the error and bridge pages.
const PAGE_CSS: &str = "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;\
     max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1b1b1f;line-height:1.5}\
     h1{font-size:1.4rem}a{color:#7e1bcc}code{font-size:.85em;color:#666}";

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
        html! {
            main data-audius-error=(code) {
                h1 { (title) }
                p { (message) }
                p { a href=(login_path) { "Log in with Audius" } " · " a href=(landing) { "Home" } }
                p { code { (code) } }
            }
        },
    )
}

/// The page served at the callback in fragment mode: reads `location.hash`, removes it from
/// history, posts it to the callback, and goes on to the return-to.
pub(crate) fn bridge_page(callback_path: &str, login_path: &str) -> String {
    base_page(
        "Signing you in…",
        html! {
            main id="audius-bridge" data-callback=(callback_path) {
                h1 { "Signing you in…" }
                p data-status { "One moment." }
                p data-retry hidden { a href=(login_path) { "Try again" } }
                noscript { p { "JavaScript is needed to finish signing in with Audius." } }
            }
            // The script is the asset itself, unchanged: the page's CSP allows it by its hash.
            script { (PreEscaped(BRIDGE_JS)) }
        },
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

/// The Audius-style logo mark, drawn for this crate (not Audius' trademark file): trusted markup,
/// written here.
pub(crate) const LOGO_SVG: &str = "<svg class=\"audius-login-button__logo\" viewBox=\"0 0 24 24\" \
     aria-hidden=\"true\" focusable=\"false\"><path fill=\"currentColor\" d=\"M12 2.5 1.6 20.4c-.3.5.1 \
     1.1.7 1.1h19.4c.6 0 1-.6.7-1.1L12 2.5Zm0 5.3 4.1 7.1h-2.6L12 12.3l-1.5 2.6H7.9L12 7.8Zm-5.6 \
     9.7h11.2l1.4 2.4H5l1.4-2.4Z\"/></svg>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        let hostile = "<script>alert('x')&\"</script>";
        let page = error_page(hostile, hostile, hostile, hostile, hostile);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert('x')&amp;&quot;&lt;/script&gt;"),
            "{page}"
        );
        assert!(page.contains("data-audius-error=\"&lt;script&gt;alert('x')&amp;&quot;"));
        let bridge = bridge_page(hostile, hostile);
        assert!(bridge.contains("data-callback=\"&lt;script&gt;alert('x')&amp;&quot;"));
        // The bridge script is the asset, byte for byte: its hash is the one in the CSP.
        assert!(bridge.contains(&format!("<script>{BRIDGE_JS}</script>")));
    }

    #[test]
    fn csp_carries_the_bridge_hash() {
        assert!(bridge_csp().contains("script-src 'sha256-"));
        assert_eq!(content_version("x").len(), 16);
    }
}
