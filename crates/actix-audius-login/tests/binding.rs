//! A token signs in once, for this app, for its user (issue 12), end to end through the real
//! callback on a real server and a real sandbox: re-spelled tokens are replays, tokens of other
//! apps are refused before any request, forged tokens cost a bounded number of upstream
//! requests, a state works once whatever the session store, and the limits fail closed.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_audius_login::{AudiusLogin, Limits, ResponseMode, VerifierKind, VerifyOptions};
use audius_login::replay::{MemoryReplayCache, ReplayCache as _};
use audius_login::token::{decode_segment, encode_segment};
use audius_login::{PreparedToken, Token};
use audius_sandbox::{DeveloperApp, Sandbox, TokenOverrides};
use base64::Engine as _;
use common::attacker::set_cookie;
use common::{TestApp, sandbox, start_with};
use reqwest::header::{COOKIE, LOCATION};
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use url::Url;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A browser of its own: its own cookie jar, redirects not followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Starts a login in `client`'s session; returns the state.
async fn begin(app: &TestApp, client: &reqwest::Client, return_to: Option<&str>) -> String {
    let path = return_to.map_or_else(
        || app.audius.paths().login.clone(),
        |r| app.audius.login_url_for(r),
    );
    let res = client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 302, "the login route redirects");
    state_of(res.headers()[LOCATION].to_str().unwrap())
}

fn state_of(login_page: &str) -> String {
    Url::parse(login_page)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state")
}

/// GETs the query-mode callback in `client`'s session; returns (status, error code or
/// `Location`).
async fn callback(
    app: &TestApp,
    client: &reqwest::Client,
    state: &str,
    token: &str,
) -> (u16, String) {
    let mut url = app.url(app.audius.redirect_uri().path());
    url.query_pairs_mut()
        .append_pair("state", state)
        .append_pair("token", token);
    let res = client.get(url).send().await.unwrap();
    answer(res).await
}

async fn answer(res: reqwest::Response) -> (u16, String) {
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

async fn me(app: &TestApp, client: &reqwest::Client) -> Value {
    let res = client
        .get(app.url("/me"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    res.json().await.unwrap_or(Value::Null)
}

fn mint(app: &TestApp, handle: &str, overrides: TokenOverrides) -> String {
    let user = app.sandbox.user(handle).unwrap().clone();
    app.sandbox.mint_token(&user, overrides)
}

/// Upstream requests for users (records, managers, `verify_token`) in the sandbox's log.
fn user_requests(app: &TestApp) -> usize {
    app.sandbox
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/users"))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Re-spelled tokens
// ---------------------------------------------------------------------------------------------

/// The order of secp256k1, big-endian.
const N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41,
];

/// One way of writing the signature of the login page's token (`0x`, lower-case hex, no
/// padding, `v` 27/28, low S): every other spelling the parser accepts, as Audius does.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    UpperHex,
    UpperPrefix,
    NoPrefix,
    NoPrefixPadded,
    RawV,
    HighS,
    /// High S, raw `v`, upper case, no prefix, padded: all at once.
    Everything,
}

const SPELLINGS: [Spelling; 7] = [
    Spelling::UpperHex,
    Spelling::UpperPrefix,
    Spelling::NoPrefix,
    Spelling::NoPrefixPadded,
    Spelling::RawV,
    Spelling::HighS,
    Spelling::Everything,
];

fn respell(token: &str, spelling: Spelling) -> String {
    let (signed, segment) = token.rsplit_once('.').unwrap();
    let text = decode_segment(segment).unwrap();
    let mut bytes = hex::decode(&text[2..]).unwrap();
    let (mut upper, mut prefix, mut padded) = (false, "0x", false);
    let (high_s, raw_v) = match spelling {
        Spelling::UpperHex => {
            upper = true;
            (false, false)
        }
        Spelling::UpperPrefix => {
            prefix = "0X";
            (false, false)
        }
        Spelling::NoPrefix => {
            prefix = "";
            (false, false)
        }
        Spelling::NoPrefixPadded => {
            prefix = "";
            padded = true;
            (false, false)
        }
        Spelling::RawV => (false, true),
        Spelling::HighS => (true, false),
        Spelling::Everything => {
            (upper, prefix, padded) = (true, "", true);
            (true, true)
        }
    };
    if high_s {
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = i16::from(N[i]) - i16::from(bytes[32 + i]) - borrow;
            borrow = i16::from(d < 0);
            if d < 0 {
                d += 256;
            }
            bytes[32 + i] = d as u8;
        }
        bytes[64] = 27 + ((bytes[64] - 27) ^ 1);
    }
    if raw_v {
        bytes[64] -= 27;
    }
    let mut hex_text = hex::encode(&bytes);
    if upper {
        hex_text = hex_text.to_ascii_uppercase();
    }
    let text = format!("{prefix}{hex_text}");
    let segment = if padded {
        base64::engine::general_purpose::URL_SAFE.encode(text.as_bytes())
    } else {
        encode_segment(text.as_bytes())
    };
    let respelled = format!("{signed}.{segment}");
    assert_ne!(respelled, token, "{spelling:?} is another text");
    respelled
}

#[actix_web::test]
async fn every_spelling_of_a_used_token_is_a_replay() {
    for kind in [VerifierKind::Local, VerifierKind::Api] {
        let app = start_with(sandbox().await, ResponseMode::Query, |b| {
            b.verifier_kind(kind)
        })
        .await;
        // The victim logs in.
        let token = mint(&app, "listener", TokenOverrides::default());
        let victim = browser();
        let state = begin(&app, &victim, None).await;
        assert_eq!(callback(&app, &victim, &state, &token).await.0, 302);
        assert_eq!(me(&app, &victim).await["handle"], "listener");
        // The attacker holds the token, re-spells it, and delivers it with a fresh state of
        // their own browser: each spelling is the same token, refused as a replay.
        let attacker = browser();
        for spelling in SPELLINGS {
            let respelled = respell(&token, spelling);
            // It is the same token: it parses and recovers the same signer.
            let (a, b) = (
                PreparedToken::parse(&token, 16 * 1024).unwrap(),
                PreparedToken::parse(&respelled, 16 * 1024).unwrap(),
            );
            assert_eq!(a.signer(), b.signer(), "{spelling:?}");
            let state = begin(&app, &attacker, None).await;
            assert_eq!(
                callback(&app, &attacker, &state, &respelled).await,
                (401, "replayed_token".into()),
                "{kind:?}: {spelling:?}"
            );
            assert_eq!(
                me(&app, &attacker).await,
                json!({"error": "not_signed_in", "message": "Sign in with Audius to continue."}),
                "{kind:?}: {spelling:?}: the attacker is not signed in"
            );
        }
    }
}

#[actix_web::test]
async fn a_respelled_token_used_first_makes_the_original_a_replay() {
    let app = start_with(sandbox().await, ResponseMode::Query, |b| b).await;
    let token = mint(&app, "artist", TokenOverrides::default());
    let first = browser();
    let state = begin(&app, &first, None).await;
    let high_s = respell(&token, Spelling::Everything);
    assert_eq!(callback(&app, &first, &state, &high_s).await.0, 302);
    let second = browser();
    let state = begin(&app, &second, None).await;
    assert_eq!(
        callback(&app, &second, &state, &token).await,
        (401, "replayed_token".into())
    );
}

// ---------------------------------------------------------------------------------------------
// Audience
// ---------------------------------------------------------------------------------------------

const APP_KEY: &str = "b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1";
const OTHER_APP_KEY: &str = "0123456789abcdef0123456789abcdef01234567";

#[actix_web::test]
async fn a_token_for_another_app_is_refused_before_any_request() {
    let sandbox = Arc::new(
        Sandbox::builder()
            .app(DeveloperApp::new("Binding test", APP_KEY, Vec::new()).unwrap())
            .start()
            .await
            .unwrap(),
    );
    for kind in [VerifierKind::Local, VerifierKind::Api] {
        let app = start_with(sandbox.clone(), ResponseMode::Query, |b| {
            b.verifier_kind(kind)
                .api_key(format!("0x{}", APP_KEY.to_ascii_uppercase()))
        })
        .await;
        // The key is normalised (lower case, no `0x`): the app's own login below, whose token
        // carries the key as Audius writes it, goes through.
        sandbox.clear_requests();
        let client = browser();
        for (case, overrides) in [
            (
                "another app's key",
                TokenOverrides::default().claim("apiKey", json!(OTHER_APP_KEY)),
            ),
            ("no apiKey (null)", TokenOverrides::default()),
            (
                "no apiKey at all",
                TokenOverrides::default().remove_claim("apiKey"),
            ),
        ] {
            let token = mint(&app, "listener", overrides.claim("case", json!(case)));
            let state = begin(&app, &client, None).await;
            let (status, code) = callback(&app, &client, &state, &token).await;
            assert_eq!(
                (status, code.as_str()),
                (401, "audience_mismatch"),
                "{kind:?}: {case}"
            );
        }
        assert_eq!(
            user_requests(&app),
            0,
            "{kind:?}: refused before any request to Audius"
        );
        // The app's own login, through the sandbox's page (which signs the key the app sent).
        let res = app.login("listener", None).await;
        assert_eq!(res.status(), 302, "{kind:?}: the app's own token");
        assert_eq!(app.me().await.status(), 200);
        // A minted token with the key in another spelling is this app's too.
        let token = mint(
            &app,
            "artist",
            TokenOverrides::default().claim("apiKey", json!(format!("0X{APP_KEY}"))),
        );
        let state = begin(&app, &client, None).await;
        assert_eq!(callback(&app, &client, &state, &token).await.0, 302);
    }
}

#[test]
fn building_without_an_api_key_warns_once() {
    use std::io::Write;
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        AudiusLogin::builder("Keyless", "https://app.example/auth/audius/callback")
            .build()
            .unwrap();
        AudiusLogin::builder("Keyed", "https://app.example/auth/audius/callback")
            .api_key(APP_KEY)
            .build()
            .unwrap();
    });
    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(logs.contains("without an API key"), "{logs}");
    assert!(
        logs.contains("Keyless") && !logs.contains("Keyed"),
        "{logs}"
    );
}

// ---------------------------------------------------------------------------------------------
// Forged tokens
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn twenty_forged_callbacks_cost_at_most_four_upstream_requests() {
    let app = start_with(sandbox().await, ResponseMode::Query, |b| {
        b.verifier_kind(VerifierKind::Local)
    })
    .await;
    app.sandbox.clear_requests();
    let attacker = browser();
    // Twenty distinct tokens for one real user, signed by a key nobody owns.
    for i in 0..20 {
        let token = mint(
            &app,
            "artist",
            TokenOverrides::default()
                .signing_key([0x42; 32])
                .claim("n", json!(i)),
        );
        let state = begin(&app, &attacker, None).await;
        assert_eq!(
            callback(&app, &attacker, &state, &token).await,
            (401, "token_refused".into()),
            "forged token {i}"
        );
    }
    let upstream = user_requests(&app);
    println!("20 forged callbacks: {upstream} upstream requests");
    assert!(upstream <= 4, "{upstream} upstream requests");
    // The real user still gets in, from the cache: no further request.
    let res = app.login("artist", None).await;
    assert_eq!(res.status(), 302);
    assert_eq!(user_requests(&app), upstream);
    // Stale forged tokens cost nothing at all.
    app.sandbox.clear_requests();
    for i in 0..5 {
        let token = mint(
            &app,
            "listener",
            TokenOverrides::default()
                .signing_key([0x43; 32])
                .iat(now() - 3600 - i),
        );
        let state = begin(&app, &attacker, None).await;
        assert_eq!(
            callback(&app, &attacker, &state, &token).await,
            (401, "stale_token".into())
        );
    }
    assert_eq!(user_requests(&app), 0);
}

#[actix_web::test]
async fn a_replayed_token_is_refused_before_any_request() {
    for kind in [VerifierKind::Local, VerifierKind::Api] {
        let app = start_with(sandbox().await, ResponseMode::Query, |b| {
            b.verifier_kind(kind)
        })
        .await;
        let token = mint(&app, "listener", TokenOverrides::default());
        let client = browser();
        let state = begin(&app, &client, None).await;
        assert_eq!(callback(&app, &client, &state, &token).await.0, 302);
        app.sandbox.clear_requests();
        let state = begin(&app, &client, None).await;
        assert_eq!(
            callback(&app, &client, &state, &respell(&token, Spelling::HighS)).await,
            (401, "replayed_token".into())
        );
        assert_eq!(user_requests(&app), 0, "{kind:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A state works once, whatever the session store
// ---------------------------------------------------------------------------------------------

/// A client that sends exactly `cookie` (no jar): a browser replaying an old cookie.
async fn callback_with_cookie(
    app: &TestApp,
    cookie: &str,
    state: &str,
    token: &str,
) -> (u16, String) {
    let mut url = app.url(app.audius.redirect_uri().path());
    url.query_pairs_mut()
        .append_pair("state", state)
        .append_pair("token", token);
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    answer(client.get(url).header(COOKIE, cookie).send().await.unwrap()).await
}

#[actix_web::test]
async fn a_replayed_pre_callback_cookie_cannot_use_a_state_twice() {
    // The test app keeps its sessions in actix-session's cookie store.
    let app = start_with(sandbox().await, ResponseMode::Query, |b| b).await;
    // A login started: the cookie now carries the state.
    let res = app.get(app.audius.paths().login.as_str()).await;
    let cookie = set_cookie(&res).expect("the login route sets the session cookie");
    let state = state_of(res.headers()[LOCATION].to_str().unwrap());
    // The callback succeeds once, with that cookie.
    let token = mint(&app, "listener", TokenOverrides::default());
    assert_eq!(
        callback_with_cookie(&app, &cookie, &state, &token).await.0,
        302
    );
    // The same cookie from before the callback, replayed with another valid token: the
    // cookie still holds the state, but the state was consumed.
    let other = mint(&app, "artist", TokenOverrides::default());
    assert_eq!(
        callback_with_cookie(&app, &cookie, &state, &other).await,
        (400, "state_mismatch".into())
    );

    // A failed callback records nothing (else anonymous garbage callbacks could fill the
    // replay cache): its state, replayed with the old cookie, may still sign in, once. That is
    // no login CSRF (the state is this browser's, and only a valid token signs in)...
    let res = app.get(app.audius.paths().login.as_str()).await;
    let cookie = set_cookie(&res).unwrap();
    let state = state_of(res.headers()[LOCATION].to_str().unwrap());
    assert_eq!(
        callback_with_cookie(&app, &cookie, &state, "not-a-token").await,
        (400, "malformed_token".into())
    );
    let token = mint(&app, "nopicture", TokenOverrides::default());
    assert_eq!(
        callback_with_cookie(&app, &cookie, &state, &token).await.0,
        302
    );
    // ...and once it signed in, the state is spent, whatever cookie carries it.
    let other = mint(
        &app,
        "artist",
        TokenOverrides::default().claim("n", json!(2)),
    );
    assert_eq!(
        callback_with_cookie(&app, &cookie, &state, &other).await,
        (400, "state_mismatch".into())
    );
}

// ---------------------------------------------------------------------------------------------
// Limits that fail closed
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_full_replay_cache_refuses_logins_and_forgets_nothing() {
    let cache = Arc::new(MemoryReplayCache::new(4));
    let app = start_with(sandbox().await, ResponseMode::Query, {
        let cache = cache.clone();
        move |b| b.replay_cache(cache)
    })
    .await;
    // Two logins fill it (a token and a state each).
    let client = browser();
    let first = mint(&app, "listener", TokenOverrides::default());
    for (handle, token) in [
        ("listener", first.clone()),
        ("artist", mint(&app, "artist", TokenOverrides::default())),
    ] {
        let state = begin(&app, &client, None).await;
        assert_eq!(
            callback(&app, &client, &state, &token).await.0,
            302,
            "{handle}"
        );
    }
    assert_eq!(cache.len(), 4);
    // A third is refused, 503, with a clear error; nothing was forgotten.
    let third = mint(&app, "nopicture", TokenOverrides::default());
    let state = begin(&app, &client, None).await;
    let mut url = app.url(app.audius.redirect_uri().path());
    url.query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("token", &third);
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "replay_cache_full");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("try again in a few minutes"),
        "{body}"
    );
    let key = *PreparedToken::parse(&first, 16 * 1024)
        .unwrap()
        .replay_key();
    assert!(
        cache.seen(&key).await.unwrap(),
        "the first token is still remembered"
    );
    assert_eq!(cache.len(), 4);
}

/// One Audius account can mint as many tokens as its holder likes, each a successful login
/// leaving two entries in the replay cache: at most `max_logins_per_user` (30 by default) of
/// one user are live in a process, the next refused (`429 too_many_logins`) before any
/// request; other users are not affected, and only successful logins count (forged tokens for
/// a user do not spend that user's allowance).
#[actix_web::test]
async fn one_account_cannot_take_more_than_its_share_of_the_replay_cache() {
    let cache = Arc::new(MemoryReplayCache::new(1_000));
    let app = start_with(sandbox().await, ResponseMode::Query, {
        let cache = cache.clone();
        move |b| b.replay_cache(cache)
    })
    .await;
    assert_eq!(Limits::default().max_logins_per_user, Some(30));
    let client = browser();
    // Forged tokens for the listener first: refused, and they count for nothing.
    for i in 0..5 {
        let forged = mint(
            &app,
            "listener",
            TokenOverrides::default()
                .signing_key([0x42; 32])
                .claim("n", json!(i)),
        );
        let state = begin(&app, &client, None).await;
        assert_eq!(callback(&app, &client, &state, &forged).await.0, 401);
    }
    for i in 0..30 {
        let token = mint(
            &app,
            "listener",
            TokenOverrides::default().claim("n", json!(i)),
        );
        let state = begin(&app, &client, None).await;
        assert_eq!(
            callback(&app, &client, &state, &token).await.0,
            302,
            "login {i}"
        );
    }
    assert_eq!(cache.len(), 60, "two entries a login");
    app.sandbox.clear_requests();
    let token = mint(
        &app,
        "listener",
        TokenOverrides::default().claim("n", json!(30)),
    );
    let state = begin(&app, &client, None).await;
    assert_eq!(
        callback(&app, &client, &state, &token).await,
        (429, "too_many_logins".into())
    );
    assert_eq!(user_requests(&app), 0, "refused before any request");
    assert_eq!(cache.len(), 60, "and it took no place");
    // Another user signs in.
    let state = begin(&app, &client, None).await;
    let token = mint(&app, "artist", TokenOverrides::default());
    assert_eq!(callback(&app, &client, &state, &token).await.0, 302);
}

/// `max_logins_per_user`: `None` lifts the bound, `Some(0)` is a configuration error.
#[test]
fn max_logins_per_user_is_checked() {
    let builder = || AudiusLogin::builder("App", "https://app.example/auth/audius/callback");
    assert_eq!(
        builder()
            .limits(Limits {
                max_logins_per_user: Some(0),
                ..Limits::default()
            })
            .build()
            .unwrap_err()
            .kind(),
        audius_login::ErrorKind::Config
    );
    builder()
        .limits(Limits {
            max_logins_per_user: None,
            ..Limits::default()
        })
        .build()
        .unwrap();
    builder()
        .limits(Limits {
            max_logins_per_user: Some(1),
            ..Limits::default()
        })
        .build()
        .unwrap();
}

/// An `AudiusLogin` built inside `HttpServer::new` gives each worker its own in-memory replay
/// cache (a token accepted by one worker could be used on another): two live ones with the
/// built-in cache mounting the same callback URL are reported, once; clones of one are not,
/// nor are ones given a (possibly shared) cache.
#[test]
fn memory_replay_caches_built_per_worker_are_reported() {
    use std::io::Write;
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let build = |url: &str| {
        AudiusLogin::builder("Workers", url)
            .api_key(APP_KEY)
            .build()
            .unwrap()
    };
    let logs = |sink: &Sink| String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        // One AudiusLogin cloned into every worker: nothing to say.
        let shared = build("https://one.per-worker.example/cb");
        for _ in 0..3 {
            let _ = actix_web::App::new().configure(shared.clone().routes());
        }
        // A cache given to each: not judged.
        let cache: Arc<MemoryReplayCache> = Arc::new(MemoryReplayCache::default());
        let given: Vec<AudiusLogin> = (0..2)
            .map(|_| {
                AudiusLogin::builder("Workers", "https://given.per-worker.example/cb")
                    .api_key(APP_KEY)
                    .replay_cache(cache.clone())
                    .build()
                    .unwrap()
            })
            .collect();
        for audius in &given {
            let _ = actix_web::App::new().configure(audius.routes());
        }
        assert_eq!(logs(&sink).matches("WARN").count(), 0, "{}", logs(&sink));
        // One built per worker: reported, once.
        let workers: Vec<AudiusLogin> = (0..3)
            .map(|_| build("https://many.per-worker.example/cb"))
            .collect();
        for audius in &workers {
            let _ = actix_web::App::new().configure(audius.routes());
        }
        drop(shared);
    });
    let logs = logs(&sink);
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(
        logs.contains("own in-memory replay cache") && logs.contains("many.per-worker.example"),
        "{logs}"
    );
}

#[actix_web::test]
async fn long_return_tos_cannot_push_the_session_cookie_past_what_a_cookie_holds() {
    // A cookie holds about 4 KiB (name and value); the test app uses the cookie store.
    const COOKIE_LIMIT: usize = 4096;
    let app = start_with(sandbox().await, ResponseMode::Query, |b| b).await;
    // Signed in already (the profile shares the cookie).
    assert_eq!(app.login("managed", None).await.status(), 302);
    let long = |c: char, len: usize| format!("/{}", c.to_string().repeat(len));
    // A forced series of logins with the longest return-to accepted.
    for i in 0..8 {
        let res = app
            .get(&app.audius.login_url_for(&long('a', 2000 + i)))
            .await;
        assert_eq!(res.status(), 302);
        let cookie = set_cookie(&res).unwrap();
        assert!(
            cookie.len() <= COOKIE_LIMIT,
            "login {i}: the cookie is {} bytes",
            cookie.len()
        );
    }
    // Logins with return-tos that fit, one after another: the newest are kept, the oldest
    // dropped; each cookie within the limit.
    let mut states = Vec::new();
    for c in ['b', 'c', 'd'] {
        let res = app.get(&app.audius.login_url_for(&long(c, 600))).await;
        let cookie = set_cookie(&res).unwrap();
        assert!(cookie.len() <= COOKIE_LIMIT, "{} bytes", cookie.len());
        states.push(state_of(res.headers()[LOCATION].to_str().unwrap()));
    }
    // The newest login completes and returns where it was asked to.
    let token = mint(&app, "listener", TokenOverrides::default());
    let (status, location) = callback(&app, &app.client, &states[2], &token).await;
    assert_eq!((status, location), (302, long('d', 600)));
    assert_eq!(me(&app, &app.client).await["handle"], "listener");
}

#[actix_web::test]
async fn a_login_with_a_too_long_return_to_still_completes() {
    let app = start_with(sandbox().await, ResponseMode::Query, |b| b).await;
    let state = begin(&app, &app.client, Some(&format!("/{}", "x".repeat(2000)))).await;
    let token = mint(&app, "listener", TokenOverrides::default());
    assert_eq!(
        callback(&app, &app.client, &state, &token).await,
        (302, "/".into()),
        "back to the landing page"
    );
}

#[actix_web::test]
async fn logout_from_another_site_is_refused_by_referer_alone() {
    let app = start_with(sandbox().await, ResponseMode::Query, |b| b).await;
    assert_eq!(app.login("listener", None).await.status(), 302);
    let logout = app.url(app.audius.paths().logout.as_str());
    // Neither Origin nor Sec-Fetch-Site: the Referer decides.
    let res = app
        .client
        .post(logout.clone())
        .header("referer", "https://evil.example/page")
        .send()
        .await
        .unwrap();
    assert_eq!(answer(res).await, (403, "cross_site_request".into()));
    let res = app
        .client
        .post(logout.clone())
        .header("referer", "not a url")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.me().await.status(), 200, "still signed in");
    let res = app
        .client
        .post(logout)
        .header("referer", app.url("/account").as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(app.me().await.status(), 401);
}

#[test]
fn the_builder_refuses_durations_that_could_overflow() {
    let builder = || AudiusLogin::builder("App", "https://app.example/auth/audius/callback");
    type MakeBuilder = Box<dyn Fn() -> actix_audius_login::AudiusLoginBuilder>;
    let cases: [(&str, MakeBuilder); 6] = [
        (
            "max_age",
            Box::new(move || {
                builder().verify_options(VerifyOptions::default().max_age(Some(Duration::MAX)))
            }),
        ),
        (
            "clock_skew",
            Box::new(move || {
                builder().verify_options(VerifyOptions::default().clock_skew(Duration::MAX))
            }),
        ),
        (
            "limits.attempt_ttl",
            Box::new(move || {
                builder().limits(Limits {
                    attempt_ttl: Duration::MAX,
                    ..Limits::default()
                })
            }),
        ),
        (
            "limits.user_cache_ttl",
            Box::new(move || {
                builder().limits(Limits {
                    user_cache_ttl: Duration::MAX,
                    ..Limits::default()
                })
            }),
        ),
        (
            "limits.refresh_margin",
            Box::new(move || {
                builder().limits(Limits {
                    refresh_margin: Duration::MAX,
                    ..Limits::default()
                })
            }),
        ),
        (
            "limits.login_deadline",
            Box::new(move || {
                builder().limits(Limits {
                    login_deadline: Some(Duration::MAX),
                    ..Limits::default()
                })
            }),
        ),
    ];
    for (what, make) in cases {
        let err = make().build().unwrap_err();
        assert_eq!(err.kind(), audius_login::ErrorKind::Config, "{what}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
    // The longest accepted values build (and their sums do not overflow).
    let max = Duration::from_secs(100 * 365 * 24 * 3600); // 100 years, as documented
    builder()
        .verify_options(VerifyOptions::default().max_age(Some(max)).clock_skew(max))
        .limits(Limits {
            attempt_ttl: max,
            user_cache_ttl: max,
            refresh_margin: max,
            login_deadline: Some(max),
            ..Limits::default()
        })
        .build()
        .unwrap();
}

#[test]
fn the_login_deadline_has_a_default() {
    // The builder starts from `Limits::default()`; `a_login_ends_at_the_default_deadline`
    // below checks that it is enforced.
    assert_eq!(
        Limits::default().login_deadline,
        Some(Duration::from_secs(30 * 24 * 3600))
    );
    AudiusLogin::builder("App", "https://app.example/auth/audius/callback")
        .limits(Limits {
            login_deadline: None,
            ..Limits::default()
        })
        .build()
        .unwrap();
}

#[actix_web::test]
async fn a_login_ends_at_the_default_deadline() {
    let clock = Arc::new(audius_login::clock::ManualClock::at_unix(now()));
    let app = start_with(sandbox().await, ResponseMode::Query, {
        let clock = clock.clone();
        move |b| b.verify_options(VerifyOptions::default().clock(clock))
    })
    .await;
    assert_eq!(app.login("listener", None).await.status(), 302);
    clock.advance(Duration::from_secs(29 * 24 * 3600));
    assert_eq!(app.me().await.status(), 200);
    clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(app.me().await.status(), 401, "signed out after 30 days");
}

/// The token the sandbox's login page signs is the canonical spelling the tests above start
/// from.
#[test]
fn minted_tokens_are_in_the_canonical_spelling() {
    let token = Token::sign(
        json!({"userId": "eYorL", "iat": 1}).as_object().unwrap(),
        &[0x11; 32],
    )
    .unwrap();
    let sig = decode_segment(token.rsplit_once('.').unwrap().1).unwrap();
    assert!(sig.starts_with(b"0x"));
    assert_eq!(sig.len(), 132);
    assert!(sig[2..].iter().all(|b| !b.is_ascii_uppercase()));
    for spelling in SPELLINGS {
        respell(&token, spelling);
    }
}
