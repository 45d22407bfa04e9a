#![allow(clippy::unwrap_used)]
//! The code flow's token refresh, coordinated across two app instances on one Redis (the
//! replay cache, `RedisReplayCache`, carries the coordination): a real `redis-server`, the real
//! sandbox (rotating refresh tokens with reuse detection), two real app servers with the same
//! cookie key behind a "round-robin balancer" (the test sends each request to the next
//! instance), and one browser whose session (actix-session's `CookieSessionStore`, encrypted)
//! holds the tokens.
//!
//! - 50 concurrent API calls with an expired access token, spread over both instances: every
//!   call succeeds, Audius sees exactly one refresh and no reuse, and the browser's cookie ends
//!   with the newest tokens (the next refresh, with that cookie, is accepted);
//! - Redis stopped in the middle of a run: the calls that need a refresh get the crate's `503`
//!   (none refreshes without the lock, none succeeds wrongly), and once Redis is back the same
//!   servers refresh once and serve, with no reuse detected;
//! - a logout on one instance marks the family dead for the other: a copy of the old session
//!   on the other instance is signed out without presenting its refresh token to Audius;
//! - a logout while another instance's refresh is in flight at Audius: that refresh ends the
//!   session too, and nothing of the family survives;
//! - Redis answering late (blocked by `DEBUG SLEEP`): `503` within the cache's timeout, and the
//!   lock that the late answer took is given back, so the session is not blocked for the
//!   lock's time to live;
//! - Redis lost while Audius answers a refresh: `503`, but the new tokens are kept and recorded
//!   once Redis is back, and the other instance adopts them (no second refresh, no reuse);
//!   likewise when the instance that holds them is stopped first: its
//!   [`AudiusLogin::drain`] records them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_session::storage::RedisSessionStore;
use actix_web::cookie::Key;
use audius_login::clock::ManualClock;
use audius_login_e2e::http::client_with_jar;
use audius_login_e2e::redis::RedisServer;
use audius_login_e2e::refresh;
use audius_login_e2e::two_instances::*;
use audius_sandbox::{DeveloperApp, Sandbox};
use url::Url;

/// How many API calls run at once.
const CALLS: usize = 50;
/// The bound on a `503` answer while Redis is down: the cache's timeout and a busy 2-core
/// machine's slack (a bound on a hang, not a speed claim).
const OUTAGE_ANSWER: Duration = Duration::from_secs(2 + 5);

#[actix_web::test]
async fn fifty_concurrent_calls_over_two_instances_refresh_once() {
    let w = world().await;
    let (client, jar) = sign_in(&w, "listener").await;
    let at_login = assert_newest(&w, &jar, 0);
    assert_eq!(api_call(&client, &w.instances[0]).await.0, 200);
    assert_eq!(refreshes(&w.sandbox), 0);

    // An hour later the access token has expired: 50 calls at once over A and B.
    w.clock.advance(EXPIRE);
    let expired_at = at_login["e"].as_i64().unwrap();
    let answers = burst(&w, &client, CALLS).await;
    assert_all_ok(&answers, expired_at);
    assert_eq!(
        refreshes(&w.sandbox),
        1,
        "one refresh for {CALLS} concurrent calls over two instances"
    );
    let newest = assert_newest(&w, &jar, 1);
    assert_eq!(newest["f"], at_login["f"], "the same family");

    // Redis holds the newest tokens, for no longer than a refresh token lives (30 days), and
    // no lock is left behind.
    let keys = cache(&w.redis)
        .await
        .refresh_keys_for(newest["f"].as_str().unwrap())
        .unwrap();
    let [lock, tokens, dead] = keys.each_ref().map(String::as_str);
    let ttl = w.redis.integer(&["PTTL", tokens]).await;
    let month = 30 * 24 * 3600 * 1000;
    assert!(ttl > month - 60_000 && ttl <= month, "PTTL {ttl}");
    assert_eq!(w.redis.integer(&["EXISTS", lock]).await, 0);
    assert_eq!(w.redis.integer(&["EXISTS", dead]).await, 0);

    // The browser kept the newest tokens: at the next expiry they refresh, and Audius accepts
    // them (a stale refresh token would be "Token reuse detected" and a sign-out).
    w.clock.advance(EXPIRE);
    let answers = burst(&w, &client, 10).await;
    assert_all_ok(&answers, newest["e"].as_i64().unwrap());
    assert_eq!(refreshes(&w.sandbox), 2);
    assert_newest(&w, &jar, 2);
}

#[actix_web::test]
async fn redis_restarted_in_the_middle_of_a_run_is_503_then_one_refresh() {
    let mut w = world().await;
    let (client, jar) = sign_in(&w, "listener").await;
    w.clock.advance(EXPIRE);
    assert_all_ok(&burst(&w, &client, 10).await, START);
    assert_eq!(refreshes(&w.sandbox), 1);
    let before = assert_newest(&w, &jar, 1);

    // Expired again, and Redis goes away: no call may refresh without the lock.
    w.clock.advance(EXPIRE);
    let outage = Instant::now();
    w.redis.stop().await;
    let started = Instant::now();
    let answers = burst(&w, &client, 20).await;
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"], "session_unavailable", "{body}");
    }
    assert!(
        started.elapsed() < OUTAGE_ANSWER * 2,
        "20 answers during the outage took {:?}",
        started.elapsed()
    );
    assert_eq!(
        refreshes(&w.sandbox),
        1,
        "no refresh without the shared lock"
    );
    assert_newest(&w, &jar, 1);
    assert_eq!(cookie_tokens(&w, &jar)["r"], before["r"]);

    // Back (empty: nothing was persisted), the same servers: calls round-robin until one
    // succeeds; until then each is a prompt 503.
    w.redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next = 0;
    loop {
        let started = Instant::now();
        let (status, body) = api_call(&client, &w.instances[next % 2]).await;
        next += 1;
        match status {
            200 => break,
            503 if Instant::now() < deadline => {
                assert_eq!(body["error"], "session_unavailable", "{body}");
                assert!(started.elapsed() < OUTAGE_ANSWER);
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("after Redis came back, /audius/me answered {other}: {body}"),
        }
    }
    eprintln!(
        "redis_outage_503_s: {:.2} (Redis down for the stop, the calls and the restart)",
        outage.elapsed().as_secs_f64()
    );
    let answers = burst(&w, &client, 20).await;
    assert_all_ok(&answers, before["e"].as_i64().unwrap());
    assert_eq!(refreshes(&w.sandbox), 2, "one refresh after the outage");
    let after = assert_newest(&w, &jar, 2);

    // And the next expiry refreshes with the cookie's token: no reuse anywhere.
    w.clock.advance(EXPIRE);
    assert_all_ok(&burst(&w, &client, 10).await, after["e"].as_i64().unwrap());
    assert_eq!(refreshes(&w.sandbox), 3);
    assert_newest(&w, &jar, 3);
}

#[actix_web::test]
async fn a_logout_on_one_instance_is_seen_by_the_other_without_a_refresh() {
    let w = world().await;
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let tokens = assert_newest(&w, &jar, 0);
    // A copy of the session, as a second tab or a stolen cookie would be.
    let (copy, copy_jar) = client_with_jar();
    {
        use reqwest::cookie::CookieStore as _;
        let url = Url::parse(&a.url("/")).unwrap();
        let header = jar.cookies(&url).unwrap();
        for cookie in header.to_str().unwrap().split("; ") {
            copy_jar.add_cookie_str(cookie, &url);
        }
    }
    let res = client
        .post(a.url("/auth/logout"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let [_, _, dead] = cache(&w.redis)
        .await
        .refresh_keys_for(tokens["f"].as_str().unwrap())
        .unwrap();
    assert_eq!(w.redis.integer(&["EXISTS", &dead]).await, 1);

    // B, with the old session and an expired access token: signed out by the shared mark,
    // without presenting the refresh token to Audius.
    w.clock.advance(EXPIRE);
    let (status, body) = api_call(&copy, b).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "not_signed_in");
    assert_eq!(refreshes(&w.sandbox), 0);
}

#[actix_web::test]
async fn a_logout_racing_a_refresh_on_the_other_instance_ends_the_family() {
    let w = world().await;
    let [a, b] = &w.instances;
    let (client, jar) = sign_in(&w, "listener").await;
    let tokens = assert_newest(&w, &jar, 0);
    // Audius is slow to answer the next refresh: it is still in flight when the user logs
    // out on the other instance.
    refresh::slow_next_refresh(&w.sandbox, Duration::from_millis(1500));
    w.clock.advance(EXPIRE);
    let call = refresh::spawn_get_json(&client, b.url("/audius/me"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while refreshes(&w.sandbox) == 0 {
        assert!(
            Instant::now() < deadline,
            "the refresh never reached Audius"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    logout(&client, a).await;
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 401, "the racing call ends signed out: {body}");
    assert_eq!(body["error"], "not_signed_in");
    // The family is revoked at Audius, and dead in Redis with no tokens kept.
    let refresh = tokens["r"].as_str().unwrap();
    assert_eq!(w.sandbox.tokens().is_revoked(refresh), Some(true));
    let [lock, kept, dead] = cache(&w.redis)
        .await
        .refresh_keys_for(tokens["f"].as_str().unwrap())
        .unwrap();
    assert_eq!(w.redis.integer(&["EXISTS", &dead]).await, 1);
    assert_eq!(w.redis.integer(&["EXISTS", &kept]).await, 0);
    assert_eq!(
        w.redis.integer(&["EXISTS", &lock]).await,
        0,
        "the lock was released"
    );
    // Nobody refreshes the family again, on either instance.
    for on in &w.instances {
        assert_eq!(api_call(&client, on).await.0, 401);
    }
    assert_eq!(refreshes(&w.sandbox), 1);
}

#[actix_web::test]
async fn redis_answering_late_is_503_and_leaves_no_lock_behind() {
    let w = world_with(&["--enable-debug-command", "yes"]).await;
    let (client, jar) = sign_in(&w, "listener").await;
    w.clock.advance(EXPIRE);
    // Redis stops answering for 5 s (the cache's timeout is 2 s); its queue runs after.
    let late_call = async {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let answer = api_call(&client, &w.instances[1]).await;
        (answer, started.elapsed())
    };
    let (woke, ((status, body), took)) =
        futures_util::join!(w.redis.command(&["DEBUG", "SLEEP", "5"]), late_call);
    assert_eq!(woke, "+OK");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "session_unavailable");
    assert!(took < OUTAGE_ANSWER, "{took:?}");
    assert_eq!(refreshes(&w.sandbox), 0);

    // Redis ran the late `begin` (taking the lock) and then the release sent after the
    // timeout: the session is not blocked for the lock's time to live (47 s here).
    let started = Instant::now();
    let answers = burst(&w, &client, 10).await;
    assert_all_ok(&answers, START);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "blocked by a lock left behind: {:?}",
        started.elapsed()
    );
    assert_eq!(refreshes(&w.sandbox), 1);
    assert_newest(&w, &jar, 1);
}

#[actix_web::test]
async fn redis_lost_between_audius_answer_and_publish_keeps_the_new_tokens() {
    let mut w = world().await;
    let (client, jar) = sign_in(&w, "listener").await;
    let tokens = refresh_while_redis_dies(&mut w, &client, &jar).await;

    // The new tokens were not dropped: once Redis is back, the holder records them
    // (in the background), and the other instance adopts them instead of presenting the used
    // token (which Audius would answer with reuse detection and a sign-out).
    w.redis.restart().await;
    let [_, kept, _] = cache(&w.redis)
        .await
        .refresh_keys_for(tokens["f"].as_str().unwrap())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.redis.integer(&["EXISTS", &kept]).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the new tokens were never recorded"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = api_call(&client, &w.instances[1]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refreshes(&w.sandbox), 1, "adopted, not refreshed again");
    assert_newest(&w, &jar, 1);
    // And the next expiry refreshes with them.
    w.clock.advance(EXPIRE);
    assert_all_ok(&burst(&w, &client, 10).await, START);
    assert_eq!(refreshes(&w.sandbox), 2);
    assert_newest(&w, &jar, 2);
}

#[actix_web::test]
async fn a_holder_stopped_before_it_recorded_the_new_tokens_records_them_in_its_drain() {
    let mut w = world().await;
    let (client, jar) = sign_in(&w, "listener").await;
    refresh_while_redis_dies(&mut w, &client, &jar).await;
    // A deploy stops instance A (gracefully) while it still tries to record the new tokens in
    // the background: its worker's runtime stops, and drops that task.
    w.instances[0].stop().await;
    // The app's main, after `HttpServer::run` returned, drains: with Redis still down, nothing
    // can finish, and the drain says so when its time is up.
    let started = Instant::now();
    assert_eq!(w.logins[0].drain(Duration::from_millis(500)).await, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the drain ends on time"
    );
    // B has nothing to finish.
    assert_eq!(w.logins[1].drain(Duration::from_secs(5)).await, 0);
    // Drained again while Redis comes back: the tokens are recorded.
    let a = w.logins[0].clone();
    let drain = actix_web::rt::spawn(async move { a.drain(Duration::from_secs(20)).await });
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    w.redis.restart().await;
    assert_eq!(drain.await.unwrap(), 0, "the new tokens were recorded");
    // B adopts them: no second refresh at Audius, no reuse detected, no sign-out.
    let (status, body) = api_call(&client, &w.instances[1]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refreshes(&w.sandbox), 1, "adopted, not refreshed again");
    assert_newest(&w, &jar, 1);
}

#[actix_web::test]
async fn with_the_sessions_on_redis_too_fifty_calls_refresh_once() {
    // The whole multi-instance deployment: sessions (actix-session's RedisSessionStore) and the
    // replay cache on one Redis; the cookie holds only the session key.
    let clock = Arc::new(ManualClock::at_unix(START));
    let redis = RedisServer::start().await;
    let app = DeveloperApp::new("Refresh Test", API_KEY, vec![PUBLIC_CALLBACK.to_owned()]).unwrap();
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .app(app)
        .start()
        .await
        .unwrap();
    let key = Key::generate();
    let store = RedisSessionStore::new(redis.url()).await.unwrap();
    let stores = move || store.clone();
    let (a, a_login) = instance_on(&redis, &sandbox, &clock, &key, stores.clone()).await;
    let (b, b_login) = instance_on(&redis, &sandbox, &clock, &key, stores).await;
    let w = World {
        clock,
        sandbox,
        redis,
        key,
        instances: [a, b],
        logins: [a_login, b_login],
    };
    let (client, _) = sign_in(&w, "listener").await;
    assert_eq!(api_call(&client, &w.instances[1]).await.0, 200);

    w.clock.advance(EXPIRE);
    assert_all_ok(&burst(&w, &client, CALLS).await, START);
    assert_eq!(refreshes(&w.sandbox), 1, "one refresh for {CALLS} calls");
    // The session in Redis kept the newest tokens: the next expiry refreshes with them, and
    // Audius accepts them (no reuse detected), twice over.
    for round in 2..=3 {
        w.clock.advance(EXPIRE);
        assert_all_ok(&burst(&w, &client, 10).await, START);
        assert_eq!(refreshes(&w.sandbox), round);
    }
}
