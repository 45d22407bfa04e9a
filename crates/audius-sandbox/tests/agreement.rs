//! The core crate's verifiers, pointed at the sandbox, agree with the sandbox's own
//! `verify_token` answer on every case: the same profile, or the same error kind.
#![allow(clippy::unwrap_used)]

mod common;

use audius_login::{
    ApiClient, ApiVerifier, ErrorKind, LocalVerifier, ProfilePicture, VerifiedProfile, Verifier,
};
use audius_login_testdata::vectors;
use audius_sandbox::{Sandbox, SandboxHandle, TokenOverrides};
use common::{http, verify};
use serde_json::{Value, json};

/// What the sandbox's answer means, by the mapping of spec section 4.1.
fn sandbox_kind(status: u16, body: &Value) -> Result<(), ErrorKind> {
    match status {
        200 => Ok(()),
        400 => Err(ErrorKind::Malformed),
        403 => Err(ErrorKind::WalletMismatch),
        404 if body["error"]
            .as_str()
            .unwrap()
            .contains("could not be recovered") =>
        {
            Err(ErrorKind::BadSignature)
        }
        404 => Err(ErrorKind::WalletMismatch),
        other => panic!("unexpected status {other}: {body}"),
    }
}

/// The fields both verifiers must agree on.
fn essentials(p: &VerifiedProfile) -> Value {
    json!({
        "user_id": p.user_id.get(),
        "handle": p.handle,
        "name": p.name,
        "email": p.email,
        "verified": p.verified,
        "picture": p.profile_picture,
        "wallet": p.wallet,
        "issued_at": p.issued_at.map(|t| t.unix_timestamp()),
    })
}

struct Verifiers {
    api: ApiVerifier,
    local: LocalVerifier,
}

fn verifiers(sandbox: &SandboxHandle) -> Verifiers {
    let client = ApiClient::new(sandbox.base_url()).unwrap();
    Verifiers {
        api: ApiVerifier::new(client.clone()),
        local: LocalVerifier::new(client),
    }
}

/// Runs a token through the sandbox and both verifiers; returns the agreed profile, if any.
async fn agree(sandbox: &SandboxHandle, v: &Verifiers, token: &str, case: &str) -> Option<Value> {
    let (status, body) = verify(&http(), &sandbox.base_url(), token).await;
    let expected = sandbox_kind(status, &body);
    let api = v.api.verify(token).await;
    let local = v.local.verify(token).await;
    let kind = |r: &Result<VerifiedProfile, audius_login::Error>| {
        r.as_ref().map(|_| ()).map_err(audius_login::Error::kind)
    };
    assert_eq!(
        kind(&api),
        expected,
        "{case}: api verifier vs sandbox ({body})"
    );
    assert_eq!(
        kind(&local),
        expected,
        "{case}: local verifier vs sandbox ({body})"
    );
    match (api, local) {
        (Ok(a), Ok(l)) => {
            assert_eq!(essentials(&a), essentials(&l), "{case}: profiles differ");
            // The API verifier saw the endpoint's claims: the whole payload, iat as a string.
            assert_eq!(
                Value::Object(a.claims.as_map().clone()),
                body["data"],
                "{case}: claims"
            );
            Some(essentials(&a))
        }
        _ => None,
    }
}

#[tokio::test]
async fn verifiers_agree_with_the_sandbox() {
    let sandbox = Sandbox::builder().hosts(2).start().await.unwrap();
    let v = verifiers(&sandbox);
    let user = |h| sandbox.user(h).unwrap();
    let picture = |h: &str| {
        ProfilePicture::from_json(Some(&json!({
            "150x150": sandbox.base_url().join(&format!("content/{h}/150x150.svg")).unwrap().as_str(),
            "480x480": sandbox.base_url().join(&format!("content/{h}/480x480.svg")).unwrap().as_str(),
            "1000x1000": sandbox.base_url().join(&format!("content/{h}/1000x1000.svg")).unwrap().as_str(),
            "mirrors": [sandbox.host_urls()[1].as_str().trim_end_matches('/')],
        })))
    };

    // A valid user.
    let listener = user("listener");
    let token = sandbox.mint_token(listener, TokenOverrides::default().iat(1_700_000_000));
    let p = agree(&sandbox, &v, &token, "listener").await.unwrap();
    assert_eq!(
        p,
        json!({
            "user_id": 44, "handle": "listener", "name": "Lena Listener",
            "email": "listener@sandbox.audius.invalid", "verified": false,
            "picture": picture("listener"), "wallet": listener.wallet,
            "issued_at": 1_700_000_000,
        })
    );

    // The artist: verified from the record.
    let token = sandbox.mint_token(user("artist"), TokenOverrides::default());
    let p = agree(&sandbox, &v, &token, "artist").await.unwrap();
    assert_eq!(p["verified"], true);
    assert_eq!(p["handle"], "artist");

    // No picture: null in the API, {} in the token, none in the profile.
    let token = sandbox.mint_token(user("nopicture"), TokenOverrides::default());
    let p = agree(&sandbox, &v, &token, "nopicture").await.unwrap();
    assert_eq!(p["picture"], Value::Null);

    // A forged `verified` claim does not make the listener verified.
    let token = sandbox.mint_token(
        listener,
        TokenOverrides::default().claim("verified", json!(true)),
    );
    let p = agree(&sandbox, &v, &token, "forged verified")
        .await
        .unwrap();
    assert_eq!(p["verified"], false);
    // Nor does a forged name or handle: the record wins, only the email comes from the token.
    let token = sandbox.mint_token(
        listener,
        TokenOverrides::default()
            .claim("name", json!("Someone Famous"))
            .claim("handle", json!("famous"))
            .claim("email", json!("me@example.com")),
    );
    let p = agree(&sandbox, &v, &token, "forged name").await.unwrap();
    assert_eq!(
        (p["name"].as_str(), p["handle"].as_str()),
        (Some("Lena Listener"), Some("listener"))
    );
    assert_eq!(p["email"], "me@example.com");

    // A manager signing for the managed account.
    let managed = user("managed");
    let token = sandbox.mint_token(
        managed,
        TokenOverrides::default().signed_by(user("manager")),
    );
    let p = agree(&sandbox, &v, &token, "manager").await.unwrap();
    assert_eq!(p["handle"], "managed");
    assert_eq!(p["wallet"], json!(managed.wallet));
    let local = v.local.verify(&token).await.unwrap();
    assert_eq!(local.signer, Some(user("manager").wallet));

    // Refusals.
    let refusals = [
        (
            "revoked manager",
            managed,
            TokenOverrides::default().signed_by(user("revoked")),
        ),
        (
            "wrong user",
            user("artist"),
            TokenOverrides::default().signed_by(listener),
        ),
        (
            "manager for another account",
            user("artist"),
            TokenOverrides::default().signed_by(user("manager")),
        ),
        (
            "unknown wallet",
            listener,
            TokenOverrides::default().signing_key([0x42; 32]),
        ),
        (
            "numeric userId",
            listener,
            TokenOverrides::default().claim("userId", json!(44)),
        ),
        (
            "bad userId",
            listener,
            TokenOverrides::default().claim("userId", json!("!!")),
        ),
        (
            "no userId",
            listener,
            TokenOverrides::default().remove_claim("userId"),
        ),
        (
            "unknown user id signed by a known wallet",
            listener,
            TokenOverrides::default().claim("userId", json!("999999")),
        ),
    ];
    for (case, who, overrides) in refusals {
        let token = sandbox.mint_token(who, overrides);
        assert!(
            agree(&sandbox, &v, &token, case).await.is_none(),
            "{case} must be refused"
        );
    }

    // A tampered token: the payload changed after signing.
    let token = sandbox.mint_token(listener, TokenOverrides::default());
    let parts: Vec<&str> = token.split('.').collect();
    let forged =
        audius_login::token::encode_segment(br#"{"userId":"OeJ7n","verified":true,"iat":1}"#);
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert!(agree(&sandbox, &v, &tampered, "tampered").await.is_none());

    // Every vector as given (unknown wallets, malformed, unrecoverable).
    for vec in vectors() {
        let name = vec["name"].as_str().unwrap();
        assert!(
            agree(&sandbox, &v, vec["token"].as_str().unwrap(), name)
                .await
                .is_none(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn verifiers_agree_on_deactivated_accounts_and_managers() {
    use audius_login::UserId;
    use audius_sandbox::{Grant, Role, SandboxUser, SandboxUsers};
    // `gone`: a deactivated account, managed by `manager`; `exmanager`: a deactivated manager
    // with an approved grant to `managed`.
    let users = SandboxUsers::builtin()
        .with_user(
            SandboxUser::new(300u64, "gone", "Gone Away", Role::Listener)
                .unwrap()
                .deactivated(true),
        )
        .unwrap()
        .with_user(
            SandboxUser::new(301u64, "exmanager", "Ex Manager", Role::Manager)
                .unwrap()
                .deactivated(true),
        )
        .unwrap()
        .with_grant(Grant::new(UserId::new(300), UserId::new(200), true, false))
        .unwrap()
        .with_grant(Grant::new(UserId::new(201), UserId::new(301), true, false))
        .unwrap();
    let sandbox = Sandbox::builder().users(users).start().await.unwrap();
    let v = verifiers(&sandbox);
    let user = |h| sandbox.user(h).unwrap();
    let cases = [
        ("a deactivated account's own token", user("gone"), None, 404),
        (
            "a manager's token for a deactivated account",
            user("gone"),
            Some(user("manager")),
            403,
        ),
        (
            "a deactivated manager's token for an active account",
            user("managed"),
            Some(user("exmanager")),
            404,
        ),
    ];
    for (case, who, signer, status) in cases {
        let overrides = match signer {
            Some(s) => TokenOverrides::default().signed_by(s),
            None => TokenOverrides::default(),
        };
        let token = sandbox.mint_token(who, overrides);
        let (got, _) = verify(&http(), &sandbox.base_url(), &token).await;
        assert_eq!(got, status, "{case}: the sandbox's answer");
        assert!(
            agree(&sandbox, &v, &token, case).await.is_none(),
            "{case} must be refused by both verifiers"
        );
        let local = v.local.verify(&token).await.unwrap_err();
        assert!(local.to_string().contains("deactivated"), "{case}: {local}");
    }
    // The user object says so.
    let gone: Value = http()
        .get(
            sandbox
                .base_url()
                .join("v1/users/")
                .unwrap()
                .join(&user("gone").hashid())
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gone["data"]["is_deactivated"], true);
    // The active accounts are unaffected.
    let token = sandbox.mint_token(
        user("managed"),
        TokenOverrides::default().signed_by(user("manager")),
    );
    assert!(
        agree(&sandbox, &v, &token, "active manager")
            .await
            .is_some()
    );
}
