//! The sandbox against the spec, word for word: `GET /v1/users/verify_token` against every
//! vector of testdata/tokens.json (signed by eth-account, an independent implementation) and
//! against the table of spec section 4.1; the login page's refusals against the table of spec
//! section 1.
#![allow(clippy::unwrap_used)]

mod common;

use audius_login::Token;
use audius_login::token::{decode_segment, eip191_hash, encode_segment};
use audius_login_testdata::{vector, vectors};
use audius_sandbox::verify as texts;
use audius_sandbox::{DeveloperApp, Sandbox, SandboxHandle, SandboxUser, TokenOverrides};
use common::{http, verify};
use serde_json::{Map, Value, json};
use url::Url;

/// The secp256k1 group order, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// n - s, big-endian.
fn negate(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

/// Whether s is above n/2 (a high-S signature).
fn is_high(s: &[u8]) -> bool {
    let half: [u8; 32] = {
        let mut h = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let cur = (carry << 8) | u16::from(N[i]);
            h[i] = (cur / 2) as u8;
            carry = cur % 2;
        }
        h
    };
    s > &half[..]
}

/// Rewrites the sandbox's signature segment in the encoding quirks of a vector's signature:
/// `0x` or not, upper-case hex, `v` as 0/1, high-S.
fn same_quirks(ours: &str, vector_token: &str) -> String {
    let theirs = decode_segment(vector_token.split('.').nth(2).unwrap()).unwrap();
    let theirs = String::from_utf8(theirs).unwrap();
    let (prefix, their_hex) = match theirs.get(..2) {
        Some(p @ ("0x" | "0X")) => (p.to_owned(), &theirs[2..]),
        _ => (String::new(), theirs.as_str()),
    };
    let their_bytes = hex::decode(their_hex).unwrap();
    let upper = their_hex.bytes().any(|b| b.is_ascii_uppercase());
    let ours = String::from_utf8(decode_segment(ours).unwrap()).unwrap();
    let mut bytes = hex::decode(&ours[2..]).unwrap();
    assert!(!is_high(&bytes[32..64]), "the sandbox signs low-S");
    if is_high(&their_bytes[32..64]) {
        let s = negate(&bytes[32..64]);
        bytes[32..64].copy_from_slice(&s);
        bytes[64] = if bytes[64] == 27 { 28 } else { 27 };
    }
    if their_bytes[64] < 27 {
        bytes[64] -= 27;
    }
    let mut text = hex::encode(&bytes);
    if upper {
        text = text.to_ascii_uppercase();
    }
    encode_segment(format!("{prefix}{text}").as_bytes())
}

/// The sandbox user standing in for a vector's user: same id when the sandbox has it.
fn stand_in(sandbox: &SandboxHandle, user_id: u64) -> &SandboxUser {
    sandbox
        .users()
        .iter()
        .find(|u| u.id.get() == user_id)
        .unwrap_or_else(|| sandbox.user("listener").unwrap())
}

/// The id written in the same form as `like` (hashid string, decimal string or number).
fn id_like(like: &Value, user: &SandboxUser) -> Value {
    match like {
        Value::Number(_) => json!(user.id.get()),
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
            json!(user.id.get().to_string())
        }
        _ => json!(user.hashid()),
    }
}

/// The vector's claims and header, with the stand-in's id, signed by the stand-in in the
/// vector's signature encoding.
fn resign(sandbox: &SandboxHandle, v: &Value) -> (String, Map<String, Value>) {
    let token = v["token"].as_str().unwrap();
    let mut claims = v["expect"]["claims"].as_object().unwrap().clone();
    let user = stand_in(sandbox, v["expect"]["user_id"].as_u64().unwrap());
    let user_id = id_like(&claims["userId"], user);
    let sub = id_like(&claims["sub"], user);
    claims.insert("userId".into(), user_id);
    claims.insert("sub".into(), sub);
    let header = decode_segment(token.split('.').next().unwrap()).unwrap();
    let payload = serde_json::to_vec(&claims).unwrap();
    let signed = Token::sign_raw(&header, &payload, user.secret_key()).unwrap();
    let (head, sig) = signed.rsplit_once('.').unwrap();
    (format!("{head}.{}", same_quirks(sig, token)), claims)
}

fn with_string_iat(mut claims: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Number(n)) = claims.get("iat").cloned() {
        claims.insert("iat".into(), Value::String(n.to_string()));
    }
    claims
}

/// The token with its signature text written without `0x` and base64url-encoded with padding.
fn padded_without_0x(token: &str) -> String {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let text = String::from_utf8(decode_segment(sig).unwrap()).unwrap();
    let mut seg = encode_segment(text.trim_start_matches("0x").as_bytes());
    while !seg.len().is_multiple_of(4) {
        seg.push('=');
    }
    assert!(seg.ends_with('='), "the test wants padding");
    format!("{signed}.{seg}")
}

fn error_body(status: u16, text: &str) -> Value {
    json!({"code": status, "error": text})
}

/// The statuses and texts of spec section 4.1, copied from its table: the constants the tests
/// below compare with are these, word for word.
#[test]
fn verify_token_texts_are_the_specs() {
    let table = [
        (texts::INVALID_FORMAT, "Invalid JWT token format"),
        (
            texts::SIGNATURE_NOT_DECODED,
            "The JWT signature could not be decoded",
        ),
        (
            texts::SIGNATURE_INCORRECTLY_SIGNED,
            "The JWT signature was incorrectly signed",
        ),
        (
            texts::WALLET_NOT_RECOVERED,
            "The JWT signature is invalid - wallet could not be recovered",
        ),
        (
            texts::PAYLOAD_NOT_DECODED,
            "JWT payload could not be decoded",
        ),
        (
            texts::PAYLOAD_NOT_UNMARSHALLED,
            "JWT payload could not be unmarshalled",
        ),
        (texts::MISSING_USER_ID, "JWT payload missing userId field"),
        (
            texts::USER_ID_NOT_STRING,
            "JWT payload userId must be a string",
        ),
        (texts::INVALID_USER_ID, "Invalid JWT payload userId"),
        (
            texts::INVALID_WALLET,
            "The JWT signature is invalid - invalid wallet",
        ),
        (
            texts::WALLET_DOES_NOT_MATCH,
            "The JWT signature is invalid - the wallet does not match the user",
        ),
    ];
    for (ours, spec) in table {
        assert_eq!(ours, spec);
    }
}

#[tokio::test]
async fn error_vectors_answer_the_table() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = http();
    let expected = [
        ("two-segments", 400, texts::INVALID_FORMAT),
        ("four-segments", 400, texts::INVALID_FORMAT),
        ("empty", 400, texts::MISSING_TOKEN),
        ("signature-not-base64", 400, texts::SIGNATURE_NOT_DECODED),
        (
            "signature-not-hex",
            400,
            texts::SIGNATURE_INCORRECTLY_SIGNED,
        ),
        (
            "signature-64-bytes",
            400,
            texts::SIGNATURE_INCORRECTLY_SIGNED,
        ),
        ("payload-not-json", 400, texts::PAYLOAD_NOT_UNMARSHALLED),
        ("payload-missing-user-id", 400, texts::MISSING_USER_ID),
        ("user-id-not-a-hashid", 400, texts::INVALID_USER_ID),
        ("v-29", 404, texts::WALLET_NOT_RECOVERED),
        ("zero-r-s", 404, texts::WALLET_NOT_RECOVERED),
    ];
    let error_vectors: Vec<Value> = vectors()
        .into_iter()
        .filter(|v| v["expect"]["ok"] == false)
        .collect();
    assert_eq!(
        error_vectors.len(),
        expected.len(),
        "every error vector has a row"
    );
    for v in &error_vectors {
        let name = v["name"].as_str().unwrap();
        let (_, status, text) = expected
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        // The class the vector file gives: malformed is 400, bad_signature is 404.
        let class = match v["expect"]["error"].as_str().unwrap() {
            "malformed" => 400,
            "bad_signature" => 404,
            other => panic!("{other}"),
        };
        assert_eq!(*status, class, "{name}");
        let (got_status, body) =
            verify(&client, &sandbox.base_url(), v["token"].as_str().unwrap()).await;
        assert_eq!(got_status, *status, "{name}: {body}");
        assert_eq!(body, error_body(*status, text), "{name}");
    }
    // The texts are the spec's, without a trailing full stop.
    for (_, _, text) in expected {
        assert!(!text.ends_with('.'), "{text}");
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn valid_vectors_signed_by_unknown_wallets_are_invalid_wallets() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = http();
    for v in vectors().iter().filter(|v| v["expect"]["ok"] == true) {
        let name = v["name"].as_str().unwrap();
        let (status, body) =
            verify(&client, &sandbox.base_url(), v["token"].as_str().unwrap()).await;
        if name == "legacy-numeric-user-id" {
            assert_eq!(
                (status, body),
                (400, error_body(400, texts::USER_ID_NOT_STRING)),
                "{name}"
            );
        } else {
            assert_eq!(
                (status, body),
                (404, error_body(404, texts::INVALID_WALLET)),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn valid_vectors_resigned_by_sandbox_users() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = http();
    let mut checked = 0;
    for v in vectors()
        .iter()
        .filter(|v| v["expect"]["ok"] == true && v["expect"].get("claims").is_some())
    {
        let name = v["name"].as_str().unwrap();
        let (token, claims) = resign(&sandbox, v);
        // The quirks of the vector's signature encoding were carried over.
        let sig_text =
            String::from_utf8(decode_segment(token.rsplit('.').next().unwrap()).unwrap()).unwrap();
        let sig_hex = sig_text.trim_start_matches("0x").to_ascii_lowercase();
        let sig = hex::decode(&sig_hex).unwrap();
        match name {
            "high-s" => assert!(is_high(&sig[32..64]), "{name}"),
            "v-zero-one" => assert!(sig[64] < 2, "{name}"),
            "hex-without-0x" => assert!(!sig_text.starts_with("0x"), "{name}"),
            "uppercase-hex" => assert!(sig_text[2..].bytes().any(|b| b.is_ascii_uppercase())),
            _ => assert!(sig_text.starts_with("0x") && sig[64] >= 27 && !is_high(&sig[32..64])),
        }
        let (status, body) = verify(&client, &sandbox.base_url(), &token).await;
        if name == "legacy-numeric-user-id" {
            assert_eq!(
                (status, body),
                (400, error_body(400, texts::USER_ID_NOT_STRING)),
                "{name}"
            );
            continue;
        }
        assert_eq!(status, 200, "{name}: {body}");
        let want = json!({ "data": with_string_iat(claims) });
        assert_eq!(body, want, "{name}");
        // Key order kept, byte for byte.
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            serde_json::to_string(&want).unwrap(),
            "{name}: key order"
        );
        checked += 1;
    }
    assert!(checked >= 12, "checked {checked}");

    // The tampered vector: changed after signing, so it recovers a wallet nobody owns.
    let v = vector("tampered-payload");
    let (token, _) = {
        let user = sandbox.user("listener").unwrap();
        let t = sandbox.mint_token(user, TokenOverrides::default());
        let (h, rest) = t.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let mut payload: Map<String, Value> =
            serde_json::from_slice(&decode_segment(p).unwrap()).unwrap();
        payload.insert("handle".into(), json!("mallory"));
        let tampered = format!(
            "{h}.{}.{s}",
            encode_segment(&serde_json::to_vec(&payload).unwrap())
        );
        (tampered, v)
    };
    let (status, body) = verify(&client, &sandbox.base_url(), &token).await;
    assert_eq!(
        (status, body),
        (404, error_body(404, texts::INVALID_WALLET))
    );
}

#[tokio::test]
async fn every_step_of_the_table() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = http();
    let base = sandbox.base_url();
    let listener = sandbox.user("listener").unwrap();
    let key = *listener.secret_key();
    let sign = |payload: &str| {
        Token::sign_raw(
            br#"{"typ":"JWT","alg":"keccak256"}"#,
            payload.as_bytes(),
            &key,
        )
        .unwrap()
    };
    // Signs the exact text `header.payload`, whatever the segments are.
    let sign_text = |signed: &str| {
        let hash = eip191_hash(signed.as_bytes());
        let secret = secp256k1::SecretKey::from_secret_bytes(key).unwrap();
        let sig = secp256k1::ecdsa::RecoverableSignature::sign_ecdsa_recoverable(
            secp256k1::Message::from_digest(hash),
            &secret,
        );
        let (recid, compact) = sig.serialize_compact();
        let mut bytes = compact.to_vec();
        bytes.push(27 + recid.to_u8());
        format!(
            "{signed}.{}",
            encode_segment(format!("0x{}", hex::encode(bytes)).as_bytes())
        )
    };

    // No token parameter at all.
    let resp = client
        .get(base.join("v1/users/verify_token").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body, error_body(400, texts::MISSING_TOKEN));

    let good = sign(r#"{"userId":"eYorL","iat":1}"#);
    let (h, rest) = good.split_once('.').unwrap();
    let (p, _) = rest.split_once('.').unwrap();
    let cases: Vec<(String, u16, &str)> = vec![
        ("a.b".into(), 400, texts::INVALID_FORMAT),
        (format!("{good}.x"), 400, texts::INVALID_FORMAT),
        (format!("{h}.{p}.!!!"), 400, texts::SIGNATURE_NOT_DECODED),
        (
            format!("{h}.{p}.{}", encode_segment(b"0x1234")),
            400,
            texts::SIGNATURE_INCORRECTLY_SIGNED,
        ),
        (
            format!(
                "{h}.{p}.{}",
                encode_segment(format!("0x{}", "ab".repeat(66)).as_bytes())
            ),
            400,
            texts::SIGNATURE_INCORRECTLY_SIGNED,
        ),
        (
            format!(
                "{h}.{p}.{}",
                encode_segment(format!("0x{}1d", "11".repeat(64)).as_bytes())
            ),
            404,
            texts::WALLET_NOT_RECOVERED,
        ),
        (
            sign_text(&format!("{h}.!!!")),
            400,
            texts::PAYLOAD_NOT_DECODED,
        ),
        (sign("[1,2]"), 400, texts::PAYLOAD_NOT_UNMARSHALLED),
        (sign(r#"{"iat":1}"#), 400, texts::MISSING_USER_ID),
        (sign(r#"{"userId":44}"#), 400, texts::USER_ID_NOT_STRING),
        (sign(r#"{"userId":true}"#), 400, texts::USER_ID_NOT_STRING),
        (sign(r#"{"userId":null}"#), 400, texts::USER_ID_NOT_STRING),
        (sign(r#"{"userId":"!!"}"#), 400, texts::INVALID_USER_ID),
        (sign(r#"{"userId":""}"#), 400, texts::INVALID_USER_ID),
        // A known wallet signing for an unknown user id.
        (
            sign(r#"{"userId":"999"}"#),
            403,
            texts::WALLET_DOES_NOT_MATCH,
        ),
        // Signed by the listener for the artist.
        (
            sign(r#"{"userId":"OeJ7n"}"#),
            403,
            texts::WALLET_DOES_NOT_MATCH,
        ),
    ];
    for (token, status, text) in &cases {
        let (got, body) = verify(&client, &base, token).await;
        assert_eq!(
            (got, &body),
            (*status, &error_body(*status, text)),
            "{token}"
        );
    }

    // Decimal ids, ES256K headers, padded signatures: accepted.
    for token in [
        sign(r#"{"userId":"44","iat":5}"#),
        Token::sign_raw(
            br#"{"alg":"ES256K"}"#,
            br#"{"userId":"eYorL","iat":5}"#,
            &key,
        )
        .unwrap(),
        padded_without_0x(&good),
    ] {
        let (status, body) = verify(&client, &base, &token).await;
        assert_eq!(status, 200, "{token}: {body}");
        assert_eq!(
            body["data"]["iat"].as_str().map(|s| s == "5" || s == "1"),
            Some(true)
        );
    }
    // A float iat keeps its number text; a string iat stays as it is; no iat stays absent.
    let (_, body) = verify(&client, &base, &sign(r#"{"userId":"eYorL","iat":1.5}"#)).await;
    assert_eq!(body["data"]["iat"], "1.5");
    let (_, body) = verify(&client, &base, &sign(r#"{"userId":"eYorL","iat":"77"}"#)).await;
    assert_eq!(body["data"]["iat"], "77");
    let (_, body) = verify(&client, &base, &sign(r#"{"userId":"eYorL"}"#)).await;
    assert_eq!(body, json!({"data": {"userId": "eYorL"}}));
}

#[tokio::test]
async fn managers_and_wallets() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = http();
    let base = sandbox.base_url();
    let user = |h| sandbox.user(h).unwrap();
    let managed = user("managed");
    let cases = [
        (TokenOverrides::default(), managed, 200, None),
        (
            TokenOverrides::default().signed_by(user("manager")),
            managed,
            200,
            None,
        ),
        (
            TokenOverrides::default().signed_by(user("revoked")),
            managed,
            403,
            Some(texts::WALLET_DOES_NOT_MATCH),
        ),
        (
            TokenOverrides::default().signed_by(user("listener")),
            user("artist"),
            403,
            Some(texts::WALLET_DOES_NOT_MATCH),
        ),
        (
            // The managed account cannot sign for its manager.
            TokenOverrides::default().signed_by(managed),
            user("manager"),
            403,
            Some(texts::WALLET_DOES_NOT_MATCH),
        ),
        (
            TokenOverrides::default().signing_key([0x42; 32]),
            user("artist"),
            404,
            Some(texts::INVALID_WALLET),
        ),
    ];
    for (overrides, who, status, text) in cases {
        let token = sandbox.mint_token(who, overrides.clone());
        let (got, body) = verify(&client, &base, &token).await;
        assert_eq!(got, status, "{overrides:?} for {}: {body}", who.handle);
        match text {
            Some(text) => assert_eq!(body, error_body(status, text)),
            None => {
                let mut claims = sandbox.claims_for(who);
                claims.insert("iat".into(), body["data"]["iat"].clone());
                assert_eq!(body["data"], Value::Object(claims));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The login page's refusals (spec section 1): "Whoops, this is an invalid link (<reason>).",
// word for word, in the spec's order (scope, redirect URI, origin, app name or key, response mode).
// ---------------------------------------------------------------------------------------------

/// The reasons of spec section 1, copied from its table (not from the sandbox's constants).
const SCOPE: &str = "scope missing or invalid";
const REDIRECT_URI: &str = "redirect URI missing or invalid";
const ORIGIN: &str = "redirect URI is set to `postMessage` but origin is missing";
const APP_NAME_MISSING: &str = "app name missing";
const API_KEY_MISSING: &str = "app API Key missing";
const API_KEY_INVALID: &str = "app API Key invalid";
const RESPONSE_MODE: &str = r#"response mode invalid - if set, must be "fragment" or "query""#;

/// An app registered through the builder (implicit-flow links may use its key).
const BUILDER_KEY: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
/// A well-formed key no app has.
const UNREGISTERED_KEY: &str = "0123456789abcdef0123456789abcdef01234567";
const CB: &str = "http://localhost:3000/cb";

/// The text of the page's `<h1>`, HTML entities decoded.
fn heading(page: &str) -> String {
    let start = page.find("<h1").expect("a heading");
    let start = start + page[start..].find('>').unwrap() + 1;
    let end = start + page[start..].find("</h1>").unwrap();
    page[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `GET /oauth/auth?<params>`: status and page.
async fn login_page(sandbox: &SandboxHandle, params: &[(&str, &str)]) -> (u16, String, Url) {
    let mut url = sandbox.login_page_url();
    url.query_pairs_mut().extend_pairs(params);
    let resp = http().get(url.clone()).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap(), url)
}

async fn registered_sandbox() -> SandboxHandle {
    Sandbox::builder()
        .app(DeveloperApp::new("Builder App", BUILDER_KEY, vec![]).unwrap())
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn login_page_refuses_each_row_of_the_table_in_audius_words() {
    let sandbox = registered_sandbox().await;
    let challenge = audius_sandbox::oauth::pkce_challenge(&"v".repeat(43));
    let code = |key: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", key.into()),
            ("scope", "read".into()),
            ("redirect_uri", "postmessage".into()),
            ("origin", "http://localhost:3000".into()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".into()),
        ]
    };
    let owned = |p: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        p.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    };
    // One link (or more) per row, with the reason the spec gives for it.
    let rows: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        // scope missing or not read/write
        (owned(&[("app_name", "A"), ("redirect_uri", CB)]), SCOPE),
        (
            owned(&[("scope", "admin"), ("app_name", "A"), ("redirect_uri", CB)]),
            SCOPE,
        ),
        // redirect_uri missing, unparsable, or breaking a rule of section 5
        (owned(&[("scope", "read"), ("app_name", "A")]), REDIRECT_URI),
        (
            owned(&[
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", "not a url"),
            ]),
            REDIRECT_URI,
        ),
        (
            owned(&[
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", "http://10.0.0.1/cb"),
            ]),
            REDIRECT_URI,
        ),
        // postmessage without a parsable origin
        (
            owned(&[
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", "postmessage"),
            ]),
            ORIGIN,
        ),
        (
            owned(&[
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", "postmessage"),
                ("origin", "not an origin"),
            ]),
            ORIGIN,
        ),
        // read with neither app_name nor api_key
        (
            owned(&[("scope", "read"), ("redirect_uri", CB)]),
            APP_NAME_MISSING,
        ),
        // write without api_key
        (
            owned(&[("scope", "write"), ("app_name", "A"), ("redirect_uri", CB)]),
            API_KEY_MISSING,
        ),
        // api_key not 40 hex characters...
        (
            owned(&[
                ("scope", "write"),
                ("api_key", "0xab"),
                ("redirect_uri", CB),
            ]),
            API_KEY_INVALID,
        ),
        (
            owned(&[
                ("scope", "read"),
                ("api_key", &BUILDER_KEY[1..]),
                ("redirect_uri", CB),
            ]),
            API_KEY_INVALID,
        ),
        // ...or no registered app has it: in either scope, next to app_name too, in either flow,
        // and under its alias client_id.
        (
            owned(&[
                ("scope", "write"),
                ("api_key", UNREGISTERED_KEY),
                ("redirect_uri", CB),
            ]),
            API_KEY_INVALID,
        ),
        (
            owned(&[
                ("scope", "read"),
                ("app_name", "A"),
                ("api_key", UNREGISTERED_KEY),
                ("redirect_uri", CB),
            ]),
            API_KEY_INVALID,
        ),
        (
            owned(&[
                ("scope", "read"),
                ("client_id", UNREGISTERED_KEY),
                ("redirect_uri", CB),
            ]),
            API_KEY_INVALID,
        ),
        (code(UNREGISTERED_KEY), API_KEY_INVALID),
        // response_mode other than fragment/query
        (
            owned(&[
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", CB),
                ("response_mode", "form_post"),
            ]),
            RESPONSE_MODE,
        ),
    ];
    for (params, reason) in &rows {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page, url) = login_page(&sandbox, &params).await;
        assert_eq!(status, 400, "{url}");
        assert_eq!(
            heading(&page),
            format!("Whoops, this is an invalid link ({reason})."),
            "{url}"
        );
    }
    // Every row of the table has a link above.
    for reason in [
        SCOPE,
        REDIRECT_URI,
        ORIGIN,
        APP_NAME_MISSING,
        API_KEY_MISSING,
        API_KEY_INVALID,
        RESPONSE_MODE,
    ] {
        assert!(rows.iter().any(|(_, r)| *r == reason), "{reason}");
    }

    // The registered keys are accepted: the built-in app's, the builder's, in either flow;
    // app_name alone still works for read.
    for params in [
        owned(&[("scope", "read"), ("app_name", "A"), ("redirect_uri", CB)]),
        owned(&[
            ("scope", "write"),
            ("api_key", audius_sandbox::oauth::BUILTIN_APP_API_KEY),
            ("redirect_uri", CB),
        ]),
        owned(&[
            ("scope", "read"),
            ("client_id", BUILDER_KEY),
            ("redirect_uri", CB),
        ]),
        owned(&[
            ("scope", "write"),
            ("api_key", &BUILDER_KEY.to_ascii_uppercase()),
            ("redirect_uri", CB),
        ]),
        code(BUILDER_KEY),
    ] {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page, url) = login_page(&sandbox, &params).await;
        assert_eq!(status, 200, "{url}: {page}");
    }
}

#[tokio::test]
async fn login_page_checks_in_the_specs_order() {
    let sandbox = registered_sandbox().await;
    let long_name = "n".repeat(300);
    // Two (or more) rules fail at once: the earlier one in the spec's order is the one said.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        // scope before everything
        (
            vec![
                ("scope", "admin"),
                ("redirect_uri", "http://10.0.0.1/cb"),
                ("api_key", UNREGISTERED_KEY),
                ("response_mode", "form_post"),
            ],
            SCOPE,
        ),
        (vec![("scope", "admin")], SCOPE),
        // redirect URI before the app name, the key and the response mode
        (
            vec![
                ("scope", "read"),
                ("redirect_uri", "https://app.example/cb#x"),
                ("response_mode", "form_post"),
            ],
            REDIRECT_URI,
        ),
        (
            vec![
                ("scope", "write"),
                ("api_key", UNREGISTERED_KEY),
                ("redirect_uri", "javascript:alert(1)"),
            ],
            REDIRECT_URI,
        ),
        // origin before the app name, the key and the response mode
        (
            vec![
                ("scope", "read"),
                ("redirect_uri", "postmessage"),
                ("response_mode", "form_post"),
            ],
            ORIGIN,
        ),
        (
            vec![
                ("scope", "write"),
                ("redirect_uri", "postmessage"),
                ("api_key", "nope"),
            ],
            ORIGIN,
        ),
        // app name or key before the response mode
        (
            vec![
                ("scope", "read"),
                ("redirect_uri", CB),
                ("response_mode", "form_post"),
            ],
            APP_NAME_MISSING,
        ),
        (
            vec![
                ("scope", "write"),
                ("app_name", "A"),
                ("redirect_uri", CB),
                ("response_mode", "form_post"),
            ],
            API_KEY_MISSING,
        ),
        (
            vec![
                ("scope", "read"),
                ("api_key", UNREGISTERED_KEY),
                ("redirect_uri", CB),
                ("response_mode", "form_post"),
            ],
            API_KEY_INVALID,
        ),
        // the spec's rules before the sandbox's own (display, PKCE, app name length)
        (
            vec![
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", CB),
                ("response_mode", "form_post"),
                ("display", "modal"),
            ],
            RESPONSE_MODE,
        ),
        (
            vec![
                ("response_type", "code"),
                ("scope", "read"),
                ("client_id", BUILDER_KEY),
                ("redirect_uri", CB),
                ("response_mode", "form_post"),
            ],
            RESPONSE_MODE,
        ),
        (
            vec![
                ("scope", "write"),
                ("app_name", &long_name),
                ("redirect_uri", CB),
            ],
            API_KEY_MISSING,
        ),
    ];
    for (params, reason) in &cases {
        let (status, page, url) = login_page(&sandbox, params).await;
        assert_eq!(status, 400, "{url}");
        assert_eq!(
            heading(&page),
            format!("Whoops, this is an invalid link ({reason})."),
            "{url}"
        );
    }
}
