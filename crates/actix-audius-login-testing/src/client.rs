//! [`TestClient`]: a browser-like HTTP client for an app under test, which logs in as a sandbox
//! user and logs out; and the reading of the answers the helpers look at themselves.

use std::sync::Arc;

use actix_audius_login::{AudiusLogin, ResponseMode};
use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use url::Url;

use crate::approval::{Answer, Approval, app_origin, approve, callback_path, http_client};
use crate::error::TestError;

/// A browser-like client for an app under test: [`sign_in_as`](Self::sign_in_as) logs it in as
/// a sandbox user through the app's real routes, [`logout`](Self::logout) logs it out, and
/// [`http`](Self::http) is the [`reqwest::Client`] for everything else, with the session's
/// cookies. That client keeps cookies, does not follow redirects, times out after 30 s, and
/// sends the app's `Origin` as a page of the app would (a request's own `Origin` header wins).
/// Clones share the cookies.
///
/// ```no_run
/// # async fn f(client: actix_audius_login_testing::TestClient) -> Result<(), Box<dyn std::error::Error>> {
/// client.sign_in_as("artist").await?;
/// let me: serde_json::Value = client.http().get(client.url("/me")).send().await?.json().await?;
/// assert_eq!(me["handle"], "artist");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TestClient {
    http: reqwest::Client,
    base: Url,
    audius: AudiusLogin,
}

impl TestClient {
    /// A client of the app at `app_base` (an absolute `http(s)` URL, such as
    /// [`TestServer::url("/")`](crate::TestServer::url)) configured with `audius`, with no
    /// cookies yet. [`TestServer::client`](crate::TestServer::client) is the short way.
    pub fn new(audius: &AudiusLogin, app_base: impl AsRef<str>) -> Result<Self, TestError> {
        let text = app_base.as_ref();
        let base = Url::parse(text)
            .map_err(|e| TestError::unexpected_because(format!("the app's URL {text:?}"), e))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(TestError::unexpected(format!(
                "the app's URL {text:?} is not http(s)"
            )));
        }
        let origin = app_origin(audius);
        let mut headers = HeaderMap::new();
        headers.insert(
            ORIGIN,
            HeaderValue::from_str(&origin).map_err(|e| {
                TestError::unexpected_because(format!("the app's origin {origin:?}"), e)
            })?,
        );
        Ok(Self {
            http: http_client(Some(Arc::new(reqwest::cookie::Jar::default())), headers)?,
            base,
            audius: audius.clone(),
        })
    }

    /// The absolute URL of `path` (with its query, if any) on the app.
    pub fn url(&self, path: &str) -> String {
        self.base
            .join(path)
            .map_or_else(|_| format!("{}{path}", self.base), String::from)
    }

    /// The HTTP client, with this client's cookies (the session, once signed in): send the
    /// test's own requests with it, to [`url`](Self::url)s.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Logs in as the sandbox user `handle` through the app's login route, the sandbox's login
    /// page and the app's callback, in the app's channel and flow; the session cookie is then
    /// this client's. A refusal on the way (an unknown user: the sandbox's `400`) is a
    /// [`TestError::Refused`] with its status.
    pub async fn sign_in_as(&self, handle: &str) -> Result<(), TestError> {
        let login_path = self.audius.paths().login.as_str();
        let login_what = format!("the app's login route (GET {login_path})");
        let start = self
            .fetch(self.http.get(self.url(login_path)), &login_what)
            .await?;
        if !start.status.is_redirection() {
            return Err(TestError::refused(login_what, start.status, &start.body));
        }
        let page = start
            .location
            .ok_or_else(|| TestError::unexpected(format!("{login_what} sent no Location")))?;
        let Approval {
            state,
            name,
            value,
            mode,
            location,
        } = approve(&page, handle).await?;
        let callback = callback_path(&self.audius);
        let request = match (mode, location) {
            (ResponseMode::Query, Some(location)) => self.http.get(location),
            _ => self
                .http
                .post(self.url(callback))
                .json(&serde_json::json!({ "state": state, name: value })),
        };
        let callback_what = format!("the app's callback ({callback})");
        let done = self.fetch(request, &callback_what).await?;
        if done.status.is_success() || done.status.is_redirection() {
            Ok(())
        } else {
            Err(TestError::refused(callback_what, done.status, &done.body))
        }
    }

    /// Logs out through the app's logout route (`POST`, same-origin).
    pub async fn logout(&self) -> Result<(), TestError> {
        let path = self.audius.paths().logout.as_str();
        let what = format!("the app's logout route (POST {path})");
        let res = self.fetch(self.http.post(self.url(path)), &what).await?;
        if res.status.is_redirection() {
            Ok(())
        } else {
            Err(TestError::refused(what, res.status, &res.body))
        }
    }

    /// Sends `request` (which answers `what`) and reads its answer.
    async fn fetch(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Answer, TestError> {
        let res = request
            .send()
            .await
            .map_err(|e| TestError::transport(what.to_owned(), e.without_url()))?;
        Answer::read(res, what).await
    }
}
