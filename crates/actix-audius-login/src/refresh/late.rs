//! The new tokens Audius gave while Redis failed, recorded there later ([`LatePublication`]),
//! and the tracking that lets [`AudiusLogin::drain`](crate::AudiusLogin::drain) finish the
//! work a stopped worker left ([`LateWork`]).
//!
//! A late publication runs in a task on the runtime of the worker whose request refreshed. A
//! worker stopped (a deploy's graceful stop) drops its runtime and the task with it: the task's
//! guard ([`Tracked`]) then hands its publication back to [`LateWork`], where `drain` (on the
//! runtime that outlives the workers, after `HttpServer::run` returned) takes it over and runs
//! it to its end. A publication run again from the start is harmless: publishing the same
//! generation twice stores it once, and its window ends at the same instant.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audius_login::defaults::REFRESH_TOKEN_LIFETIME;
use audius_login::oauth::OAuthClient;
use audius_login::replay::{LockOwner, Published, RefreshCoordination, ReplayCache};
use tokio::sync::Notify;

use super::tokens::{FamilyState, StoredTokens, send_revocation};

/// How many times a late publication that gave up tries to end its family in Redis before it
/// revokes the tokens at Audius (with the publication's back-off between tries).
const RETIRE_ATTEMPTS: u32 = 8;
/// The first pause of a late publication; it doubles up to [`LONGEST_PUBLISH_PAUSE`].
const FIRST_PUBLISH_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two attempts of the background publication.
const LONGEST_PUBLISH_PAUSE: Duration = Duration::from_secs(2);

/// The late publications of one [`AudiusLogin`](crate::AudiusLogin): how many run, and those
/// whose task was dropped before they finished.
#[derive(Default)]
pub(crate) struct LateWork {
    state: Mutex<LateState>,
    /// Told when a publication ends or is left behind.
    changed: Notify,
}

#[derive(Default)]
struct LateState {
    running: usize,
    left: Vec<LatePublication>,
}

impl std::fmt::Debug for LateWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("LateWork")
            .field("running", &state.running)
            .field("left", &state.left.len())
            .finish()
    }
}

impl LateWork {
    fn state(&self) -> std::sync::MutexGuard<'_, LateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `late` in a task of its own on the current runtime, tracked.
    pub(super) fn spawn(self: &Arc<Self>, late: LatePublication) {
        self.state().running += 1;
        let tracked = Tracked {
            work: Arc::clone(self),
            late: Some(late),
        };
        tokio::spawn(tracked.run());
    }

    /// Waits, for at most `within`, until no late publication runs, running on the current
    /// runtime those a stopped worker left; answers how many are unfinished (0: all done).
    pub(crate) async fn drain(self: &Arc<Self>, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let left = {
                let mut state = self.state();
                if state.running == 0 && state.left.is_empty() {
                    return 0;
                }
                std::mem::take(&mut state.left)
            };
            if !left.is_empty() {
                tracing::info!(
                    count = left.len(),
                    "taking over the recording of new Audius tokens left by a stopped worker"
                );
            }
            for late in left {
                self.spawn(late);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let state = self.state();
                let unfinished = state.running + state.left.len();
                if unfinished > 0 {
                    tracing::warn!(
                        unfinished,
                        "stopped waiting for new Audius tokens to be recorded in the shared state"
                    );
                }
                return unfinished;
            }
        }
    }
}

/// A late publication's task: when the task is dropped before the publication finished (its
/// runtime stopped), the publication goes back to [`LateWork`].
struct Tracked {
    work: Arc<LateWork>,
    late: Option<LatePublication>,
}

impl Tracked {
    async fn run(mut self) {
        if let Some(late) = &self.late {
            late.run().await;
        }
        self.late = None;
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut state = self.work.state();
        state.running = state.running.saturating_sub(1);
        if let Some(late) = self.late.take() {
            state.left.push(late);
        }
        drop(state);
        self.work.changed.notify_waiters();
    }
}

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
    async fn run(&self) {
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
