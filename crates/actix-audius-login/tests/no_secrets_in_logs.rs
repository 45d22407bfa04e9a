//! Logs carry no secrets: every line this crate and the core write (at TRACE, spans opened and
//! closed with their fields) through an implicit-flow login with a real token verified by the
//! API (the token goes upstream in a query), a refused replay of that token, and a code-flow
//! login (code exchanged, `/v1/me` called with the access token) holds neither the token, its
//! signature, the states, the code, nor the access or refresh token; it does hold the user id
//! and the outcomes. One test in its own binary: the subscriber is the process's global one
//! (the app's workers log on their own threads).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_audius_login::{Flow, ResponseMode, VerifierKind};
use actix_web::cookie::{Cookie, CookieJar};
use audius_sandbox::{DeveloperApp, Sandbox};
use common::{SESSION_COOKIE, TestApp, start_with};
use reqwest::header::{ACCEPT, LOCATION};
use serde_json::Value;
use tracing_subscriber::fmt::format::FmtSpan;
use url::Url;

const API_KEY: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2";

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

impl Sink {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn location(res: &reqwest::Response) -> Url {
    Url::parse(res.headers()[LOCATION].to_str().unwrap()).unwrap()
}

fn fragment_param(url: &Url, name: &str) -> String {
    url::form_urlencoded::parse(url.fragment().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// The page's `var message = {...};` (the postmessage channel's answer).
fn message(page: &str) -> Value {
    let start = page.find("var message = ").unwrap() + "var message = ".len();
    let end = start + page[start..].find(";\n").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

async fn post_callback(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(app.audius.redirect_uri().path()))
        .header(ACCEPT, "application/json")
        .header(
            "origin",
            app.audius.redirect_uri().origin().ascii_serialization(),
        )
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The session's entries, read as only the server can (the cookie is encrypted).
fn session(app: &TestApp) -> serde_json::Map<String, Value> {
    let mut jar = CookieJar::new();
    let sent = format!("{SESSION_COOKIE}={}", app.session_cookie().unwrap());
    jar.add_original(Cookie::parse_encoded(sent).unwrap());
    let cookie = jar.private(&app.key).get(SESSION_COOKIE).unwrap();
    serde_json::from_str(cookie.value()).unwrap()
}

#[actix_web::test]
async fn logs_carry_no_token_code_state_or_bearer_token() {
    let sink = Sink::default();
    let writer = sink.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_env_filter("audius_login=trace,actix_audius_login=trace")
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .init();

    let app = DeveloperApp::new("Log App", API_KEY, vec!["postmessage".into()]).unwrap();
    let sandbox = Arc::new(Sandbox::builder().app(app).start().await.unwrap());
    let user = sandbox.user("listener").unwrap().clone();
    let user_id = user.id.get().to_string();

    // Implicit flow, API verifier (the token goes upstream), fragment channel.
    let implicit = start_with(sandbox.clone(), ResponseMode::Fragment, |b| {
        b.verifier_kind(VerifierKind::Api)
    })
    .await;
    let page = implicit.begin_login(None).await;
    let answer = implicit.approve(&page, "listener").await;
    assert_eq!(answer.status(), 302);
    let to = location(&answer);
    let state = fragment_param(&to, "state");
    let token = fragment_param(&to, "token");
    let res = post_callback(
        &implicit,
        &serde_json::json!({ "state": state, "token": token }),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // The same token again, with a fresh state: refused as replayed.
    let page = implicit.begin_login(None).await;
    let second_state = page
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let res = post_callback(
        &implicit,
        &serde_json::json!({ "state": second_state, "token": token }),
    )
    .await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "replayed_token", "{body}");

    // Code flow, postmessage channel.
    let code_app = start_with(sandbox.clone(), ResponseMode::PostMessage, |b| {
        b.flow(Flow::AuthorizationCode).api_key(API_KEY)
    })
    .await;
    let authorize = code_app.begin_login(None).await;
    let res = code_app.client.get(authorize).send().await.unwrap();
    assert_eq!(res.status(), 302, "authorize sends the browser on");
    let mut login_page = location(&res);
    login_page
        .query_pairs_mut()
        .append_pair("sandbox_user", "listener");
    let page = code_app
        .client
        .get(login_page)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let msg = message(&page);
    let code_state = msg["state"].as_str().unwrap().to_owned();
    let code = msg["code"].as_str().unwrap().to_owned();
    let res = post_callback(
        &code_app,
        &serde_json::json!({ "state": code_state, "code": code }),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let entries = session(&code_app);
    let tokens: Value = serde_json::from_str(entries["audius.tokens"].as_str().unwrap()).unwrap();
    let access = tokens["a"].as_str().unwrap().to_owned();
    let refresh = tokens["r"].as_str().unwrap().to_owned();

    let logs = sink.text();
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let secrets = [
        ("the token", token.as_str()),
        ("the token's signature", signature.as_str()),
        ("the state", state.as_str()),
        ("the second state", second_state.as_str()),
        ("the code flow's state", code_state.as_str()),
        ("the code", code.as_str()),
        ("the access token", access.as_str()),
        ("the refresh token", refresh.as_str()),
    ];
    for (what, secret) in secrets {
        assert!(
            secret.len() >= 16,
            "{what} is long enough to be found: {secret}"
        );
        assert!(!logs.contains(secret), "{what} is in the logs:\n{logs}");
    }
    assert!(!logs.to_ascii_lowercase().contains("bearer"), "{logs}");
    // What they are for: the user, the outcomes, the spans.
    assert!(logs.contains(&format!("user_id={user_id}")), "{logs}");
    assert!(logs.contains("outcome=\"signed_in\""), "{logs}");
    assert!(logs.contains("outcome=\"replayed_token\""), "{logs}");
    assert!(logs.contains("audius_login.callback"), "{logs}");
    assert!(logs.contains("audius_login.upstream"), "{logs}");
    for endpoint in ["verify_token", "oauth_token", "me"] {
        assert!(
            logs.contains(&format!("endpoint=\"{endpoint}\"")),
            "{endpoint}: {logs}"
        );
    }
}
