#![allow(clippy::unwrap_used)]
//! Property tests (stable `cargo test`) of the callback's form, JSON and query parsing, through
//! the public API: the real routes and middleware in an in-process service, as the `callback`
//! fuzz target drives them (`fuzz/fuzz_targets/callback.rs`). Generated requests mix the state
//! the login route issued, a well-formed signed token, wrong types, extra and repeated fields,
//! odd content types and raw bytes, in every channel.
//!
//! Properties: never a panic or a 5xx; never a sign-in with a token the verifier refuses; every
//! refusal is JSON with an error code; a request that carries the issued state and the token
//! in a well-formed body reaches the verifier (so the generator does cover the deep path).
//!
//! The inputs come from a seeded generator (this crate has no proptest dev-dependency): the
//! same cases on every run, reproducible from the case number in a failure message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_audius_login::{AudiusLogin, ResponseMode};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::App;
use actix_web::body::MessageBody as _;
use actix_web::cookie::{Cookie, Key};
use actix_web::dev::Service as _;
use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use audius_login::{Token, VerifiedProfile, Verifier};

/// Cases per property.
const CASES: u64 = 400;

/// Refuses every token after parsing it as the real verifiers do (no network); counts calls.
#[derive(Debug, Default)]
struct RefuseAll {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Verifier for RefuseAll {
    async fn verify(&self, token: &str) -> audius_login::Result<VerifiedProfile> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Token::parse_and_recover(token, 16 * 1024)?;
        Err(audius_login::Error::WalletMismatch {
            status: None,
            message: "every token is refused here".into(),
        })
    }
}

/// SplitMix64: a small, well-mixed, seeded generator.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const KEYS: &[&str] = &[
    "state",
    "token",
    "code",
    "error",
    "return_to",
    "redirect",
    "",
    "state[]",
    "token ",
    "STATE",
];
const VALUES: &[&str] = &[
    "@S", "@T", "", "x", "@S@S", "@T.", "null", "%00", "a.b.c", "eyJ", "@S ", " @T", "%40S",
];

/// A JSON value: mostly the fields a callback expects, with wrong types and nesting mixed in.
fn json_value(g: &mut Gen, depth: u32) -> serde_json::Value {
    use serde_json::{Value, json};
    match g.below(if depth > 2 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(g.next().is_multiple_of(2)),
        2 => json!(g.next() as i64),
        3 | 4 => json!(g.pick(VALUES)),
        5 => Value::Array((0..g.below(3)).map(|_| json_value(g, depth + 1)).collect()),
        _ => json_object(g, depth + 1),
    }
}

fn json_object(g: &mut Gen, depth: u32) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for _ in 0..g.below(5) {
        let key = g.pick(KEYS).to_owned();
        let value = json_value(g, depth);
        map.insert(key, value);
    }
    serde_json::Value::Object(map)
}

/// A form or query string of generated pairs, sometimes with raw bytes appended.
fn pairs(g: &mut Gen) -> String {
    let mut out: Vec<String> = (0..g.below(5))
        .map(|_| format!("{}={}", g.pick(KEYS), g.pick(VALUES)))
        .collect();
    if g.below(4) == 0 {
        out.push(String::from_utf8_lossy(&g.bytes(24)).into_owned());
    }
    out.join(if g.below(8) == 0 { ";" } else { "&" })
}

/// `(channel, text)`: the channel as in the fuzz target (0 query, 1 JSON, 2 form, 3 other
/// content type), the text with `@S` and `@T` still to fill in.
fn case(g: &mut Gen) -> (u8, String) {
    let channel = g.below(4) as u8;
    let text = match channel {
        0 | 2 => pairs(g),
        1 => match g.below(6) {
            0 => String::from_utf8_lossy(&g.bytes(32)).into_owned(),
            1 => json_value(g, 0).to_string(),
            _ => json_object(g, 0).to_string(),
        },
        _ => {
            let content_type = g.pick(&[
                "text/plain",
                "application/json; charset=utf-16",
                "multipart/form-data; boundary=x",
                "application/x-www-form-urlencoded; charset=latin1",
                "",
                "application/jsonx",
            ]);
            let body = if g.below(2) == 0 {
                pairs(g)
            } else {
                json_object(g, 0).to_string()
            };
            format!("{content_type}\n{body}")
        }
    };
    (channel, text)
}

/// What the app answered.
struct Outcome {
    status: u16,
    body: Vec<u8>,
    cookie: Option<Cookie<'static>>,
    location: Option<String>,
}

/// Runs one login start and one callback with `(channel, text)` through `call` (which sends a
/// request to the app); `None` when the query is not even a valid request target (no HTTP
/// parser would hand it to the app).
async fn run<F, Fut>(
    call: &F,
    audius: &AudiusLogin,
    token: &str,
    channel: u8,
    text: &str,
) -> Option<Outcome>
where
    F: Fn(TestRequest) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let res = call(TestRequest::get().uri(audius.paths().login.as_str())).await;
    assert_eq!(res.status, 302);
    let cookie = res.cookie.unwrap();
    let state = url::Url::parse(&res.location.unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let text = text.replace("@S", &state).replace("@T", token);
    let callback = audius.redirect_uri().path();
    let req = match channel {
        0 => {
            let uri = format!("{callback}?{text}");
            uri.parse::<actix_web::http::Uri>().ok()?;
            TestRequest::get().uri(&uri)
        }
        1 => TestRequest::post()
            .uri(callback)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(text.into_bytes()),
        2 => TestRequest::post()
            .uri(callback)
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(text.into_bytes()),
        _ => {
            let (content_type, body) = text.split_once('\n').unwrap_or(("", &text));
            let mut req = TestRequest::post().uri(callback);
            if let Ok(value) = header::HeaderValue::from_str(content_type) {
                req = req.insert_header((header::CONTENT_TYPE, value));
            }
            req.set_payload(body.as_bytes().to_vec())
        }
    };
    let req = req
        .insert_header((
            header::ORIGIN,
            audius.redirect_uri().origin().ascii_serialization(),
        ))
        .insert_header((header::ACCEPT, "application/json"))
        .cookie(cookie);
    Some(call(req).await)
}

fn signed_token() -> String {
    let mut claims = serde_json::Map::new();
    claims.insert("userId".into(), "eYorL".into());
    claims.insert(
        "iat".into(),
        (time::OffsetDateTime::now_utc().unix_timestamp()).into(),
    );
    Token::sign(&claims, &[0x11; 32]).unwrap()
}

#[actix_web::test]
async fn generated_callbacks_are_refused_cleanly_in_every_channel() {
    let verifier = Arc::new(RefuseAll::default());
    let audius = AudiusLogin::builder("Props", "http://127.0.0.1:8080/auth/audius/callback")
        .response_mode(ResponseMode::Query)
        .verifier(verifier.clone())
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .configure(audius.routes())
            .wrap(audius.middleware())
            .wrap(
                SessionMiddleware::builder(CookieSessionStore::default(), Key::from(&[7u8; 64]))
                    .cookie_name("id".into())
                    .cookie_secure(false)
                    .build(),
            ),
    )
    .await;
    let call = |req: TestRequest| {
        let answer = app.call(req.to_request());
        async move {
            let res = match answer.await {
                Ok(res) => res.into_parts().1.map_into_boxed_body(),
                Err(e) => e.error_response(),
            };
            let cookie = res
                .cookies()
                .find(|c| c.name() == "id")
                .map(|c| c.into_owned());
            let location = res
                .headers()
                .get(header::LOCATION)
                .map(|l| l.to_str().unwrap().to_owned());
            let status = res.status().as_u16();
            let body = res
                .into_body()
                .try_into_bytes()
                .map(|b| b.to_vec())
                .unwrap_or_default();
            Outcome {
                status,
                body,
                cookie,
                location,
            }
        }
    };
    let token = signed_token();
    let mut ran = 0;
    for n in 0..CASES {
        let mut g = Gen(0x5eed_0000 + n);
        let (channel, text) = case(&mut g);
        let Some(outcome) = run(&call, &audius, &token, channel, &text).await else {
            continue;
        };
        ran += 1;
        let what = format!("case {n}: channel {channel}, {text:?}");
        assert!(outcome.status < 500, "{what}: answered {}", outcome.status);
        assert!(
            outcome.status >= 400,
            "{what}: signed someone in ({})",
            outcome.status
        );
        let json: serde_json::Value = serde_json::from_slice(&outcome.body)
            .unwrap_or_else(|e| panic!("{what}: not a JSON refusal ({e})"));
        assert!(
            json["error"].as_str().is_some_and(|c| !c.is_empty()),
            "{what}: {json}"
        );
    }
    assert!(ran >= CASES as usize * 3 / 4, "only {ran} cases ran");

    // The well-formed request in each body channel reaches the verifier, and is refused by it.
    let before = verifier.calls.load(Ordering::SeqCst);
    for (channel, text) in [
        (0, "state=@S&token=@T"),
        (1, r#"{"state": "@S", "token": "@T"}"#),
        (2, "state=@S&token=@T"),
    ] {
        let outcome = run(&call, &audius, &token, channel, text).await.unwrap();
        assert_eq!(outcome.status, 401, "channel {channel}");
        let json: serde_json::Value = serde_json::from_slice(&outcome.body).unwrap();
        assert_eq!(json["error"], "token_refused", "channel {channel}");
    }
    assert_eq!(verifier.calls.load(Ordering::SeqCst), before + 3);
}
