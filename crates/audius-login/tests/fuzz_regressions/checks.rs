//! The fuzz targets' invariants, shared: `fuzz/fuzz_targets/<target>.rs` runs these functions
//! on libFuzzer's inputs, and `tests/fuzz_regressions.rs` runs them on every input kept in
//! `tests/fuzz_regressions/<target>/` (crashes found, fixed and kept), in `cargo test`.
//!
//! Each function panics when an invariant is broken (what the fuzzer reports as a crash).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use audius_login::RedirectUri;
use audius_login::client::StatusCode;
use audius_login::defaults::MAX_RETURN_TO_LEN;
use audius_login::return_to::sanitize_return_to;
use audius_login::token::{Signature, decode_segment};
use audius_login::verify::ManagerGrant;
use audius_login::{ApiResponse, ApiUser, ApiVerifier, ErrorKind, Token, UserId};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use serde_json::Value;
use url::{Host, Url};

const LIMIT: usize = 16 * 1024;

/// Token parsing and signer recovery: `Token::parse`, `Token::parse_and_recover` (the server's
/// order), `Signature::from_segment`, `UserId::parse`, `Claims` serialisation.
///
/// Invariants: no panic; every refusal is a typed token error; what parses keeps its text; the
/// two decoders agree on the signer whenever either recovers one.
pub fn token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let parsed = Token::parse(text);
    let recovered = Token::parse_and_recover(text, LIMIT);
    for error in [parsed.as_ref().err(), recovered.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert!(
            matches!(
                error.kind(),
                ErrorKind::Malformed | ErrorKind::BadSignature | ErrorKind::TooLarge
            ),
            "unexpected error kind {:?} for {text:?}",
            error.kind()
        );
        assert!(!error.to_string().is_empty());
    }
    if let Ok(token) = &parsed {
        assert_eq!(token.as_str(), text);
        assert!(token.signing_input().len() < text.len());
        let _ = token.header();
        let claims = serde_json::to_value(token.claims()).expect("claims serialise");
        assert!(claims.get("userId").is_some(), "userId kept");
        let _ = token.claims().issued_at();
        // Parsing then recovering agrees with the server-order decoder.
        let signer = token.recover_signer().ok();
        let server = recovered.as_ref().ok().map(|(_, s)| *s);
        assert_eq!(signer, server, "decoders disagree on {text:?}");
    }
    if let Ok((token, signer)) = &recovered {
        assert_eq!(token.as_str(), text);
        assert!(
            parsed.is_ok(),
            "server order accepted what parse refused: {text:?}"
        );
        assert_eq!(token.recover_signer().ok(), Some(*signer));
    }

    // The pieces on their own.
    if let Some(third) = text.rsplit('.').next()
        && let Ok(sig) = Signature::from_segment(third)
    {
        assert_eq!(
            Signature::from_segment(&sig.to_segment()).ok(),
            Some(sig),
            "signature segment round trip"
        );
        let _ = sig.recover(text.as_bytes());
    }
    if let Some(first) = text.split('.').next() {
        let _ = decode_segment(first);
    }
    if let Ok(id) = UserId::parse(text) {
        // `from_hashid` decodes at most 12 characters (every id below 3.9e18); a decimal id
        // above that parses, but its 13-character hashid is not decoded back (documented cap).
        let hashid = id.hashid();
        if hashid.len() <= 12 {
            assert_eq!(UserId::from_hashid(&hashid), Ok(id));
        }
    }
}

fn traversal(text: &str) -> bool {
    text.contains("/..") || text.contains("\\..")
}

/// Redirect-URI validation (spec section 5): `RedirectUri::parse`.
///
/// Invariants: no panic; what is accepted is `postmessage` or a URL without fragment, userinfo
/// or traversal (before and after percent-decoding), not of a refused scheme, whose host is not
/// a non-loopback IP; its normalised text is accepted as itself; refusals say why.
pub fn redirect_uri(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    match RedirectUri::parse(text) {
        Err(e) => assert!(!e.message().is_empty(), "refusal without words: {text:?}"),
        Ok(RedirectUri::PostMessage) => assert!(text.eq_ignore_ascii_case("postmessage")),
        Ok(RedirectUri::Url(url)) => {
            assert!(url.fragment().is_none(), "{text:?} kept a fragment");
            assert!(!text.contains('#'), "{text:?} accepted with a #");
            assert!(url.username().is_empty() && url.password().is_none());
            assert!(
                !matches!(url.scheme(), "javascript" | "data" | "vbscript" | "file"),
                "{text:?} accepted with scheme {}",
                url.scheme()
            );
            let decoded = percent_decode_str(text).decode_utf8_lossy();
            assert!(
                !traversal(text) && !traversal(&decoded),
                "{text:?}: traversal"
            );
            assert!(
                !traversal(url.as_str()),
                "{text:?} normalised to {url}: traversal"
            );
            match url.host() {
                Some(Host::Ipv4(ip)) => assert!(ip.is_loopback(), "{text:?}: IP host {ip}"),
                Some(Host::Ipv6(ip)) => assert!(ip.is_loopback(), "{text:?}: IP host {ip}"),
                _ => {}
            }
            let again = RedirectUri::parse(url.as_str());
            assert_eq!(
                again,
                Ok(RedirectUri::Url(url.clone())),
                "{text:?}: normalised form {url} not accepted as itself"
            );
        }
    }
}

/// Return-to sanitising: `sanitize_return_to`.
///
/// Invariants: no panic; what is kept is a plain path that, joined on any base, stays on the
/// base's origin without userinfo; sanitising is idempotent; no control characters, spaces or
/// backslashes survive.
pub fn return_to(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let Some(kept) = sanitize_return_to(text) else {
        return;
    };
    assert!(text.len() <= MAX_RETURN_TO_LEN);
    assert!(
        kept.starts_with('/') && !kept.starts_with("//"),
        "{text:?} -> {kept:?}"
    );
    assert!(
        kept.bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'\\'),
        "{text:?} -> {kept:?}: invisible or backslash"
    );
    for base in [
        "https://app.example/",
        "http://app.example:8080/deep/page?q=1#frag",
        "http://127.0.0.1:3000/a/b/",
    ] {
        let base = Url::parse(base).expect("static URL");
        let joined = base.join(&kept).expect("a kept path joins");
        assert_eq!(
            joined.origin(),
            base.origin(),
            "{text:?} -> {kept:?} -> {joined}"
        );
        assert!(joined.username().is_empty() && joined.password().is_none());
    }
    assert_eq!(
        sanitize_return_to(&kept).as_deref(),
        Some(kept.as_str()),
        "not idempotent: {text:?} -> {kept:?}"
    );
}

const STATUSES: [u16; 12] = [200, 200, 200, 200, 400, 403, 404, 404, 429, 500, 503, 302];

/// The API client's answer parsing: `ApiVerifier::interpret` (a `verify_token` answer),
/// `ApiResponse::error_message` and `json`, `ApiUser::from_json`, `ManagerGrant::from_json`.
///
/// The first byte picks the HTTP status, the rest is the body. Invariants: no panic; a 200 is
/// either claims or `UpstreamUnexpected`; each error status maps to its typed error; a user read
/// keeps the object it came from.
pub fn api_response(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES
        .get(usize::from(first))
        .copied()
        .unwrap_or(100 + u16::from(first) * 2);
    let answer = ApiResponse {
        // Every status picked is in 100..=610, all valid.
        status: StatusCode::from_u16(status).expect("a status in 100..=999"),
        body: Bytes::copy_from_slice(body),
        host: Url::parse("http://api.example").expect("static URL"),
        location: None,
    };
    let message = answer.error_message();
    assert!(!message.is_empty());
    let value = answer.json::<Value>();
    match ApiVerifier::interpret(&answer) {
        Ok(claims) => {
            assert_eq!(status, 200);
            let data = value.as_ref().expect("claims come from JSON");
            assert!(
                data.pointer("/data/userId").is_some(),
                "claims without data.userId"
            );
            let _ = serde_json::to_value(&claims).expect("claims serialise");
        }
        Err(e) => {
            let kind = e.kind();
            match status {
                200 => assert_eq!(kind, ErrorKind::UpstreamUnexpected),
                400 => assert_eq!(kind, ErrorKind::Malformed),
                403 => assert_eq!(kind, ErrorKind::WalletMismatch),
                404 => assert!(matches!(
                    kind,
                    ErrorKind::BadSignature
                        | ErrorKind::WalletMismatch
                        | ErrorKind::UpstreamUnexpected
                )),
                429 | 500..=599 => assert_eq!(kind, ErrorKind::UpstreamUnavailable),
                _ => assert!(matches!(
                    kind,
                    ErrorKind::UpstreamUnexpected | ErrorKind::UpstreamUnavailable
                )),
            }
            assert!((400..600).contains(&e.suggested_status()));
        }
    }
    if let Ok(value) = value {
        for candidate in [Some(&value), value.get("data")].into_iter().flatten() {
            if let Some(user) = ApiUser::from_json(candidate) {
                assert_eq!(Some(&user.raw), candidate.as_object());
                assert_eq!(
                    Some(user.handle.as_str()),
                    candidate.get("handle").and_then(Value::as_str)
                );
            }
            if let Some(list) = candidate.as_array() {
                for entry in list {
                    if let Some(grant) = ManagerGrant::from_json(entry)
                        && grant.is_active()
                    {
                        assert!(grant.is_approved && !grant.is_revoked);
                    }
                }
            }
            let _ = ManagerGrant::from_json(candidate);
        }
    }
}
