//! The Audius API client: a fixed base URL, a list of hosts, or a discovery list; health checks,
//! host selection and fail-over; timeouts on every call; redirects never followed; bodies capped.
//!
//! ```no_run
//! use std::time::Duration;
//! use audius_login::ApiClient;
//!
//! # async fn run() -> Result<(), audius_login::Error> {
//! // The current Audius API (the default).
//! let client = ApiClient::builder().build()?;
//!
//! // Older style: read a list of discovery hosts, probe them, use the first healthy one, and
//! // fail over to the next on connection errors, timeouts and 5xx.
//! let client = ApiClient::builder()
//!     .discovery("https://api.audius.co".parse().unwrap())
//!     .timeout(Duration::from_secs(5))
//!     .build()?;
//! let answer = client.get("/v1/users/handle/alice").await?;
//! println!("{} from {}", answer.status, answer.host);
//! # Ok(()) }
//! ```
//!
//! Fail-over happens on connection errors, timeouts, truncated or over-size bodies and 5xx
//! answers, never on 4xx (a 4xx is an answer about the request, the same on every host). After
//! [`ApiClientBuilder::reselect_after`] consecutive failures the client selects a host again,
//! re-reading the discovery list when it has one.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use serde_json::Value;
use tracing::Instrument as _;
use url::Url;

use crate::defaults;
use crate::error::{Error, Limited, Result};
use crate::metrics::{self, Endpoint};

mod builder;
mod response;

pub use builder::{ApiClientBuilder, HostSource};
pub use response::ApiResponse;

/// The HTTP method of [`ApiClient::send_with_bearer`]: the [`http`](https://docs.rs/http/1)
/// crate's (version 1, as reqwest, hyper 1, axum 0.7+ and tower-http use), re-exported here so
/// that it can be named without depending on `http`. actix-web 4 has its own (`http` 0.2):
/// `actix-audius-login`'s `AudiusClient` takes that one.
pub use reqwest::Method;

/// The HTTP status of an [`ApiResponse`]: the [`http`](https://docs.rs/http/1) crate's
/// (version 1), re-exported here. It compares with a number (`answer.status == 404`) and with
/// its constants (`answer.status == StatusCode::NOT_FOUND`), and `as_u16()` gives the number.
/// actix-web 4 has its own (`http` 0.2): `actix-audius-login`'s `AudiusClient` answers that one.
pub use reqwest::StatusCode;

/// How many times a request may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Safe to send again to another host (GET).
    Idempotent,
    /// Only retried when the request surely did not reach a server (connection refused).
    OnlyIfNotSent,
}

/// One request, to be sent to a selected host.
struct Request<'a> {
    method: reqwest::Method,
    path: &'a str,
    /// The body and its content type.
    body: Option<(&'static str, String)>,
    bearer: Option<&'a str>,
    retry: Retry,
}

/// The content type of a form body.
const FORM: &str = "application/x-www-form-urlencoded";
/// The content type of a JSON body.
const JSON: &str = "application/json";

fn form_body(form: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

#[derive(Debug)]
struct Selection {
    hosts: Arc<Vec<Url>>,
    current: Option<usize>,
    consecutive_failures: u32,
}

#[derive(Debug)]
struct Inner {
    /// What it was built from ([`ApiClient::with_own_connections`]).
    settings: ApiClientBuilder,
    http: reqwest::Client,
    source: HostSource,
    timeout: Duration,
    health_timeout: Duration,
    max_body_bytes: usize,
    probe_count: usize,
    max_attempts: usize,
    reselect_after: u32,
    selection: tokio::sync::Mutex<Selection>,
}

/// The Audius API client. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

/// What one attempt gave.
enum Attempt {
    Answer(ApiResponse),
    /// Transport failure; `sent` is false when the request surely never reached a server.
    Failed {
        error: Error,
        sent: bool,
    },
}

impl ApiClient {
    /// A client with the same settings, and connections (and host selection) of its own. A
    /// pooled connection is driven by the runtime that opened it and dies with it: work that
    /// runs on a runtime of its own (one that outlives an HTTP server's workers, as the actix
    /// crate's token refreshes do) needs a client whose connections are opened there.
    pub fn with_own_connections(&self) -> Result<ApiClient> {
        self.inner.settings.clone().build()
    }

    /// A builder; see its setters for the defaults.
    pub fn builder() -> ApiClientBuilder {
        ApiClientBuilder::default()
    }

    /// A client for one base URL, with the default timeouts and limits.
    pub fn new(base_url: Url) -> Result<Self> {
        Self::builder().base_url(base_url).build()
    }

    /// Where the requests go.
    pub fn source(&self) -> &HostSource {
        &self.inner.source
    }

    /// The cap on response bodies.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    /// The longest one call may take, fail-over included: a host list read and a health check
    /// when hosts are (re)selected, then up to `max_attempts` attempts, each within the
    /// request timeout (`timeout × (max_attempts + 1) + health_timeout`; 42 s with the
    /// defaults). A bound to size locks and waits by, not an expected duration.
    pub fn call_budget(&self) -> Duration {
        let attempts = u32::try_from(self.inner.max_attempts.saturating_add(1)).unwrap_or(u32::MAX);
        self.inner
            .timeout
            .saturating_mul(attempts)
            .saturating_add(self.inner.health_timeout)
    }

    /// `GET {host}{path_and_query}`, with fail-over.
    pub async fn get(&self, path_and_query: &str) -> Result<ApiResponse> {
        self.send(Request {
            method: reqwest::Method::GET,
            path: path_and_query,
            body: None,
            bearer: None,
            retry: Retry::Idempotent,
        })
        .await
    }

    /// `GET` with `Authorization: Bearer <token>`, with fail-over.
    pub async fn get_with_bearer(&self, path_and_query: &str, token: &str) -> Result<ApiResponse> {
        self.send(Request {
            method: reqwest::Method::GET,
            path: path_and_query,
            body: None,
            bearer: Some(token),
            retry: Retry::Idempotent,
        })
        .await
    }

    /// `POST` of a form (`application/x-www-form-urlencoded`). Not idempotent: it goes to
    /// another host only when the connection was refused, never after it may have been received.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<ApiResponse> {
        self.send(Request {
            method: reqwest::Method::POST,
            path,
            body: Some((FORM, form_body(form))),
            bearer: None,
            retry: Retry::OnlyIfNotSent,
        })
        .await
    }

    /// `POST` of a JSON body (`application/json`). Not idempotent: as
    /// [`post_form`](Self::post_form), it goes to another host only when the connection was
    /// refused.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<ApiResponse> {
        self.send(Request {
            method: reqwest::Method::POST,
            path,
            body: Some((JSON, body.to_string())),
            bearer: None,
            retry: Retry::OnlyIfNotSent,
        })
        .await
    }

    /// A call that changes something, with `Authorization: Bearer <token>`: `method` (`POST`,
    /// `PUT`, `PATCH`, `DELETE`, ...) with an optional JSON body. Not retried on another host
    /// once it may have been received (only a refused connection fails over).
    pub async fn send_with_bearer(
        &self,
        method: Method,
        path_and_query: &str,
        token: &str,
        json: Option<&Value>,
    ) -> Result<ApiResponse> {
        let retry = if method == Method::GET || method == Method::HEAD {
            Retry::Idempotent
        } else {
            Retry::OnlyIfNotSent
        };
        self.send(Request {
            method,
            path: path_and_query,
            body: json.map(|v| (JSON, v.to_string())),
            bearer: Some(token),
            retry,
        })
        .await
    }

    /// The host requests go to now, selecting one first if needed.
    pub async fn current_host(&self) -> Result<Url> {
        let (hosts, idx) = self.selected().await?;
        Ok(hosts[idx].clone())
    }

    /// Drops the current selection: the next request selects again (re-reading the discovery
    /// list when there is one).
    pub async fn reselect(&self) {
        let mut sel = self.inner.selection.lock().await;
        if !matches!(self.inner.source, HostSource::Fixed(_)) {
            sel.current = None;
        }
        sel.consecutive_failures = 0;
    }

    async fn selected(&self) -> Result<(Arc<Vec<Url>>, usize)> {
        let mut sel = self.inner.selection.lock().await;
        if let Some(idx) = sel.current {
            return Ok((sel.hosts.clone(), idx));
        }
        let span = tracing::info_span!("audius.select_host", source = ?self.inner.source);
        async {
            if let HostSource::Discovery(bootstrap) = &self.inner.source {
                sel.hosts = Arc::new(self.read_discovery_list(bootstrap).await?);
            }
            let idx = self.probe(&sel.hosts).await?;
            tracing::info!(host = %sel.hosts[idx], "selected Audius host");
            sel.current = Some(idx);
            sel.consecutive_failures = 0;
            Ok((sel.hosts.clone(), idx))
        }
        .instrument(span)
        .await
    }

    async fn read_discovery_list(&self, bootstrap: &Url) -> Result<Vec<Url>> {
        #[derive(serde::Deserialize)]
        struct List {
            data: Vec<Value>,
        }
        let answer = match self
            .attempt(bootstrap, &self.bare(reqwest::Method::GET))
            .await
        {
            Attempt::Answer(a) => a,
            Attempt::Failed { error, .. } => return Err(error),
        };
        if answer.status != 200 {
            return Err(Error::unavailable(
                format!(
                    "the discovery list at {bootstrap} answered HTTP {}",
                    answer.status.as_u16()
                ),
                Some(answer.status.as_u16()),
            ));
        }
        let list: List = answer.json()?;
        let mut hosts: Vec<Url> = Vec::new();
        for item in list.data {
            match item.as_str().map(Url::parse) {
                Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
                    if !hosts.contains(&u) && hosts.len() < defaults::MAX_DISCOVERED_HOSTS {
                        hosts.push(u);
                    }
                }
                _ => {
                    tracing::warn!(entry = %item, "ignoring a discovery list entry that is not an http(s) URL")
                }
            }
        }
        if hosts.is_empty() {
            return Err(Error::unavailable(
                format!("the discovery list at {bootstrap} names no usable host"),
                None,
            ));
        }
        tracing::debug!(count = hosts.len(), "read the discovery list");
        Ok(hosts)
    }

    /// Health-checks hosts a batch at a time; the first healthy to answer wins.
    async fn probe(&self, hosts: &[Url]) -> Result<usize> {
        for (batch_no, batch) in hosts.chunks(self.inner.probe_count).enumerate() {
            let mut checks: FuturesUnordered<_> = batch
                .iter()
                .enumerate()
                .map(|(i, host)| {
                    let idx = batch_no * self.inner.probe_count + i;
                    async move { (idx, self.healthy(host).await) }
                })
                .collect();
            while let Some((idx, healthy)) = checks.next().await {
                if healthy {
                    return Ok(idx);
                }
            }
        }
        Err(Error::unavailable(
            format!("no healthy Audius host among {}", hosts.len()),
            None,
        ))
    }

    async fn healthy(&self, host: &Url) -> bool {
        let url = join(host, "/health_check");
        let fut = async {
            let resp = self.inner.http.get(url.as_str()).send().await.ok()?;
            if !resp.status().is_success() {
                return Some(false);
            }
            let body = read_capped(resp, 64 * 1024).await.ok()?;
            let explicit_false = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/data/healthy").and_then(Value::as_bool))
                == Some(false);
            Some(!explicit_false)
        };
        let healthy = tokio::time::timeout(self.inner.health_timeout, fut)
            .await
            .ok()
            .flatten()
            .unwrap_or(false);
        tracing::debug!(%host, healthy, "health check");
        healthy
    }

    fn bare(&self, method: reqwest::Method) -> Request<'static> {
        Request {
            method,
            path: "",
            body: None,
            bearer: None,
            retry: Retry::Idempotent,
        }
    }

    async fn send(&self, request: Request<'_>) -> Result<ApiResponse> {
        let (hosts, start) = self.selected().await?;
        let attempts = hosts.len().min(self.inner.max_attempts);
        let mut last_error = None;
        for i in 0..attempts {
            let idx = (start + i) % hosts.len();
            let host = &hosts[idx];
            let url = join(host, request.path);
            match self.attempt(&url, &request).await {
                Attempt::Answer(answer) if answer.status.as_u16() >= 500 => {
                    let status = answer.status.as_u16();
                    tracing::warn!(%host, status, "Audius host failed; failing over");
                    last_error = Some(Error::unavailable(
                        format!("{host} answered HTTP {status}: {}", answer.error_message()),
                        Some(status),
                    ));
                    self.note_failure(&hosts).await;
                    if request.retry == Retry::OnlyIfNotSent {
                        break;
                    }
                }
                Attempt::Answer(mut answer) => {
                    answer.host = host.clone();
                    self.note_success(&hosts, idx).await;
                    return Ok(answer);
                }
                Attempt::Failed { error, sent } => {
                    tracing::warn!(%host, %error, "Audius host failed; failing over");
                    last_error = Some(error);
                    self.note_failure(&hosts).await;
                    if sent && request.retry == Retry::OnlyIfNotSent {
                        break;
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::unavailable("no host to try", None)))
    }

    async fn note_success(&self, hosts: &Arc<Vec<Url>>, idx: usize) {
        let mut sel = self.inner.selection.lock().await;
        if Arc::ptr_eq(&sel.hosts, hosts) {
            if sel.current != Some(idx) {
                tracing::info!(host = %hosts[idx], "now using this Audius host");
            }
            sel.current = Some(idx);
            sel.consecutive_failures = 0;
        }
    }

    async fn note_failure(&self, hosts: &Arc<Vec<Url>>) {
        let mut sel = self.inner.selection.lock().await;
        if !Arc::ptr_eq(&sel.hosts, hosts) {
            return;
        }
        sel.consecutive_failures += 1;
        if sel.consecutive_failures >= self.inner.reselect_after
            && !matches!(self.inner.source, HostSource::Fixed(_))
        {
            tracing::info!(
                failures = sel.consecutive_failures,
                "repeated failures; selecting an Audius host again"
            );
            sel.current = None;
            sel.consecutive_failures = 0;
        }
    }

    /// One request to one host, in an `audius_login.upstream` span (endpoint, host, status:
    /// never the path's ids or query, nor any header), counted in
    /// `audius_login_upstream_requests_total`.
    async fn attempt(&self, url: &Url, request: &Request<'_>) -> Attempt {
        let endpoint = if request.path.is_empty() {
            Endpoint::Discovery
        } else {
            Endpoint::of(request.path)
        };
        let span = tracing::debug_span!(
            "audius_login.upstream",
            endpoint = endpoint.label(),
            host = url.host_str().unwrap_or_default(),
            status = tracing::field::Empty,
        );
        let (attempt, result) = self
            .attempt_once(url, request)
            .instrument(span.clone())
            .await;
        if let Attempt::Answer(answer) = &attempt {
            span.record("status", answer.status.as_u16());
        }
        metrics::upstream_request(endpoint, result);
        attempt
    }

    /// [`attempt`](Self::attempt)'s work, and the `result` label of its outcome.
    async fn attempt_once(&self, url: &Url, request: &Request<'_>) -> (Attempt, &'static str) {
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url.as_str());
        if let Some(token) = request.bearer {
            builder = builder.bearer_auth(token);
        }
        if let Some((content_type, body)) = &request.body {
            builder = builder
                .header("content-type", *content_type)
                .body(body.clone());
        }
        let limit = self.inner.max_body_bytes;
        let fut = async {
            let resp = builder.send().await.map_err(|e| {
                let sent = !e.is_connect();
                // A connection that timed out is a connection failure: nothing was sent.
                let result = if e.is_connect() {
                    "connect_error"
                } else if e.is_timeout() {
                    "timeout"
                } else {
                    "transport_error"
                };
                (describe(e, url), sent, result)
            })?;
            let status = resp.status();
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_capped(resp, limit)
                .await
                .map_err(|e| (e, true, "body_error"))?;
            Ok::<_, (Error, bool, &'static str)>(ApiResponse {
                status,
                body,
                host: url.clone(),
                location,
            })
        };
        match tokio::time::timeout(self.inner.timeout, fut).await {
            Ok(Ok(answer)) => {
                let result = metrics::status_result(answer.status.as_u16());
                (Attempt::Answer(answer), result)
            }
            Ok(Err((error, sent, result))) => (Attempt::Failed { error, sent }, result),
            Err(_) => (
                Attempt::Failed {
                    error: Error::unavailable(
                        format!(
                            "{} timed out after {:?}",
                            without_query(url),
                            self.inner.timeout
                        ),
                        None,
                    ),
                    sent: true,
                },
                "timeout",
            ),
        }
    }
}

/// `host` + `path_and_query`, keeping any path prefix of the host.
fn join(host: &Url, path_and_query: &str) -> Url {
    if path_and_query.is_empty() {
        return host.clone();
    }
    let base = host.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}{path_and_query}")).unwrap_or_else(|_| host.clone())
}

/// The URL without its query, for messages: the query may carry a token.
fn without_query(url: &Url) -> Url {
    let mut shown = url.clone();
    shown.set_query(None);
    shown
}

/// A transport failure in words, without the URL's query (reqwest's own text names the whole
/// URL, token included).
fn describe(e: reqwest::Error, url: &Url) -> Error {
    let e = e.without_url();
    // A connection that timed out is a connection failure (nothing was sent), worded so.
    let what = if e.is_connect() {
        "could not be connected to".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        format!("failed ({msg})")
    };
    Error::unavailable(format!("{} {what}", without_query(url)), None)
}

/// Reads a body, refusing one over `limit` bytes without reading the rest.
async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Bytes> {
    let too_large = || Error::TooLarge {
        what: Limited::ResponseBody,
        limit,
    };
    if resp.content_length().is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                return Err(Error::unavailable(
                    format!("the answer was cut short: {}", e.without_url()),
                    None,
                ));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_prefix() {
        let host = Url::parse("http://h:1/prefix/").unwrap();
        assert_eq!(
            join(&host, "/v1/x?y=1").as_str(),
            "http://h:1/prefix/v1/x?y=1"
        );
        let host = Url::parse("http://h:1").unwrap();
        assert_eq!(
            join(&host, "/health_check").as_str(),
            "http://h:1/health_check"
        );
    }

    #[test]
    fn builder_refusals() {
        assert!(ApiClient::builder().hosts(vec![]).build().is_err());
        assert!(
            ApiClient::builder()
                .base_url(Url::parse("ftp://x").unwrap())
                .build()
                .is_err()
        );
    }

    #[test]
    fn error_message_shapes() {
        let r = |body: &str| ApiResponse {
            status: StatusCode::BAD_REQUEST,
            body: Bytes::from(body.to_owned()),
            host: Url::parse("http://h").unwrap(),
            location: None,
        };
        assert_eq!(
            r(r#"{"code":400,"error":"Invalid JWT token format"}"#).error_message(),
            "Invalid JWT token format"
        );
        assert_eq!(
            r(r#"{"error":"invalid_grant","error_description":"PKCE verification failed"}"#)
                .error_message(),
            "PKCE verification failed"
        );
        assert_eq!(r("").error_message(), "HTTP 400 with an empty body");
        assert_eq!(r("oops").error_message(), "oops");
    }
}
