//! What this crate records through the [`metrics`](https://docs.rs/metrics/0.24) facade: every
//! name and label in one place. Nothing is recorded unless the application installs a recorder
//! (an exporter); without one, each call is a load and a branch. Label values come from fixed
//! sets only: never a user id, a token, a state or a URL.
//!
//! | Name | Type | Labels |
//! |---|---|---|
//! | `audius_login_verify_seconds` | histogram | `verifier` = `api` \| `local` |
//! | `audius_login_upstream_requests_total` | counter | `endpoint`, `result` |
//! | `audius_login_replay_cache_entries` | gauge | — |

use std::time::Duration;

/// Verification time, per verifier.
pub(crate) const VERIFY_SECONDS: &str = "audius_login_verify_seconds";
/// Requests sent to Audius, per endpoint and result.
pub(crate) const UPSTREAM_REQUESTS: &str = "audius_login_upstream_requests_total";
/// Live entries of the in-memory replay cache.
pub(crate) const REPLAY_CACHE_ENTRIES: &str = "audius_login_replay_cache_entries";

/// Records how long a verification took (`verifier`: `"api"` or `"local"`).
pub(crate) fn verify_time(verifier: &'static str, elapsed: Duration) {
    metrics::histogram!(VERIFY_SECONDS, "verifier" => verifier).record(elapsed.as_secs_f64());
}

/// Records one request sent to Audius (one per host tried).
pub(crate) fn upstream_request(endpoint: Endpoint, result: &'static str) {
    metrics::counter!(
        UPSTREAM_REQUESTS,
        "endpoint" => endpoint.label(),
        "result" => result
    )
    .increment(1);
}

/// Records the number of live entries of an in-memory replay cache.
pub(crate) fn replay_cache_entries(entries: usize) {
    #[allow(clippy::cast_precision_loss)] // Exact up to 2^53 entries.
    metrics::gauge!(REPLAY_CACHE_ENTRIES).set(entries as f64);
}

/// The `result` label of an answer: `ok` (2xx), or its status class (`3xx`, `4xx`, `5xx`).
pub(crate) fn status_result(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other_status",
    }
}

/// The Audius endpoint a request goes to: a small fixed set, told from the path (its ids and
/// query never reach a label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET /v1/users/verify_token`.
    VerifyToken,
    /// `GET /v1/users/{id}/managers`.
    Managers,
    /// `GET /v1/users/{id}`.
    User,
    /// `POST /v1/oauth/token` (code exchange and refresh).
    OauthToken,
    /// `POST /v1/oauth/revoke`.
    OauthRevoke,
    /// `GET /v1/me`.
    Me,
    /// The discovery list read when selecting a host.
    Discovery,
    /// Anything else (the app's own calls through the client).
    Other,
}

impl Endpoint {
    /// The endpoint of a path (with or without a query).
    pub(crate) fn of(path_and_query: &str) -> Self {
        let path = path_and_query
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        if path == "/v1/users/verify_token" {
            return Self::VerifyToken;
        }
        if path == "/v1/me" {
            return Self::Me;
        }
        if path == "/v1/oauth/token" {
            return Self::OauthToken;
        }
        if path == "/v1/oauth/revoke" {
            return Self::OauthRevoke;
        }
        if let Some(rest) = path.strip_prefix("/v1/users/") {
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                [id] if !id.is_empty() => return Self::User,
                [id, "managers"] if !id.is_empty() => return Self::Managers,
                _ => {}
            }
        }
        Self::Other
    }

    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::VerifyToken => "verify_token",
            Self::Managers => "managers",
            Self::User => "user",
            Self::OauthToken => "oauth_token",
            Self::OauthRevoke => "oauth_revoke",
            Self::Me => "me",
            Self::Discovery => "discovery",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_paths() {
        let cases = [
            (
                "/v1/users/verify_token?token=abc.def.ghi",
                Endpoint::VerifyToken,
            ),
            ("/v1/users/7eP5n", Endpoint::User),
            ("/v1/users/7eP5n/managers", Endpoint::Managers),
            ("/v1/users/7eP5n/managers?x=1", Endpoint::Managers),
            ("/v1/users/7eP5n/tracks", Endpoint::Other),
            ("/v1/users/", Endpoint::Other),
            ("/v1/me", Endpoint::Me),
            ("/v1/oauth/token", Endpoint::OauthToken),
            ("/v1/oauth/revoke", Endpoint::OauthRevoke),
            ("/v1/tracks/trending", Endpoint::Other),
            ("", Endpoint::Other),
        ];
        for (path, endpoint) in cases {
            assert_eq!(Endpoint::of(path), endpoint, "{path}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_result(200), "ok");
        assert_eq!(status_result(204), "ok");
        assert_eq!(status_result(302), "3xx");
        assert_eq!(status_result(404), "4xx");
        assert_eq!(status_result(503), "5xx");
        assert_eq!(status_result(101), "other_status");
    }
}
