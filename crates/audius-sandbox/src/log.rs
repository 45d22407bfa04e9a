//! The request log: what each host was asked, for assertions in tests.

use std::collections::VecDeque;

use serde::Serialize;
use time::OffsetDateTime;

/// Default number of requests kept: the last 10,000.
pub(crate) const DEFAULT_LOG_CAPACITY: usize = 10_000;

/// One request as a host received it. Requests to `/_sandbox/*` are not logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LoggedRequest {
    /// Order of arrival across all hosts, from 0 (never reused, even after a reset).
    pub seq: u64,
    /// Which host (0-based, as in [`host_urls`](crate::SandboxHandle::host_urls)).
    pub host: usize,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query, if any.
    pub query: Option<String>,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Whether an `Authorization` header was sent (its value is not kept).
    pub authorization: bool,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The fault applied, described (`status 503`, `drop after 100 ms`, ...), if any.
    pub fault: Option<String>,
    /// For `POST /v1/oauth/token`: the body's `grant_type` (`authorization_code`,
    /// `refresh_token`, ...), when it could be read. Codes, verifiers and tokens are never
    /// logged.
    pub grant_type: Option<String>,
    /// When it arrived (the system clock, not the sandbox's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A bounded log: the oldest entries fall off.
#[derive(Debug)]
pub(crate) struct RequestLog {
    entries: VecDeque<LoggedRequest>,
    capacity: usize,
    next_seq: u64,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
        }
    }

    pub(crate) fn push(&mut self, mut entry: LoggedRequest) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub(crate) fn all(&self) -> Vec<LoggedRequest> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

impl LoggedRequest {
    /// An entry for a request (its `seq` is set when logged).
    pub(crate) fn from_parts(
        host: usize,
        parts: &http::request::Parts,
        fault: Option<String>,
    ) -> Self {
        let header = |name: http::header::HeaderName| {
            parts.headers.get(name).map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(512)
                    .collect()
            })
        };
        Self {
            seq: 0,
            host,
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            origin: header(http::header::ORIGIN),
            user_agent: header(http::header::USER_AGENT),
            authorization: parts.headers.contains_key(http::header::AUTHORIZATION),
            content_type: header(http::header::CONTENT_TYPE),
            fault,
            grant_type: None,
            at: OffsetDateTime::now_utc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let mut log = RequestLog::new(2);
        let (parts, ()) = http::Request::get("/x?y=1")
            .body(())
            .unwrap_or_default()
            .into_parts();
        for _ in 0..3 {
            log.push(LoggedRequest::from_parts(1, &parts, None));
        }
        let all = log.all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].seq, 1);
        assert_eq!(all[1].query.as_deref(), Some("y=1"));
    }
}
