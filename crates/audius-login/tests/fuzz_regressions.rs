#![allow(clippy::unwrap_used)]
//! Every input the fuzzers (`fuzz/`) found a crash with, kept in
//! `tests/fuzz_regressions/<target>/` and replayed here through the same invariants the fuzz
//! target checks (`tests/fuzz_regressions/checks.rs`, shared with `fuzz/fuzz_targets/`): no
//! panic, a typed result. A new crash input is added by copying libFuzzer's `crash-*` file into
//! the target's directory under a name that says what it found.

use std::path::PathBuf;

#[path = "fuzz_regressions/checks.rs"]
mod checks;

/// The kept inputs of `target`, with their names.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Replays every kept input of `target` through `check`, naming the input that fails.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let inputs = inputs(target);
    for (name, data) in &inputs {
        let outcome = std::panic::catch_unwind(|| check(data));
        assert!(
            outcome.is_ok(),
            "fuzz regression {target}/{name} fails again (input: {:?})",
            String::from_utf8_lossy(data)
        );
    }
    inputs.len()
}

#[test]
fn token_crash_inputs_stay_fixed() {
    assert!(
        replay("token", checks::token) >= 1,
        "the kept token inputs are read"
    );
}

#[test]
fn redirect_uri_crash_inputs_stay_fixed() {
    replay("redirect_uri", checks::redirect_uri);
}

#[test]
fn return_to_crash_inputs_stay_fixed() {
    replay("return_to", checks::return_to);
}

#[test]
fn api_response_crash_inputs_stay_fixed() {
    replay("api_response", checks::api_response);
}

/// The first crash the token fuzzer found: a decimal user id above the hashid decoder's cap.
/// Since user ids of 2^31 or more are refused (Audius' ids are `int4`, compared as `int32` by
/// its Go server), `UserId::parse` refuses it, typed (`out_of_range`), and its 13-character
/// hashid is refused by `from_hashid` (typed, not a panic or a wrong id).
#[test]
fn decimal_id_beyond_the_hashid_cap_is_typed() {
    use audius_login::UserId;
    let text = "9999999999999998989";
    let refused = UserId::parse(text).unwrap_err();
    assert_eq!(refused.out_of_range(), Some(9_999_999_999_999_998_989));
    let hashid = UserId::new(9_999_999_999_999_998_989).hashid();
    assert!(hashid.len() > 12, "{hashid}");
    assert!(UserId::from_hashid(&hashid).is_err());
    // Up to the largest id, hashids round-trip; above it, they are refused, typed.
    for n in [1, 7, 44, UserId::MAX] {
        let id = UserId::new(n);
        let hashid = id.hashid();
        assert!(hashid.len() <= 12, "{n}: {hashid}");
        assert_eq!(UserId::from_hashid(&hashid), Ok(id), "{n}");
    }
    for n in [UserId::MAX + 1, u64::from(u32::MAX), 1_000_000_000_000_000] {
        let hashid = UserId::new(n).hashid();
        assert_eq!(
            UserId::from_hashid(&hashid).unwrap_err().out_of_range(),
            Some(n),
            "{n}"
        );
    }
}

/// The first crash the redirect-URI fuzzer found: a percent-encoded host that the URL parser
/// decodes to one with a backtick (`http://googl\`./`), accepted although its normal form (what
/// is sent to Audius) was refused. Refused now, by the character rule after normalisation.
#[test]
fn percent_encoded_host_with_a_forbidden_character_is_refused() {
    use audius_login::RedirectUri;
    use audius_login::redirect_uri::RedirectRule;
    for input in [
        "http://%67%6f%6f%67%6c%60%2e/63%6f%6d",
        "https://%60evil.example/cb",
        "http://a%7Bb.example/",
    ] {
        let e = RedirectUri::parse(input).unwrap_err();
        assert_eq!(e.rule(), RedirectRule::Syntax, "{input}: {e}");
        assert!(e.message().contains("after normalisation"), "{input}: {e}");
    }
    // Percent-encoded hosts that decode to ordinary names still work.
    let ok = RedirectUri::parse("http://%6c%6f%63%61%6c%68%6f%73%74:3000/cb").unwrap();
    assert_eq!(ok.as_str(), "http://localhost:3000/cb");
}

/// The second crash the redirect-URI fuzzer found: `itT:/./%2f8` was accepted, but what is sent
/// is its normal form `itt:/%2f8`, whose decoded form `itt://8` has the IP host 0.0.0.8 (the
/// dot segment hid it). The normal form must pass every rule itself: refused now.
#[test]
fn a_normal_form_that_breaks_a_rule_is_refused() {
    use audius_login::RedirectUri;
    use audius_login::redirect_uri::RedirectRule;
    let e = RedirectUri::parse("itT:/./%2f8").unwrap_err();
    assert_eq!(e.rule(), RedirectRule::IpHost, "{e}");
    assert!(e.message().contains("after normalisation"), "{e}");
    // Normalisation that changes nothing a rule looks at is fine.
    let ok = RedirectUri::parse("HTTP://LOCALHOST:3000/a/./b").unwrap();
    assert_eq!(ok.as_str(), "http://localhost:3000/a/b");
}

/// The crash the API-answer fuzzer found: `{"code": 400, "error": ""}` gave an empty error
/// message (a refusal without words). Blank texts are skipped now; the body speaks instead.
#[test]
fn a_blank_error_text_never_gives_an_empty_message() {
    use audius_login::{ApiResponse, ApiVerifier, ErrorKind};
    for body in [
        r#"{"code":400,"error":""}"#,
        r#"{"error":"   ","message":""}"#,
        r#"{"error_description":"","error":"invalid_grant"}"#,
    ] {
        let answer = ApiResponse {
            status: audius_login::client::StatusCode::BAD_REQUEST,
            body: bytes::Bytes::from(body),
            host: url::Url::parse("http://api.example").unwrap(),
            location: None,
        };
        let message = answer.error_message();
        assert!(!message.trim().is_empty(), "{body}");
        let e = ApiVerifier::interpret(&answer).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert!(!e.to_string().trim().is_empty());
    }
    let oauth = ApiResponse {
        status: audius_login::client::StatusCode::BAD_REQUEST,
        body: bytes::Bytes::from(r#"{"error_description":"","error":"invalid_grant"}"#),
        host: url::Url::parse("http://api.example").unwrap(),
        location: None,
    };
    assert_eq!(oauth.error_message(), "invalid_grant");
}

/// The crash the return-to fuzzer found: `/./%2f%2f%67%6f%6f%67%/%` was kept as
/// `/%2f%2f%67%6f%6f%67%/%`, which sanitising again refused (it decodes to `//goog...`): the dot
/// segment hid a protocol-relative start. The normal form must pass every rule itself: refused.
#[test]
fn a_return_to_whose_normal_form_breaks_a_rule_is_refused() {
    use audius_login::return_to::sanitize_return_to;
    assert_eq!(sanitize_return_to("/./%2f%2f%67%6f%6f%67%/%"), None);
    assert_eq!(sanitize_return_to("/./%2f%2fevil.example/"), None);
    assert_eq!(sanitize_return_to("/%2f%2fevil.example/"), None);
    // Dot segments that hide nothing are still normalised away.
    assert_eq!(sanitize_return_to("/a/./b/../c").as_deref(), Some("/a/c"));
}

/// The third crash the redirect-URI fuzzer found: a URI of at most 2,000 characters whose
/// normal form is longer (`https:host/...` gains `//`), so the form actually sent broke the
/// length rule. Refused now.
#[test]
fn a_normal_form_over_the_length_limit_is_refused() {
    use audius_login::RedirectUri;
    use audius_login::redirect_uri::{MAX_REDIRECT_URI_LEN, RedirectRule};
    let head = "https:example.com/";
    let input = format!("{head}{}", "a".repeat(MAX_REDIRECT_URI_LEN - head.len()));
    assert_eq!(input.len(), MAX_REDIRECT_URI_LEN);
    let e = RedirectUri::parse(&input).unwrap_err();
    assert_eq!(e.rule(), RedirectRule::Syntax);
    assert!(e.message().contains("after normalisation"), "{e}");
    // The same URI already in its normal form, at the limit, is accepted.
    let normal = format!(
        "https://example.com/{}",
        "a".repeat(MAX_REDIRECT_URI_LEN - 20)
    );
    assert_eq!(normal.len(), MAX_REDIRECT_URI_LEN);
    assert_eq!(RedirectUri::parse(&normal).unwrap().as_str(), normal);
}

/// The checks themselves catch what they are meant to: a panic in a check is reported with the
/// input's name (the harness above is not vacuous).
#[test]
fn the_replay_harness_reports_a_failing_input() {
    let failed = std::panic::catch_unwind(|| replay("token", |_| panic!("planted")));
    assert!(failed.is_err());
}
