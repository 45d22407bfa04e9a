//! Micro-benchmarks of the per-request and per-login pieces.
//!
//! `cargo bench -p audius-login-bench --bench micro`
//!
//! - `extract/*`: `AudiusUser` from a request whose session holds a signed-in user (the session
//!   already loaded, as the session middleware leaves it), against reading a string id from the
//!   same session (what actix-identity's `Identity` extractor does);
//! - `request_authenticated/*`: one in-process request to `/me` with a session cookie, through
//!   the bare app, actix-identity, and this project (session middleware included);
//! - `request_anonymous/*`: one in-process request without a cookie: the bare app, this
//!   project's middleware with a handler reading nothing (the middleware's own cost), and with
//!   a handler taking `Option<AudiusUser>`;
//! - `state/*`: state generation, and the constant-time comparison (equal and different).
//!
//! The core's own pieces alone (token parsing and recovery against raw libsecp256k1, the
//! return-to sanitiser) are benchmarked in the core: `cargo bench -p audius-login --bench verify`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use actix_audius_login::{AudiusLogin, AudiusUser, VerifierKind};
use actix_session::SessionExt as _;
use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::{App, FromRequest as _, HttpMessage as _, HttpRequest, web};
use audius_login::State;
use audius_login_bench::apps::{self, AUTH_PATH, IDENTITY_LOGIN_PATH, PAGE_PATH};
use audius_login_bench::login::{audius_builder, bench_users, start_sandbox};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value};

/// Everything the request benchmarks need: a sandbox, the settings, and the two cookies.
struct Fixture {
    _runtime: tokio::runtime::Runtime,
    _sandbox: audius_sandbox::SandboxHandle,
    audius: AudiusLogin,
    audius_cookie: Cookie<'static>,
    identity_cookie: Cookie<'static>,
    /// The logged-in session's entries (`key -> serialized value`).
    entries: Map<String, Value>,
}

fn fixture(system: &actix_rt::SystemRunner) -> Fixture {
    let (runtime, sandbox) =
        start_sandbox(bench_users(0).expect("users"), 100).expect("the sandbox starts");
    let audius = audius_builder(&sandbox, VerifierKind::Local)
        .build()
        .expect("settings");
    let key = apps::key();
    system.block_on(async {
        let app = test::init_service(apps::audius_app(key.clone(), audius.clone())).await;
        let audius_cookie = actix_audius_login_testing::sign_in_service(&app, &audius, "artist")
            .await
            .expect("logs in");
        let identity = test::init_service(apps::identity_app(key.clone())).await;
        let res = test::call_service(
            &identity,
            TestRequest::get().uri(IDENTITY_LOGIN_PATH).to_request(),
        )
        .await;
        let identity_cookie = res
            .response()
            .cookies()
            .next()
            .expect("identity cookie")
            .into_owned();
        let entries = apps::session_entries_of(&key, &audius_cookie).await;
        Fixture {
            _runtime: runtime,
            _sandbox: sandbox,
            audius: audius.clone(),
            audius_cookie,
            identity_cookie,
            entries,
        }
    })
}

/// A request carrying the logged-in session (loaded) and the settings the middleware adds.
fn signed_in_request(f: &Fixture) -> HttpRequest {
    let req = TestRequest::get().uri(AUTH_PATH).to_http_request();
    let session = req.get_session();
    for (k, v) in &f.entries {
        let value: Value = serde_json::from_str(v.as_str().expect("string values"))
            .expect("session values are JSON");
        session.insert(k.as_str(), value).expect("inserts");
    }
    req.extensions_mut().insert(f.audius.clone());
    req
}

fn extract(c: &mut Criterion, f: &Fixture) {
    let probe = signed_in_request(f);
    let user = AudiusUser::extract(&probe)
        .into_inner()
        .expect("the rebuilt session has a user");
    assert_eq!(user.handle, "artist");
    let mut group = c.benchmark_group("extract");
    group.bench_function("audius_user", |b| {
        b.iter_batched_ref(
            || signed_in_request(f),
            |req| AudiusUser::extract(req).into_inner().expect("a user"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("session_get_string_id", |b| {
        b.iter_batched_ref(
            || {
                let req = TestRequest::get().to_http_request();
                req.get_session()
                    .insert("actix_identity.user_id", apps::IDENTITY_USER_ID)
                    .expect("inserts");
                req
            },
            |req| {
                req.get_session()
                    .get::<String>("actix_identity.user_id")
                    .expect("reads")
                    .expect("an id")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Times `iters` in-process requests (request building included, the same for every app).
fn time_requests<S, B>(
    system: &actix_rt::SystemRunner,
    app: &S,
    path: &str,
    cookie: Option<&Cookie<'static>>,
    iters: u64,
) -> Duration
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    system.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let mut req = TestRequest::get().uri(path);
            if let Some(cookie) = cookie {
                req = req.cookie(cookie.clone());
            }
            let res = test::call_service(app, req.to_request()).await;
            assert_eq!(res.status().as_u16(), 200);
            black_box(res);
        }
        start.elapsed()
    })
}

fn requests(c: &mut Criterion, system: &actix_rt::SystemRunner, f: &Fixture) {
    let key = apps::key();
    let (bare, identity, audius, audius_mw_only) = system.block_on(async {
        (
            test::init_service(apps::bare_app(key.clone())).await,
            test::init_service(apps::identity_app(key.clone())).await,
            test::init_service(apps::audius_app(key.clone(), f.audius.clone())).await,
            test::init_service(
                App::new()
                    .route(AUTH_PATH, web::get().to(|| async { "ok" }))
                    .route(PAGE_PATH, web::get().to(|| async { "ok" }))
                    .configure(f.audius.routes())
                    .wrap(f.audius.middleware())
                    .wrap(apps::session_middleware(&key)),
            )
            .await,
        )
    });
    let mut group = c.benchmark_group("request_authenticated");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| time_requests(system, &bare, AUTH_PATH, Some(&f.audius_cookie), n))
    });
    group.bench_function("actix_identity", |b| {
        b.iter_custom(|n| time_requests(system, &identity, AUTH_PATH, Some(&f.identity_cookie), n))
    });
    group.bench_function("audius", |b| {
        b.iter_custom(|n| time_requests(system, &audius, AUTH_PATH, Some(&f.audius_cookie), n))
    });
    group.finish();

    let mut group = c.benchmark_group("request_anonymous");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| time_requests(system, &bare, PAGE_PATH, None, n))
    });
    group.bench_function("audius_middleware_only", |b| {
        b.iter_custom(|n| time_requests(system, &audius_mw_only, PAGE_PATH, None, n))
    });
    group.bench_function("audius_optional_user", |b| {
        b.iter_custom(|n| time_requests(system, &audius, PAGE_PATH, None, n))
    });
    group.finish();
}

fn state(c: &mut Criterion) {
    let state = State::generate();
    let same = state.secret().to_owned();
    let mut other = State::generate().secret().to_owned();
    if other == same {
        other = State::generate().secret().to_owned();
    }
    assert!(state.matches(&same));
    assert!(!state.matches(&other));
    let mut group = c.benchmark_group("state");
    group.bench_function("generate", |b| b.iter(State::generate));
    group.bench_function("matches_equal", |b| {
        b.iter(|| state.matches(black_box(&same)))
    });
    group.bench_function("matches_different", |b| {
        b.iter(|| state.matches(black_box(&other)))
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let f = fixture(&system);
    extract(c, &f);
    requests(c, &system, &f);
    state(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
