//! The attacker's helpers shared by the review suites: a browser of its own, a login started
//! in it, a callback delivered, a token minted by the sandbox.

use std::time::Duration;

use audius_sandbox::TokenOverrides;
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use serde_json::Value;
use url::Url;

use super::TestApp;

/// A browser of its own: its own cookie jar, redirects not followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A client without a cookie jar (it sends exactly the cookie it is told to), redirects not
/// followed.
pub fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The session cookie a response sets, as `name=value`.
pub fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{}=", super::SESSION_COOKIE)))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// Starts a login in `client`'s session; returns the state.
pub async fn begin(app: &TestApp, client: &reqwest::Client) -> String {
    let res = client
        .get(app.url(app.audius.paths().login.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "the login route redirects");
    let page = Url::parse(res.headers()[LOCATION].to_str().unwrap()).unwrap();
    page.query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state")
}

/// The callback URL answering `state` with `token`.
pub fn callback_url(app: &TestApp, state: &str, token: &str) -> Url {
    let mut url = app.url(app.audius.redirect_uri().path());
    url.query_pairs_mut()
        .append_pair("state", state)
        .append_pair("token", token);
    url
}

/// A callback's answer: (status, the `Location` of a 302 or the error code).
pub async fn answer(res: reqwest::Response) -> (u16, String) {
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

/// A token the sandbox signs for `handle`, with `overrides`.
pub fn mint(app: &TestApp, handle: &str, overrides: TokenOverrides) -> String {
    let user = app.sandbox.user(handle).unwrap().clone();
    app.sandbox.mint_token(&user, overrides)
}
