//! A seventh independent review (main at 51a363b): session fixation with a server-side session
//! store, where renewing the session at sign-in is what keeps a planted session id from being
//! signed in (with actix-session's cookie store, the cookie changes at sign-in whatever
//! happens, so `crates/actix-audius-login/tests/login.rs`'s
//! `session_id_changes_at_login_and_pending_state_goes` cannot tell). The other review-7
//! attacks are in `crates/actix-audius-login/tests/review7_attacks.rs`.

use actix_audius_login::{AudiusLogin, ResponseMode};
use actix_audius_login_testing::TestServer;
use actix_session::storage::RedisSessionStore;
use actix_web::cookie::Key;
use audius_login_e2e::app::{SESSION_COOKIE, app, sessions};
use audius_login_e2e::http::{self, approve, location};
use audius_login_e2e::redis::RedisServer;
use audius_sandbox::Sandbox;
use reqwest::header::{ACCEPT, COOKIE};
use reqwest::redirect::Policy;

fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("a client")
}

/// Who `cookie` is signed in as (`GET /me`), if anyone.
async fn who(server: &TestServer, cookie: &str) -> Option<String> {
    let res = bare()
        .get(server.url("/me"))
        .header(COOKIE, cookie)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .expect("/me answers");
    if res.status() != 200 {
        return None;
    }
    let me: serde_json::Value = res.json().await.expect("JSON");
    me["handle"].as_str().map(str::to_owned)
}

/// Sessions in Redis: the attacker gets a session id of their own from the app (a login
/// started), plants it in the victim's browser (the precondition of session fixation: a
/// sibling subdomain, an injected `Set-Cookie`), and the victim signs in with it. The victim
/// ends with a new session id; the planted one is not signed in (the attacker, holding it, is
/// nobody), and the old session's pending state went with it.
#[actix_web::test]
async fn a_planted_session_id_is_not_signed_in_when_the_victim_logs_in() {
    let redis = RedisServer::start().await;
    let sandbox = Sandbox::builder().start().await.expect("sandbox");
    let server = TestServer::bind().expect("a port");
    let audius = AudiusLogin::builder("Review 7", server.url("/auth/audius/callback"))
        .environment(sandbox.environment())
        .response_mode(ResponseMode::Query)
        .build()
        .expect("config");
    let key = Key::generate();
    let store = RedisSessionStore::new(redis.url())
        .await
        .expect("the session store connects");
    let server = server
        .start({
            let audius = audius.clone();
            move || app(&audius, sessions(store.clone(), &key))
        })
        .expect("the app starts");

    // The attacker's own session id, from a login they started.
    let res = bare()
        .get(server.url(audius.paths().login.as_str()))
        .send()
        .await
        .expect("login route");
    assert_eq!(res.status(), 302);
    let planted = http::set_cookie(&res, SESSION_COOKIE).expect("a session id");

    // The victim's browser carries the planted id through a whole login.
    let victim = bare();
    let res = victim
        .get(server.url(audius.paths().login.as_str()))
        .header(COOKIE, &planted)
        .send()
        .await
        .expect("login route");
    assert_eq!(res.status(), 302);
    let cookie = http::set_cookie(&res, SESSION_COOKIE).unwrap_or_else(|| planted.clone());
    let page = location(&res);
    let callback = approve(&victim, &page, "listener").await;
    let res = victim
        .get(callback)
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("callback");
    assert_eq!(res.status(), 302, "the victim signs in");
    let signed_in = http::set_cookie(&res, SESSION_COOKIE).expect("a session cookie at sign-in");
    assert_ne!(signed_in, planted, "the session id is renewed at sign-in");
    assert_eq!(who(&server, &signed_in).await.as_deref(), Some("listener"));
    assert_eq!(
        who(&server, &planted).await,
        None,
        "the attacker's planted session id is signed in as the victim"
    );
}
