//! Building and starting a sandbox: [`Sandbox`] and [`SandboxBuilder`].

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use audius_login::clock::{Clock, SystemClock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::error::{SandboxConfigError, SandboxError};
use crate::faults::{Fault, FaultTable};
use crate::handle::SandboxHandle;
use crate::host::Host;
use crate::limits::MAX_HOSTS;
use crate::log::{DEFAULT_LOG_CAPACITY, RequestLog};
use crate::oauth::{CodeStore, TokenStore};
use crate::state::Shared;
use crate::users::{DeveloperApp, SandboxUsers};

/// Default address: `127.0.0.1:0` (a free port).
const DEFAULT_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

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

    /// A fault active from the start on `host` for `route` (see [`Fault`]); checked
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
            return Err(SandboxConfigError::new(
                "hosts",
                format!("must be 1 to {MAX_HOSTS}, not {}", self.hosts),
            )
            .into());
        }
        let first_port = usize::from(self.bind.port());
        if first_port != 0 && first_port + self.hosts - 1 > usize::from(u16::MAX) {
            return Err(SandboxConfigError::new(
                "bind",
                format!(
                    "{} hosts from port {first_port} run past port 65535",
                    self.hosts
                ),
            )
            .into());
        }
        let mut directory = self.users.unwrap_or_else(SandboxUsers::builtin);
        if let Some(path) = &self.users_file {
            directory = directory.apply_file(path)?;
        }
        for app in self.apps {
            directory = directory.with_app(app)?;
        }
        if directory.is_empty() {
            return Err(
                SandboxConfigError::new("users", "the sandbox needs at least one user").into(),
            );
        }

        let mut listeners = Vec::with_capacity(self.hosts);
        let mut hosts = Vec::with_capacity(self.hosts);
        for i in 0..self.hosts {
            let addr = if self.bind.port() == 0 {
                self.bind
            } else {
                // Checked above: every port fits.
                let port = u16::try_from(first_port + i).unwrap_or(u16::MAX);
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
            let host = Arc::new(Host::new(index, shared.clone()));
            tracker.spawn(crate::host::accept_loop(listener, host, tracker.clone()));
        }
        tracing::info!(base = %shared.base(), hosts = shared.hosts.len(), "audius sandbox started");
        Ok(SandboxHandle::new(shared, tracker))
    }
}

/// The base URL of a bound address (an unspecified address is shown as loopback).
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
        .map_err(|e| SandboxConfigError::new("bind", format!("no URL for {shown}: {e}")).into())
}
