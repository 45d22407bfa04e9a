//! The login page, `GET /oauth/auth` (spec sections 1, 2 and 5; PKCE front half).
//!
//! Every refusal is a `400` page headed "Whoops, this is an invalid link (`<reason>`)." with the
//! reasons of spec section 1 word for word, checked in the spec's order; below the heading, a
//! sentence saying what exactly is wrong. Machine-readable hooks:
//! `data-sandbox-page="invalid-link"`, `data-invalid-param` (the parameter at fault) and, for
//! redirect URIs, `data-rule` (the rule of spec section 5 that failed, or `unregistered` for a
//! code-flow URI the app did not register).
//!
//! | step | failure | `<reason>` | `data-invalid-param` |
//! |---|---|---|---|
//! | 1 | `scope` missing or not `read`/`write` (code flow: a space-separated list of those; containing `write` means `write`) | [`SCOPE_INVALID`] | `scope` |
//! | 2 | `redirect_uri` missing, unparsable or breaking a rule of section 5 (`audius_login::RedirectUri::parse`); code flow with a registered app: not one of its registered URIs exactly (an app with none: section 5, `http(s)` only, or `postmessage`) | [`REDIRECT_URI_INVALID`] | `redirect_uri` |
//! | 3 | `redirect_uri=postmessage` without an `origin` that is a web origin (`scheme://host[:port]`) | [`ORIGIN_MISSING`] | `origin` |
//! | 4 | `read` with neither `app_name` nor `api_key` | [`APP_NAME_MISSING`] | `app_name` |
//! | 4 | `write`, or the code flow, without `api_key` (alias `client_id`) | [`API_KEY_MISSING`] | `api_key` (code flow: `client_id`) |
//! | 4 | the key is not 40 hex characters (implicit flow: no `0x`; code flow: `0x` optional, any case), or no registered app has it | [`API_KEY_INVALID`] | `api_key` or `client_id` |
//! | 5 | `response_mode` other than `fragment`/`query` | [`RESPONSE_MODE_INVALID`] | `response_mode` |
//!
//! Steps 1 to 5 are the spec's. The sandbox checks more, after them, in this order, with
//! reasons worded in the same style (its own, except the two PKCE ones, which are the words of
//! Audius' web client):
//!
//! | step | failure | `<reason>` | `data-invalid-param` |
//! |---|---|---|---|
//! | 6 | code flow without `code_challenge` | [`CODE_CHALLENGE_MISSING`] | `code_challenge` |
//! | 6 | a `code_challenge` that is not 43 base64url characters | [`CODE_CHALLENGE_INVALID`] | `code_challenge` |
//! | 6 | `code_challenge_method` other than `S256` | [`CODE_CHALLENGE_METHOD_INVALID`] | `code_challenge_method` |
//! | 7 | `display` other than `popup`/`fullScreen` | [`DISPLAY_INVALID`] | `display` |
//! | 8 | `app_name` over [`MAX_APP_NAME_LEN`] characters | [`APP_NAME_TOO_LONG`] | `app_name` |
//! | 9 | `api_key` and `client_id` both given, naming different keys | [`API_KEY_CONFLICT`] | `api_key` |
//!
//! Before step 1, a link over [`MAX_LOGIN_QUERY_BYTES`] is not read at all
//! ([`LINK_TOO_LONG`], `query`). After the link is valid, the `sandbox_user` hook and the
//! Approve form refuse a missing or unknown user ([`SANDBOX_USER_MISSING`],
//! [`SANDBOX_USER_UNKNOWN`], `sandbox_user`).
//!
//! The `sandbox_user=<handle>` hook (approve at once as that user, for tests) is a parameter of
//! **this page's URL**, the one an app's login route redirects to; an app's own login route
//! (`/auth/audius/login` in `actix-audius-login`) does not pass it on.
//!
//! Registered apps: [`DeveloperApp::builtin`](crate::DeveloperApp::builtin), the users file's `apps` and
//! [`SandboxBuilder::app`](crate::SandboxBuilder::app). `app_name` alone is enough for `read` in
//! the implicit flow; any key given, in either flow, must be a registered app's.
//!
//! Empty parameters count as absent (as the page's JavaScript treats them); for a repeated
//! parameter the first value counts; unknown parameters are ignored. When both `api_key` and
//! `client_id` are given, `api_key` is the one judged at step 4.

use audius_login::RedirectUri;
use audius_login::login_url::ResponseMode;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;

use crate::oauth::AuthorizationCode;
use crate::params::Params;
use crate::respond::redirect_to;
use crate::state::{AppState, Shared};
use crate::users::SandboxUser;

mod page;
mod request;

use page::{cancelled_page, error_page, invalid_page, post_message_page, render_login};
use request::{Flow, InvalidLink, LoginRequest, parse_request};

/// Longest login query read: 32 KiB.
pub const MAX_LOGIN_QUERY_BYTES: usize = 32 * 1024;
/// Longest `app_name`, in characters.
pub const MAX_APP_NAME_LEN: usize = 256;

/// The sentence of every refusal: `Whoops, this is an invalid link (<reason>).`
pub fn invalid_link_sentence(reason: &str) -> String {
    format!("Whoops, this is an invalid link ({reason}).")
}

/// Step 1 (spec): `scope` missing or not `read`/`write`.
pub const SCOPE_INVALID: &str = "scope missing or invalid";
/// Step 2 (spec): `redirect_uri` missing, unparsable, breaking a rule of section 5, or (code
/// flow) not registered for the app.
pub const REDIRECT_URI_INVALID: &str = "redirect URI missing or invalid";
/// Step 3 (spec): `redirect_uri=postmessage` without a parsable `origin`.
pub const ORIGIN_MISSING: &str = "redirect URI is set to `postMessage` but origin is missing";
/// Step 4 (spec): `read` with neither `app_name` nor `api_key`.
pub const APP_NAME_MISSING: &str = "app name missing";
/// Step 4 (spec): `write` (or the code flow) without `api_key` / `client_id`.
pub const API_KEY_MISSING: &str = "app API Key missing";
/// Step 4 (spec): the key is not 40 hex characters, or no registered app has it.
pub const API_KEY_INVALID: &str = "app API Key invalid";
/// Step 5 (spec): `response_mode` other than `fragment`/`query`.
pub const RESPONSE_MODE_INVALID: &str =
    "response mode invalid - if set, must be \"fragment\" or \"query\"";
/// Step 6 (Audius' web client's words, not in the spec): code flow without `code_challenge`.
pub const CODE_CHALLENGE_MISSING: &str = "code_challenge is required for PKCE flow";
/// Step 6 (the sandbox's own): a `code_challenge` that is not 43 base64url characters.
pub const CODE_CHALLENGE_INVALID: &str =
    "code_challenge invalid - must be base64url(SHA-256(verifier)), 43 characters";
/// Step 6 (Audius' web client's words, not in the spec): `code_challenge_method` not `S256`.
pub const CODE_CHALLENGE_METHOD_INVALID: &str = "code_challenge_method must be S256";
/// Step 7 (the sandbox's own): `display` other than `popup`/`fullScreen`.
pub const DISPLAY_INVALID: &str = "display invalid - if set, must be \"popup\" or \"fullScreen\"";
/// Step 8 (the sandbox's own): `app_name` over [`MAX_APP_NAME_LEN`] characters.
pub const APP_NAME_TOO_LONG: &str = "app name too long - if set, must be at most 256 characters";
/// Step 9 (the sandbox's own): `api_key` and `client_id` name different keys.
pub const API_KEY_CONFLICT: &str =
    "app API Key and client_id differ - if both are set, they must be the same key";
/// Before step 1 (the sandbox's own): a link over [`MAX_LOGIN_QUERY_BYTES`].
pub const LINK_TOO_LONG: &str = "link too long - must be at most 32 KiB";
/// After a valid link (the sandbox's own): Approve without a user.
pub const SANDBOX_USER_MISSING: &str = "sandbox user missing";
/// After a valid link (the sandbox's own): `sandbox_user` naming no sandbox user.
pub const SANDBOX_USER_UNKNOWN: &str = "sandbox user unknown";

/// The `error_description` of a declined authorization.
pub const ACCESS_DENIED_DESCRIPTION: &str = "The user denied the authorization request";

fn unknown_user(shared: &Shared, handle: Option<&str>) -> Response {
    let known: Vec<&str> = shared
        .directory
        .users()
        .iter()
        .map(|u| u.handle.as_str())
        .collect();
    let invalid = match handle {
        Some(h) => InvalidLink::new(
            "sandbox_user",
            SANDBOX_USER_UNKNOWN,
            format!(
                "no sandbox user has the handle {h:?}; the users are: {}",
                known.join(", ")
            ),
        ),
        None => InvalidLink::new(
            "sandbox_user",
            SANDBOX_USER_MISSING,
            "choose a sandbox user",
        ),
    };
    invalid_page(&invalid)
}

/// `GET /oauth/auth`.
pub(crate) async fn login_page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let shared = &state.shared;
    let raw = query.unwrap_or_default();
    let request = match parse_request(&raw, shared) {
        Ok(r) => r,
        Err(invalid) => return invalid_page(&invalid),
    };
    // The sandbox-only automation hook: approve at once as this user.
    if let Some(handle) = Params::parse(&raw).get("sandbox_user") {
        return match shared.directory.get(handle) {
            Some(user) => approve(shared, &request, user),
            None => unknown_user(shared, Some(handle)),
        };
    }
    render_login(shared, &request, &raw)
}

/// The form sent by Approve and Cancel.
struct Decision {
    query: String,
    user: Option<String>,
}

fn parse_form(body: &[u8]) -> Decision {
    let mut query = String::new();
    let mut user = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "query" if query.is_empty() => query = v.into_owned(),
            "sandbox_user" if user.is_none() && !v.is_empty() => user = Some(v.into_owned()),
            _ => {}
        }
    }
    Decision { query, user }
}

/// `POST /oauth/auth/approve`: sign for the chosen user and answer through the channel.
pub(crate) async fn approve_form(State(state): State<AppState>, body: Bytes) -> Response {
    let shared = &state.shared;
    let form = parse_form(&body);
    let request = match parse_request(&form.query, shared) {
        Ok(r) => r,
        Err(invalid) => return invalid_page(&invalid),
    };
    match form.user.as_deref().and_then(|h| shared.directory.get(h)) {
        Some(user) => approve(shared, &request, user),
        None => unknown_user(shared, form.user.as_deref()),
    }
}

/// `POST /oauth/auth/cancel`: in the implicit flow (and the code flow's postmessage channel)
/// nothing is sent back; in the code flow with a redirect URI, the browser goes back with
/// `error=access_denied` (and `error_description`, and `state`), in the requested mode.
pub(crate) async fn cancel_form(State(state): State<AppState>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let request = parse_request(&form.query, &state.shared);
    if let Ok(request) = &request
        && matches!(request.flow, Flow::Code { .. })
        && let RedirectUri::Url(url) = &request.redirect
    {
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(3);
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        pairs.push(("error", "access_denied"));
        pairs.push(("error_description", ACCESS_DENIED_DESCRIPTION));
        return redirect_with(url, request.response_mode, &pairs);
    }
    let app = request
        .map(|r| r.app_label())
        .unwrap_or_else(|_| "the app".to_owned());
    cancelled_page(&app)
}

/// Signs (implicit flow) or issues a code (code flow) for `user`, and answers through the
/// requested channel.
fn approve(shared: &Shared, request: &LoginRequest, user: &SandboxUser) -> Response {
    let (name, value) = match &request.flow {
        Flow::Implicit => {
            match shared.mint(user, request.api_key.as_deref(), &Default::default()) {
                Ok(token) => ("token", token),
                Err(e) => {
                    tracing::error!(error = %e, "signing failed");
                    return error_page(&e.to_string());
                }
            }
        }
        Flow::Code {
            client_id,
            code_challenge,
        } => {
            let code = shared.codes.issue(AuthorizationCode::new(
                client_id,
                &request.redirect_raw,
                code_challenge,
                request.scope,
                user.id,
                shared.clock.now(),
            ));
            ("code", code)
        }
    };
    match &request.redirect {
        RedirectUri::PostMessage => post_message_page(
            request.origin.as_deref().unwrap_or_default(),
            request.state.as_deref(),
            name,
            &value,
        ),
        RedirectUri::Url(url) => {
            let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(2);
            if let Some(state) = &request.state {
                pairs.push(("state", state));
            }
            pairs.push((name, &value));
            redirect_with(url, request.response_mode, &pairs)
        }
    }
}

/// `302` to `url` with `pairs` in its fragment or appended to its query.
fn redirect_with(url: &url::Url, mode: ResponseMode, pairs: &[(&str, &str)]) -> Response {
    let mut target = url.clone();
    match mode {
        ResponseMode::Fragment => {
            let fragment = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            target.set_fragment(Some(&fragment));
        }
        ResponseMode::Query => {
            target.query_pairs_mut().extend_pairs(pairs);
        }
    }
    redirect_to(target.as_str())
}

/// `GET /v1/oauth/authorize`: `302` to the login page with the same query, unchanged.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut target = state.shared.base().clone();
    target.set_path("/oauth/auth");
    let mut location = target.as_str().to_owned();
    if let Some(q) = query {
        location.push('?');
        location.push_str(&q);
    }
    redirect_to(&location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_limits_they_enforce() {
        assert!(APP_NAME_TOO_LONG.contains(&format!("at most {MAX_APP_NAME_LEN} characters")));
        assert_eq!(
            MAX_LOGIN_QUERY_BYTES,
            32 * 1024,
            "LINK_TOO_LONG says 32 KiB"
        );
        assert!(LINK_TOO_LONG.ends_with("at most 32 KiB"));
        assert_eq!(
            invalid_link_sentence(SCOPE_INVALID),
            "Whoops, this is an invalid link (scope missing or invalid)."
        );
    }
}
