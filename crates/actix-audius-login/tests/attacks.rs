//! Every attack on the callback, open redirects, and upstream failures.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use actix_audius_login::{
    AudiusLoginError, Limits, LoginErrorKind, ResponseMode, VerifierKind, VerifyOptions,
};
use audius_sandbox::{Fault, TokenOverrides};
use common::{TestApp, sandbox, start, start_with};
use reqwest::header::LOCATION;
use serde_json::Value;
use url::Url;

fn state_of(login_page: &Url) -> String {
    login_page
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// GETs the query-mode callback with these parameters; returns (status, error code).
async fn callback(app: &TestApp, state: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut url = app.url(app.audius.redirect_uri().path());
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        if let Some(t) = token {
            q.append_pair("token", t);
        }
    }
    let res = app.client.get(url).send().await.unwrap();
    let status = res.status().as_u16();
    if status == 302 {
        return (302, res.headers()[LOCATION].to_str().unwrap().to_owned());
    }
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn mint(app: &TestApp, handle: &str, overrides: TokenOverrides) -> String {
    let user = app.sandbox.user(handle).expect("sandbox user").clone();
    app.sandbox.mint_token(&user, overrides)
}

#[actix_web::test]
async fn missing_wrong_and_foreign_state() {
    let app = start(ResponseMode::Query).await;
    let token = mint(&app, "listener", TokenOverrides::default());
    app.begin_login(None).await;
    assert_eq!(
        callback(&app, None, Some(&token)).await,
        (400, "missing_state".into())
    );
    assert_eq!(
        callback(&app, Some(""), Some(&token)).await,
        (400, "missing_state".into())
    );
    assert_eq!(
        callback(&app, Some("not-the-state"), Some(&token)).await,
        (400, "state_mismatch".into())
    );

    // A state started in another browser (another session).
    let other = common::start_with(app.sandbox.clone(), ResponseMode::Query, |b| b).await;
    let foreign = state_of(&other.begin_login(None).await);
    assert_eq!(
        callback(&app, Some(&foreign), Some(&token)).await,
        (400, "state_mismatch".into())
    );
    assert_eq!(app.me().await.status(), 401);
}

#[actix_web::test]
async fn callback_without_a_login_start_is_login_csrf() {
    let app = start(ResponseMode::Query).await;
    // An attacker's own valid token and state, delivered into a victim's fresh browser.
    let token = mint(&app, "artist", TokenOverrides::default());
    assert_eq!(
        callback(&app, Some("attacker-state"), Some(&token)).await,
        (400, "state_mismatch".into())
    );
    assert_eq!(
        app.me().await.status(),
        401,
        "the victim is not signed in as the attacker"
    );
}

#[actix_web::test]
async fn state_is_used_once_whatever_the_outcome() {
    let app = start(ResponseMode::Query).await;
    // A failed attempt consumes its state...
    let state = state_of(&app.begin_login(None).await);
    assert_eq!(
        callback(&app, Some(&state), None).await,
        (400, "missing_token".into())
    );
    let token = mint(&app, "listener", TokenOverrides::default());
    assert_eq!(
        callback(&app, Some(&state), Some(&token)).await,
        (400, "state_mismatch".into())
    );
    // ...and so does a successful one.
    let state = state_of(&app.begin_login(None).await);
    assert_eq!(callback(&app, Some(&state), Some(&token)).await.0, 302);
    let token2 = mint(&app, "artist", TokenOverrides::default());
    assert_eq!(
        callback(&app, Some(&state), Some(&token2)).await,
        (400, "state_mismatch".into())
    );
}

#[actix_web::test]
async fn replayed_token_is_refused() {
    let app = start(ResponseMode::Query).await;
    let token = mint(&app, "listener", TokenOverrides::default());
    let state = state_of(&app.begin_login(None).await);
    assert_eq!(callback(&app, Some(&state), Some(&token)).await.0, 302);
    // The same token with a fresh, valid state: a replay.
    let state = state_of(&app.begin_login(None).await);
    assert_eq!(
        callback(&app, Some(&state), Some(&token)).await,
        (401, "replayed_token".into())
    );
}

#[actix_web::test]
async fn stale_future_tampered_unknown_and_oversized_tokens() {
    let app = start(ResponseMode::Query).await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "stale",
            mint(&app, "listener", TokenOverrides::default().iat(now() - 600)),
            401,
            "stale_token",
        ),
        (
            "from the future",
            mint(
                &app,
                "listener",
                TokenOverrides::default().iat(now() + 3600),
            ),
            401,
            "stale_token",
        ),
        (
            "tampered",
            tamper(&mint(&app, "listener", TokenOverrides::default())),
            401,
            "token_refused",
        ),
        (
            "unknown user, foreign key",
            mint(
                &app,
                "listener",
                TokenOverrides::default()
                    .claim(
                        "userId",
                        serde_json::json!(audius_login::UserId::new(987_654).hashid()),
                    )
                    .signing_key([0x42; 32]),
            ),
            401,
            "token_refused",
        ),
        (
            "listener's key signing for the artist",
            mint(
                &app,
                "artist",
                TokenOverrides::default().signed_by(&app.sandbox.user("listener").unwrap().clone()),
            ),
            401,
            "token_refused",
        ),
        ("malformed", "a.b".into(), 400, "malformed_token"),
        (
            "oversized",
            format!("{}.{}.{}", "a".repeat(9000), "b".repeat(9000), "c"),
            413,
            "token_too_large",
        ),
    ];
    for (name, token, status, code) in cases {
        let state = state_of(&app.begin_login(None).await);
        assert_eq!(
            callback(&app, Some(&state), Some(&token)).await,
            (status, code.into()),
            "{name}"
        );
        assert_eq!(app.me().await.status(), 401, "{name}: not signed in");
    }
    // A body over the callback's limit is refused before it is read whole.
    let res = app
        .client
        .post(app.url(app.audius.redirect_uri().path()))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"state\":\"x\",\"token\":\"{}\"}}",
            "a".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

/// Changes the payload (the handle) and keeps the signature.
fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = audius_login::token::decode_segment(parts[1]).unwrap();
    let mut claims: serde_json::Map<String, Value> = serde_json::from_slice(&payload).unwrap();
    claims.insert("handle".into(), "mallory".into());
    let payload = audius_login::token::encode_segment(&serde_json::to_vec(&claims).unwrap());
    format!("{}.{}.{}", parts[0], payload, parts[2])
}

#[actix_web::test]
async fn a_forged_verified_claim_does_not_make_an_artist() {
    let app = start(ResponseMode::Query).await;
    let token = mint(
        &app,
        "listener",
        TokenOverrides::default().claim("verified", serde_json::json!(true)),
    );
    let state = state_of(&app.begin_login(None).await);
    assert_eq!(callback(&app, Some(&state), Some(&token)).await.0, 302);
    assert_eq!(
        app.get("/artists").await.status(),
        403,
        "verified comes from Audius' record"
    );
}

#[actix_web::test]
async fn open_redirect_payloads_never_leave_the_origin() {
    // Hundreds of logins of one user within seconds: no bound on their live logins
    // (`max_logins_per_user`, 30 by default, would refuse the 31st with 429).
    let app = start_with(sandbox().await, ResponseMode::Query, |b| {
        b.verify_options(VerifyOptions::default().max_age(Some(Duration::from_secs(3600))))
            .limits(Limits {
                max_logins_per_user: None,
                ..Limits::default()
            })
    })
    .await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
    let mut payloads = Vec::new();
    for file in ["open-redirect-payloads.txt", "open-redirect-wordlist.txt"] {
        let text = std::fs::read_to_string(format!("{root}{file}")).unwrap();
        payloads.extend(text.lines().map(str::to_owned));
    }
    assert!(payloads.len() > 200);
    let (mut kept, mut fallback) = (0, 0);
    for (i, payload) in payloads.iter().enumerate() {
        let page = app.begin_login(Some(payload)).await;
        // A distinct token per login (the replay cache refuses a repeated one): a claim of its
        // own, since `iat = now - i` repeats itself when the clock ticks between two logins.
        let token = mint(
            &app,
            "listener",
            TokenOverrides::default()
                .iat(now() - i as i64)
                .claim("n", serde_json::json!(i)),
        );
        let (status, target) = callback(&app, Some(&state_of(&page)), Some(&token)).await;
        assert_eq!(status, 302, "{payload:?}: {target}");
        let resolved = app.base.join(&target).unwrap();
        assert_eq!(
            resolved.origin(),
            app.base.origin(),
            "{payload:?} led to {target}"
        );
        assert!(
            target.starts_with('/') && !target.starts_with("//") && !target.contains('\\'),
            "{target}"
        );
        if target == "/" {
            fallback += 1;
        } else {
            kept += 1;
        }
    }
    println!("open-redirect payloads: {kept} kept as same-origin paths, {fallback} fell back to /");
    assert!(fallback > 150, "most payloads are foreign and fall back");
}

#[actix_web::test]
async fn audius_down_or_hanging_gives_503_never_a_panic() {
    for kind in [VerifierKind::Api, VerifierKind::Local] {
        let sandbox = sandbox().await;
        let client = audius_login::ApiClient::builder()
            .base_url(sandbox.base_url())
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let app = start_with(sandbox.clone(), ResponseMode::Query, |b| {
            b.verifier_kind(kind).api_client(client)
        })
        .await;
        let token = mint(&app, "listener", TokenOverrides::default());

        sandbox
            .set_fault(0, "/v1/users", Fault::status(500))
            .unwrap();
        let state = state_of(&app.begin_login(None).await);
        assert_eq!(
            callback(&app, Some(&state), Some(&token)).await,
            (503, "audius_unavailable".into()),
            "{kind:?} 500"
        );

        sandbox.clear_faults();
        sandbox
            .set_fault(0, "/v1/users", Fault::latency(Duration::from_secs(3)))
            .unwrap();
        let state = state_of(&app.begin_login(None).await);
        let started = std::time::Instant::now();
        assert_eq!(
            callback(&app, Some(&state), Some(&token)).await,
            (503, "audius_unavailable".into()),
            "{kind:?} hang"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the client timeout cuts the hang short"
        );

        // Audius answers, but with nonsense: 502, not a 500 of ours, not a panic.
        for (fault, what) in [
            (Fault::garbage(), "garbage"),
            (Fault::truncate(), "truncated"),
            (Fault::oversize(), "oversized"),
        ] {
            sandbox.clear_faults();
            sandbox.set_fault(0, "/v1/users", fault).unwrap();
            let state = state_of(&app.begin_login(None).await);
            let (status, code) = callback(&app, Some(&state), Some(&token)).await;
            assert!(
                (status, code.as_str()) == (502, "audius_unexpected")
                    || (status, code.as_str()) == (503, "audius_unavailable"),
                "{kind:?} {what}: {status} {code}"
            );
            if what == "garbage" {
                assert_eq!((status, code.as_str()), (502, "audius_unexpected"));
            }
        }

        sandbox.clear_faults();
        let state = state_of(&app.begin_login(None).await);
        assert_eq!(
            callback(&app, Some(&state), Some(&token)).await.0,
            302,
            "{kind:?} recovers"
        );
    }
}

#[actix_web::test]
async fn on_login_can_refuse_and_can_use_the_session() {
    use actix_session::SessionExt as _;
    let app = start_with(sandbox().await, ResponseMode::Query, |b| {
        b.on_login(|req, event| async move {
            if matches!(event.user.handle.as_str(), "nopicture" | "manager") {
                return Err(AudiusLoginError::new(
                    LoginErrorKind::LoginRefused,
                    "No picture, no entry.",
                ));
            }
            req.get_session()
                .insert("app.email", event.profile.email.clone())?;
            Ok(())
        })
    })
    .await;
    let res = app.login("nopicture", None).await;
    assert_eq!(res.status(), 403);
    assert_eq!(app.me().await.status(), 401);
    let page = app.begin_login(None).await;
    // (Another user: the refused token was used up, and would now be a replay.)
    let answer = app.approve(&page, "manager").await;
    let res = app
        .client
        .get(answer.headers()[LOCATION].to_str().unwrap())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("No picture, no entry."));

    assert_eq!(app.login("listener", None).await.status(), 302);
    assert_eq!(app.me().await.status(), 200);
    assert_eq!(
        app.get("/session/app.email").await.text().await.unwrap(),
        "\"listener@sandbox.audius.invalid\"",
        "the hook saw the email and kept it in the session"
    );
}
