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

/// The vectors of shared/testdata/tokens.json.
pub(crate) fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/tokens.json"
    );
    let text = std::fs::read_to_string(path).expect("shared/testdata/tokens.json is readable");
    let doc: Value = serde_json::from_str(&text).expect("tokens.json is JSON");
    doc["vectors"].as_array().expect("vectors list").clone()
}

/// A vector by name.
pub(crate) fn vector(name: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
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
