//! Test helpers (feature `testing`): log a test client in as a sandbox user in one call.
//!
//! Point the app at an `audius-sandbox` ([`AudiusLoginBuilder::environment`] with
//! `sandbox.environment()`), then either drive a real server with [`TestClient`], or an
//! in-process `actix_web::test` service with [`sign_in_service`]. Both go through the app's real
//! login route, the sandbox's real login page (its `sandbox_user` automation hook approves at
//! once) and the app's real callback, in whatever channel and flow the app uses (the code flow
//! through `/v1/oauth/authorize`, its code exchanged by the callback as in production).
//!
//! ```no_run
//! use actix_audius_login::{AudiusLogin, testing::TestClient};
//! # async fn run(audius: AudiusLogin, app_base: url::Url) -> Result<(), Box<dyn std::error::Error>> {
//! let client = TestClient::new(&audius, app_base);
//! client.sign_in_as("artist").await?;
//! let me = client.get("/me").send().await?;
//! assert_eq!(me.status(), 200);
//! # Ok(()) }
//! ```
//!
//! [`AudiusLoginBuilder::environment`]: crate::AudiusLoginBuilder::environment

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header;
use actix_web::test;
use url::Url;

use crate::config::{AudiusLogin, Flow, ResponseMode};

/// Why a test login did not complete.
#[derive(Debug, thiserror::Error)]
#[error("test login failed: {0}")]
pub struct TestLoginError(String);

fn fail<T>(message: impl Into<String>) -> Result<T, TestLoginError> {
    Err(TestLoginError(message.into()))
}

/// The name of the value the login page hands over: `token` (implicit flow) or `code`.
fn answer_name(audius: &AudiusLogin) -> &'static str {
    match audius.inner.flow {
        Flow::AuthorizationCode => "code",
        _ => "token",
    }
}

/// What the sandbox answered for an approved login: `(state, token or code, location)`.
async fn approve(
    login_page: &str,
    handle: &str,
    mode: ResponseMode,
    name: &str,
) -> Result<(String, String, Option<String>), TestLoginError> {
    let mut url = Url::parse(login_page)
        .map_err(|e| TestLoginError(format!("the login route sent {login_page:?}: {e}")))?;
    url.query_pairs_mut().append_pair("sandbox_user", handle);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| TestLoginError(e.to_string()))?;
    let mut answer = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| TestLoginError(format!("the sandbox did not answer: {e}")))?;
    // The code flow starts at `{api}/v1/oauth/authorize`, which sends the browser on to the
    // login page with the same query (`sandbox_user` included): follow that one hop.
    if url.path().ends_with("/v1/oauth/authorize")
        && let Some(page) = answer.headers().get(header::LOCATION.as_str())
    {
        let page = page.to_str().unwrap_or_default().to_owned();
        answer = client
            .get(&page)
            .send()
            .await
            .map_err(|e| TestLoginError(format!("the sandbox did not answer: {e}")))?;
    }
    let status = answer.status();
    if mode == ResponseMode::PostMessage {
        let page = answer
            .text()
            .await
            .map_err(|e| TestLoginError(e.to_string()))?;
        let (state, token) = postmessage_payload(&page, name).ok_or_else(|| {
            TestLoginError(format!("no answer in the sandbox's page (HTTP {status})"))
        })?;
        return Ok((state, token, None));
    }
    let Some(location) = answer.headers().get(header::LOCATION.as_str()) else {
        let body = answer.text().await.unwrap_or_default();
        return fail(format!(
            "the sandbox refused the login (HTTP {status}): {body}"
        ));
    };
    let location = Url::parse(location.to_str().unwrap_or_default())
        .map_err(|e| TestLoginError(format!("the sandbox redirected to a bad URL: {e}")))?;
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
        (Some(state), Some(token)) => Ok((state, token, Some(location.to_string()))),
        _ => fail(format!(
            "the sandbox's answer carries no state and {name}: {location}"
        )),
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

/// A cookie-keeping HTTP client for a running app, that does not follow redirects.
#[derive(Debug, Clone)]
pub struct TestClient {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    base: Url,
    audius: AudiusLogin,
}

impl TestClient {
    /// A client for the app at `app_base`, configured with `audius`.
    pub fn new(audius: &AudiusLogin, app_base: Url) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("a plain reqwest client builds");
        Self {
            client,
            jar,
            base: app_base,
            audius: audius.clone(),
        }
    }

    /// The underlying client (cookies kept, redirects not followed).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The cookie jar, to share with another client.
    pub fn jar(&self) -> &Arc<reqwest::cookie::Jar> {
        &self.jar
    }

    /// The app's URL for `path`.
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// `GET path` on the app.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    /// Logs in as the sandbox user `handle` through the app's login route and callback.
    pub async fn sign_in_as(&self, handle: &str) -> Result<(), TestLoginError> {
        let c = &self.audius.inner;
        let start = self
            .client
            .get(self.url(&c.login_path))
            .send()
            .await
            .map_err(|e| TestLoginError(format!("the app did not answer: {e}")))?;
        let Some(page) = start.headers().get(header::LOCATION.as_str()) else {
            return fail(format!(
                "the login route answered HTTP {} without a redirect",
                start.status()
            ));
        };
        let page = page.to_str().unwrap_or_default().to_owned();
        let name = answer_name(&self.audius);
        let (state, token, location) = approve(&page, handle, c.response_mode, name).await?;
        let done = match (c.response_mode, location) {
            (ResponseMode::Query, Some(location)) => self.client.get(location).send().await,
            _ => {
                self.client
                    .post(self.url(&c.callback_path))
                    .header("origin", c.app_origin.as_str())
                    .json(&serde_json::json!({ "state": state, name: token }))
                    .send()
                    .await
            }
        }
        .map_err(|e| TestLoginError(format!("the callback did not answer: {e}")))?;
        let status = done.status();
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            let body = done.text().await.unwrap_or_default();
            fail(format!(
                "the callback refused the login (HTTP {status}): {body}"
            ))
        }
    }
}

/// Logs in an in-process test service (from `actix_web::test::init_service`) as the sandbox
/// user `handle`, and returns the session cookie to send with later requests.
pub async fn sign_in_service<S, B>(
    app: &S,
    audius: &AudiusLogin,
    handle: &str,
) -> Result<Cookie<'static>, TestLoginError>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let c = &audius.inner;
    let start = test::call_service(
        app,
        test::TestRequest::get().uri(&c.login_path).to_request(),
    )
    .await;
    let cookie = session_cookie(&start)
        .ok_or_else(|| TestLoginError("the login route set no session cookie".into()))?;
    let Some(page) = start.headers().get(header::LOCATION) else {
        return fail(format!(
            "the login route answered HTTP {} without a redirect",
            start.status()
        ));
    };
    let page = page.to_str().unwrap_or_default().to_owned();
    let name = answer_name(audius);
    let (state, token, location) = approve(&page, handle, c.response_mode, name).await?;
    let request = match (c.response_mode, location) {
        (ResponseMode::Query, Some(location)) => {
            let url = Url::parse(&location).map_err(|e| TestLoginError(e.to_string()))?;
            let path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            test::TestRequest::get().uri(&path)
        }
        _ => test::TestRequest::post()
            .uri(&c.callback_path)
            .insert_header(("origin", c.app_origin.as_str()))
            .set_json(serde_json::json!({ "state": state, name: token })),
    };
    let done = test::call_service(app, request.cookie(cookie).to_request()).await;
    if !(done.status().is_success() || done.status().is_redirection()) {
        let status = done.status();
        let body = test::read_body(done).await;
        return fail(format!(
            "the callback refused the login (HTTP {status}): {}",
            String::from_utf8_lossy(&body)
        ));
    }
    session_cookie(&done).ok_or_else(|| TestLoginError("the callback set no session cookie".into()))
}

fn session_cookie<B>(res: &ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response().cookies().next().map(|c| c.into_owned())
}
