//! [`ReconnectingStore`]: a session store built again after it failed.

use std::fmt;
use std::future::Future;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use futures_util::future::LocalBoxFuture;

use super::{State, Ttl};

/// The future a [`ReconnectingStore`]'s `connect` function returns, boxed.
type ConnectFuture<S> = LocalBoxFuture<'static, Result<S, anyhow::Error>>;

type ConnectFn<S> = dyn Fn() -> ConnectFuture<S> + Send + Sync;

struct Reconnecting<S> {
    /// The store in use and its generation; `None` once it failed (the next call reconnects).
    current: std::sync::Mutex<(u64, Option<std::sync::Arc<S>>)>,
    connect: Box<ConnectFn<S>>,
    /// Set while one call is reconnecting: the others fail at once instead of piling up.
    connecting: std::sync::atomic::AtomicBool,
}

/// A session store that is built again (a new connection) after it failed: for stores whose
/// own client does not come back promptly when the backend does, such as actix-session's
/// `RedisSessionStore` (its `ConnectionManager` waits a minute or two between attempts; see
/// [Redis](super#redis)). Wrap it in a [`GuardedStore`](super::GuardedStore) for the timeouts and
/// the `503`.
///
/// After a call fails with an error of the store itself (not a (de)serialisation error), or is
/// abandoned before it finished (a [`GuardedStore`](super::GuardedStore) timeout), the store is
/// dropped and the next
/// call runs `connect` first. Only one call reconnects at a time; the calls meanwhile fail at
/// once with "reconnecting" (outages, for the guard). Cheap to clone (shared state); `Send`
/// when the store is `Send + Sync`, so it can be built once and cloned into the `HttpServer`
/// factory. The store itself need not be `Clone` (it is kept behind an `Arc`).
///
/// With Redis (actix-session's `redis-session` feature), see [Redis](super#redis); with any
/// store:
///
/// ```
/// use std::time::Duration;
/// use actix_audius_login::store::{GuardedStore, ReconnectingStore};
/// use actix_session::storage::CookieSessionStore;
///
/// let store = ReconnectingStore::new(CookieSessionStore::default(), || async {
///     Ok(CookieSessionStore::default())
/// });
/// let store = GuardedStore::new(store).timeout(Duration::from_secs(1));
/// # let _ = store;
/// ```
pub struct ReconnectingStore<S> {
    shared: std::sync::Arc<Reconnecting<S>>,
}

impl<S> Clone for ReconnectingStore<S> {
    fn clone(&self) -> Self {
        Self {
            shared: std::sync::Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for ReconnectingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (generation, connected) = self
            .shared
            .current
            .lock()
            .map(|c| (c.0, c.1.is_some()))
            .unwrap_or((0, false));
        f.debug_struct("ReconnectingStore")
            .field("store", &std::any::type_name::<S>())
            .field("generation", &generation)
            .field("connected", &connected)
            .finish()
    }
}

/// Marks the store failed when a call is dropped before it finished (a timeout above).
struct Abandoned<'a, S> {
    store: &'a ReconnectingStore<S>,
    generation: u64,
    armed: bool,
}

impl<S> Drop for Abandoned<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            self.store.failed(self.generation);
        }
    }
}

impl<S> ReconnectingStore<S> {
    /// Uses `store` until it fails, then `connect` to build a new one (on the next call).
    pub fn new<F, Fut>(store: S, connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, anyhow::Error>> + 'static,
    {
        Self::with_current(Some(std::sync::Arc::new(store)), connect)
    }

    /// Builds the store with `connect` on the first call (an app can start while the backend
    /// is down).
    pub fn lazy<F, Fut>(connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, anyhow::Error>> + 'static,
    {
        Self::with_current(None, connect)
    }

    fn with_current<F, Fut>(store: Option<std::sync::Arc<S>>, connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, anyhow::Error>> + 'static,
    {
        Self {
            shared: std::sync::Arc::new(Reconnecting {
                current: std::sync::Mutex::new((0, store)),
                connect: Box::new(move || -> ConnectFuture<S> { Box::pin(connect()) }),
                connecting: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Forgets the store of `generation` (if still current): the next call reconnects.
    fn failed(&self, generation: u64) {
        if let Ok(mut current) = self.shared.current.lock()
            && current.0 == generation
            && current.1.take().is_some()
        {
            tracing::warn!(
                generation,
                "session store failed; reconnecting on the next call"
            );
        }
    }

    /// The store to use, reconnecting first when needed.
    async fn store(&self) -> Result<(u64, std::sync::Arc<S>), anyhow::Error> {
        use std::sync::atomic::Ordering;
        if let Ok(current) = self.shared.current.lock()
            && let Some(store) = &current.1
        {
            return Ok((current.0, std::sync::Arc::clone(store)));
        }
        if self.shared.connecting.swap(true, Ordering::AcqRel) {
            return Err(anyhow::anyhow!("reconnecting to the session store"));
        }
        /// Clears the flag however the attempt ends (also when abandoned).
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::Release);
            }
        }
        let _done = Done(&self.shared.connecting);
        let store = std::sync::Arc::new(
            (self.shared.connect)()
                .await
                .map_err(|e| e.context("cannot reconnect to the session store"))?,
        );
        let mut current = self
            .shared
            .current
            .lock()
            .map_err(|_| anyhow::anyhow!("session store state poisoned"))?;
        current.0 += 1;
        current.1 = Some(std::sync::Arc::clone(&store));
        tracing::info!(generation = current.0, "reconnected to the session store");
        Ok((current.0, store))
    }

    /// Runs one call on the current store; `failed` tells which results mean the store failed.
    async fn run<T, E, Fut>(
        &self,
        call: impl FnOnce(std::sync::Arc<S>) -> Fut,
        failed: impl FnOnce(&Result<T, E>) -> bool,
        wrap: impl FnOnce(anyhow::Error) -> E,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let (generation, store) = self.store().await.map_err(wrap)?;
        let mut guard = Abandoned {
            store: self,
            generation,
            armed: true,
        };
        let result = call(store).await;
        guard.armed = false;
        if failed(&result) {
            self.failed(generation);
        }
        result
    }
}

impl<S: SessionStore> SessionStore for ReconnectingStore<S> {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        self.run(
            |s| async move { s.load(session_key).await },
            |r| matches!(r, Err(LoadError::Other(_))),
            LoadError::Other,
        )
        .await
    }

    async fn save(&self, session_state: State, ttl: &Ttl) -> Result<SessionKey, SaveError> {
        self.run(
            |s| async move { s.save(session_state, ttl).await },
            |r| matches!(r, Err(SaveError::Other(_))),
            SaveError::Other,
        )
        .await
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: State,
        ttl: &Ttl,
    ) -> Result<SessionKey, UpdateError> {
        self.run(
            |s| async move { s.update(session_key, session_state, ttl).await },
            |r| matches!(r, Err(UpdateError::Other(_))),
            UpdateError::Other,
        )
        .await
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Ttl) -> Result<(), anyhow::Error> {
        self.run(
            |s| async move { s.update_ttl(session_key, ttl).await },
            Result::is_err,
            |e| e,
        )
        .await
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        self.run(
            |s| async move { s.delete(session_key).await },
            Result::is_err,
            |e| e,
        )
        .await
    }
}
