//! [`ApiClientBuilder`] and the [`HostSource`] it reads hosts from.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::{ApiClient, Inner, Selection};
use crate::defaults;
use crate::error::{ConfigError, Error, Result};
use crate::login_url::Environment;

/// Where the client sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostSource {
    /// One base URL, used as is (no health check, nothing to fail over to).
    Fixed(Url),
    /// A fixed list of hosts: probed, selected, failed over.
    List(Vec<Url>),
    /// A bootstrap URL answering `{"data": [hosts]}`: read, probed, selected, failed over, and
    /// read again after repeated failures.
    Discovery(Url),
}

/// Builder of an [`ApiClient`].
#[derive(Debug, Clone)]
pub struct ApiClientBuilder {
    source: HostSource,
    connect_timeout: Duration,
    timeout: Duration,
    health_timeout: Duration,
    max_body_bytes: usize,
    probe_count: usize,
    max_attempts: usize,
    reselect_after: u32,
    user_agent: String,
}

impl Default for ApiClientBuilder {
    fn default() -> Self {
        Self {
            source: HostSource::Fixed(Environment::Production.api()),
            connect_timeout: defaults::CONNECT_TIMEOUT,
            timeout: defaults::REQUEST_TIMEOUT,
            health_timeout: defaults::HEALTH_TIMEOUT,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            probe_count: defaults::PROBE_COUNT,
            max_attempts: defaults::MAX_ATTEMPTS,
            reselect_after: defaults::RESELECT_AFTER,
            user_agent: concat!("audius-login-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl ApiClientBuilder {
    /// Use one base URL. Default: `https://api.audius.co`.
    pub fn base_url(mut self, url: Url) -> Self {
        self.source = HostSource::Fixed(url);
        self
    }

    /// Use a fixed list of hosts, with health checks and fail-over. Default: a fixed base URL.
    pub fn hosts(mut self, hosts: Vec<Url>) -> Self {
        self.source = HostSource::List(hosts);
        self
    }

    /// Read the hosts from a discovery list (`GET {bootstrap}` answering `{"data": [hosts]}`).
    /// Default: a fixed base URL.
    pub fn discovery(mut self, bootstrap: Url) -> Self {
        self.source = HostSource::Discovery(bootstrap);
        self
    }

    /// Any [`HostSource`]. Default: `HostSource::Fixed("https://api.audius.co")`.
    pub fn source(mut self, source: HostSource) -> Self {
        self.source = source;
        self
    }

    /// Connect timeout of every call. Default: 3 s ([`defaults::CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Total timeout of one attempt, body included. Default: 10 s
    /// ([`defaults::REQUEST_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Timeout of a health check. Default: 2 s ([`defaults::HEALTH_TIMEOUT`]).
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// Cap on a response body; a longer body is an [`Error::TooLarge`]. Default: 1 MiB
    /// ([`defaults::MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// How many hosts are health-checked in parallel when selecting. Default: 3
    /// ([`defaults::PROBE_COUNT`]).
    pub fn probe_count(mut self, count: usize) -> Self {
        self.probe_count = count.max(1);
        self
    }

    /// How many hosts one request may try. Default: 3 ([`defaults::MAX_ATTEMPTS`]).
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Consecutive failed attempts after which a host is selected again (and the discovery
    /// list re-read). Default: 3 ([`defaults::RESELECT_AFTER`]).
    pub fn reselect_after(mut self, failures: u32) -> Self {
        self.reselect_after = failures.max(1);
        self
    }

    /// The `User-Agent` sent. Default: `audius-login-rs/<version>`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Builds the client; fails on an empty host list, a non-http(s) URL or a TLS setup error.
    pub fn build(self) -> Result<ApiClient> {
        let settings = self.clone();
        let urls: Vec<&Url> = match &self.source {
            HostSource::Fixed(u) | HostSource::Discovery(u) => vec![u],
            HostSource::List(list) => list.iter().collect(),
        };
        if urls.is_empty() {
            return Err(ConfigError::new("hosts", "the host list is empty").into());
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !matches!(u.scheme(), "http" | "https"))
        {
            return Err(ConfigError::new("hosts", format!("{bad} is not an http(s) URL")).into());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| {
                Error::from(ConfigError::new("http_client", format!("HTTP client: {e}")))
            })?;
        let hosts = match &self.source {
            HostSource::Fixed(u) => vec![u.clone()],
            HostSource::List(list) => list.clone(),
            HostSource::Discovery(_) => Vec::new(),
        };
        let current = matches!(self.source, HostSource::Fixed(_)).then_some(0);
        Ok(ApiClient {
            inner: Arc::new(Inner {
                settings,
                http,
                source: self.source,
                timeout: self.timeout,
                health_timeout: self.health_timeout,
                max_body_bytes: self.max_body_bytes,
                probe_count: self.probe_count,
                max_attempts: self.max_attempts,
                reselect_after: self.reselect_after,
                selection: tokio::sync::Mutex::new(Selection {
                    hosts: Arc::new(hosts),
                    current,
                    consecutive_failures: 0,
                }),
            }),
        })
    }
}
