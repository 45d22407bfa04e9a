//! The sandbox server: the builder, the running handle, and the accept loop with fault
//! injection in front of the routes.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use audius_login::clock::{Clock, SystemClock};
use audius_login::{Environment, ProfilePicture, UserId};
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use url::Url;

use crate::error::SandboxError;
use crate::faults::{Fault, FaultAction, FaultRoute, FaultTable};
use crate::log::{DEFAULT_LOG_CAPACITY, LoggedRequest, RequestLog};
use crate::mint::TokenOverrides;
use crate::oauth::{CodeStore, DeveloperApp, TokenStore};
use crate::token_api::{INVALID_REQUEST_BODY, MAX_FAVORITES, logged_grant_type, oauth_error};
use crate::users::{SandboxUser, SandboxUsers};

/// Default address: `127.0.0.1:0` (a free port).
pub const DEFAULT_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
/// Most hosts one sandbox runs.
pub const MAX_HOSTS: usize = 64;
/// Longest request URI the sandbox reads: 48 KiB (longer: 414).
pub const MAX_URI_BYTES: usize = 48 * 1024;
/// Largest request body the sandbox reads: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most connections one host serves at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 1024;
/// Time a client has to send a request's headers: 30 s.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// State shared by every host of one sandbox.
pub(crate) struct Shared {
    pub(crate) directory: SandboxUsers,
    pub(crate) clock: Arc<dyn Clock>,
    /// Each host's base URL, with a trailing `/`.
    pub(crate) hosts: Vec<Url>,
    pub(crate) faults: Vec<Mutex<FaultTable>>,
    pub(crate) log: Mutex<RequestLog>,
    pub(crate) codes: CodeStore,
    pub(crate) tokens: TokenStore,
    /// Favorited tracks: user, track id, when; oldest first.
    pub(crate) favorites: Mutex<VecDeque<(UserId, u64, time::OffsetDateTime)>>,
    pub(crate) shutdown: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Host 0's base URL: the login page, the pictures.
    pub(crate) fn base(&self) -> &Url {
        &self.hosts[0]
    }

    /// A host's URL as written in lists (`http://127.0.0.1:1234`, no trailing `/`).
    pub(crate) fn host_text(url: &Url) -> String {
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// The other hosts, as picture mirrors.
    pub(crate) fn mirrors(&self) -> Vec<String> {
        self.hosts[1..].iter().map(Self::host_text).collect()
    }

    /// The user's picture as tokens carry it: the three sizes and `mirrors`, or `{}`.
    pub(crate) fn token_picture(&self, user: &SandboxUser) -> Value {
        self.api_picture(user)
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// The user's picture as the API gives it, or `None` (JSON `null`).
    pub(crate) fn api_picture(&self, user: &SandboxUser) -> Option<Value> {
        let p: ProfilePicture = user.picture_urls(self.base())?;
        Some(json!({
            "150x150": p.small,
            "480x480": p.medium,
            "1000x1000": p.large,
            "mirrors": self.mirrors(),
        }))
    }

    /// The claims the login page signs for a user, in the current key order.
    pub(crate) fn claims(&self, user: &SandboxUser, api_key: Option<&str>) -> Map<String, Value> {
        let hashid = user.hashid();
        let mut claims = Map::new();
        claims.insert("userId".into(), Value::String(hashid.clone()));
        claims.insert("email".into(), Value::String(user.email.clone()));
        claims.insert("name".into(), Value::String(user.name.clone()));
        claims.insert("handle".into(), Value::String(user.handle.clone()));
        claims.insert("verified".into(), Value::Bool(user.verified));
        claims.insert("profilePicture".into(), self.token_picture(user));
        claims.insert(
            "apiKey".into(),
            api_key.map_or(Value::Null, |k| Value::String(k.to_owned())),
        );
        claims.insert("sub".into(), Value::String(hashid));
        claims.insert("iat".into(), Value::from(self.clock.now().unix_timestamp()));
        claims
    }

    pub(crate) fn mint(
        &self,
        user: &SandboxUser,
        api_key: Option<&str>,
        overrides: &TokenOverrides,
    ) -> Result<String, SandboxError> {
        let claims = overrides.apply(self.claims(user, api_key));
        overrides.sign(user, &claims)
    }

    pub(crate) fn set_fault(
        &self,
        host: usize,
        route: &str,
        fault: Fault,
    ) -> Result<(), SandboxError> {
        let table = self.faults.get(host).ok_or_else(|| {
            SandboxError::Fault(format!(
                "host {host} does not exist (the sandbox has {})",
                self.hosts.len()
            ))
        })?;
        let route = FaultRoute::parse(route)?;
        fault.validate()?;
        lock(table).set(route, fault);
        Ok(())
    }

    pub(crate) fn faults_of(&self, host: usize) -> Vec<(FaultRoute, Fault)> {
        self.faults
            .get(host)
            .map(|t| lock(t).list())
            .unwrap_or_default()
    }

    pub(crate) fn remove_fault(&self, host: usize, route: &FaultRoute) -> bool {
        self.faults.get(host).is_some_and(|t| lock(t).remove(route))
    }

    pub(crate) fn clear_faults_of(&self, host: usize) {
        if let Some(t) = self.faults.get(host) {
            lock(t).clear();
        }
    }

    pub(crate) fn clear_faults(&self) {
        for t in &self.faults {
            lock(t).clear();
        }
    }

    /// Adds (or, with `add` false, removes) a favorite.
    pub(crate) fn set_favorite(
        &self,
        user: UserId,
        track: u64,
        add: bool,
        at: time::OffsetDateTime,
    ) {
        let mut favorites = lock(&self.favorites);
        favorites.retain(|(u, t, _)| !(*u == user && *t == track));
        if add {
            if favorites.len() >= MAX_FAVORITES {
                favorites.pop_front();
            }
            favorites.push_back((user, track, at));
        }
    }

    /// A user's favorited tracks and when, newest first.
    pub(crate) fn favorites_of(&self, user: UserId) -> Vec<(u64, time::OffsetDateTime)> {
        lock(&self.favorites)
            .iter()
            .rev()
            .filter(|(u, _, _)| *u == user)
            .map(|(_, t, at)| (*t, *at))
            .collect()
    }

    pub(crate) fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.log).all()
    }

    pub(crate) fn clear_requests(&self) {
        lock(&self.log).clear();
    }
}

/// Builds and starts a sandbox. See [`Sandbox::builder`].
pub struct Sandbox;

impl Sandbox {
    /// A builder with the defaults of each setter.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// Starts a sandbox with every default: one host on a free port of `127.0.0.1`, the
    /// built-in users, the system clock.
    pub async fn start() -> Result<SandboxHandle, SandboxError> {
        Self::builder().start().await
    }
}

/// Settings of a sandbox; [`SandboxBuilder::start`] runs it.
pub struct SandboxBuilder {
    bind: SocketAddr,
    hosts: usize,
    users: Option<SandboxUsers>,
    users_file: Option<PathBuf>,
    apps: Vec<DeveloperApp>,
    clock: Arc<dyn Clock>,
    faults: Vec<(usize, String, Fault)>,
    log_capacity: usize,
    code_capacity: usize,
    family_capacity: usize,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND,
            hosts: 1,
            users: None,
            users_file: None,
            apps: Vec::new(),
            clock: Arc::new(SystemClock),
            faults: Vec::new(),
            log_capacity: DEFAULT_LOG_CAPACITY,
            code_capacity: crate::oauth::DEFAULT_CODE_CAPACITY,
            family_capacity: crate::oauth::DEFAULT_FAMILY_CAPACITY,
        }
    }
}

impl std::fmt::Debug for SandboxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxBuilder")
            .field("bind", &self.bind)
            .field("hosts", &self.hosts)
            .field("users", &self.users.as_ref().map(SandboxUsers::len))
            .field("users_file", &self.users_file)
            .field("apps", &self.apps.len())
            .field("clock", &self.clock)
            .field("faults", &self.faults)
            .finish()
    }
}

impl SandboxBuilder {
    /// The address of host 0. With port 0 every host gets a free port; with port `p`, host `i`
    /// listens on `p + i`. An unspecified address (`0.0.0.0`, `::`) listens everywhere and is
    /// shown as loopback in the URLs. Default: `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How many API hosts (ports) to run, sharing users and state; each has its own faults.
    /// Host 0 also serves the login page. 1 to 64. Default: 1.
    pub fn hosts(mut self, hosts: usize) -> Self {
        self.hosts = hosts;
        self
    }

    /// The users, grants and apps. Default: [`SandboxUsers::builtin`].
    pub fn users(mut self, users: SandboxUsers) -> Self {
        self.users = Some(users);
        self
    }

    /// A users file applied (extend or replace, as the file says) on top of the users set with
    /// [`users`](Self::users), or of the built-in ones. Read by [`start`](Self::start), which
    /// fails with a clear error when the file is invalid. Default: none.
    pub fn users_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.users_file = Some(path.into());
        self
    }

    /// Registers one more developer app: the login page accepts its key (`api_key` or
    /// `client_id`) in both flows, and, in the code flow, its redirect URIs. Default: only
    /// [`DeveloperApp::builtin`] (and the users file's `apps`).
    pub fn app(mut self, app: DeveloperApp) -> Self {
        self.apps.push(app);
        self
    }

    /// The clock used for `iat`, and for the expiry of codes (10 minutes), access tokens (one
    /// hour) and refresh tokens (30 days). Give it a
    /// [`ManualClock`](audius_login::clock::ManualClock) to move time in tests. Default:
    /// [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A fault active from the start on `host` for `route` (see [`crate::faults`]); checked
    /// by [`start`](Self::start). Default: none.
    pub fn fault(mut self, host: usize, route: impl Into<String>, fault: Fault) -> Self {
        self.faults.push((host, route.into(), fault));
        self
    }

    /// How many requests the log keeps (the oldest fall off). Default: 10,000.
    pub fn log_capacity(mut self, capacity: usize) -> Self {
        self.log_capacity = capacity;
        self
    }

    /// How many PKCE codes are kept at once. Default: 10,000.
    pub fn code_capacity(mut self, capacity: usize) -> Self {
        self.code_capacity = capacity;
        self
    }

    /// How many token families (one per code exchange) are kept at once; revoked and expired
    /// ones are forgotten first, then the oldest. Default: 10,000.
    pub fn token_family_capacity(mut self, capacity: usize) -> Self {
        self.family_capacity = capacity;
        self
    }

    /// Binds every host and starts serving. Must be called inside a tokio runtime; the
    /// servers run as tasks of that runtime until the handle is stopped or dropped.
    pub async fn start(self) -> Result<SandboxHandle, SandboxError> {
        if !(1..=MAX_HOSTS).contains(&self.hosts) {
            return Err(SandboxError::Config(format!(
                "hosts must be 1 to {MAX_HOSTS}, not {}",
                self.hosts
            )));
        }
        let mut directory = self.users.unwrap_or_else(SandboxUsers::builtin);
        if let Some(path) = &self.users_file {
            directory = directory.apply_file(path)?;
        }
        for app in self.apps {
            directory = directory.with_app(app)?;
        }
        if directory.is_empty() {
            return Err(SandboxError::Config(
                "the sandbox needs at least one user".into(),
            ));
        }

        let mut listeners = Vec::with_capacity(self.hosts);
        let mut hosts = Vec::with_capacity(self.hosts);
        for i in 0..self.hosts {
            let addr = if self.bind.port() == 0 {
                self.bind
            } else {
                let port = u16::try_from(usize::from(self.bind.port()) + i).map_err(|_| {
                    SandboxError::Config(format!(
                        "{} hosts from port {} run past port 65535",
                        self.hosts,
                        self.bind.port()
                    ))
                })?;
                SocketAddr::new(self.bind.ip(), port)
            };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| SandboxError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| SandboxError::Bind { addr, source })?;
            hosts.push(url_of(local)?);
            listeners.push(listener);
        }

        let shared = Arc::new(Shared {
            directory,
            clock: self.clock,
            faults: (0..self.hosts)
                .map(|_| Mutex::new(FaultTable::default()))
                .collect(),
            hosts,
            log: Mutex::new(RequestLog::new(self.log_capacity)),
            codes: CodeStore::with_capacity(self.code_capacity),
            tokens: TokenStore::with_capacity(self.family_capacity),
            favorites: Mutex::new(VecDeque::new()),
            shutdown: CancellationToken::new(),
        });
        for (host, route, fault) in self.faults {
            shared.set_fault(host, &route, fault)?;
        }

        let tracker = TaskTracker::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            let host = Arc::new(Host {
                index,
                shared: shared.clone(),
                router: crate::routes::router(shared.clone(), index),
            });
            tracker.spawn(accept_loop(listener, host, tracker.clone()));
        }
        tracing::info!(base = %shared.base(), hosts = shared.hosts.len(), "audius sandbox started");
        Ok(SandboxHandle { shared, tracker })
    }
}

fn url_of(addr: SocketAddr) -> Result<Url, SandboxError> {
    let shown = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    };
    Url::parse(&format!("http://{shown}/"))
        .map_err(|e| SandboxError::Config(format!("no URL for {shown}: {e}")))
}

/// A running sandbox. Dropping it stops every host (the tasks end shortly after);
/// [`stop`](Self::stop) stops them and waits until they have.
pub struct SandboxHandle {
    shared: Arc<Shared>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("hosts", &self.shared.hosts)
            .field("users", &self.shared.directory.len())
            .finish()
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl SandboxHandle {
    /// Host 0's base URL (`http://127.0.0.1:<port>/`): it serves the login page and the API.
    pub fn base_url(&self) -> Url {
        self.shared.base().clone()
    }

    /// Every host's base URL, host 0 first.
    pub fn host_urls(&self) -> Vec<Url> {
        self.shared.hosts.clone()
    }

    /// The login page: `{base}oauth/auth`.
    pub fn login_page_url(&self) -> Url {
        let mut url = self.base_url();
        url.set_path("/oauth/auth");
        url
    }

    /// The environment to give the core crate: `Custom { login_page, api: base }`.
    pub fn environment(&self) -> Environment {
        Environment::Custom {
            login_page: self.login_page_url(),
            api: self.base_url(),
        }
    }

    /// The users, in order.
    pub fn users(&self) -> &[SandboxUser] {
        self.shared.directory.users()
    }

    /// The user with this handle (case-insensitively).
    pub fn user(&self, handle: &str) -> Option<&SandboxUser> {
        self.shared.directory.get(handle)
    }

    /// The whole directory: users, grants, apps.
    pub fn directory(&self) -> &SandboxUsers {
        &self.shared.directory
    }

    /// The claims the login page would sign for `user` now (no `apiKey`: `null`).
    pub fn claims_for(&self, user: &SandboxUser) -> Map<String, Value> {
        self.shared.claims(user, None)
    }

    /// A token for `user`, as the login page signs it now, changed by `overrides`.
    ///
    /// # Panics
    ///
    /// Only when [`TokenOverrides::signing_key`] was given bytes that are not a valid
    /// secp256k1 secret key (zero, or not below the curve order); see
    /// [`try_mint_token`](Self::try_mint_token).
    pub fn mint_token(&self, user: &SandboxUser, overrides: TokenOverrides) -> String {
        match self.try_mint_token(user, overrides) {
            Ok(token) => token,
            Err(e) => panic!("mint_token: {e}"),
        }
    }

    /// As [`mint_token`](Self::mint_token), with an error instead of a panic.
    pub fn try_mint_token(
        &self,
        user: &SandboxUser,
        overrides: TokenOverrides,
    ) -> Result<String, SandboxError> {
        self.shared.mint(user, None, &overrides)
    }

    /// Sets (or replaces) the fault of `route` on `host` (see [`crate::faults`]).
    pub fn set_fault(&self, host: usize, route: &str, fault: Fault) -> Result<(), SandboxError> {
        self.shared.set_fault(host, route, fault)
    }

    /// Removes the fault of `route` on `host`; `false` when there was none.
    pub fn remove_fault(&self, host: usize, route: &str) -> Result<bool, SandboxError> {
        let route = FaultRoute::parse(route)?;
        Ok(self.shared.remove_fault(host, &route))
    }

    /// The faults of `host`: route and fault.
    pub fn faults(&self, host: usize) -> Vec<(String, Fault)> {
        self.shared
            .faults_of(host)
            .into_iter()
            .map(|(r, f)| (r.as_str().to_owned(), f))
            .collect()
    }

    /// Removes every fault of every host.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// The request log, oldest first (requests to `/_sandbox/*` are not logged).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.requests()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// The PKCE codes issued by the login page.
    pub fn codes(&self) -> &CodeStore {
        &self.shared.codes
    }

    /// The access and refresh tokens issued by `POST /v1/oauth/token`.
    pub fn tokens(&self) -> &TokenStore {
        &self.shared.tokens
    }

    /// The tracks `user` favorited through the write endpoint (numeric track ids), newest
    /// first.
    pub fn favorites(&self, user: UserId) -> Vec<u64> {
        self.shared
            .favorites_of(user)
            .into_iter()
            .map(|(track, _)| track)
            .collect()
    }

    /// The sandbox's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Stops every host and waits until their listeners are closed and their connections ended.
    pub async fn stop(self) {
        self.shared.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// One host: its index, the shared state, and its routes.
pub(crate) struct Host {
    index: usize,
    shared: Arc<Shared>,
    router: axum::Router,
}

async fn accept_loop(listener: TcpListener, host: Arc<Host>, tracker: TaskTracker) {
    let shutdown = host.shared.shutdown.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let host = host.clone();
                    tracker.spawn(async move {
                        serve_connection(stream, host).await;
                        drop(slot);
                    });
                }
                Err(_) => {
                    tracing::warn!(%peer, host = host.index, "too many connections; closing this one");
                    drop(stream);
                }
            },
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, host = host.index, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    tracing::debug!(host = host.index, "listener closed");
}

/// Grace given to answers in flight when the sandbox stops.
const STOP_GRACE: Duration = Duration::from_millis(500);

async fn serve_connection(stream: TcpStream, host: Arc<Host>) {
    let _ = stream.set_nodelay(true);
    let shutdown = host.shared.shutdown.clone();
    let service = hyper::service::service_fn(move |req| {
        let host = host.clone();
        async move { host.handle(req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(STOP_GRACE, conn.as_mut()).await;
        }
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a sandbox fault")
    }
}

impl std::error::Error for DropConnection {}

impl Host {
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
        let path = req.uri().path().to_owned();
        let control = path == "/_sandbox" || path.starts_with("/_sandbox/");
        let cors = !(path == "/oauth/auth" || path.starts_with("/oauth/auth/"));
        if req.uri().to_string().len() > MAX_URI_BYTES {
            return Ok(with_cors(
                error_json(StatusCode::URI_TOO_LONG, "the request URI is too long"),
                cors,
            ));
        }
        let fault = if control {
            None
        } else {
            lock(&self.shared.faults[self.index]).take(&path)
        };
        if !control {
            let (parts, body) = req.into_parts();
            let mut body = Body::new(body);
            let mut grant_type = None;
            if parts.method == Method::POST && path == TOKEN_ROUTE {
                // Read the body now, to log its grant_type (never the codes or tokens).
                let read = tokio::time::timeout(
                    HEADER_READ_TIMEOUT,
                    axum::body::to_bytes(body, MAX_BODY_BYTES),
                )
                .await;
                let bytes = match read {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(_)) => {
                        return Ok(with_cors(
                            oauth_error(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "invalid_request",
                                INVALID_REQUEST_BODY,
                            ),
                            cors,
                        ));
                    }
                    Err(_) => {
                        return Ok(with_cors(
                            oauth_error(
                                StatusCode::REQUEST_TIMEOUT,
                                "invalid_request",
                                INVALID_REQUEST_BODY,
                            ),
                            cors,
                        ));
                    }
                };
                grant_type = logged_grant_type(&parts.headers, &bytes);
                body = Body::from(bytes);
            }
            let mut entry =
                LoggedRequest::from_parts(self.index, &parts, fault.as_ref().map(Fault::describe));
            entry.grant_type = grant_type;
            lock(&self.shared.log).push(entry);
            let oauth = parts.method == Method::POST && OAUTH_POST_ROUTES.contains(&path.as_str());
            return self
                .answer(Request::from_parts(parts, body), fault, cors, oauth)
                .await;
        }
        self.answer(req.map(Body::new), None, true, false).await
    }

    async fn answer(
        &self,
        req: Request<Body>,
        fault: Option<Fault>,
        cors: bool,
        oauth: bool,
    ) -> Result<Response<Body>, DropConnection> {
        if let Some(fault) = fault {
            if !fault.latency.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(fault.latency) => {}
                    () = self.shared.shutdown.cancelled() => {
                        return Ok(error_json(StatusCode::SERVICE_UNAVAILABLE, "the sandbox is stopping"));
                    }
                }
            }
            if let Some(response) = fault_response(fault.action, oauth)? {
                return Ok(with_cors(response, cors));
            }
        }
        if req.method() == Method::OPTIONS {
            return Ok(preflight(&req));
        }
        let response = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        Ok(with_cors(response, cors))
    }
}

/// The token endpoint (its request bodies are read before routing, to log the grant type).
const TOKEN_ROUTE: &str = "/v1/oauth/token";
/// The OAuth endpoints, whose errors are `{"error", "error_description"}`.
const OAUTH_POST_ROUTES: [&str; 2] = [TOKEN_ROUTE, "/v1/oauth/revoke"];

/// What a fault answers instead of the route; `None` to answer normally. On the OAuth endpoints
/// a 5xx status is `{"error": "server_error", "error_description": ..}`.
fn fault_response(
    action: FaultAction,
    oauth: bool,
) -> Result<Option<Response<Body>>, DropConnection> {
    let response = match action {
        FaultAction::Pass => return Ok(None),
        FaultAction::Drop => return Err(DropConnection),
        FaultAction::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = format!(
                "sandbox fault: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("error")
            );
            let mut r = if oauth && status.is_server_error() {
                oauth_error(status, "server_error", &text)
            } else {
                error_json(status, &text)
            };
            if status == StatusCode::TOO_MANY_REQUESTS {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            r
        }
        FaultAction::Garbage => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(Body::from(
                "<!doctype html><html><head><title>502 Bad Gateway</title></head>\
                 <body><h1>Bad Gateway</h1><p>sandbox fault: this is not JSON</p></body></html>\n",
            ))
            .unwrap_or_default(),
        FaultAction::Truncate => {
            let full = padded_json(TRUNCATED_PROMISE);
            let sent = Bytes::from(full[..full.len() / 2].to_vec());
            // Half the body, then a pause (hyper flushes the headers and that half while the
            // body is pending), then an error: hyper closes the connection mid-body.
            let body = futures_util::stream::unfold(Some(sent), |pending| async move {
                match pending {
                    Some(chunk) => Some((Ok(chunk), None)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Some((
                            Err(std::io::Error::other("truncated by a sandbox fault")),
                            None,
                        ))
                    }
                }
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, full.len())
                .body(Body::from_stream(body))
                .unwrap_or_default()
        }
        FaultAction::Oversize(bytes) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(padded_json(bytes)))
            .unwrap_or_default(),
    };
    Ok(Some(response))
}

/// The `Content-Length` a truncated answer promises; half of it is sent.
pub(crate) const TRUNCATED_PROMISE: usize = 2048;

/// Valid-looking JSON (`{"data":[{user-like}, ...]}`) of exactly `len` bytes (at least 13).
pub(crate) fn padded_json(len: usize) -> Vec<u8> {
    const ITEM: &[u8] =
        br#"{"id":"eYorL","handle":"padding","name":"Sandbox oversize padding","is_verified":false},"#;
    let mut out = Vec::with_capacity(len.max(13));
    out.extend_from_slice(br#"{"data":["#);
    while out.len() + ITEM.len() + 4 <= len {
        out.extend_from_slice(ITEM);
    }
    out.extend_from_slice(b"{}]}");
    while out.len() < len {
        out.push(b' ');
    }
    out
}

/// `{"code": status, "error": text}`.
pub(crate) fn error_json(status: StatusCode, text: &str) -> Response<Body> {
    json_response(status, &json!({"code": status.as_u16(), "error": text}))
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn with_cors(mut response: Response<Body>, cors: bool) -> Response<Body> {
    if cors {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

/// The answer to a CORS preflight: 204, any origin, the usual methods, the headers asked for.
fn preflight(req: &Request<Body>) -> Response<Body> {
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| v.len() <= 1024)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Authorization, Content-Type"));
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, PUT, DELETE, OPTIONS",
        )
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, asked)
        .header(header::ACCESS_CONTROL_MAX_AGE, "600")
        .body(Body::empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<SandboxHandle>();
        send_sync::<SandboxBuilder>();
    }

    #[test]
    fn padding_is_json_of_the_size() {
        for len in [13, 100, 2048, 2 * 1024 * 1024] {
            let body = padded_json(len);
            assert_eq!(body.len(), len);
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            assert!(v["data"].is_array(), "{len}");
        }
    }
}
