//! The open-redirect lists of `testdata/` through the redirect-URI rules and the return-to
//! sanitiser, and property tests of the parsers that take untrusted text.

use audius_login::RedirectUri;
use audius_login::return_to::sanitize_return_to;
use percent_encoding::percent_decode_str;
use url::{Host, Url};

const PAYLOADS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/open-redirect-payloads.txt"
);
const WORDLIST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/open-redirect-wordlist.txt"
);

/// Every non-empty line of both lists, with the file it came from.
fn lines() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (name, path) in [("payloads", PAYLOADS), ("wordlist", WORDLIST)] {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("testdata {name} list is readable: {e}"));
        let before = out.len();
        // Lines are used exactly as written (no trimming: a leading space or tab is part of
        // the attack); only the line terminator is dropped.
        for line in text.split('\n') {
            if !line.is_empty() {
                out.push((name, line.to_owned()));
            }
        }
        assert!(out.len() > before, "{name} list is empty");
    }
    out
}

const APP: &str = "https://app.example/";

/// A sanitised return-to joined on the app's origin stays on it, and is a plain path.
fn assert_same_origin(input: &str, kept: &str) {
    assert!(
        kept.starts_with('/') && !kept.starts_with("//") && !kept.starts_with("/\\"),
        "{input:?} kept as {kept:?}: not a plain path"
    );
    let base = Url::parse(APP).expect("static URL");
    let joined = base
        .join(kept)
        .unwrap_or_else(|e| panic!("{input:?} kept as {kept:?} does not join: {e}"));
    assert_eq!(
        joined.origin(),
        base.origin(),
        "{input:?} kept as {kept:?} leaves the origin: {joined}"
    );
    assert!(
        joined.username().is_empty() && joined.password().is_none(),
        "{input:?} kept as {kept:?} adds userinfo: {joined}"
    );
}

fn has_traversal(text: &str) -> bool {
    text.contains("/..") || text.contains("\\..")
}

#[test]
fn open_redirect_lists_as_redirect_uri() {
    let mut accepted = Vec::new();
    let mut refused = 0usize;
    for (list, line) in lines() {
        match RedirectUri::parse(&line) {
            Err(e) => {
                refused += 1;
                assert!(
                    !e.message().is_empty(),
                    "{list}: {line:?}: refusal without words"
                );
            }
            Ok(RedirectUri::PostMessage) => panic!("{list}: {line:?} accepted as postmessage"),
            Ok(RedirectUri::Url(url)) => {
                assert!(
                    matches!(url.scheme(), "http" | "https"),
                    "{list}: {line:?} accepted with scheme {:?}",
                    url.scheme()
                );
                assert!(
                    matches!(url.host(), Some(Host::Domain(d)) if !d.is_empty()),
                    "{list}: {line:?} accepted without a domain host: {url}"
                );
                assert!(
                    url.username().is_empty() && url.password().is_none(),
                    "{list}: {line:?} accepted with userinfo: {url}"
                );
                assert!(
                    url.fragment().is_none() && !line.contains('#'),
                    "{list}: {line:?} accepted with a fragment"
                );
                let decoded = percent_decode_str(&line).decode_utf8_lossy();
                assert!(
                    !has_traversal(&line) && !has_traversal(&decoded),
                    "{list}: {line:?} accepted with a traversal"
                );
                assert!(
                    !has_traversal(url.as_str())
                        && !has_traversal(&percent_decode_str(url.as_str()).decode_utf8_lossy()),
                    "{list}: {line:?} accepted as {url}, which has a traversal"
                );
                // An independent parse of the input agrees: it is that http(s) URL, and the
                // normalised form is accepted as itself.
                assert_eq!(
                    Url::parse(&line).ok().as_ref(),
                    Some(&url),
                    "{list}: {line:?}: accepted form differs from the URL parse"
                );
                assert_eq!(
                    RedirectUri::parse(url.as_str()),
                    Ok(RedirectUri::Url(url.clone())),
                    "{list}: {line:?}: normalised form {url} is not accepted as itself"
                );
                accepted.push(line);
            }
        }
    }
    println!(
        "redirect_uri: {} accepted, {refused} refused; accepted: {accepted:#?}",
        accepted.len()
    );
    assert!(refused > 0);
}

#[test]
fn open_redirect_lists_as_return_to() {
    let mut kept = Vec::new();
    let mut refused = 0usize;
    for (list, line) in lines() {
        match sanitize_return_to(&line) {
            None => refused += 1,
            Some(out) => {
                assert_same_origin(&line, &out);
                assert_eq!(
                    sanitize_return_to(&out).as_deref(),
                    Some(out.as_str()),
                    "{list}: {line:?}: sanitising is not idempotent"
                );
                kept.push((line, out));
            }
        }
    }
    println!(
        "return_to: {} kept, {refused} refused; kept: {kept:#?}",
        kept.len()
    );
    assert!(refused > 0);
}

mod properties {
    use super::*;
    use audius_login::{Token, UserId};
    use proptest::prelude::*;
    use serde_json::json;

    /// Pieces that matter to URL parsers, glued together in any order.
    fn urlish() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "/",
            "//",
            "\\",
            "/\\",
            ".",
            "..",
            "/..",
            "%2e",
            "%2E%2e",
            "%2f",
            "%2F",
            "%5c",
            "%5C",
            "%25",
            "%",
            "%0",
            "%09",
            "%0d%0a",
            "%00",
            "\t",
            "\n",
            " ",
            "?",
            "#",
            "&",
            "=",
            "@",
            ":",
            ";",
            "http:",
            "https:",
            "HTTPS://",
            "javascript:",
            "data:",
            "myapp:",
            "example.com",
            "evil.example",
            "app.example",
            "127.0.0.1",
            "0x7f.1",
            "2130706433",
            "[::1]",
            "[::ffff:10.0.0.1]",
            "10.0.0.1",
            "user:pw@",
            "a",
            "B",
            "0",
            "~",
            "\u{e9}",
            "\u{3002}",
            "\u{ff0f}",
            "\u{2215}",
            "postmessage",
        ]);
        prop::collection::vec(piece, 0..14).prop_map(|v| v.concat())
    }

    /// Arbitrary text, or text built from URL-significant pieces.
    fn input() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[ -~]{0,40}", urlish()]
    }

    fn payload_map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().expect("an object").clone()
    }

    /// A valid token signed with a key derived from `seed`, for mutation.
    fn valid_token(seed: u8, id: u32) -> String {
        let mut key = [seed | 1; 32];
        key[0] = 0x11;
        let claims = payload_map(json!({
            "userId": UserId::new(u64::from(id)).hashid(),
            "email": "a@example.com",
            "name": "A",
            "handle": "a",
            "verified": false,
            "profilePicture": null,
            "apiKey": null,
            "sub": UserId::new(u64::from(id)).hashid(),
            "iat": 1_764_288_000,
        }));
        Token::sign(&claims, &key).expect("valid key")
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Insert(usize, char),
        Delete(usize),
        Truncate(usize),
        Swap(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (
                any::<usize>(),
                prop::sample::select(vec!['.', '=', '+', '/', '-', '_', 'A', '0', '\u{e9}', ' '])
            )
                .prop_map(|(i, c)| Mutation::Insert(i, c)),
            any::<usize>().prop_map(Mutation::Delete),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        ]
    }

    fn mutate(token: &str, mutations: &[Mutation]) -> String {
        let mut bytes = token.as_bytes().to_vec();
        for m in mutations {
            let len = bytes.len().max(1);
            match *m {
                Mutation::Flip(i, b) if !bytes.is_empty() => bytes[i % len] ^= b,
                Mutation::Insert(i, c) => {
                    let mut buf = [0u8; 4];
                    let at = i % (bytes.len() + 1);
                    bytes.splice(at..at, c.encode_utf8(&mut buf).bytes());
                }
                Mutation::Delete(i) if !bytes.is_empty() => {
                    bytes.remove(i % len);
                }
                Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
                Mutation::Swap(a, b) if !bytes.is_empty() => bytes.swap(a % len, b % len),
                _ => {}
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn all_digit_hashid_reads_as_decimal() {
        let id = UserId::new(1_732_491_246);
        assert_eq!(id.hashid(), "5262031");
        assert_eq!(UserId::from_hashid("5262031"), Ok(id));
        assert_eq!(UserId::parse("5262031"), Ok(UserId::new(5_262_031)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn return_to_stays_on_origin_and_is_idempotent(input in input()) {
            if let Some(out) = sanitize_return_to(&input) {
                assert_same_origin(&input, &out);
                prop_assert_eq!(sanitize_return_to(&out), Some(out.clone()), "input {:?}", input);
                // Also on a base with a path and a port.
                let base = Url::parse("http://app.example:8080/deep/page?q=1").expect("static");
                let joined = base.join(&out).expect("joins");
                prop_assert_eq!(joined.origin(), base.origin());
            }
        }

        #[test]
        fn redirect_uri_output_reparses_to_itself(input in input()) {
            if let Ok(uri) = RedirectUri::parse(&input) {
                let again = RedirectUri::parse(uri.as_str());
                prop_assert_eq!(again.as_ref(), Ok(&uri), "input {:?} gave {}", input, uri);
                if let RedirectUri::Url(url) = &uri {
                    prop_assert!(url.fragment().is_none());
                    prop_assert!(url.username().is_empty() && url.password().is_none());
                    prop_assert!(!has_traversal(url.as_str()));
                }
            }
        }

        #[test]
        fn token_parsers_never_panic_on_text(input in input()) {
            let parsed = Token::parse(&input);
            let recovered = Token::parse_and_recover(&input, 16 * 1024);
            // Whatever is refused is refused with a typed error; what parses keeps its text.
            if let Ok(t) = &parsed {
                prop_assert_eq!(t.as_str(), input.as_str());
            }
            if let Ok((t, _)) = &recovered {
                prop_assert!(parsed.is_ok());
                prop_assert_eq!(t.as_str(), input.as_str());
            }
        }

        #[test]
        fn token_parsers_never_panic_on_mutated_tokens(
            seed in any::<u8>(),
            // Audius' ids are below 2^31 (larger ones are refused: see `UserId::MAX`).
            id in 0u32..=(i32::MAX as u32),
            mutations in prop::collection::vec(mutation(), 1..6),
        ) {
            let good = valid_token(seed, id);
            let bad = mutate(&good, &mutations);
            let parsed = Token::parse(&bad);
            let recovered = Token::parse_and_recover(&bad, 16 * 1024);
            // Both decoders agree on whether the text parses as a token at all when the
            // signature recovers; and a token that is byte-for-byte the original recovers the
            // original signer.
            if let (Ok(t), Ok((_, signer))) = (&parsed, &recovered) {
                prop_assert_eq!(t.recover_signer().ok(), Some(*signer));
            }
            if bad == good {
                prop_assert!(recovered.is_ok());
            }
        }

        #[test]
        fn user_id_parse_never_panics(input in prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9]{0,16}",
            "[0-9]{0,24}",
        ]) {
            if let Ok(id) = UserId::parse(&input) {
                // What parses is a decimal id (tried first, as Audius does) or the canonical
                // hashid of the number.
                let decimal = input.bytes().all(|b| b.is_ascii_digit())
                    .then(|| input.parse::<u64>().ok())
                    .flatten();
                match decimal {
                    Some(n) => prop_assert_eq!(id.get(), n, "{:?}", input),
                    None => prop_assert_eq!(id.hashid(), input.clone()),
                }
            }
        }

        /// Every id of 2^31 or more (up to 2^32 here) is refused in both spellings, typed.
        #[test]
        fn ids_of_2_pow_31_and_more_are_refused(n in (1u64 << 31)..(1u64 << 32)) {
            let id = UserId::new(n);
            prop_assert_eq!(UserId::parse(&n.to_string()).err().and_then(|e| e.out_of_range()), Some(n));
            prop_assert_eq!(
                UserId::from_hashid(&id.hashid()).err().and_then(|e| e.out_of_range()),
                Some(n)
            );
        }

        #[test]
        fn hashid_round_trips_for_every_user_id(n in 0u32..=(i32::MAX as u32)) {
            let id = UserId::new(u64::from(n));
            let hash = id.hashid();
            prop_assert!(hash.len() >= 5, "{} -> {:?}", n, hash);
            prop_assert_eq!(UserId::from_hashid(&hash), Ok(id));
            if hash.bytes().all(|b| b.is_ascii_digit()) {
                // A hashid made of digits only (1732491246 is "5262031") is read as the
                // number it spells by Audius' decoder, and so by `parse`.
                let spelled: u64 = hash.parse().expect("at most 12 digits");
                prop_assert_eq!(UserId::parse(&hash), Ok(UserId::new(spelled)));
            } else {
                prop_assert_eq!(UserId::parse(&hash), Ok(id));
                prop_assert_eq!(hash.parse::<UserId>(), Ok(id));
            }
            // The decimal form names the same user.
            prop_assert_eq!(UserId::parse(&n.to_string()), Ok(id));
        }
    }
}
