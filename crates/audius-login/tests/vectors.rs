//! Every vector of `testdata/tokens.json` (signed by eth-account, an independent
//! implementation) through the library.

#![allow(clippy::unwrap_used)]

use audius_login::{ErrorKind, Token, UserId, Wallet};
use audius_login_testdata::{tokens_document, vectors};

#[test]
fn every_vector() {
    let vectors = vectors();
    assert!(vectors.len() >= 26, "expected the full vector set");
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let token = v["token"].as_str().unwrap();
        let expect = &v["expect"];
        let parsed = Token::parse(token).and_then(|t| {
            let signer = t.recover_signer()?;
            Ok((t, signer))
        });
        // The server-order decoder agrees with parse-then-recover on every vector.
        let server_order = Token::parse_and_recover(token, 16 * 1024);
        assert_eq!(
            parsed.as_ref().map(|(_, s)| *s).map_err(|e| e.kind()),
            server_order.as_ref().map(|(_, s)| *s).map_err(|e| e.kind()),
            "{name}: decoders disagree"
        );
        if expect["ok"] == true {
            let (t, signer) = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(not) = expect.get("signer_is_not") {
                let not: Wallet = not.as_str().unwrap().parse().unwrap();
                assert_ne!(
                    signer, not,
                    "{name}: tampered token must not recover the original signer"
                );
                continue;
            }
            let want: Wallet = expect["signer"].as_str().unwrap().parse().unwrap();
            assert_eq!(signer, want, "{name}: signer");
            assert_eq!(
                signer.to_string(),
                expect["signer"].as_str().unwrap(),
                "{name}: lower-case hex"
            );
            let claims = t.claims();
            assert_eq!(
                claims.user_id.get(),
                expect["user_id"].as_u64().unwrap(),
                "{name}: user id"
            );
            assert_eq!(
                claims.user_id.hashid(),
                expect["user_id_hash"].as_str().unwrap(),
                "{name}: hashid"
            );
            // Claims exactly as signed, every unknown claim kept.
            assert_eq!(
                serde_json::to_value(claims).unwrap(),
                expect["claims"],
                "{name}: claims"
            );
            let c = &expect["claims"];
            assert_eq!(
                claims.email.as_deref(),
                c["email"].as_str(),
                "{name}: email"
            );
            assert_eq!(
                claims.handle.as_deref(),
                c["handle"].as_str(),
                "{name}: handle"
            );
            assert_eq!(claims.name.as_deref(), c["name"].as_str(), "{name}: name");
            assert_eq!(
                claims.verified,
                c["verified"].as_bool().unwrap(),
                "{name}: verified"
            );
            assert_eq!(claims.iat, c["iat"].as_i64(), "{name}: iat");
            assert_eq!(
                claims.api_key.as_deref(),
                c["apiKey"].as_str(),
                "{name}: apiKey"
            );
            let has_picture = c["profilePicture"]
                .as_object()
                .is_some_and(|o| !o.is_empty());
            assert_eq!(
                claims.profile_picture.is_some(),
                has_picture,
                "{name}: picture"
            );
            if let Some(p) = &claims.profile_picture {
                assert_eq!(p.small.as_deref(), c["profilePicture"]["150x150"].as_str());
                assert_eq!(
                    p.mirrors.len(),
                    c["profilePicture"]["mirrors"]
                        .as_array()
                        .map_or(0, Vec::len)
                );
            }
            for (k, val) in c.as_object().unwrap() {
                let documented = [
                    "userId",
                    "email",
                    "name",
                    "handle",
                    "verified",
                    "profilePicture",
                    "apiKey",
                    "sub",
                    "iat",
                ];
                if !documented.contains(&k.as_str()) {
                    assert_eq!(
                        claims.extra.get(k),
                        Some(val),
                        "{name}: unknown claim {k} kept"
                    );
                }
            }
            assert_eq!(
                claims.sub,
                Some(UserId::new(expect["user_id"].as_u64().unwrap())),
                "{name}: sub"
            );
        } else {
            let kind = match expect["error"].as_str().unwrap() {
                "malformed" => ErrorKind::Malformed,
                "bad_signature" => ErrorKind::BadSignature,
                other => panic!("unknown error kind {other}"),
            };
            let err = parsed.expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
        }
    }
}

#[test]
fn hashid_example_of_the_spec() {
    let doc = tokens_document();
    for (num, hash) in doc["hashids"]["example"].as_object().unwrap() {
        let id = UserId::new(num.parse().unwrap());
        assert_eq!(id.hashid(), hash.as_str().unwrap());
    }
}
