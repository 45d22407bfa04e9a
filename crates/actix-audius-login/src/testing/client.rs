//! [`TestClient`]: a browser-like HTTP client for an app under test, and its answers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue, TryIntoHeaderPair};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::error::{TestError, excerpt};
use super::sign_in::{answer_name, approve};
use crate::config::ResponseMode;
use crate::state::AudiusLogin;

/// Most bytes of an answer a [`TestClient`] reads; a longer body is a [`TestError::Transport`].
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long any one request of the helpers may take.
const TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn http_client(
    jar: Option<Arc<reqwest::cookie::Jar>>,
) -> Result<reqwest::Client, TestError> {
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
pub(super) async fn read_response(
    res: reqwest::Response,
    what: &str,
) -> Result<TestResponse, TestError> {
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
    /// [`TestServer::client`](super::TestServer::client) makes one for a test server.
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
            && let Ok(origin) = HeaderValue::from_str(&self.audius.inner.app_origin)
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

    /// Sends it, and reads the whole answer (at most 16 MiB). Any answer is `Ok`,
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
