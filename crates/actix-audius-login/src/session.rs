//! What this crate keeps in the actix-session session, under its own keys.

use actix_session::Session;
use audius_login::State;
use audius_login::oauth::PkceVerifier;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::Config;
use crate::error::{AudiusLoginError, LoginErrorKind};
use crate::user::AudiusUser;

/// Session key of the signed-in user.
pub(crate) const USER_KEY: &str = "audius.user";
/// Session key of the pending login attempts.
pub(crate) const PENDING_KEY: &str = "audius.pending";
/// Session key of the code flow's tokens ([`crate::oauth::StoredTokens`]).
pub(crate) const TOKENS_KEY: &str = "audius.tokens";

/// One login attempt: its state, where to go after, when it started (Unix seconds), and for the
/// code flow its PKCE verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    #[serde(rename = "s")]
    pub(crate) state: State,
    #[serde(rename = "r")]
    pub(crate) return_to: String,
    #[serde(rename = "t")]
    pub(crate) started_at: i64,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub(crate) verifier: Option<PkceVerifier>,
}

fn session_error(e: impl std::fmt::Display) -> AudiusLoginError {
    AudiusLoginError::new(
        LoginErrorKind::SessionUnavailable,
        format!("The session could not be updated: {e}"),
    )
}

/// The pending attempts; an unreadable entry is dropped (and logged).
pub(crate) fn pending(session: &Session) -> Vec<PendingLogin> {
    match session.get::<Vec<PendingLogin>>(PENDING_KEY) {
        Ok(list) => list.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable pending Audius logins in the session; starting afresh");
            session.remove(PENDING_KEY);
            Vec::new()
        }
    }
}

/// Records a new attempt, dropping expired ones and the oldest beyond the limit.
pub(crate) fn push_pending(
    session: &Session,
    config: &Config,
    attempt: PendingLogin,
) -> Result<(), AudiusLoginError> {
    let now = config.clock.now().unix_timestamp();
    let ttl = config.attempt_ttl.as_secs() as i64;
    let mut list: Vec<PendingLogin> = pending(session)
        .into_iter()
        .filter(|p| now - p.started_at <= ttl)
        .collect();
    list.push(attempt);
    let excess = list.len().saturating_sub(config.max_pending_attempts);
    list.drain(..excess);
    session.insert(PENDING_KEY, list).map_err(session_error)
}

/// Takes the attempt whose state matches `state` (compared in constant time) out of the
/// session, whatever happens next: a state is used once.
pub(crate) fn take_pending(
    session: &Session,
    config: &Config,
    state: &str,
) -> Result<PendingLogin, AudiusLoginError> {
    let mut list = pending(session);
    // Compare against every entry, so the time taken does not depend on which one matches.
    let mut found = None;
    for (i, p) in list.iter().enumerate() {
        if p.state.matches(state) && found.is_none() {
            found = Some(i);
        }
    }
    let Some(index) = found else {
        return Err(AudiusLoginError::new(
            LoginErrorKind::StateMismatch,
            "This login does not match one started in this browser (or it was already used). Please log in again.",
        ));
    };
    let attempt = list.remove(index);
    if list.is_empty() {
        session.remove(PENDING_KEY);
    } else {
        session.insert(PENDING_KEY, &list).map_err(session_error)?;
    }
    let age = config.clock.now().unix_timestamp() - attempt.started_at;
    if age > config.attempt_ttl.as_secs() as i64 || age < -60 {
        return Err(AudiusLoginError::new(
            LoginErrorKind::StateExpired,
            "This login attempt expired. Please log in again.",
        ));
    }
    Ok(attempt)
}

/// Signs the user in: a new session id, no pending attempts, the user stored.
pub(crate) fn sign_in(session: &Session, user: &AudiusUser) -> Result<(), AudiusLoginError> {
    session.renew();
    session.remove(PENDING_KEY);
    session.insert(USER_KEY, user).map_err(session_error)
}

/// The signed-in user, if any and still within the login deadline. An unreadable or expired
/// entry is removed.
pub(crate) fn read_user(session: &Session, config: Option<&Config>) -> Option<AudiusUser> {
    let user = match session.get::<AudiusUser>(USER_KEY) {
        Ok(user) => user?,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable Audius user in the session; treating as signed out");
            session.remove(USER_KEY);
            return None;
        }
    };
    if let Some((deadline, now)) = config.and_then(|c| c.login_deadline.map(|d| (d, c.clock.now())))
        && now - user.signed_in_at > deadline
    {
        session.remove(USER_KEY);
        return None;
    }
    Some(user)
}

/// When the user signed in, for a fresh `AudiusUser`.
pub(crate) fn now(config: &Config) -> OffsetDateTime {
    config.clock.now()
}
