//! The token vectors of the repository's `testdata/tokens.json`, for the tests that read them
//! (`conformance`, `agreement`). Kept out of `common` because those tests, and this module, read
//! a file outside this crate and are left out of its package (`exclude` in `Cargo.toml`).
#![allow(dead_code)]

use serde_json::Value;

/// The vectors of testdata/tokens.json.
pub(crate) fn vectors() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tokens.json");
    let text = std::fs::read_to_string(path).expect("testdata/tokens.json is readable");
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
