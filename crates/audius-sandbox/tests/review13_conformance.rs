//! Review 13: the sandbox against `docs/protocol.md` and `docs/protocol-pkce.md`, where the
//! existing suites (conformance, agreement, login_page, oauth, api) leave a gap.
//!
//! Tests marked `// FINDING:` fail on the sandbox as it is: each quotes the spec line it checks
//! and says what the sandbox does instead. The others hold, and pin cases no other suite pins.
#![allow(clippy::unwrap_used)]

mod common;

use audius_login::token::decode_segment;
use audius_sandbox::{Sandbox, SandboxHandle};
use common::http;
use serde_json::Value;
use sha3::{Digest, Keccak256};
use url::Url;

/// The reasons of spec section 1, copied from its table.
const REDIRECT_URI: &str = "redirect URI missing or invalid";

/// `GET /oauth/auth?<params>`: status, page, `Location`.
async fn login_page(
    sandbox: &SandboxHandle,
    params: &[(&str, &str)],
) -> (u16, String, Option<Url>) {
    let mut url = sandbox.login_page_url();
    url.query_pairs_mut().extend_pairs(params);
    let resp = http().get(url).send().await.unwrap();
    let location = resp
        .headers()
        .get("location")
        .map(|v| Url::parse(v.to_str().unwrap()).unwrap());
    (resp.status().as_u16(), resp.text().await.unwrap(), location)
}

/// The text of the page's `<h1>`, entities decoded.
fn heading(page: &str) -> String {
    let Some(start) = page.find("<h1") else {
        return String::new();
    };
    let start = start + page[start..].find('>').unwrap() + 1;
    let end = start + page[start..].find("</h1>").unwrap();
    page[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn refusal(reason: &str) -> String {
    format!("Whoops, this is an invalid link ({reason}).")
}

/// An implicit-flow link approved at once as `listener`, in `mode`.
fn implicit<'a>(redirect: &'a str, state: &'a str, mode: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("scope", "read"),
        ("app_name", "Review App"),
        ("redirect_uri", redirect),
        ("state", state),
        ("response_mode", mode),
        ("sandbox_user", "listener"),
    ]
}

// ---------------------------------------------------------------------------------------------
// Section 5: redirect URIs.
// ---------------------------------------------------------------------------------------------

// FOUND by review 13, fixed in the commit after it. Was:
// FINDING: spec section 5 says "The Audius page decodes `redirect_uri` once more before parsing
// it, so a percent-encoded `%2e%2e` or `%2f` must be judged after decoding too", and the guide's
// rule is "no path traversal (`/..` or `\..`)". A doubly encoded `%252e%252e` is `%2e%2e` after
// that decoding, which every URL parser reads as `..` (`https://app.example/a/%2e%2e/b` is
// `https://app.example/b`), and `%252f..%252f` is `%2f..%2f`, the very text the spec names. The
// sandbox judges the decoded text only for a literal `/..` and parses it with a URL parser that
// silently removes the dot segments, so it accepts all four (`%255c` is the `\..` twin) and
// answers with a token.
#[tokio::test]
async fn doubly_encoded_traversal_is_refused_after_the_pages_extra_decoding() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut accepted = Vec::new();
    for (redirect, decoded) in [
        (
            "https://app.example/a/%252e%252e/b",
            "https://app.example/a/%2e%2e/b",
        ),
        (
            "https://app.example/a/.%252e/b",
            "https://app.example/a/.%2e/b",
        ),
        (
            "https://app.example/a%252f..%252fb",
            "https://app.example/a%2f..%2fb",
        ),
        (
            "https://app.example/a%255c..%255cb",
            "https://app.example/a%5c..%5cb",
        ),
    ] {
        // The once-decoded form, judged on its own, is refused: the sandbox agrees that it
        // is a traversal.
        let (status, page, _) = login_page(&sandbox, &implicit(decoded, "s", "fragment")).await;
        assert_eq!(status, 400, "{decoded}");
        assert!(page.contains(r#"data-rule="traversal""#), "{decoded}");

        let (status, page, location) =
            login_page(&sandbox, &implicit(redirect, "s", "fragment")).await;
        if (status, heading(&page)) != (400, refusal(REDIRECT_URI))
            || !page.contains(r#"data-rule="traversal""#)
        {
            let sent = location.map(|l| l.to_string()).unwrap_or_default();
            accepted.push(format!(
                "{redirect} (decoded by the page: {decoded}) -> {status} {}",
                sent.split('#').next().unwrap_or_default()
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "traversals accepted:\n{}",
        accepted.join("\n")
    );
}

// FOUND by review 13, fixed in the commit after it. Was:
// FINDING: spec section 5 says "no fragment (`#`), no userinfo (`user:pass@`)" and "This project
// follows the guide's rules, strictly". `https://@app.example/cb` and `https://:@app.example/cb`
// carry a userinfo (empty, RFC 3986 `[ userinfo "@" ] host`); the sandbox accepts them, because
// the URL parser drops an empty userinfo before the rule looks at it, and redirects to
// `https://app.example/cb`. (Low: the URL it sends is harmless; the rule is not applied as
// written.)
#[tokio::test]
async fn an_empty_userinfo_is_still_a_userinfo() {
    let sandbox = Sandbox::start().await.unwrap();
    for redirect in ["https://@app.example/cb", "https://:@app.example/cb"] {
        let (status, page, location) =
            login_page(&sandbox, &implicit(redirect, "s", "fragment")).await;
        assert_eq!(
            (status, heading(&page)),
            (400, refusal(REDIRECT_URI)),
            "{redirect}: answered {}",
            location
                .map(|l| l.to_string())
                .unwrap_or_default()
                .chars()
                .take(60)
                .collect::<String>()
        );
        assert!(page.contains(r#"data-rule="userinfo""#), "{redirect}");
    }
}

/// Holds: IP literals are judged after normalisation, in every written form of loopback and
/// of other addresses; what is sent is the normalised URL, its query kept.
#[tokio::test]
async fn ip_literals_in_every_form() {
    let sandbox = Sandbox::start().await.unwrap();
    for (redirect, sent) in [
        ("http://0177.0.0.1/cb", "http://127.0.0.1/cb"),
        ("http://0x7f000001/cb", "http://127.0.0.1/cb"),
        ("http://127.1:8080/cb", "http://127.0.0.1:8080/cb"),
        ("http://[0:0:0:0:0:0:0:1]/cb", "http://[::1]/cb"),
        ("myapp://0x7f.1/cb", "myapp://0x7f.1/cb"),
    ] {
        let (status, page, location) =
            login_page(&sandbox, &implicit(redirect, "s", "query")).await;
        assert_eq!(status, 302, "{redirect}: {}", heading(&page));
        let location = location.unwrap();
        assert!(
            location
                .as_str()
                .starts_with(&format!("{sent}?state=s&token=")),
            "{redirect}: {location}"
        );
    }
    for redirect in [
        "http://10.1/cb",
        "http://10.0.0.1./cb",
        "http://012.0.0.1/cb",
        "http://%31%30.0.0.1/cb",
        "http://[::ffff:a00:1]/cb",
        "http://0/cb",
        "myapp://0xa.1/cb",
    ] {
        let (status, page, _) = login_page(&sandbox, &implicit(redirect, "s", "query")).await;
        assert_eq!(
            (status, heading(&page)),
            (400, refusal(REDIRECT_URI)),
            "{redirect}"
        );
        assert!(
            page.contains(r#"data-rule="ip_host""#),
            "{redirect}: {page}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Section 2: the answer channels.
// ---------------------------------------------------------------------------------------------

// FOUND by review 13, fixed in the commit after it. Was:
// FINDING: spec section 1 says `state` is "Any string, echoed back verbatim", and section 2 says
// "`state=` is left out when no state was sent". A link with `state=` (the empty string) sent a
// state; the sandbox treats it as absent (`Params::get` drops empty values) and answers
// `#token=...` / `?token=...` without `state=`, so an app that sent an empty state gets back an
// answer that says it sent none.
#[tokio::test]
async fn an_empty_state_is_echoed_back_not_dropped() {
    let sandbox = Sandbox::start().await.unwrap();
    for mode in ["fragment", "query"] {
        let (status, _, location) =
            login_page(&sandbox, &implicit("https://app.example/cb", "", mode)).await;
        assert_eq!(status, 302);
        let location = location.unwrap();
        let answer = if mode == "fragment" {
            location.fragment().unwrap().to_owned()
        } else {
            location.query().unwrap().to_owned()
        };
        assert!(answer.starts_with("state=&token="), "{mode}: {location}");
    }
}

/// Holds: query mode keeps the existing query byte for byte (`%7e`, `+`, an empty trailing
/// `?`), then appends `state` and `token` form-encoded; fragment mode leaves the query alone.
#[tokio::test]
async fn query_mode_keeps_the_existing_query_verbatim() {
    let sandbox = Sandbox::start().await.unwrap();
    let state = "a b&c";
    let (_, _, location) = login_page(
        &sandbox,
        &implicit("https://app.example/cb?x=%7e&y=a+b", state, "query"),
    )
    .await;
    let location = location.unwrap();
    assert!(
        location
            .as_str()
            .starts_with("https://app.example/cb?x=%7e&y=a+b&state=a+b%26c&token=eyJ"),
        "{location}"
    );
    let (_, _, location) =
        login_page(&sandbox, &implicit("https://app.example/cb?", "s", "query")).await;
    assert!(
        location
            .unwrap()
            .as_str()
            .starts_with("https://app.example/cb?state=s&token=")
    );
    let (_, _, location) = login_page(
        &sandbox,
        &implicit("https://app.example/cb?x=1", state, "fragment"),
    )
    .await;
    let location = location.unwrap();
    assert_eq!(location.query(), Some("x=1"));
    assert!(
        location
            .fragment()
            .unwrap()
            .starts_with("state=a+b%26c&token=eyJ"),
        "{location}"
    );
}

// ---------------------------------------------------------------------------------------------
// Section 3: the token, byte for byte, checked with an independent keccak and recovery.
// ---------------------------------------------------------------------------------------------

/// Holds: the header is exactly `{"typ":"JWT","alg":"keccak256"}`; the payload is compact JSON
/// with the claims in the spec's order and types; the third segment is base64url of the text
/// `0x` + 130 lower-case hex characters (so it starts `MHg`), `v` is 27 or 28, low-S, and the
/// EIP-191 hash of `header.payload` recovers the user's wallet.
#[tokio::test]
async fn the_page_signs_the_token_the_spec_describes() {
    let sandbox = Sandbox::start().await.unwrap();
    let (_, _, location) =
        login_page(&sandbox, &implicit("https://app.example/cb", "s", "query")).await;
    let location = location.unwrap();
    let token = location
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| !p.contains('=')), "no padding");
    assert_eq!(
        decode_segment(parts[0]).unwrap(),
        br#"{"typ":"JWT","alg":"keccak256"}"#
    );

    let payload_bytes = decode_segment(parts[1]).unwrap();
    let payload_text = String::from_utf8(payload_bytes).unwrap();
    assert!(
        !payload_text.contains(": ") && !payload_text.contains('\n'),
        "compact"
    );
    let payload: serde_json::Map<String, Value> = serde_json::from_str(&payload_text).unwrap();
    let keys: Vec<&str> = payload.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "userId",
            "email",
            "name",
            "handle",
            "verified",
            "profilePicture",
            "apiKey",
            "sub",
            "iat"
        ]
    );
    let listener = sandbox.user("listener").unwrap();
    assert_eq!(payload["userId"], Value::String(listener.hashid()));
    assert_eq!(payload["sub"], payload["userId"]);
    assert!(payload["email"].is_string() && payload["name"].is_string());
    assert!(payload["handle"].is_string() && payload["verified"].is_boolean());
    assert!(payload["profilePicture"].is_object());
    assert!(payload["apiKey"].is_null());
    assert!(payload["iat"].is_i64());

    let sig_text = String::from_utf8(decode_segment(parts[2]).unwrap()).unwrap();
    assert_eq!(sig_text.len(), 132);
    assert_eq!(parts[2].len(), 176);
    assert!(sig_text.starts_with("0x"));
    // The spec's section 3 said the segment "starts `MHg`" (docs/protocol.md too, until review
    // 13): that holds only
    // when r's first hex digit is 0-9. base64("0x" + c) is "MHg" for c in 0-9 and "MHh" for
    // c in a-f (the third character takes the top two bits of c: 0x3_ gives `g`, 0x6_ `h`).
    let expected = if sig_text.as_bytes()[2].is_ascii_digit() {
        "MHg"
    } else {
        "MHh"
    };
    assert!(parts[2].starts_with(expected), "{}", &parts[2][..4]);
    assert!(
        sig_text[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let sig = hex::decode(&sig_text[2..]).unwrap();
    assert!(sig[64] == 27 || sig[64] == 28, "v = {}", sig[64]);
    // Low S: s <= n/2, n/2 = 7fffffff ffffffff ffffffff ffffffff 5d576e73 57a4501d dfe92f46 681b20a0.
    let half_n =
        hex::decode("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0").unwrap();
    assert!(sig[32..64] <= half_n[..], "low S");

    // EIP-191, computed here: keccak256("\x19Ethereum Signed Message:\n" + len + m).
    let message = format!("{}.{}", parts[0], parts[1]);
    let mut hasher = Keccak256::new();
    hasher.update(format!("\x19Ethereum Signed Message:\n{}", message.len()).as_bytes());
    hasher.update(message.as_bytes());
    let hash: [u8; 32] = hasher.finalize().into();
    let recid = secp256k1::ecdsa::RecoveryId::try_from(i32::from(sig[64] - 27)).unwrap();
    let recoverable =
        secp256k1::ecdsa::RecoverableSignature::from_compact(&sig[..64], recid).unwrap();
    let public = recoverable
        .recover(secp256k1::Message::from_digest(hash))
        .unwrap();
    let address = Keccak256::digest(&public.serialize_uncompressed()[1..]);
    assert_eq!(
        format!("0x{}", hex::encode(&address[12..])),
        listener.wallet.to_string().to_ascii_lowercase()
    );
}

// ---------------------------------------------------------------------------------------------
// PKCE spec section 1: the authorization request.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Section 4.1: verify_token.
// ---------------------------------------------------------------------------------------------

/// `token` with its signature's `v` byte replaced by `v`.
fn with_v(token: &str, v: u8) -> String {
    let (signed, sig_segment) = token.rsplit_once('.').unwrap();
    let text = String::from_utf8(decode_segment(sig_segment).unwrap()).unwrap();
    let mut bytes = hex::decode(text.trim_start_matches("0x")).unwrap();
    bytes[64] = v;
    format!(
        "{signed}.{}",
        audius_login::token::encode_segment(format!("0x{}", hex::encode(bytes)).as_bytes())
    )
}

// FOUND by review 13, fixed in the commit after it. Was:
// FINDING: spec section 4.1's table says "if v >= 27, v -= 27; recover the public key over the
// EIP-191 hash of `part1.part2`" (once), failing with "404 `The JWT signature is invalid -
// wallet could not be recovered`"; section 3 says "`v` is 27/28; accept 0/1 too". A `v` of 54
// or 55 is 27 or 28 after that step, not a recovery id, so the answer is 404. The sandbox
// subtracts 27 in `verify_token` and then `Signature::recovery_id` subtracts 27 again, so
// `v` = 54/55 recovers the signer and the token is accepted with 200 (and the core's own
// verifier, which subtracts once, refuses the same token: the sandbox and the library disagree).
#[tokio::test]
async fn v_is_reduced_by_27_once_not_twice() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = http();
    let listener = sandbox.user("listener").unwrap();
    let token = sandbox.mint_token(listener, Default::default());
    let (_, sig_segment) = token.rsplit_once('.').unwrap();
    let text = String::from_utf8(decode_segment(sig_segment).unwrap()).unwrap();
    let v = hex::decode(text.trim_start_matches("0x")).unwrap()[64];
    assert!(v == 27 || v == 28);
    // The accepted spellings of v: 27/28 and 0/1.
    for good in [v, v - 27] {
        let (status, _) = common::verify(&client, &sandbox.base_url(), &with_v(&token, good)).await;
        assert_eq!(status, 200, "v = {good}");
    }
    // v + 27 (54 or 55) and v + 2 (29 or 30: recovery ids 2/3) are not.
    for bad in [v + 27, v + 2] {
        // The library's own recovery (the local verifier's) refuses them.
        assert!(
            audius_login::Token::parse(&with_v(&token, bad))
                .unwrap()
                .recover_signer()
                .is_err(),
            "the core refuses v = {bad}"
        );
        let (status, body) =
            common::verify(&client, &sandbox.base_url(), &with_v(&token, bad)).await;
        assert_eq!(
            (status, body),
            (
                404,
                serde_json::json!({
                    "code": 404,
                    "error": "The JWT signature is invalid - wallet could not be recovered"
                })
            ),
            "v = {bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Section 4.1, last paragraph: CORS on the whole API, the OAuth endpoints and errors included.
// ---------------------------------------------------------------------------------------------

/// Holds: "The whole API answers cross-origin requests from any origin (CORS:
/// `Access-Control-Allow-Origin: *`, preflight `OPTIONS` answered)": the token and revoke
/// endpoints (errors too), `/v1/me` (401 too), and the preflight of a JSON POST to the token
/// endpoint.
#[tokio::test]
async fn cors_on_the_oauth_endpoints_and_their_errors() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = http();
    let base = sandbox.base_url();
    let origin = "https://app.example";
    let answers = [
        client
            .post(base.join("v1/oauth/token").unwrap())
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(r#"{"grant_type":"nope"}"#)
            .send()
            .await
            .unwrap(),
        client
            .post(base.join("v1/oauth/revoke").unwrap())
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=never-issued")
            .send()
            .await
            .unwrap(),
        client
            .get(base.join("v1/me").unwrap())
            .header("origin", origin)
            .send()
            .await
            .unwrap(),
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [400, 200, 401]);
    for r in &answers {
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            Some("*"),
            "{}",
            r.url()
        );
    }
    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            base.join("v1/oauth/token").unwrap(),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("content-type")
    );
}
