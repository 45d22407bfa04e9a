//! [`GuardedStore`]: a timeout on every store call, and the store's failures recorded as
//! outages of the request being served.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};

use super::{State, Ttl};
use crate::defaults;

/// What a [`GuardedStore`] recorded about a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreOutage {
    /// The store operation: `load`, `save`, `update`, `update_ttl` or `delete`.
    pub operation: &'static str,
    /// `true` when the call did not finish within the timeout.
    pub timed_out: bool,
    /// What happened, in words (the store's error, or the timeout).
    pub message: String,
}

impl fmt::Display for StoreOutage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the session store is unavailable ({}): {}",
            self.operation, self.message
        )
    }
}

impl std::error::Error for StoreOutage {}

thread_local! {
    /// The outage slot of the request whose future is being polled on this thread, if any.
    static CURRENT: RefCell<Option<Rc<RefCell<Option<StoreOutage>>>>> = const { RefCell::new(None) };
}

/// Puts back the slot that was current before, even on unwind.
struct Restore(Option<Rc<RefCell<Option<StoreOutage>>>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `f` with `slot` as the current request's outage slot.
pub(super) fn within<T>(slot: &Rc<RefCell<Option<StoreOutage>>>, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(Rc::clone(slot)));
    let _restore = Restore(previous);
    f()
}

/// Records an outage for the request being served
/// (when a [`SessionStoreGuard`](super::SessionStoreGuard) serves it).
fn record(outage: &StoreOutage) {
    CURRENT.with(|c| {
        if let Some(slot) = c.borrow().as_ref() {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(outage.clone());
            }
        }
    });
}

/// A future polled with a request's outage slot current: what the store calls inside it
/// record lands in that slot, whatever other requests the thread interleaves.
pub(super) struct Scoped<F> {
    pub(super) inner: Pin<Box<F>>,
    pub(super) slot: Rc<RefCell<Option<StoreOutage>>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = Rc::clone(&this.slot);
        within(&slot, || this.inner.as_mut().poll(cx))
    }
}

/// A [`SessionStore`] wrapper that bounds every call with a timeout and records the store's
/// failures as outages, for [`SessionStoreGuard`](super::SessionStoreGuard) to answer `503`. See
/// the
/// [module docs](super).
///
/// Outages are: a call that does not finish within [`timeout`](Self::timeout), and (unless
/// [`errors_are_outages`](Self::errors_are_outages) is off) an error of the store itself:
/// `LoadError::Other`, `SaveError::Other`, `UpdateError::Other`, and any `update_ttl` or
/// `delete` error. (De)serialisation errors are never outages. Every outage is logged at
/// `error` level with its cause.
#[derive(Clone)]
pub struct GuardedStore<S> {
    inner: S,
    timeout: Duration,
    errors_are_outages: bool,
}

impl<S> fmt::Debug for GuardedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStore")
            .field("store", &std::any::type_name::<S>())
            .field("timeout", &self.timeout)
            .field("errors_are_outages", &self.errors_are_outages)
            .finish()
    }
}

impl<S: SessionStore> GuardedStore<S> {
    /// Wraps `store` with the defaults: 2 s per call, store errors are outages.
    pub fn new(store: S) -> Self {
        Self {
            inner: store,
            timeout: defaults::STORE_TIMEOUT,
            errors_are_outages: true,
        }
    }

    /// The bound on every store call. Default: 2 s. Keep it well
    /// under your proxy's and clients' timeouts; a zero timeout fails every call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether an error of the store itself (not a (de)serialisation error) is an outage.
    /// Default: `true`, right for a networked store such as Redis. The cookie store has no
    /// backend to lose: its only such error is a session too large for a cookie (a bug of the
    /// app, best left a `500`), so set `false` for it.
    pub fn errors_are_outages(mut self, yes: bool) -> Self {
        self.errors_are_outages = yes;
        self
    }

    /// Runs one store call within the timeout; `Err(outage)` on a timeout.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = T>,
    ) -> Result<T, anyhow::Error> {
        match actix_web::rt::time::timeout(self.timeout, call).await {
            Ok(done) => Ok(done),
            Err(_) => Err(self.outage(
                operation,
                true,
                format!("no answer within {:?}", self.timeout),
            )),
        }
    }

    /// Records and logs an outage; the error actix-session gets.
    fn outage(&self, operation: &'static str, timed_out: bool, message: String) -> anyhow::Error {
        let outage = StoreOutage {
            operation,
            timed_out,
            message,
        };
        tracing::error!(
            operation,
            timed_out,
            error = %outage.message,
            "the session store is unavailable"
        );
        record(&outage);
        anyhow::Error::new(outage)
    }

    /// An error of the store: an outage when so configured, else passed on.
    fn store_error(&self, operation: &'static str, e: anyhow::Error) -> anyhow::Error {
        if self.errors_are_outages {
            self.outage(operation, false, format!("{e:#}"))
        } else {
            e
        }
    }
}

impl<S: SessionStore> SessionStore for GuardedStore<S> {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        match self.bounded("load", self.inner.load(session_key)).await {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(LoadError::Other(e))) => Err(LoadError::Other(self.store_error("load", e))),
            Ok(Err(e)) => Err(e),
            Err(timeout) => Err(LoadError::Other(timeout)),
        }
    }

    async fn save(&self, session_state: State, ttl: &Ttl) -> Result<SessionKey, SaveError> {
        match self
            .bounded("save", self.inner.save(session_state, ttl))
            .await
        {
            Ok(Ok(key)) => Ok(key),
            Ok(Err(SaveError::Other(e))) => Err(SaveError::Other(self.store_error("save", e))),
            Ok(Err(e)) => Err(e),
            Err(timeout) => Err(SaveError::Other(timeout)),
        }
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: State,
        ttl: &Ttl,
    ) -> Result<SessionKey, UpdateError> {
        match self
            .bounded("update", self.inner.update(session_key, session_state, ttl))
            .await
        {
            Ok(Ok(key)) => Ok(key),
            Ok(Err(UpdateError::Other(e))) => {
                Err(UpdateError::Other(self.store_error("update", e)))
            }
            Ok(Err(e)) => Err(e),
            Err(timeout) => Err(UpdateError::Other(timeout)),
        }
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Ttl) -> Result<(), anyhow::Error> {
        match self
            .bounded("update_ttl", self.inner.update_ttl(session_key, ttl))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.store_error("update_ttl", e)),
            Err(timeout) => Err(timeout),
        }
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        match self.bounded("delete", self.inner.delete(session_key)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.store_error("delete", e)),
            Err(timeout) => Err(timeout),
        }
    }
}
