//! The back half of the authorization-code flow (`docs/protocol-pkce.md` sections 2 to 4): the
//! token endpoint (every error text of its table), rotation and reuse detection, revocation,
//! `/v1/me` and its older alias, the write endpoint and its scope check, the request log, a
//! declined authorization, and the core crate's `OAuthClient` against all of it.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use audius_login::clock::ManualClock;
use audius_login::oauth::{BodyEncoding, OAuthClient, PkceVerifier, RefreshToken};
use audius_login::{ApiClient, ErrorKind, OAuthErrorCode, RedirectUri, Scope, UserId};
use audius_sandbox::oauth::{BUILTIN_APP_API_KEY, pkce_challenge};
use audius_sandbox::{DeveloperApp, Fault, Sandbox, SandboxHandle};
use common::http;
use serde_json::{Value, json};
use url::Url;

const REDIRECT: &str = "http://localhost:8080/auth/audius/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct Env {
    sandbox: SandboxHandle,
    clock: Arc<ManualClock>,
}

async fn start() -> Env {
    let clock = Arc::new(ManualClock::at_unix(1_750_000_000));
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    Env { sandbox, clock }
}

impl Env {
    fn url(&self, path: &str) -> Url {
        self.sandbox.base_url().join(path).unwrap()
    }

    /// A code issued by the login page for `handle`, with `scope`, through the query channel.
    async fn code(&self, handle: &str, scope: &str) -> String {
        let mut url = self.sandbox.login_page_url();
        url.query_pairs_mut().extend_pairs([
            ("response_type", "code"),
            ("client_id", BUILTIN_APP_API_KEY),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st"),
            ("code_challenge", &pkce_challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
            ("response_mode", "query"),
            ("sandbox_user", handle),
        ]);
        let resp = http().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 302);
        let to = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        to.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    /// `POST path` with a form body.
    async fn form(&self, path: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.raw(path, "application/x-www-form-urlencoded", body)
            .await
    }

    /// `POST path` with a JSON body.
    async fn json(&self, path: &str, body: Value) -> (u16, Value) {
        self.raw(path, "application/json", body.to_string()).await
    }

    async fn raw(&self, path: &str, content_type: &str, body: String) -> (u16, Value) {
        let resp = http()
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if path.starts_with("/v1/oauth/") {
            assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
        }
        (status, resp.json().await.unwrap())
    }

    async fn exchange(&self, code: &str) -> (u16, Value) {
        self.form(
            "/v1/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", VERIFIER),
                ("client_id", BUILTIN_APP_API_KEY),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.form(
            "/v1/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn bearer_get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = http()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn favorite(&self, track: &str, token: &str, query: &str) -> (u16, Value) {
        let resp = http()
            .post(self.url(&format!("/v1/tracks/{track}/favorites{query}")))
            .bearer_auth(token)
            .json(&json!({ "is_save_of_repost": false }))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

fn oauth_error(body: &Value) -> (&str, &str) {
    (
        body["error"].as_str().unwrap(),
        body["error_description"].as_str().unwrap(),
    )
}

fn token(body: &Value, key: &str) -> String {
    body[key].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn code_exchange_and_the_user_behind_the_token() {
    let env = start().await;
    for (scope, expected) in [
        ("read", "read"),
        ("write", "write"),
        ("read write", "write"),
    ] {
        let code = env.code("artist", scope).await;
        let (status, body) = env.exchange(&code).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], expected);
        let access = token(&body, "access_token");
        let refresh = token(&body, "refresh_token");
        assert_eq!(access.len(), 43);
        assert_eq!(refresh.len(), 43);
        assert!(!access.contains('.'), "opaque, not a JWT");

        let (status, me) = env.bearer_get("/v1/me", &access).await;
        assert_eq!(status, 200);
        assert_eq!(me["data"]["handle"], "artist");
        assert_eq!(me["data"]["id"], UserId::new(7).hashid());
        assert!(
            me["data"].get("email").is_none(),
            "no email in the code flow"
        );
        let (status, old) = env.bearer_get("/v1/oauth/me", &access).await;
        assert_eq!(status, 200);
        assert!(old.get("data").is_none());
        assert_eq!(old["userId"], UserId::new(7).hashid());
        assert_eq!(old["sub"], old["userId"]);
        assert_eq!(old["handle"], "artist");
        assert_eq!(old["verified"], true);
        assert_eq!(old["iat"], 1_750_000_000);
        assert!(old["profilePicture"]["150x150"].is_string());
    }
    // JSON bodies work as well as forms, and client_id/redirect_uri are optional.
    let code = env.code("listener", "read").await;
    let (status, body) = env
        .json(
            "/v1/oauth/token",
            json!({"grant_type": "authorization_code", "code": code, "code_verifier": VERIFIER}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, me) = env
        .bearer_get("/v1/me", &token(&body, "access_token"))
        .await;
    assert_eq!(me["data"]["handle"], "listener");
    // `0x` and upper case are the same client.
    let code = env.code("listener", "read").await;
    let upper = format!("0x{}", BUILTIN_APP_API_KEY.to_ascii_uppercase());
    let (status, _) = env
        .form(
            "/v1/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
                ("client_id", &upper),
            ],
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_error_of_the_token_table() {
    let env = start().await;
    let exchange = |code: String, verifier: &'static str, extra: Vec<(&'static str, String)>| {
        let mut pairs = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("code_verifier", verifier.to_owned()),
        ];
        pairs.extend(extra);
        pairs
    };
    let send = |pairs: Vec<(&'static str, String)>| {
        let env = &env;
        async move {
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            env.form("/v1/oauth/token", &refs).await
        }
    };

    // Unparsable bodies.
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("application/json", "[1, 2]"),
        (
            "application/json",
            r#"{"grant_type": "refresh_token", "refresh_token": 5}"#,
        ),
        ("text/plain", "grant_type=refresh_token&refresh_token=x"),
        ("", "grant_type=refresh_token"),
    ] {
        let (status, body) = env
            .raw("/v1/oauth/token", content_type, body.to_owned())
            .await;
        assert_eq!(status, 400, "{content_type}");
        assert_eq!(
            oauth_error(&body),
            ("invalid_request", "Invalid request body")
        );
    }
    // grant_type.
    for pairs in [vec![], vec![("grant_type", "password")]] {
        let (status, body) = env.form("/v1/oauth/token", &pairs).await;
        assert_eq!(status, 400);
        assert_eq!(
            oauth_error(&body),
            (
                "invalid_request",
                "grant_type must be 'authorization_code' or 'refresh_token'"
            )
        );
    }
    // Code or verifier missing (empty counts as missing).
    for pairs in [
        vec![("grant_type", "authorization_code"), ("code", "abc")],
        vec![
            ("grant_type", "authorization_code"),
            ("code_verifier", VERIFIER),
        ],
        vec![
            ("grant_type", "authorization_code"),
            ("code", ""),
            ("code_verifier", VERIFIER),
        ],
    ] {
        let (status, body) = env.form("/v1/oauth/token", &pairs).await;
        assert_eq!(status, 400);
        assert_eq!(
            oauth_error(&body),
            (
                "invalid_request",
                "Missing required parameters for authorization_code grant"
            )
        );
    }
    let used_up = (
        "invalid_grant",
        "Authorization code is invalid, expired, or already used",
    );
    // Unknown code.
    let (status, body) = send(exchange("nope".into(), VERIFIER, vec![])).await;
    assert_eq!((status, oauth_error(&body)), (400, used_up));

    // A wrong verifier fails, and burns the code.
    let code = env.code("artist", "write").await;
    let wrong = "wrongwrongwrongwrongwrongwrongwrongwrongwrong";
    let (status, body) = send(exchange(code.clone(), wrong, vec![])).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "PKCE verification failed"))
    );
    let (status, body) = send(exchange(code, VERIFIER, vec![])).await;
    assert_eq!((status, oauth_error(&body)), (400, used_up), "burnt");

    // A reused code.
    let code = env.code("artist", "write").await;
    assert_eq!(env.exchange(&code).await.0, 200);
    let (status, body) = env.exchange(&code).await;
    assert_eq!((status, oauth_error(&body)), (400, used_up));

    // client_id and redirect_uri must match what the code was issued for (and are burnt too).
    let code = env.code("artist", "write").await;
    let (status, body) = send(exchange(
        code.clone(),
        VERIFIER,
        vec![("client_id", "ff".repeat(20))],
    ))
    .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "client_id mismatch"))
    );
    assert_eq!(env.exchange(&code).await.0, 400, "burnt");
    let code = env.code("artist", "write").await;
    let (status, body) = send(exchange(
        code,
        VERIFIER,
        vec![("redirect_uri", format!("{REDIRECT}/"))],
    ))
    .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "redirect_uri mismatch"))
    );

    // An expired code (10 minutes on the sandbox's clock).
    let code = env.code("artist", "write").await;
    env.clock.advance(Duration::from_secs(599));
    let fresh = env.code("artist", "write").await;
    env.clock.advance(Duration::from_secs(1));
    let (status, body) = env.exchange(&code).await;
    assert_eq!((status, oauth_error(&body)), (400, used_up), "expired");
    assert_eq!(env.exchange(&fresh).await.0, 200, "599 s old is fine");

    // Refresh errors.
    let (status, body) = env
        .form("/v1/oauth/token", &[("grant_type", "refresh_token")])
        .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (
            400,
            (
                "invalid_request",
                "refresh_token is required for refresh_token grant"
            )
        )
    );
    let (status, body) = env.refresh("unknown").await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "Invalid refresh token"))
    );
    let code = env.code("artist", "write").await;
    let (_, pair) = env.exchange(&code).await;
    let (status, body) = env.refresh(&token(&pair, "access_token")).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "Invalid refresh token")),
        "an access token is not a refresh token"
    );
    let (status, body) = env
        .form(
            "/v1/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token(&pair, "refresh_token")),
                ("client_id", &"ab".repeat(20)),
            ],
        )
        .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "client_id mismatch"))
    );
    env.clock.advance(Duration::from_secs(30 * 24 * 3600));
    let (status, body) = env.refresh(&token(&pair, "refresh_token")).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "Refresh token expired"))
    );

    // Server trouble: 500 server_error (a sandbox fault on the token route).
    env.sandbox
        .set_fault(0, "/v1/oauth/token", Fault::status(500).times(1))
        .unwrap();
    let (status, body) = env.refresh("whatever").await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "server_error");
    assert!(body["error_description"].as_str().unwrap().contains("500"));
}

#[tokio::test]
async fn refresh_rotation_reuse_detection_and_expiry() {
    let env = start().await;
    let code = env.code("artist", "write").await;
    let (_, first) = env.exchange(&code).await;
    let (a1, r1) = (
        token(&first, "access_token"),
        token(&first, "refresh_token"),
    );

    // The access token lives one hour.
    env.clock.advance(Duration::from_secs(3599));
    assert_eq!(env.bearer_get("/v1/me", &a1).await.0, 200);
    env.clock.advance(Duration::from_secs(1));
    let (status, body) = env.bearer_get("/v1/me", &a1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Access token expired"))
    );
    assert_eq!(body["code"], 401);

    // Rotation: a new pair, the same scope.
    let (status, second) = env.refresh(&r1).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["scope"], "write");
    let (a2, r2) = (
        token(&second, "access_token"),
        token(&second, "refresh_token"),
    );
    assert_ne!(r1, r2);
    assert_eq!(env.bearer_get("/v1/me", &a2).await.0, 200);
    let (status, third) = env.refresh(&r2).await;
    assert_eq!(status, 200);
    let (a3, r3) = (
        token(&third, "access_token"),
        token(&third, "refresh_token"),
    );

    // Reuse of r1: detected, the whole family revoked (every access and refresh token).
    let (status, body) = env.refresh(&r1).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "Token reuse detected"))
    );
    for access in [&a2, &a3] {
        let (status, body) = env.bearer_get("/v1/me", access).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("Access token revoked"))
        );
    }
    let (status, body) = env.refresh(&r3).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "Invalid refresh token"))
    );
    assert_eq!(env.sandbox.tokens().is_revoked(&r3), Some(true));

    // Another user's family is untouched.
    let code = env.code("listener", "read").await;
    let (_, other) = env.exchange(&code).await;
    assert_eq!(
        env.bearer_get("/v1/me", &token(&other, "access_token"))
            .await
            .0,
        200
    );

    // Bearer header shapes.
    let resp = http().get(env.url("/v1/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let resp = http()
        .get(env.url("/v1/me"))
        .header("authorization", format!("Basic {a3}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, body) = env.bearer_get("/v1/me", &r3).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Invalid access token"))
    );
}

#[tokio::test]
async fn revocation() {
    let env = start().await;
    let code = env.code("artist", "write").await;
    let (_, pair) = env.exchange(&code).await;
    let (access, refresh) = (token(&pair, "access_token"), token(&pair, "refresh_token"));

    // Unknown tokens: 200 {} all the same (RFC 7009); client_id is ignored.
    let (status, body) = env
        .form(
            "/v1/oauth/revoke",
            &[("token", "unknown"), ("client_id", "x")],
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    // Missing token, unparsable body: 400 invalid_request.
    let (status, body) = env.form("/v1/oauth/revoke", &[]).await;
    assert_eq!(status, 400);
    assert_eq!(oauth_error(&body).0, "invalid_request");
    let (status, body) = env
        .raw("/v1/oauth/revoke", "application/json", "{".into())
        .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_request", "Invalid request body"))
    );

    // Revoking the access token revokes the family: the refresh token is dead too.
    let (status, body) = env
        .json("/v1/oauth/revoke", json!({ "token": access }))
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(env.bearer_get("/v1/me", &access).await.0, 401);
    let (status, body) = env.refresh(&refresh).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (400, ("invalid_grant", "Invalid refresh token"))
    );
    // Revoking again is fine.
    assert_eq!(
        env.form("/v1/oauth/revoke", &[("token", &refresh)]).await.0,
        200
    );
}

#[tokio::test]
async fn the_write_endpoint_needs_the_write_scope() {
    let env = start().await;
    let track = UserId::new(1234).hashid();
    let code = env.code("artist", "read").await;
    let (_, read) = env.exchange(&code).await;
    let read = token(&read, "access_token");
    let (status, body) = env.favorite(&track, &read, "").await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"code": 403, "error": "OAuth token scope insufficient: write scope required"})
    );
    assert!(env.sandbox.favorites(UserId::new(7)).is_empty());

    let code = env.code("artist", "write").await;
    let (_, write) = env.exchange(&code).await;
    let write = token(&write, "access_token");
    let artist = UserId::new(7).hashid();
    let (status, body) = env
        .favorite(&track, &write, &format!("?user_id={artist}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["transaction_hash"].as_str().unwrap().len(), 66);
    assert_eq!(env.sandbox.favorites(UserId::new(7)), vec![1234]);
    let resp = http()
        .get(env.url(&format!("/v1/users/{artist}/favorites")))
        .send()
        .await
        .unwrap();
    let list: Value = resp.json().await.unwrap();
    assert_eq!(list["data"][0]["favorite_item_id"], track);

    // Another user's id, a bad track id, no token, a bad body.
    let other = UserId::new(44).hashid();
    let (status, body) = env
        .favorite(&track, &write, &format!("?user_id={other}"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(env.favorite("!!", &write, "").await.0, 400);
    let resp = http()
        .post(env.url(&format!("/v1/tracks/{track}/favorites")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http()
        .post(env.url(&format!("/v1/tracks/{track}/favorites")))
        .bearer_auth(&write)
        .header("content-type", "application/json")
        .body("{\"is_save_of_repost\": 3}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // DELETE removes it (write scope too).
    let resp = http()
        .delete(env.url(&format!("/v1/tracks/{track}/favorites")))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = http()
        .delete(env.url(&format!("/v1/tracks/{track}/favorites")))
        .bearer_auth(&write)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(env.sandbox.favorites(UserId::new(7)).is_empty());
}

#[tokio::test]
async fn the_request_log_shows_grant_types_and_never_secrets() {
    let env = start().await;
    let code = env.code("artist", "write").await;
    env.sandbox.clear_requests();
    let (_, pair) = env.exchange(&code).await;
    let refresh = token(&pair, "refresh_token");
    env.refresh(&refresh).await;
    env.json(
        "/v1/oauth/token",
        json!({"grant_type": "refresh_token", "refresh_token": "x"}),
    )
    .await;
    env.raw("/v1/oauth/token", "application/json", "{".into())
        .await;
    let log = env.sandbox.requests();
    let grants: Vec<Option<&str>> = log
        .iter()
        .filter(|r| r.path == "/v1/oauth/token")
        .map(|r| r.grant_type.as_deref())
        .collect();
    assert_eq!(
        grants,
        vec![
            Some("authorization_code"),
            Some("refresh_token"),
            Some("refresh_token"),
            None
        ]
    );
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&code) && !text.contains(&refresh) && !text.contains(VERIFIER));
}

#[tokio::test]
async fn a_declined_code_flow_comes_back_with_access_denied() {
    let env = start().await;
    for (mode, separator) in [("query", '?'), ("fragment", '#')] {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", BUILTIN_APP_API_KEY),
                ("redirect_uri", REDIRECT),
                ("scope", "write"),
                ("state", "st1"),
                ("code_challenge", &pkce_challenge(VERIFIER)),
                ("code_challenge_method", "S256"),
                ("response_mode", mode),
            ])
            .finish();
        let resp = http()
            .post(env.url("/oauth/auth/cancel"))
            .form(&[("query", query.as_str()), ("sandbox_user", "artist")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(
            resp.headers()["location"].to_str().unwrap(),
            format!(
                "{REDIRECT}{separator}state=st1&error=access_denied&error_description=\
                 The+user+denied+the+authorization+request"
            )
        );
    }
}

#[tokio::test]
async fn registered_apps_have_their_own_redirect_uris() {
    let clock = Arc::new(ManualClock::at_unix(1_750_000_000));
    let app = DeveloperApp::new(
        "Mobile",
        &"12".repeat(20),
        vec!["myapp://callback".into(), "https://m.example/cb".into()],
    )
    .unwrap();
    let sandbox = Sandbox::builder()
        .clock(clock)
        .app(app)
        .start()
        .await
        .unwrap();
    let login = |redirect: &'static str| {
        let mut url = sandbox.login_page_url();
        url.query_pairs_mut().extend_pairs([
            ("response_type", "code"),
            ("client_id", &"12".repeat(20)),
            ("redirect_uri", redirect),
            ("scope", "read"),
            ("code_challenge", &pkce_challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
            ("sandbox_user", "artist"),
        ]);
        url
    };
    let resp = http().get(login("myapp://callback")).send().await.unwrap();
    assert_eq!(resp.status(), 302, "a custom scheme, registered");
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("myapp://callback?code=")
    );
    // The built-in app's callback is not this app's.
    let resp = http().get(login(REDIRECT)).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("data-invalid-param=\"redirect_uri\"")
    );
}

/// The core crate's client against the sandbox, in both body encodings.
#[tokio::test]
async fn core_oauth_client_agrees_with_the_sandbox() {
    let env = start().await;
    let api = ApiClient::new(env.sandbox.base_url()).unwrap();
    let redirect = RedirectUri::parse(REDIRECT).unwrap();
    let verifier = PkceVerifier::new(VERIFIER).unwrap();
    for encoding in [BodyEncoding::Form, BodyEncoding::Json] {
        let oauth = OAuthClient::new(api.clone())
            .client_id(BUILTIN_APP_API_KEY)
            .unwrap()
            .body_encoding(encoding);
        let code = env.code("artist", "write").await;
        let tokens = oauth
            .exchange_code(&code, &verifier, &redirect)
            .await
            .unwrap();
        assert_eq!(tokens.scope, Scope::Write);
        assert_eq!(tokens.expires_in, Duration::from_secs(3600));
        let profile = oauth.me(&tokens.access_token).await.unwrap();
        assert_eq!(profile.handle, "artist");
        assert_eq!(profile.user_id, UserId::new(7));
        assert!(profile.verified);
        assert_eq!(profile.email, None);
        assert!(profile.wallet.is_some());
        assert_eq!(profile.claims.user_id, UserId::new(7));

        // The code is used: invalid_grant, typed.
        let e = oauth
            .exchange_code(&code, &verifier, &redirect)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidGrant, "{e}");
        assert!(e.to_string().contains("already used"), "{e}");
        // A wrong verifier.
        let code = env.code("artist", "write").await;
        let e = oauth
            .exchange_code(&code, &PkceVerifier::generate(), &redirect)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, audius_login::Error::OAuth { code: OAuthErrorCode::InvalidGrant, description, status: 400 } if description == "PKCE verification failed"),
            "{e:?}"
        );

        let next = oauth.refresh(&tokens.refresh_token).await.unwrap();
        let e = oauth.refresh(&tokens.refresh_token).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidGrant);
        assert!(e.to_string().contains("Token reuse detected"));
        let e = oauth.me(&next.access_token).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidAccessToken);

        let code = env.code("artist", "read").await;
        let tokens = oauth
            .exchange_code(&code, &verifier, &redirect)
            .await
            .unwrap();
        let answer = api
            .send_with_bearer(
                audius_login::client::Method::POST,
                "/v1/tracks/eYorL/favorites",
                tokens.access_token.secret(),
                Some(&json!({})),
            )
            .await
            .unwrap();
        assert_eq!(
            audius_login::oauth::bearer_failure(&answer).kind(),
            ErrorKind::InsufficientScope
        );
        oauth.revoke(tokens.refresh_token.secret()).await.unwrap();
        oauth.revoke("never-issued").await.unwrap();
        let e = oauth.refresh(&tokens.refresh_token).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidGrant);
        let e = oauth
            .refresh(&RefreshToken::new(String::new()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OAuthRefused, "{e}");
    }
    // The token POST is never sent twice: a 503 is not retried on another host.
    let two = Sandbox::builder().hosts(2).start().await.unwrap();
    let api = ApiClient::builder().hosts(two.host_urls()).build().unwrap();
    two.set_fault(0, "/v1/oauth/token", Fault::status(503))
        .unwrap();
    two.set_fault(1, "/v1/oauth/token", Fault::status(503))
        .unwrap();
    two.clear_requests();
    let e = OAuthClient::new(api)
        .refresh(&RefreshToken::new("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    let posts = two
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/oauth/token")
        .count();
    assert_eq!(posts, 1);
}

/// A body over the sandbox's limit cannot be parsed: `invalid_request` "Invalid request body"
/// (the spec's words), with the status of a size limit, on both OAuth POST endpoints.
#[tokio::test]
async fn oversized_bodies_are_invalid_request_bodies() {
    let env = start().await;
    let big = format!(
        "grant_type=refresh_token&refresh_token={}",
        "x".repeat(audius_sandbox::MAX_BODY_BYTES)
    );
    for path in ["/v1/oauth/token", "/v1/oauth/revoke"] {
        let (status, body) = env
            .raw(path, "application/x-www-form-urlencoded", big.clone())
            .await;
        assert_eq!(status, 413, "{path}");
        assert_eq!(
            body,
            json!({"error": "invalid_request", "error_description": "Invalid request body"}),
            "{path}"
        );
    }
}
