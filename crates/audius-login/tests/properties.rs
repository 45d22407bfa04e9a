#![allow(clippy::unwrap_used)]
//! Property tests (stable `cargo test`) of the functions the fuzzers cover, with the fuzzers'
//! own invariants (`tests/fuzz_regressions/checks.rs`, shared with `fuzz/fuzz_targets/`): token
//! parsing and signer recovery, redirect-URI validation, return-to sanitising, and the API
//! client's answer parsing. The inputs are shaped like the real thing (the token vectors of
//! `testdata/` mutated, URL-like text, JSON answers) as well as arbitrary bytes.

use proptest::prelude::*;
use serde_json::{Value, json};

#[path = "fuzz_regressions/checks.rs"]
mod checks;

const PAYLOADS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/open-redirect-payloads.txt"
);

fn vector_tokens() -> Vec<String> {
    let tokens: Vec<String> = audius_login_testdata::vectors()
        .iter()
        .filter_map(|v| v["token"].as_str().map(str::to_owned))
        .collect();
    assert!(tokens.len() >= 10, "the token vectors are read");
    tokens
}

fn payloads() -> Vec<String> {
    let lines: Vec<String> = std::fs::read_to_string(PAYLOADS)
        .unwrap()
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(lines.len() >= 10, "the open-redirect payloads are read");
    lines
}

/// One edit of a text: overwrite, insert or delete a byte, or cut it.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
        // Bytes that matter to the parsers.
        (
            any::<usize>(),
            prop::sample::select(b".=-_/\\:@#?%\0 ".to_vec())
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
    ];
    prop::collection::vec(edit, 0..6)
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Set(i, b) if len > 0 => bytes[i % len] = b,
            Edit::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Edit::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Edit::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
    bytes
}

/// URL-like text: schemes, slashes, userinfo, hosts, traversal and encodings in any order.
fn urlish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "https:",
        "http:",
        "javascript:",
        "data:",
        "file:",
        "postmessage",
        "//",
        "/",
        "\\",
        "@",
        "evil.example",
        "app.example",
        "localhost",
        "127.0.0.1",
        "[::1]",
        "10.0.0.1",
        ":8080",
        "..",
        "%2e%2e",
        "%2f",
        "%5c",
        "#",
        "?",
        "&",
        "=",
        " ",
        "\t",
        "\n",
        "\u{3002}",
        "%00",
        "user:pw",
        "a",
        "callback",
        "0x7f000001",
    ]);
    prop::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// JSON answers shaped like the API's: `{"data": ..}` with user-ish or claims-ish objects.
fn api_json() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9_ .@:/-]{0,16}".prop_map(Value::String),
        Just(json!("eYorL")),
        Just(json!("0x3037e3b5f929cb92d4f2443ddd31af1d9af3e754")),
    ];
    let key = prop::sample::select(vec![
        "id",
        "userId",
        "handle",
        "name",
        "verified",
        "wallet",
        "erc_wallet",
        "email",
        "iat",
        "profile_picture",
        "profilePicture",
        "manager",
        "grant",
        "is_approved",
        "is_revoked",
        "user_id",
        "grantee_address",
        "error",
        "code",
    ]);
    let object = prop::collection::vec((key, scalar.clone()), 0..10).prop_map(|pairs| {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    });
    prop_oneof![
        object.clone().prop_map(|o| json!({ "data": o })),
        prop::collection::vec(object.clone(), 0..3).prop_map(|l| json!({ "data": l })),
        object.clone(),
        scalar.prop_map(|s| json!({ "data": s })),
        (object.clone(), object).prop_map(|(m, g)| json!({"data": [{"manager": m, "grant": g}]})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn token_invariants_on_mutated_vectors(
        pick in any::<prop::sample::Index>(),
        edits in edits(),
    ) {
        let tokens = vector_tokens();
        let token = pick.get(&tokens);
        checks::token(&apply(token, &edits));
    }

    #[test]
    fn token_invariants_on_segments(
        segments in prop::collection::vec("[A-Za-z0-9_=+/-]{0,48}", 0..5),
    ) {
        checks::token(segments.join(".").as_bytes());
    }

    #[test]
    fn token_invariants_on_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        checks::token(&data);
    }

    #[test]
    fn user_id_text_through_the_token_checks(text in "[0-9]{0,24}|[A-Za-z0-9]{0,16}") {
        checks::token(text.as_bytes());
    }

    #[test]
    fn redirect_uri_invariants(text in urlish()) {
        checks::redirect_uri(text.as_bytes());
    }

    #[test]
    fn redirect_uri_invariants_on_mutated_payloads(
        pick in any::<prop::sample::Index>(),
        edits in edits(),
    ) {
        let lines = payloads();
        checks::redirect_uri(&apply(pick.get::<String>(&lines), &edits));
    }

    #[test]
    fn return_to_invariants(text in urlish()) {
        checks::return_to(text.as_bytes());
        checks::return_to(format!("/{text}").as_bytes());
    }

    #[test]
    fn return_to_invariants_on_mutated_payloads(
        pick in any::<prop::sample::Index>(),
        edits in edits(),
    ) {
        let lines = payloads();
        checks::return_to(&apply(pick.get::<String>(&lines), &edits));
    }

    #[test]
    fn api_response_invariants(status in any::<u8>(), body in api_json()) {
        let mut data = vec![status];
        data.extend_from_slice(body.to_string().as_bytes());
        checks::api_response(&data);
    }

    #[test]
    fn api_response_invariants_on_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        checks::api_response(&data);
    }
}
