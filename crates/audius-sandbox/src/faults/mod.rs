//! Fault injection: per host and per route, make the sandbox slow, failing, or broken (the
//! rules are on [`Fault`]).

use std::time::Duration;

use serde::Serialize;

use crate::error::SandboxError;

mod answer;
mod spec;

pub(crate) use answer::{DropConnection, fault_response};
pub(crate) use spec::FaultSpec;

/// Default size of an [`FaultAction::Oversize`] body: 2 MiB (over the core client's 1 MiB cap).
pub(crate) const DEFAULT_OVERSIZE_BYTES: usize = 2 * 1024 * 1024;
/// Largest oversize body: 64 MiB.
pub(crate) const MAX_OVERSIZE_BYTES: usize = 64 * 1024 * 1024;
/// Longest latency: 10 minutes.
pub(crate) const MAX_LATENCY: Duration = Duration::from_secs(600);
/// Longest route text.
pub(crate) const MAX_ROUTE_LEN: usize = 256;

/// What a fault does to the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum FaultAction {
    /// Answer normally (use with a latency).
    Pass,
    /// Answer this status (400 to 599) with a JSON error body.
    Status(u16),
    /// Close the connection without answering.
    Drop,
    /// Answer `200` with a body that is not JSON.
    Garbage,
    /// Answer `200` with a `Content-Length` larger than the body sent, then close.
    Truncate,
    /// Answer `200` with valid-looking JSON of this many bytes.
    Oversize(usize),
}

/// A fault: wait `latency`, then do `action`; for every matching request, or the next `times`.
///
/// Fault injection makes the sandbox slow, failing, or broken, per host and per route.
///
/// A **route** is one of:
///
/// - `/` : exactly the path `/` (the legacy discovery list), nothing else;
/// - `*` : every path;
/// - any other path starting with `/` : that path and every path below it, segment-wise
///   (`/v1/users` matches `/v1/users`, `/v1/users/eYorL` and `/v1/users/verify_token`, not
///   `/v1/users_extra`).
///
/// When several routes match a request, the longest wins (`*` is the shortest). Paths under
/// `/_sandbox/` are never faulted and cannot be named. Queries are ignored.
///
/// A fault is a latency (waited before anything else) and an [`FaultAction`]; it applies to
/// every matching request, or only to the next `times` of them.
///
/// ```
/// use std::time::Duration;
/// use audius_sandbox::{Fault, FaultAction};
///
/// let slow_then_503 = Fault::status(503).with_latency(Duration::from_millis(200)).times(2);
/// assert_eq!(slow_then_503.action, FaultAction::Status(503));
/// ```
///
/// `POST /_sandbox/faults` takes the same fault as JSON (one object, or a list of them):
/// `{"route": "/v1/users", "action": "status", "status": 503, "latency_ms": 200, "times": 2}`
/// is the fault above on the route `/v1/users`; `GET /_sandbox/faults` answers in that form.
///
/// | action | JSON | what the client sees |
/// |---|---|---|
/// | [`FaultAction::Pass`] | `"none"` | the normal answer (after the latency) |
/// | [`FaultAction::Status`] | `"status"` + `"status": 503` | that status (400-599) with `{"code": s, "error": "..."}`; 429 adds `Retry-After: 1` |
/// | [`FaultAction::Drop`] | `"drop"` | the connection closed without any answer |
/// | [`FaultAction::Garbage`] | `"garbage"` | `200` with an HTML body (not JSON) |
/// | [`FaultAction::Truncate`] | `"truncate"` | `200`, `Content-Length` promising more than is sent, then the connection closes |
/// | [`FaultAction::Oversize`] | `"oversize"` + optional `"bytes"` | `200` with valid-looking JSON of that many bytes (default 2 MiB) |
///
/// Build it with the constructors, or as a literal:
/// `Fault { action: FaultAction::Status(503), ..Fault::default() }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Waited before answering (or dropping). Default: none.
    pub latency: Duration,
    /// What replaces the answer. Default: [`FaultAction::Pass`].
    pub action: FaultAction,
    /// How many requests it applies to before it removes itself; `None` (default): all.
    pub times: Option<u32>,
}

impl Default for Fault {
    fn default() -> Self {
        Self::new(FaultAction::Pass)
    }
}

impl Fault {
    /// A fault with this action, no latency, applying to every request.
    pub fn new(action: FaultAction) -> Self {
        Self {
            latency: Duration::ZERO,
            action,
            times: None,
        }
    }

    /// Answer this status (400 to 599) with `{"code": status, "error": "..."}`.
    pub fn status(status: u16) -> Self {
        Self::new(FaultAction::Status(status))
    }

    /// Close the connection without answering.
    pub fn drop_connection() -> Self {
        Self::new(FaultAction::Drop)
    }

    /// Answer `200` with an HTML body.
    pub fn garbage() -> Self {
        Self::new(FaultAction::Garbage)
    }

    /// Promise a longer body than is sent, then close the connection.
    pub fn truncate() -> Self {
        Self::new(FaultAction::Truncate)
    }

    /// Answer 2 MiB of valid-looking JSON (over the core client's 1 MiB cap).
    pub fn oversize() -> Self {
        Self::new(FaultAction::Oversize(DEFAULT_OVERSIZE_BYTES))
    }

    /// Answer `bytes` of valid-looking JSON.
    pub fn oversize_bytes(bytes: usize) -> Self {
        Self::new(FaultAction::Oversize(bytes))
    }

    /// Only wait, then answer normally. Past a client's timeout this is a hang.
    pub fn latency(latency: Duration) -> Self {
        Self::new(FaultAction::Pass).with_latency(latency)
    }

    /// Adds a latency before the action.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Applies to the next `times` matching requests only.
    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    /// Checks the limits: status 400-599, latency at most 10 minutes, oversize body at most
    /// 64 MiB, `times` at least 1.
    pub fn validate(&self) -> Result<(), SandboxError> {
        if self.latency > MAX_LATENCY {
            return Err(SandboxError::Fault(format!(
                "latency over the limit of {MAX_LATENCY:?}"
            )));
        }
        match self.action {
            FaultAction::Status(s) if !(400..=599).contains(&s) => {
                return Err(SandboxError::Fault(format!(
                    "status {s}: a fault status is 400 to 599"
                )));
            }
            FaultAction::Oversize(n) if n > MAX_OVERSIZE_BYTES => {
                return Err(SandboxError::Fault(format!(
                    "oversize body of {n} bytes: the limit is {MAX_OVERSIZE_BYTES}"
                )));
            }
            _ => {}
        }
        if self.times == Some(0) {
            return Err(SandboxError::Fault("times must be at least 1".into()));
        }
        Ok(())
    }

    /// A short description, as shown in the request log (`status 503`, `drop`, ...).
    pub fn describe(&self) -> String {
        let action = match self.action {
            FaultAction::Pass => "none".to_owned(),
            FaultAction::Status(s) => format!("status {s}"),
            FaultAction::Drop => "drop".to_owned(),
            FaultAction::Garbage => "garbage".to_owned(),
            FaultAction::Truncate => "truncate".to_owned(),
            FaultAction::Oversize(n) => format!("oversize {n}"),
        };
        if self.latency.is_zero() {
            action
        } else {
            format!("{action} after {} ms", self.latency.as_millis())
        }
    }
}

/// A validated route (see [`Fault`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FaultRoute(String);

impl FaultRoute {
    /// Checks a route: `*`, or a path starting with `/`, at most 256 characters, without `?`,
    /// `#` or whitespace, not under `/_sandbox`. A trailing `/` (other than the route `/`) is
    /// removed.
    pub(crate) fn parse(route: &str) -> Result<Self, SandboxError> {
        if route == "*" {
            return Ok(Self(route.to_owned()));
        }
        let bad = |why: &str| Err(SandboxError::Fault(format!("route {route:?}: {why}")));
        if !route.starts_with('/') {
            return bad("a route is \"*\" or a path starting with /");
        }
        if route.len() > MAX_ROUTE_LEN {
            return bad("too long");
        }
        if route
            .chars()
            .any(|c| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
        {
            return bad("a route is a path, without query, fragment or spaces");
        }
        let trimmed = if route.len() > 1 {
            route.trim_end_matches('/')
        } else {
            route
        };
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        if trimmed == "/_sandbox" || trimmed.starts_with("/_sandbox/") {
            return bad("/_sandbox is never faulted");
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The route's text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a request path falls under this route.
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self.0.as_str() {
            "*" => true,
            "/" => path == "/",
            route => {
                path == route
                    || path
                        .strip_prefix(route)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }

    /// Longer routes are more specific; `*` is the least.
    fn specificity(&self) -> usize {
        if self.0 == "*" { 0 } else { self.0.len() }
    }
}

/// One host's faults.
#[derive(Debug, Default, Clone)]
pub(crate) struct FaultTable {
    entries: Vec<(FaultRoute, Fault)>,
}

impl FaultTable {
    /// Sets (or replaces) the fault of a route.
    pub(crate) fn set(&mut self, route: FaultRoute, fault: Fault) {
        self.entries.retain(|(r, _)| *r != route);
        self.entries.push((route, fault));
    }

    pub(crate) fn remove(&mut self, route: &FaultRoute) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(r, _)| r != route);
        before != self.entries.len()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn list(&self) -> Vec<(FaultRoute, Fault)> {
        self.entries.clone()
    }

    /// The fault for a request, counting it against `times`.
    pub(crate) fn take(&mut self, path: &str) -> Option<Fault> {
        let idx = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (r, _))| r.matches(path))
            .max_by_key(|(_, (r, _))| r.specificity())
            .map(|(i, _)| i)?;
        let fault = self.entries[idx].1;
        if let Some(times) = &mut self.entries[idx].1.times {
            *times -= 1;
            if *times == 0 {
                self.entries.remove(idx);
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |s| FaultRoute::parse(s).unwrap();
        assert!(r("/").matches("/"));
        assert!(!r("/").matches("/v1/users"));
        assert!(r("*").matches("/anything"));
        assert!(r("/v1/users").matches("/v1/users/verify_token"));
        assert!(r("/v1/users/").matches("/v1/users"));
        assert!(!r("/v1/users").matches("/v1/users_x"));
        for bad in ["", "v1", "/a?b", "/_sandbox", "/_sandbox/faults", "/a b"] {
            assert!(FaultRoute::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn most_specific_wins_and_times_count_down() {
        let mut t = FaultTable::default();
        t.set(FaultRoute::parse("*").unwrap(), Fault::garbage());
        t.set(
            FaultRoute::parse("/v1/users").unwrap(),
            Fault::status(503).times(2),
        );
        assert_eq!(
            t.take("/v1/users/x").unwrap().action,
            FaultAction::Status(503)
        );
        assert_eq!(
            t.take("/v1/users/x").unwrap().action,
            FaultAction::Status(503)
        );
        assert_eq!(t.take("/v1/users/x").unwrap().action, FaultAction::Garbage);
        assert_eq!(t.take("/").unwrap().action, FaultAction::Garbage);
        t.clear();
        assert!(t.take("/").is_none());
    }
}
