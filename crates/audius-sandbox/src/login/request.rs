//! Judging a login link: the checks of the spec (and the sandbox's own), in their order.

use audius_login::login_url::{Display, ResponseMode, normalize_api_key, normalize_origin};
use audius_login::redirect_uri::RedirectRule;
use audius_login::{RedirectUri, Scope};

use super::{
    API_KEY_CONFLICT, API_KEY_INVALID, API_KEY_MISSING, APP_NAME_MISSING, APP_NAME_TOO_LONG,
    CODE_CHALLENGE_INVALID, CODE_CHALLENGE_METHOD_INVALID, CODE_CHALLENGE_MISSING, DISPLAY_INVALID,
    LINK_TOO_LONG, MAX_APP_NAME_LEN, MAX_LOGIN_QUERY_BYTES, ORIGIN_MISSING, REDIRECT_URI_INVALID,
    RESPONSE_MODE_INVALID, SCOPE_INVALID, invalid_link_sentence,
};
use crate::oauth::is_s256_challenge;
use crate::params::Params;
use crate::state::Shared;
use crate::users::DeveloperApp;

/// Which flow the page runs.
#[derive(Debug, Clone)]
pub(super) enum Flow {
    Implicit,
    Code {
        client_id: String,
        code_challenge: String,
    },
}

/// A valid login request.
#[derive(Debug, Clone)]
pub(super) struct LoginRequest {
    pub(super) flow: Flow,
    pub(super) scope: Scope,
    pub(super) app_name: Option<String>,
    /// The key as the app sent it (`api_key`, else `client_id`): the token's `apiKey`.
    pub(super) api_key: Option<String>,
    pub(super) app: Option<DeveloperApp>,
    pub(super) redirect: RedirectUri,
    pub(super) redirect_raw: String,
    pub(super) origin: Option<String>,
    pub(super) state: Option<String>,
    pub(super) response_mode: ResponseMode,
    pub(super) display: Display,
}

impl LoginRequest {
    pub(super) fn app_label(&self) -> String {
        self.app_name
            .clone()
            .or_else(|| self.app.as_ref().map(|a| a.name.clone()))
            .or_else(|| self.api_key.as_ref().map(|k| format!("App {k}")))
            .unwrap_or_else(|| "An app".to_owned())
    }
}

/// Why a link is invalid.
#[derive(Debug, Clone)]
pub(super) struct InvalidLink {
    /// The parameter at fault (`data-invalid-param`).
    pub(super) param: &'static str,
    /// The reason in the heading.
    pub(super) reason: &'static str,
    /// What exactly is wrong, below the heading.
    pub(super) detail: String,
    /// The redirect-URI rule that failed (`data-rule`).
    pub(super) rule: Option<&'static str>,
}

impl InvalidLink {
    pub(super) fn new(
        param: &'static str,
        reason: &'static str,
        detail: impl Into<String>,
    ) -> Self {
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
    pub(super) fn title(&self) -> String {
        invalid_link_sentence(self.reason)
    }
}

/// Whether `key` is an implicit-flow `api_key`: exactly 40 hex characters, no `0x`.
fn is_implicit_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn parse_request(raw: &str, shared: &Shared) -> Result<LoginRequest, InvalidLink> {
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
        // Echoed back verbatim, an empty one too (spec, section 1: "any string"; `state=` is
        // left out only when none was sent: review 13).
        state: p.get_sent("state").map(str::to_owned),
        response_mode,
        display,
    })
}
