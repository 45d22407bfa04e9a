//! The code flow's background work, and [`AudiusLogin::drain`](crate::AudiusLogin::drain)'s
//! wait for it.
//!
//! Each refresh (from the request that needs it to Audius' answer recorded, in this process and
//! in Redis) and each late publication (new tokens that Redis failed to record, retried for the
//! in-doubt window) runs on a runtime of the [`AudiusLogin`](crate::AudiusLogin)'s own, one
//! thread started with the first refresh, not on the worker's that asked: a worker stopped by a
//! graceful stop, or cut by its shutdown timeout, drops its requests but not this work (found by
//! review 8: a refresh in flight at the shutdown timeout was lost). The request awaits its
//! refresh there. `drain`, once `HttpServer::run` has returned, waits until no such work runs.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The background runtime (started with the first refresh) and the count of what runs on it.
#[derive(Default)]
pub(crate) struct Background {
    /// `None` when it could not be started: the work then runs on the caller's runtime.
    runtime: OnceLock<Option<Runtime>>,
    tracker: Arc<Tracker>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("started", &self.runtime.get().is_some())
            .field("running", &self.tracker.running())
            .finish()
    }
}

impl Background {
    /// Runs `work` on the background runtime, counted until it ends (or is dropped).
    pub(super) fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let counted = self.tracker.count(work);
        match self.runtime() {
            Some(runtime) => runtime.spawn(counted),
            None => tokio::spawn(counted),
        }
    }

    /// The count, for work that starts more work where it runs.
    pub(super) fn tracker(&self) -> Arc<Tracker> {
        Arc::clone(&self.tracker)
    }

    fn runtime(&self) -> Option<&Runtime> {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("audius-login-refresh")
                    .enable_all()
                    .build()
                    .inspect_err(|e| {
                        tracing::warn!(
                            error = %e,
                            "could not start the token refreshes' own runtime; they run on the \
                             workers' (a worker stopped mid-refresh cuts it)"
                        );
                    })
                    .ok()
            })
            .as_ref()
    }

    /// Waits, for at most `within` (a duration too long to add to now: without a bound), until
    /// no background work runs; answers how much still runs (0: none).
    pub(crate) async fn drain(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now().checked_add(within);
        loop {
            let changed = self.tracker.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let running = self.tracker.running();
            if running == 0 {
                return 0;
            }
            let Some(deadline) = deadline else {
                changed.await;
                continue;
            };
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let running = self.tracker.running();
                if running > 0 {
                    tracing::warn!(
                        running,
                        "stopped waiting for the Audius token refreshes and recordings in flight"
                    );
                }
                return running;
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is refused inside another runtime (the last clone of
        // an `AudiusLogin` may go there): stop it without waiting.
        if let Some(Some(runtime)) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// How much background work runs, and a signal when that changes.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    running: Mutex<usize>,
    changed: Notify,
}

impl Tracker {
    fn running(&self) -> usize {
        *self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `work`, counted from now until it ends or is dropped.
    pub(super) fn count<F: Future>(
        self: &Arc<Self>,
        work: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let counted = Counted(Arc::clone(self));
        async move {
            let _counted = counted;
            work.await
        }
    }
}

/// One piece of counted work: uncounted when dropped.
struct Counted(Arc<Tracker>);

impl Drop for Counted {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|p| p.into_inner());
        *running = running.saturating_sub(1);
        drop(running);
        self.0.changed.notify_waiters();
    }
}
