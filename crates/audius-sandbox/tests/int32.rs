//! Audius' ids are `int4`, and its Go `verify_token` compares `int32(walletUserId)` with
//! `int32(jwtUserId)`: a token user 44 signs for user id `44 + k × 2^32` is verified as user
//! 44's, and its payload (the large id in it) echoed back. The sandbox answers as Go does; the
//! core crate refuses such ids when it parses a token, before any request.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use audius_login::{
    ApiClient, ApiVerifier, ErrorKind, LocalVerifier, ProfileSource, UserId, Verifier,
    VerifyOptions,
};
use audius_sandbox::{Sandbox, TokenOverrides};
use common::{http, verify};
use serde_json::json;

#[tokio::test]
async fn the_sandbox_compares_user_ids_as_go_does_and_the_verifiers_refuse() {
    let sandbox = Sandbox::builder().start().await.unwrap();
    let listener = sandbox.user("listener").unwrap().clone();
    let id = listener.id.get();
    let phantom = (1u64 << 32) + id;
    let client = http();
    let api = ApiVerifier::new(ApiClient::new(sandbox.base_url()).unwrap()).options(
        VerifyOptions::default()
            .max_age(Some(Duration::from_secs(300)))
            .profile_source(ProfileSource::TokenClaims),
    );
    let local = LocalVerifier::new(ApiClient::new(sandbox.base_url()).unwrap());
    for spelling in [phantom.to_string(), UserId::new(phantom).hashid()] {
        let token = sandbox.mint_token(
            &listener,
            TokenOverrides::default()
                .claim("userId", json!(spelling))
                .claim("sub", json!(spelling)),
        );
        // The sandbox, as Go: the same user as far as int32 goes; the payload echoed.
        let (status, body) = verify(&client, &sandbox.base_url(), &token).await;
        assert_eq!(status, 200, "{spelling}: {body}");
        assert_eq!(body["data"]["userId"], json!(spelling));
        // The verifiers: refused as malformed, before any request.
        sandbox.clear_requests();
        for (which, result) in [
            ("api", api.verify(&token).await),
            ("local", local.verify(&token).await),
        ] {
            let e = result.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Malformed, "{which} {spelling}: {e}");
            assert!(e.to_string().contains("2^31"), "{which}: {e}");
        }
        assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());
    }
    // Another user's id that agrees in its low 32 bits is still another user: 403.
    let artist = sandbox.user("artist").unwrap().clone();
    let token = sandbox.mint_token(
        &listener,
        TokenOverrides::default().claim(
            "userId",
            json!(((1u64 << 32) + artist.id.get()).to_string()),
        ),
    );
    assert_eq!(verify(&client, &sandbox.base_url(), &token).await.0, 403);
    sandbox.stop().await;
}
