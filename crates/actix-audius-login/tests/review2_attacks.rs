//! A second independent review of issue 12's promises (after the fixes 16855ec..f84d7b3),
//! written as the attacker's tests, end to end through the real callback on a real server and
//! a real sandbox.
//!
//! Tests marked FINDING assert the secure behaviour and FAIL on the code they were written
//! against (main at c218220); tests marked HOLDS show a defence that held under attack.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_audius_login::{Limits, ResponseMode, VerifyOptions};
use audius_login::clock::ManualClock;
use audius_sandbox::{Fault, TokenOverrides};
use common::attacker::{answer, begin, browser, callback_url, mint};
use common::{TestApp, sandbox, start_with};
use serde_json::json;

/// A fresh browser: start a login, deliver `token`; (status, error code or `Location`).
async fn login_with(app: &TestApp, token: &str) -> (u16, String) {
    let client = browser();
    let state = begin(app, &client).await;
    answer(
        client
            .get(callback_url(app, &state, token))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Upstream requests for users (records, managers, `verify_token`) in the sandbox's log.
fn user_requests(app: &TestApp) -> usize {
    app.sandbox
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/users"))
        .count()
}

/// The sandbox's registered app key (public).
const APP_KEY: &str = "b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1";

/// A key nobody owns.
const FORGER: [u8; 32] = [0x42; 32];

fn forged(app: &TestApp, handle: &str, n: i64) -> String {
    mint(
        app,
        handle,
        TokenOverrides::default()
            .signing_key(FORGER)
            .claim("n", json!(n)),
    )
}

// =============================================================================================
// FINDING: max_logins_per_user is checked before the network and counted after it
// =============================================================================================

/// `max_logins_per_user` is the bound that keeps one Audius account from filling the in-memory
/// replay cache (and so refusing every user with `503 replay_cache_full`). It is *read* before
/// the verifier runs (`admits`) and *counted* only after the login succeeded (`record`), with
/// the verifier's network round trip in between. Callbacks that arrive together all pass the
/// check before any of them is counted: one account holder (who mints as many of their own
/// tokens as they like) sends N callbacks at once and takes 2 × N places, whatever the limit.
/// With the local verifier (the default) the window opens whenever the user's record must be
/// read (not cached, or older than the refetch interval: every 30 s), and every waiter shares
/// that one read; with the API verifier it is open at every callback.
///
/// Here: a limit of 3, twelve callbacks of the account's own fresh tokens at once, Audius
/// answering in 300 ms (a plausible real latency).
///
/// FAILS today (all twelve sign in).
#[actix_web::test]
async fn concurrent_logins_of_one_account_cannot_exceed_max_logins_per_user() {
    let app = start_with(sandbox().await, ResponseMode::Query, |b| {
        b.limits(Limits {
            max_logins_per_user: Some(3),
            ..Limits::default()
        })
    })
    .await;
    app.sandbox
        .set_fault(
            0,
            "/v1/users",
            Fault::latency(Duration::from_millis(300)).times(1),
        )
        .unwrap();
    let tokens: Vec<String> = (0..12)
        .map(|i| {
            mint(
                &app,
                "listener",
                TokenOverrides::default().claim("n", json!(i)),
            )
        })
        .collect();
    let answers = futures_util::future::join_all(tokens.iter().map(|t| login_with(&app, t))).await;
    let signed_in = answers.iter().filter(|(s, _)| *s == 302).count();
    println!("12 concurrent own logins with a limit of 3: {signed_in} signed in; {answers:?}");
    assert!(
        signed_in <= 3,
        "one account took {signed_in} live logins (2 replay-cache places each) with \
         max_logins_per_user = 3"
    );
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 302)
            .all(|(s, c)| (*s, c.as_str()) == (429, "too_many_logins")),
        "{answers:?}"
    );
}

/// The same race with the API verifier: its `verify_token` request is made for every token,
/// so the window is open at every callback, not only when a record is read.
///
/// FAILS today.
#[actix_web::test]
async fn concurrent_logins_of_one_account_cannot_exceed_max_logins_per_user_api_verifier() {
    let app = start_with(sandbox().await, ResponseMode::Query, |b| {
        b.limits(Limits {
            max_logins_per_user: Some(3),
            ..Limits::default()
        })
        .verifier_kind(actix_audius_login::VerifierKind::Api)
    })
    .await;
    app.sandbox
        .set_fault(0, "/v1/users", Fault::latency(Duration::from_millis(300)))
        .unwrap();
    let tokens: Vec<String> = (0..12)
        .map(|i| {
            mint(
                &app,
                "listener",
                TokenOverrides::default().claim("n", json!(i)),
            )
        })
        .collect();
    let answers = futures_util::future::join_all(tokens.iter().map(|t| login_with(&app, t))).await;
    let signed_in = answers.iter().filter(|(s, _)| *s == 302).count();
    println!("API verifier, 12 concurrent own logins, limit 3: {signed_in} signed in; {answers:?}");
    assert!(
        signed_in <= 3,
        "one account took {signed_in} live logins with max_logins_per_user = 3"
    );
}

// =============================================================================================
// FINDING: the upstream bound is per user id, and user ids cost nothing to vary
// =============================================================================================

/// Issue 12 §3's threat is "a visitor can exhaust the app's Audius rate limit and lock every
/// real user out". The fix bounds the requests forged tokens cost *per user id* (2 per 30 s),
/// but the user id is the forger's to choose: a forged token for a user id the directory has
/// not read costs one request (an unknown id: the record, answered 404) or two (an existing
/// one: the record, then the manager list), every time, with no bound across ids (2^31 of
/// them; the user cache holds 10,000 and the negative entries last 30 s). Two cheap requests
/// to the app (start a login, call back) buy one or two requests to Audius, which is what the
/// issue set out to prevent; once the app's Audius rate limit is spent, every real login whose
/// record is not cached answers `503 audius_unavailable`.
///
/// Here: 20 forged callbacks, each for another (unknown) user id, with the app's API key set
/// (the audience check passes: the key is public).
///
/// FAILS today (20 callbacks cost 20 requests).
#[actix_web::test]
async fn forged_tokens_for_many_user_ids_cost_a_bounded_number_of_requests() {
    let sandbox = sandbox().await;
    // The app-wide budget (default: a burst of 50, then 10 per second), set small here so that
    // the bound shows within 20 callbacks.
    let app = start_with(sandbox, ResponseMode::Query, |b| {
        b.api_key(APP_KEY)
            .upstream_budget(Some(Arc::new(audius_login::UpstreamBudget::new(
                4,
                Duration::from_secs(60),
            ))))
    })
    .await;
    app.sandbox.clear_requests();
    let mut answers = Vec::new();
    for i in 0..20_i64 {
        let token = mint(
            &app,
            "listener",
            TokenOverrides::default()
                .signing_key(FORGER)
                .claim("apiKey", json!(APP_KEY))
                .claim("userId", json!((1_000_000 + i).to_string())),
        );
        answers.push(login_with(&app, &token).await);
    }
    assert!(answers.iter().all(|(s, _)| *s != 302), "{answers:?}");
    let upstream = user_requests(&app);
    println!("20 forged callbacks, 20 user ids: {upstream} upstream requests; {answers:?}");
    assert!(
        upstream <= 4,
        "20 forged callbacks (one per user id) cost {upstream} upstream requests"
    );
}

// =============================================================================================
// HOLDS: a callback whose client hangs up still has its read counted
// =============================================================================================

/// The user directory's reads run inside the callback's own future (`Flights::run`), so if the
/// server dropped the handler when the client hangs up, the read would be abandoned after it
/// reached Audius and nothing recorded (no record, no negative entry, no back-off): every
/// forged callback for one user id would cost a request. Tried: actix-web (HTTP/1.1) does not
/// drop the handler on a client's hang-up, the read lands and is cached, and the per-user bound
/// holds (2 requests for 10 callbacks). (Were the read made in a task of its own, the bound
/// would not depend on that behaviour of the server.)
///
/// Here Audius answers user reads in 1 s; 10 forged callbacks for one user id, each abandoned
/// by the forger after 150 ms.
///
/// HOLDS.
#[actix_web::test]
async fn forged_callbacks_that_hang_up_cost_a_bounded_number_of_requests() {
    let app = start_with(sandbox().await, ResponseMode::Query, |b| b).await;
    app.sandbox
        .set_fault(0, "/v1/users", Fault::latency(Duration::from_secs(1)))
        .unwrap();
    app.sandbox.clear_requests();
    for i in 0..10 {
        let client = browser();
        let state = begin(&app, &client).await;
        let token = forged(&app, "artist", i);
        let res = client
            .get(callback_url(&app, &state, &token))
            .timeout(Duration::from_millis(150))
            .send()
            .await;
        assert!(res.is_err(), "the forger hangs up before Audius answers");
    }
    // Whatever is still in flight lands.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let upstream = user_requests(&app);
    println!("10 hung-up forged callbacks for one user id: {upstream} upstream requests");
    assert!(
        upstream <= 4,
        "10 forged callbacks for one user id, each abandoned, cost {upstream} upstream requests"
    );
}

// =============================================================================================
// FINDING: one forward step of the wall clock refuses every login until the clock catches up
// =============================================================================================

/// The app's clock was a `MonotonicClock` (the highest time seen; removed since), so that a wall clock stepped
/// *back* cannot reopen the replay window. But token ages are judged on that same clock, and
/// Audius stamps `iat` on its own (correct) clock: after one forward step of the server's wall
/// clock (a VM resumed with a wrong RTC, a bad NTP source, an operator's typo), corrected a
/// second later, the app's clock stays at the highest time it saw, and every fresh token looks
/// as old as the step was long. An hour's step refuses every login for an hour; a step to next
/// year refuses every login until the process restarts. Before the fix, the same glitch cost a
/// login only while it lasted.
///
/// Here: the wall clock steps forward one hour (the app reads it once, at a login's start),
/// then is corrected; a real user's fresh token is delivered.
///
/// FAILS today (`401 token_expired` or similar: the fresh token is "an hour old").
#[actix_web::test]
async fn a_wall_clock_stepped_forward_then_corrected_does_not_refuse_fresh_tokens() {
    let real_now = time::OffsetDateTime::now_utc();
    let wall = Arc::new(ManualClock::new(real_now));
    let app = start_with(sandbox().await, ResponseMode::Query, {
        let wall = wall.clone();
        move |b| b.verify_options(VerifyOptions::default().clock(wall))
    })
    .await;
    assert_eq!(app.login("listener", None).await.status(), 302, "before");
    // One glitch: the clock reads an hour ahead for one request.
    wall.set(real_now + Duration::from_secs(3600));
    let glitch = browser();
    let _ = begin(&app, &glitch).await;
    // Corrected (NTP), and time goes on normally.
    wall.set(time::OffsetDateTime::now_utc());
    // A token of its own (the login before may have been signed within the same second, with
    // the same claims: that very token again, rightly refused as a replay).
    let token = mint(
        &app,
        "listener",
        TokenOverrides::default().claim("n", json!(1)),
    );
    let res = login_with(&app, &token).await;
    assert_eq!(
        res.0, 302,
        "a fresh token after a corrected clock glitch must sign in: {res:?}"
    );
}

// =============================================================================================
// FINDING: a forged token for a user id about to exist keeps its owner out
// =============================================================================================

/// A forged token for a user id Audius does not have leaves a negative entry (30 s) that
/// decides every login for that id: "Audius has no user N". Audius' user ids are sequential, so
/// a visitor can send one forged callback per 30 s for each of the next few ids and every new
/// account's first logins here are refused ("The JWT signature is invalid - Audius has no user")
/// for as long as they keep it up, at one cheap callback per id per 30 s; the refusal (a
/// mismatch, 401) tells the new user nothing useful. The same holds for any id whose read once
/// answered 404 (an Audius node lagging behind another).
///
/// Here the sandbox's "listener" stands for the new account: its record answers 404 (not yet
/// indexed) when the forger's callback arrives, and exists a moment later.
///
/// FAILS today (the real, new user's token is refused for 30 s).
#[actix_web::test]
async fn a_forged_token_for_an_id_not_yet_known_does_not_keep_its_owner_out() {
    let app = start_with(sandbox().await, ResponseMode::Query, |b| b).await;
    let hashid = app.sandbox.user("listener").unwrap().hashid();
    let route = format!("/v1/users/{hashid}");
    app.sandbox
        .set_fault(0, &route, Fault::status(404))
        .unwrap();
    let (status, code) = login_with(&app, &forged(&app, "listener", 1)).await;
    assert_ne!(status, 302, "the forged token is refused ({code})");
    // The account now exists at Audius.
    app.sandbox.clear_faults();
    let own = mint(&app, "listener", TokenOverrides::default());
    let res = login_with(&app, &own).await;
    assert_eq!(
        res.0, 302,
        "the account's own fresh token must sign in once Audius has it: {res:?}"
    );
}

// =============================================================================================
// HOLDS: what the forger cannot do to a victim
// =============================================================================================

/// A forger without the victim's key sends forged tokens for the victim's id: 40 of them (more
/// than `max_logins_per_user`), then 20 more while Audius rate-limits the app (429), with the
/// victim's record cached. None signs in, none counts against the victim's allowance (no
/// `429 too_many_logins`), none takes a replay-cache place, and the victim logs in throughout
/// (the cached record decides while reads fail).
///
/// HOLDS.
#[actix_web::test]
async fn forged_tokens_for_a_victim_neither_lock_them_out_nor_fill_the_cache() {
    let cache = Arc::new(audius_login::replay::MemoryReplayCache::new(1000));
    let app = start_with(sandbox().await, ResponseMode::Query, {
        let cache = cache.clone();
        move |b| {
            b.replay_cache(cache).limits(Limits {
                max_logins_per_user: Some(3),
                user_refetch_interval: Duration::from_millis(200),
                ..Limits::default()
            })
        }
    })
    .await;
    assert_eq!(app.login("artist", None).await.status(), 302);
    let places = cache.len();
    for i in 0..40 {
        let (status, code) = login_with(&app, &forged(&app, "artist", i)).await;
        assert_ne!(status, 302);
        assert_ne!(code, "too_many_logins", "forged {i}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.sandbox
        .set_fault(0, "/v1/users", Fault::status(429))
        .unwrap();
    for i in 40..60 {
        let (status, code) = login_with(&app, &forged(&app, "artist", i)).await;
        assert_ne!(status, 302);
        assert_ne!(code, "too_many_logins", "forged {i}");
    }
    assert_eq!(cache.len(), places, "no forged token took a place");
    let own = mint(
        &app,
        "artist",
        TokenOverrides::default().claim("n", json!(-1)),
    );
    assert_eq!(
        login_with(&app, &own).await.0,
        302,
        "the victim logs in while Audius fails"
    );
    app.sandbox.clear_faults();
    let own = mint(
        &app,
        "artist",
        TokenOverrides::default().claim("n", json!(-2)),
    );
    assert_eq!(login_with(&app, &own).await.0, 302, "and after");
}
