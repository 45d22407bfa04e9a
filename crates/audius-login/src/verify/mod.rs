//! Verifying a token: through the Audius API, or locally. Both give the same [`VerifiedProfile`].
//!
//! ```no_run
//! use std::time::Duration;
//! use audius_login::{ApiClient, ApiVerifier, LocalVerifier, Verifier, VerifyOptions};
//!
//! # async fn run(token: &str) -> Result<(), audius_login::Error> {
//! let client = ApiClient::builder().build()?;
//! let options = VerifyOptions::default().max_age(Some(Duration::from_secs(300)));
//!
//! // Ask Audius (`GET /v1/users/verify_token`).
//! let api = ApiVerifier::new(client.clone()).options(options.clone());
//! // Or recover the signer here and compare it with the user's wallet (cached lookups).
//! let local = LocalVerifier::new(client).options(options);
//!
//! let profile = local.verify(token).await?;
//! println!("{} (@{}) verified artist: {}", profile.name, profile.handle, profile.verified);
//! # Ok(()) }
//! ```
//!
//! # Whose word is the profile?
//!
//! An Audius token is signed by the user's *own* wallet key, so every claim in it is the user's
//! word, and a user who extracts their key can sign any `verified`, `name` or `email` they like;
//! the `verify_token` endpoint only checks the signature and that the wallet belongs to the user.
//! So by default ([`ProfileSource::UserRecord`]) both verifiers take `handle`, `name`,
//! `verified` and the picture from Audius' user record (`GET /v1/users/{id}`, cached), and only
//! `email` (which exists nowhere else) from the token. [`ProfileSource::TokenClaims`] takes
//! everything from the token, as the Audius SDK does.
//!
//! # Cheap checks first
//!
//! Both verifiers parse the token and recover its signer locally ([`PreparedToken`]), then
//! judge its age and audience ([`VerifyOptions::check_claims`]) *before* any network call: a
//! malformed, stale or foreign token costs no request to Audius. Only then does the local
//! verifier look the user up (cached, unknown users and manager lists too: see
//! [`UserDirectory`]), and the API verifier call `verify_token`.
//!
//! # Age, audience and replay
//!
//! Tokens never expire on their own. [`VerifyOptions::max_age`] refuses a token whose `iat` is
//! older (with [`VerifyOptions::clock_skew`] of grace), against an injectable clock.
//! [`VerifyOptions::api_key`] refuses a token approved for another app (its `apiKey` claim).
//! Refusing a second use of the same token is the job of a
//! [`ReplayCache`](crate::replay::ReplayCache), keyed by [`PreparedToken::replay_key`]: the
//! token's identity, the same for every spelling the parser accepts.

mod api;
mod budget;
mod directory;
mod local;
mod options;
mod profile;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};

pub use api::ApiVerifier;
pub use budget::UpstreamBudget;
pub use directory::UserDirectory;
pub use local::LocalVerifier;
pub use options::{PreparedToken, VerifyOptions};
pub use profile::{ApiUser, ManagerGrant, ProfileSource, VerifiedProfile};

/// Verifies a token and says who the user is.
#[async_trait]
pub trait Verifier: Send + Sync + fmt::Debug {
    /// The verified profile, or why the token is refused.
    async fn verify(&self, token: &str) -> Result<VerifiedProfile>;

    /// The verified profile of a token already parsed and recovered
    /// ([`PreparedToken::parse`]), so that it is not parsed twice. Default:
    /// [`verify`](Self::verify) of its text. The built-in verifiers use the recovered signer
    /// and check the claims (age, audience) before any network call.
    async fn verify_prepared(&self, token: &PreparedToken) -> Result<VerifiedProfile> {
        self.verify(token.as_str()).await
    }
}

#[async_trait]
impl<T: Verifier + ?Sized> Verifier for Arc<T> {
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        (**self).verify(token).await
    }

    async fn verify_prepared(&self, token: &PreparedToken) -> Result<VerifiedProfile> {
        (**self).verify_prepared(token).await
    }
}

pub(crate) fn unexpected_or_unavailable(status: u16, answer: &crate::ApiResponse) -> Error {
    match status {
        429 => Error::unavailable(
            format!(
                "Audius is rate limiting requests: {}",
                answer.error_message()
            ),
            Some(429),
        ),
        // The client fails over on these and reports them as unavailable; an answer read
        // directly (`ApiVerifier::interpret`) means the same.
        500..=599 => Error::unavailable(
            format!("Audius answered HTTP {status}: {}", answer.error_message()),
            Some(status),
        ),
        300..=399 => Error::UpstreamUnexpected {
            status,
            message: format!(
                "redirect to {} not followed",
                answer.location.as_deref().unwrap_or("(no location)")
            ),
        },
        _ => Error::UpstreamUnexpected {
            status,
            message: answer.error_message(),
        },
    }
}

/// Parses `token` for the verifier named `verifier`, logging a refusal.
fn parse_logged(verifier: &'static str, token: &str, max_bytes: usize) -> Result<PreparedToken> {
    PreparedToken::parse(token, max_bytes).inspect_err(|e| {
        tracing::info!(verifier, kind = %e.kind(), error = %e, "token refused");
    })
}

/// Runs one verification of `prepared` by the verifier named `verifier` in its span, timed
/// (`audius_login_verify_seconds`) and its outcome logged.
async fn observed(
    verifier: &'static str,
    prepared: &PreparedToken,
    verification: impl std::future::Future<Output = Result<VerifiedProfile>>,
) -> Result<VerifiedProfile> {
    use tracing::Instrument as _;
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "audius.verify",
        verifier,
        user_id = prepared.claims().user_id.get()
    );
    let result = verification.instrument(span.clone()).await;
    crate::metrics::verify_time(verifier, started.elapsed());
    log_outcome(&span, &result);
    result
}

fn log_outcome(span: &tracing::Span, result: &Result<VerifiedProfile>) {
    let _entered = span.enter();
    match result {
        Ok(p) => tracing::debug!(user_id = p.user_id.get(), "token verified"),
        Err(e) => tracing::info!(kind = %e.kind(), error = %e, "token refused"),
    }
}
