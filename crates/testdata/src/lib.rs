//! The token vectors of the repository's `testdata/tokens.json` (see `testdata/README.md`),
//! read in one place for the tests and benches of every crate of the workspace.
//!
//! A dev-dependency only, and never published: the data stays at the repository root, outside
//! every package, so a published crate's test or bench that uses this crate is left out of its
//! package (`exclude` in its `Cargo.toml`), as one that reads `testdata/` itself would be.
//!
//! ```
//! let basic = audius_login_testdata::vector("basic");
//! assert_eq!(basic["expect"]["ok"], true);
//! assert_eq!(audius_login_testdata::vector_token("basic"), basic["token"]);
//! ```

#![forbid(unsafe_code)]

use serde_json::Value;

/// `testdata/tokens.json`, named from this crate.
const TOKENS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tokens.json");

/// The whole of `tokens.json`: the vectors (`vectors`), and the spec's hashid examples
/// (`hashids`).
///
/// # Panics
///
/// When the file cannot be read or is not JSON (a test cannot run without it).
pub fn tokens_document() -> Value {
    let text = std::fs::read_to_string(TOKENS)
        .unwrap_or_else(|e| panic!("testdata/tokens.json is readable: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("testdata/tokens.json is JSON: {e}"))
}

/// Every vector of `tokens.json`, in file order: objects with a `name`, a `token` and what a
/// decoder must report for it (`expect`).
///
/// # Panics
///
/// When the file cannot be read or is not the vector file.
pub fn vectors() -> Vec<Value> {
    let doc = tokens_document();
    match doc.get("vectors").and_then(Value::as_array) {
        Some(vectors) => vectors.clone(),
        None => panic!("testdata/tokens.json has a `vectors` list"),
    }
}

/// The vector called `name`.
///
/// # Panics
///
/// When there is none (or the file cannot be read).
pub fn vector(name: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name} in testdata/tokens.json"))
}

/// The token of the vector called `name`.
///
/// # Panics
///
/// When there is no such vector, or it has no token.
pub fn vector_token(name: &str) -> String {
    match vector(name)["token"].as_str() {
        Some(token) => token.to_owned(),
        None => panic!("the vector {name} has no token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_vector_by_name() {
        let all = vectors();
        assert!(all.len() >= 26, "the full vector set: {}", all.len());
        for v in &all {
            let name = v["name"].as_str().unwrap_or_default();
            assert_eq!(&vector(name), v);
        }
        assert!(vector_token("basic").starts_with("ey"));
    }

    #[test]
    #[should_panic(expected = "no vector no-such-vector")]
    fn an_unknown_name_is_a_clear_panic() {
        vector("no-such-vector");
    }
}
