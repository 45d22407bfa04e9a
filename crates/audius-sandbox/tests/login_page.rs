//! The login page: validation (spec sections 1 and 5), the three answer channels (section 2),
//! cancel, the `sandbox_user` hook, state echoing, escaping, and the PKCE front half.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use audius_login::clock::ManualClock;
use audius_login::{Scope, Token, UserId};
use audius_sandbox::login::{self, MAX_LOGIN_QUERY_BYTES};
use audius_sandbox::oauth::{BUILTIN_APP_API_KEY, pkce_challenge};
use audius_sandbox::{DeveloperApp, Sandbox, SandboxHandle};
use common::{http, verify};
use serde_json::{Value, json};
use url::Url;

/// The key of an app the tests register with the sandbox builder.
const KEY: &str = "0123456789abcdef0123456789abcdef01234567";
/// A state that needs encoding: spaces, `&`, `=`, `+`, `%`, `#`, non-ASCII.
const STATE: &str = "s t&a=t+e%20/#é☃~'\"<>";

fn login_url(sandbox: &SandboxHandle, params: &[(&str, &str)]) -> Url {
    let mut url = sandbox.login_page_url();
    url.query_pairs_mut().extend_pairs(params);
    url
}

async fn get(url: Url) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = http().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

async fn post_form(url: Url, form: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let resp = http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn location(headers: &reqwest::header::HeaderMap) -> Url {
    Url::parse(headers.get("location").unwrap().to_str().unwrap()).unwrap()
}

fn pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Query parameters, the parameter the page must name, the reason it must give, and the
/// redirect rule if any.
type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str, Option<&'a str>);

fn base_params(redirect: &str) -> Vec<(&str, &str)> {
    vec![
        ("scope", "read"),
        ("app_name", "My App"),
        ("redirect_uri", redirect),
    ]
}

/// A sandbox where [`KEY`] is a registered app's key (no redirect URIs).
async fn sandbox_with_key() -> SandboxHandle {
    Sandbox::builder()
        .app(DeveloperApp::new("Key App", KEY, vec![]).unwrap())
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn invalid_links() {
    let sandbox = sandbox_with_key().await;
    let long_name = "n".repeat(257);
    let long_link = "x".repeat(MAX_LOGIN_QUERY_BYTES);
    let cb = "http://localhost:3000/cb";
    let cases: Vec<Case<'_>> = vec![
        (
            vec![("app_name", "A"), ("redirect_uri", cb)],
            "scope",
            login::SCOPE_INVALID,
            None,
        ),
        (
            vec![("scope", "admin"), ("app_name", "A"), ("redirect_uri", cb)],
            "scope",
            login::SCOPE_INVALID,
            None,
        ),
        (
            vec![("scope", "READ"), ("app_name", "A"), ("redirect_uri", cb)],
            "scope",
            login::SCOPE_INVALID,
            None,
        ),
        (
            vec![
                ("scope", "read write"),
                ("app_name", "A"),
                ("redirect_uri", cb),
            ],
            "scope",
            login::SCOPE_INVALID,
            None,
        ),
        (
            vec![("scope", ""), ("app_name", "A"), ("redirect_uri", cb)],
            "scope",
            login::SCOPE_INVALID,
            None,
        ),
        (
            vec![("scope", "write"), ("app_name", "A"), ("redirect_uri", cb)],
            "api_key",
            login::API_KEY_MISSING,
            None,
        ),
        (
            vec![
                ("scope", "write"),
                ("api_key", "0xab"),
                ("redirect_uri", cb),
            ],
            "api_key",
            login::API_KEY_INVALID,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("api_key", &KEY[1..]),
                ("redirect_uri", cb),
            ],
            "api_key",
            login::API_KEY_INVALID,
            None,
        ),
        (
            // A registered key, but the implicit flow takes no 0x.
            vec![
                ("scope", "read"),
                ("api_key", "0x0123456789abcdef0123456789abcdef01234567"),
                ("redirect_uri", cb),
            ],
            "api_key",
            login::API_KEY_INVALID,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("api_key", "ffffffffffffffffffffffffffffffffffffffff"),
                ("redirect_uri", cb),
            ],
            "api_key",
            login::API_KEY_INVALID,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("client_id", "ffffffffffffffffffffffffffffffffffffffff"),
                ("redirect_uri", cb),
            ],
            "client_id",
            login::API_KEY_INVALID,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("api_key", KEY),
                ("client_id", BUILTIN_APP_API_KEY),
                ("redirect_uri", cb),
            ],
            "api_key",
            login::API_KEY_CONFLICT,
            None,
        ),
        (
            vec![("scope", "read"), ("redirect_uri", cb)],
            "app_name",
            login::APP_NAME_MISSING,
            None,
        ),
        (
            vec![("scope", "read"), ("app_name", ""), ("redirect_uri", cb)],
            "app_name",
            login::APP_NAME_MISSING,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("app_name", &long_name),
                ("redirect_uri", cb),
            ],
            "app_name",
            login::APP_NAME_TOO_LONG,
            None,
        ),
        (
            vec![("scope", "read"), ("app_name", "A")],
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            None,
        ),
        (
            base_params("https://app.example/cb#frag"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("fragment"),
        ),
        (
            base_params("https://app.example/cb%23frag"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("fragment"),
        ),
        (
            base_params("https://user:pw@app.example/cb"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("userinfo"),
        ),
        (
            base_params("https://app.example/a/../b"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("traversal"),
        ),
        (
            base_params("https://app.example/a/%2e%2e/b"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("traversal"),
        ),
        (
            base_params("http://10.0.0.1/cb"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("ip_host"),
        ),
        (
            base_params("http://0x0a.1/cb"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("ip_host"),
        ),
        (
            base_params("http://[2001:db8::1]/cb"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("ip_host"),
        ),
        (
            base_params("javascript:alert(1)"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("scheme"),
        ),
        (
            base_params("data:text/html,hi"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("scheme"),
        ),
        (
            base_params("not a url"),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("syntax"),
        ),
        (
            base_params("postmessage"),
            "origin",
            login::ORIGIN_MISSING,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", "postmessage"),
                ("origin", "http://x.example/path"),
            ],
            "origin",
            login::ORIGIN_MISSING,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", cb),
                ("response_mode", "form_post"),
            ],
            "response_mode",
            login::RESPONSE_MODE_INVALID,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", cb),
                ("display", "modal"),
            ],
            "display",
            login::DISPLAY_INVALID,
            None,
        ),
        (
            vec![
                ("scope", "read"),
                ("app_name", "A"),
                ("redirect_uri", cb),
                ("sandbox_user", "ghost"),
            ],
            "sandbox_user",
            login::SANDBOX_USER_UNKNOWN,
            None,
        ),
        (
            vec![("scope", "admin"), ("junk", &long_link)],
            "query",
            login::LINK_TOO_LONG,
            None,
        ),
    ];
    for (params, param, reason, rule) in &cases {
        let url = login_url(&sandbox, params);
        let (status, headers, body) = get(url.clone()).await;
        assert_eq!(status, 400, "{url}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let title = format!(
            "<h1 id=\"title\">{}</h1>",
            escape(&login::invalid_link_sentence(reason))
        );
        assert!(body.contains(&title), "{url}: {body}");
        assert!(
            body.contains(&format!("data-invalid-param=\"{param}\"")),
            "{url}: {body}"
        );
        assert!(body.contains("data-sandbox-page=\"invalid-link\""));
        match rule {
            Some(rule) => assert!(
                body.contains(&format!("data-rule=\"{rule}\"")),
                "{url}: {body}"
            ),
            None => assert!(!body.contains("data-rule="), "{url}: {body}"),
        }
        assert!(headers.get("location").is_none());
    }
    // The spec's own words for scope.
    let (_, _, body) = get(login_url(&sandbox, &cases[0].0)).await;
    assert!(body.contains("Whoops, this is an invalid link (scope missing or invalid)."));
    // The quotes of the response-mode reason are escaped in the page, and only there.
    let response_mode = cases.iter().find(|c| c.1 == "response_mode").unwrap();
    let (_, _, body) = get(login_url(&sandbox, &response_mode.0)).await;
    assert!(body.contains(
        "Whoops, this is an invalid link (response mode invalid - if set, must be \
         &quot;fragment&quot; or &quot;query&quot;)."
    ));
    // Nothing was approved by any of them.
    assert!(sandbox.codes().is_empty());
}

/// HTML escaping as the page does it (element content and attribute values).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[tokio::test]
async fn the_page_lists_users_and_escapes_everything() {
    let sandbox = Sandbox::start().await.unwrap();
    let evil = "<script>alert(1)</script>\"'&";
    let url = login_url(
        &sandbox,
        &[
            ("scope", "read"),
            ("app_name", evil),
            ("redirect_uri", "http://localhost:3000/cb?x='q'&y=1"),
            ("state", "<img src=x onerror=alert(2)>"),
            ("unknown_param", "is ignored"),
            ("display", "fullScreen"),
        ],
    );
    let (status, headers, body) = get(url.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "no CORS on pages"
    );
    assert!(
        !body.contains("<script>alert(1)"),
        "raw app name in the page"
    );
    assert!(!body.contains("<img src=x"), "raw state in the page");
    assert!(
        body.contains("cb?x=&#39;q&#39;&amp;y=1"),
        "escaped redirect in the page"
    );
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    for user in sandbox.users() {
        assert!(
            body.contains(&format!("data-sandbox-user=\"{}\"", user.handle)),
            "{}",
            user.handle
        );
    }
    assert!(body.contains("id=\"approve\""));
    assert!(body.contains("id=\"cancel\""));
    assert!(body.contains("data-display=\"fullScreen\""));
    // The form carries the original query, escaped.
    let hidden = format!(
        "name=\"query\" value=\"{}\"",
        url.query()
            .unwrap()
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    );
    assert!(body.contains(&hidden), "{body}");
    // The pictures the page shows are served.
    let resp = http()
        .get(
            sandbox
                .base_url()
                .join("content/artist/150x150.svg")
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn approve_fragment_via_the_form() {
    let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
    let sandbox = Sandbox::builder()
        .clock(clock)
        .app(DeveloperApp::new("Key App", KEY, vec![]).unwrap())
        .start()
        .await
        .unwrap();
    let url = login_url(
        &sandbox,
        &[
            ("scope", "write"),
            ("api_key", KEY),
            ("redirect_uri", "http://localhost:3000/cb"),
            ("state", STATE),
        ],
    );
    let (status, _, page) = get(url.clone()).await;
    assert_eq!(status, 200, "{page}");
    let approve = sandbox.base_url().join("oauth/auth/approve").unwrap();
    let (status, headers, _) = post_form(
        approve,
        &[("query", url.query().unwrap()), ("sandbox_user", "artist")],
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(headers["cache-control"], "no-store");
    let to = location(&headers);
    assert_eq!(
        &to.as_str()[..to.as_str().find('#').unwrap()],
        "http://localhost:3000/cb"
    );
    let answer = pairs(to.fragment().unwrap());
    assert_eq!(
        answer[0],
        ("state".to_owned(), STATE.to_owned()),
        "byte for byte"
    );
    assert_eq!(answer[1].0, "token");
    assert_eq!(answer.len(), 2);
    let token = Token::parse(&answer[1].1).unwrap();
    let artist = sandbox.user("artist").unwrap();
    assert_eq!(token.recover_signer().unwrap(), artist.wallet);
    let claims = token.claims().as_map();
    let keys: Vec<&str> = claims.keys().map(String::as_str).collect();
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
    assert_eq!(claims["userId"], "OeJ7n");
    assert_eq!(claims["sub"], "OeJ7n");
    assert_eq!(claims["email"], "artist@sandbox.audius.invalid");
    assert_eq!(claims["verified"], true);
    assert_eq!(claims["apiKey"], KEY);
    assert_eq!(claims["iat"], 1_700_000_000);
    assert_eq!(
        claims["profilePicture"]["150x150"],
        sandbox
            .base_url()
            .join("content/artist/150x150.svg")
            .unwrap()
            .as_str()
    );
    assert_eq!(claims["profilePicture"]["mirrors"], json!([]));
    // The header is the login page's.
    assert_eq!(
        serde_json::to_value(token.header().unwrap()).unwrap(),
        json!({"typ": "JWT", "alg": "keccak256"})
    );
    // And the sandbox itself accepts it.
    let (status, body) = verify(&http(), &sandbox.base_url(), token.as_str()).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["iat"], "1700000000");
}

#[tokio::test]
async fn fragment_without_state_and_the_nopicture_user() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut params = base_params("myapp://callback");
    params.push(("sandbox_user", "nopicture"));
    let (status, headers, _) = get(login_url(&sandbox, &params)).await;
    assert_eq!(status, 302);
    let to = location(&headers);
    assert!(to.as_str().starts_with("myapp://callback#token="), "{to}");
    let answer = pairs(to.fragment().unwrap());
    assert_eq!(answer.len(), 1, "state= is left out when none was sent");
    let token = Token::parse(&answer[0].1).unwrap();
    assert_eq!(token.claims().get("profilePicture"), Some(&json!({})));
    assert_eq!(token.claims().get("apiKey"), Some(&Value::Null));
}

#[tokio::test]
async fn query_mode_keeps_the_existing_query() {
    let sandbox = Sandbox::start().await.unwrap();
    let redirect = "http://127.0.0.1:8080/auth/audius/callback?next=%2Fhome&x=1";
    let url = login_url(
        &sandbox,
        &[
            ("scope", "read"),
            ("app_name", "My App"),
            ("redirect_uri", redirect),
            ("response_mode", "query"),
            ("state", STATE),
            ("sandbox_user", "listener"),
        ],
    );
    let (status, headers, _) = get(url).await;
    assert_eq!(status, 302);
    let to = location(&headers);
    assert!(
        to.as_str().starts_with(&format!("{redirect}&state=")),
        "{to}"
    );
    assert!(to.fragment().is_none());
    let answer = pairs(to.query().unwrap());
    assert_eq!(answer[0], ("next".to_owned(), "/home".to_owned()));
    assert_eq!(answer[1], ("x".to_owned(), "1".to_owned()));
    assert_eq!(answer[2], ("state".to_owned(), STATE.to_owned()));
    assert_eq!(answer[3].0, "token");
    let token = Token::parse(&answer[3].1).unwrap();
    assert_eq!(token.claims().user_id, UserId::new(44));
}

#[tokio::test]
async fn postmessage_page_posts_to_the_exact_origin() {
    let sandbox = Sandbox::start().await.unwrap();
    let url = login_url(
        &sandbox,
        &[
            ("scope", "read"),
            ("app_name", "My App"),
            ("redirect_uri", "PostMessage"),
            ("origin", "http://localhost:3000"),
            ("state", STATE),
        ],
    );
    let (status, _, page) = get(url.clone()).await;
    assert_eq!(status, 200);
    assert!(page.contains("http://localhost:3000"));
    let approve = sandbox.base_url().join("oauth/auth/approve").unwrap();
    let (status, headers, page) = post_form(
        approve,
        &[("query", url.query().unwrap()), ("sandbox_user", "managed")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(headers.get("location").is_none());
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'nonce-")
    );
    assert!(page.contains("window.opener.postMessage(message, origin);"));
    assert!(
        page.contains("var origin = \"http://localhost:3000\";"),
        "{page}"
    );
    assert!(page.contains("window.close();"));
    assert!(page.contains("if (!window.opener)"));
    assert!(page.contains("cannot answer"));
    let line = page
        .lines()
        .find_map(|l| l.trim().strip_prefix("var message = "))
        .unwrap()
        .strip_suffix(';')
        .unwrap();
    // JSON-escaped: nothing that could close the script.
    assert!(!line.contains('<') && !line.contains('>') && !line.contains('&'));
    assert!(
        line.starts_with("{\"state\":\"s t\\u0026a=t+e%20/#é☃~'\\\"\\u003c\\u003e\",\"token\":\"")
    );
    let message: Value = serde_json::from_str(line).unwrap();
    assert_eq!(message["state"], STATE);
    let token = Token::parse(message["token"].as_str().unwrap()).unwrap();
    assert_eq!(
        token.recover_signer().unwrap(),
        sandbox.user("managed").unwrap().wallet
    );
    // The origin is normalised; without a state, the message has none.
    let url = login_url(
        &sandbox,
        &[
            ("scope", "read"),
            ("app_name", "My App"),
            ("redirect_uri", "postmessage"),
            ("origin", "http://LOCALHOST:3000/"),
            ("sandbox_user", "listener"),
        ],
    );
    let (status, _, page) = get(url).await;
    assert_eq!(status, 200);
    assert!(page.contains("var origin = \"http://localhost:3000\";"));
    assert!(page.contains("var message = {\"token\":\""));
}

#[tokio::test]
async fn cancel_sends_nothing_back() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut params = base_params("http://localhost:3000/cb");
    params.push(("state", "abc"));
    let url = login_url(&sandbox, &params);
    let cancel = sandbox.base_url().join("oauth/auth/cancel").unwrap();
    let (status, headers, page) = post_form(
        cancel,
        &[("query", url.query().unwrap()), ("sandbox_user", "artist")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("location").is_none());
    assert!(page.contains("data-sandbox-page=\"cancelled\""));
    assert!(page.contains("My App"));
    assert!(!page.contains("token") && !page.contains("abc"));
    // Approving without a user, or as an unknown one, is refused.
    let approve = sandbox.base_url().join("oauth/auth/approve").unwrap();
    let (status, _, page) = post_form(approve.clone(), &[("query", url.query().unwrap())]).await;
    assert_eq!(status, 400);
    assert!(page.contains("Whoops, this is an invalid link (sandbox user missing)."));
    assert!(page.contains("data-invalid-param=\"sandbox_user\""));
    let (status, _, _) = post_form(
        approve.clone(),
        &[("query", url.query().unwrap()), ("sandbox_user", "ghost")],
    )
    .await;
    assert_eq!(status, 400);
    // A tampered form is judged again.
    let (status, _, page) = post_form(
        approve,
        &[
            (
                "query",
                "scope=read&app_name=A&redirect_uri=http://10.1.1.1/x",
            ),
            ("sandbox_user", "artist"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("data-rule=\"ip_host\""));
}

#[tokio::test]
async fn sandbox_user_hook_with_postmessage() {
    let sandbox = sandbox_with_key().await;
    let url = login_url(
        &sandbox,
        &[
            ("scope", "read"),
            ("api_key", KEY),
            ("redirect_uri", "postmessage"),
            ("origin", "https://app.example"),
            ("state", "st"),
            ("sandbox_user", "Artist"),
        ],
    );
    let (status, _, page) = get(url).await;
    assert_eq!(status, 200);
    assert!(page.contains("var message = {\"state\":\"st\",\"token\":\""));
    assert!(page.contains("var origin = \"https://app.example\";"));
}

#[tokio::test]
async fn pkce_front_half() {
    let clock = Arc::new(ManualClock::at_unix(1_750_000_000));
    let sandbox = Sandbox::builder().clock(clock).start().await.unwrap();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = pkce_challenge(verifier);
    let client_id = format!("0x{}", BUILTIN_APP_API_KEY.to_ascii_uppercase());
    let redirect = "http://localhost:8080/auth/audius/callback";
    let params = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect),
        ("scope", "read write"),
        ("state", STATE),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];

    // /v1/oauth/authorize sends the browser to the login page with the same query.
    let mut authorize = sandbox.base_url().join("v1/oauth/authorize").unwrap();
    authorize.query_pairs_mut().extend_pairs(&params);
    let (status, headers, _) = get(authorize.clone()).await;
    assert_eq!(status, 302);
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!(
            "{}?{}",
            sandbox.login_page_url(),
            authorize.query().unwrap()
        )
    );

    // The page names the registered app.
    let (status, _, page) = get(login_url(&sandbox, &params)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Sandbox Demo App"));

    let mut approve = params.clone();
    approve.push(("sandbox_user", "artist"));
    let (status, headers, _) = get(login_url(&sandbox, &approve)).await;
    assert_eq!(status, 302);
    let to = location(&headers);
    assert!(
        to.as_str().starts_with(&format!("{redirect}?state=")),
        "query is the code flow's default: {to}"
    );
    let answer = pairs(to.query().unwrap());
    assert_eq!(answer[0], ("state".to_owned(), STATE.to_owned()));
    assert_eq!(answer[1].0, "code");
    let code = &answer[1].1;
    assert_eq!(code.len(), 43);
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let grant = sandbox.codes().peek(code).unwrap();
    assert_eq!(grant.client_id, BUILTIN_APP_API_KEY);
    assert_eq!(grant.redirect_uri, redirect);
    assert_eq!(grant.code_challenge, challenge);
    assert_eq!(grant.code_challenge_method, "S256");
    assert_eq!(grant.scope, Scope::Write);
    assert_eq!(grant.user_id, UserId::new(7));
    assert_eq!(grant.issued_at.unix_timestamp(), 1_750_000_000);
    assert!(!grant.used);

    // Fragment and postmessage channels carry `code` instead of `token`.
    let mut frag = approve.clone();
    frag.push(("response_mode", "fragment"));
    let (_, headers, _) = get(login_url(&sandbox, &frag)).await;
    let to = location(&headers);
    assert_eq!(pairs(to.fragment().unwrap())[1].0, "code");
    let pm = vec![
        ("response_type", "code"),
        ("client_id", BUILTIN_APP_API_KEY),
        ("redirect_uri", "postmessage"),
        ("origin", "http://localhost:8080"),
        ("scope", "read"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("sandbox_user", "listener"),
    ];
    let (status, _, page) = get(login_url(&sandbox, &pm)).await;
    assert_eq!(status, 200);
    assert!(page.contains("var message = {\"code\":\""));
    assert_eq!(sandbox.codes().len(), 3);

    // The code flow's own refusals: each parameter removed or changed.
    let variant = |name: &str, value: Option<&str>| -> Vec<(String, String)> {
        params
            .iter()
            .filter(|(k, _)| *k != name || value.is_some())
            .map(|(k, v)| {
                let v = if *k == name { value.unwrap() } else { v };
                ((*k).to_owned(), v.to_owned())
            })
            .collect()
    };
    let cases = [
        (
            variant("client_id", None),
            "client_id",
            login::API_KEY_MISSING,
            None,
        ),
        (
            variant(
                "client_id",
                Some("ffffffffffffffffffffffffffffffffffffffff"),
            ),
            "client_id",
            login::API_KEY_INVALID,
            None,
        ),
        (
            variant("client_id", Some("0x12")),
            "client_id",
            login::API_KEY_INVALID,
            None,
        ),
        (
            variant("redirect_uri", Some("http://localhost:8080/other")),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("unregistered"),
        ),
        (
            variant("redirect_uri", Some("http://10.0.0.1/cb")),
            "redirect_uri",
            login::REDIRECT_URI_INVALID,
            Some("ip_host"),
        ),
        (
            variant("code_challenge", None),
            "code_challenge",
            login::CODE_CHALLENGE_MISSING,
            None,
        ),
        (
            variant("code_challenge", Some("short")),
            "code_challenge",
            login::CODE_CHALLENGE_INVALID,
            None,
        ),
        (
            variant("code_challenge_method", None),
            "code_challenge_method",
            login::CODE_CHALLENGE_METHOD_INVALID,
            None,
        ),
        (
            variant("code_challenge_method", Some("plain")),
            "code_challenge_method",
            login::CODE_CHALLENGE_METHOD_INVALID,
            None,
        ),
        (
            variant("scope", Some("read profile")),
            "scope",
            login::SCOPE_INVALID,
            None,
        ),
    ];
    for (params, param, reason, rule) in cases {
        let mut url = sandbox.login_page_url();
        url.query_pairs_mut().extend_pairs(&params);
        let (status, _, page) = get(url.clone()).await;
        assert_eq!(status, 400, "{url}");
        assert!(
            page.contains(&format!("data-invalid-param=\"{param}\"")),
            "{url}: {page}"
        );
        assert!(
            page.contains(&escape(&login::invalid_link_sentence(reason))),
            "{url}: {page}"
        );
        if let Some(rule) = rule {
            assert!(
                page.contains(&format!("data-rule=\"{rule}\"")),
                "{url}: {page}"
            );
        }
    }
}

#[tokio::test]
async fn code_flow_app_without_redirect_uris() {
    // KEY's app registered no redirect URIs: section 5, http(s) only, or postmessage.
    let sandbox = sandbox_with_key().await;
    let challenge = pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    let link = |redirect: &'static str| {
        login_url(
            &sandbox,
            &[
                ("response_type", "code"),
                ("client_id", KEY),
                ("redirect_uri", redirect),
                ("scope", "read"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("sandbox_user", "listener"),
            ],
        )
    };
    let (status, headers, _) = get(link("https://app.example/cb")).await;
    assert_eq!(status, 302);
    assert!(
        location(&headers)
            .as_str()
            .starts_with("https://app.example/cb?code=")
    );
    let (status, _, page) = get(link("myapp://callback")).await;
    assert_eq!(status, 400);
    assert!(page.contains(&login::invalid_link_sentence(login::REDIRECT_URI_INVALID)));
    assert!(page.contains("data-rule=\"scheme\""), "{page}");
    // The implicit flow takes a custom scheme, with the same key.
    let (status, headers, _) = get(login_url(
        &sandbox,
        &[
            ("client_id", KEY),
            ("redirect_uri", "myapp://callback"),
            ("scope", "read"),
            ("sandbox_user", "listener"),
        ],
    ))
    .await;
    assert_eq!(status, 302);
    assert!(
        location(&headers)
            .as_str()
            .starts_with("myapp://callback#token=")
    );
}
