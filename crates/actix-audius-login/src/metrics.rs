//! What the login routes record through the [`metrics`](https://docs.rs/metrics/0.24) facade,
//! and the callback's tracing span: every name and label in one place. Recorded on the
//! callback only, never per authenticated request. Label values come from fixed sets: never a
//! user id, a token, a state or a URL. (The core crate records verification time, upstream
//! requests and the in-memory replay cache's size.)

use tracing::Span;

use crate::config::{Config, Flow};
use crate::error::AudiusLoginError;
use crate::user::AudiusUser;

/// Callbacks, per outcome (`signed_in`, or the refusal's error code).
pub(crate) const LOGINS: &str = "audius_login_logins_total";
/// Logins refused by the replay cache, per reason (`replayed`, `full`).
pub(crate) const REPLAY_REFUSALS: &str = "audius_login_replay_refusals_total";

/// The `audius_login.callback` span of one callback: `flow` and `verifier` now, `outcome` and
/// `user_id` when known. Nothing the browser sent (state, token, code) is a field.
pub(crate) fn callback_span(c: &Config) -> Span {
    let (flow, verifier) = match c.flow {
        Flow::AuthorizationCode => ("code", "oauth"),
        _ => ("implicit", c.verifier_label),
    };
    tracing::info_span!(
        "audius_login.callback",
        flow,
        verifier,
        outcome = tracing::field::Empty,
        user_id = tracing::field::Empty,
    )
}

/// Records a callback's outcome: in its span, in `audius_login_logins_total`, and for a refusal
/// by the replay cache in `audius_login_replay_refusals_total`.
pub(crate) fn login_outcome(span: &Span, outcome: Result<&AudiusUser, &AudiusLoginError>) {
    let label = match outcome {
        Ok(user) => {
            span.record("user_id", user.id);
            "signed_in"
        }
        Err(e) => {
            match e.code() {
                "replayed_token" => replay_refused("replayed"),
                "replay_cache_full" => replay_refused("full"),
                _ => {}
            }
            e.code()
        }
    };
    span.record("outcome", label);
    metrics::counter!(LOGINS, "outcome" => label).increment(1);
}

/// Records a login refused by the replay cache: `replayed` (a token or a consumed state seen
/// before) or `full` (the in-memory cache full of live entries).
pub(crate) fn replay_refused(reason: &'static str) {
    metrics::counter!(REPLAY_REFUSALS, "reason" => reason).increment(1);
}
