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

/// The button's corners (`corners` in the SDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ButtonCorners {
    /// Slightly rounded (default).
    #[default]
    Default,
    /// Fully rounded ends.
    Pill,
}

/// Whether the button grows a little on hover (`disableHoverGrow` in the SDK, inverted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HoverGrowth {
    /// Grows on hover (default).
    #[default]
    Grow,
    /// Stays still.
    Still,
}

/// The button's width (`fullWidth` in the SDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ButtonWidth {
    /// As wide as its text (default).
    #[default]
    Fit,
    /// As wide as its container.
    Full,
}

/// Options of [`AudiusLogin::login_button`](crate::AudiusLogin::login_button). Every setter states
/// its default.
#[derive(Debug, Clone, Default)]
pub struct ButtonOptions {
    size: ButtonSize,
    corners: ButtonCorners,
    custom_text: Option<String>,
    hover: HoverGrowth,
    width: ButtonWidth,
    return_to: Option<String>,
}

impl ButtonOptions {
    /// Size. Default: [`ButtonSize::Medium`].
    pub fn size(mut self, size: ButtonSize) -> Self {
        self.size = size;
        self
    }

    /// Corners. Default: [`ButtonCorners::Default`].
    pub fn corners(mut self, corners: ButtonCorners) -> Self {
        self.corners = corners;
        self
    }

    /// The label. Default: "Continue With Audius".
    pub fn custom_text(mut self, text: impl Into<String>) -> Self {
        self.custom_text = Some(text.into());
        self
    }

    /// Hover growth. Default: [`HoverGrowth::Grow`].
    pub fn hover(mut self, hover: HoverGrowth) -> Self {
        self.hover = hover;
        self
    }

    /// Width. Default: [`ButtonWidth::Fit`].
    pub fn width(mut self, width: ButtonWidth) -> Self {
        self.width = width;
        self
    }

    /// Where to go after login (a path on this app; anything else falls back to the landing
    /// page). Default: the landing page.
    pub fn return_to(mut self, path: impl Into<String>) -> Self {
        self.return_to = Some(path.into());
        self
    }
}

/// The URL of the button stylesheet (versioned by content, cacheable for a year).
fn button_css_url(c: &Config) -> String {
    format!(
        "{}/button.css?v={}",
        c.assets_path,
        pages::content_version(pages::BUTTON_CSS)
    )
}

/// The URL of the popup script (versioned by content, cacheable for a year).
fn login_js_url(c: &Config) -> String {
    format!(
        "{}/login.js?v={}",
        c.assets_path,
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
    if options.corners == ButtonCorners::Pill {
        classes.push("audius-login-button--pill");
    }
    if options.hover == HoverGrowth::Grow {
        classes.push("audius-login-button--grow");
    }
    if options.width == ButtonWidth::Full {
        classes.push("audius-login-button--full-width");
    }
    let href = match &options.return_to {
        Some(path) => c.login_url_for(path),
        None => c.login_path.clone(),
    };
    let text = options
        .custom_text
        .as_deref()
        .unwrap_or(defaults::BUTTON_TEXT);
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
