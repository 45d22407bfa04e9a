//! Logging in through the sandbox: the approval the sandbox gives, and [`sign_in_service`]
//! for in-process services.

use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self};
use actix_web::test;
use url::Url;

use actix_audius_login::{AudiusLogin, ResponseMode};

use crate::client::{Answer, http_client};
use crate::error::TestError;

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

/// Logs in an in-process test service (from `actix_web::test::init_service`) as the sandbox
/// user `handle`, and returns the session cookie to send with later requests.
///
/// ```no_run
/// use actix_audius_login_testing::sign_in_service;
/// use actix_audius_login::{AudiusLogin, AudiusUser};
/// use actix_session::{SessionMiddleware, storage::CookieSessionStore};
/// use actix_web::cookie::Key;
/// use actix_web::{App, HttpResponse, test, web};
///
/// // In `tests/`, with `#[actix_web::test]` on it.
/// async fn me_answers_the_signed_in_user() -> Result<(), Box<dyn std::error::Error>> {
///     let sandbox = audius_sandbox::Sandbox::builder().start().await?;
///     // In process, nothing listens: any callback URL of the app will do.
///     let audius = AudiusLogin::builder("My App", "http://localhost:8080/auth/audius/callback")
///         .environment(sandbox.environment())
///         .build()?;
///     let app = test::init_service(
///         App::new()
///             .configure(audius.routes())
///             .route("/me", web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }))
///             .wrap(
///                 SessionMiddleware::builder(CookieSessionStore::default(), Key::generate())
///                     .cookie_secure(audius.cookie_secure())
///                     .build(),
///             ),
///     )
///     .await;
///     let cookie = sign_in_service(&app, &audius, "artist").await?;
///     let req = test::TestRequest::get().uri("/me").cookie(cookie).to_request();
///     let me: serde_json::Value = test::call_and_read_body_json(&app, req).await;
///     assert_eq!(me["handle"], "artist");
///     Ok(())
/// }
/// ```
pub async fn sign_in_service<S, B>(
    app: &S,
    audius: &AudiusLogin,
    handle: &str,
) -> Result<Cookie<'static>, TestError>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let login_path = audius.login_path();
    let callback_path = callback_path(audius);
    let login_what = format!("the app's login route (GET {login_path})");
    let start =
        test::call_service(app, test::TestRequest::get().uri(login_path).to_request()).await;
    if !start.status().is_redirection() {
        let status = start.status();
        let body = test::read_body(start).await;
        return Err(TestError::refused(login_what, status, &body));
    }
    let cookie = session_cookie(&start)
        .ok_or_else(|| TestError::unexpected(format!("{login_what} set no session cookie")))?;
    let page = start
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| TestError::unexpected(format!("{login_what} sent no Location")))?
        .to_owned();
    let Approval {
        state,
        name,
        value,
        mode,
        location,
    } = approve(&page, handle).await?;
    let request = match (mode, location) {
        (ResponseMode::Query, Some(location)) => {
            let url = Url::parse(&location).map_err(|e| {
                TestError::unexpected_because(format!("the sandbox redirected to {location:?}"), e)
            })?;
            let path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            test::TestRequest::get().uri(&path)
        }
        _ => test::TestRequest::post()
            .uri(callback_path)
            .insert_header((header::ORIGIN, app_origin(audius)))
            .set_json(serde_json::json!({ "state": state, name: value })),
    };
    let done = test::call_service(app, request.cookie(cookie).to_request()).await;
    if !(done.status().is_success() || done.status().is_redirection()) {
        let status = done.status();
        let body = test::read_body(done).await;
        return Err(TestError::refused(
            format!("the app's callback ({callback_path})"),
            status,
            &body,
        ));
    }
    session_cookie(&done)
        .ok_or_else(|| TestError::unexpected("the app's callback set no session cookie"))
}

fn session_cookie<B>(res: &ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response().cookies().next().map(|c| c.into_owned())
}
