//! The demo app as its README runs it, configured through the same variables
//! (`Setup::from_vars`, the code behind `Setup::from_env`): the code flow with `/me/audius`,
//! `/me/audius` refused in the implicit flow, and two instances sharing sessions and the replay
//! cache in Redis (`REDIS_URL`, `SESSION_KEY`, `AUDIUS_ENV` naming one sandbox).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use audius_login_e2e::http::{self, approve, begin_login, get_json, location, query_param};
use audius_login_e2e::redis::RedisServer;
use audius_login_examples::{DEMO_API_KEY, SESSION_STORE_TIMEOUT, Setup, demo};
use audius_sandbox::oauth::BUILTIN_APP_API_KEY;
use audius_sandbox::{Fault, Sandbox, TokenOverrides};
use serde_json::Value;
use url::Url;

/// Starts the demo with `vars` (plus `BIND=127.0.0.1:0`); returns its base URL and the setup
/// (which keeps the embedded sandbox alive).
async fn start_demo(vars: &[(&str, &str)]) -> (Url, Setup) {
    let mut vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.entry("BIND".into()).or_insert("127.0.0.1:0".into());
    let setup = Setup::from_vars("Demo under test", None, &move |name: &str| {
        vars.get(name).cloned()
    })
    .await
    .unwrap();
    let server = demo::server(&setup).unwrap();
    actix_web::rt::spawn(server);
    (setup.app_url.clone(), setup)
}

/// A login through the query channel: the app's login route, Audius (the `authorize` hop of
/// the code flow, if any), the sandbox's automation hook, the callback.
async fn login(client: &reqwest::Client, app: &Url, handle: &str) {
    let page = begin_login(client, app.join("/auth/audius/login").unwrap()).await;
    let callback = approve(client, &page, handle).await;
    let res = client.get(callback).send().await.unwrap();
    assert_eq!(res.status(), 302, "{:?}", res.text().await);
}

#[actix_web::test]
async fn code_flow_demo_calls_audius_as_the_user() {
    let (app, setup) =
        start_demo(&[("AUDIUS_FLOW", "code"), ("AUDIUS_RESPONSE_MODE", "query")]).await;
    let client = http::client();
    let (status, body) = get_json(&client, app.join("/me/audius").unwrap()).await;
    assert_eq!(status, 401, "signed out: {body}");
    assert_eq!(body["error"], "not_signed_in");

    login(&client, &app, "artist").await;
    let (status, body) = get_json(&client, app.join("/me/audius").unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["handle"], "artist");
    assert_eq!(body["verified"], true);
    assert_eq!(body["scope"], "write");
    assert_eq!(body["email"], Value::Null, "the code flow gives no email");
    let sandbox = setup.sandbox.as_ref().unwrap();
    assert!(
        sandbox
            .requests()
            .iter()
            .any(|r| r.path == "/v1/me" && r.authorization),
        "fetched from Audius with the user's access token"
    );
}

#[actix_web::test]
async fn the_demo_ties_tokens_to_its_registered_key() {
    // On the embedded sandbox, by default: the key the demo registers there.
    let (app, setup) = start_demo(&[("AUDIUS_RESPONSE_MODE", "query")]).await;
    assert_eq!(setup.settings.api_key.as_deref(), Some(DEMO_API_KEY));
    let client = http::client();
    login(&client, &app, "listener").await;
    // A token approved for no app (or another one) is refused.
    let sandbox = setup.sandbox.as_ref().unwrap();
    let artist = sandbox.user("artist").unwrap();
    for overrides in [
        TokenOverrides::default(),
        TokenOverrides::default().claim("apiKey", BUILTIN_APP_API_KEY.into()),
    ] {
        let token = sandbox.mint_token(artist, overrides);
        let res = client
            .get(app.join("/auth/audius/login").unwrap())
            .send()
            .await
            .unwrap();
        let state = query_param(&location(&res), "state").unwrap();
        let mut callback = app.join("/auth/audius/callback").unwrap();
        callback
            .query_pairs_mut()
            .append_pair("state", &state)
            .append_pair("token", &token);
        let (status, body) = get_json(&client, callback).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("audience_mismatch"))
        );
    }

    // AUDIUS_API_KEY set to the sandbox's built-in app key: the demo starts (it did not: the
    // key was registered twice) and signs in, in both flows.
    for flow in ["implicit", "code"] {
        let (app, setup) = start_demo(&[
            ("AUDIUS_API_KEY", BUILTIN_APP_API_KEY),
            ("AUDIUS_FLOW", flow),
            ("AUDIUS_RESPONSE_MODE", "query"),
        ])
        .await;
        assert_eq!(
            setup.settings.api_key.as_deref(),
            Some(BUILTIN_APP_API_KEY),
            "{flow}"
        );
        let client = http::client();
        login(&client, &app, "artist").await;
        let (status, body) = get_json(&client, app.join("/me").unwrap()).await;
        assert_eq!(
            (status, body["handle"].as_str()),
            (200, Some("artist")),
            "{flow}"
        );
    }
}

#[actix_web::test]
async fn implicit_flow_demo_explains_me_audius() {
    let (app, _setup) = start_demo(&[("AUDIUS_RESPONSE_MODE", "query")]).await;
    let client = http::client();
    login(&client, &app, "listener").await;
    let (status, body) = get_json(&client, app.join("/me").unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["email"], "listener@sandbox.audius.invalid");
    let (status, body) = get_json(&client, app.join("/me/audius").unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "code_flow_only");
}

#[actix_web::test]
async fn demo_answers_favicon_with_a_cacheable_icon() {
    let (app, _setup) = start_demo(&[]).await;
    let client = http::client();
    let res = client
        .get(app.join("/favicon.ico").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/x-icon");
    let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(
        cache.contains("public") && cache.contains("max-age=86400"),
        "{cache}"
    );
    let etag = res.headers()["etag"].clone();
    let icon = res.bytes().await.unwrap();
    // An ICO directory of one 32x32 image, whose data is a PNG.
    assert_eq!(&icon[..6], &[0, 0, 1, 0, 1, 0], "an ICO with one image");
    assert_eq!((icon[6], icon[7]), (32, 32));
    let size = u32::from_le_bytes(icon[14..18].try_into().unwrap()) as usize;
    let offset = u32::from_le_bytes(icon[18..22].try_into().unwrap()) as usize;
    assert_eq!(offset + size, icon.len());
    assert_eq!(&icon[offset..offset + 8], b"\x89PNG\r\n\x1a\n");
    // Revalidated without the body.
    let res = client
        .get(app.join("/favicon.ico").unwrap())
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert!(res.bytes().await.unwrap().is_empty());
}

#[actix_web::test]
async fn demo_instances_share_sessions_in_redis_and_survive_an_outage() {
    let mut redis = RedisServer::start().await;
    let sandbox = Sandbox::builder().start().await.unwrap();
    let key = "ab".repeat(64);
    let url = redis.url();
    let env = sandbox.base_url().to_string();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("SESSION_KEY", key.as_str()),
        ("AUDIUS_ENV", env.as_str()),
        ("AUDIUS_RESPONSE_MODE", "query"),
    ];
    let (a, setup_a) = start_demo(&vars).await;
    let (b, _setup_b) = start_demo(&vars).await;
    assert!(setup_a.redis_url.is_some());

    // Signed in on A, known on B: the cookie holds only the session id, the rest is in Redis.
    let client = http::client();
    login(&client, &a, "listener").await;
    let (status, body) = get_json(&client, b.join("/me").unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["handle"], "listener");

    // Redis down: a clear 503 within the store timeout, no hang.
    redis.stop().await;
    let started = Instant::now();
    let (status, body) = get_json(&client, a.join("/me").unwrap()).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "session_unavailable");
    assert!(
        took < SESSION_STORE_TIMEOUT * 5,
        "answered in {took:?}, the store timeout is {SESSION_STORE_TIMEOUT:?}"
    );

    // Redis back (empty: persistence is off): served again without a restart; the session is
    // gone with Redis' memory, so the user is signed out, and can sign in again.
    redis.restart().await;
    let mut answer = (0, Value::Null);
    for _ in 0..50 {
        answer = get_json(&client, a.join("/me").unwrap()).await;
        if answer.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.0, 401, "{}", answer.1);
    login(&client, &b, "artist").await;
    let (status, body) = get_json(&client, a.join("/me").unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["handle"], "artist");
}

/// The sum of the series `name` whose labels include every `labels` pair, in a Prometheus text
/// page (0 when there is none).
fn series(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            (series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

async fn scrape(client: &reqwest::Client, app: &Url) -> String {
    let res = client
        .get(app.join("/metrics").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    res.text().await.unwrap()
}

/// The callback in the query channel with `token` and the state of a fresh login attempt.
async fn callback_with(client: &reqwest::Client, app: &Url, token: &str) -> (u16, Value) {
    let res = client
        .get(app.join("/auth/audius/login").unwrap())
        .send()
        .await
        .unwrap();
    let state = query_param(&location(&res), "state").unwrap();
    let mut callback = app.join("/auth/audius/callback").unwrap();
    callback
        .query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("token", token);
    let res = client.get(callback).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[actix_web::test]
async fn demo_exposes_login_metrics_in_the_prometheus_format() {
    // Other demos of this process record into the same global recorder: judged on deltas.
    let (app, setup) = start_demo(&[("AUDIUS_RESPONSE_MODE", "query")]).await;
    let client = http::client();
    let before = scrape(&client, &app).await;
    login(&client, &app, "listener").await;
    // Refused: a token approved for no app.
    let sandbox = setup.sandbox.as_ref().unwrap();
    let foreign = sandbox.mint_token(sandbox.user("artist").unwrap(), TokenOverrides::default());
    let (status, body) = callback_with(&client, &app, &foreign).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("audience_mismatch"))
    );
    // A token of this app twice: signed in, then refused by the replay cache.
    let for_us = TokenOverrides::default().claim("apiKey", DEMO_API_KEY.into());
    let token = sandbox.mint_token(sandbox.user("artist").unwrap(), for_us.clone());
    let (status, _) = callback_with(&client, &app, &token).await;
    assert_eq!(status, 302);
    let (status, body) = callback_with(&client, &app, &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("replayed_token"))
    );
    // Audius failing: reading the user's record answers 500.
    sandbox
        .set_fault(0, "/v1/users", Fault::status(500))
        .unwrap();
    let failing = sandbox.mint_token(sandbox.user("nopicture").unwrap(), for_us);
    let (status, body) = callback_with(&client, &app, &failing).await;
    sandbox.clear_faults();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("audius_unavailable"))
    );
    let after = scrape(&client, &app).await;

    let delta = |name: &str, labels: &[(&str, &str)]| {
        series(&after, name, labels) - series(&before, name, labels)
    };
    let logins = "audius_login_logins_total";
    for outcome in [
        "signed_in",
        "audience_mismatch",
        "replayed_token",
        "audius_unavailable",
    ] {
        assert!(
            delta(logins, &[("outcome", outcome)]) >= 1.0,
            "{outcome}: {after}"
        );
    }
    assert!(
        delta(
            "audius_login_replay_refusals_total",
            &[("reason", "replayed")]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        delta(
            "audius_login_verify_seconds_count",
            &[("verifier", "local")]
        ) >= 2.0,
        "{after}"
    );
    assert!(
        after.contains("# TYPE audius_login_verify_seconds histogram"),
        "{after}"
    );
    for result in ["ok", "5xx"] {
        assert!(
            delta(
                "audius_login_upstream_requests_total",
                &[("endpoint", "user"), ("result", result)]
            ) >= 1.0,
            "{result}: {after}"
        );
    }
    assert!(
        series(&after, "audius_login_replay_cache_entries", &[]) >= 1.0,
        "{after}"
    );
    // Label values from fixed sets only: no user id, token or state in the page.
    for secret in [&token, &foreign, &failing] {
        assert!(!after.contains(secret.as_str()), "{after}");
    }
    assert!(!after.contains("user_id"), "{after}");
}
