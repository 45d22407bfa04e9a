//! The login pages, as maud templates: the page itself, the invalid-link page, the cancelled
//! page, the error page and the page that posts the answer to the opener.

use audius_login::{RedirectUri, Scope};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use maud::{Markup, PreEscaped, html};
use rand::RngCore as _;
use serde_json::{Map, Value};

use super::request::{Flow, InvalidLink, LoginRequest};
use crate::html::{Text, page, script_json};
use crate::respond::html_response;
use crate::state::Shared;

/// The line at the top of every page saying what this is.
fn banner() -> Markup {
    html! { p.sandbox { "Audius sandbox · a local stand-in, not the real Audius" } }
}

/// The `400` page of an invalid link: the heading with its reason, the detail below, and the
/// machine-readable `data-invalid-param` and `data-rule`.
pub(super) fn invalid_page(invalid: &InvalidLink) -> Response {
    let body = html! {
        main data-sandbox-page="invalid-link" data-invalid-param=(Text(invalid.param))
            data-rule=[invalid.rule.map(Text)] {
            (banner())
            h1 id="title" { (Text(&invalid.title())) }
            p.detail id="detail" { (Text(&invalid.detail)) }
        }
    };
    html_response(StatusCode::BAD_REQUEST, page("Invalid link", body))
}

/// The login page of a valid request: the app, what it asks for, the users to choose from,
/// Approve and Cancel.
pub(super) fn render_login(shared: &Shared, request: &LoginRequest, raw_query: &str) -> Response {
    let app = request.app_label();
    let wants = match (request.scope, &request.flow) {
        (Scope::Read, Flow::Implicit) => {
            html! { "wants to know who you are: your name, handle, email and profile picture" }
        }
        (Scope::Read, Flow::Code { .. }) => {
            html! { "wants to read your Audius profile: your name, handle and profile picture" }
        }
        (Scope::Write, _) => {
            html! { "wants to know who you are and to " strong { "act on your behalf" } " on Audius" }
        }
    };
    let channel = match (&request.redirect, request.response_mode) {
        (RedirectUri::PostMessage, _) => html! {
            "posted to the window that opened this one, at "
            code { (Text(request.origin.as_deref().unwrap_or_default())) }
        },
        (RedirectUri::Url(_), mode) => html! {
            "sent to " code { (Text(&request.redirect_raw)) } " (in the " (mode.as_str()) ")"
        },
    };
    let what = match request.flow {
        Flow::Implicit => "a signed token",
        Flow::Code { .. } => "a one-time authorization code (PKCE)",
    };
    let body = html! {
        main data-sandbox-page="login" data-display=(request.display.as_str()) {
            (banner())
            h1 { "Log in to " span id="app-name" { (Text(&app)) } " with Audius" }
            p { strong { (Text(&app)) } " " (wants) "." }
            p.muted { "On approval, " (what) " is " (channel) "." }
            form method="post" action="/oauth/auth/approve" {
                input type="hidden" name="query" value=(Text(raw_query));
                fieldset {
                    legend { "Log in as" }
                    "\n"
                    @for (i, user) in shared.directory.users().iter().enumerate() {
                        label.user {
                            input type="radio" name="sandbox_user" value=(Text(&user.handle))
                                data-sandbox-user=(Text(&user.handle)) checked[i == 0];
                            @if user.has_picture {
                                img src={ "/content/" (Text(&user.handle)) "/150x150.svg" } alt="";
                            } @else {
                                span.noimg {}
                            }
                            span {
                                (Text(&user.name))
                                @if user.verified { " ✔" }
                                br;
                                span.muted { "@" (Text(&user.handle)) " · " (user.role.as_str()) }
                            }
                        }
                        "\n"
                    }
                }
                div.buttons {
                    button type="submit" id="approve" { "Approve" }
                    button type="submit" id="cancel" formaction="/oauth/auth/cancel" { "Cancel" }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        page(&format!("Log in to {app} with Audius"), body),
    )
}

/// The page of a cancelled login: nothing was sent back to `app`.
pub(super) fn cancelled_page(app: &str) -> Response {
    let body = html! {
        main data-sandbox-page="cancelled" {
            (banner())
            h1 { "Login cancelled" }
            p { "Nothing was sent back to " strong { (Text(app)) } ". You can close this window." }
        }
    };
    html_response(StatusCode::OK, page("Login cancelled", body))
}

/// A `500` page saying what went wrong.
pub(super) fn error_page(message: &str) -> Response {
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        page("Error", html! { main { (Text(message)) } }),
    )
}

/// The page that posts `{state, token}` (or `{state, code}`) to the opener, then closes.
pub(super) fn post_message_page(
    origin: &str,
    state: Option<&str>,
    name: &str,
    value: &str,
) -> Response {
    let mut message = Map::new();
    if let Some(state) = state {
        message.insert("state".into(), Value::String(state.to_owned()));
    }
    message.insert(name.to_owned(), Value::String(value.to_owned()));
    let mut nonce_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce_bytes);
    let nonce = hex::encode(nonce_bytes);
    // Script text, not HTML: the values are JSON made safe for a script by `script_json`.
    let script = format!(
        "\n(function () {{\n  var message = {message};\n  var origin = {origin};\n  \
         if (!window.opener) {{\n    \
         document.getElementById(\"status\").textContent = \
         \"Whoops, the login cannot be sent back\";\n    \
         document.getElementById(\"error\").hidden = false;\n    return;\n  }}\n  \
         window.opener.postMessage(message, origin);\n  window.close();\n}})();\n",
        message = script_json(&Value::Object(message)),
        origin = script_json(&Value::String(origin.to_owned())),
    );
    let body = html! {
        main data-sandbox-page="postmessage" {
            (banner())
            h1 id="status" { "Sending the login back to " (Text(origin)) "…" }
            p.detail id="error" hidden {
                "This popup cannot answer: it has no opener (" code { "window.opener" }
                " is null), so the login cannot be posted back. The app must open the login page \
                 with " code { "window.open" } ", and must not sever the opener (for example with "
                code { "Cross-Origin-Opener-Policy: same-origin" } " or " code { "noopener" }
                "). Close this window and try again."
            }
            script nonce=(nonce) { (PreEscaped(script)) }
        }
    };
    let mut r = html_response(StatusCode::OK, page("Audius login", body));
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'"
    )) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    r
}
