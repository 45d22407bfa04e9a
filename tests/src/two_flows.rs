//! One app with both flows (identity with the implicit flow, API access with the code flow on
//! its own paths), on the sandbox, for the suites that attack what one flow does to the other's
//! session (`review9_attacks.rs`, `review11_attacks.rs`).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::Arc;

use actix_audius_login::{AudiusLogin, Flow, Paths, ResponseMode, Scope, VerifyOptions};
use actix_audius_login_testing::TestServer;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use actix_web::web;
use audius_login::ProfileSource;
use audius_login::clock::ManualClock;
use audius_sandbox::{DeveloperApp, Sandbox, SandboxHandle};

use crate::app::{me, sessions};
use crate::http;
use crate::redis::RedisServer;
use crate::two_instances::{API_KEY, PUBLIC_CALLBACK, START, cache};

/// The code flow's callback (the identity flow's is [`PUBLIC_CALLBACK`]).
pub const API_CALLBACK: &str = "http://localhost:8080/auth/api/callback";
/// The code flow's login route (`/auth/audius/login` is the identity flow's).
pub const API_LOGIN: &str = "/auth/api/login";

/// The sandbox, the two configurations and the app serving both.
pub struct TwoFlows {
    /// The clock the sandbox and both configurations judge tokens on.
    pub clock: Arc<ManualClock>,
    /// Audius, with the app registered for both callbacks.
    pub sandbox: SandboxHandle,
    /// The implicit flow's configuration.
    pub identity: AudiusLogin,
    /// The code flow's configuration.
    pub api: AudiusLogin,
    /// The session cookies' key.
    pub key: Key,
    /// The app: both flows' routes and middleware, `/me`, sessions in the cookie.
    pub server: TestServer,
}

/// Starts the app. The identity flow checks `identity_api_key` (none: tokens of any app) and
/// reads the profile from `profile_source`; with `redis`, both flows share a replay cache there.
pub async fn two_flows(
    redis: Option<&RedisServer>,
    identity_api_key: Option<&str>,
    profile_source: ProfileSource,
) -> TwoFlows {
    let clock = Arc::new(ManualClock::at_unix(START));
    let dev_app = DeveloperApp::new(
        "Two Flows",
        API_KEY,
        vec![PUBLIC_CALLBACK.to_owned(), API_CALLBACK.to_owned()],
    )
    .unwrap();
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .app(dev_app)
        .start()
        .await
        .unwrap();
    let mut identity = AudiusLogin::builder("Two Flows", PUBLIC_CALLBACK)
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .verify_options(
            VerifyOptions::default()
                .clock(clock.clone())
                .profile_source(profile_source),
        );
    if let Some(key) = identity_api_key {
        identity = identity.api_key(key);
    }
    let mut api = AudiusLogin::builder("Two Flows", API_CALLBACK)
        .flow(Flow::AuthorizationCode)
        .api_key(API_KEY)
        .scope(Scope::Read)
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .verify_options(VerifyOptions::default().clock(clock.clone()))
        .paths(Paths {
            login: API_LOGIN.into(),
            logout: "/auth/api/logout".into(),
            ..Paths::default()
        });
    if let Some(redis) = redis {
        let cache = Arc::new(cache(redis).await);
        identity = identity.replay_cache(cache.clone());
        api = api.replay_cache(cache);
    }
    let (identity, api) = (identity.build().unwrap(), api.build().unwrap());
    let key = Key::generate();
    let (id, a, k) = (identity.clone(), api.clone(), key.clone());
    let server = TestServer::bind()
        .unwrap()
        .start(move || {
            actix_web::App::new()
                .configure(id.routes())
                .configure(a.routes())
                .route("/me", web::get().to(me))
                .wrap(id.middleware())
                .wrap(a.middleware())
                .wrap(sessions(CookieSessionStore::default(), &k))
        })
        .unwrap();
    TwoFlows {
        clock,
        sandbox,
        identity,
        api,
        key,
        server,
    }
}

/// Logs `client` in as `handle` through the login route `login` of `server` (the sandbox's
/// callback URL taken to `server`), and asserts the callback's `302`.
pub async fn sign_in_with(
    client: &reqwest::Client,
    server: &TestServer,
    login: &str,
    handle: &str,
) {
    let page = http::begin_login(client, server.url(login)).await;
    let callback = http::approve(client, &page, handle).await;
    let done = client
        .get(server.url(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap_or_default()
        )))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = done.status();
    assert_eq!(status, 302, "{}", done.text().await.unwrap());
}
