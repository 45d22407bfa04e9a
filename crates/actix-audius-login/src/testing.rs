//! Test helpers (feature `testing`): run the app on a free port, and log a test client in as a
//! sandbox user in one call.
//!
//! Point the app at an `audius-sandbox` ([`AudiusLoginBuilder::environment`] with
//! `sandbox.environment()`), then either drive a real server with [`TestServer`] and
//! [`TestClient`], or an in-process `actix_web::test` service with [`sign_in_service`]. Both go
//! through the app's real login route, the sandbox's real login page (its `sandbox_user`
//! automation hook approves at once) and the app's real callback, in whatever channel and flow
//! the app uses (the code flow through `/v1/oauth/authorize`, its code exchanged by the callback
//! as in production).
//!
//! The redirect URI names the app's port, which is known only once something listens on it:
//! [`TestServer::bind`] takes a free port on `127.0.0.1` first, [`TestServer::url`] gives the
//! callback URL to build the [`AudiusLogin`] with, and [`TestServer::start`] then serves the app
//! there. The whole set-up:
//!
//! ```no_run
//! use actix_audius_login::testing::{TestError, TestServer};
//! use actix_audius_login::{AudiusLogin, AudiusUser, VerifiedArtist};
//! use actix_session::{SessionMiddleware, storage::CookieSessionStore};
//! use actix_web::cookie::{Key, SameSite};
//! use actix_web::http::StatusCode;
//! use actix_web::{App, HttpResponse, web};
//!
//! // In `tests/`, with `#[actix_web::test]` on it.
//! async fn artists_get_in_and_listeners_do_not() -> Result<(), Box<dyn std::error::Error>> {
//!     let sandbox = audius_sandbox::Sandbox::builder().start().await?;
//!     let server = TestServer::bind()?; // a free port on 127.0.0.1, before the app exists
//!     let audius = AudiusLogin::builder("My App", server.url("/auth/audius/callback"))
//!         .environment(sandbox.environment())
//!         .build()?;
//!     let key = Key::generate();
//!     let server = server.start({
//!         let audius = audius.clone();
//!         move || {
//!             App::new()
//!                 .configure(audius.routes())
//!                 .route("/me", web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }))
//!                 .route("/studio", web::get().to(|a: VerifiedArtist| async move { a.name.clone() }))
//!                 .wrap(
//!                     SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
//!                         .cookie_secure(audius.cookie_secure()) // false on http://127.0.0.1
//!                         .cookie_same_site(SameSite::Lax)
//!                         .build(),
//!                 )
//!         }
//!     })?;
//!
//!     let listener = server.client(&audius)?;
//!     assert_eq!(listener.get("/me").send().await?.status(), StatusCode::UNAUTHORIZED);
//!     listener.sign_in_as("listener").await?;
//!     let me: serde_json::Value = listener.get("/me").send().await?.json()?;
//!     assert_eq!(me["handle"], "listener");
//!     assert_eq!(listener.get("/studio").send().await?.status(), StatusCode::FORBIDDEN);
//!
//!     let artist = server.client(&audius)?;
//!     artist.sign_in_as("artist").await?; // a verified artist
//!     assert_eq!(artist.get("/studio").send().await?.status(), StatusCode::OK);
//!     artist.logout().await?;
//!     assert_eq!(artist.get("/studio").send().await?.status(), StatusCode::UNAUTHORIZED);
//!
//!     // A refused login is typed, with the status of the refusal.
//!     match artist.sign_in_as("nobody-such").await {
//!         Err(TestError::Refused { status, .. }) => assert_eq!(status, StatusCode::BAD_REQUEST),
//!         other => panic!("{other:?}"),
//!     }
//!     Ok(())
//! }
//! ```
//!
//! [`AudiusLoginBuilder::environment`]: crate::AudiusLoginBuilder::environment

use std::fmt;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue, TryIntoHeaderPair};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{App, HttpServer, test};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{AudiusLogin, Flow, ResponseMode};

/// The cause of a [`TestError`].
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a test request, login or logout did not go through.
///
/// A refusal keeps its HTTP status ([`status`](Self::status)); a failure keeps its cause
/// ([`source`](std::error::Error::source)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// An answer refused a step: the login route, the sandbox's login page, the callback, the
    /// logout route (or a request the caller checked with [`TestResponse::error_for_status`]).
    #[error("{what} refused (HTTP {status}): {body}")]
    Refused {
        /// The step, in words (`"the app's callback"`).
        what: String,
        /// The status of the refusal.
        status: StatusCode,
        /// The body of the refusal (the start of it, at most 4 KiB).
        body: String,
    },
    /// A request could not be sent, or its answer could not be read: connection refused,
    /// timeout, a body over the limit.
    #[error("{what} did not answer: {source}")]
    Transport {
        /// The step, in words.
        what: String,
        /// The cause.
        source: Cause,
    },
    /// An answer the helper cannot use: a login route that sends nowhere, a sandbox answer
    /// without a token, a body that is not the JSON expected, a URL that does not parse.
    #[error("{what}")]
    Unexpected {
        /// What was wrong.
        what: String,
        /// The cause, when there is one.
        source: Option<Cause>,
    },
    /// The test server could not listen or start.
    #[error("the test server could not start: {0}")]
    Io(#[from] std::io::Error),
}

impl TestError {
    /// The HTTP status of a refusal ([`TestError::Refused`]), else `None`.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn transport(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::Transport {
            what: what.into(),
            source: source.into(),
        }
    }

    fn unexpected(what: impl Into<String>) -> Self {
        Self::Unexpected {
            what: what.into(),
            source: None,
        }
    }

    fn unexpected_because(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::Unexpected {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    fn refused(what: impl Into<String>, status: StatusCode, body: &[u8]) -> Self {
        Self::Refused {
            what: what.into(),
            status,
            body: excerpt(body),
        }
    }
}

/// Most bytes of a refused answer's body kept in the error.
const EXCERPT_BYTES: usize = 4096;

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_BYTES)]);
    text.into_owned()
}

/// Most bytes of an answer a [`TestClient`] reads; a longer body is a [`TestError::Transport`].
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long any one request of the helpers may take.
const TIMEOUT: Duration = Duration::from_secs(30);

fn http_client(jar: Option<Arc<reqwest::cookie::Jar>>) -> Result<reqwest::Client, TestError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT);
    if let Some(jar) = jar {
        builder = builder.cookie_provider(jar);
    }
    builder
        .build()
        .map_err(|e| TestError::unexpected_because("the HTTP client could not be built", e))
}

/// actix-web's status for reqwest's (both hold 100 to 999).
fn actix_status(status: reqwest::StatusCode) -> Result<StatusCode, TestError> {
    StatusCode::from_u16(status.as_u16())
        .map_err(|e| TestError::unexpected_because(format!("HTTP status {status}"), e))
}

/// Reads a body, refusing one over [`MAX_BODY_BYTES`].
async fn read_body(mut res: reqwest::Response, what: &str) -> Result<Bytes, TestError> {
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
    Ok(Bytes::from(body))
}

/// An answer read whole, with actix-web's types: status, headers, body.
async fn read_response(res: reqwest::Response, what: &str) -> Result<TestResponse, TestError> {
    let status = actix_status(res.status())?;
    let mut headers = HeaderMap::new();
    for (name, value) in res.headers() {
        let name = HeaderName::from_bytes(name.as_str().as_bytes())
            .map_err(|e| TestError::unexpected_because(format!("header {name}"), e))?;
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|e| TestError::unexpected_because(format!("header {name}"), e))?;
        headers.append(name, value);
    }
    let body = read_body(res, what).await?;
    Ok(TestResponse {
        status,
        headers,
        body,
    })
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
) -> Result<(String, String, Option<String>), TestError> {
    let page_what = "the sandbox's login page";
    let mut url = Url::parse(login_page).map_err(|e| {
        TestError::unexpected_because(
            format!("the app's login route sent the browser to {login_page:?}"),
            e,
        )
    })?;
    url.query_pairs_mut().append_pair("sandbox_user", handle);
    let client = http_client(None)?;
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
    let answer = read_response(answer, page_what).await?;
    if mode == ResponseMode::PostMessage && answer.status().is_success() {
        let (state, token) = postmessage_payload(&answer.text(), name).ok_or_else(|| {
            TestError::unexpected(format!(
                "the sandbox's postmessage page carries no state and {name}"
            ))
        })?;
        return Ok((state, token, None));
    }
    let Some(location) = answer.location() else {
        return Err(TestError::refused(
            page_what,
            answer.status(),
            answer.body(),
        ));
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
        (Some(state), Some(token)) => Ok((state, token, Some(location.to_string()))),
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

/// A browser-like client for an app under test: it keeps cookies, does not follow redirects,
/// sends `Origin` with its `POST`s as a page of the app would, and answers with actix-web's
/// types ([`TestResponse`]). Clones share the cookies.
#[derive(Debug, Clone)]
pub struct TestClient {
    client: reqwest::Client,
    base: Url,
    audius: AudiusLogin,
}

impl TestClient {
    /// A client for the app at `app_base` (`"http://127.0.0.1:8080/"`: any absolute http(s)
    /// URL; a `&str`, a `String` or a `url::Url`), configured with `audius`.
    /// [`TestServer::client`] makes one for a test server.
    pub fn new(audius: &AudiusLogin, app_base: impl AsRef<str>) -> Result<Self, TestError> {
        let text = app_base.as_ref();
        let base = Url::parse(text)
            .map_err(|e| TestError::unexpected_because(format!("the app's URL {text:?}"), e))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(TestError::unexpected(format!(
                "the app's URL {text:?} is not http(s)"
            )));
        }
        Ok(Self {
            client: http_client(Some(Arc::new(reqwest::cookie::Jar::default())))?,
            base,
            audius: audius.clone(),
        })
    }

    /// The app's URL for `path` (`"/me"`, `"/search?q=x"`).
    pub fn url(&self, path: &str) -> String {
        self.base
            .join(path)
            .map_or_else(|_| format!("{}{path}", self.base), String::from)
    }

    /// A request of any method to `path` on the app. `POST`, `PUT`, `PATCH` and `DELETE` carry
    /// the app's `Origin`, as a browser sends it from the app's own pages (replace it with
    /// [`RequestBuilder::insert_header`] to play another site).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
            && let Ok(origin) = HeaderValue::from_str(self.audius.app_origin())
        {
            headers.insert(header::ORIGIN, origin);
        }
        RequestBuilder {
            client: self.client.clone(),
            method,
            url: self.url(path),
            headers,
            body: None,
            error: None,
        }
    }

    /// `GET path` on the app.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// `POST path` on the app, with the app's `Origin` (see [`request`](Self::request)).
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// Logs in as the sandbox user `handle` through the app's login route and callback.
    ///
    /// A step that answers otherwise than a login would is a [`TestError::Refused`] with its
    /// status: the login route (`500` without a session middleware), the sandbox (`400` for an
    /// unknown user), the callback (`401` for a refused token, `400` when the session cookie did
    /// not come back, ...).
    pub async fn sign_in_as(&self, handle: &str) -> Result<(), TestError> {
        let c = &self.audius.inner;
        let login_what = format!("the app's login route (GET {})", c.login_path);
        let start = self.get(&c.login_path).send().await.map_err(|e| match e {
            TestError::Transport { source, .. } => TestError::transport(login_what.clone(), source),
            other => other,
        })?;
        if !start.status().is_redirection() {
            return Err(TestError::refused(login_what, start.status(), start.body()));
        }
        let page = start
            .location()
            .ok_or_else(|| TestError::unexpected(format!("{login_what} sent no Location")))?;
        let name = answer_name(&self.audius);
        let (state, token, location) = approve(page, handle, c.response_mode, name).await?;
        let request = match (c.response_mode, location) {
            (ResponseMode::Query, Some(location)) => RequestBuilder {
                url: location,
                ..self.get("/")
            },
            _ => self
                .post(&c.callback_path)
                .json(&serde_json::json!({ "state": state, name: token })),
        };
        let callback_what = format!("the app's callback ({})", c.callback_path);
        let done = request.send().await.map_err(|e| match e {
            TestError::Transport { source, .. } => {
                TestError::transport(callback_what.clone(), source)
            }
            other => other,
        })?;
        if done.status().is_success() || done.status().is_redirection() {
            Ok(())
        } else {
            Err(TestError::refused(
                callback_what,
                done.status(),
                done.body(),
            ))
        }
    }

    /// Logs out as the app's own page would: `POST` to the logout route with the app's
    /// `Origin`. Anything but the route's redirect is a [`TestError::Refused`].
    pub async fn logout(&self) -> Result<(), TestError> {
        let path = self.audius.logout_path();
        let res = self.post(path).send().await?;
        if res.status().is_redirection() {
            Ok(())
        } else {
            Err(TestError::refused(
                format!("the app's logout route (POST {path})"),
                res.status(),
                res.body(),
            ))
        }
    }
}

/// A request being built by a [`TestClient`]; send it with [`send`](Self::send).
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: reqwest::Client,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Option<(&'static str, Vec<u8>)>,
    /// The first error met while building, reported by `send`.
    error: Option<TestError>,
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl RequestBuilder {
    /// Sets a header, replacing any of the same name (the default `Origin` of a `POST`
    /// included): `(header::ACCEPT, "application/json")`, as with actix-web's own
    /// `TestRequest::insert_header`.
    pub fn insert_header(mut self, header: impl TryIntoHeaderPair) -> Self {
        match header.try_into_pair() {
            Ok((name, value)) => {
                self.headers.insert(name, value);
            }
            Err(e) => {
                let e: actix_web::error::HttpError = e.into();
                self.error
                    .get_or_insert_with(|| TestError::unexpected_because("a bad header", e));
            }
        }
        self
    }

    /// Removes a header (the default `Origin` of a `POST`, to play a client that sends none).
    pub fn remove_header(mut self, name: impl AsRef<str>) -> Self {
        self.headers.remove(name.as_ref());
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(mut self, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.body = Some(("application/json", bytes)),
            Err(e) => {
                self.error.get_or_insert_with(|| {
                    TestError::unexpected_because("the JSON body could not be written", e)
                });
            }
        }
        self
    }

    /// A form body (`Content-Type: application/x-www-form-urlencoded`).
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.body = Some(("application/x-www-form-urlencoded", body.into_bytes()));
        self
    }

    /// Sends it, and reads the whole answer (at most [`MAX_BODY_BYTES`]). Any answer is `Ok`,
    /// whatever its status (see [`TestResponse::error_for_status`]).
    pub async fn send(self) -> Result<TestResponse, TestError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let method = reqwest::Method::from_bytes(self.method.as_str().as_bytes())
            .map_err(|e| TestError::unexpected_because(format!("method {}", self.method), e))?;
        let mut request = self.client.request(method, &self.url);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_bytes());
        }
        if let Some((content_type, body)) = self.body {
            request = request.header("content-type", content_type).body(body);
        }
        let what = format!("{} {}", self.method, self.url);
        let res = request
            .send()
            .await
            .map_err(|e| TestError::transport(what.clone(), e.without_url()))?;
        read_response(res, &what).await
    }
}

/// An answer to a [`TestClient`], read whole, with actix-web's types.
#[derive(Debug, Clone)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl TestResponse {
    /// The status (actix-web's type: compare with `StatusCode::FORBIDDEN`, or with `403`).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers (actix-web's types).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value as text, if present and visible ASCII.
    pub fn header(&self, name: impl AsRef<str>) -> Option<&str> {
        self.headers.get(name.as_ref())?.to_str().ok()
    }

    /// The `Location` header of a redirect.
    pub fn location(&self) -> Option<&str> {
        self.header(header::LOCATION)
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced by U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; a body that is not is a [`TestError::Unexpected`] with the cause.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, TestError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            TestError::unexpected_because(
                format!(
                    "the answer (HTTP {}) is not the JSON expected: {}",
                    self.status,
                    excerpt(&self.body)
                ),
                e,
            )
        })
    }

    /// The answer itself when its status is below 400, else a [`TestError::Refused`] with its
    /// status and body.
    pub fn error_for_status(self) -> Result<Self, TestError> {
        if self.status.as_u16() < 400 {
            Ok(self)
        } else {
            Err(TestError::refused(
                "the app".to_owned(),
                self.status,
                &self.body,
            ))
        }
    }
}

/// An app server for tests, on a free port of `127.0.0.1` taken before the app is built, so
/// that the app's redirect URI can name it. See the [module docs](self) for the whole set-up.
///
/// One worker, no signal handling; stopped when dropped. Needs a Tokio runtime (actix-web's
/// `#[actix_web::test]` or `#[tokio::test]`).
#[derive(Debug)]
pub struct TestServer {
    listener: Option<TcpListener>,
    base: Url,
    handle: Option<actix_web::dev::ServerHandle>,
}

impl TestServer {
    /// Takes a free port on `127.0.0.1`.
    pub fn bind() -> Result<Self, TestError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let base = Url::parse(&format!("http://127.0.0.1:{port}/"))
            .map_err(|e| TestError::unexpected_because("the server's URL", e))?;
        Ok(Self {
            listener: Some(listener),
            base,
            handle: None,
        })
    }

    /// The server's base URL, `http://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The server's URL for `path`: `server.url("/auth/audius/callback")` is the redirect URI
    /// to build the [`AudiusLogin`] with.
    pub fn url(&self, path: &str) -> String {
        self.base
            .join(path)
            .map_or_else(|_| format!("{}{path}", self.base), String::from)
    }

    /// Serves the apps `factory` makes (one per worker, as `HttpServer::new` does) on the
    /// port, in the background.
    pub fn start<F, T, B>(mut self, factory: F) -> Result<Self, TestError>
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        let listener = self.listener.take().ok_or_else(|| {
            TestError::unexpected("this test server was started already; bind another")
        })?;
        let server = HttpServer::new(factory)
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
        self.handle = Some(server.handle());
        tokio::spawn(server);
        Ok(self)
    }

    /// A new [`TestClient`] (its own cookies) for this server's app, configured with `audius`.
    pub fn client(&self, audius: &AudiusLogin) -> Result<TestClient, TestError> {
        TestClient::new(audius, self.base.as_str())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The stop command is sent at once; waiting for the workers is not needed.
            drop(handle.stop(false));
        }
    }
}

/// Logs in an in-process test service (from `actix_web::test::init_service`) as the sandbox
/// user `handle`, and returns the session cookie to send with later requests.
///
/// ```no_run
/// use actix_audius_login::testing::sign_in_service;
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
    let c = &audius.inner;
    let login_what = format!("the app's login route (GET {})", c.login_path);
    let start = test::call_service(
        app,
        test::TestRequest::get().uri(&c.login_path).to_request(),
    )
    .await;
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
    let name = answer_name(audius);
    let (state, token, location) = approve(&page, handle, c.response_mode, name).await?;
    let request = match (c.response_mode, location) {
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
            .uri(&c.callback_path)
            .insert_header((header::ORIGIN, c.app_origin.as_str()))
            .set_json(serde_json::json!({ "state": state, name: token })),
    };
    let done = test::call_service(app, request.cookie(cookie).to_request()).await;
    if !(done.status().is_success() || done.status().is_redirection()) {
        let status = done.status();
        let body = test::read_body(done).await;
        return Err(TestError::refused(
            format!("the app's callback ({})", c.callback_path),
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
