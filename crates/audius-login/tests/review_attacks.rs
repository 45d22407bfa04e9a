#![allow(clippy::unwrap_used)]
//! An independent review of issue 12's first promise, as a property: *whatever* an attacker
//! does to the text of a token (replace, insert or delete any character, anywhere, from an
//! alphabet of the characters that matter: both base64 alphabets, padding, whitespace, dots,
//! percent signs, hex digits of both cases, `x`), if the parser still accepts the result and it
//! recovers the original signer, it is the same token: the same replay key. Every other
//! accepted result recovers a signer nobody owns (a forged token, refused by the verifiers).
//!
//! `replay_key.rs` checks the spellings the parser is documented to accept; this checks that
//! there are no others.

use audius_login::token::wallet_of_secret_key;
use audius_login::{PreparedToken, Token, UserId};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Characters an attacker would try in a token.
const ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \n\t.%xX";

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    /// Flip the case of the character at this position (hex case, prefix case).
    FlipCase(usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match *edit {
            Edit::Replace(at, c) => {
                if !bytes.is_empty() {
                    bytes[at % len] = c;
                }
            }
            Edit::Insert(at, c) => bytes.insert(at % (len + 1), c),
            Edit::Delete(at) => {
                if !bytes.is_empty() {
                    bytes.remove(at % len);
                }
            }
            Edit::FlipCase(at) => {
                if !bytes.is_empty() {
                    let b = &mut bytes[at % len];
                    if b.is_ascii_lowercase() {
                        *b = b.to_ascii_uppercase();
                    } else {
                        *b = b.to_ascii_lowercase();
                    }
                }
            }
        }
    }
    String::from_utf8(bytes).unwrap()
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = proptest::sample::select(ALPHABET);
    prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(a, c)| Edit::Replace(a, c)),
        (any::<usize>(), c).prop_map(|(a, c)| Edit::Insert(a, c)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::FlipCase),
    ]
}

fn claims(id: u64, iat: i64) -> Map<String, Value> {
    let hashid = UserId::new(id).hashid();
    json!({"userId": hashid, "email": "a@b.c", "apiKey": null, "sub": hashid, "iat": iat})
        .as_object()
        .unwrap()
        .clone()
}

fn secret_key() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>().prop_filter("a valid secp256k1 key", |k| wallet_of_secret_key(k).is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_edit_of_a_token_recovers_its_signer_under_another_key(
        id in 1u64..1_000_000,
        iat in 1_600_000_000i64..1_900_000_000,
        key in secret_key(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let token = Token::sign(&claims(id, iat), &key).unwrap();
        let original = PreparedToken::parse(&token, 16 * 1024).unwrap();
        let edited = apply(&token, &edits);
        if let Ok(prepared) = PreparedToken::parse(&edited, 16 * 1024)
            && prepared.signer() == original.signer()
        {
            prop_assert_eq!(
                prepared.replay_key(),
                original.replay_key(),
                "{:?} turned {} into {}",
                edits,
                token,
                edited
            );
            // Only the signature segment may differ: the signed text is the same.
            prop_assert_eq!(
                prepared.token().signing_input(),
                original.token().signing_input()
            );
        }
    }
}

/// Edits targeted at the signature segment only (where the accepted spellings live): every
/// single-character edit of the segment, tried exhaustively on one token, is refused, or is a
/// forged token (another signer), or the same replay key.
#[test]
fn every_single_edit_of_the_signature_segment() {
    let key = [0x11u8; 32];
    let token = Token::sign(&claims(44, 1_700_000_000), &key).unwrap();
    let original = PreparedToken::parse(&token, 16 * 1024).unwrap();
    let sig_start = token.rfind('.').unwrap() + 1;
    let (mut same, mut other_signer, mut refused) = (0, 0, 0);
    for at in sig_start..=token.len() {
        let mut edits = vec![Edit::Insert(at, b'A')];
        if at < token.len() {
            edits.push(Edit::Delete(at));
            edits.push(Edit::FlipCase(at));
        }
        for &c in ALPHABET {
            if at < token.len() {
                edits.push(Edit::Replace(at, c));
            }
            edits.push(Edit::Insert(at, c));
        }
        for edit in edits {
            let edited = apply(&token, std::slice::from_ref(&edit));
            if edited == token {
                continue;
            }
            match PreparedToken::parse(&edited, 16 * 1024) {
                Err(_) => refused += 1,
                Ok(p) if p.signer() == original.signer() => {
                    assert_eq!(p.replay_key(), original.replay_key(), "{edit:?}: {edited}");
                    same += 1;
                }
                Ok(_) => other_signer += 1,
            }
        }
    }
    println!(
        "single edits of the signature segment: {same} same key, {other_signer} another signer, {refused} refused"
    );
    assert!(refused > 0);
}
