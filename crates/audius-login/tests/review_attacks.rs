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

// =============================================================================================
// FINDING: Audius compares user ids as int32; the API verifier trusts the echoed userId
// =============================================================================================

mod int32 {
    use std::time::Duration;

    use audius_login::token::{decode_segment, wallet_of_secret_key};
    use audius_login::{
        ApiClient, ApiVerifier, PreparedToken, ProfileSource, Token, UserId, Verifier,
        VerifyOptions,
    };
    use serde_json::{Map, Value, json};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use url::Url;

    /// The key of user 44 in this model of Audius.
    const USER_44_KEY: [u8; 32] = [0x11; 32];

    /// `GET /v1/users/verify_token` as Audius' Go server answers it (AudiusProject/api,
    /// `v1UsersVerifyToken`): the signer's user is looked up by wallet, the payload's `userId`
    /// is decoded (`trashid.DecodeHashId`: decimal first, then hashid), and the two are
    /// compared **as int32** (`int32(walletUserId) != int32(jwtUserId)`); on success the whole
    /// payload is echoed, `iat` as a string. One user here: id 44, the wallet of
    /// [`USER_44_KEY`].
    fn verify_token_like_go(token: &str) -> (u16, Value) {
        let Ok(prepared) = PreparedToken::parse(token, 16 * 1024) else {
            return (
                400,
                json!({"code": 400, "error": "Invalid JWT token format"}),
            );
        };
        if prepared.signer() != wallet_of_secret_key(&USER_44_KEY).unwrap() {
            return (
                404,
                json!({"code": 404, "error": "The JWT signature is invalid - invalid wallet"}),
            );
        }
        let wallet_user_id: i64 = 44;
        let payload_segment = token.split('.').nth(1).unwrap();
        let mut payload: Map<String, Value> =
            serde_json::from_slice(&decode_segment(payload_segment).unwrap()).unwrap();
        let jwt_user_id = UserId::parse(payload["userId"].as_str().unwrap())
            .unwrap()
            .get() as i64;
        if wallet_user_id as i32 != jwt_user_id as i32 {
            return (
                403,
                json!({"code": 403, "error": "The JWT signature is invalid - the wallet does not match the user"}),
            );
        }
        if let Some(Value::Number(n)) = payload.get("iat").cloned() {
            payload.insert("iat".into(), Value::String(n.to_string()));
        }
        (200, json!({ "data": payload }))
    }

    async fn serve_like_go() -> Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&head);
                    let target = head.split(' ').nth(1).unwrap_or("/");
                    let url = Url::parse(&format!("http://stub{target}")).unwrap();
                    let (status, body) = if url.path() == "/v1/users/verify_token" {
                        let token = url
                            .query_pairs()
                            .find(|(k, _)| k == "token")
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default();
                        verify_token_like_go(&token)
                    } else {
                        (404, json!({"code": 404, "error": "not here"}))
                    };
                    let body = body.to_string();
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Url::parse(&format!("http://{addr}")).unwrap()
    }

    fn token(user_id: &str) -> String {
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({"userId": user_id, "handle": "me", "sub": user_id, "iat": iat});
        Token::sign(claims.as_object().unwrap(), &USER_44_KEY).unwrap()
    }

    /// User 44 signs tokens for user ids 44 + k × 2³² (as decimal or hashid). Audius accepts
    /// them (int32 compare) and echoes the payload; the API verifier with
    /// `ProfileSource::TokenClaims` then signs user 44 in as user 4294967340, 8589934636, ...:
    /// identities Audius never verified, as many as user 44 likes. (With the default
    /// `ProfileSource::UserRecord` the lookup of that id refuses; the local verifier compares
    /// full ids.) Audius' ids are int4 in its database: an id of 2³¹ or more can only be this.
    ///
    /// FAILS today (the verifier accepts user 4294967340).
    #[tokio::test]
    async fn api_verifier_refuses_user_ids_audius_compares_as_another_user() {
        let base = serve_like_go().await;
        let verifier = ApiVerifier::new(ApiClient::new(base).unwrap()).options(
            VerifyOptions::default()
                .max_age(Some(Duration::from_secs(300)))
                .profile_source(ProfileSource::TokenClaims),
        );
        // The model is right about the ordinary case.
        let own = verifier
            .verify(&token(&UserId::new(44).hashid()))
            .await
            .unwrap();
        assert_eq!(own.user_id.get(), 44);
        let phantom = (1u64 << 32) + 44;
        for spelling in [phantom.to_string(), UserId::new(phantom).hashid()] {
            let result = verifier.verify(&token(&spelling)).await;
            assert!(
                result.is_err(),
                "{spelling}: signed in as user {:?}, which Audius verified as user 44",
                result.map(|p| p.user_id.get())
            );
        }
    }
}
