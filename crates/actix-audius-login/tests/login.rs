//! The full login in each channel, the extractors both ways, logout, and the answers for a
//! missing login. Real server on port 0, real sandbox, cookie-keeping client.
#![allow(clippy::unwrap_used)]

mod common;

use actix_audius_login::ResponseMode;
use common::{sandbox, start, start_with};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use serde_json::Value;

fn location(res: &reqwest::Response) -> String {
    res.headers()[LOCATION].to_str().unwrap().to_owned()
}

#[actix_web::test]
async fn query_mode_full_login() {
    let app = start(ResponseMode::Query).await;
    let page = app.begin_login(Some("/me?x=1")).await;
    // Every parameter of spec section 1, response mode explicit.
    let q: std::collections::HashMap<String, String> = page.query_pairs().into_owned().collect();
    assert_eq!(page.path(), "/oauth/auth");
    assert_eq!(q["scope"], "read");
    assert_eq!(q["app_name"], "Test App");
    assert_eq!(q["redirect_uri"], app.url("/auth/audius/callback").as_str());
    assert_eq!(q["response_mode"], "query");
    assert_eq!(q["display"], "popup");
    assert!(q["state"].len() >= 22, "a state of at least 128 bits");
    assert!(!q.contains_key("origin"));

    let answer = app.approve(&page, "listener").await;
    assert_eq!(answer.status(), 302);
    let callback = location(&answer);
    assert!(callback.contains("token="), "{callback}");
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 302, "{:?}", res.text().await);
    assert_eq!(location(&res), "/me?x=1");
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let set_cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "plain-http localhost: not Secure ({set_cookie})"
    );

    let me: Value = app.me().await.json().await.unwrap();
    assert_eq!(me["handle"], "listener");
    assert_eq!(me["id"], 44);
    assert_eq!(me["hashid"], "eYorL");
    assert_eq!(me["verified"], false);
    assert_eq!(me["email"], "listener@sandbox.audius.invalid");
    assert!(me["profile_picture"]["150x150"].is_string());
    assert!(me["signed_in_at"].is_string());
}

#[actix_web::test]
async fn fragment_mode_full_login_through_the_bridge() {
    let app = start(ResponseMode::Fragment).await;
    // The callback without parameters is the bridge page.
    let bridge = app.get("/auth/audius/callback").await;
    assert_eq!(bridge.status(), 200);
    assert!(
        bridge.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = bridge.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'sha256-") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let html = bridge.text().await.unwrap();
    assert!(
        html.contains("history.replaceState")
            && html.contains("data-callback=\"/auth/audius/callback\"")
    );

    let page = app.begin_login(Some("/artists")).await;
    assert_eq!(
        page.query_pairs()
            .find(|(k, _)| k == "response_mode")
            .unwrap()
            .1,
        "fragment"
    );
    let answer = app.approve(&page, "artist").await;
    let target = url::Url::parse(&location(&answer)).unwrap();
    assert!(
        target.query().is_none(),
        "the token travels in the fragment only"
    );
    assert!(target.fragment().unwrap().contains("token="));
    let res = app
        .deliver(
            app.approve(&app.begin_login(Some("/artists")).await, "listener")
                .await,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["redirect"], "/artists");
    assert_eq!(body["user"]["handle"], "listener");
}

#[actix_web::test]
async fn postmessage_mode_callback_post() {
    let app = start(ResponseMode::PostMessage).await;
    // The button carries the popup script and the Audius origin to check messages against.
    let home = app.get("/").await.text().await.unwrap();
    assert!(home.contains("id=\"audius-login-button\""));
    assert!(home.contains("data-audius-popup=\"true\""));
    assert!(home.contains(&format!(
        "data-audius-origin=\"{}\"",
        app.sandbox.environment().login_origin()
    )));
    assert!(home.contains("/auth/audius/assets/login.js?v="));
    let page = app.begin_login(None).await;
    let q: std::collections::HashMap<String, String> = page.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_uri"], "postmessage");
    assert_eq!(
        q["origin"],
        app.audius.redirect_uri().origin().ascii_serialization()
    );
    let res = app.deliver(app.approve(&page, "artist").await).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["redirect"], "/");
    assert_eq!(body["user"]["verified"], true);
    // The GET callback is not a channel of this mode.
    let res = app.get("/auth/audius/callback?state=a&token=b").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_callback");
}

#[actix_web::test]
async fn optional_user_and_request_extension_both_ways() {
    let app = start(ResponseMode::Query).await;
    let home = app.get("/").await.text().await.unwrap();
    assert!(
        home.contains("Continue With Audius"),
        "anonymous: the button"
    );
    assert_eq!(app.get("/who").await.text().await.unwrap(), "nobody");
    assert_eq!(app.login("nopicture", None).await.status(), 302);
    assert_eq!(
        app.get("/").await.text().await.unwrap(),
        "signed in as @nopicture"
    );
    assert_eq!(app.get("/who").await.text().await.unwrap(), "nopicture");
    let me: Value = app.me().await.json().await.unwrap();
    assert!(me.get("profile_picture").is_none(), "no picture: {me}");
    // Signing out in the middle of a request: the rest of the request sees it.
    assert_eq!(
        app.get("/forget").await.text().await.unwrap(),
        "nopicture, then nobody"
    );
    assert_eq!(app.get("/who").await.text().await.unwrap(), "nobody");
}

#[actix_web::test]
async fn verified_artist_gate_guard_and_scopes_both_ways() {
    let sandbox = sandbox().await;
    let listener = start_with(sandbox.clone(), ResponseMode::Query, |b| b).await;
    let artist = start_with(sandbox, ResponseMode::Query, |b| b).await;

    // Signed out: the gate asks for a login.
    assert_eq!(listener.get("/artists").await.status(), 401);
    assert_eq!(listener.get("/studio").await.status(), 401);
    assert_eq!(
        listener.get("/guarded").await.text().await.unwrap(),
        "anonymous route"
    );

    listener.login("listener", None).await;
    artist.login("artist", None).await;

    let res = listener.get("/artists").await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_verified_artist");
    let page = listener.get_html("/artists").await;
    assert_eq!(page.status(), 403);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("data-audius-error=\"not_verified_artist\"")
    );
    assert_eq!(listener.get("/studio").await.status(), 403);
    assert_eq!(
        listener.get("/guarded").await.text().await.unwrap(),
        "listener route"
    );

    assert_eq!(
        artist.get("/artists").await.text().await.unwrap(),
        "artist @artist"
    );
    assert_eq!(
        artist.get("/studio").await.text().await.unwrap(),
        "studio page"
    );
    assert_eq!(
        artist.get("/guarded").await.text().await.unwrap(),
        "artist route"
    );
}

#[actix_web::test]
async fn session_id_changes_at_login_and_pending_state_goes() {
    let app = start(ResponseMode::Query).await;
    let page = app.begin_login(None).await;
    let before = app
        .session_cookie()
        .expect("the login start stores the state in a session");
    app.deliver(app.approve(&page, "listener").await).await;
    let after = app.session_cookie().expect("signed in");
    assert_ne!(before, after, "the session is renewed at login");
}

#[actix_web::test]
async fn logout_purges_and_refuses_cross_site() {
    let app = start(ResponseMode::Query).await;
    app.login("listener", None).await;
    assert_eq!(app.me().await.status(), 200);

    // Cross-site logout attempts are refused; the user stays signed in.
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.get("/auth/logout").await.status(), 405, "no GET logout");
    assert_eq!(app.me().await.status(), 200);

    let res = app.logout().await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/");
    assert_eq!(app.me().await.status(), 401);
    assert!(app.get_html("/account").await.status() == 302);
}

#[actix_web::test]
async fn browsers_are_redirected_api_clients_get_401_json() {
    let app = start(ResponseMode::Query).await;
    let res = app.get_html("/me?tab=2").await;
    assert_eq!(res.status(), 302);
    assert_eq!(
        location(&res),
        "/auth/audius/login?return_to=%2Fme%3Ftab%3D2"
    );

    let res = app.get("/me").await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_signed_in");
    assert!(body["message"].is_string());

    // Forced per scope: JSON even for browsers.
    let res = app.get_html("/api/me").await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "not_signed_in");

    // A scope behind require_login.
    let res = app.get_html("/account").await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/auth/audius/login?return_to=%2Faccount");

    // Start from a protected page, log in, come back to it.
    let res = app.login("listener", Some("/account")).await;
    assert_eq!(location(&res), "/account");
    assert_eq!(
        app.get("/account").await.text().await.unwrap(),
        "account page"
    );
}

#[actix_web::test]
async fn assets_are_served_cacheable_with_types() {
    let app = start(ResponseMode::PostMessage).await;
    let js = app.get("/auth/audius/assets/login.js?v=1").await;
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(
        js.headers()[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let etag = js.headers()["etag"].to_str().unwrap().to_owned();
    let body = js.text().await.unwrap();
    assert!(
        body.contains("event.origin !== audiusOrigin") && body.contains("event.source !== popup")
    );
    let again = app
        .client
        .get(app.url("/auth/audius/assets/login.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let css = app.get("/auth/audius/assets/button.css").await;
    assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
}
