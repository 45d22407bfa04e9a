//! The API around verify_token: users, managers, discovery, health, CORS, pictures, the
//! sandbox's own endpoints, users files and the builder.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use audius_login::clock::ManualClock;
use audius_login::verify::{ApiUser, ManagerGrant};
use audius_login::{ApiClient, LocalVerifier, UserId, Verifier};
use audius_sandbox::derive_wallet;
use audius_sandbox::{Role, Sandbox, SandboxError, SandboxUsers, TokenOverrides};
use common::http;
use serde_json::{Value, json};
use url::Url;

async fn get_json(url: Url) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = http().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap();
    (status, headers, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn users_by_id_and_handle() {
    let sandbox = Sandbox::builder().hosts(3).start().await.unwrap();
    let base = sandbox.base_url();
    for user in sandbox.users() {
        let (status, headers, by_id) =
            get_json(base.join(&format!("v1/users/{}", user.hashid())).unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(headers["content-type"], "application/json");
        let (_, _, by_handle) = get_json(
            base.join(&format!("v1/users/handle/{}", user.handle.to_uppercase()))
                .unwrap(),
        )
        .await;
        assert_eq!(by_id, by_handle, "{}", user.handle);
        let data = &by_id["data"];
        assert_eq!(data["id"], user.hashid());
        assert_eq!(data["handle"], user.handle.as_str());
        assert_eq!(data["name"], user.name.as_str());
        assert_eq!(data["is_verified"], user.verified);
        assert_eq!(data["wallet"], user.wallet.to_string());
        assert_eq!(data["erc_wallet"], user.wallet.to_string());
        assert_eq!(
            data["wallet"].as_str().unwrap(),
            data["wallet"].as_str().unwrap().to_lowercase()
        );
        let spl = data["spl_wallet"].as_str().unwrap();
        assert!(
            (32..=44).contains(&spl.len())
                && spl
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() && !b"0OIl".contains(&b))
        );
        if user.has_picture {
            let pic = &data["profile_picture"];
            for size in ["150x150", "480x480", "1000x1000"] {
                let url = pic[size].as_str().unwrap();
                assert_eq!(
                    url,
                    base.join(&format!("content/{}/{size}.svg", user.handle))
                        .unwrap()
                        .as_str()
                );
                let resp = http().get(url).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.headers()["content-type"], "image/svg+xml");
                assert!(resp.text().await.unwrap().starts_with("<svg"));
            }
            let mirrors: Vec<String> = sandbox.host_urls()[1..]
                .iter()
                .map(|u| u.as_str().trim_end_matches('/').to_owned())
                .collect();
            assert_eq!(pic["mirrors"], json!(mirrors));
        } else {
            assert_eq!(data["profile_picture"], Value::Null);
            let resp = http()
                .get(
                    base.join(&format!("content/{}/150x150.svg", user.handle))
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 404);
        }
        // The core crate reads it.
        let api_user = ApiUser::from_json(data).unwrap();
        assert_eq!(api_user.id, user.id);
        assert_eq!(api_user.wallet, Some(user.wallet));
        assert_eq!(api_user.is_verified, user.verified);
        assert_eq!(api_user.profile_picture.is_some(), user.has_picture);
        // Every host answers the same.
        for host in &sandbox.host_urls()[1..] {
            let (_, _, other) =
                get_json(host.join(&format!("v1/users/{}", user.hashid())).unwrap()).await;
            assert_eq!(other, by_id);
        }
    }
    let (status, _, body) = get_json(base.join("v1/users/handle/nobody").unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], 404);
    let (status, _, body) = get_json(
        base.join(&format!("v1/users/{}", UserId::new(999).hashid()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("not found"));
    let (status, _, body) = get_json(base.join("v1/users/!!bad!!").unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 400);
    let (status, _, _) = get_json(base.join("v1/users/!!bad!!/managers").unwrap()).await;
    assert_eq!(status, 400);
    let (status, _, body) = get_json(base.join("v1/nothing/here").unwrap()).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(404)));
    let resp = http()
        .get(base.join("content/artist/64x64.svg").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn managers_in_the_shape_the_core_reads() {
    let sandbox = Sandbox::start().await.unwrap();
    let managed = sandbox.user("managed").unwrap();
    let url = sandbox
        .base_url()
        .join(&format!("v1/users/{}/managers", managed.hashid()))
        .unwrap();
    let (status, _, body) = get_json(url).await;
    assert_eq!(status, 200);
    let list = body["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for entry in list {
        let grant = &entry["grant"];
        for key in [
            "grantee_address",
            "user_id",
            "is_revoked",
            "is_approved",
            "created_at",
            "updated_at",
        ] {
            assert!(grant.get(key).is_some(), "{key}");
        }
        assert_eq!(grant["user_id"], managed.hashid());
        assert_eq!(grant["grantee_address"], entry["manager"]["wallet"]);
        time::OffsetDateTime::parse(
            grant["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
    }
    let grants: Vec<ManagerGrant> = list
        .iter()
        .map(|e| ManagerGrant::from_json(e).unwrap())
        .collect();
    let manager = sandbox.user("manager").unwrap();
    let revoked = sandbox.user("revoked").unwrap();
    assert_eq!(grants[0].grantee, manager.wallet);
    assert_eq!(grants[0].manager_id, Some(manager.id));
    assert!(grants[0].is_active());
    assert_eq!(grants[1].grantee, revoked.wallet);
    assert!(grants[1].is_approved && grants[1].is_revoked && !grants[1].is_active());
    // Others have no managers; unknown users are 404.
    let (status, _, body) = get_json(
        sandbox
            .base_url()
            .join(&format!("v1/users/{}/managers", UserId::new(7).hashid()))
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({"data": []})));
    let (status, _, _) = get_json(
        sandbox
            .base_url()
            .join(&format!("v1/users/{}/managers", UserId::new(999).hashid()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn discovery_health_cors_and_the_sandbox_endpoints() {
    let sandbox = Sandbox::builder().hosts(2).start().await.unwrap();
    let hosts = sandbox.host_urls();
    let (status, headers, body) = get_json(hosts[1].clone()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], "*");
    let listed: Vec<String> = hosts
        .iter()
        .map(|h| h.as_str().trim_end_matches('/').to_owned())
        .collect();
    assert_eq!(body, json!({ "data": listed }));

    let (status, _, body) = get_json(hosts[1].join("health_check").unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["healthy"], true);
    assert_eq!(body["data"]["service"], "audius-sandbox");
    assert_eq!(body["data"]["host"], 1);

    // Preflight.
    let resp = http()
        .request(
            reqwest::Method::OPTIONS,
            hosts[0].join("v1/users/verify_token").unwrap(),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization, x-custom")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(
        resp.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_eq!(
        resp.headers()["access-control-allow-headers"],
        "authorization, x-custom"
    );

    // /_sandbox/users.
    let (status, _, body) = get_json(hosts[0].join("_sandbox/users").unwrap()).await;
    assert_eq!(status, 200);
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 6);
    assert_eq!(
        list[1],
        json!({
            "handle": "artist", "id": 7, "hashid": "OeJ7n", "name": "Ari Artist",
            "email": "artist@sandbox.audius.invalid", "wallet": derive_wallet("artist").to_string(),
            "verified": true, "has_picture": true, "deactivated": false, "role": "artist",
        })
    );

    // The request log records what was asked, with headers of interest.
    sandbox.clear_requests();
    http()
        .get(hosts[1].join("v1/users/handle/artist?x=1").unwrap())
        .header("origin", "https://app.example")
        .header("authorization", "Bearer secret")
        .header("user-agent", "test-agent")
        .send()
        .await
        .unwrap();
    let log = sandbox.requests();
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(
        (r.host, r.method.as_str(), r.path.as_str()),
        (1, "GET", "/v1/users/handle/artist")
    );
    assert_eq!(r.query.as_deref(), Some("x=1"));
    assert_eq!(r.origin.as_deref(), Some("https://app.example"));
    assert_eq!(r.user_agent.as_deref(), Some("test-agent"));
    assert!(r.authorization);
    assert!(
        !format!("{r:?}").contains("secret"),
        "the authorization value is not kept"
    );

    // Over-long URIs are refused, not read.
    let long = format!("v1/users/verify_token?token={}", "a".repeat(50 * 1024));
    let resp = http()
        .get(hosts[0].join(&long).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 414);
    let long = format!("v1/users/verify_token?token={}", "a".repeat(40 * 1024));
    let resp = http()
        .get(hosts[0].join(&long).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "a token over the endpoint's own limit");

    // The environment points the core crate at the sandbox.
    let env = sandbox.environment();
    assert_eq!(env.login_page(), sandbox.login_page_url());
    assert_eq!(env.api(), hosts[0]);
    assert_eq!(sandbox.login_page_url().path(), "/oauth/auth");
}

#[tokio::test]
async fn minted_tokens_follow_the_clock_and_the_overrides() {
    let clock = Arc::new(ManualClock::at_unix(1_764_288_000));
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let artist = sandbox.user("artist").unwrap();
    let claims = sandbox.claims_for(artist);
    assert_eq!(claims["iat"], 1_764_288_000);
    clock.advance(Duration::from_secs(60));
    let token = sandbox.mint_token(artist, TokenOverrides::default());
    let parsed = audius_login::Token::parse(&token).unwrap();
    assert_eq!(parsed.claims().iat, Some(1_764_288_060));
    // Deterministic signatures: same user, same second, same token.
    assert_eq!(token, sandbox.mint_token(artist, TokenOverrides::default()));

    let token = sandbox.mint_token(
        artist,
        TokenOverrides::default()
            .iat(5)
            .claim("name", json!("Changed"))
            .claim("extra", json!({"a": 1}))
            .remove_claim("email")
            .header(&json!({"alg": "ES256K"})),
    );
    let parsed = audius_login::Token::parse(&token).unwrap();
    let keys: Vec<&str> = parsed
        .claims()
        .as_map()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "userId",
            "name",
            "handle",
            "verified",
            "profilePicture",
            "apiKey",
            "sub",
            "iat",
            "extra"
        ]
    );
    assert_eq!(parsed.claims().name.as_deref(), Some("Changed"));
    assert_eq!(parsed.claims().iat, Some(5));
    assert_eq!(parsed.header().unwrap().get("alg"), Some(&json!("ES256K")));
    assert_eq!(parsed.recover_signer().unwrap(), artist.wallet);

    // An invalid custom key is an error, not a panic, through try_mint_token.
    let err = sandbox
        .try_mint_token(artist, TokenOverrides::default().signing_key([0; 32]))
        .unwrap_err();
    assert!(matches!(err, SandboxError::Signing(_)), "{err}");

    // The core's local verifier, with an age limit on the same clock, sees the sandbox's time.
    let client = ApiClient::new(sandbox.base_url()).unwrap();
    let verifier = LocalVerifier::new(client).options(
        audius_login::VerifyOptions::default()
            .max_age(Some(Duration::from_secs(300)))
            .clock(clock.clone()),
    );
    let fresh = sandbox.mint_token(artist, TokenOverrides::default());
    assert!(verifier.verify(&fresh).await.is_ok());
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        verifier.verify(&fresh).await.unwrap_err().kind(),
        audius_login::ErrorKind::Stale
    );
}

#[tokio::test]
async fn users_files_and_builder_errors() {
    let dir = std::env::temp_dir().join(format!("audius-sandbox-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        path
    };
    let extend = write(
        "extend.json",
        r#"{"mode": "extend",
            "users": [{"handle": "dj", "name": "Dee Jay", "id": 300, "verified": true, "role": "artist",
                       "managers": [{"manager": "manager"}]}],
            "apps": [{"name": "File App", "api_key": "0x00112233445566778899AABBCCDDEEFF00112233",
                      "redirect_uris": ["http://localhost:3000/cb"]}]}"#,
    );
    let sandbox = Sandbox::builder()
        .users_file(&extend)
        .start()
        .await
        .unwrap();
    assert_eq!(sandbox.users().len(), 7);
    let dj = sandbox.user("dj").unwrap();
    assert_eq!(dj.role, Role::Artist);
    assert_eq!(dj.wallet, derive_wallet("dj"));
    // The manager may sign for dj now.
    let token = sandbox.mint_token(
        dj,
        TokenOverrides::default().signed_by(sandbox.user("manager").unwrap()),
    );
    let (status, _) = common::verify(&http(), &sandbox.base_url(), &token).await;
    assert_eq!(status, 200);
    // The file's app is registered for the code flow.
    let mut url = sandbox.login_page_url();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "00112233445566778899aabbccddeeff00112233"),
        ("redirect_uri", "http://localhost:3000/cb"),
        ("scope", "read"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
    ]);
    let page = http().get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("File App"));
    sandbox.stop().await;

    let replace = write(
        "replace.json",
        r#"{"mode": "replace", "users": [{"handle": "solo", "name": "Solo", "id": 5,
            "secret_key": "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"}]}"#,
    );
    let sandbox = Sandbox::builder()
        .users_file(&replace)
        .start()
        .await
        .unwrap();
    assert_eq!(sandbox.users().len(), 1);
    assert_eq!(
        sandbox.user("solo").unwrap().wallet.to_string(),
        // The address of this well-known test key.
        "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"
    );
    sandbox.stop().await;

    // Invalid files: clear errors, never a panic.
    for (name, text, needle) in [
        ("bad-json.json", "{", "EOF"),
        (
            "dup.json",
            r#"[{"handle": "artist", "name": "A", "id": 1000}]"#,
            "handle",
        ),
        ("typo.json", r#"{"userz": []}"#, "unknown field"),
    ] {
        let path = write(name, text);
        let err = Sandbox::builder()
            .users_file(&path)
            .start()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains(needle), "{name}: {msg}");
    }
    let err = Sandbox::builder()
        .users_file(dir.join("missing.json"))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::UsersFileIo { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    // Builder errors.
    assert!(Sandbox::builder().hosts(0).start().await.is_err());
    assert!(Sandbox::builder().hosts(65).start().await.is_err());
    assert!(
        Sandbox::builder()
            .users(SandboxUsers::empty())
            .start()
            .await
            .is_err()
    );
    let taken = Sandbox::start().await.unwrap();
    let err = Sandbox::builder()
        .bind(taken.base_url().socket_addrs(|| None).unwrap()[0])
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::Bind { .. }), "{err}");
    assert!(
        Sandbox::builder()
            .bind("127.0.0.1:65535".parse().unwrap())
            .hosts(2)
            .start()
            .await
            .is_err(),
        "ports past 65535"
    );
}

#[tokio::test]
async fn builder_errors_name_the_setting() {
    let setting = |err: SandboxError| match err {
        SandboxError::Config(e) => e.setting,
        other => panic!("not a configuration error: {other}"),
    };
    for hosts in [0, 65] {
        let err = Sandbox::builder().hosts(hosts).start().await.unwrap_err();
        assert!(err.to_string().contains("hosts"), "{err}");
        assert_eq!(setting(err), "hosts");
    }
    let err = Sandbox::builder()
        .users(SandboxUsers::empty())
        .start()
        .await
        .unwrap_err();
    assert_eq!(setting(err), "users");
    let err = Sandbox::builder()
        .bind("127.0.0.1:65535".parse().unwrap())
        .hosts(2)
        .start()
        .await
        .unwrap_err();
    assert_eq!(setting(err), "bind");
}
