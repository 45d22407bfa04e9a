//! A browser's HTTP side for the server suites, with `reqwest`: a client that keeps cookies and
//! follows no redirect (so that every hop of a login can be checked), and the hops of a login
//! against the sandbox, each asserting what a working login answers.
//!
//! A whole login, when the steps need no checking of their own, is
//! `actix_audius_login_testing::TestClient::sign_in_as`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::Jar;
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::{Client, IntoUrl, Response};
use serde_json::Value;
use url::Url;

/// How long any one request may take: a bound on a hang, not a speed claim (generous: a
/// callback whose Audius hosts are down may take its whole fail-over budget).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A browser: cookies kept, redirects not followed.
pub fn client() -> Client {
    client_with_jar().0
}

/// [`client`], with its cookie jar (to read or copy a cookie).
pub fn client_with_jar() -> (Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .unwrap_or_else(|e| panic!("an HTTP client: {e}"));
    (client, jar)
}

/// The cookie named `name` a response sets, as `name=value`.
pub fn set_cookie(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// The `Location` of a redirect.
///
/// # Panics
///
/// When there is none, or it is not an absolute URL.
pub fn location(res: &Response) -> Url {
    let location = res
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in the answer ({})", res.status()));
    let location = location
        .to_str()
        .unwrap_or_else(|e| panic!("a Location of text: {e}"));
    Url::parse(location).unwrap_or_else(|e| panic!("Location {location:?}: {e}"))
}

/// The first value of the query parameter `name` of `url`.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `GET url` asking for JSON: the status, and the body as JSON (`null` when it is not).
pub async fn get_json(client: &Client, url: impl IntoUrl) -> (u16, Value) {
    let res = client
        .get(url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET: {e}"));
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `GET url`, which must answer; `what` names it in the panic when it does not.
async fn get(client: &Client, url: impl IntoUrl, what: &str) -> Response {
    client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {what}: {e}"))
}

/// Starts a login at the app's login route `login_route`: asserts the redirect, gives where it
/// sends the browser (the sandbox's login page, or the code flow's `/v1/oauth/authorize`).
pub async fn begin_login(client: &Client, login_route: impl IntoUrl) -> Url {
    let res = get(client, login_route, "the login route").await;
    assert_eq!(res.status(), 302, "the login route redirects");
    location(&res)
}

/// Approves the login `page` (as [`begin_login`] gave it) as the sandbox user `handle`, through
/// the sandbox's `sandbox_user` automation hook: asserts the sandbox's redirect, gives the
/// callback URL it sends the browser to (the answer in its query or fragment). The code flow's
/// `/v1/oauth/authorize` hop, when `page` is that, is followed first.
pub async fn approve(client: &Client, page: &Url, handle: &str) -> Url {
    let mut page = page.clone();
    if page.path().ends_with("/v1/oauth/authorize") {
        let res = get(client, page, "the authorize endpoint").await;
        assert_eq!(res.status(), 302, "the authorize endpoint redirects");
        page = location(&res);
    }
    page.query_pairs_mut().append_pair("sandbox_user", handle);
    let res = get(client, page, "the sandbox's login page").await;
    let status = res.status();
    if status != 302 {
        panic!(
            "the sandbox approves (302), not {status}: {}",
            res.text().await.unwrap_or_default()
        );
    }
    location(&res)
}
