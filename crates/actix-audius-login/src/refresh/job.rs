//! One refresh (a [`Job`], run in a task of its own): in this process alone, or coordinated
//! across instances through the replay cache's shared state (its lock, in-flight marker and
//! newest tokens), with the bounds on every wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use audius_login::ErrorKind;
use audius_login::defaults::REFRESH_TOKEN_LIFETIME;
use audius_login::oauth::OAuthClient;
use audius_login::replay::{BeginRefresh, LockOwner, Published, RefreshCoordination, ReplayCache};

use super::background::Tracker;
use super::late::{LatePublication, release};
use super::tokens::{FamilyState, RefreshFailure, StoredTokens, send_revocation};
use crate::config::Config;

/// The first pause of a request waiting for another instance's refresh; it doubles up to
/// [`LONGEST_PAUSE`].
pub(super) const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two looks at the shared state while another instance refreshes.
pub(super) const LONGEST_PAUSE: Duration = Duration::from_millis(200);
/// What the holder keeps of its lock's time to live beyond its refresh and its publication.
pub(super) const LOCK_MARGIN: Duration = Duration::from_millis(500);
/// The in-doubt window, in locks' times to live: how long a holder whose answer from Audius
/// could not be published keeps trying in the background, and how long other instances answer
/// 503 (rather than present the token again) before they sign the session out.
pub(super) const IN_DOUBT_LOCKS: u32 = 10;

/// How long a coordinated refresh may hold the shared lock, and the lock's time to live.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// The bound on the refresh at Audius (the API client's call budget).
    refresh: Duration,
    /// The lock's time to live: the refresh, then two shared-state calls, and a second.
    lock_ttl: Duration,
    /// One shared-state call's bound.
    store_timeout: Duration,
    /// The holder's in-doubt window ([`IN_DOUBT_LOCKS`] locks' times to live).
    in_doubt: Duration,
}

impl Bounds {
    pub(super) fn of(config: &Config, shared: &dyn RefreshCoordination) -> Self {
        let refresh = config.oauth.api().call_budget();
        let store_timeout = shared.call_timeout();
        let lock_ttl = refresh
            .saturating_add(store_timeout.saturating_mul(2))
            .saturating_add(Duration::from_secs(1));
        Self {
            refresh,
            lock_ttl,
            store_timeout,
            in_doubt: lock_ttl.saturating_mul(IN_DOUBT_LOCKS),
        }
    }
}

/// How long a request may wait for a refresh of its session by another request: without
/// coordination, one refresh at Audius (and a second); with it, a shared lock's whole time to
/// live and one more call (a holder that crashed blocks the family until its lock expires).
pub(super) fn wait_bound(config: &Config, shared: Option<&dyn RefreshCoordination>) -> Duration {
    match shared {
        Some(shared) => Bounds::of(config, shared)
            .lock_ttl
            .saturating_add(shared.call_timeout()),
        None => config
            .oauth
            .api()
            .call_budget()
            .saturating_add(Duration::from_secs(1)),
    }
}

pub(super) fn shared_state_unavailable(message: String) -> RefreshFailure {
    RefreshFailure::Failed(audius_login::Error::StoreUnavailable {
        store: "shared refresh state",
        message,
    })
}

/// The tokens another instance recorded, checked: they must be of the session's family and
/// user and of the generation announced (anything else is refused, never adopted).
pub(super) fn shared_tokens(
    seen: &StoredTokens,
    generation: u64,
    text: &str,
) -> Result<StoredTokens, RefreshFailure> {
    let tokens: StoredTokens = serde_json::from_str(text).map_err(|e| {
        shared_state_unavailable(format!("unreadable tokens in the shared state: {e}"))
    })?;
    if tokens.family != seen.family
        || tokens.user_id != seen.user_id
        || tokens.generation != generation
    {
        return Err(shared_state_unavailable(
            "the shared state holds tokens of another session or generation".into(),
        ));
    }
    Ok(tokens)
}

/// Whether Audius surely did not rotate the tokens on this failure: it answered "slow down"
/// (429, sent before any processing), or the request never left (no host could be connected
/// to, a connection that timed out included: the API client sends a refresh to a second host
/// only when the first did not receive it, so the last failure being a connection failure means
/// no host received it). Any other failure may have followed a rotation: a timeout, a lost
/// answer, any 5xx (a gateway's 502, 503, 504 or 52x after Audius rotated, or Audius failing
/// after it saved the rotation). (The API client's error carries no "sent" flag; its words for
/// a failed connection are the signal, pinned by
/// `a_refused_connection_is_known_not_to_have_rotated`.)
pub(super) fn surely_not_rotated(e: &audius_login::Error) -> bool {
    match e {
        audius_login::Error::UpstreamUnavailable {
            status: Some(429), ..
        } => true,
        audius_login::Error::UpstreamUnavailable {
            status: None,
            message,
        } => message.ends_with(" could not be connected to") || message == "no host to try",
        _ => false,
    }
}

/// One refresh, owned (it runs in a task of its own; see [`refresh`]).
pub(super) struct Job {
    pub(super) oauth: OAuthClient,
    pub(super) cache: Arc<dyn ReplayCache>,
    pub(super) clock: Arc<dyn audius_login::clock::Clock>,
    /// With a shared state that coordinates refreshes: its bounds.
    pub(super) bounds: Option<Bounds>,
    pub(super) family: Arc<FamilyState>,
    pub(super) seen: StoredTokens,
    pub(super) give_up_at: Instant,
    /// Where a publication that must go on in the background is counted.
    pub(super) background: Arc<Tracker>,
}

impl Job {
    pub(super) async fn run(self) -> Result<StoredTokens, RefreshFailure> {
        if let Some(bounds) = self.bounds {
            return self.coordinated(bounds).await;
        }
        let seen = &self.seen;
        tracing::debug!(
            generation = seen.generation,
            "refreshing the Audius access token"
        );
        match self.oauth.refresh(&seen.refresh).await {
            Ok(set) => {
                let fresh = seen.rotated(set, self.clock.now());
                self.family.latest().tokens = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) if e.kind() == ErrorKind::InvalidGrant => {
                tracing::info!(error = %e, "Audius refused the refresh token; the user must log in again");
                self.family.mark_dead();
                Err(RefreshFailure::Revoked(e.to_string()))
            }
            Err(e) => Err(RefreshFailure::Failed(e)),
        }
    }

    /// The refresh when the replay cache coordinates refreshes across instances (the process
    /// lock is held).
    pub(super) async fn coordinated(self, bounds: Bounds) -> Result<StoredTokens, RefreshFailure> {
        let Some(shared) = self.cache.refresh_coordination() else {
            return Err(shared_state_unavailable(
                "the replay cache stopped coordinating refreshes".into(),
            ));
        };
        let (family, seen) = (&self.family, &self.seen);
        let owner = LockOwner::random();
        let mut pause = FIRST_PAUSE;
        let asked = loop {
            // Before `begin` is sent: the lock cannot have been set earlier, so a deadline
            // counted from here ends before the lock expires, however late the answer comes.
            let asked = Instant::now();
            match shared
                .begin_marked(
                    &seen.family,
                    seen.generation,
                    &owner,
                    bounds.lock_ttl,
                    bounds.in_doubt,
                )
                .await
            {
                Ok(BeginRefresh::Locked) => break asked,
                Ok(BeginRefresh::Newer { generation, tokens }) => {
                    let newer = shared_tokens(seen, generation, &tokens)?;
                    tracing::debug!(
                        generation,
                        "another instance refreshed the Audius tokens; using theirs"
                    );
                    return Ok(family.record(newer));
                }
                Ok(BeginRefresh::Dead) => {
                    family.mark_dead();
                    return Err(RefreshFailure::Revoked(
                        "the Audius tokens of this session were revoked".into(),
                    ));
                }
                Ok(BeginRefresh::InDoubt) => {
                    return Err(shared_state_unavailable(
                        "another instance sent this session's refresh token to Audius and has \
                         not recorded the answer yet"
                            .into(),
                    ));
                }
                Ok(BeginRefresh::Busy) => {
                    if Instant::now() + pause >= self.give_up_at {
                        return Err(shared_state_unavailable(format!(
                            "another instance's refresh of this session did not finish within {:?}",
                            bounds.lock_ttl
                        )));
                    }
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2).min(LONGEST_PAUSE);
                }
                Err(e) => {
                    // The lock (and marker) may have been taken even so (an answer that came
                    // too late): give them back, if Redis hears us. Nothing was sent to Audius.
                    let _ = shared.abandon(&seen.family, &owner).await;
                    return Err(RefreshFailure::Failed(e));
                }
            }
        };

        // The lock is ours until `asked + lock_ttl` at the latest; the refresh must end in
        // time to publish before then.
        let deadline = asked
            .checked_add(bounds.lock_ttl)
            .and_then(|t| t.checked_sub(bounds.store_timeout))
            .and_then(|t| t.checked_sub(LOCK_MARGIN))
            .unwrap_or(asked);
        if deadline.saturating_duration_since(Instant::now()) < bounds.refresh {
            // Too late (this process stalled after sending `begin`): the token is not sent.
            abandon(shared, &seen.family, &owner).await;
            return Err(shared_state_unavailable(
                "the shared refresh lock came too late to refresh within it".into(),
            ));
        }
        tracing::debug!(
            generation = seen.generation,
            "refreshing the Audius access token (coordinated)"
        );
        let sent = Instant::now();
        let outcome =
            tokio::time::timeout_at(deadline.into(), self.oauth.refresh(&seen.refresh)).await;
        let result = match outcome {
            Ok(Ok(set)) => {
                let fresh = seen.rotated(set, self.clock.now());
                // No longer than the new refresh token lives (it was issued after `sent`).
                let ttl = REFRESH_TOKEN_LIFETIME.saturating_sub(sent.elapsed());
                return self
                    .published(shared, bounds, asked, fresh, owner, ttl)
                    .await;
            }
            Ok(Err(e)) if e.kind() == ErrorKind::InvalidGrant => {
                tracing::info!(error = %e, "Audius refused the refresh token; the user must log in again");
                family.mark_dead();
                if let Err(dead) = shared.retire(&seen.family, REFRESH_TOKEN_LIFETIME).await {
                    tracing::warn!(error = %dead, "could not mark the Audius tokens dead in the shared state");
                }
                Err(RefreshFailure::Revoked(e.to_string()))
            }
            Ok(Err(e)) if surely_not_rotated(&e) => {
                abandon(shared, &seen.family, &owner).await;
                return Err(RefreshFailure::Failed(e));
            }
            // The token may have been used up at Audius: the in-flight marker stays, and other
            // instances will not present it again (503, then signed out past the window).
            Ok(Err(e)) => Err(RefreshFailure::Failed(e)),
            Err(_) => Err(RefreshFailure::Failed(
                audius_login::Error::UpstreamUnavailable {
                    message: format!(
                        "the token refresh did not finish within the shared lock ({:?})",
                        bounds.lock_ttl
                    ),
                    status: None,
                },
            )),
        };
        release(shared, &seen.family, &owner).await;
        result
    }

    /// Publishes the tokens the lock's holder obtained, then releases the lock.
    pub(super) async fn published(
        &self,
        shared: &dyn RefreshCoordination,
        bounds: Bounds,
        asked: Instant,
        fresh: StoredTokens,
        owner: LockOwner,
        ttl: Duration,
    ) -> Result<StoredTokens, RefreshFailure> {
        let (family, seen) = (&self.family, &self.seen);
        let text = match serde_json::to_string(&fresh) {
            Ok(text) => text,
            Err(e) => {
                release(shared, &seen.family, &owner).await;
                return Err(shared_state_unavailable(format!(
                    "cannot write the tokens: {e}"
                )));
            }
        };
        let answer = shared
            .publish(&fresh.family, fresh.generation, &text, ttl)
            .await;
        match answer {
            Ok(Published::Stored) => {
                release(shared, &seen.family, &owner).await;
                Ok(family.record(fresh))
            }
            Ok(Published::Dead) => {
                // Logged out while this refresh ran: the new tokens are revoked too.
                release(shared, &seen.family, &owner).await;
                tracing::info!(
                    "the session logged out during its token refresh; revoking the new tokens"
                );
                family.mark_dead();
                send_revocation(&self.oauth, &fresh).await;
                Err(RefreshFailure::Revoked(
                    "the Audius tokens of this session were revoked".into(),
                ))
            }
            Ok(Published::Superseded { generation }) => {
                // Another holder recorded this generation or a newer one (only possible when
                // the shared state lost its data): those are left alone, and this session
                // keeps the tokens Audius just gave it.
                release(shared, &seen.family, &owner).await;
                tracing::warn!(
                    recorded = generation,
                    ours = fresh.generation,
                    "the shared state already holds newer Audius tokens; not overwritten"
                );
                Ok(family.record(fresh))
            }
            Err(e) => {
                // Audius rotated the tokens, and Redis failed: this request answers 503 like
                // any other Redis failure during a refresh, but the new tokens are not dropped
                // (that would leave the session a used refresh token). This process remembers
                // them (the session's next request here adopts them), and a background task
                // tries to record them in Redis for the whole in-doubt window (meanwhile the
                // in-flight marker keeps other instances from presenting the used token), so
                // that other instances adopt them.
                tracing::warn!(error = %e, "could not record the new Audius tokens in the shared state; retrying in the background");
                family.record(fresh.clone());
                let publication = LatePublication {
                    cache: self.cache.clone(),
                    oauth: self.oauth.clone(),
                    family: family.clone(),
                    tokens: fresh,
                    text,
                    owner,
                    ttl,
                    give_up_at: asked + bounds.in_doubt,
                };
                // On the background runtime, where this refresh runs (see `background`).
                tokio::spawn(self.background.count(publication.run()));
                Err(RefreshFailure::Failed(e))
            }
        }
    }
}

/// Releases the shared lock and clears the in-flight marker: the token was not sent to Audius
/// (or surely not used). A failure is logged (the marker then stays: safe).
pub(super) async fn abandon(shared: &dyn RefreshCoordination, family: &str, owner: &LockOwner) {
    if let Err(e) = shared.abandon(family, owner).await {
        tracing::warn!(error = %e, "could not clear the shared refresh lock and marker");
    }
}
