//! The new tokens Audius gave while Redis failed, recorded there later ([`LatePublication`]),
//! in the background (see [`super::background`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use audius_login::defaults::REFRESH_TOKEN_LIFETIME;
use audius_login::oauth::OAuthClient;
use audius_login::replay::{LockOwner, Published, RefreshCoordination, ReplayCache};

use super::tokens::{FamilyState, StoredTokens, send_revocation};

/// How many times a late publication that gave up tries to end its family in Redis before it
/// revokes the tokens at Audius (with the publication's back-off between tries).
const RETIRE_ATTEMPTS: u32 = 8;
/// The first pause of a late publication; it doubles up to [`LONGEST_PUBLISH_PAUSE`].
const FIRST_PUBLISH_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two attempts of the background publication.
const LONGEST_PUBLISH_PAUSE: Duration = Duration::from_secs(2);

/// New tokens Audius gave while Redis failed, to be recorded there later (see
/// [`LatePublication::run`]).
pub(super) struct LatePublication {
    pub(super) cache: Arc<dyn ReplayCache>,
    pub(super) oauth: OAuthClient,
    /// This process' state of the session: a logout here ends the publication.
    pub(super) family: Arc<FamilyState>,
    pub(super) tokens: StoredTokens,
    pub(super) text: String,
    pub(super) owner: LockOwner,
    pub(super) ttl: Duration,
    /// The end of the in-doubt window.
    pub(super) give_up_at: Instant,
}

impl LatePublication {
    /// Tries to publish the tokens until the end of the in-doubt window, with backoff, then
    /// releases the lock. A logout in this process meanwhile retires the family in Redis
    /// instead (its tokens were revoked by the logout, and are again here). At the end of the
    /// window, other instances sign the session out: this process does too (the family is
    /// dead here) and revokes the tokens at Audius, which ends the family there, so no copy of
    /// the session's cookie is served by them afterwards.
    pub(super) async fn run(self) {
        let Some(shared) = self.cache.refresh_coordination() else {
            return;
        };
        let family_id = &self.tokens.family;
        let mut pause = FIRST_PUBLISH_PAUSE;
        while Instant::now() + pause < self.give_up_at {
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2).min(LONGEST_PUBLISH_PAUSE);
            if self.family.latest().dead {
                match shared.retire(family_id, REFRESH_TOKEN_LIFETIME).await {
                    Ok(_) => {
                        tracing::info!(
                            "the session logged out while its new Audius tokens were unrecorded; retired them in the shared state"
                        );
                        release(shared, family_id, &self.owner).await;
                        send_revocation(&self.oauth, &self.tokens).await;
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "the shared state is still unavailable");
                        continue;
                    }
                }
            }
            match shared
                .publish(family_id, self.tokens.generation, &self.text, self.ttl)
                .await
            {
                Ok(Published::Dead) => {
                    tracing::info!(
                        "the session logged out while its new Audius tokens were unrecorded; revoking them"
                    );
                    self.family.mark_dead();
                    release(shared, family_id, &self.owner).await;
                    send_revocation(&self.oauth, &self.tokens).await;
                    return;
                }
                Ok(answer) => {
                    tracing::debug!(
                        ?answer,
                        "recorded the new Audius tokens in the shared state, late"
                    );
                    release(shared, family_id, &self.owner).await;
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "the shared state is still unavailable"),
            }
        }
        // The window is over: other instances sign the session out. So does this process. The
        // tokens are revoked at Audius only once the family is marked dead in Redis too: a
        // publication that landed unheard (its answer lost) may have been adopted by another
        // instance, which must learn the family is dead before its tokens stop working, never
        // serve revoked tokens as live (review 6). Without Redis, they are left to expire:
        // nobody else knows them, and this process no longer uses them.
        self.family.mark_dead();
        let mut pause = FIRST_PUBLISH_PAUSE;
        for _ in 0..RETIRE_ATTEMPTS {
            match shared.retire(family_id, REFRESH_TOKEN_LIFETIME).await {
                Ok(_) => {
                    tracing::warn!(
                        "could not record the new Audius tokens in the shared state within the \
                         in-doubt window; the session is signed out and its tokens revoked"
                    );
                    send_revocation(&self.oauth, &self.tokens).await;
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "the shared state is still unavailable"),
            }
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2).min(LONGEST_PUBLISH_PAUSE);
        }
        tracing::warn!(
            "could not record the new Audius tokens, nor end their family, in the shared state \
             within the in-doubt window; the session is signed out here, its tokens left unused"
        );
    }
}

/// Releases the shared lock if `owner` still holds it (a failure is logged: the lock expires).
/// The in-flight marker stays.
pub(super) async fn release(shared: &dyn RefreshCoordination, family: &str, owner: &LockOwner) {
    match shared.release(family, owner).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "the shared refresh lock had expired (or was taken over) before its release"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not release the shared refresh lock; it expires on its own")
        }
    }
}
