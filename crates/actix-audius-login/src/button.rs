//! The "Log In with Audius" button, with the options of the Audius SDK's `renderButton`.
//!
//! ```
//! use actix_audius_login::{AudiusLogin, ButtonOptions, ButtonSize, ButtonCorners};
//!
//! # fn page(audius: &AudiusLogin) -> String {
//! let button = audius.login_button(
//!     &ButtonOptions::default()
//!         .size(ButtonSize::Large)
//!         .corners(ButtonCorners::Pill)
//!         .return_to("/studio"),
//! );
//! format!("<!doctype html><title>Welcome</title>{button}")
//! # }
//! ```
//!
//! The HTML is an `<a id="audius-login-button">` to the login route (it works without
//! JavaScript in the redirect channels), a `<link>` to the stylesheet served by
//! [`AudiusLogin::routes`], a status line (`role="alert"`) for messages, and in
//! [`ResponseMode::PostMessage`] the popup script. Everything is served by the app itself.

use crate::config::{AudiusLogin, ResponseMode};
use maud::{PreEscaped, html};

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

/// Options of [`AudiusLogin::login_button`]. Every setter states its default.
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

/// The default label, as in the Audius SDK.
pub(crate) const DEFAULT_BUTTON_TEXT: &str = "Continue With Audius";

impl AudiusLogin {
    /// The URL of the button stylesheet (versioned by content, cacheable for a year).
    pub(crate) fn button_css_url(&self) -> String {
        format!(
            "{}/button.css?v={}",
            self.inner.assets_path,
            pages::content_version(pages::BUTTON_CSS)
        )
    }

    /// The URL of the popup script (versioned by content, cacheable for a year).
    pub(crate) fn login_js_url(&self) -> String {
        format!(
            "{}/login.js?v={}",
            self.inner.assets_path,
            pages::content_version(pages::LOGIN_JS)
        )
    }

    /// The HTML of a "Log In with Audius" button. See the [module docs](crate::button).
    pub fn login_button(&self, options: &ButtonOptions) -> String {
        let c = &self.inner;
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
            Some(path) => self.login_url_for(path),
            None => c.login_path.clone(),
        };
        let text = options
            .custom_text
            .as_deref()
            .unwrap_or(DEFAULT_BUTTON_TEXT);
        let popup = c.response_mode == ResponseMode::PostMessage;
        html! {
            link rel="stylesheet" href=(self.button_css_url());
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
                script src=(self.login_js_url()) defer {}
            }
        }
        .into_string()
    }
}
