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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The background runtime (started with the first piece of work) and the count of what runs
/// on it.
#[derive(Default)]
pub(crate) struct Background {
    /// `None` until started; a start that failed is tried again with the next piece of work
    /// (meanwhile the work runs on the caller's runtime).
    runtime: Mutex<Option<Runtime>>,
    tracker: Arc<Tracker>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field(
                "started",
                &self.runtime.lock().is_ok_and(|runtime| runtime.is_some()),
            )
            .field("running", &self.tracker.running())
            .finish()
    }
}

impl Background {
    /// Runs `work` on the background runtime, counted until it ends (or is dropped).
    /// `None` (logged) only when the runtime cannot be started and none is current.
    pub(super) fn spawn<F>(&self, work: F) -> Option<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let counted = self.tracker.count(work);
        match self.handle() {
            Some(handle) => Some(handle.spawn(counted)),
            None => {
                tracing::error!("no runtime to run the Audius token work on; it is dropped");
                None
            }
        }
    }

    /// The count, for work that starts more work where it runs.
    pub(super) fn tracker(&self) -> Arc<Tracker> {
        Arc::clone(&self.tracker)
    }

    /// The background runtime's handle, started if it is not yet; else (it cannot be started:
    /// logged) the current runtime's, if there is one.
    fn handle(&self) -> Option<Handle> {
        let mut runtime = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        if runtime.is_none() {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("audius-login-refresh")
                .enable_all()
                .build()
            {
                Ok(started) => *runtime = Some(started),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not start the token refreshes' own runtime; this piece of work runs \
                     on the worker's (a worker stopped meanwhile cuts it)"
                ),
            }
        }
        runtime
            .as_ref()
            .map(|runtime| runtime.handle().clone())
            .or_else(|| Handle::try_current().ok())
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
        let runtime = self.runtime.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(runtime) = runtime.take() {
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
