//! Faults as the core client sees them: fail-over, typed errors, discovery re-reads; and the
//! fault controls themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use audius_login::{ApiClient, ApiVerifier, Error, ErrorKind, Verifier};
use audius_sandbox::{Fault, Sandbox, SandboxHandle, TokenOverrides};
use common::http;
use serde_json::{Value, json};
use url::Url;

const VERIFY: &str = "/v1/users/verify_token";
const TIMEOUT: Duration = Duration::from_millis(300);

fn list_client(sandbox: &SandboxHandle) -> ApiClient {
    ApiClient::builder()
        .hosts(sandbox.host_urls())
        .timeout(TIMEOUT)
        .build()
        .unwrap()
}

fn host_index(sandbox: &SandboxHandle, url: &Url) -> usize {
    sandbox.host_urls().iter().position(|h| h == url).unwrap()
}

/// Requests to `path` per host, and the faults they met.
fn hits(sandbox: &SandboxHandle, path: &str) -> Vec<(usize, Option<String>)> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| (r.host, r.fault))
        .collect()
}

fn token(sandbox: &SandboxHandle) -> String {
    sandbox.mint_token(sandbox.user("artist").unwrap(), TokenOverrides::default())
}

#[tokio::test]
async fn fails_over_on_5xx_hangs_drops_and_cut_bodies() {
    let sandbox = Sandbox::builder().hosts(2).start().await.unwrap();
    let token = token(&sandbox);
    let cases = [
        ("500", Fault::status(500), "status 500"),
        ("502", Fault::status(502), "status 502"),
        ("503", Fault::status(503), "status 503"),
        (
            "hang",
            Fault::latency(Duration::from_secs(30)),
            "none after 30000 ms",
        ),
        ("drop", Fault::drop_connection(), "drop"),
        ("truncate", Fault::truncate(), "truncate"),
        ("oversize", Fault::oversize(), "oversize 2097152"),
    ];
    for (case, fault, described) in cases {
        sandbox.clear_faults();
        sandbox.clear_requests();
        let client = list_client(&sandbox);
        let selected = host_index(&sandbox, &client.current_host().await.unwrap());
        let other = 1 - selected;
        sandbox.set_fault(selected, VERIFY, fault).unwrap();
        let started = Instant::now();
        let profile = ApiVerifier::new(client.clone())
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(profile.handle, "artist", "{case}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{case}: too slow"
        );
        assert_eq!(
            hits(&sandbox, VERIFY),
            [(selected, Some(described.to_owned())), (other, None)],
            "{case}"
        );
        // The client now uses the other host.
        assert_eq!(
            host_index(&sandbox, &client.current_host().await.unwrap()),
            other,
            "{case}"
        );
    }
}

#[tokio::test]
async fn no_fail_over_on_4xx() {
    let sandbox = Sandbox::builder().hosts(2).start().await.unwrap();
    let client = list_client(&sandbox);
    let selected = host_index(&sandbox, &client.current_host().await.unwrap());
    let verifier = ApiVerifier::new(client.clone());

    // A malformed token is refused here, without asking.
    let err = verifier.verify("not.a.token").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(hits(&sandbox, VERIFY), []);

    // A real 400: a legacy numeric userId (it parses here; the server refuses it). Asked once,
    // of one host.
    let numeric = sandbox.mint_token(
        sandbox.user("artist").unwrap(),
        TokenOverrides::default().claim("userId", serde_json::json!(7)),
    );
    let err = verifier.verify(&numeric).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(hits(&sandbox, VERIFY), [(selected, None)]);

    // A real 404: an unknown wallet.
    sandbox.clear_requests();
    let unknown = sandbox.mint_token(
        sandbox.user("artist").unwrap(),
        TokenOverrides::default().signing_key([9; 32]),
    );
    assert_eq!(
        verifier.verify(&unknown).await.unwrap_err().kind(),
        ErrorKind::WalletMismatch
    );
    assert_eq!(hits(&sandbox, VERIFY), [(selected, None)]);

    // Faulted 400 and 404: still no fail-over.
    for status in [400, 404] {
        sandbox.clear_requests();
        sandbox
            .set_fault(selected, VERIFY, Fault::status(status))
            .unwrap();
        let err = verifier.verify(&token(&sandbox)).await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Malformed | ErrorKind::UpstreamUnexpected
            ),
            "{status}: {err}"
        );
        assert_eq!(
            hits(&sandbox, VERIFY),
            [(selected, Some(format!("status {status}")))],
            "{status}"
        );
    }

    // 429 is rate limiting: unavailable, with the status kept.
    sandbox
        .set_fault(selected, VERIFY, Fault::status(429))
        .unwrap();
    match verifier.verify(&token(&sandbox)).await.unwrap_err() {
        Error::UpstreamUnavailable { status, .. } => assert_eq!(status, Some(429)),
        other => panic!("429: {other}"),
    }
}

#[tokio::test]
async fn garbage_and_oversized_bodies_are_typed_errors() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = ApiClient::builder()
        .base_url(sandbox.base_url())
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let verifier = ApiVerifier::new(client);
    let token = token(&sandbox);

    sandbox.set_fault(0, VERIFY, Fault::garbage()).unwrap();
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamUnexpected, "{err}");

    sandbox.set_fault(0, VERIFY, Fault::oversize()).unwrap();
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");

    sandbox.set_fault(0, VERIFY, Fault::truncate()).unwrap();
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamUnavailable, "{err}");

    sandbox
        .set_fault(0, VERIFY, Fault::drop_connection())
        .unwrap();
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamUnavailable, "{err}");

    // Under the cap, an oversize body is just a big answer the verifier cannot read.
    sandbox
        .set_fault(0, VERIFY, Fault::oversize_bytes(1000))
        .unwrap();
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamUnexpected, "{err}");

    sandbox.clear_faults();
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn discovery_is_read_again_after_repeated_failures() {
    let sandbox = Sandbox::builder().hosts(2).start().await.unwrap();
    let client = ApiClient::builder()
        .discovery(sandbox.base_url())
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let verifier = ApiVerifier::new(client.clone());
    let token = token(&sandbox);
    let discovery_reads = || {
        sandbox
            .requests()
            .iter()
            .filter(|r| r.path == "/" && r.host == 0)
            .count()
    };

    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(discovery_reads(), 1);
    for host in 0..2 {
        sandbox.set_fault(host, VERIFY, Fault::status(503)).unwrap();
    }
    let mut requests = 0;
    while discovery_reads() < 2 {
        requests += 1;
        assert!(requests <= 5, "the discovery list was never read again");
        let err = verifier.verify(&token).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UpstreamUnavailable);
    }
    sandbox.clear_faults();
    assert!(verifier.verify(&token).await.is_ok());

    // The discovery list itself can fail.
    sandbox.set_fault(0, "/", Fault::status(503)).unwrap();
    client.reselect().await;
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamUnavailable);
    let last = sandbox
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/")
        .unwrap();
    assert_eq!(last.fault.as_deref(), Some("status 503"));
}

#[tokio::test]
async fn faults_seen_with_a_plain_client() {
    let sandbox = Sandbox::start().await.unwrap();
    let base = sandbox.base_url();
    let client = http();
    let url = base.join("health_check").unwrap();

    // A status, with CORS and a JSON body; 429 says when to retry; `times` counts down.
    sandbox
        .set_fault(0, "/health_check", Fault::status(429).times(1))
        .unwrap();
    let resp = client.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], 429);
    assert_eq!(client.get(url.clone()).send().await.unwrap().status(), 200);
    assert!(sandbox.faults(0).is_empty(), "used up");

    // Latency.
    sandbox
        .set_fault(
            0,
            "/health_check",
            Fault::latency(Duration::from_millis(150)),
        )
        .unwrap();
    let started = Instant::now();
    assert_eq!(client.get(url.clone()).send().await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    // A truncated body: the header promises more than comes.
    sandbox
        .set_fault(0, "/health_check", Fault::truncate())
        .unwrap();
    let mut resp = client.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "2048");
    let mut received = 0;
    let cut = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(cut, "the body must end in an error");
    assert_eq!(received, 1024, "half of what was promised");

    // A dropped connection: no answer at all.
    sandbox
        .set_fault(0, "/health_check", Fault::drop_connection())
        .unwrap();
    assert!(client.get(url.clone()).send().await.is_err());

    // Garbage.
    sandbox
        .set_fault(0, "/health_check", Fault::garbage())
        .unwrap();
    let resp = client.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).is_err());

    // Oversize: valid JSON of the size asked.
    sandbox
        .set_fault(0, "/health_check", Fault::oversize_bytes(5000))
        .unwrap();
    let bytes = client
        .get(url.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len(), 5000);
    assert!(serde_json::from_slice::<Value>(&bytes).unwrap()["data"].is_array());

    // Routes: `/` is exact, prefixes are segment-wise, the longest wins, `*` is everything.
    sandbox.clear_faults();
    sandbox.set_fault(0, "*", Fault::status(503)).unwrap();
    sandbox
        .set_fault(0, "/v1/users", Fault::status(502))
        .unwrap();
    sandbox.set_fault(0, "/", Fault::status(500)).unwrap();
    let status = |path: &str| {
        let client = client.clone();
        let url = base.join(path).unwrap();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/").await, 500);
    assert_eq!(status("/v1/users/eYorL").await, 502);
    assert_eq!(status("/v1/users").await, 502);
    assert_eq!(status("/health_check").await, 503);
    // `/_sandbox` is never faulted.
    assert_eq!(status("/_sandbox/users").await, 200);

    // Invalid faults are refused.
    assert!(
        sandbox.set_fault(1, "/", Fault::status(500)).is_err(),
        "no host 1"
    );
    assert!(
        sandbox
            .set_fault(0, "/_sandbox/users", Fault::status(500))
            .is_err()
    );
    assert!(sandbox.set_fault(0, "v1", Fault::status(500)).is_err());
    assert!(sandbox.set_fault(0, "/", Fault::status(200)).is_err());
    assert!(
        sandbox
            .set_fault(0, "/", Fault::status(503).times(0))
            .is_err()
    );
}

#[tokio::test]
async fn faults_over_http() {
    let sandbox = Sandbox::builder().hosts(2).start().await.unwrap();
    let hosts = sandbox.host_urls();
    let client = http();
    let post = |host: usize, body: Value| {
        let client = client.clone();
        let url = hosts[host].join("_sandbox/faults").unwrap();
        async move {
            let resp = client
                .post(url)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (
                status,
                serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap(),
            )
        }
    };
    // Setting faults on host 1 through host 1.
    let (status, body) = post(
        1,
        json!([
            {"route": "/health_check", "action": "status", "status": 503, "times": 2},
            {"route": "/v1/users", "action": "drop", "latency_ms": 10},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["host"], 1);
    assert_eq!(body["faults"].as_array().unwrap().len(), 2);
    assert_eq!(sandbox.faults(1).len(), 2);
    assert!(sandbox.faults(0).is_empty(), "host 0 untouched");
    let health = |host: usize| {
        let client = client.clone();
        let url = hosts[host].join("health_check").unwrap();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(health(1).await, 503);
    assert_eq!(health(0).await, 200);

    // Bad requests change nothing (all or nothing).
    for bad in [
        json!({"route": "/x", "action": "explode"}),
        json!([{"route": "/x", "action": "drop"}, {"route": "nope"}]),
        json!({"route": "/x", "action": "status", "status": 99}),
        json!({"action": "drop"}),
        json!("drop"),
    ] {
        let (status, body) = post(0, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], 400);
    }
    let resp = client
        .post(hosts[0].join("_sandbox/faults").unwrap())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(sandbox.faults(0).is_empty());

    // GET lists them; DELETE removes one route, or all.
    let listed: Value = serde_json::from_slice(
        &client
            .get(hosts[1].join("_sandbox/faults").unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        listed["faults"][1],
        json!({"route": "/v1/users", "action": "drop", "latency_ms": 10})
    );
    let resp = client
        .delete(hosts[1].join("_sandbox/faults?route=/v1/users").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sandbox.faults(1).len(), 1);

    // The request log over HTTP, then a reset clears faults and log.
    let log: Value = serde_json::from_slice(
        &client
            .get(hosts[0].join("_sandbox/requests").unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let entries = log.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["host"] == 1 && e["path"] == "/health_check" && e["fault"] == "status 503")
    );
    assert!(
        entries
            .iter()
            .all(|e| !e["path"].as_str().unwrap().starts_with("/_sandbox"))
    );
    let first = &entries[0];
    for key in [
        "seq",
        "host",
        "method",
        "path",
        "query",
        "origin",
        "user_agent",
        "authorization",
        "at",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    let resp = client
        .post(hosts[0].join("_sandbox/reset").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(sandbox.faults(1).is_empty());
    assert!(sandbox.requests().is_empty());
}

#[tokio::test]
async fn builder_faults_and_stopping() {
    let sandbox = Sandbox::builder()
        .hosts(2)
        .fault(1, "/health_check", Fault::status(503))
        .start()
        .await
        .unwrap();
    let hosts = sandbox.host_urls();
    let client = http();
    let status = client
        .get(hosts[1].join("health_check").unwrap())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);
    assert!(
        Sandbox::builder()
            .fault(3, "/", Fault::status(500))
            .start()
            .await
            .is_err(),
        "a fault on a host that does not exist"
    );

    // A request hanging in a latency fault does not hold up stop().
    sandbox
        .set_fault(0, "/", Fault::latency(Duration::from_secs(60)))
        .unwrap();
    let hanging = tokio::spawn({
        let client = client.clone();
        let url = hosts[0].clone();
        async move { client.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    sandbox.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        started.elapsed()
    );
    let _ = hanging.await;
    for host in &hosts {
        assert!(
            client.get(host.clone()).send().await.is_err(),
            "{host} still answers"
        );
    }

    // Dropping the handle stops the hosts too.
    let sandbox = Sandbox::start().await.unwrap();
    let base = sandbox.base_url();
    assert!(client.get(base.clone()).send().await.is_ok());
    drop(sandbox);
    let mut stopped = false;
    for _ in 0..100 {
        if reqwest::Client::new()
            .get(base.clone())
            .send()
            .await
            .is_err()
        {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        stopped,
        "the sandbox still answers after its handle was dropped"
    );
}
