//! The login pages: the page itself, the invalid-link page, the cancelled page and the page that
//! posts the answer to the opener.

use audius_login::RedirectUri;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use rand::RngCore as _;
use serde_json::{Map, Value};

use super::request::{Flow, InvalidLink, LoginRequest};
use crate::html::{escape, page, script_json};
use crate::respond::html_response;
use crate::state::Shared;
use audius_login::Scope;

const BANNER: &str =
    "<p class=\"sandbox\">Audius sandbox &middot; a local stand-in, not the real Audius</p>";

pub(super) fn invalid_page(invalid: &InvalidLink) -> Response {
    let rule = invalid
        .rule
        .map(|r| format!(" data-rule=\"{}\"", escape(r)))
        .unwrap_or_default();
    let body = format!(
        "<main data-sandbox-page=\"invalid-link\" data-invalid-param=\"{param}\"{rule}>{BANNER}\
         <h1 id=\"title\">{title}</h1><p class=\"detail\" id=\"detail\">{detail}</p></main>",
        param = escape(invalid.param),
        title = escape(&invalid.title()),
        detail = escape(&invalid.detail),
    );
    html_response(StatusCode::BAD_REQUEST, page("Invalid link", &body))
}

pub(super) fn render_login(shared: &Shared, request: &LoginRequest, raw_query: &str) -> Response {
    let app = escape(&request.app_label());
    let wants = match (request.scope, &request.flow) {
        (Scope::Read, Flow::Implicit) => {
            "wants to know who you are: your name, handle, email and profile picture"
        }
        (Scope::Read, Flow::Code { .. }) => {
            "wants to read your Audius profile: your name, handle and profile picture"
        }
        (Scope::Write, _) => {
            "wants to know who you are and to <strong>act on your behalf</strong> on Audius"
        }
    };
    let channel = match (&request.redirect, request.response_mode) {
        (RedirectUri::PostMessage, _) => format!(
            "posted to the window that opened this one, at <code>{}</code>",
            escape(request.origin.as_deref().unwrap_or_default())
        ),
        (RedirectUri::Url(_), mode) => format!(
            "sent to <code>{}</code> (in the {})",
            escape(&request.redirect_raw),
            mode.as_str()
        ),
    };
    let what = match request.flow {
        Flow::Implicit => "a signed token",
        Flow::Code { .. } => "a one-time authorization code (PKCE)",
    };
    let mut users = String::new();
    for (i, user) in shared.directory.users().iter().enumerate() {
        let handle = escape(&user.handle);
        let picture = if user.has_picture {
            format!("<img src=\"/content/{handle}/150x150.svg\" alt=\"\">")
        } else {
            "<span class=\"noimg\"></span>".to_owned()
        };
        users.push_str(&format!(
            "<label class=\"user\"><input type=\"radio\" name=\"sandbox_user\" value=\"{handle}\" \
             data-sandbox-user=\"{handle}\"{checked}>{picture}<span>{name}{verified}<br>\
             <span class=\"muted\">@{handle} &middot; {role}</span></span></label>\n",
            checked = if i == 0 { " checked" } else { "" },
            name = escape(&user.name),
            verified = if user.verified { " &#10004;" } else { "" },
            role = escape(user.role.as_str()),
        ));
    }
    let body = format!(
        "<main data-sandbox-page=\"login\" data-display=\"{display}\">{BANNER}\
         <h1>Log in to <span id=\"app-name\">{app}</span> with Audius</h1>\
         <p><strong>{app}</strong> {wants}.</p>\
         <p class=\"muted\">On approval, {what} is {channel}.</p>\
         <form method=\"post\" action=\"/oauth/auth/approve\">\
         <input type=\"hidden\" name=\"query\" value=\"{query}\">\
         <fieldset><legend>Log in as</legend>\n{users}</fieldset>\
         <div class=\"buttons\"><button type=\"submit\" id=\"approve\">Approve</button>\
         <button type=\"submit\" id=\"cancel\" formaction=\"/oauth/auth/cancel\">Cancel</button>\
         </div></form></main>",
        display = request.display.as_str(),
        query = escape(raw_query),
    );
    html_response(
        StatusCode::OK,
        page(
            &format!("Log in to {} with Audius", request.app_label()),
            &body,
        ),
    )
}

/// The page of a cancelled login: nothing was sent back to `app`.
pub(super) fn cancelled_page(app: &str) -> Response {
    let body = format!(
        "<main data-sandbox-page=\"cancelled\">{BANNER}<h1>Login cancelled</h1>\
         <p>Nothing was sent back to <strong>{}</strong>. You can close this window.</p></main>",
        escape(app)
    );
    html_response(StatusCode::OK, page("Login cancelled", &body))
}

/// A `500` page saying what went wrong.
pub(super) fn error_page(message: &str) -> Response {
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        page("Error", &format!("<main>{}</main>", escape(message))),
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
    let body = format!(
        "<main data-sandbox-page=\"postmessage\">{BANNER}\
         <h1 id=\"status\">Sending the login back to {origin_html}&hellip;</h1>\
         <p class=\"detail\" id=\"error\" hidden>This popup cannot answer: it has no opener \
         (<code>window.opener</code> is null), so the login cannot be posted back. The app must \
         open the login page with <code>window.open</code>, and must not sever the opener (for \
         example with <code>Cross-Origin-Opener-Policy: same-origin</code> or \
         <code>noopener</code>). Close this window and try again.</p>\
         <script nonce=\"{nonce}\">\n(function () {{\n  var message = {message};\n  \
         var origin = {origin_js};\n  if (!window.opener) {{\n    \
         document.getElementById(\"status\").textContent = \
         \"Whoops, the login cannot be sent back\";\n    \
         document.getElementById(\"error\").hidden = false;\n    return;\n  }}\n  \
         window.opener.postMessage(message, origin);\n  window.close();\n}})();\n</script></main>",
        origin_html = escape(origin),
        message = script_json(&Value::Object(message)),
        origin_js = script_json(&Value::String(origin.to_owned())),
    );
    let mut r = html_response(StatusCode::OK, page("Audius login", &body));
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'"
    )) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    r
}
