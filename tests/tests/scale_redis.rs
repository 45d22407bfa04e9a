#![allow(clippy::unwrap_used)]
//! Several instances of one app on a shared Redis, as behind a load balancer: two actix-web
//! servers on their own ports with the same cookie key, actix-session's `RedisSessionStore` (in
//! a [`ReconnectingStore`] and a [`GuardedStore`], with the [`SessionStoreGuard`] outermost) and
//! a [`RedisReplayCache`], one sandbox. The `redis-server` is started by the test (see
//! `audius_login_e2e::redis`), and stopped and started again to prove that an outage is a quick
//! `503` and that service resumes without restarting the app.
//!
//! Both instances are configured with the same public callback URL (the load balancer's); the
//! client sends each request to the instance the test chooses. A client's cookies are kept for
//! the host 127.0.0.1, so both instances get them, as behind one load balancer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_audius_login::store::{GuardedStore, ReconnectingStore};
use actix_audius_login::{AudiusLogin, ResponseMode};
use actix_audius_login_testing::TestServer;
use actix_session::storage::RedisSessionStore;
use actix_web::cookie::Key;
use actix_web::web;
use audius_login::replay::RedisReplayCache;
use audius_login_e2e::app::{SESSION_COOKIE, app, sessions as session_middleware};
use audius_login_e2e::http::{self, begin_login, client_with_jar, query_param};
use audius_login_e2e::redis::RedisServer;
use audius_sandbox::{Sandbox, SandboxHandle};
use reqwest::header::ACCEPT;
use url::Url;

/// The callback URL both instances announce (the load balancer's address).
const PUBLIC_CALLBACK: &str = "http://localhost:8080/auth/audius/callback";
/// The bound on every session-store call (generous: a healthy Redis on a busy 2-core machine
/// must never look down).
const STORE_TIMEOUT: Duration = Duration::from_millis(1500);
/// What a `503` may take beyond the store timeouts on a busy 2-core machine: a bound on a
/// hang, not a speed claim.
const SLACK: Duration = Duration::from_secs(5);

/// One instance: an app server of its own.
type Instance = TestServer;

/// The login settings of one instance: its own in-process state, the shared replay cache.
async fn audius(sandbox: &SandboxHandle, redis: &RedisServer) -> AudiusLogin {
    let replay = RedisReplayCache::builder(redis.url())
        .key_prefix("scale-test:replay:")
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("Redis answers");
    AudiusLogin::builder("Scale Test", PUBLIC_CALLBACK)
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .replay_cache(Arc::new(replay))
        .build()
        .unwrap()
}

/// A session store on `redis`, reconnecting after failures, bounded by [`STORE_TIMEOUT`].
async fn session_store(redis: &RedisServer) -> GuardedStore<ReconnectingStore<RedisSessionStore>> {
    let url = redis.url();
    let first = RedisSessionStore::new(url.clone())
        .await
        .expect("Redis answers");
    let store = ReconnectingStore::new(first, move || {
        let url = url.clone();
        async move { RedisSessionStore::new(url).await }
    });
    GuardedStore::new(store).timeout(STORE_TIMEOUT)
}

/// Starts an instance on a free port: the login routes, `/me`, and `/plain` (no session).
async fn start_instance(redis: &RedisServer, sandbox: &SandboxHandle, key: &Key) -> Instance {
    start_split(redis, redis, sandbox, key).await
}

/// [`start_instance`] with the sessions on `sessions` and the replay cache on `replay`.
async fn start_split(
    sessions: &RedisServer,
    replay: &RedisServer,
    sandbox: &SandboxHandle,
    key: &Key,
) -> Instance {
    let audius = audius(sandbox, replay).await;
    let store = session_store(sessions).await;
    let key = key.clone();
    TestServer::bind()
        .unwrap()
        .start(move || {
            app(&audius, session_middleware(store.clone(), &key))
                .route("/plain", web::get().to(|| async { "no session needed" }))
                .wrap(audius.session_store_guard())
        })
        .unwrap()
}

/// Starts a login on `on`; returns the sandbox's login page URL.
async fn begin(client: &reqwest::Client, on: &Instance) -> Url {
    begin_login(client, on.url("/auth/audius/login")).await
}

/// Approves the login page as `handle`; returns the callback's path and query (state, token).
async fn approve(client: &reqwest::Client, page: &Url, handle: &str) -> String {
    let callback = http::approve(client, page, handle).await;
    assert!(callback.as_str().starts_with(PUBLIC_CALLBACK), "{callback}");
    format!("{}?{}", callback.path(), callback.query().unwrap())
}

fn token_of(callback: &str) -> String {
    let url = Url::parse("http://x.invalid")
        .unwrap()
        .join(callback)
        .unwrap();
    query_param(&url, "token").unwrap()
}

/// Replaces the `state` of a callback path with `state`.
fn with_state(callback: &str, state: &str) -> String {
    let url = Url::parse("http://x.invalid")
        .unwrap()
        .join(callback)
        .unwrap();
    let mut fresh = url.clone();
    fresh.query_pairs_mut().clear().extend_pairs(
        url.query_pairs()
            .map(|(k, v)| (k.clone(), if k == "state" { state.into() } else { v })),
    );
    format!("{}?{}", fresh.path(), fresh.query().unwrap())
}

fn state_of(page: &Url) -> String {
    query_param(page, "state").unwrap()
}

async fn deliver(client: &reqwest::Client, on: &Instance, callback: &str) -> reqwest::Response {
    client
        .get(on.url(callback))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
}

async fn me_on(client: &reqwest::Client, on: &Instance) -> reqwest::Response {
    client
        .get(on.url("/me"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
}

async fn handle_on(client: &reqwest::Client, on: &Instance) -> Option<String> {
    let res = me_on(client, on).await;
    match res.status().as_u16() {
        200 => Some(
            res.json::<serde_json::Value>().await.unwrap()["handle"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        401 => None,
        other => panic!("/me answered {other}: {}", res.text().await.unwrap()),
    }
}

fn session_cookie(jar: &reqwest::cookie::Jar, on: &Instance) -> String {
    use reqwest::cookie::CookieStore as _;
    let header = jar
        .cookies(&Url::parse(&on.url("/")).unwrap())
        .expect("a cookie");
    header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| {
            c.strip_prefix(&format!("{SESSION_COOKIE}="))
                .map(str::to_owned)
        })
        .expect("the session cookie")
}

async fn error_code(res: reqwest::Response) -> String {
    let body: serde_json::Value = res.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn login_on_a_finished_on_b_replay_refused_on_b_logout_on_a_seen_by_b() {
    let redis = RedisServer::start().await;
    let sandbox = Sandbox::builder().start().await.unwrap();
    let key = Key::generate();
    let a = start_instance(&redis, &sandbox, &key).await;
    let b = start_instance(&redis, &sandbox, &key).await;

    // Login started on A (the state lives in the Redis session), finished on B.
    let (lena, lena_jar) = client_with_jar();
    let page = begin(&lena, &a).await;
    let callback = approve(&lena, &page, "listener").await;
    let done = deliver(&lena, &b, &callback).await;
    assert_eq!(done.status(), 302, "B accepts the login A started");
    assert_eq!(handle_on(&lena, &a).await.as_deref(), Some("listener"));
    assert_eq!(handle_on(&lena, &b).await.as_deref(), Some("listener"));

    // A token accepted by A...
    let ari = http::client();
    let page = begin(&ari, &a).await;
    let accepted = approve(&ari, &page, "artist").await;
    assert_eq!(deliver(&ari, &a, &accepted).await.status(), 302);
    assert_eq!(handle_on(&ari, &b).await.as_deref(), Some("artist"));
    // ...is refused by B, in a fresh login with a valid state of B's: only the shared replay
    // cache knows it was used.
    let mallory = http::client();
    let fresh = begin(&mallory, &b).await;
    let replay = with_state(&accepted, &state_of(&fresh));
    assert_eq!(token_of(&replay), token_of(&accepted));
    let refused = deliver(&mallory, &b, &replay).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(error_code(refused).await, "replayed_token");
    assert_eq!(handle_on(&mallory, &b).await, None);
    // The state B issued was consumed by the refused attempt; a second try is a state error.
    let again = deliver(&mallory, &b, &replay).await;
    assert_eq!(again.status(), 400, "state consumed");

    // Logout on A is seen by B: the session is deleted in Redis, so even a copy of the old
    // cookie is nobody on B.
    let old_cookie = session_cookie(&lena_jar, &a);
    let out = lena
        .post(a.url("/auth/logout"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert!(
        out.status().is_redirection() || out.status().is_success(),
        "{}",
        out.status()
    );
    assert_eq!(handle_on(&lena, &b).await, None);
    let copy = http::client();
    let res = copy
        .get(b.url("/me"))
        .header(ACCEPT, "application/json")
        .header("cookie", format!("id={old_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "the old session cookie names a deleted session"
    );
    // Ari, signed in through A, is untouched.
    assert_eq!(handle_on(&ari, &b).await.as_deref(), Some("artist"));
}

/// Asserts a `503 session_unavailable` JSON answer, within the store timeouts plus slack.
async fn assert_unavailable(res: reqwest::Response, started: Instant, calls: u32) {
    let took = started.elapsed();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "session_unavailable");
    assert!(
        body["message"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    assert!(
        took < STORE_TIMEOUT * calls + SLACK,
        "a store outage took {took:?} to answer"
    );
}

#[actix_web::test]
async fn redis_down_is_503_within_the_timeout_and_service_resumes() {
    let mut redis = RedisServer::start().await;
    let sandbox = Sandbox::builder().start().await.unwrap();
    let key = Key::generate();
    let a = start_instance(&redis, &sandbox, &key).await;
    let b = start_instance(&redis, &sandbox, &key).await;
    let client = http::client();
    let page = begin(&client, &a).await;
    let callback = approve(&client, &page, "artist").await;
    assert_eq!(deliver(&client, &b, &callback).await.status(), 302);
    assert_eq!(handle_on(&client, &a).await.as_deref(), Some("artist"));

    redis.stop().await;
    for round in 0..2 {
        for instance in [&a, &b] {
            // A request with a session: the load fails.
            let started = Instant::now();
            let res = me_on(&client, instance).await;
            assert_unavailable(res, started, 2).await;
            // Starting a login: the new session cannot be saved.
            let fresh = http::client();
            let started = Instant::now();
            let res = fresh
                .get(instance.url("/auth/audius/login"))
                .header(ACCEPT, "application/json")
                .send()
                .await
                .unwrap();
            assert_unavailable(res, started, 2).await;
            // Browsers get a page saying so.
            let started = Instant::now();
            let res = client
                .get(instance.url("/me"))
                .header(ACCEPT, "text/html")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 503, "round {round}");
            assert!(started.elapsed() < STORE_TIMEOUT * 2 + SLACK);
            let page = res.text().await.unwrap();
            assert!(page.contains("session_unavailable"), "{page}");
            // What needs no session is served.
            let res = fresh.get(instance.url("/plain")).send().await.unwrap();
            assert_eq!(res.status(), 200);
        }
    }

    // Redis is back (empty: nothing was persisted): the same servers serve again. The first
    // requests reconnect; wait for that generously (a bound, not a speed claim).
    redis.restart().await;
    for instance in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let res = me_on(&client, instance).await;
            match res.status().as_u16() {
                // The old session died with the old Redis.
                401 => break,
                503 if Instant::now() < deadline => {
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!(
                    "after Redis came back, /me answered {other}: {}",
                    res.text().await.unwrap()
                ),
            }
        }
    }
    // A full login works again, across instances, with the replay cache on the new Redis.
    let client = http::client();
    let page = begin(&client, &b).await;
    let callback = approve(&client, &page, "listener").await;
    let done = deliver(&client, &a, &callback).await;
    let status = done.status();
    assert_eq!(status, 302, "{}", done.text().await.unwrap());
    assert_eq!(handle_on(&client, &b).await.as_deref(), Some("listener"));
    assert_eq!(handle_on(&client, &a).await.as_deref(), Some("listener"));
}

#[actix_web::test]
async fn replay_cache_down_refuses_the_login_and_service_resumes() {
    // Sessions on one Redis, the replay cache on another, which goes away.
    let sessions = RedisServer::start().await;
    let mut replay = RedisServer::start().await;
    let sandbox = Sandbox::builder().start().await.unwrap();
    let key = Key::generate();
    let a = start_split(&sessions, &replay, &sandbox, &key).await;

    replay.stop().await;
    let client = http::client();
    let page = begin(&client, &a).await;
    let callback = approve(&client, &page, "listener").await;
    let started = Instant::now();
    let refused = deliver(&client, &a, &callback).await;
    // Never an accepted login without the replay check: 503, promptly.
    assert_eq!(refused.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(2) + SLACK);
    assert_eq!(error_code(refused).await, "session_unavailable");
    assert_eq!(handle_on(&client, &a).await, None);

    // Back: the next login is accepted (the cache reconnects on its own).
    replay.restart().await;
    let client = http::client();
    let page = begin(&client, &a).await;
    let callback = approve(&client, &page, "artist").await;
    let done = deliver(&client, &a, &callback).await;
    let status = done.status();
    assert_eq!(status, 302, "{}", done.text().await.unwrap());
    assert_eq!(handle_on(&client, &a).await.as_deref(), Some("artist"));
}
