//! `audius-login-bench`: the performance figures of Log In with Audius for actix-web.
//!
//! ```text
//! audius-login-bench [--quick]
//! ```
//!
//! Prints what it measures as it goes, then, as its last line, one JSON object with the
//! headline figures (see `BENCHMARKS.md` at the workspace root). Every ratio compares against a
//! baseline measured in the same process, interleaved with it, as the median of rounds.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::hint::black_box;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_audius_login::{AudiusLogin, VerifierKind, VerifyOptions};
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, Key};
use actix_web::dev::{Server, ServerHandle, Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use audius_login::replay::MemoryReplayCache;
use audius_login::token::eip191_hash;
use audius_login::{ApiClient, LocalVerifier, Signature, Token, UserId, Verifier as _};
use audius_login_bench::apps::{self, AUTH_PATH, IDENTITY_LOGIN_PATH, PAGE_PATH};
use audius_login_bench::load::{self, LoadTarget};
use audius_login_bench::login::{
    self, LONG_USER, LoginRun, UserPicker, audius_builder, bench_handle, finish_login, run_logins,
    start_login,
};
use audius_login_bench::stats::{machine, median, min_max, percentile, rss_bytes};
use audius_login_bench::{BenchError, BenchResult};
use audius_sandbox::{SandboxHandle, TokenOverrides};
use clap::Parser;
use secp256k1::Message;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use serde::Serialize;

/// Measures Log In with Audius for actix-web against actix-identity and a bare app.
#[derive(Debug, Parser)]
#[command(name = "audius-login-bench", version)]
struct Args {
    /// Fewer and shorter rounds, smaller memory run: finishes in well under a minute.
    #[arg(long)]
    quick: bool,
    /// A few seconds of everything, tiny sizes: for the test that checks the last line's shape
    /// (the figures mean nothing).
    #[arg(long, hide = true, conflicts_with = "quick")]
    smoke: bool,
    /// Profiling aid: log in, then make only `--profile-requests` in-process requests of one
    /// configuration, inside `profile_loop` (for `valgrind --tool=callgrind
    /// --toggle-collect='*profile_loop*'`); prints no figures.
    #[arg(long, value_enum, value_name = "CONFIG")]
    profile: Option<ProfileConfig>,
    /// Requests made by `--profile`.
    #[arg(long, default_value_t = 20_000)]
    profile_requests: usize,
    /// Harness check: over loopback, a second bare server stands in for this project's app
    /// (same cookie, same paths), so the three ratios measure the harness's own bias and should
    /// come out near 1 (`auth_vs_identity` near the cookie's cost alone). The rest of the run is
    /// as usual.
    #[arg(long, conflicts_with = "profile")]
    null_check: bool,
}

/// The request configurations `--profile` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProfileConfig {
    /// The bare app, `/me` with this project's session cookie.
    Bare,
    /// actix-identity, `/me` with its cookie.
    Identity,
    /// This project, `/me` with its cookie.
    Audius,
    /// The bare app, `/page` without a cookie.
    BareAnon,
    /// This project, `/page` without a cookie.
    AudiusAnon,
}

/// How much of everything.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    /// `--null-check`: a second bare server in place of this project's app over loopback.
    null_check: bool,
    /// Generated sandbox users (tokens are deterministic per user per second).
    users: usize,
    /// Interleaved rounds of the request figures.
    rounds: usize,
    /// In process: time per app per round.
    inproc_round: Duration,
    /// Loopback HTTP: time per app per round, and connections.
    http_round: Duration,
    http_connections: usize,
    /// Logins per verifier, in rounds alternating the verifiers, and concurrent flows.
    logins: usize,
    login_rounds: usize,
    login_concurrency: usize,
    /// Callbacks timed alone (local verifier).
    callbacks: usize,
    /// Memory run: logins, authenticated requests after each, replay and user cache sizes. The
    /// replay cache never forgets a live entry and refuses logins when full: it holds two
    /// entries a login (token and state), so it is sized never to fill, and its entries live
    /// seconds ([`MEM_TOKEN_AGE`], [`MEM_ATTEMPT_TTL`]) so that it reaches a steady size.
    mem_logins: usize,
    mem_requests_per_login: usize,
    mem_replay_capacity: usize,
    mem_user_capacity: usize,
    /// Token verification: rounds and iterations per round.
    verify_rounds: usize,
    verify_iterations: usize,
}

impl Plan {
    /// Tiny sizes, for the shape test (`--smoke`).
    fn smoke() -> Self {
        Self {
            quick: true,
            null_check: false,
            users: 120,
            rounds: 1,
            inproc_round: Duration::from_millis(5),
            http_round: Duration::from_millis(40),
            http_connections: 2,
            logins: 20,
            login_rounds: 2,
            login_concurrency: 2,
            callbacks: 8,
            mem_logins: 20,
            mem_requests_per_login: 2,
            mem_replay_capacity: 2 * 20,
            mem_user_capacity: 10,
            verify_rounds: 1,
            verify_iterations: 5,
        }
    }

    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                null_check: false,
                users: 2_000,
                rounds: 5,
                inproc_round: Duration::from_millis(80),
                http_round: Duration::from_millis(250),
                http_connections: 8,
                logins: 600,
                login_rounds: 3,
                login_concurrency: 4,
                callbacks: 500,
                mem_logins: 2_000,
                mem_requests_per_login: 10,
                mem_replay_capacity: 2 * 2_000,
                mem_user_capacity: 250,
                verify_rounds: 7,
                verify_iterations: 300,
            }
        } else {
            Self {
                quick,
                null_check: false,
                users: 5_000,
                rounds: 15,
                inproc_round: Duration::from_millis(400),
                http_round: Duration::from_secs(1),
                http_connections: 8,
                logins: 4_000,
                login_rounds: 5,
                login_concurrency: 4,
                callbacks: 2_000,
                mem_logins: 10_000,
                mem_requests_per_login: 10,
                mem_replay_capacity: 2 * 10_000,
                mem_user_capacity: 1_000,
                verify_rounds: 25,
                verify_iterations: 2_000,
            }
        }
    }
}

/// The last line: the headline figures.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Report {
    auth_vs_identity: f64,
    auth_vs_bare: f64,
    anon_vs_bare: f64,
    logins_per_s_api: f64,
    logins_per_s_local: f64,
    callback_p99_us_local: f64,
    verify_vs_libsecp256k1: f64,
    session_cookie_bytes: u64,
    rss_growth_ratio: f64,
}

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The `Cookie` request header a browser sends back for this `Set-Cookie`: `name=value`, the
/// value percent-encoded as actix-web sends it. Its length is what counts against a browser's
/// 4 KiB cookie limit.
fn cookie_header(cookie: &Cookie<'_>) -> String {
    cookie.stripped().encoded().to_string()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    if let Some(config) = args.profile {
        return match profile(config, args.profile_requests) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("audius-login-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut plan = if args.smoke {
        Plan::smoke()
    } else {
        Plan::new(args.quick)
    };
    plan.null_check = args.null_check;
    match run(&plan) {
        Ok(report) => {
            say(format!("done in {:.1} s", started.elapsed().as_secs_f64()));
            match serde_json::to_string(&report) {
                Ok(json) => {
                    say(json);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("audius-login-bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("audius-login-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--profile`: the apps and cookies of the request figures, then `n` requests of one
/// configuration in [`profile_loop`].
fn profile(config: ProfileConfig, n: usize) -> BenchResult<()> {
    let (sandbox_runtime, sandbox) = login::start_sandbox(login::bench_users(0)?, 100)?;
    let key = apps::key();
    let audius = audius_builder(&sandbox, VerifierKind::Local).build()?;
    actix_rt::System::new().block_on(async {
        let audius_app = test::init_service(apps::audius_app(key.clone(), audius.clone())).await;
        let bare_app = test::init_service(apps::bare_app(key.clone())).await;
        let identity_app = test::init_service(apps::identity_app(key.clone())).await;
        let audius_cookie =
            actix_audius_login::testing::sign_in_service(&audius_app, &audius, "artist").await?;
        let audius_cookie = cookie_header(&audius_cookie);
        let identity_cookie = cookie_header(&identity_login(&identity_app).await?);
        let (audius_cookie, identity_cookie) = (audius_cookie.as_str(), identity_cookie.as_str());
        let start = Instant::now();
        match config {
            ProfileConfig::Bare => profile_loop(&bare_app, AUTH_PATH, Some(audius_cookie), n).await,
            ProfileConfig::Identity => {
                profile_loop(&identity_app, AUTH_PATH, Some(identity_cookie), n).await
            }
            ProfileConfig::Audius => {
                profile_loop(&audius_app, AUTH_PATH, Some(audius_cookie), n).await
            }
            ProfileConfig::BareAnon => profile_loop(&bare_app, PAGE_PATH, None, n).await,
            ProfileConfig::AudiusAnon => profile_loop(&audius_app, PAGE_PATH, None, n).await,
        }
        say(format!(
            "profiled {n} requests ({config:?}) in {:.3} s",
            start.elapsed().as_secs_f64()
        ));
        Ok::<_, BenchError>(())
    })?;
    sandbox_runtime.block_on(sandbox.stop());
    Ok(())
}

/// `n` in-process requests; the only place `--profile` spends time in, by name.
#[inline(never)]
async fn profile_loop<S, B>(app: &S, path: &str, cookie: Option<&str>, n: usize)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    for _ in 0..n {
        let res = test::call_service(app, get(path, cookie)).await;
        assert_eq!(res.status().as_u16(), 200, "{path}");
        drop(black_box(res));
    }
}

/// What the in-process part hands to the loopback part.
struct InProcess {
    identity_cookie: String,
    audius_cookie: String,
}

fn run(plan: &Plan) -> BenchResult<Report> {
    say(format!("machine: {}", machine()));
    say(format!(
        "mode: {}",
        if plan.quick {
            "--quick (fewer, shorter rounds; memory run scaled down to 2,000 logins and 20,000 \
             requests)"
        } else {
            "full"
        }
    ));
    let setup = Instant::now();
    let (sandbox_runtime, sandbox) = login::start_sandbox(login::bench_users(plan.users)?, 2_000)?;
    let sandbox = Arc::new(sandbox);
    say(format!(
        "sandbox: {} users on {} (started in {:.2} s)",
        sandbox.users().len(),
        sandbox.base_url(),
        setup.elapsed().as_secs_f64()
    ));
    let mut report = Report::default();
    let key = apps::key();

    let system = actix_rt::System::new();
    let in_process = system.block_on(in_process_figures(plan, &sandbox, &key, &mut report))?;
    drop(system);

    loopback_figures(plan, &sandbox, &key, &in_process, &mut report)?;

    if let Ok(sandbox) = Arc::try_unwrap(sandbox) {
        sandbox_runtime.block_on(sandbox.stop());
    }
    Ok(report)
}

async fn in_process_figures(
    plan: &Plan,
    sandbox: &Arc<SandboxHandle>,
    key: &Key,
    report: &mut Report,
) -> BenchResult<InProcess> {
    let sandbox_addr = login::sandbox_addr(sandbox)?;
    let handles: Vec<String> = (0..plan.users).map(bench_handle).collect();
    let picker = Rc::new(RefCell::new(UserPicker::new(handles)));

    // 6. Memory first, on a fresh heap.
    report.rss_growth_ratio =
        round3(memory(plan, sandbox, sandbox_addr, key, picker.clone()).await?);

    // 5. Session size, and the cookie the request figures use.
    let audius = audius_builder(sandbox, VerifierKind::Local).build()?;
    let audius_app = test::init_service(apps::audius_app(key.clone(), audius.clone())).await;
    let audius_cookie =
        actix_audius_login::testing::sign_in_service(&audius_app, &audius, "artist").await?;
    let bytes = cookie_header(&audius_cookie).len() as u64;
    report.session_cookie_bytes = bytes;
    let mut connection = load::Connection::open(sandbox_addr).await?;
    let pending = start_login(&audius_app, &audius, &mut connection, LONG_USER).await?;
    let (long_cookie, _) = finish_login(&audius_app, pending).await?;
    say(format!(
        "session cookie after login (name=value): {bytes} bytes for @artist (verified, picture, \
         email); {} bytes for the longest profile the sandbox allows (30-character handle, \
         100-character name, 100-character email, picture); goal <= 1024",
        cookie_header(&long_cookie).len()
    ));
    let dump = test::init_service(apps::session_dump_app(key.clone())).await;
    let entries: serde_json::Map<String, serde_json::Value> = test::call_and_read_body_json(
        &dump,
        TestRequest::get()
            .uri("/")
            .cookie(audius_cookie.clone())
            .to_request(),
    )
    .await;
    let plaintext = serde_json::to_string(&entries)?.len();
    let sizes: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{k}: {} bytes", v.as_str().map_or(0, str::len)))
        .collect();
    say(format!(
        "  the session of @artist before encryption: {plaintext} bytes of JSON ({}); the cookie \
         adds the AES-GCM nonce and tag, base64 and percent-encoding",
        sizes.join(", ")
    ));
    if let Some(user) = entries.get("audius.user").and_then(|v| v.as_str()) {
        say(format!("  audius.user = {user}"));
    }

    // 1 and 2, in process.
    let bare_app = test::init_service(apps::bare_app(key.clone())).await;
    let identity_app = test::init_service(apps::identity_app(key.clone())).await;
    let identity_cookie = cookie_header(&identity_login(&identity_app).await?);
    let audius_cookie = cookie_header(&audius_cookie);
    say(format!(
        "actix-identity's session cookie: {} bytes",
        identity_cookie.len()
    ));
    let (audius_cookie, identity_cookie) = (audius_cookie.as_str(), identity_cookie.as_str());
    // Sanity: each app accepts its cookie and the audius app refuses a request without one.
    for (status, what) in [
        (
            test::call_service(&bare_app, get(AUTH_PATH, Some(audius_cookie)))
                .await
                .status(),
            "bare /me",
        ),
        (
            test::call_service(&identity_app, get(AUTH_PATH, Some(identity_cookie)))
                .await
                .status(),
            "identity /me",
        ),
        (
            test::call_service(&audius_app, get(AUTH_PATH, Some(audius_cookie)))
                .await
                .status(),
            "audius /me",
        ),
    ] {
        if status.as_u16() != 200 {
            return Err(format!("{what} answered {status}").into());
        }
    }
    let anon = test::call_service(&audius_app, get(AUTH_PATH, None)).await;
    if anon.status().as_u16() != 401 {
        return Err(format!("audius /me without a cookie answered {}", anon.status()).into());
    }
    drop(anon);

    // Interleaved at a fine grain: in each round, blocks of BLOCK requests of every
    // configuration in turn (order rotated), until the round's time is up; a configuration's
    // rate in a round is BLOCK / the BLOCK_QUANTILE of its block times. A block that another
    // process preempted is slow and falls above the quantile; this is what makes the figure
    // hold on a shared machine.
    let mut rates: [Vec<f64>; CONFIGS] = Default::default();
    let rounds = plan.rounds + 1; // the first is a warm-up
    for round in 0..rounds {
        let budget = if round == 0 {
            plan.inproc_round
        } else {
            plan.inproc_round * CONFIGS as u32
        };
        let mut blocks: [Vec<Duration>; CONFIGS] = Default::default();
        let start = Instant::now();
        let mut turn = 0;
        while start.elapsed() < budget {
            for i in 0..CONFIGS {
                let config = (i + turn) % CONFIGS;
                let took = match config {
                    BARE_AUTH => inproc_block(&bare_app, AUTH_PATH, Some(audius_cookie)).await?,
                    IDENTITY_AUTH => {
                        inproc_block(&identity_app, AUTH_PATH, Some(identity_cookie)).await?
                    }
                    AUDIUS_AUTH => {
                        inproc_block(&audius_app, AUTH_PATH, Some(audius_cookie)).await?
                    }
                    BARE_ANON => inproc_block(&bare_app, PAGE_PATH, None).await?,
                    _ => inproc_block(&audius_app, PAGE_PATH, None).await?,
                };
                blocks[config].push(took);
            }
            turn += 1;
        }
        if round > 0 {
            for (config, times) in blocks.iter().enumerate() {
                let q = quantile(times, BLOCK_QUANTILE);
                rates[config].push(BLOCK as f64 / q.as_secs_f64());
            }
        }
    }
    let ratios = Ratios::from_rates(&rates);
    ratios.print(
        &format!(
            "in process (actix_web::test::call_service; interleaved blocks of {BLOCK}, rate from \
             the {:.0}th percentile block time)",
            BLOCK_QUANTILE * 100.0
        ),
        &rates,
    );

    // 3. Logins.
    logins(plan, sandbox, sandbox_addr, key, picker.clone(), report).await?;

    let waits = picker.borrow().waits();
    if waits > 0 {
        say(format!(
            "  note: logins waited {waits} times for a user free to log in (more users needed)"
        ));
    }

    // 4. Token verification.
    report.verify_vs_libsecp256k1 = round3(verification(plan, sandbox).await?);

    Ok(InProcess {
        identity_cookie: identity_cookie.to_owned(),
        audius_cookie: audius_cookie.to_owned(),
    })
}

/// Logs the identity app in (`Identity::login`) and returns its session cookie.
async fn identity_login<S, B>(app: &S) -> BenchResult<Cookie<'static>>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(
        app,
        TestRequest::get().uri(IDENTITY_LOGIN_PATH).to_request(),
    )
    .await;
    res.response()
        .cookies()
        .next()
        .map(|c| c.into_owned())
        .ok_or_else(|| "the identity login set no cookie".into())
}

/// A `GET` with a ready-made `Cookie` header (built once, as a browser would send it).
fn get(path: &str, cookie: Option<&str>) -> actix_http::Request {
    let mut req = TestRequest::get().uri(path);
    if let Some(cookie) = cookie {
        req = req.insert_header((actix_web::http::header::COOKIE, cookie));
    }
    req.to_request()
}

/// The request configurations, in round order.
const CONFIGS: usize = 5;
const BARE_AUTH: usize = 0;
const IDENTITY_AUTH: usize = 1;
const AUDIUS_AUTH: usize = 2;
const BARE_ANON: usize = 3;
const AUDIUS_ANON: usize = 4;
const CONFIG_NAMES: [&str; CONFIGS] = [
    "bare, /me with the session cookie",
    "actix-identity, /me (Identity)",
    "audius, /me (AudiusUser)",
    "bare, /page without a cookie",
    "audius, /page without a cookie (Option<AudiusUser>)",
];

/// Callbacks per round of the callback latency figure.
const CALLBACK_ROUND: usize = 100;

/// Verifications per block of the verification figure.
const VERIFY_BLOCK: usize = 20;

/// One run of one configuration over loopback.
const HTTP_CHUNK: Duration = Duration::from_millis(40);

/// The rate a round takes from its chunks' rates: the one above 80% of them (the 20th
/// percentile of the time per request), past the chunks another process slowed down.
fn upper_quantile(rates: &[f64]) -> f64 {
    if rates.is_empty() {
        return f64::NAN;
    }
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((1.0 - BLOCK_QUANTILE) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Requests per in-process block.
const BLOCK: usize = 32;
/// The quantile of block times a round's rate is taken from.
const BLOCK_QUANTILE: f64 = 0.2;

/// The `q`-quantile (0 to 1) of `times`, nearest rank; zero when empty.
fn quantile(times: &[Duration], q: f64) -> Duration {
    percentile(times, q * 100.0)
}

/// The time of [`BLOCK`] in-process requests on `app` (each must answer 200).
async fn inproc_block<S, B>(app: &S, path: &str, cookie: Option<&str>) -> BenchResult<Duration>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut failed = 0usize;
    let start = Instant::now();
    for _ in 0..BLOCK {
        let res = test::call_service(app, get(path, cookie)).await;
        if res.status().as_u16() != 200 {
            failed += 1;
        }
        drop(black_box(res));
    }
    let took = start.elapsed();
    if failed > 0 {
        return Err(format!("{failed} of {BLOCK} requests to {path} failed").into());
    }
    Ok(took)
}

/// Per-round ratios, and their medians.
struct Ratios {
    auth_vs_identity: f64,
    auth_vs_bare: f64,
    anon_vs_bare: f64,
    per_round: [Vec<f64>; 3],
}

impl Ratios {
    fn from_rates(rates: &[Vec<f64>; CONFIGS]) -> Self {
        let per = |num: usize, den: usize| -> Vec<f64> {
            rates[num]
                .iter()
                .zip(&rates[den])
                .map(|(n, d)| n / d)
                .collect()
        };
        let per_round = [
            per(AUDIUS_AUTH, IDENTITY_AUTH),
            per(AUDIUS_AUTH, BARE_AUTH),
            per(AUDIUS_ANON, BARE_ANON),
        ];
        Self {
            auth_vs_identity: median(&per_round[0]),
            auth_vs_bare: median(&per_round[1]),
            anon_vs_bare: median(&per_round[2]),
            per_round,
        }
    }

    fn print(&self, what: &str, rates: &[Vec<f64>; CONFIGS]) {
        say(format!(
            "requests, {what}: median of {} rounds",
            rates[0].len()
        ));
        for (name, r) in CONFIG_NAMES.iter().zip(rates) {
            let (lo, hi) = min_max(r);
            say(format!(
                "  {name}: {:.0} req/s (rounds {lo:.0} to {hi:.0})",
                median(r)
            ));
        }
        for (label, value, goal, r) in [
            (
                "audius / identity (authenticated)",
                self.auth_vs_identity,
                1.0,
                &self.per_round[0],
            ),
            (
                "audius / bare (authenticated)",
                self.auth_vs_bare,
                0.9,
                &self.per_round[1],
            ),
            (
                "audius / bare (anonymous)",
                self.anon_vs_bare,
                0.97,
                &self.per_round[2],
            ),
        ] {
            let (lo, hi) = min_max(r);
            say(format!(
                "  {label}: {value:.3} (rounds {lo:.3} to {hi:.3}; goal >= {goal}: {})",
                if value >= goal { "met" } else { "MISSED" }
            ));
        }
    }
}

/// The memory run's maximum token age (its tokens live in the replay cache this long plus twice
/// [`MEM_CLOCK_SKEW`]).
const MEM_TOKEN_AGE: Duration = Duration::from_secs(2);
/// The memory run's clock skew.
const MEM_CLOCK_SKEW: Duration = Duration::from_secs(1);
/// The memory run's login attempt lifetime (its consumed states live in the replay cache up to
/// this long and a second; the run pauses this long and a second between its halves).
const MEM_ATTEMPT_TTL: Duration = Duration::from_secs(5);

async fn memory(
    plan: &Plan,
    sandbox: &SandboxHandle,
    sandbox_addr: SocketAddr,
    key: &Key,
    picker: Rc<RefCell<UserPicker>>,
) -> BenchResult<f64> {
    let replay = Arc::new(MemoryReplayCache::new(plan.mem_replay_capacity));
    let audius = audius_builder(sandbox, VerifierKind::Local)
        .replay_cache(replay.clone())
        .user_cache_capacity(plan.mem_user_capacity)
        .verify_options(
            VerifyOptions::default()
                .max_age(Some(MEM_TOKEN_AGE))
                .clock_skew(MEM_CLOCK_SKEW),
        )
        .attempt_ttl(MEM_ATTEMPT_TTL)
        .build()?;
    let app = Rc::new(test::init_service(apps::audius_app(key.clone(), audius.clone())).await);
    let directory = audius
        .user_directory()
        .ok_or("the built-in verifier has a user directory")?
        .clone();
    let start = rss_bytes().ok_or("VmRSS is not readable")?;
    let half = plan.mem_logins / 2;
    let mut after = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // Let the first half's replay entries expire (tokens: the maximum age plus twice
            // the skew; states: the rest of the attempt's lifetime, and a second): the second
            // half's first login drops them, so the cache is measured at its steady size, not
            // growing because the run is shorter than its entries' lifetime.
            actix_web::rt::time::sleep(MEM_ATTEMPT_TTL + Duration::from_secs(1)).await;
        }
        let run: LoginRun = run_logins(
            app.clone(),
            &audius,
            sandbox_addr,
            picker.clone(),
            half,
            plan.login_concurrency,
            plan.mem_requests_per_login,
        )
        .await?;
        let rss = rss_bytes().ok_or("VmRSS is not readable")?;
        say(format!(
            "memory: +{} logins and +{} authenticated requests in {:.1} s; RSS {:.1} MiB; replay \
             cache {}/{}; user cache {}/{}",
            run.logins,
            run.requests,
            run.elapsed.as_secs_f64(),
            mib(rss),
            replay.len(),
            replay.capacity(),
            directory.cached(),
            directory.capacity()
        ));
        after.push(rss);
    }
    let ratio = after[1] as f64 / after[0] as f64;
    say(format!(
        "memory: RSS {:.1} MiB at the start, {:.1} MiB after the first half, {:.1} MiB after the \
         second ({} logins, {} requests in all): growth ratio {ratio:.3}",
        mib(start),
        mib(after[0]),
        mib(after[1]),
        half * 2,
        half * 2 * plan.mem_requests_per_login
    ));
    Ok(ratio)
}

async fn warm_user_cache(audius: &AudiusLogin, users: usize) -> BenchResult<()> {
    let directory = audius
        .user_directory()
        .ok_or("the built-in verifier has a user directory")?
        .clone();
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let directory = directory.clone();
        tasks.push(actix_rt::spawn(async move {
            for i in (w..users).step_by(workers) {
                directory
                    .user(UserId::new(1_000_000 + i as u64))
                    .await?
                    .ok_or("a bench user is missing")?;
            }
            Ok::<_, BenchError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Reads every bench user's record again into the user cache (whatever its age).
async fn refresh_user_cache(audius: &AudiusLogin, users: usize) -> BenchResult<()> {
    let directory = audius
        .user_directory()
        .ok_or("the built-in verifier has a user directory")?
        .clone();
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let directory = directory.clone();
        tasks.push(actix_rt::spawn(async move {
            for i in (w..users).step_by(workers) {
                directory
                    .fetch_user(UserId::new(1_000_000 + i as u64))
                    .await?
                    .ok_or("a bench user is missing")?;
            }
            Ok::<_, BenchError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn logins(
    plan: &Plan,
    sandbox: &SandboxHandle,
    sandbox_addr: SocketAddr,
    key: &Key,
    picker: Rc<RefCell<UserPicker>>,
    report: &mut Report,
) -> BenchResult<()> {
    let api = audius_builder(sandbox, VerifierKind::Api).build()?;
    let local = audius_builder(sandbox, VerifierKind::Local).build()?;
    let api_app = Rc::new(test::init_service(apps::audius_app(key.clone(), api.clone())).await);
    let local_app = Rc::new(test::init_service(apps::audius_app(key.clone(), local.clone())).await);
    let warm = Instant::now();
    warm_user_cache(&api, plan.users).await?;
    warm_user_cache(&local, plan.users).await?;
    say(format!(
        "logins: user caches warmed with {} users each in {:.2} s",
        plan.users,
        warm.elapsed().as_secs_f64()
    ));
    let per_round = plan.logins / plan.login_rounds;
    let (mut api_rates, mut local_rates) = (Vec::new(), Vec::new());
    for round in 0..plan.login_rounds {
        for which in [round % 2, 1 - round % 2] {
            let (app, audius, rates) = if which == 0 {
                (&api_app, &api, &mut api_rates)
            } else {
                (&local_app, &local, &mut local_rates)
            };
            let run = run_logins(
                app.clone(),
                audius,
                sandbox_addr,
                picker.clone(),
                per_round,
                plan.login_concurrency,
                0,
            )
            .await?;
            rates.push(run.per_second());
        }
    }
    report.logins_per_s_api = round1(median(&api_rates));
    report.logins_per_s_local = round1(median(&local_rates));
    let (alo, ahi) = min_max(&api_rates);
    let (llo, lhi) = min_max(&local_rates);
    say(format!(
        "logins (login route, sandbox login page over loopback, callback; {} flows at once; \
         median of {} rounds of {per_round}): API verifier {:.0}/s ({alo:.0} to {ahi:.0}), local \
         verifier {:.0}/s ({llo:.0} to {lhi:.0})",
        plan.login_concurrency,
        plan.login_rounds,
        report.logins_per_s_api,
        report.logins_per_s_local,
    ));

    // The callback alone: logins started and approved first, then only the callbacks, timed one
    // at a time, while watching the sandbox's request log.
    for (name, app, audius, n) in [
        ("local", &local_app, &local, plan.callbacks),
        ("API", &api_app, &api, plan.callbacks / 4),
    ] {
        let mut connection = load::Connection::open(sandbox_addr).await?;
        let mut pending = Vec::with_capacity(n);
        while pending.len() < n {
            let next = picker.borrow_mut().next_user();
            let Some(handle) = next else {
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            pending.push(start_login(&**app, audius, &mut connection, &handle).await?);
        }
        // A login is judged against a user record read within the directory's refetch interval
        // (30 s by default): records read longer ago (at the warm-up, before the rounds above)
        // are read again now, outside the timed part, so that the callbacks run on a warm cache.
        refresh_user_cache(audius, plan.users).await?;
        let last_seq = sandbox.requests().last().map(|r| r.seq);
        let mut times = Vec::with_capacity(n);
        for p in pending {
            let (_, took) = finish_login(&**app, p).await?;
            times.push(took);
        }
        let during = sandbox
            .requests()
            .iter()
            .filter(|r| last_seq.is_none_or(|s| r.seq > s))
            .count();
        let us = |p: f64| percentile(&times, p).as_secs_f64() * 1e6;
        say(format!(
            "callback alone, {name} verifier, warm user cache ({n} callbacks, one at a time): p50 \
             {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us; sandbox requests during them: \
             {during}",
            us(50.0),
            us(90.0),
            us(99.0),
            us(100.0)
        ));
        // Consecutive rounds of CALLBACK_ROUND callbacks: another process that takes the core
        // mid-callback adds its time slice to that callback, so on a shared machine the p99 of
        // the whole run measures the neighbours; the quietest round's p99 measures the handler.
        let round_p99: Vec<f64> = times
            .chunks(CALLBACK_ROUND)
            .filter(|c| c.len() == CALLBACK_ROUND || times.len() < CALLBACK_ROUND)
            .map(|c| percentile(c, 99.0).as_secs_f64() * 1e6)
            .collect();
        let (quietest, _) = min_max(&round_p99);
        say(format!(
            "  p99 per round of {CALLBACK_ROUND}: quietest {quietest:.0} us, median {:.0} us \
             ({} rounds)",
            median(&round_p99),
            round_p99.len()
        ));
        if name == "local" {
            report.callback_p99_us_local = round1(quietest);
            if during > 0 {
                say("  WARNING: the local verifier used the network during the measured callbacks");
            }
        }
    }
    Ok(())
}

async fn verification(plan: &Plan, sandbox: &SandboxHandle) -> BenchResult<f64> {
    let artist = sandbox.user("artist").ok_or("no built-in artist")?;
    let token = sandbox.mint_token(artist, TokenOverrides::default());
    let (signed, segment) = token.rsplit_once('.').ok_or("a token has three segments")?;
    let signature = Signature::from_segment(segment)?;
    let bytes = *signature.as_bytes();
    let recid = RecoveryId::from_u8_masked(signature.recovery_id().ok_or("v is 27 or 28")?);
    let hash = eip191_hash(signed.as_bytes());
    let verifier = LocalVerifier::new(ApiClient::new(sandbox.base_url())?);
    let expected = verifier.verify(&token).await?; // warms the user cache
    let n = plan.verify_iterations;

    // Interleaved blocks of VERIFY_BLOCK of each, order alternating, `n` of each per round; a
    // round's time per verification is the BLOCK_QUANTILE of its block times.
    let raw = |k: usize| -> BenchResult<Duration> {
        let start = Instant::now();
        for _ in 0..k {
            let sig = RecoverableSignature::from_compact(black_box(&bytes[..64]), recid)?;
            black_box(sig.recover_ecdsa(Message::from_digest(black_box(hash)))?);
        }
        Ok(start.elapsed())
    };
    let parse = |k: usize| -> BenchResult<Duration> {
        let start = Instant::now();
        for _ in 0..k {
            black_box(Token::parse_and_recover(black_box(&token), 16 * 1024)?);
        }
        Ok(start.elapsed())
    };
    let (mut full_ratios, mut parse_ratios) = (Vec::new(), Vec::new());
    let (mut raw_us, mut full_us) = (Vec::new(), Vec::new());
    let k = VERIFY_BLOCK.min(n.max(1));
    for round in 0..=plan.verify_rounds {
        let (mut rs, mut ps, mut fs) = (Vec::new(), Vec::new(), Vec::new());
        for block in 0..n.div_ceil(k) {
            if block % 2 == 0 {
                rs.push(raw(k)?);
                ps.push(parse(k)?);
                fs.push(verify_loop(&verifier, &token, k).await?);
            } else {
                fs.push(verify_loop(&verifier, &token, k).await?);
                ps.push(parse(k)?);
                rs.push(raw(k)?);
            }
        }
        if round == 0 {
            continue; // warm-up
        }
        let (r, p, f) = (
            quantile(&rs, BLOCK_QUANTILE),
            quantile(&ps, BLOCK_QUANTILE),
            quantile(&fs, BLOCK_QUANTILE),
        );
        full_ratios.push(f.as_secs_f64() / r.as_secs_f64());
        parse_ratios.push(p.as_secs_f64() / r.as_secs_f64());
        raw_us.push(r.as_secs_f64() * 1e6 / k as f64);
        full_us.push(f.as_secs_f64() * 1e6 / k as f64);
    }
    black_box(expected);
    let ratio = median(&full_ratios);
    say(format!(
        "token verification (median of {} rounds of {n}, interleaved blocks of {k}): raw libsecp256k1 recovery {:.1} us; \
         LocalVerifier::verify, warm cache {:.1} us = {ratio:.3}x; Token::parse_and_recover \
         alone {:.3}x",
        plan.verify_rounds,
        median(&raw_us),
        median(&full_us),
        median(&parse_ratios)
    ));
    Ok(ratio)
}

async fn verify_loop(verifier: &LocalVerifier, token: &str, n: usize) -> BenchResult<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        black_box(verifier.verify(black_box(token)).await?);
    }
    Ok(start.elapsed())
}

/// Runs one app's HTTP server (one worker) on a thread of its own.
fn spawn_server(
    build: impl FnOnce() -> std::io::Result<(Server, SocketAddr)> + Send + 'static,
) -> BenchResult<(SocketAddr, ServerHandle)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                match build() {
                    Ok((server, addr)) => {
                        let _ = tx.send(Ok((addr, server.handle())));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    Ok(rx.recv()??)
}

/// Where a server's worker thread writes its `schedstat` path when it builds its app.
type ThreadSlot = Arc<std::sync::Mutex<Option<String>>>;

fn record_thread(slot: &ThreadSlot) {
    if let Ok(mut s) = slot.lock() {
        *s = load::current_thread_schedstat();
    }
}

fn recorded_thread(slot: &ThreadSlot) -> Option<String> {
    slot.lock().ok().and_then(|s| s.clone())
}

/// Starts a one-worker server of the app built by `$app`; the worker records its thread.
macro_rules! server {
    ($slot:expr, $core:expr, $app:expr) => {{
        let slot: ThreadSlot = $slot.clone();
        let core: Option<core_affinity::CoreId> = $core;
        spawn_server(move || {
            let server = actix_web::HttpServer::new(move || {
                record_thread(&slot);
                if let Some(core) = core {
                    pin(core, "a server worker");
                }
                $app
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))?;
            let addr = server.addrs()[0];
            Ok((server.run(), addr))
        })?
    }};
}

/// Cores for the loopback figures: the load generator on the first, the server workers on the
/// last, so that neither runs on the other's core between requests. Left to the scheduler, the
/// two move between the cores of a 2-core machine, and a server's CPU time per request swings
/// by a third from one 40 ms run to the next with where the generator happened to be. `None`
/// with fewer than two cores.
fn loopback_cores() -> Option<(core_affinity::CoreId, core_affinity::CoreId)> {
    let ids = core_affinity::get_core_ids()?;
    Some((*ids.first()?, *ids.get(1..)?.last()?))
}

/// Pins the current thread to `core`; says so when the system refuses (the figures are then
/// taken unpinned, as before pinning existed).
fn pin(core: core_affinity::CoreId, who: &str) {
    if !core_affinity::set_for_current(core) {
        say(format!(
            "loopback: could not pin {who} to core {}: it runs where the scheduler puts it",
            core.id
        ));
    }
}

fn loopback_figures(
    plan: &Plan,
    sandbox: &SandboxHandle,
    key: &Key,
    cookies: &InProcess,
    report: &mut Report,
) -> BenchResult<()> {
    let audius = audius_builder(sandbox, VerifierKind::Local).build()?;
    let (k1, k2, k3) = (key.clone(), key.clone(), key.clone());
    let slots: [ThreadSlot; 3] = Default::default();
    let cores = loopback_cores();
    match cores {
        Some((client, server)) => say(format!(
            "loopback: load generator pinned to core {}, server workers to core {}",
            client.id, server.id
        )),
        None => say("loopback: fewer than two cores: nothing pinned"),
    }
    let server_core = cores.map(|(_, server)| server);
    let (bare_addr, bare) = server!(slots[0], server_core, apps::bare_app(k1.clone()));
    let (identity_addr, identity) = server!(slots[1], server_core, apps::identity_app(k2.clone()));
    let (audius_addr, audius_server) = if plan.null_check {
        say("loopback: NULL CHECK: the \"audius\" rows below are a second bare server");
        server!(slots[2], server_core, apps::bare_app(k3.clone()))
    } else {
        server!(
            slots[2],
            server_core,
            apps::audius_app(k3.clone(), audius.clone())
        )
    };
    // The workers build their apps as they start: wait for them to say which thread they are.
    let waiting = Instant::now();
    while slots.iter().any(|s| recorded_thread(s).is_none())
        && waiting.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let target =
        |addr: SocketAddr, slot: &ThreadSlot, path: &str, cookie: Option<&String>| LoadTarget {
            addr,
            path: path.to_owned(),
            cookie: cookie.cloned(),
            server_thread: recorded_thread(slot),
        };
    let targets: [LoadTarget; CONFIGS] = [
        target(
            bare_addr,
            &slots[0],
            AUTH_PATH,
            Some(&cookies.audius_cookie),
        ),
        target(
            identity_addr,
            &slots[1],
            AUTH_PATH,
            Some(&cookies.identity_cookie),
        ),
        target(
            audius_addr,
            &slots[2],
            AUTH_PATH,
            Some(&cookies.audius_cookie),
        ),
        target(bare_addr, &slots[0], PAGE_PATH, None),
        target(audius_addr, &slots[2], PAGE_PATH, None),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Interleaved at a fine grain, as in process: in each round, runs of HTTP_CHUNK of every
    // configuration in turn (order rotated) over connections kept open, until the round's time
    // is up; a configuration's rate in a round is the HTTP_QUANTILE of its chunks' rates.
    let mut rates: [Vec<f64>; CONFIGS] = Default::default();
    let mut capacity: [Vec<f64>; CONFIGS] = Default::default();
    let mut busy: [Vec<f64>; CONFIGS] = Default::default();
    // The load generator runs on a thread of its own, pinned to its core (the main thread keeps
    // its affinity for the rest of the run).
    let generate = || -> BenchResult<()> {
        if let Some((client, _)) = cores {
            pin(client, "the load generator");
        }
        runtime.block_on(async {
            let mut pools = Vec::with_capacity(CONFIGS);
            for target in &targets {
                pools.push(load::LoadPool::open(target.clone(), plan.http_connections).await?);
            }
            for round in 0..=plan.rounds {
                let budget = if round == 0 {
                    plan.http_round
                } else {
                    plan.http_round * CONFIGS as u32
                };
                let mut chunk_rates: [Vec<f64>; CONFIGS] = Default::default();
                let mut chunk_capacity: [Vec<f64>; CONFIGS] = Default::default();
                let mut chunk_busy: [Vec<f64>; CONFIGS] = Default::default();
                let start = Instant::now();
                let mut turn = 0;
                while start.elapsed() < budget {
                    for i in 0..CONFIGS {
                        let config = (i + turn) % CONFIGS;
                        let run = pools[config].run(HTTP_CHUNK).await?;
                        if run.failed > 0 {
                            return Err(format!(
                                "{}: {} requests did not answer 200",
                                CONFIG_NAMES[config], run.failed
                            )
                            .into());
                        }
                        chunk_rates[config].push(run.per_second());
                        chunk_capacity[config].extend(run.per_server_cpu_second());
                        chunk_busy[config].extend(run.server_busy());
                    }
                    turn += 1;
                }
                if round > 0 {
                    for config in 0..CONFIGS {
                        rates[config].push(upper_quantile(&chunk_rates[config]));
                        if !chunk_capacity[config].is_empty() {
                            capacity[config].push(upper_quantile(&chunk_capacity[config]));
                        }
                        busy[config].push(median(&chunk_busy[config]));
                    }
                }
            }
            Ok(())
        })
    };
    let result = std::thread::scope(|scope| {
        scope
            .spawn(generate)
            .join()
            .unwrap_or_else(|_| Err("the load generator panicked".into()))
    });
    runtime.block_on(async {
        for handle in [bare, identity, audius_server] {
            handle.stop(false).await;
        }
    });
    result?;
    let ratios = Ratios::from_rates(&rates);
    ratios.print(
        &format!(
            "loopback HTTP/1.1, wall clock ({} keep-alive connections, one request in flight \
             each, interleaved runs of {} ms, {} ms per app per round, server: 1 worker)",
            plan.http_connections,
            HTTP_CHUNK.as_millis(),
            plan.http_round.as_millis()
        ),
        &rates,
    );
    let busy: Vec<String> = busy
        .iter()
        .map(|b| format!("{:.0}%", median(b) * 100.0))
        .collect();
    say(format!(
        "  server worker busy (median per configuration, 100% = the server sets the pace): {}",
        busy.join(", ")
    ));
    // The headline: requests per second of server worker CPU. On a shared 2-core machine the
    // load generator, the server and other processes take turns on the cores, so wall-clock
    // throughput measures the scheduler's share as much as the app; what a saturated worker
    // serves (requests / its CPU time, kernel time included) does not depend on that share.
    let headline = if capacity.iter().all(|c| c.len() == plan.rounds) {
        let per_cpu = Ratios::from_rates(&capacity);
        per_cpu.print(
            "loopback HTTP/1.1, requests per second of server worker CPU (the headline figures)",
            &capacity,
        );
        per_cpu
    } else {
        say("  (the server threads' CPU time is not readable: the headline is wall-clock)");
        ratios
    };
    report.auth_vs_identity = round3(headline.auth_vs_identity);
    report.auth_vs_bare = round3(headline.auth_vs_bare);
    report.anon_vs_bare = round3(headline.anon_vs_bare);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_has_exactly_the_documented_keys() {
        let json = serde_json::to_value(Report::default()).unwrap_or_default();
        let keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, audius_login_bench::REPORT_KEYS);
    }

    #[test]
    fn quick_is_smaller() {
        let (quick, full) = (Plan::new(true), Plan::new(false));
        assert!(quick.rounds < full.rounds && quick.mem_logins < full.mem_logins);
        assert_eq!(full.mem_logins, 10_000);
        assert_eq!(full.mem_logins * full.mem_requests_per_login, 100_000);
    }
}
