//! The world of the suites on the code flow's refresh across two instances
//! (`refresh_two_instances.rs`, `review8_attacks.rs`): a real `redis-server` (the replay cache,
//! which coordinates refreshes), the real sandbox (rotating refresh tokens with reuse
//! detection), two real app servers with the same cookie key behind a "round-robin balancer"
//! (the test sends each request to the next instance), and one browser whose session
//! (actix-session's `CookieSessionStore`, encrypted) holds the tokens.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_audius_login::{AudiusClient, AudiusLogin, Flow, ResponseMode, Scope, VerifyOptions};
use actix_audius_login_testing::TestServer;
use actix_session::storage::{CookieSessionStore, SessionStore};
use actix_web::cookie::Key;
use actix_web::{HttpResponse, web};
use audius_login::clock::ManualClock;
use audius_login::replay::RedisReplayCache;
use audius_sandbox::{DeveloperApp, Sandbox, SandboxHandle};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::app::{app, sessions};
use crate::http;
use crate::redis::RedisServer;
use crate::refresh;

/// The app's API key, registered with the sandbox.
pub const API_KEY: &str = "c0de00c0de00c0de00c0de00c0de00c0de00c0de";
/// The callback URL both instances announce (the balancer's address).
pub const PUBLIC_CALLBACK: &str = "http://localhost:8080/auth/audius/callback";
/// The replay cache's (and so the refresh coordination's) key prefix.
pub const PREFIX: &str = "refresh-test:replay:";
/// The clocks' start (Unix seconds).
pub const START: i64 = 1_750_000_000;
/// Longer than an access token lives (one hour).
pub const EXPIRE: Duration = Duration::from_secs(3601);

/// The sandbox, the clock it shares with both instances, Redis, and the instances A and B.
pub struct World {
    /// The clock the sandbox and both instances judge tokens on.
    pub clock: Arc<ManualClock>,
    /// Audius.
    pub sandbox: SandboxHandle,
    /// The Redis both instances share (the replay cache, and the refresh coordination).
    pub redis: RedisServer,
    /// The session cookies' key, the same on both instances.
    pub key: Key,
    /// A and B.
    pub instances: [TestServer; 2],
    /// The instances' settings (A's, B's).
    pub logins: [AudiusLogin; 2],
}

/// A replay cache on `redis` with the suites' prefix and a 2 s timeout.
pub async fn cache(redis: &RedisServer) -> RedisReplayCache {
    RedisReplayCache::builder(redis.url())
        .key_prefix(PREFIX)
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("Redis answers")
}

/// One instance: the code flow with the replay cache on `redis`, `/me`, and `/audius/me`
/// (`GET /v1/me` through [`AudiusClient`], with the access token's expiry); the sessions in
/// the cookie.
pub async fn instance(
    redis: &RedisServer,
    sandbox: &SandboxHandle,
    clock: &Arc<ManualClock>,
    key: &Key,
) -> (TestServer, AudiusLogin) {
    instance_on(redis, sandbox, clock, key, CookieSessionStore::default).await
}

/// The code flow's settings every instance has: the app's key, `read`, the query channel, the
/// sandbox, the shared clock, the replay cache (and refresh coordination) on `redis`.
pub async fn code_flow_login(
    redis: &RedisServer,
    sandbox: &SandboxHandle,
    clock: &Arc<ManualClock>,
) -> AudiusLogin {
    AudiusLogin::builder("Refresh Test", PUBLIC_CALLBACK)
        .flow(Flow::AuthorizationCode)
        .api_key(API_KEY)
        .scope(Scope::Read)
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .verify_options(VerifyOptions::default().clock(clock.clone()))
        .replay_cache(Arc::new(cache(redis).await))
        .build()
        .unwrap()
}

/// [`instance`] with the sessions in the stores `store` makes (one per worker).
pub async fn instance_on<S: SessionStore + 'static>(
    redis: &RedisServer,
    sandbox: &SandboxHandle,
    clock: &Arc<ManualClock>,
    key: &Key,
    store: impl Fn() -> S + Clone + Send + 'static,
) -> (TestServer, AudiusLogin) {
    let audius = code_flow_login(redis, sandbox, clock).await;
    let key = key.clone();
    let settings = audius.clone();
    let server = TestServer::bind()
        .unwrap()
        .start(move || {
            app(&audius, sessions(store(), &key)).route(
                "/audius/me",
                web::get().to(|client: AudiusClient| async move {
                    let profile = client.me().await?;
                    Ok::<_, actix_web::Error>(HttpResponse::Ok().json(json!({
                        "handle": profile.handle,
                        "expires_at": client.access_token_expires_at().unix_timestamp(),
                    })))
                }),
            )
        })
        .unwrap();
    (server, settings)
}

/// The world, with a `redis-server` of the default settings.
pub async fn world() -> World {
    world_with(&[]).await
}

/// [`world`], with more settings for `redis-server`.
pub async fn world_with(redis_settings: &[&str]) -> World {
    let clock = Arc::new(ManualClock::at_unix(START));
    let redis = RedisServer::start_with(redis_settings).await;
    let app = DeveloperApp::new("Refresh Test", API_KEY, vec![PUBLIC_CALLBACK.to_owned()]).unwrap();
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .app(app)
        .start()
        .await
        .unwrap();
    let key = Key::generate();
    let (a, a_login) = instance(&redis, &sandbox, &clock, &key).await;
    let (b, b_login) = instance(&redis, &sandbox, &clock, &key).await;
    World {
        clock,
        sandbox,
        redis,
        key,
        instances: [a, b],
        logins: [a_login, b_login],
    }
}

/// A browser signed in as `handle`: the login begun on A, finished on B.
pub async fn sign_in(w: &World, handle: &str) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let [a, b] = &w.instances;
    refresh::sign_in_across(
        a.url("/auth/audius/login"),
        PUBLIC_CALLBACK,
        |path| b.url(path),
        handle,
    )
    .await
}

/// `GET /audius/me` on `on`: the status and the JSON body (`null` if none).
pub async fn api_call(client: &reqwest::Client, on: &TestServer) -> (u16, Value) {
    http::get_json(client, on.url("/audius/me")).await
}

/// `count` calls at once, round-robin over the instances.
pub async fn burst(w: &World, client: &reqwest::Client, count: usize) -> Vec<(u16, Value)> {
    join_all((0..count).map(|i| api_call(client, &w.instances[i % 2]))).await
}

/// The refresh requests Audius received.
pub fn refreshes(sandbox: &SandboxHandle) -> usize {
    refresh::refresh_requests(sandbox)
}

/// The tokens in the browser's session cookie (decrypted with the app's key).
pub fn cookie_tokens(w: &World, jar: &reqwest::cookie::Jar) -> Value {
    refresh::session_tokens(jar, &w.instances[0].url("/"), &w.key)
}

/// Asserts the family of the browser's refresh token is alive at Audius (a reuse detection
/// revokes it) and that the cookie holds generation `generation`.
pub fn assert_newest(w: &World, jar: &reqwest::cookie::Jar, generation: u64) -> Value {
    let tokens = cookie_tokens(w, jar);
    assert_eq!(tokens["g"], generation, "the cookie's generation");
    let refresh = tokens["r"].as_str().unwrap();
    assert_eq!(
        w.sandbox.tokens().is_revoked(refresh),
        Some(false),
        "the family is alive at Audius: no reuse was detected"
    );
    tokens
}

/// Asserts every answer is `200` for the listener, with an access token that expires after
/// `after` (a fresh one).
pub fn assert_all_ok(answers: &[(u16, Value)], after: i64) {
    for (status, body) in answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["handle"], "listener");
        assert!(
            body["expires_at"].as_i64().unwrap() > after,
            "a fresh access token was used: {body}"
        );
    }
}

/// The logout's POST, from the browser's own origin (the balancer's).
pub async fn logout(client: &reqwest::Client, on: &TestServer) {
    let res = client
        .post(on.url("/auth/logout"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
}

/// A refresh on instance A during which Redis dies: Audius rotates the tokens, A cannot record
/// them and answers `503`, and the browser keeps the used refresh token. Redis is left stopped;
/// answers the tokens the browser holds.
pub async fn refresh_while_redis_dies(
    w: &mut World,
    client: &reqwest::Client,
    jar: &reqwest::cookie::Jar,
) -> Value {
    let tokens = assert_newest(w, jar, 0);
    // Audius answers the refresh slowly; Redis dies while it is in flight.
    refresh::slow_next_refresh(&w.sandbox, Duration::from_millis(1500));
    w.clock.advance(EXPIRE);
    let call = refresh::spawn_get_json(client, w.instances[0].url("/audius/me"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while refreshes(&w.sandbox) == 0 {
        assert!(
            Instant::now() < deadline,
            "the refresh never reached Audius"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    w.redis.stop().await;
    let (status, body) = call.await.unwrap();
    assert_eq!(
        status, 503,
        "a Redis failure while refreshing is 503: {body}"
    );
    assert_eq!(body["error"], "session_unavailable");
    // The browser still holds the used refresh token.
    assert_eq!(cookie_tokens(w, jar)["r"], tokens["r"]);
    assert_eq!(refreshes(&w.sandbox), 1);
    tokens
}

/// Serves the apps `factory` makes as a deploy runs them: `workers` workers, signals off,
/// `shutdown_timeout` seconds to stop gracefully (stopped with the handle). Gives the server's
/// URL and its handle.
pub fn serve_for_a_deploy<F, T, B>(
    workers: usize,
    shutdown_timeout: u64,
    factory: F,
) -> (String, actix_web::dev::ServerHandle)
where
    F: Fn() -> actix_web::App<T> + Send + Clone + 'static,
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: actix_web::body::MessageBody + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = actix_web::HttpServer::new(factory)
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(shutdown_timeout)
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (url, handle)
}
