#![allow(clippy::unwrap_used)]
//! The replay key is the token's identity, not its spelling: every text the parser accepts for
//! one signed token (signature hex in either case, `0x`/`0X`/no prefix, base64url with or
//! without padding, `v` as 27/28 or 0/1, the high-S twin) parses, recovers the same signer and
//! maps to the same [`ReplayKey`]; and different signed tokens map to different keys.

use audius_login::token::{decode_segment, encode_segment, wallet_of_secret_key};
use audius_login::{PreparedToken, ReplayKey, Token, UserId};
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The order of secp256k1, big-endian.
const N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41,
];

/// `N - s`, big-endian (for `0 < s < N`).
fn negate(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// One way of writing a token's signature segment.
#[derive(Debug, Clone, Copy, Default)]
struct Spelling {
    upper_hex: bool,
    /// `0x`, `0X` or none.
    prefix: &'static str,
    /// base64url with `=` padding (only changes the text when the length needs it).
    padded: bool,
    /// `v` as 0/1 instead of 27/28.
    v_raw: bool,
    /// The high-S twin: `s' = N - s`, the recovery id flipped.
    high_s: bool,
}

/// Every spelling worth trying, the canonical one (lower hex, `0x`, unpadded, 27/28, low S)
/// first.
fn spellings() -> Vec<Spelling> {
    let mut all = Vec::new();
    for high_s in [false, true] {
        for v_raw in [false, true] {
            for prefix in ["0x", "0X", ""] {
                for upper_hex in [false, true] {
                    for padded in [false, true] {
                        all.push(Spelling {
                            upper_hex,
                            prefix,
                            padded,
                            v_raw,
                            high_s,
                        });
                    }
                }
            }
        }
    }
    all
}

/// The token `canonical` with its signature written as `spelling` says.
fn respell(canonical: &str, spelling: Spelling) -> String {
    let (signed, segment) = canonical.rsplit_once('.').unwrap();
    let text = decode_segment(segment).unwrap();
    let mut bytes = hex::decode(&text[2..]).unwrap();
    assert_eq!(bytes.len(), 65);
    assert!(bytes[64] == 27 || bytes[64] == 28, "canonical v is 27/28");
    if spelling.high_s {
        let twin = negate(&bytes[32..64]);
        bytes[32..64].copy_from_slice(&twin);
        bytes[64] = 27 + ((bytes[64] - 27) ^ 1); // 27 <-> 28
    }
    if spelling.v_raw {
        bytes[64] -= 27;
    }
    let mut hex_text = hex::encode(&bytes);
    if spelling.upper_hex {
        hex_text = hex_text.to_ascii_uppercase();
    }
    let text = format!("{}{hex_text}", spelling.prefix);
    let segment = if spelling.padded {
        base64::engine::general_purpose::URL_SAFE.encode(text.as_bytes())
    } else {
        encode_segment(text.as_bytes())
    };
    format!("{signed}.{segment}")
}

fn sign(claims: &Map<String, Value>, key: &[u8; 32]) -> String {
    Token::sign(claims, key).unwrap()
}

fn key_of(text: &str) -> (ReplayKey, audius_login::Wallet) {
    let prepared = PreparedToken::parse(text, 16 * 1024)
        .unwrap_or_else(|e| panic!("every spelling parses: {e}: {text}"));
    (*prepared.replay_key(), prepared.signer())
}

#[test]
fn the_spellings_are_different_texts_of_one_token() {
    let key = [0x11u8; 32];
    let claims = json!({"userId": "eYorL", "iat": 1_700_000_000});
    let canonical = sign(claims.as_object().unwrap(), &key);
    let texts: std::collections::BTreeSet<String> = spellings()
        .into_iter()
        .map(|s| respell(&canonical, s))
        .collect();
    // Padding only shows where the length needs it (no prefix: 130 bytes; with `0x`, 132 bytes
    // encode without it), so 48 spellings give 32 distinct texts.
    assert_eq!(texts.len(), 32);
    assert!(texts.contains(&canonical));
    let (want, signer) = key_of(&canonical);
    assert_eq!(signer, wallet_of_secret_key(&key).unwrap());
    for text in &texts {
        assert_eq!(key_of(text), (want, signer), "{text}");
    }
    // The key is the documented one.
    let token = Token::parse(&canonical).unwrap();
    assert_eq!(want, ReplayKey::for_token(token.signing_input(), &signer));
}

fn claims_strategy() -> impl Strategy<Value = Map<String, Value>> {
    (
        1u64..1_000_000_000,
        0i64..4_000_000_000,
        proptest::option::of("[a-z0-9_]{0,12}"),
        proptest::option::of("[ -~]{0,40}"),
        proptest::option::of("[0-9a-f]{40}"),
        any::<bool>(),
    )
        .prop_map(|(id, iat, handle, name, api_key, verified)| {
            let mut c = Map::new();
            let hashid = UserId::new(id).hashid();
            c.insert("userId".into(), json!(hashid));
            if let Some(h) = handle {
                c.insert("handle".into(), json!(h));
            }
            if let Some(n) = name {
                c.insert("name".into(), json!(n));
            }
            c.insert("verified".into(), json!(verified));
            c.insert("apiKey".into(), api_key.map_or(Value::Null, Value::from));
            c.insert("sub".into(), json!(hashid));
            c.insert("iat".into(), json!(iat));
            c
        })
}

fn secret_key() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>().prop_filter("a valid secp256k1 key", |k| wallet_of_secret_key(k).is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_accepted_spelling_maps_to_one_key(
        claims in claims_strategy(),
        key in secret_key(),
    ) {
        let canonical = sign(&claims, &key);
        let (want, signer) = key_of(&canonical);
        prop_assert_eq!(signer, wallet_of_secret_key(&key).unwrap());
        for spelling in spellings() {
            let text = respell(&canonical, spelling);
            let (got, got_signer) = key_of(&text);
            prop_assert_eq!(got_signer, signer, "{:?}", spelling);
            prop_assert_eq!(got, want, "{:?}", spelling);
        }
    }

    #[test]
    fn different_signed_tokens_have_different_keys(
        claims in claims_strategy(),
        key in secret_key(),
        other_key in secret_key(),
    ) {
        let canonical = sign(&claims, &key);
        let (want, _) = key_of(&canonical);
        // Another signed text (one more claim).
        let mut more = claims.clone();
        more.insert("n".into(), json!(1));
        prop_assert_ne!(key_of(&sign(&more, &key)).0, want);
        // The same text signed by another key.
        if other_key != key {
            prop_assert_ne!(key_of(&sign(&claims, &other_key)).0, want);
        }
        // A consumed state never shares a token's key.
        prop_assert_ne!(ReplayKey::for_state(&canonical), want);
    }
}
