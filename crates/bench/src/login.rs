//! Logins against the embedded sandbox, driven through an in-process app.
//!
//! One login is: `GET` the app's login route (in process: a new session with a pending state,
//! and a redirect to the sandbox's login page), `GET` that page with `sandbox_user=<handle>`
//! over a keep-alive loopback connection (the sandbox signs a token and redirects to the
//! callback with `?state=..&token=..`), then `GET` the callback (in process; timed alone).
//!
//! Tokens are deterministic per user per second, and the app refuses a token it has already
//! accepted: [`UserPicker`] never hands out a user who logged in less than two seconds ago.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_audius_login::{AudiusLogin, AudiusLoginBuilder, ResponseMode, VerifierKind};
use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::LOCATION;
use actix_web::test::{self, TestRequest};
use audius_login::UserId;
use audius_sandbox::{Role, Sandbox, SandboxHandle, SandboxUser, SandboxUsers};
use url::Url;

use crate::BenchResult;
use crate::apps::{AUTH_PATH, REDIRECT_URI};
use crate::load::Connection;

/// The handle of the user with the longest session the sandbox allows (a 30-character handle,
/// a 100-character name, a long email, verified, with a picture).
pub const LONG_USER: &str = "longest_handle_allowed_here_30";

/// The handle of the `i`-th generated benchmark user.
pub fn bench_handle(i: usize) -> String {
    format!("bench_{i:05}")
}

/// The built-in users, `count` generated listeners (`bench_00000`, ...; ids from 1,000,000; with
/// a picture) and [`LONG_USER`].
pub fn bench_users(count: usize) -> BenchResult<SandboxUsers> {
    let mut users = SandboxUsers::builtin();
    for i in 0..count {
        let user = SandboxUser::new(
            UserId::new(1_000_000 + i as u64),
            bench_handle(i),
            format!("Bench User {i}"),
            Role::Listener,
        )?;
        users = users.with_user(user)?;
    }
    let long = SandboxUser::new(
        UserId::new(999_999_999),
        LONG_USER,
        "N".repeat(100),
        Role::Artist,
    )?
    .verified(true)
    .has_picture(true)
    .email(format!(
        "{}@a-rather-long-mail-domain.example",
        "e".repeat(64)
    ));
    Ok(users.with_user(long)?)
}

/// Starts a sandbox with `users` on its own tokio runtime (one worker thread), so that it
/// answers while the caller's thread is busy, as a remote Audius would. Keep the runtime alive
/// as long as the sandbox is used.
pub fn start_sandbox(
    users: SandboxUsers,
    log_capacity: usize,
) -> BenchResult<(tokio::runtime::Runtime, SandboxHandle)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sandbox")
        .enable_all()
        .build()?;
    let handle = runtime.block_on(
        Sandbox::builder()
            .users(users)
            .log_capacity(log_capacity)
            .start(),
    )?;
    Ok((runtime, handle))
}

/// The loopback address of the sandbox's host 0 (the login page).
pub fn sandbox_addr(sandbox: &SandboxHandle) -> BenchResult<SocketAddr> {
    let base = sandbox.base_url();
    let addrs = base.socket_addrs(|| None)?;
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| format!("no address for {base}").into())
}

/// The benchmark apps' settings: the query channel, the sandbox, the given verifier, no
/// app-wide budget of requests to Audius; every other setting at its default.
pub fn audius_builder(sandbox: &SandboxHandle, kind: VerifierKind) -> AudiusLoginBuilder {
    AudiusLogin::builder("Bench App", REDIRECT_URI)
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .verifier_kind(kind)
        // The login figures measure thousands of logins of users the app has not cached (the
        // API verifier asks Audius at every callback): the app-wide budget of requests to
        // Audius (a burst of 50, then 10 per second by default), which bounds forged tokens,
        // would measure itself instead. The sandbox has no rate limit to protect.
        .upstream_budget(None)
}

/// Hands out users round robin, skipping those who logged in less than two seconds ago.
#[derive(Debug)]
pub struct UserPicker {
    handles: Vec<String>,
    last_second: Vec<i64>,
    cursor: usize,
    waits: usize,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl UserPicker {
    /// A picker over these handles.
    pub fn new(handles: Vec<String>) -> Self {
        let n = handles.len();
        Self {
            handles,
            last_second: vec![i64::MIN / 2; n],
            cursor: 0,
            waits: 0,
        }
    }

    /// The next user free to log in, or `None` when every user logged in within two seconds.
    pub fn next_user(&mut self) -> Option<String> {
        let now = unix_now();
        for _ in 0..self.handles.len() {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % self.handles.len();
            if now - self.last_second[i] >= 2 {
                self.last_second[i] = now;
                return Some(self.handles[i].clone());
            }
        }
        self.waits += 1;
        None
    }

    /// How many times every user had logged in within two seconds (the caller then waits):
    /// non-zero means logins were throttled by the number of users.
    pub fn waits(&self) -> usize {
        self.waits
    }
}

/// The next user free to log in, waiting (50 ms at a time) while there is none.
async fn free_user(picker: &RefCell<UserPicker>) -> String {
    loop {
        let next = picker.borrow_mut().next_user();
        match next {
            Some(handle) => return handle,
            None => actix_rt::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A login started: the session cookie holding its state, and the callback to call.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    /// The session cookie set by the login route.
    pub cookie: Cookie<'static>,
    /// Path and query of the callback, as the sandbox redirected to it.
    pub callback: String,
}

fn first_cookie<B>(res: &ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response().cookies().next().map(|c| c.into_owned())
}

/// Starts a login on `app` and has the sandbox approve it as `handle`.
pub async fn start_login<S, B>(
    app: &S,
    audius: &AudiusLogin,
    sandbox: &mut Connection,
    handle: &str,
) -> BenchResult<PendingLogin>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(
        app,
        TestRequest::get()
            .uri(audius.paths().login.as_str())
            .to_request(),
    )
    .await;
    if res.status().as_u16() != 302 {
        return Err(format!("the login route answered {}", res.status()).into());
    }
    let cookie = first_cookie(&res).ok_or("the login route set no session cookie")?;
    let page = res
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("the login route sent no Location")?;
    Ok(PendingLogin {
        cookie,
        callback: approve(sandbox, page, handle).await?,
    })
}

/// Has the sandbox approve the login of its login page `page` as `handle` (over `sandbox`, a
/// connection to it); gives the path and query of the callback it redirects to.
async fn approve(sandbox: &mut Connection, page: &str, handle: &str) -> BenchResult<String> {
    let mut url = Url::parse(page)?;
    url.query_pairs_mut().append_pair("sandbox_user", handle);
    let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let answer = sandbox.get(&target, None, true).await?;
    let Some(location) = answer.location.filter(|_| answer.status == 302) else {
        return Err(format!(
            "the sandbox answered {} for {handle}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
        .into());
    };
    let location = Url::parse(&location)?;
    Ok(format!(
        "{}?{}",
        location.path(),
        location.query().unwrap_or_default()
    ))
}

/// Calls the callback of a started login; returns the signed-in session cookie and how long
/// the callback took (the in-process service call alone).
pub async fn finish_login<S, B>(
    app: &S,
    pending: PendingLogin,
) -> BenchResult<(Cookie<'static>, Duration)>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let request = TestRequest::get()
        .uri(&pending.callback)
        .cookie(pending.cookie)
        .to_request();
    let start = Instant::now();
    let res = test::call_service(app, request).await;
    let took = start.elapsed();
    if res.status().as_u16() != 302 {
        let status = res.status();
        let body = test::read_body(res).await;
        return Err(format!(
            "the callback answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    let cookie = first_cookie(&res).ok_or("the callback set no session cookie")?;
    Ok((cookie, took))
}

/// What [`run_logins`] did.
#[derive(Debug, Clone, Default)]
pub struct LoginRun {
    /// Completed logins.
    pub logins: usize,
    /// Authenticated requests made after them.
    pub requests: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Each callback's duration.
    pub callbacks: Vec<Duration>,
}

impl LoginRun {
    /// Logins per second.
    pub fn per_second(&self) -> f64 {
        self.logins as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `count` logins on `app`, `concurrency` at a time (each flow with its own keep-alive
/// connection to the sandbox), each followed by `requests_per_login` authenticated `GET`s of
/// [`AUTH_PATH`] with the new session cookie (which must answer 200). Call inside an actix
/// system: the flows are local tasks.
pub async fn run_logins<S, B>(
    app: Rc<S>,
    audius: &AudiusLogin,
    sandbox: SocketAddr,
    picker: Rc<RefCell<UserPicker>>,
    count: usize,
    concurrency: usize,
    requests_per_login: usize,
) -> BenchResult<LoginRun>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>
        + 'static,
    B: MessageBody + 'static,
{
    let remaining = Rc::new(Cell::new(count));
    let start = Instant::now();
    let mut flows = Vec::new();
    for _ in 0..concurrency.max(1) {
        let app = app.clone();
        let audius = audius.clone();
        let picker = picker.clone();
        let remaining = remaining.clone();
        flows.push(actix_rt::spawn(async move {
            let mut connection = Connection::open(sandbox).await?;
            let mut run = LoginRun::default();
            while remaining.get() > 0 {
                remaining.set(remaining.get() - 1);
                let handle = free_user(&picker).await;
                let pending = start_login(&*app, &audius, &mut connection, &handle).await?;
                let (cookie, took) = finish_login(&*app, pending).await?;
                run.logins += 1;
                run.callbacks.push(took);
                for _ in 0..requests_per_login {
                    let res = test::call_service(
                        &*app,
                        TestRequest::get()
                            .uri(AUTH_PATH)
                            .cookie(cookie.clone())
                            .to_request(),
                    )
                    .await;
                    if res.status().as_u16() != 200 {
                        return Err(
                            format!("an authenticated request answered {}", res.status()).into(),
                        );
                    }
                    run.requests += 1;
                }
            }
            Ok::<_, crate::BenchError>(run)
        }));
    }
    let mut total = LoginRun::default();
    for flow in flows {
        let run = flow.await??;
        total.logins += run.logins;
        total.requests += run.requests;
        total.callbacks.extend(run.callbacks);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// A login over HTTP started on an app server: the pre-login session cookie (holding the
/// state) and the callback (path and query) the sandbox redirected to.
#[derive(Debug, Clone)]
pub struct HttpPending {
    /// The `Cookie` header of the pre-login session.
    pub cookie: String,
    /// Path and query of the callback.
    pub callback: String,
}

/// Starts a login over HTTP: `GET login_path` on `app` (a connection to an app server), then
/// the sandbox's login page as `handle` on `sandbox`.
pub async fn http_begin(
    app: &mut Connection,
    sandbox: &mut Connection,
    login_path: &str,
    handle: &str,
) -> BenchResult<HttpPending> {
    let answer = app.get(login_path, None, false).await?;
    let (Some(page), Some(cookie)) = (answer.location, answer.set_cookie) else {
        return Err(format!(
            "the login route answered {} without a Location and a session cookie",
            answer.status
        )
        .into());
    };
    Ok(HttpPending {
        cookie,
        callback: approve(sandbox, &page, handle).await?,
    })
}

/// What a callback delivered over HTTP got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted: `302` with the signed-in session's cookie (`name=value`).
    Accepted(String),
    /// Refused with this `4xx` status (a used state, a replayed token, ...).
    Refused(u16),
}

/// Delivers the callback of `pending` to `app` (asking for JSON errors); anything but an
/// acceptance or a `4xx` refusal is an error.
pub async fn http_deliver(app: &mut Connection, pending: &HttpPending) -> BenchResult<Delivery> {
    let answer = app
        .get_as(
            &pending.callback,
            Some(&pending.cookie),
            Some("application/json"),
            true,
        )
        .await?;
    match (answer.status, answer.set_cookie) {
        (302, Some(cookie)) => Ok(Delivery::Accepted(cookie)),
        (status @ 400..=499, _) => Ok(Delivery::Refused(status)),
        (status, _) => Err(format!(
            "the callback answered {status}: {}",
            String::from_utf8_lossy(&answer.body)
        )
        .into()),
    }
}

/// What [`http_logins`] did.
#[derive(Debug, Clone, Default)]
pub struct HttpLoginRun {
    /// Logins accepted.
    pub accepted: usize,
    /// Second deliveries refused (when racing).
    pub refused: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The session cookie of the last login accepted.
    pub last_cookie: Option<String>,
}

impl HttpLoginRun {
    /// Logins accepted per second.
    pub fn per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `count` logins over HTTP, `concurrency` flows at a time (each with keep-alive
/// connections of its own to the sandbox and to every app server of `apps`): login `i` of a
/// flow starts on `apps[i % n]` and its callback is delivered to `apps[(i + 1) % n]` (another
/// instance, when there are several). With `race`, the callback is also delivered at the same
/// moment to the instance that started it: exactly one of the two must accept it, the other
/// refuse it (`4xx`); anything else is an error. Call inside an actix system (the flows are
/// local tasks).
pub async fn http_logins(
    apps: &[SocketAddr],
    sandbox: SocketAddr,
    login_path: &str,
    picker: Rc<RefCell<UserPicker>>,
    count: usize,
    concurrency: usize,
    race: bool,
) -> BenchResult<HttpLoginRun> {
    if apps.is_empty() {
        return Err("no app server to log in on".into());
    }
    let remaining = Rc::new(Cell::new(count));
    let start = Instant::now();
    let mut flows = Vec::new();
    for flow in 0..concurrency.max(1) {
        let apps = apps.to_vec();
        let login_path = login_path.to_owned();
        let picker = picker.clone();
        let remaining = remaining.clone();
        flows.push(actix_rt::spawn(async move {
            let mut sandbox = Connection::open(sandbox).await?;
            let mut connections = Vec::with_capacity(apps.len());
            for addr in &apps {
                connections.push(Connection::open(*addr).await?);
            }
            let n = connections.len();
            let mut run = HttpLoginRun::default();
            let mut i = flow;
            while remaining.get() > 0 {
                remaining.set(remaining.get() - 1);
                let handle = free_user(&picker).await;
                let (begin, finish) = (i % n, (i + 1) % n);
                i += 1;
                let pending =
                    http_begin(&mut connections[begin], &mut sandbox, &login_path, &handle).await?;
                let outcomes = if race && begin != finish {
                    let (low, high) = connections.split_at_mut(begin.max(finish));
                    let (first, second) = (&mut low[begin.min(finish)], &mut high[0]);
                    let (a, b) = tokio::join!(
                        http_deliver(first, &pending),
                        http_deliver(second, &pending)
                    );
                    vec![a?, b?]
                } else {
                    vec![http_deliver(&mut connections[finish], &pending).await?]
                };
                let mut accepted = 0;
                for outcome in outcomes {
                    match outcome {
                        Delivery::Accepted(cookie) => {
                            accepted += 1;
                            run.last_cookie = Some(cookie);
                        }
                        Delivery::Refused(_) if race => run.refused += 1,
                        Delivery::Refused(status) => {
                            return Err(
                                format!("a login of {handle} was refused with {status}").into()
                            );
                        }
                    }
                }
                if accepted != 1 {
                    return Err(format!(
                        "a login of {handle} was accepted {accepted} times across instances \
                         (exactly once expected)"
                    )
                    .into());
                }
                run.accepted += 1;
            }
            Ok::<_, crate::BenchError>(run)
        }));
    }
    let mut total = HttpLoginRun::default();
    for flow in flows {
        let run = flow.await??;
        total.accepted += run.accepted;
        total.refused += run.refused;
        total.last_cookie = run.last_cookie.or(total.last_cookie);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_never_repeats_a_user_within_two_seconds() {
        let mut picker = UserPicker::new(vec!["a".into(), "b".into()]);
        assert_eq!(picker.next_user().as_deref(), Some("a"));
        assert_eq!(picker.next_user().as_deref(), Some("b"));
        assert_eq!(picker.next_user(), None);
        assert_eq!(picker.waits(), 1);
    }

    #[test]
    fn the_long_user_is_valid() {
        let users = bench_users(2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(users.len(), 6 + 2 + 1);
        assert!(users.get(LONG_USER).is_some());
        assert!(users.get(&bench_handle(1)).is_some());
    }
}
