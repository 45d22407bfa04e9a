//! The login through the sandbox that both helpers share: the HTTP client the helpers use, the
//! answers they read whole, and the sandbox's approval of a login page (its channel and flow
//! read from the page's URL, as a browser does).

use std::sync::Arc;
use std::time::Duration;

use actix_audius_login::{AudiusLogin, ResponseMode};
use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use reqwest::header::{HeaderMap, LOCATION};
use url::Url;

use crate::error::TestError;
/// Most bytes of an answer the helpers read themselves (the sandbox's page, a refusal); a longer
/// body is a [`TestError::Transport`].
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long any one request of the helpers' clients may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A client that does not follow redirects (the helpers, and tests, look at each one), with a
/// timeout, sending `headers` with every request and keeping cookies in `jar` when given one.
pub(crate) fn http_client(
    jar: Option<Arc<reqwest::cookie::Jar>>,
    headers: HeaderMap,
) -> Result<reqwest::Client, TestError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .default_headers(headers);
    if let Some(jar) = jar {
        builder = builder.cookie_provider(jar);
    }
    builder
        .build()
        .map_err(|e| TestError::unexpected_because("the HTTP client could not be built", e))
}

/// An answer the helpers read whole: its status, `Location` and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    pub(crate) body: Bytes,
}

impl Answer {
    /// Reads `res` (answering `what`), refusing a body over [`MAX_BODY_BYTES`].
    pub(crate) async fn read(mut res: reqwest::Response, what: &str) -> Result<Self, TestError> {
        let status = StatusCode::from_u16(res.status().as_u16()).map_err(|e| {
            TestError::unexpected_because(format!("HTTP status {}", res.status()), e)
        })?;
        let location = match res.headers().get(LOCATION) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|e| TestError::unexpected_because(format!("{what}'s Location"), e))?
                    .to_owned(),
            ),
            None => None,
        };
        let too_large = || {
            TestError::transport(
                what.to_owned(),
                format!("the body is over {MAX_BODY_BYTES} bytes"),
            )
        };
        if res
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| TestError::transport(what.to_owned(), e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Self {
            status,
            location,
            body: Bytes::from(body),
        })
    }
}

/// What the sandbox approved: the state, the token (implicit flow) or code, how it came back,
/// and the URL it came back to in a redirect channel.
pub(crate) struct Approval {
    pub(crate) state: String,
    /// `"token"` (implicit flow) or `"code"` (authorization-code flow).
    pub(crate) name: &'static str,
    pub(crate) value: String,
    pub(crate) mode: ResponseMode,
    pub(crate) location: Option<String>,
}

/// The channel and the answer's name the login page's URL asks for, as a browser sees it:
/// `redirect_uri=postmessage` is the popup, else `response_mode` (`query` or `fragment`); the
/// code flow's URL has `response_type=code`.
fn channel(login_page: &Url) -> (ResponseMode, &'static str) {
    let get = |key: &str| {
        login_page
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let mode = if get("redirect_uri").as_deref() == Some("postmessage") {
        ResponseMode::PostMessage
    } else if get("response_mode").as_deref() == Some("query") {
        ResponseMode::Query
    } else {
        ResponseMode::Fragment
    };
    let name = if get("response_type").as_deref() == Some("code") {
        "code"
    } else {
        "token"
    };
    (mode, name)
}

/// The app's origin (`scheme://host[:port]` of its redirect URI), which its pages send as
/// `Origin`.
pub(crate) fn app_origin(audius: &AudiusLogin) -> String {
    audius.redirect_uri().origin().ascii_serialization()
}

/// The callback route's path (the redirect URI's).
pub(crate) fn callback_path(audius: &AudiusLogin) -> &str {
    audius.redirect_uri().path()
}

/// What the sandbox answered for an approved login of `handle` on `login_page`.
pub(crate) async fn approve(login_page: &str, handle: &str) -> Result<Approval, TestError> {
    let page_what = "the sandbox's login page";
    let mut url = Url::parse(login_page).map_err(|e| {
        TestError::unexpected_because(
            format!("the app's login route sent the browser to {login_page:?}"),
            e,
        )
    })?;
    let (mode, name) = channel(&url);
    url.query_pairs_mut().append_pair("sandbox_user", handle);
    let client = http_client(None, reqwest::header::HeaderMap::new())?;
    let mut answer = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| TestError::transport(page_what, e.without_url()))?;
    // The code flow starts at `{api}/v1/oauth/authorize`, which sends the browser on to the
    // login page with the same query (`sandbox_user` included): follow that one hop.
    if url.path().ends_with("/v1/oauth/authorize")
        && let Some(page) = answer.headers().get(header::LOCATION.as_str())
    {
        let page = page
            .to_str()
            .map_err(|e| TestError::unexpected_because("the authorize answer's Location", e))?
            .to_owned();
        answer = client
            .get(&page)
            .send()
            .await
            .map_err(|e| TestError::transport(page_what, e.without_url()))?;
    }
    let answer = Answer::read(answer, page_what).await?;
    if mode == ResponseMode::PostMessage && answer.status.is_success() {
        let (state, token) = postmessage_payload(&String::from_utf8_lossy(&answer.body), name)
            .ok_or_else(|| {
                TestError::unexpected(format!(
                    "the sandbox's postmessage page carries no state and {name}"
                ))
            })?;
        return Ok(Approval {
            state,
            name,
            value: token,
            mode,
            location: None,
        });
    }
    let Some(location) = answer.location.as_deref() else {
        return Err(TestError::refused(page_what, answer.status, &answer.body));
    };
    let location = Url::parse(location).map_err(|e| {
        TestError::unexpected_because(format!("the sandbox redirected to {location:?}"), e)
    })?;
    let pairs = match mode {
        ResponseMode::Fragment => location.fragment().unwrap_or_default().to_owned(),
        _ => location.query().unwrap_or_default().to_owned(),
    };
    let get = |name: &str| {
        url::form_urlencoded::parse(pairs.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    match (get("state"), get(name)) {
        (Some(state), Some(token)) => Ok(Approval {
            state,
            name,
            value: token,
            mode,
            location: Some(location.to_string()),
        }),
        _ => Err(TestError::unexpected(format!(
            "the sandbox's answer carries no state and {name}: {location}"
        ))),
    }
}

/// `{state, token}` (or `{state, code}`) from the sandbox's postmessage page
/// (`var message = {...};`).
fn postmessage_payload(page: &str, name: &str) -> Option<(String, String)> {
    let start = page.find("var message = ")? + "var message = ".len();
    let end = start + page[start..].find(';')?;
    let message: serde_json::Value = serde_json::from_str(&page[start..end]).ok()?;
    Some((
        message.get("state")?.as_str()?.to_owned(),
        message.get(name)?.as_str()?.to_owned(),
    ))
}
