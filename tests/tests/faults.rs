#![allow(clippy::unwrap_used)]
//! Upstream faults: the API verifier (`VerifierKind::Api`) with an `ApiClient` failing over
//! between two sandbox hosts. While logins run, one host answers 500, then hangs, then drops
//! connections: every login still succeeds through the other host. With both hosts down, the
//! callback answers `503 audius_unavailable` within the client's timeout budget. When the
//! faults clear, logins succeed again.
//!
//! Every login uses a user of its own (the sandbox signs deterministically: one user twice in
//! the same second would give the same token, which the replay cache rightly refuses).

use std::time::{Duration, Instant};

use actix_audius_login::{AudiusLogin, ResponseMode, VerifierKind};
use actix_audius_login_testing::TestServer;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use audius_login::ApiClient;
use audius_login_e2e::app::{app, sessions};
use audius_login_e2e::http::{self, approve, begin_login, get_json};
use audius_sandbox::{Fault, Role, Sandbox, SandboxHandle, SandboxUser, SandboxUsers};
use reqwest::header::ACCEPT;

/// Bound on one attempt of the API client (connecting included). Generous: a healthy host on a
/// busy 2-core machine must never look hung.
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on a health check (as generous).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// API calls a login makes with the API verifier: `verify_token` and the user record.
const CALLS_PER_LOGIN: u32 = 2;
/// Hosts one call may try.
const ATTEMPTS: u32 = 2;
/// Headroom for a busy 2-core machine: a bound on a hang, not a speed claim.
const SLACK: Duration = Duration::from_secs(5);

/// How long a callback may take when every host is down: each call tries both hosts (each
/// attempt bounded by the timeout) and may select a host again (a health check).
fn budget() -> Duration {
    (API_TIMEOUT * ATTEMPTS + HEALTH_TIMEOUT) * CALLS_PER_LOGIN + SLACK
}

/// The API routes faulted on a "down" host: the API and its health check (the login page,
/// served by host 0, keeps working, as Audius' would while one API node fails).
const API_ROUTES: [&str; 2] = ["/v1", "/health_check"];

fn users(count: u64) -> SandboxUsers {
    let mut users = SandboxUsers::builtin();
    for i in 0..count {
        let user = SandboxUser::new(
            10_000 + i,
            format!("fault{i}"),
            format!("Fault User {i}"),
            Role::Listener,
        )
        .unwrap();
        users = users.with_user(user).unwrap();
    }
    users
}

async fn start_app(sandbox: &SandboxHandle) -> TestServer {
    let server = TestServer::bind().unwrap();
    let client = ApiClient::builder()
        .hosts(sandbox.host_urls())
        .connect_timeout(API_TIMEOUT)
        .timeout(API_TIMEOUT)
        .health_timeout(HEALTH_TIMEOUT)
        .max_attempts(ATTEMPTS as usize)
        .build()
        .unwrap();
    let audius = AudiusLogin::builder("Fault Test", server.url("/auth/audius/callback"))
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .verifier_kind(VerifierKind::Api)
        .api_client(client)
        .build()
        .unwrap();
    let key = Key::generate();
    server
        .start(move || app(&audius, sessions(CookieSessionStore::default(), &key)))
        .unwrap()
}

/// Runs one login as `handle` in a fresh browser; returns the callback's answer, how long the
/// callback took, and the browser.
async fn login(app: &TestServer, handle: &str) -> (reqwest::Response, Duration, reqwest::Client) {
    let client = http::client();
    let page = begin_login(&client, app.url("/auth/audius/login")).await;
    let callback = approve(&client, &page, handle).await;
    let started = Instant::now();
    let res = client
        .get(callback)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    (res, started.elapsed(), client)
}

/// A login as `handle` that must succeed: signed in as that user.
async fn login_succeeds(app: &TestServer, handle: &str, phase: &str) {
    let (res, _, client) = login(app, handle).await;
    let status = res.status();
    assert_eq!(
        status,
        302,
        "{phase}: login as {handle} failed: {}",
        res.text().await.unwrap()
    );
    let (_, me) = get_json(&client, app.url("/me")).await;
    assert_eq!(me["handle"], handle, "{phase}");
}

/// A login as `handle` that must fail with `503 audius_unavailable`, within the budget.
async fn login_unavailable(app: &TestServer, handle: &str, phase: &str) {
    let (res, took, _) = login(app, handle).await;
    eprintln!("{phase}: the callback answered in {took:?}");
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(status, 503, "{phase}: {body}");
    assert_eq!(body["error"], "audius_unavailable", "{phase}: {body}");
    assert!(
        took < budget(),
        "{phase}: the callback took {took:?}, over the budget of {:?}",
        budget()
    );
}

fn set_down(sandbox: &SandboxHandle, host: usize, fault: &Fault) {
    for route in API_ROUTES {
        sandbox.set_fault(host, route, *fault).unwrap();
    }
}

/// The host that answered the last `verify_token` call.
fn host_in_use(sandbox: &SandboxHandle) -> usize {
    sandbox
        .requests()
        .iter()
        .rev()
        .find(|r| r.path == "/v1/users/verify_token" && r.fault.is_none())
        .map(|r| r.host)
        .expect("a verify_token call was logged")
}

/// How many requests `host` answered with a fault since the log entry `since`.
fn faulted(sandbox: &SandboxHandle, host: usize, since: u64) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.seq > since && r.host == host && r.fault.is_some())
        .count()
}

fn last_seq(sandbox: &SandboxHandle) -> u64 {
    sandbox.requests().last().map_or(0, |r| r.seq)
}

#[actix_web::test]
async fn logins_fail_over_between_hosts_and_answer_503_when_both_are_down() {
    let sandbox = Sandbox::builder()
        .hosts(2)
        .users(users(40))
        .start()
        .await
        .unwrap();
    let app = start_app(&sandbox).await;
    let mut next = 0..;
    let mut handle = || format!("fault{}", next.next().unwrap());

    // Healthy.
    for _ in 0..2 {
        login_succeeds(&app, &handle(), "healthy").await;
    }
    let faults = [
        ("500", Fault::status(500)),
        ("hang", Fault::latency(Duration::from_secs(30))),
        ("drop", Fault::drop_connection()),
    ];
    // The host in use goes down, in each way in turn (twice over): logins go through the other
    // host, and the faulted host was really asked (the fail-over is exercised, not avoided).
    for round in 0..2 {
        for (name, fault) in &faults {
            sandbox.clear_faults();
            let down = host_in_use(&sandbox);
            let since = last_seq(&sandbox);
            set_down(&sandbox, down, fault);
            for _ in 0..3 {
                let phase = format!("round {round}: host {down} {name}");
                login_succeeds(&app, &handle(), &phase).await;
            }
            assert!(
                faulted(&sandbox, down, since) >= 1,
                "round {round}: host {down} {name} was never asked"
            );
            assert_ne!(
                host_in_use(&sandbox),
                down,
                "{name}: still on the faulted host"
            );
        }
    }
    // Both down: 503 within the budget, never a hang.
    for (name, fault) in &faults {
        sandbox.clear_faults();
        let since = last_seq(&sandbox);
        set_down(&sandbox, 0, fault);
        set_down(&sandbox, 1, fault);
        for _ in 0..2 {
            login_unavailable(&app, &handle(), &format!("both {name}")).await;
        }
        assert!(
            faulted(&sandbox, 0, since) >= 1,
            "both {name}: host 0 never asked"
        );
        assert!(
            faulted(&sandbox, 1, since) >= 1,
            "both {name}: host 1 never asked"
        );
    }
    // Cleared: logins succeed again.
    sandbox.clear_faults();
    for _ in 0..3 {
        login_succeeds(&app, &handle(), "cleared").await;
    }
}
