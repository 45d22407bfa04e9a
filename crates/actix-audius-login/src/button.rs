//! The "Log In with Audius" button: its options ([`ButtonOptions`]) and its HTML (see
//! [`AudiusLogin::login_button`](crate::AudiusLogin::login_button)).

use maud::{PreEscaped, html};

use crate::config::{Config, ResponseMode};
use crate::defaults;
use crate::pages;

/// The button's size (`size` in the SDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ButtonSize {
    /// 32 px high.
    Small,
    /// 40 px high (default).
    #[default]
    Medium,
    /// 52 px high.
    Large,
}

/// Options of [`AudiusLogin::login_button`](crate::AudiusLogin::login_button), those of the Audius
/// SDK's `renderButton`. A plain struct: set the fields you want and take the rest from
/// `ButtonOptions::default()`.
///
/// ```
/// use actix_audius_login::{ButtonOptions, ButtonSize};
///
/// let options = ButtonOptions {
///     size: ButtonSize::Large,
///     pill: true,
///     return_to: Some("/studio".into()),
///     ..ButtonOptions::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ButtonOptions {
    /// Size (`size` in the SDK). Default: [`ButtonSize::Medium`].
    pub size: ButtonSize,
    /// Fully rounded ends (`corners: "pill"` in the SDK). Default: `false` (slightly rounded).
    pub pill: bool,
    /// As wide as its container (`fullWidth` in the SDK). Default: `false` (as wide as its
    /// text).
    pub full_width: bool,
    /// Grows a little on hover (`disableHoverGrow` in the SDK, inverted). Default: `true`.
    pub grow_on_hover: bool,
    /// The label (`customText` in the SDK). Default: `None`, "Continue With Audius".
    pub text: Option<String>,
    /// Where to go after login (a path on this app; anything else falls back to the landing
    /// page). Default: `None`, the landing page.
    pub return_to: Option<String>,
}

impl Default for ButtonOptions {
    fn default() -> Self {
        Self {
            size: ButtonSize::default(),
            pill: false,
            full_width: false,
            grow_on_hover: true,
            text: None,
            return_to: None,
        }
    }
}

/// The URL of the button stylesheet (versioned by content, cacheable for a year).
fn button_css_url(c: &Config) -> String {
    format!(
        "{}/button.css?v={}",
        c.paths.assets,
        pages::content_version(pages::BUTTON_CSS)
    )
}

/// The URL of the popup script (versioned by content, cacheable for a year).
fn login_js_url(c: &Config) -> String {
    format!(
        "{}/login.js?v={}",
        c.paths.assets,
        pages::content_version(pages::LOGIN_JS)
    )
}

/// The HTML of the button ([`AudiusLogin::login_button`](crate::AudiusLogin::login_button)).
pub(crate) fn render(c: &Config, options: &ButtonOptions) -> String {
    let mut classes = vec![
        "audius-login-button",
        match options.size {
            ButtonSize::Small => "audius-login-button--small",
            ButtonSize::Medium => "audius-login-button--medium",
            ButtonSize::Large => "audius-login-button--large",
        },
    ];
    if options.pill {
        classes.push("audius-login-button--pill");
    }
    if options.grow_on_hover {
        classes.push("audius-login-button--grow");
    }
    if options.full_width {
        classes.push("audius-login-button--full-width");
    }
    let href = match &options.return_to {
        Some(path) => c.login_url_for(path),
        None => c.paths.login.clone(),
    };
    let text = options.text.as_deref().unwrap_or(defaults::BUTTON_TEXT);
    let popup = c.response_mode == ResponseMode::PostMessage;
    html! {
        link rel="stylesheet" href=(button_css_url(c));
        a id="audius-login-button" class=(classes.join(" ")) href=(href)
            data-audius-status="audius-login-status"
            data-audius-popup=[popup.then_some("true")]
            data-audius-origin=[popup.then(|| c.environment.login_origin())]
            data-audius-callback=[popup.then_some(c.callback_path.as_str())]
        {
            (PreEscaped(pages::LOGO_SVG))
            span { (text) }
        }
        p id="audius-login-status" class="audius-login-status" role="alert" hidden {}
        @if popup {
            script src=(login_js_url(c)) defer {}
        }
    }
    .into_string()
}
