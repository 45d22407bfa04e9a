//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;

/// A client that never follows redirects, with a short timeout.
pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `GET {base}v1/users/verify_token?token=` as status and JSON body.
pub(crate) async fn verify(client: &reqwest::Client, base: &url::Url, token: &str) -> (u16, Value) {
    let mut url = base.join("v1/users/verify_token").unwrap();
    url.query_pairs_mut().append_pair("token", token);
    let resp = client.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("*"),
        "CORS on verify_token"
    );
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}
