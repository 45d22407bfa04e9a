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
//! Registered apps: [`DeveloperApp::builtin`], the users file's `apps` and
//! [`SandboxBuilder::app`](crate::SandboxBuilder::app). `app_name` alone is enough for `read` in
//! the implicit flow; any key given, in either flow, must be a registered app's.
//!
//! Empty parameters count as absent (as the page's JavaScript treats them); for a repeated
//! parameter the first value counts; unknown parameters are ignored. When both `api_key` and
//! `client_id` are given, `api_key` is the one judged at step 4.

use audius_login::login_url::{Display, ResponseMode, normalize_api_key, normalize_origin};
use audius_login::redirect_uri::RedirectRule;
use audius_login::{RedirectUri, Scope};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use rand::RngCore as _;
use serde_json::{Map, Value};

use crate::html::{escape, page, script_json};
use crate::oauth::{AuthorizationCode, DeveloperApp, is_s256_challenge};
use crate::routes::AppState;
use crate::server::Shared;
use crate::users::SandboxUser;

/// Longest login query read: 32 KiB.
pub const MAX_LOGIN_QUERY_BYTES: usize = 32 * 1024;
/// Longest `app_name`, in characters.
pub const MAX_APP_NAME_LEN: usize = 256;

/// Which flow the page runs.
#[derive(Debug, Clone)]
enum Flow {
    Implicit,
    Code {
        client_id: String,
        code_challenge: String,
    },
}

/// A valid login request.
#[derive(Debug, Clone)]
struct LoginRequest {
    flow: Flow,
    scope: Scope,
    app_name: Option<String>,
    /// The key as the app sent it (`api_key`, else `client_id`): the token's `apiKey`.
    api_key: Option<String>,
    app: Option<DeveloperApp>,
    redirect: RedirectUri,
    redirect_raw: String,
    origin: Option<String>,
    state: Option<String>,
    response_mode: ResponseMode,
    display: Display,
}

impl LoginRequest {
    fn app_label(&self) -> String {
        self.app_name
            .clone()
            .or_else(|| self.app.as_ref().map(|a| a.name.clone()))
            .or_else(|| self.api_key.as_ref().map(|k| format!("App {k}")))
            .unwrap_or_else(|| "An app".to_owned())
    }
}

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

/// Why a link is invalid.
#[derive(Debug, Clone)]
pub(crate) struct InvalidLink {
    /// The parameter at fault (`data-invalid-param`).
    param: &'static str,
    /// The reason in the heading.
    reason: &'static str,
    /// What exactly is wrong, below the heading.
    detail: String,
    /// The redirect-URI rule that failed (`data-rule`).
    rule: Option<&'static str>,
}

impl InvalidLink {
    fn new(param: &'static str, reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            param,
            reason,
            detail: detail.into(),
            rule: None,
        }
    }

    fn rule(mut self, rule: &'static str) -> Self {
        self.rule = Some(rule);
        self
    }

    /// The heading: `Whoops, this is an invalid link (<reason>).`
    pub(crate) fn title(&self) -> String {
        invalid_link_sentence(self.reason)
    }
}

/// The query's parameters, first value of each, empty values dropped.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: &str) -> Self {
        Self(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Whether `key` is an implicit-flow `api_key`: exactly 40 hex characters, no `0x`.
fn is_implicit_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_request(raw: &str, shared: &Shared) -> Result<LoginRequest, InvalidLink> {
    if raw.len() > MAX_LOGIN_QUERY_BYTES {
        return Err(InvalidLink::new(
            "query",
            LINK_TOO_LONG,
            format!("the link is longer than {MAX_LOGIN_QUERY_BYTES} bytes"),
        ));
    }
    let p = Params::parse(raw);
    let code_flow = p.get("response_type") == Some("code");

    // 1. scope.
    let scope = match (p.get("scope"), code_flow) {
        (Some("read"), _) => Scope::Read,
        (Some("write"), _) => Scope::Write,
        (Some(list), true) if list.split(' ').all(|s| s == "read" || s == "write") => {
            if list.split(' ').any(|s| s == "write") {
                Scope::Write
            } else {
                Scope::Read
            }
        }
        (Some(other), _) => {
            return Err(InvalidLink::new(
                "scope",
                SCOPE_INVALID,
                format!("scope must be read or write, not {other:?}"),
            ));
        }
        (None, _) => {
            return Err(InvalidLink::new(
                "scope",
                SCOPE_INVALID,
                "scope is required",
            ));
        }
    };

    // The app's key, api_key or its alias client_id (api_key first), and its registered app,
    // if any: the code flow judges the redirect URI by the app's registered ones.
    let (key_param, given_key) = match (p.get("api_key"), p.get("client_id")) {
        (Some(k), _) => ("api_key", Some(k)),
        (None, Some(k)) => ("client_id", Some(k)),
        (None, None) => (if code_flow { "client_id" } else { "api_key" }, None),
    };
    let well_formed_key = given_key.and_then(|k| {
        if code_flow {
            normalize_api_key(k).ok()
        } else {
            is_implicit_key(k).then(|| k.to_ascii_lowercase())
        }
    });
    let app = well_formed_key
        .as_deref()
        .and_then(|k| shared.directory.app(k))
        .cloned();

    // 2. redirect_uri: the rules of section 5; in the code flow, the app's registered URIs.
    let Some(redirect_raw) = p.get("redirect_uri") else {
        return Err(InvalidLink::new(
            "redirect_uri",
            REDIRECT_URI_INVALID,
            "redirect_uri is required",
        ));
    };
    let mut redirect = RedirectUri::parse(redirect_raw).map_err(|e| {
        InvalidLink::new("redirect_uri", REDIRECT_URI_INVALID, e.to_string())
            .rule(e.rule().as_str())
    })?;
    if code_flow && let Some(app) = &app {
        redirect = app.check_redirect_uri(redirect_raw).map_err(|detail| {
            let rule = if app.redirect_uris.is_empty() {
                RedirectRule::Scheme.as_str()
            } else {
                "unregistered"
            };
            InvalidLink::new("redirect_uri", REDIRECT_URI_INVALID, detail).rule(rule)
        })?;
    }

    // 3. origin, for postmessage.
    let origin = match (&redirect, p.get("origin")) {
        (RedirectUri::PostMessage, None) => {
            return Err(InvalidLink::new(
                "origin",
                ORIGIN_MISSING,
                "redirect_uri=postmessage needs origin, the opener window's origin",
            ));
        }
        (RedirectUri::PostMessage, Some(o)) => Some(normalize_origin(o).map_err(|_| {
            InvalidLink::new(
                "origin",
                ORIGIN_MISSING,
                format!("{o:?} is not a web origin (scheme://host[:port])"),
            )
        })?),
        (_, _) => None,
    };

    // 4. The app name or key.
    let app_name = p.get("app_name").map(str::to_owned);
    let registered = match given_key {
        None if code_flow => {
            return Err(InvalidLink::new(
                key_param,
                API_KEY_MISSING,
                "response_type=code needs client_id, the app's API key",
            ));
        }
        None if scope == Scope::Write => {
            return Err(InvalidLink::new(
                key_param,
                API_KEY_MISSING,
                "scope write needs the app's api_key",
            ));
        }
        None if app_name.is_none() => {
            return Err(InvalidLink::new(
                "app_name",
                APP_NAME_MISSING,
                "scope read needs app_name or api_key",
            ));
        }
        None => None,
        Some(_) => {
            let Some(normalized) = well_formed_key else {
                let detail = if code_flow {
                    format!("{key_param} must be 40 hex characters (0x optional)")
                } else {
                    format!("{key_param} must be exactly 40 hex characters, without 0x")
                };
                return Err(InvalidLink::new(key_param, API_KEY_INVALID, detail));
            };
            let Some(app) = app else {
                return Err(InvalidLink::new(
                    key_param,
                    API_KEY_INVALID,
                    format!("no app is registered with the key {normalized}"),
                ));
            };
            Some((normalized, app))
        }
    };

    // 5. response_mode.
    let response_mode = match p.get("response_mode") {
        None if code_flow => ResponseMode::Query,
        None | Some("fragment") => ResponseMode::Fragment,
        Some("query") => ResponseMode::Query,
        Some(other) => {
            return Err(InvalidLink::new(
                "response_mode",
                RESPONSE_MODE_INVALID,
                format!("response_mode must be fragment or query, not {other:?}"),
            ));
        }
    };

    // The sandbox's own checks, after the spec's.
    // 6. PKCE.
    let flow = match &registered {
        Some((client_id, _)) if code_flow => {
            let Some(challenge) = p.get("code_challenge") else {
                return Err(InvalidLink::new(
                    "code_challenge",
                    CODE_CHALLENGE_MISSING,
                    "response_type=code needs code_challenge",
                ));
            };
            if !is_s256_challenge(challenge) {
                return Err(InvalidLink::new(
                    "code_challenge",
                    CODE_CHALLENGE_INVALID,
                    "code_challenge must be base64url(SHA-256(verifier)): 43 base64url characters",
                ));
            }
            if p.get("code_challenge_method") != Some("S256") {
                return Err(InvalidLink::new(
                    "code_challenge_method",
                    CODE_CHALLENGE_METHOD_INVALID,
                    "code_challenge_method must be S256",
                ));
            }
            Flow::Code {
                client_id: client_id.clone(),
                code_challenge: challenge.to_owned(),
            }
        }
        _ => Flow::Implicit,
    };

    // 7. display.
    let display = match p.get("display") {
        None | Some("popup") => Display::Popup,
        Some("fullScreen") => Display::FullScreen,
        Some(other) => {
            return Err(InvalidLink::new(
                "display",
                DISPLAY_INVALID,
                format!("display must be popup or fullScreen, not {other:?}"),
            ));
        }
    };

    // 8. The app name's length.
    if app_name
        .as_deref()
        .is_some_and(|n| n.chars().count() > MAX_APP_NAME_LEN)
    {
        return Err(InvalidLink::new(
            "app_name",
            APP_NAME_TOO_LONG,
            format!("app_name is longer than {MAX_APP_NAME_LEN} characters"),
        ));
    }

    // 9. api_key and client_id, both given, must be the same key.
    if let (Some(a), Some(c)) = (p.get("api_key"), p.get("client_id"))
        && !a
            .trim_start_matches("0x")
            .eq_ignore_ascii_case(c.trim_start_matches("0x"))
    {
        return Err(InvalidLink::new(
            "api_key",
            API_KEY_CONFLICT,
            "api_key and client_id name different apps",
        ));
    }

    Ok(LoginRequest {
        flow,
        scope,
        app_name,
        api_key: given_key.map(str::to_owned),
        app: registered.map(|(_, app)| app),
        redirect,
        redirect_raw: redirect_raw.to_owned(),
        origin,
        state: p.get("state").map(str::to_owned),
        response_mode,
        display,
    })
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = Response::new(Body::from(html));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

const BANNER: &str =
    "<p class=\"sandbox\">Audius sandbox &middot; a local stand-in, not the real Audius</p>";

pub(crate) fn invalid_page(invalid: &InvalidLink) -> Response {
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

fn render_login(shared: &Shared, request: &LoginRequest, raw_query: &str) -> Response {
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

/// The `error_description` of a declined authorization.
pub const ACCESS_DENIED_DESCRIPTION: &str = "The user denied the authorization request";

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
    let body = format!(
        "<main data-sandbox-page=\"cancelled\">{BANNER}<h1>Login cancelled</h1>\
         <p>Nothing was sent back to <strong>{}</strong>. You can close this window.</p></main>",
        escape(&app)
    );
    html_response(StatusCode::OK, page("Login cancelled", &body))
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
                    return html_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        page("Error", &format!("<main>{}</main>", escape(&e.to_string()))),
                    );
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

fn redirect_to(location: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The page that posts `{state, token}` (or `{state, code}`) to the opener, then closes.
fn post_message_page(origin: &str, state: Option<&str>, name: &str, value: &str) -> Response {
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
