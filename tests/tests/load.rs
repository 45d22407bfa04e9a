#![allow(clippy::unwrap_used)]
//! Load: 1,000 logins against one instance, on loopback, 100 in flight at a time (real
//! connections, each client with its own cookie jar), through the real login route, the
//! sandbox's login page and the real callback. Zero errors; every client ends signed in as the
//! user it chose (no cross-talk of states or sessions); the replay cache and the user cache stay
//! within their bounds.
//!
//! Bounded in count and time: the whole run must finish within [`RUN_BOUND`] (a bound on a
//! hang or a pile-up, not a speed claim).

use std::sync::Arc;
use std::time::Duration;

use actix_audius_login::{AudiusLogin, Limits, ResponseMode};
use actix_audius_login_testing::{TestClient, TestServer};
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use audius_login::replay::MemoryReplayCache;
use audius_login_e2e::app::{app, sessions};
use audius_sandbox::{Role, Sandbox, SandboxUser, SandboxUsers};
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use reqwest::header::ACCEPT;

/// Logins, one user each.
const LOGINS: usize = 1_000;
/// Logins in flight at once.
const IN_FLIGHT: usize = 100;
/// Replay cache capacity: two entries a login (its token and its consumed state), so every
/// one is remembered, and the cache is exactly full at the end (a full cache refuses, never
/// forgets).
const REPLAY_CAPACITY: usize = 2 * LOGINS;
/// User cache capacity: below the users, so the bound is put to work.
const USER_CACHE_CAPACITY: usize = 256;
/// The most the whole run may take.
const RUN_BOUND: Duration = Duration::from_secs(300);

fn users() -> SandboxUsers {
    let mut users = SandboxUsers::builtin();
    for i in 0..LOGINS {
        let role = if i % 10 == 0 {
            Role::Artist
        } else {
            Role::Listener
        };
        let user = SandboxUser::new(
            20_000 + i as u64,
            format!("load{i}"),
            format!("Load User {i}"),
            role,
        )
        .unwrap()
        .verified(role == Role::Artist);
        users = users.with_user(user).unwrap();
    }
    users
}

/// Logs in as `handle` and checks `/me`; returns the client, or what went wrong.
async fn one_login(
    audius: &AudiusLogin,
    server: &TestServer,
    handle: String,
) -> Result<(String, TestClient), String> {
    let client = server.client(audius).map_err(|e| e.to_string())?;
    client
        .sign_in_as(&handle)
        .await
        .map_err(|e| format!("{handle}: {e}"))?;
    let seen = whoami(&client)
        .await
        .map_err(|e| format!("{handle}: {e}"))?;
    if seen != handle {
        return Err(format!("{handle} is signed in as {seen}"));
    }
    Ok((handle, client))
}

async fn whoami(client: &TestClient) -> Result<String, String> {
    let res = client
        .http()
        .get(client.url("/me"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status() != StatusCode::OK {
        return Err(format!("/me answered {}", res.status()));
    }
    let me: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
    me["handle"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("/me without a handle: {me}"))
}

#[actix_web::test]
async fn a_thousand_concurrent_logins_each_signed_in_as_its_own_user() {
    let sandbox = Sandbox::builder().users(users()).start().await.unwrap();
    let server = TestServer::bind().unwrap();
    let replay = Arc::new(MemoryReplayCache::new(REPLAY_CAPACITY));
    let audius = AudiusLogin::builder("Load Test", server.url("/auth/audius/callback"))
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .replay_cache(replay.clone())
        .limits(Limits {
            user_cache_capacity: USER_CACHE_CAPACITY,
            ..Limits::default()
        })
        // A thousand users never seen before, at once: beyond the default app-wide budget of
        // requests to Audius (a burst of 50, then 10 per second), which would answer most of
        // them `503` (retryable). This test measures the app's concurrency, not that budget.
        .upstream_budget(None)
        .build()
        .unwrap();
    let key = Key::generate();
    let app_audius = audius.clone();
    let server = server
        .start(move || app(&app_audius, sessions(CookieSessionStore::default(), &key)))
        .unwrap();

    let run = async {
        let results: Vec<Result<(String, TestClient), String>> = futures_util::stream::iter(
            (0..LOGINS).map(|i| one_login(&audius, &server, format!("load{i}"))),
        )
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
        let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            errors.is_empty(),
            "{} of {LOGINS} logins failed, first ones: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        let clients: Vec<(String, TestClient)> = results.into_iter().map(Result::unwrap).collect();
        // Once everyone is in: each client is still exactly the user it chose.
        let checks: Vec<Result<(), String>> =
            futures_util::stream::iter(clients.iter().map(|(handle, client)| async move {
                let seen = whoami(client).await?;
                if &seen == handle {
                    Ok(())
                } else {
                    Err(format!("{handle} is now {seen}"))
                }
            }))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let crossed: Vec<&String> = checks.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(crossed.is_empty(), "cross-talk: {crossed:?}");
        clients.len()
    };
    let done = actix_web::rt::time::timeout(RUN_BOUND, run)
        .await
        .expect("the load run finished within its bound");
    assert_eq!(done, LOGINS);

    // Every accepted token, and every consumed state, is remembered once, within the cache's
    // capacity.
    assert_eq!(replay.len(), 2 * LOGINS);
    assert!(replay.len() <= replay.capacity());
    // The user cache held at most its capacity, though 1,000 users passed through it.
    let directory = audius.user_directory().expect("the built-in verifier");
    assert_eq!(directory.capacity(), USER_CACHE_CAPACITY);
    assert!(directory.cached() <= USER_CACHE_CAPACITY);
    assert!(directory.cached() > 0);
    // Each user's record was fetched (no login was served another user's record).
    let fetched = sandbox
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/users/") && !r.path.ends_with("verify_token"))
        .count();
    assert!(fetched >= LOGINS, "only {fetched} user records fetched");
    drop(server);
}
