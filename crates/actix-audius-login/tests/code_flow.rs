//! The authorization-code flow with PKCE through the actix layer: login in each channel, API
//! calls as the user (`AudiusClient`) with read and write scopes, transparent refresh (on
//! expiry and on a `401`), one refresh for many concurrent requests, refresh-token reuse
//! revoking the family, logout revoking at Audius, and the callback's refusals (expired,
//! injected and burnt codes, declined logins, unregistered redirect URIs). Real servers on
//! port 0, the real sandbox, clocks the tests move.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_audius_login::{
    AudiusClient, AudiusLogin, AudiusUser, Flow, ResponseMode, Scope, VerifyOptions,
};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::{App, HttpResponse, HttpServer, web};
use audius_login::clock::ManualClock;
use audius_sandbox::{DeveloperApp, Sandbox, SandboxHandle};
use reqwest::header::{ACCEPT, LOCATION};
use serde_json::{Value, json};
use url::Url;

const API_KEY: &str = "c0de00c0de00c0de00c0de00c0de00c0de00c0de";
const START: i64 = 1_750_000_000;

/// One sandbox with a developer app registered for the given callbacks, and its clock.
async fn sandbox(callbacks: &[String], clock: Arc<ManualClock>) -> Arc<SandboxHandle> {
    let mut uris = callbacks.to_vec();
    uris.push("postmessage".into());
    let app = DeveloperApp::new("Code Flow App", API_KEY, uris).unwrap();
    Arc::new(
        Sandbox::builder()
            .clock(clock)
            .app(app)
            .start()
            .await
            .unwrap(),
    )
}

/// A listener on a free port and the app's callback URL on it.
fn listener() -> (TcpListener, Url) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (
        listener,
        Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
    )
}

struct CodeApp {
    base: Url,
    audius: AudiusLogin,
    mode: ResponseMode,
    server: ServerHandle,
}

impl Drop for CodeApp {
    fn drop(&mut self) {
        let server = self.server.clone();
        actix_web::rt::spawn(async move { server.stop(false).await });
    }
}

/// The app: the login routes, `/me` (the session's user), `/audius/me` (`GET /v1/me` through
/// the client), `/audius/favorite/{track}` (a write call through the client).
fn start_app(
    (listener, base): (TcpListener, Url),
    sandbox: &SandboxHandle,
    mode: ResponseMode,
    scope: Scope,
    clock: Arc<ManualClock>,
    key: Key,
) -> CodeApp {
    let audius = AudiusLogin::builder("Code Flow App", format!("{base}auth/audius/callback"))
        .flow(Flow::AuthorizationCode)
        .api_key(API_KEY)
        .scope(scope)
        .response_mode(mode)
        .environment(sandbox.environment())
        .verify_options(VerifyOptions::default().clock(clock))
        .build()
        .unwrap();
    let app_audius = audius.clone();
    let server = HttpServer::new(move || {
        let audius = app_audius.clone();
        App::new()
            .configure(audius.routes())
            .route(
                "/me",
                web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }),
            )
            .route(
                "/audius/me",
                web::get().to(|client: AudiusClient| async move {
                    let profile = client.me().await?;
                    Ok::<_, actix_web::Error>(HttpResponse::Ok().json(json!({
                        "handle": profile.handle,
                        "id": profile.user_id.get(),
                        "email": profile.email,
                        "generation_expires_at": client.access_token_expires_at().unix_timestamp(),
                    })))
                }),
            )
            .route(
                "/audius/favorite/{track}",
                web::post().to(
                    |client: AudiusClient, track: web::Path<String>| async move {
                        let answer = client
                            .send(
                                Method::POST,
                                &format!("/v1/tracks/{track}/favorites"),
                                Some(&json!({ "is_save_of_repost": false })),
                            )
                            .await?;
                        // actix-web's own status type: passed on with nothing to convert.
                        Ok::<_, actix_web::Error>(
                            HttpResponse::build(answer.status).body(answer.body),
                        )
                    },
                ),
            )
            .wrap(audius.middleware())
            .wrap(
                SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                    .cookie_name("id".to_owned())
                    .cookie_secure(false)
                    .build(),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .disable_signals()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    CodeApp {
        base,
        audius,
        mode,
        server: handle,
    }
}

/// A browser: a cookie jar and no automatic redirects.
struct Browser {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
}

fn browser() -> Browser {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    Browser {
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        jar,
    }
}

fn location(res: &reqwest::Response) -> Url {
    Url::parse(res.headers()[LOCATION].to_str().unwrap()).unwrap()
}

fn param(url: &Url, name: &str, in_fragment: bool) -> Option<String> {
    let text = if in_fragment {
        url.fragment().unwrap_or_default().to_owned()
    } else {
        url.query().unwrap_or_default().to_owned()
    };
    url::form_urlencoded::parse(text.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `{state, code}` of the sandbox's postmessage page.
fn postmessage_answer(page: &str) -> (String, String) {
    let start = page.find("var message = ").unwrap() + "var message = ".len();
    let end = start + page[start..].find(';').unwrap();
    let message: Value = serde_json::from_str(&page[start..end]).unwrap();
    (
        message["state"].as_str().unwrap().to_owned(),
        message["code"].as_str().unwrap().to_owned(),
    )
}

impl Browser {
    fn session_cookie(&self, app: &CodeApp) -> String {
        use reqwest::cookie::CookieStore as _;
        self.jar
            .cookies(&app.base)
            .map(|h| h.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    fn set_session_cookie(&self, app: &CodeApp, cookies: &str) {
        for cookie in cookies.split("; ") {
            self.jar.add_cookie_str(cookie, &app.base);
        }
    }

    async fn get(&self, app: &CodeApp, path: &str) -> reqwest::Response {
        self.client
            .get(app.base.join(path).unwrap())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, app: &CodeApp, path: &str) -> reqwest::Response {
        self.client
            .post(app.base.join(path).unwrap())
            .header(ACCEPT, "application/json")
            .header(
                "origin",
                app.audius.redirect_uri().origin().ascii_serialization(),
            )
            .send()
            .await
            .unwrap()
    }

    /// The app's login route: returns the authorize URL it sent the browser to.
    async fn begin(&self, app: &CodeApp) -> Url {
        let res = self.get(app, app.audius.paths().login.as_str()).await;
        assert_eq!(res.status(), 302, "the login route redirects");
        location(&res)
    }

    /// `{api}/v1/oauth/authorize` sends the browser to the login page, which approves at once
    /// as `handle`. Returns the login page's answer (a redirect, or the postmessage page).
    async fn approve(&self, authorize: &Url, handle: &str) -> reqwest::Response {
        let res = self.client.get(authorize.clone()).send().await.unwrap();
        assert_eq!(
            res.status(),
            302,
            "authorize sends the browser to the login page"
        );
        let mut page = location(&res);
        page.query_pairs_mut().append_pair("sandbox_user", handle);
        self.client.get(page).send().await.unwrap()
    }

    /// `(state, code)` out of the login page's answer, in the app's channel.
    async fn answer(&self, app: &CodeApp, answer: reqwest::Response) -> (String, String) {
        match app.mode {
            ResponseMode::PostMessage => postmessage_answer(&answer.text().await.unwrap()),
            mode => {
                assert_eq!(answer.status(), 302);
                let to = location(&answer);
                let fragment = mode == ResponseMode::Fragment;
                (
                    param(&to, "state", fragment).unwrap(),
                    param(&to, "code", fragment).unwrap(),
                )
            }
        }
    }

    /// Hands `(state, code)` to the callback as the app's channel does.
    async fn deliver(&self, app: &CodeApp, state: &str, code: &str) -> reqwest::Response {
        if app.mode == ResponseMode::Query {
            let mut url = app.base.join(app.audius.redirect_uri().path()).unwrap();
            url.query_pairs_mut()
                .append_pair("state", state)
                .append_pair("code", code);
            return self.client.get(url).send().await.unwrap();
        }
        self.client
            .post(app.base.join(app.audius.redirect_uri().path()).unwrap())
            .header(ACCEPT, "application/json")
            .header(
                "origin",
                app.audius.redirect_uri().origin().ascii_serialization(),
            )
            .json(&json!({ "state": state, "code": code }))
            .send()
            .await
            .unwrap()
    }

    /// A whole login as `handle`; returns the callback's answer.
    async fn login(&self, app: &CodeApp, handle: &str) -> reqwest::Response {
        let authorize = self.begin(app).await;
        let answer = self.approve(&authorize, handle).await;
        let (state, code) = self.answer(app, answer).await;
        self.deliver(app, &state, &code).await
    }
}

fn assert_signed_in(res: &reqwest::Response, mode: ResponseMode) {
    match mode {
        ResponseMode::Query => assert_eq!(res.status(), 302, "the callback redirects"),
        _ => assert_eq!(res.status(), 200, "the callback answers JSON"),
    }
}

/// Token-endpoint requests of `grant_type` in the sandbox's log.
fn grants(sandbox: &SandboxHandle, grant_type: &str) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/oauth/token" && r.grant_type.as_deref() == Some(grant_type))
        .count()
}

fn requests_to(sandbox: &SandboxHandle, path: &str) -> usize {
    sandbox.requests().iter().filter(|r| r.path == path).count()
}

struct World {
    clock: Arc<ManualClock>,
    sandbox: Arc<SandboxHandle>,
    app: CodeApp,
}

async fn world(mode: ResponseMode, scope: Scope) -> World {
    let clock = Arc::new(ManualClock::at_unix(START));
    world_with_clocks(mode, scope, clock.clone(), clock).await
}

/// `clock` is Audius' (the sandbox's); the app has `app_clock`.
async fn world_with_clocks(
    mode: ResponseMode,
    scope: Scope,
    clock: Arc<ManualClock>,
    app_clock: Arc<ManualClock>,
) -> World {
    let (listener, base) = listener();
    let sandbox = sandbox(&[format!("{base}auth/audius/callback")], clock.clone()).await;
    let app = start_app(
        (listener, base),
        &sandbox,
        mode,
        scope,
        app_clock,
        Key::generate(),
    );
    World {
        clock,
        sandbox,
        app,
    }
}

#[actix_web::test]
async fn login_in_every_channel_and_calls_as_the_user() {
    for mode in [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::PostMessage,
    ] {
        let w = world(mode, Scope::Read).await;
        let b = browser();
        let authorize = b.begin(&w.app).await;
        // Every parameter of the PKCE spec, response mode always explicit.
        let q: std::collections::HashMap<String, String> =
            authorize.query_pairs().into_owned().collect();
        assert_eq!(authorize.path(), "/v1/oauth/authorize", "{mode:?}");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], API_KEY);
        assert_eq!(q["scope"], "read");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43);
        assert!(q["state"].len() >= 22);
        // Always explicit; the popup channel sends `fragment` with `redirect_uri=postmessage`.
        let expected_mode = match mode {
            ResponseMode::Query => "query",
            _ => "fragment",
        };
        assert_eq!(q["response_mode"], expected_mode, "{mode:?}");
        if mode == ResponseMode::PostMessage {
            assert_eq!(q["redirect_uri"], "postmessage");
        } else {
            assert_eq!(
                q["redirect_uri"],
                w.app.base.join("auth/audius/callback").unwrap().as_str()
            );
        }

        let answer = b.approve(&authorize, "listener").await;
        let (state, code) = b.answer(&w.app, answer).await;
        let res = b.deliver(&w.app, &state, &code).await;
        assert_signed_in(&res, mode);
        if mode != ResponseMode::Query {
            // The page learns where to go and who signed in: never a token.
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["redirect"], "/");
            assert_eq!(body["user"]["handle"], "listener");
            let text = body.to_string();
            assert!(!text.contains("token") && !text.contains(&code), "{text}");
        }
        assert_eq!(grants(&w.sandbox, "authorization_code"), 1);
        // The tokens are in the session, which the cookie carries encrypted.
        let cookie = b.session_cookie(&w.app);
        assert!(cookie.starts_with("id="), "{cookie}");
        assert!(
            !cookie.contains("audius") && !cookie.contains("tokens"),
            "the session cookie is readable: {cookie}"
        );

        // The session's user: the code flow gives no email.
        let me: Value = b.get(&w.app, "/me").await.json().await.unwrap();
        assert_eq!(me["handle"], "listener", "{mode:?}");
        assert_eq!(me["id"], 44);
        assert_eq!(me["email"], Value::Null);

        // The API as the user, with the session's access token.
        let res = b.get(&w.app, "/audius/me").await;
        assert_eq!(res.status(), 200, "{mode:?}");
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["handle"], "listener");
        assert_eq!(me["id"], 44);
        assert_eq!(me["email"], Value::Null);
        assert_eq!(
            grants(&w.sandbox, "refresh_token"),
            0,
            "a fresh token is used as it is"
        );
    }
}

#[actix_web::test]
async fn write_scope_acts_for_the_user_and_a_read_token_gets_403() {
    for mode in [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::PostMessage,
    ] {
        for (scope, status) in [(Scope::Write, 200), (Scope::Read, 403)] {
            let w = world(mode, scope).await;
            let b = browser();
            assert_signed_in(&b.login(&w.app, "artist").await, mode);
            let track = audius_login::UserId::new(42).hashid();
            let res = b.post(&w.app, &format!("/audius/favorite/{track}")).await;
            assert_eq!(
                res.status(),
                status,
                "{mode:?} {scope:?}: {:?}",
                res.text().await
            );
            let artist = w.sandbox.user("artist").unwrap().id;
            let favorites = w.sandbox.favorites(artist);
            assert_eq!(
                favorites.contains(&42),
                scope == Scope::Write,
                "{mode:?} {scope:?}: {favorites:?}"
            );
        }
    }
}

#[actix_web::test]
async fn an_expired_access_token_is_refreshed_transparently_and_once_for_many_requests() {
    let w = world(ResponseMode::Fragment, Scope::Read).await;
    let b = browser();
    assert_signed_in(&b.login(&w.app, "listener").await, ResponseMode::Fragment);
    let first: Value = b.get(&w.app, "/audius/me").await.json().await.unwrap();

    // An hour later the access token has expired: ten requests at once, one refresh.
    w.clock.advance(Duration::from_secs(3601));
    let calls = (0..10).map(|_| b.get(&w.app, "/audius/me"));
    let answers = futures_util::future::join_all(calls).await;
    for res in answers {
        assert_eq!(res.status(), 200);
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["handle"], "listener");
        assert!(
            me["generation_expires_at"].as_i64() > first["generation_expires_at"].as_i64(),
            "every request used the new access token"
        );
    }
    assert_eq!(
        grants(&w.sandbox, "refresh_token"),
        1,
        "one refresh for ten concurrent requests"
    );

    // The browser kept the newest tokens (whichever answer's cookie it stored last): the next
    // expiry refreshes with the newest refresh token, which Audius accepts (a stale one would
    // be "Token reuse detected" and a sign-out).
    w.clock.advance(Duration::from_secs(3601));
    let res = b.get(&w.app, "/audius/me").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(grants(&w.sandbox, "refresh_token"), 2);
    // Still signed in, no further refresh while the token is fresh.
    assert_eq!(b.get(&w.app, "/audius/me").await.status(), 200);
    assert_eq!(grants(&w.sandbox, "refresh_token"), 2);
}

#[actix_web::test]
async fn a_401_from_audius_refreshes_once_and_retries() {
    // The app's clock lags an hour behind Audius': the app thinks its access token is fresh,
    // Audius answers 401, the client refreshes and retries once.
    let sandbox_clock = Arc::new(ManualClock::at_unix(START));
    let app_clock = Arc::new(ManualClock::at_unix(START));
    let (listener, base) = listener();
    let sandbox = sandbox(
        &[format!("{base}auth/audius/callback")],
        sandbox_clock.clone(),
    )
    .await;
    let app = start_app(
        (listener, base),
        &sandbox,
        ResponseMode::Query,
        Scope::Read,
        app_clock,
        Key::generate(),
    );
    let b = browser();
    assert_signed_in(&b.login(&app, "listener").await, ResponseMode::Query);
    sandbox_clock.advance(Duration::from_secs(3601));
    let before = requests_to(&sandbox, "/v1/me");
    let res = b.get(&app, "/audius/me").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(grants(&sandbox, "refresh_token"), 1);
    assert_eq!(
        requests_to(&sandbox, "/v1/me") - before,
        2,
        "the call, its 401, and the retry"
    );
}

/// Two instances of the app (same session key, same sandbox, same clock), A and B.
struct TwoInstances {
    clock: Arc<ManualClock>,
    sandbox: Arc<SandboxHandle>,
    a: CodeApp,
    b: CodeApp,
}

async fn two_instances(mode: ResponseMode) -> TwoInstances {
    let clock = Arc::new(ManualClock::at_unix(START));
    let (listener_a, base_a) = listener();
    let (listener_b, base_b) = listener();
    let sandbox = sandbox(
        &[
            format!("{base_a}auth/audius/callback"),
            format!("{base_b}auth/audius/callback"),
        ],
        clock.clone(),
    )
    .await;
    let key = Key::generate();
    let start = |(listener, base), key| {
        start_app(
            (listener, base),
            &sandbox,
            mode,
            Scope::Read,
            clock.clone(),
            key,
        )
    };
    let a = start((listener_a, base_a), key.clone());
    let b = start((listener_b, base_b), key);
    TwoInstances {
        clock,
        sandbox,
        a,
        b,
    }
}

#[actix_web::test]
async fn refresh_token_reuse_revokes_the_family_and_forces_a_new_login() {
    // Two instances without sticky sessions: B does not know that A refreshed, and refreshes
    // the same refresh token again; Audius detects the reuse and revokes the family.
    let mode = ResponseMode::Query;
    let TwoInstances {
        clock,
        sandbox,
        a,
        b: b_app,
    } = two_instances(mode).await;
    let browser_a = browser();
    assert_signed_in(&browser_a.login(&a, "listener").await, mode);
    let old_cookie = browser_a.session_cookie(&a);

    clock.advance(Duration::from_secs(3601));
    assert_eq!(browser_a.get(&a, "/audius/me").await.status(), 200);
    assert_eq!(grants(&sandbox, "refresh_token"), 1);

    // A copy of the old session (the same cookie) reaches B.
    let browser_b = browser();
    browser_b.set_session_cookie(&b_app, &old_cookie);
    let res = browser_b.get(&b_app, "/audius/me").await;
    assert_eq!(res.status(), 401, "reuse detected: signed out");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_signed_in");
    assert_eq!(browser_b.get(&b_app, "/me").await.status(), 401);

    // The whole family is revoked: A's newer tokens are refused too, and A signs out.
    let res = browser_a.get(&a, "/audius/me").await;
    assert_eq!(res.status(), 401, "{:?}", res.text().await);
    assert_eq!(browser_a.get(&a, "/me").await.status(), 401);

    // A new login works.
    assert_signed_in(&browser_a.login(&a, "listener").await, mode);
    assert_eq!(browser_a.get(&a, "/audius/me").await.status(), 200);
}

#[actix_web::test]
async fn logout_revokes_the_tokens_at_audius() {
    let mode = ResponseMode::Fragment;
    let TwoInstances {
        clock: _,
        sandbox,
        a,
        b: b_app,
    } = two_instances(mode).await;
    let browser_a = browser();
    assert_signed_in(&browser_a.login(&a, "artist").await, mode);
    let old_cookie = browser_a.session_cookie(&a);

    let res = browser_a.post(&a, a.audius.paths().logout.as_str()).await;
    assert_eq!(res.status(), 303);
    assert_eq!(requests_to(&sandbox, "/v1/oauth/revoke"), 1);
    assert_eq!(browser_a.get(&a, "/audius/me").await.status(), 401);

    // Another instance, which knows nothing of the logout, holding a copy of the old session:
    // Audius refuses its access token (401) and its refresh token: signed out.
    let browser_b = browser();
    browser_b.set_session_cookie(&b_app, &old_cookie);
    let res = browser_b.get(&b_app, "/audius/me").await;
    assert_eq!(res.status(), 401, "{:?}", res.text().await);
    assert!(
        sandbox
            .requests()
            .iter()
            .any(|r| r.path == "/v1/me" && r.authorization),
        "B asked Audius with the old access token"
    );
}

#[actix_web::test]
async fn expired_injected_and_burnt_codes_are_refused() {
    // Audius' clock moves; the app's does not (its own login deadline is another test's).
    let app_clock = Arc::new(ManualClock::at_unix(START));
    let w = world_with_clocks(
        ResponseMode::Query,
        Scope::Read,
        Arc::new(ManualClock::at_unix(START)),
        app_clock,
    )
    .await;

    // Expired: a code older than ten minutes.
    let b = browser();
    let authorize = b.begin(&w.app).await;
    let (state, code) = b
        .answer(&w.app, b.approve(&authorize, "listener").await)
        .await;
    w.clock.advance(Duration::from_secs(601));
    let res = b.deliver(&w.app, &state, &code).await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "code_refused", "{body}");
    assert_eq!(b.get(&w.app, "/me").await.status(), 401);

    // Injected: the victim's browser gets the attacker's code with the victim's own state
    // (login CSRF through code injection). The victim's PKCE verifier does not match the
    // attacker's challenge: refused, and the code is burnt for the attacker too.
    let attacker = browser();
    let authorize = attacker.begin(&w.app).await;
    let (attacker_state, attacker_code) = attacker
        .answer(&w.app, attacker.approve(&authorize, "artist").await)
        .await;
    let victim = browser();
    let victim_state = param(&victim.begin(&w.app).await, "state", false).unwrap();
    let res = victim.deliver(&w.app, &victim_state, &attacker_code).await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "code_refused", "{body}");
    assert_eq!(victim.get(&w.app, "/me").await.status(), 401);
    let res = attacker
        .deliver(&w.app, &attacker_state, &attacker_code)
        .await;
    assert_eq!(res.status(), 401, "a code refused once is burnt");

    // A missing code: 400.
    let b = browser();
    let state = param(&b.begin(&w.app).await, "state", false).unwrap();
    let mut url = w.app.base.join(w.app.audius.redirect_uri().path()).unwrap();
    url.query_pairs_mut().append_pair("state", &state);
    let res = b
        .client
        .get(url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "missing_code");
}

#[actix_web::test]
async fn a_declined_login_comes_back_as_access_denied() {
    let w = world(ResponseMode::Query, Scope::Write).await;
    let b = browser();
    let authorize = b.begin(&w.app).await;
    let res = b.client.get(authorize).send().await.unwrap();
    let page = location(&res);
    let query = page.query().unwrap().to_owned();
    let res = b
        .client
        .post(w.sandbox.base_url().join("/oauth/auth/cancel").unwrap())
        .form(&[("query", query.as_str()), ("sandbox_user", "listener")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let back = location(&res);
    assert_eq!(param(&back, "error", false).unwrap(), "access_denied");
    let res = b
        .client
        .get(back)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    assert_eq!(grants(&w.sandbox, "authorization_code"), 0);
}

#[actix_web::test]
async fn an_unregistered_callback_is_refused_by_audius() {
    let clock = Arc::new(ManualClock::at_unix(START));
    // The app is registered for another callback than the one it sends.
    let sandbox = sandbox(&["http://127.0.0.1:1/elsewhere".to_owned()], clock.clone()).await;
    let app = start_app(
        listener(),
        &sandbox,
        ResponseMode::Query,
        Scope::Read,
        clock,
        Key::generate(),
    );
    let b = browser();
    let authorize = b.begin(&app).await;
    let res = b.client.get(authorize).send().await.unwrap();
    let res = if res.status() == 302 {
        let mut page = location(&res);
        page.query_pairs_mut()
            .append_pair("sandbox_user", "listener");
        b.client.get(page).send().await.unwrap()
    } else {
        res
    };
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("data-invalid-param=\"redirect_uri\""),
        "{html}"
    );
    assert_eq!(grants(&sandbox, "authorization_code"), 0);
}

#[actix_web::test]
async fn the_code_flow_needs_an_api_key() {
    let err = AudiusLogin::builder("No Key", "http://127.0.0.1:8080/auth/audius/callback")
        .flow(Flow::AuthorizationCode)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("API key"), "{err}");
}
