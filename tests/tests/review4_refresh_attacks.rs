#![allow(clippy::unwrap_used)]
//! Review 4: attacks on the code flow's refresh coordinated across instances on Redis
//! (issue 16). Each test is an attack on one of the promises of SECURITY.md's "Code-flow
//! refresh across instances"; the same world as `refresh_two_instances.rs` (a real
//! `redis-server`, the real sandbox with rotating refresh tokens and reuse detection, two real
//! app servers A and B on one cookie key), with small bounds so that lock expiries happen within
//! a test: the API client's call budget is 4.5 s (one attempt of 2 s, a second's worth for the
//! fail-over formula, a 0.5 s health check) and the cache's timeout 0.5 s, so a shared lock
//! lives 6.5 s and a request waits 7 s at most.
//!
//! Instance A may reach Redis through a [`Proxy`] the test can cut (a network partition
//! between one instance and Redis, while the other still reaches it).
//!
//! Failing when written (review 4, against merge `ac4b31a`), each a way for the session's
//! refresh token to be presented twice (reuse detection, sign-out):
//! `partitioned_holder_lock_expiry_lets_the_other_instance_reuse_the_token`,
//! `partition_healed_after_the_background_publish_gave_up_lets_b_reuse_the_token`,
//! `redis_restarted_empty_after_a_lost_answer_lets_b_reuse_the_token`,
//! `request_future_cancelled_mid_refresh_neither_loses_the_tokens_nor_strands_the_lock`,
//! `a_holder_stalled_past_its_lock_presents_the_token_after_another_instance_did`.
//! The others document defences that held. Fixed since (the in-flight marker, the background
//! publication over the whole in-doubt window, the refresh in a task of its own, the holder's
//! deadline counted from before `begin`); the Redis-that-forgets attack is a documented gap,
//! replaced by `a_redis_that_persists_nothing_is_reported_at_connect`, and the stalled
//! holder's test now expects B's 503 while A's attempt is in doubt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_audius_login::{AudiusClient, AudiusLogin, Flow, ResponseMode, Scope, VerifyOptions};
use actix_audius_login_testing::TestServer;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use actix_web::{FromRequest as _, HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use audius_login::ApiClient;
use audius_login::clock::ManualClock;
use audius_login::replay::{
    BeginRefresh, LockOwner, Published, RedisReplayCache, RefreshCoordination, ReplayCache,
    ReplayKey,
};
use audius_login_e2e::app::{app, sessions};
use audius_login_e2e::http::{self, client_with_jar};
use audius_login_e2e::redis::RedisServer;
use audius_login_e2e::refresh::{self, RedisProxy as Proxy};
use audius_sandbox::{DeveloperApp, Sandbox, SandboxHandle};
use futures_util::future::join_all;
use serde_json::{Value, json};
use url::Url;

const API_KEY: &str = "c0de00c0de00c0de00c0de00c0de00c0de00c0de";
const PUBLIC_CALLBACK: &str = "http://localhost:8080/auth/audius/callback";
const PREFIX: &str = "review4:replay:";
const START: i64 = 1_750_000_000;
/// Longer than an access token lives (one hour).
const EXPIRE: Duration = Duration::from_secs(3601);
/// The cache's timeout (each Redis call).
const CACHE_TIMEOUT: Duration = Duration::from_millis(500);
/// The shared lock's time to live with these bounds: the call budget (2 s × 2 + 0.5 s), two
/// cache calls and a second.
const LOCK_TTL: Duration = Duration::from_millis(6_500);
/// The longest a request may wait for a refresh: the lock's time to live and one cache call.
const WAIT_BOUND: Duration = Duration::from_millis(7_000);
/// How long A's holder stalls after its `begin` was answered (longer than the lock lives).
const STALL: Duration = Duration::from_secs(8);
/// Slack for a busy 2-core machine (a bound on a hang, not a speed claim).
const SLACK: Duration = Duration::from_secs(5);

// ---- A TCP proxy in front of Redis that the test can cut (a partition). ----

// The proxy: `audius_login_e2e::refresh::RedisProxy`.

// ---- The world. ----

struct World {
    clock: Arc<ManualClock>,
    sandbox: SandboxHandle,
    redis: RedisServer,
    key: Key,
    instances: [TestServer; 2],
    /// A's way to Redis, when it goes through a proxy.
    proxy: Option<Proxy>,
    /// A's replay cache, which can stall its holder.
    a_cache: Arc<StallingCache>,
}

/// A's replay cache: Redis, and once armed, a holder that stalls right after its `begin` was
/// answered (its thread blocked, as by a process paused or a CPU-bound task on the refreshes'
/// runtime: the classic objection to leases).
#[derive(Debug)]
struct StallingCache {
    redis: RedisReplayCache,
    stall_after_begin: std::sync::Mutex<Option<Duration>>,
}

#[async_trait]
impl ReplayCache for StallingCache {
    async fn first_use(&self, key: &ReplayKey, ttl: Duration) -> audius_login::Result<bool> {
        self.redis.first_use(key, ttl).await
    }

    async fn seen(&self, key: &ReplayKey) -> audius_login::Result<bool> {
        self.redis.seen(key).await
    }

    fn refresh_coordination(&self) -> Option<&dyn RefreshCoordination> {
        Some(self)
    }
}

#[async_trait]
impl RefreshCoordination for StallingCache {
    fn call_timeout(&self) -> Duration {
        self.redis.call_timeout()
    }

    async fn begin_marked(
        &self,
        family: &str,
        seen_generation: u64,
        owner: &LockOwner,
        lock_ttl: Duration,
        in_doubt_window: Duration,
    ) -> audius_login::Result<BeginRefresh> {
        let answer = self
            .redis
            .begin_marked(family, seen_generation, owner, lock_ttl, in_doubt_window)
            .await;
        let stall = self.stall_after_begin.lock().unwrap().take();
        if let Some(stall) = stall {
            std::thread::sleep(stall);
        }
        answer
    }

    async fn release(&self, family: &str, owner: &LockOwner) -> audius_login::Result<bool> {
        self.redis.release(family, owner).await
    }

    async fn abandon(&self, family: &str, owner: &LockOwner) -> audius_login::Result<bool> {
        self.redis.abandon(family, owner).await
    }

    async fn publish(
        &self,
        family: &str,
        generation: u64,
        tokens: &str,
        ttl: Duration,
    ) -> audius_login::Result<Published> {
        self.redis.publish(family, generation, tokens, ttl).await
    }

    async fn retire(
        &self,
        family: &str,
        ttl: Duration,
    ) -> audius_login::Result<Option<(u64, String)>> {
        self.redis.retire(family, ttl).await
    }
}

async fn cache_at(url: String) -> RedisReplayCache {
    RedisReplayCache::builder(url)
        .key_prefix(PREFIX)
        .timeout(CACHE_TIMEOUT)
        .connect()
        .await
        .expect("Redis answers")
}

async fn instance(
    cache: Arc<dyn ReplayCache>,
    sandbox: &SandboxHandle,
    clock: &Arc<ManualClock>,
    key: &Key,
) -> TestServer {
    let api = ApiClient::builder()
        .base_url(sandbox.environment().api())
        .timeout(Duration::from_secs(2))
        .health_timeout(Duration::from_millis(500))
        .max_attempts(1)
        .build()
        .unwrap();
    assert_eq!(api.call_budget(), Duration::from_millis(4_500));
    let audius = AudiusLogin::builder("Review Four", PUBLIC_CALLBACK)
        .flow(Flow::AuthorizationCode)
        .api_key(API_KEY)
        .scope(Scope::Read)
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .api_client(api)
        .verify_options(VerifyOptions::default().clock(clock.clone()))
        .replay_cache(cache)
        .build()
        .unwrap();
    let key = key.clone();
    TestServer::bind()
        .unwrap()
        .start(move || {
            app(&audius, sessions(CookieSessionStore::default(), &key))
                .route(
                    "/audius/me",
                    web::get().to(|client: AudiusClient| async move {
                        let profile = client.me().await?;
                        Ok::<_, actix_web::Error>(HttpResponse::Ok().json(json!({
                            "handle": profile.handle,
                            "expires_at": client.access_token_expires_at().unix_timestamp(),
                        })))
                    }),
                )
                // An app with a request deadline (300 ms) around the extraction: a
                // cancellation of the request future, as any timeout middleware would do.
                .route(
                    "/audius/in-time",
                    web::get().to(|req: HttpRequest| async move {
                        match tokio::time::timeout(
                            Duration::from_millis(300),
                            AudiusClient::extract(&req),
                        )
                        .await
                        {
                            Ok(Ok(_)) => HttpResponse::Ok().finish(),
                            Ok(Err(_)) => HttpResponse::InternalServerError().finish(),
                            Err(_) => HttpResponse::GatewayTimeout().finish(),
                        }
                    }),
                )
        })
        .unwrap()
}

/// The world; with `partitionable`, A reaches Redis through a [`Proxy`].
async fn world(partitionable: bool) -> World {
    world_with(partitionable, &[]).await
}

/// [`world`], with more settings for `redis-server`.
async fn world_with(partitionable: bool, redis_settings: &[&str]) -> World {
    let clock = Arc::new(ManualClock::at_unix(START));
    let redis = RedisServer::start_with(redis_settings).await;
    let app = DeveloperApp::new("Review Four", API_KEY, vec![PUBLIC_CALLBACK.to_owned()]).unwrap();
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .app(app)
        .start()
        .await
        .unwrap();
    let key = Key::generate();
    let proxy = if partitionable {
        Some(Proxy::start(redis.port()).await)
    } else {
        None
    };
    let a_url = proxy.as_ref().map_or_else(|| redis.url(), Proxy::url);
    let a_cache = Arc::new(StallingCache {
        redis: cache_at(a_url).await,
        stall_after_begin: std::sync::Mutex::new(None),
    });
    let a = instance(a_cache.clone(), &sandbox, &clock, &key).await;
    let b = instance(
        Arc::new(cache_at(redis.url()).await),
        &sandbox,
        &clock,
        &key,
    )
    .await;
    World {
        clock,
        sandbox,
        redis,
        key,
        instances: [a, b],
        proxy,
        a_cache,
    }
}

async fn sign_in(w: &World, handle: &str) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    refresh::sign_in_across(
        w.instances[0].url("/auth/audius/login"),
        PUBLIC_CALLBACK,
        |path| w.instances[1].url(path),
        handle,
    )
    .await
}

async fn api_call(client: &reqwest::Client, on: &TestServer) -> (u16, Value) {
    http::get_json(client, on.url("/audius/me")).await
}

/// The refresh requests Audius received.
fn refreshes(sandbox: &SandboxHandle) -> usize {
    refresh::refresh_requests(sandbox)
}

/// The tokens in the browser's session cookie (decrypted with the app's key).
fn cookie_tokens(w: &World, jar: &reqwest::cookie::Jar) -> Value {
    refresh::session_tokens(jar, &w.instances[0].url("/"), &w.key)
}

/// The Redis keys (lock, tokens, dead) of the family `f`.
async fn family_keys(w: &World, family: &str) -> [String; 3] {
    cache_at(w.redis.url())
        .await
        .refresh_keys_for(family)
        .unwrap()
}

/// Waits until Audius received `count` refreshes (10 s at most).
async fn until_refreshes(w: &World, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while refreshes(&w.sandbox) < count {
        assert!(
            Instant::now() < deadline,
            "the refresh never reached Audius"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- Attack 1: the holder is partitioned from Redis after Audius rotated the tokens, for
// longer than the lock lives; the other instance still reaches Redis. ----

/// Promise 1 (never the same refresh token twice, "whatever Redis latency"). A holds the
/// shared lock and Audius rotates generation 0 into 1; A's way to Redis is cut before it can
/// publish (its answer is 503, the new tokens only in A's memory and its background task).
/// The lock expires in Redis after 6.5 s while A still cannot reach it; the browser's next call
/// goes to B, which finds no lock and no newer tokens, takes the lock and presents the used
/// generation-0 refresh token: Audius detects the reuse and revokes the family (sign-out).
/// Nothing in the shared state says "generation 0 may have been used": the lock's expiry is
/// the only record of the attempt.
#[actix_web::test]
async fn partitioned_holder_lock_expiry_lets_the_other_instance_reuse_the_token() {
    let w = world(true).await;
    let proxy = w.proxy.as_ref().unwrap();
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    assert_eq!(at_login["g"], 0);
    refresh::slow_next_refresh(&w.sandbox, Duration::from_millis(1_000));
    w.clock.advance(EXPIRE);
    let call = refresh::spawn_get_json(&client, a.url("/audius/me"));
    until_refreshes(&w, 1).await;
    // A holds the lock (it is refreshing at Audius); now A loses Redis.
    let [lock, _, _] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    assert_eq!(
        w.redis.integer(&["EXISTS", &lock]).await,
        1,
        "A holds the lock"
    );
    proxy.cut();
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        cookie_tokens(&w, &jar)["r"],
        at_login["r"],
        "the cookie holds g0"
    );

    // The partition outlasts the lock; B still reaches Redis. The browser calls B.
    actix_web::rt::time::sleep(LOCK_TTL + Duration::from_millis(500)).await;
    assert_eq!(
        w.redis.integer(&["EXISTS", &lock]).await,
        0,
        "the lock expired"
    );
    let (status, body) = api_call(&client, b).await;
    let second = refreshes(&w.sandbox);
    let revoked = w
        .sandbox
        .tokens()
        .is_revoked(at_login["r"].as_str().unwrap());
    proxy.heal();
    assert_eq!(
        second, 1,
        "B presented the used refresh token again (B answered {status}: {body}; the family \
         revoked at Audius: {revoked:?})"
    );
    assert_ne!(
        revoked,
        Some(true),
        "the family was revoked by reuse detection"
    );
}

/// Promise 1, the background publication. The same partition, but shorter than in
/// [`partitioned_holder_lock_expiry_lets_the_other_instance_reuse_the_token`] and with no call
/// during it: A's way to Redis comes back 9 s after Audius rotated the tokens, and only then
/// does the browser call again, on B. A is alive and holds the new tokens (in memory and in
/// the task meant to "record them in Redis once it is back"), and Redis is reachable again by
/// everyone: the tokens should be in Redis and B should adopt them. But the background task
/// gave up `lock_ttl` after its first failure (6.5 s here, 47 s with the defaults), so Redis
/// never learns them, and B presents the used token: reuse detected, the user signed out.
#[actix_web::test]
async fn partition_healed_after_the_background_publish_gave_up_lets_b_reuse_the_token() {
    let w = world(true).await;
    let proxy = w.proxy.as_ref().unwrap();
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    refresh::slow_next_refresh(&w.sandbox, Duration::from_millis(1_000));
    w.clock.advance(EXPIRE);
    let call = refresh::spawn_get_json(&client, a.url("/audius/me"));
    until_refreshes(&w, 1).await;
    proxy.cut();
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 503, "{body}");
    // A's background task retries while the partition lasts; the partition ends after 9 s.
    actix_web::rt::time::sleep(Duration::from_secs(8)).await;
    proxy.heal();
    let [_, kept, _] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.redis.integer(&["EXISTS", &kept]).await == 0 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let recorded = w.redis.integer(&["EXISTS", &kept]).await == 1;
    let (status, body) = api_call(&client, b).await;
    assert!(
        recorded,
        "A never recorded its new tokens once Redis was reachable again (then B answered \
         {status}: {body}, after {} refreshes at Audius)",
        refreshes(&w.sandbox)
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(refreshes(&w.sandbox), 1, "B refreshed the used token again");
}

// ---- Attack 1c: Redis restarts empty after a refresh whose answer the browser lost. ----

/// Promise 2's boundary ("any Redis failure answers 503"), with a Redis restart that loses the
/// data (no persistence: the default of a cache). Written in review 4 as an attack (the browser
/// loses A's answer, Redis restarts empty, B presents the used generation-0 token again); the
/// decision since: a Redis that forgets is not refused (nothing an instance sees tells it
/// apart from a family never refreshed), but `connect` reads `appendonly` and `save` and warns
/// when neither is on, and SECURITY.md lists it as a known gap (with a failover that loses
/// recent writes). This test checks that detection: the test's Redis persists nothing (`save
/// ""`, `appendonly no`) and is reported as one that may forget; a persistent one is not.
#[actix_web::test]
async fn a_redis_that_persists_nothing_is_reported_at_connect() {
    let forgetful = RedisServer::start().await;
    let cache = cache_at(forgetful.url()).await;
    let seen = cache.persistence().await.unwrap();
    assert_eq!(seen.appendonly, Some(false), "{seen:?}");
    assert_eq!(seen.save.as_deref().map(str::trim), Some(""), "{seen:?}");
    assert_eq!(seen.may_forget(), Some(true), "{seen:?}");
    assert_eq!(cache.check_persistence().await.unwrap(), seen);
    let dir = format!(
        "review4-aof-check-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let persistent =
        RedisServer::start_with(&["--appendonly", "yes", "--appenddirname", &dir]).await;
    let seen = cache_at(persistent.url())
        .await
        .persistence()
        .await
        .unwrap();
    assert_eq!(seen.appendonly, Some(true), "{seen:?}");
    assert_eq!(seen.may_forget(), Some(false), "{seen:?}");
    // `CONFIG` renamed away (as managed Redis does): unknown, not an error.
    let locked_down = RedisServer::start_with(&["--rename-command", "CONFIG", ""]).await;
    let seen = cache_at(locked_down.url())
        .await
        .persistence()
        .await
        .unwrap();
    assert_eq!(seen.may_forget(), None, "{seen:?}");
    drop(persistent);
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&dir));
}

/// A lost answer, then a Redis restart, with a Redis that persists every write (`appendonly
/// yes`, `appendfsync always`): the restart keeps generation 1, and B adopts it. (With a Redis
/// that forgets, B would present generation 0 again: see
/// [`a_redis_that_persists_nothing_is_reported_at_connect`].)
#[actix_web::test]
async fn with_a_persistent_redis_a_restart_after_a_lost_answer_is_harmless() {
    let dir = format!(
        "review4-aof-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let w = world_with(
        false,
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--appenddirname",
            &dir,
        ],
    )
    .await;
    lost_answer_then_redis_restart(w).await;
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&dir));
}

/// The browser's call on A refreshes and A publishes, but the browser lost the answer (its
/// cookie keeps generation 0); Redis restarts; the browser calls B: no second refresh allowed.
async fn lost_answer_then_redis_restart(mut w: World) {
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    let [_, kept, _] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    refresh::slow_next_refresh(&w.sandbox, Duration::from_millis(1_000));
    w.clock.advance(EXPIRE);
    let impatient = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert!(impatient.get(a.url("/audius/me")).send().await.is_err());
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.redis.integer(&["EXISTS", &kept]).await == 0 {
        assert!(Instant::now() < deadline, "A never published");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cookie_tokens(&w, &jar)["g"],
        0,
        "the browser lost the answer"
    );
    w.redis.restart().await;
    // The calls on B until one is not a 503 of the reconnection.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let (status, body) = api_call(&client, b).await;
        if status != 503 || Instant::now() > deadline {
            break (status, body);
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        refreshes(&w.sandbox),
        1,
        "B refreshed the used generation-0 token after Redis lost its data (B answered \
         {status}: {body}; family revoked: {:?})",
        w.sandbox
            .tokens()
            .is_revoked(at_login["r"].as_str().unwrap())
    );
}

// ---- Attack 2: the client hangs up while its request holds the shared lock. ----

/// Promises 1 and 5. The browser's request to A takes the shared lock and refreshes at Audius
/// (slow: 1.5 s); the browser hangs up after 300 ms. If the refresh is carried through, the new
/// tokens are published and the lock released within a second or two, and B adopts them. If
/// the request's future is dropped with the connection, the lock stays until it expires
/// (6.5 s: every call of the session waits) and, once it has, the next holder presents the
/// refresh token the dropped request already sent to Audius.
#[actix_web::test]
async fn client_hanging_up_mid_refresh_neither_loses_the_tokens_nor_strands_the_lock() {
    let w = world(false).await;
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    let [lock, kept, _] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    refresh::slow_next_refresh(&w.sandbox, Duration::from_millis(1_500));
    w.clock.advance(EXPIRE);
    // The same cookies, a client that gives up after 300 ms.
    let impatient = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let hung_up = impatient.get(a.url("/audius/me")).send().await;
    assert!(hung_up.is_err(), "the client hung up: {hung_up:?}");
    drop(impatient);
    until_refreshes(&w, 1).await;

    // The refresh A began is carried through: within 1.5 s of Audius' latency and slack, the
    // new tokens are in Redis and the lock is released.
    let deadline = Instant::now() + Duration::from_millis(1_500) + SLACK;
    loop {
        let published = w.redis.integer(&["EXISTS", &kept]).await == 1;
        let locked = w.redis.integer(&["EXISTS", &lock]).await == 1;
        if published && !locked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the hang-up: tokens published {published}, lock still held {locked} (the \
             request's refresh was dropped mid-way)"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = api_call(&client, b).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refreshes(&w.sandbox), 1, "B adopted A's tokens");
    let now = cookie_tokens(&w, &jar);
    assert_eq!(now["g"], 1);
    assert_eq!(
        w.sandbox.tokens().is_revoked(now["r"].as_str().unwrap()),
        Some(false)
    );
}

/// Promises 1 and 5, with the request future cancelled by the app rather than the client: a
/// route that gives the extraction (where the refresh runs) 300 ms, as a timeout middleware
/// would. Audius takes 1.5 s. The refresh that took the shared lock is dropped mid-way: the
/// lock stays until it expires (every call of the session waits up to 6.5 s) and the new
/// tokens, if Audius rotated, are lost; the next holder then presents the used token.
#[actix_web::test]
async fn request_future_cancelled_mid_refresh_neither_loses_the_tokens_nor_strands_the_lock() {
    let w = world(false).await;
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    let [lock, kept, _] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    refresh::slow_next_refresh(&w.sandbox, Duration::from_millis(1_500));
    w.clock.advance(EXPIRE);
    let (status, _) = http::get_json(&client, a.url("/audius/in-time")).await;
    assert_eq!(status, 504, "the app's deadline cut the request");
    assert_eq!(refreshes(&w.sandbox), 1, "the refresh had reached Audius");
    let deadline = Instant::now() + Duration::from_millis(1_500) + SLACK;
    loop {
        let published = w.redis.integer(&["EXISTS", &kept]).await == 1;
        let locked = w.redis.integer(&["EXISTS", &lock]).await == 1;
        if published && !locked {
            break;
        }
        if Instant::now() >= deadline {
            let (status, body) = api_call(&client, b).await;
            panic!(
                "after the cancellation: tokens published {published}, lock still held \
                 {locked}; then B answered {status}: {body} after {} refreshes at Audius \
                 (family revoked: {:?})",
                refreshes(&w.sandbox),
                w.sandbox
                    .tokens()
                    .is_revoked(at_login["r"].as_str().unwrap())
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = api_call(&client, b).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refreshes(&w.sandbox), 1, "B adopted A's tokens");
}

// ---- Attack 5: logouts that race refreshes the shared state did not see. ----

/// Promise 4. A refreshes (generation 1, known in A's memory and in Redis); the user logs out on
/// B. A copy of the session from before the refresh (another tab's stale cookie, a stolen
/// cookie) then calls A while generation 1's access token is still fresh: A adopts its
/// in-memory generation 1 without asking Redis, but Audius refuses the revoked access token,
/// and the refresh that follows finds the family dead in Redis: signed out, nothing
/// refreshed at Audius, nothing resurrected.
#[actix_web::test]
async fn a_stale_copy_on_the_instance_that_refreshed_is_signed_out_after_a_logout_elsewhere() {
    let w = world(false).await;
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let (copy, copy_jar) = client_with_jar();
    {
        use reqwest::cookie::CookieStore as _;
        let url = Url::parse(&a.url("/")).unwrap();
        let header = jar.cookies(&url).unwrap();
        for cookie in header.to_str().unwrap().split("; ") {
            copy_jar.add_cookie_str(cookie, &url);
        }
    }
    w.clock.advance(EXPIRE);
    assert_eq!(api_call(&client, a).await.0, 200);
    assert_eq!(refreshes(&w.sandbox), 1);
    let refreshed = cookie_tokens(&w, &jar);
    assert_eq!(refreshed["g"], 1);
    let res = client
        .post(b.url("/auth/logout"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    // The background revocation reaches Audius.
    let deadline = Instant::now() + Duration::from_secs(10);
    while w
        .sandbox
        .tokens()
        .is_revoked(refreshed["r"].as_str().unwrap())
        != Some(true)
    {
        assert!(
            Instant::now() < deadline,
            "the logout never revoked the family"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = api_call(&copy, a).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "not_signed_in");
    assert_eq!(
        refreshes(&w.sandbox),
        1,
        "nothing refreshed after the logout"
    );
    let (status, _) = api_call(&copy, b).await;
    assert_eq!(status, 401);
}

/// Promise 4 during a partition. A's refresh rotates generation 0 into 1 but A cannot reach
/// Redis to publish (503; generation 1 only in A's memory and its background task). The user
/// logs out on B, which knows only generation 0: it marks the family dead in Redis and revokes
/// generation 0, which (the protocol: "revokes the token's whole family") ends generation 1 as
/// well. The partition heals; A's late publication meets the dead mark. Nothing survives: a
/// stale copy of the session is signed out on both instances, with no refresh at Audius.
#[actix_web::test]
async fn a_logout_during_the_holders_partition_is_not_undone_by_its_late_publication() {
    let w = world(true).await;
    let proxy = w.proxy.as_ref().unwrap();
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    let (copy, copy_jar) = client_with_jar();
    {
        use reqwest::cookie::CookieStore as _;
        let url = Url::parse(&a.url("/")).unwrap();
        let header = jar.cookies(&url).unwrap();
        for cookie in header.to_str().unwrap().split("; ") {
            copy_jar.add_cookie_str(cookie, &url);
        }
    }
    refresh::slow_next_refresh(&w.sandbox, Duration::from_millis(1_000));
    w.clock.advance(EXPIRE);
    let call = refresh::spawn_get_json(&client, a.url("/audius/me"));
    until_refreshes(&w, 1).await;
    proxy.cut();
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 503, "{body}");
    let res = client
        .post(b.url("/auth/logout"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let [_, kept, dead] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while w
        .sandbox
        .tokens()
        .is_revoked(at_login["r"].as_str().unwrap())
        != Some(true)
    {
        assert!(
            Instant::now() < deadline,
            "the logout never revoked the family"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.redis.integer(&["EXISTS", &dead]).await, 1);
    proxy.heal();
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        w.redis.integer(&["EXISTS", &kept]).await,
        0,
        "published into a dead family"
    );
    for on in [a, b] {
        let (status, body) = api_call(&copy, on).await;
        assert_eq!(status, 401, "{body}");
    }
    assert_eq!(refreshes(&w.sandbox), 1);
}

/// Promise 1 against a stalled holder (the classic objection to leases). The lock's time to
/// live is said to cover "the refresh at Audius, then two shared-state calls, and a second",
/// but the holder measures its Audius bound from when it *starts* the call, not from when Redis
/// set the lock. Here A's `begin` is answered (Redis was busy for 0.45 s) and A's holder then
/// stalls for 8 s (its thread blocked; first written with a request blocking A's only worker
/// thread, which no longer stalls a refresh since refreshes run on a runtime of their own); the
/// lock (6.5 s) expires meanwhile, B takes it and refreshes generation 0; then A resumes,
/// reads "Locked" and presents generation 0 too: reuse detected, family revoked.
#[actix_web::test]
async fn a_holder_stalled_past_its_lock_presents_the_token_after_another_instance_did() {
    let w = world_with(false, &["--enable-debug-command", "yes"]).await;
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    let [lock, _, _] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    w.clock.advance(EXPIRE);
    let started = Instant::now();
    // Redis busy for 0.45 s (within the cache's 0.5 s timeout); A's refresh sends its `begin`
    // meanwhile; once it is answered, A's holder stalls.
    *w.a_cache.stall_after_begin.lock().unwrap() = Some(STALL);
    let busy = w.redis.command(&["DEBUG", "SLEEP", "0.45"]);
    let refresh_on_a = async {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        api_call(&client, a).await
    };
    let watch = async {
        // The lock was taken for A, then expired while A was stalled; B then calls.
        actix_web::rt::time::sleep(Duration::from_millis(1_500)).await;
        let held_by_a = w.redis.integer(&["EXISTS", &lock]).await;
        let until = started + Duration::from_millis(450) + LOCK_TTL + Duration::from_millis(300);
        actix_web::rt::time::sleep_until(until.into()).await;
        let expired = w.redis.integer(&["EXISTS", &lock]).await == 0;
        let on_b = api_call(&client, b).await;
        let b_tokens = cookie_tokens(&w, &jar);
        (held_by_a, expired, on_b, refreshes(&w.sandbox), b_tokens)
    };
    let (_, on_a, (held_by_a, expired, on_b, after_b, b_tokens)) =
        futures_util::join!(busy, refresh_on_a, watch);
    assert_eq!(
        held_by_a, 1,
        "precondition: A took the lock before its worker stalled"
    );
    assert!(
        expired,
        "precondition: the lock expired while A was stalled"
    );
    // The design since review 4: A's `begin` left an in-flight marker for generation 0, so
    // while it may still present that token B does not (503, "in doubt") even though the lock
    // expired; A, resuming past its deadline (counted from before it sent `begin`), does not
    // present it either, and clears the marker. Then one refresh, by whoever comes next.
    assert_eq!(
        on_b.0, 503,
        "B answered while A's attempt was in doubt: {}",
        on_b.1
    );
    assert_eq!(on_b.1["error"], "session_unavailable", "{}", on_b.1);
    assert_eq!(after_b, 0, "B presented generation 0 while A might");
    let _ = b_tokens;
    assert_eq!(
        refreshes(&w.sandbox),
        0,
        "A presented generation 0 after its lock expired (A answered {}: {})",
        on_a.0,
        on_a.1
    );
    let (status, body) = api_call(&client, b).await;
    assert_eq!(status, 200, "{body}");
    let total = refreshes(&w.sandbox);
    let now = cookie_tokens(&w, &jar);
    let revoked = w.sandbox.tokens().is_revoked(now["r"].as_str().unwrap());
    assert_eq!(total, 1, "A answered {}: {}", on_a.0, on_a.1);
    assert_eq!(now["g"], 1);
    assert_eq!(revoked, Some(false));
}

// ---- Attack 3: a crashed holder (a lock left in Redis by an owner that never returns). ----

/// Promise 5 (no hang; a crashed holder blocks no longer than the lock lives; only the owner
/// releases). A lock of another owner that expires in 3 s: 6 concurrent calls over A and B
/// wait for it (none refreshes meanwhile, none releases it), then one refreshes, the others
/// adopt; all within the lock's life and the wait bound.
#[actix_web::test]
async fn a_crashed_holders_lock_delays_but_never_doubles_the_refresh() {
    let w = world(false).await;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    let [lock, _, _] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    assert_eq!(
        w.redis
            .command(&["SET", &lock, "crashed-owner", "PX", "3000"])
            .await,
        "+OK"
    );
    w.clock.advance(EXPIRE);
    let started = Instant::now();
    let probe = async {
        // While the foreign lock lives: nobody released it, nobody refreshed.
        actix_web::rt::time::sleep(Duration::from_millis(1_500)).await;
        let value = w.redis.command(&["GET", &lock]).await;
        (value, refreshes(&w.sandbox))
    };
    let calls = join_all((0..6).map(|i| api_call(&client, &w.instances[i % 2])));
    let ((value, during), answers) = futures_util::join!(probe, calls);
    let took = started.elapsed();
    assert!(
        value.contains("crashed-owner"),
        "the lock was taken over early: {value}"
    );
    assert_eq!(during, 0, "a refresh while another owner held the lock");
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    assert!(took >= Duration::from_millis(2_500), "{took:?}");
    assert!(took < WAIT_BOUND + SLACK, "{took:?}");
    assert_eq!(refreshes(&w.sandbox), 1);
    assert_eq!(cookie_tokens(&w, &jar)["g"], 1);
}

/// Promise 5 (every wait bounded). A lock that does not expire for ten minutes (a holder with a
/// wrong clock, or a bug): every call answers the crate's 503 within the wait bound (7 s),
/// the calls queued on one instance's process lock included, and nothing is refreshed.
#[actix_web::test]
async fn a_lock_that_never_expires_is_503_within_the_wait_bound() {
    let w = world(false).await;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = cookie_tokens(&w, &jar);
    let [lock, _, _] = family_keys(&w, at_login["f"].as_str().unwrap()).await;
    w.redis
        .command(&["SET", &lock, "stuck-owner", "PX", "600000"])
        .await;
    w.clock.advance(EXPIRE);
    let started = Instant::now();
    let answers = join_all((0..6).map(|i| api_call(&client, &w.instances[i % 2]))).await;
    let took = started.elapsed();
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"], "session_unavailable", "{body}");
    }
    assert!(took < WAIT_BOUND + SLACK, "{took:?}");
    assert_eq!(refreshes(&w.sandbox), 0);
    assert!(
        w.redis
            .command(&["GET", &lock])
            .await
            .contains("stuck-owner")
    );
}

/// Promise 2 with Redis answering errors rather than going away: Redis full under
/// `noeviction` (the policy the crate asks for) refuses every write with `-OOM`. The calls that
/// need a refresh get the crate's `503 session_unavailable` (not a 500, not a refresh without
/// the lock); once memory is available, one refresh, no reuse.
#[actix_web::test]
async fn redis_refusing_writes_with_oom_is_503_and_never_an_uncoordinated_refresh() {
    let w = world(false).await;
    let (client, jar) = sign_in(&w, "listener").await;
    w.clock.advance(EXPIRE);
    assert_eq!(
        w.redis
            .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
            .await,
        "+OK"
    );
    assert_eq!(
        w.redis.command(&["CONFIG", "SET", "maxmemory", "1"]).await,
        "+OK"
    );
    let answers = join_all((0..4).map(|i| api_call(&client, &w.instances[i % 2]))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"], "session_unavailable", "{body}");
    }
    assert_eq!(refreshes(&w.sandbox), 0);
    assert_eq!(
        w.redis.command(&["CONFIG", "SET", "maxmemory", "0"]).await,
        "+OK"
    );
    let answers = join_all((0..4).map(|i| api_call(&client, &w.instances[i % 2]))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(refreshes(&w.sandbox), 1);
    let now = cookie_tokens(&w, &jar);
    assert_eq!(now["g"], 1);
    assert_eq!(
        w.sandbox.tokens().is_revoked(now["r"].as_str().unwrap()),
        Some(false)
    );
}

// ---- Attack 4: the shared state's primitives, attacked directly. ----

/// Promises 3 and 5 at the protocol level: owner-only release after an expiry and takeover,
/// fencing of a late holder's publish (same generation, other tokens; older generation),
/// Newer only above the generation seen, the dead mark beating every later publish/begin,
/// and family ids that look like key syntax or Lua never reaching another family's keys.
#[actix_web::test]
async fn shared_state_primitives_resist_late_holders_and_odd_family_ids() {
    let redis = RedisServer::start().await;
    let cache = cache_at(redis.url()).await;
    let shared = cache.refresh_coordination().unwrap();
    let (one, two) = (LockOwner::random(), LockOwner::random());
    let fam = "fam";
    let ttl = Duration::from_millis(200);
    let month = Duration::from_secs(30 * 24 * 3600);
    assert_eq!(
        shared.begin(fam, 0, &one, ttl).await.unwrap(),
        BeginRefresh::Locked
    );
    assert_eq!(
        shared.begin(fam, 0, &two, ttl).await.unwrap(),
        BeginRefresh::Busy
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        shared.begin(fam, 0, &two, LOCK_TTL).await.unwrap(),
        BeginRefresh::Locked
    );
    assert!(
        !shared.release(fam, &one).await.unwrap(),
        "a late owner released another's lock"
    );
    assert_eq!(
        shared.begin(fam, 0, &one, ttl).await.unwrap(),
        BeginRefresh::Busy
    );
    // Two holders of generation 0 both publish generation 1: the first recorded stays.
    assert_eq!(
        shared.publish(fam, 1, "two-g1", month).await.unwrap(),
        Published::Stored
    );
    assert_eq!(
        shared.publish(fam, 1, "one-g1", month).await.unwrap(),
        Published::Superseded { generation: 1 }
    );
    assert_eq!(
        shared.publish(fam, 1, "two-g1", month).await.unwrap(),
        Published::Stored
    );
    assert_eq!(
        shared.publish(fam, 2, "g2", month).await.unwrap(),
        Published::Stored
    );
    assert_eq!(
        shared.publish(fam, 1, "old", month).await.unwrap(),
        Published::Superseded { generation: 2 }
    );
    assert!(shared.release(fam, &two).await.unwrap());
    // Newer only above the generation seen; at it, a lock.
    match shared.begin(fam, 1, &one, LOCK_TTL).await.unwrap() {
        BeginRefresh::Newer { generation, tokens } => {
            assert_eq!((generation, tokens.as_str()), (2, "g2"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        shared.begin(fam, 2, &one, LOCK_TTL).await.unwrap(),
        BeginRefresh::Locked
    );
    // A logout: the newest handed back, then dead for every begin and publish.
    assert_eq!(
        shared.retire(fam, month).await.unwrap(),
        Some((2, "g2".to_owned()))
    );
    assert_eq!(
        shared.publish(fam, 3, "g3", month).await.unwrap(),
        Published::Dead
    );
    assert_eq!(
        shared.begin(fam, 0, &two, LOCK_TTL).await.unwrap(),
        BeginRefresh::Dead
    );
    assert_eq!(shared.retire(fam, month).await.unwrap(), None);

    // Family ids that look like another family's keys, Redis or Lua syntax, or are huge.
    let victim = "victim";
    assert_eq!(
        shared.publish(victim, 5, "victim-g5", month).await.unwrap(),
        Published::Stored
    );
    let [v_lock, v_tokens, v_dead] = cache.refresh_keys_for(victim).unwrap();
    for odd in [
        v_lock.as_str(),
        v_tokens.as_str(),
        v_dead.as_str(),
        "victim\0",
        "victim ",
        "}:tokens",
        "') redis.call('FLUSHALL') --",
        "*",
        "",
    ] {
        let me = LockOwner::random();
        assert_eq!(
            shared.begin(odd, 0, &me, LOCK_TTL).await.unwrap(),
            BeginRefresh::Locked
        );
        assert_eq!(
            shared.publish(odd, 9, "attacker", month).await.unwrap(),
            Published::Stored
        );
        shared.retire(odd, month).await.unwrap();
    }
    let huge = "v".repeat(257);
    let err = shared.begin(&huge, 0, &one, LOCK_TTL).await.unwrap_err();
    assert_eq!(err.kind(), audius_login::ErrorKind::TooLarge, "{err}");
    match shared.begin(victim, 0, &one, LOCK_TTL).await.unwrap() {
        BeginRefresh::Newer { generation, tokens } => {
            assert_eq!((generation, tokens.as_str()), (5, "victim-g5"));
        }
        other => panic!("the victim's family was touched: {other:?}"),
    }
    // The replay keys (the prefix and 64 hex digits) never meet the refresh keys.
    let replay = ReplayKey::for_state("a state");
    assert!(
        cache
            .first_use(&replay, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !cache
            .first_use(&replay, Duration::from_secs(60))
            .await
            .unwrap()
    );
    let replay_key = cache.key_for(&replay);
    assert!(replay_key.len() == PREFIX.len() + 64, "{replay_key}");
    assert!(!replay_key.starts_with(&format!("{PREFIX}refresh:")));
}
