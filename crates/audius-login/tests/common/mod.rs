//! What the core's tests and its bench share: the token vectors of the repository's
//! `testdata/tokens.json` (signed by eth-account, an independent implementation), read here and
//! nowhere else in this crate.

use serde_json::Value;

/// The repository's token vectors (`testdata/README.md`), named from this crate.
const TOKENS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tokens.json");

/// The whole of `testdata/tokens.json` (its `vectors`, and the spec's `hashids` examples).
pub(crate) fn tokens_json() -> Value {
    let text = std::fs::read_to_string(TOKENS).expect("testdata/tokens.json is readable");
    serde_json::from_str(&text).expect("tokens.json is JSON")
}

/// Every vector of `testdata/tokens.json`: objects with a `name`, a `token` and an `expect`.
pub(crate) fn token_vectors() -> Vec<Value> {
    tokens_json()["vectors"]
        .as_array()
        .expect("tokens.json has a vectors list")
        .clone()
}

/// The token of the vector called `name`.
#[allow(dead_code)] // not every test crate that shares this module asks for one by name
pub(crate) fn vector_token(name: &str) -> String {
    token_vectors()
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["token"].as_str())
        .unwrap_or_else(|| panic!("tokens.json has a {name} vector"))
        .to_owned()
}
