//! The API client and both verifiers against stub HTTP servers written here, byte by byte:
//! servers that refuse, hang, drop the connection, lie about the length, answer garbage or far
//! too much, redirect, or trickle forever.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audius_login::clock::ManualClock;
use audius_login::token::wallet_of_secret_key;
use audius_login::{
    ApiClient, ApiClientBuilder, ApiVerifier, Error, ErrorKind, LocalVerifier, ProfileSource,
    Token, TokenPart, UserDirectory, UserId, Verifier, VerifyOptions, Wallet,
};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use url::Url;

// ---------------------------------------------------------------------------------------------
// Stub servers
// ---------------------------------------------------------------------------------------------

/// What a stub does with one request.
#[derive(Clone)]
enum Reply {
    /// A complete answer: status, extra headers, body (`Content-Length` set, connection closed).
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Exactly these bytes, then close.
    Raw(Vec<u8>),
    /// These bytes, then keep the connection open and write nothing more.
    RawThenHang(Vec<u8>),
    /// Read the request, never answer.
    Hang,
    /// Read the request, close without a byte.
    Close,
    /// These bytes, then one `a` every interval, forever.
    Trickle(Vec<u8>, Duration),
}

/// One request as a stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query, as sent.
    target: String,
    /// The path only.
    path: String,
    /// The request head (request line and headers).
    head: String,
}

impl Seen {
    /// The decoded query parameter `name`.
    fn query(&self, name: &str) -> Option<String> {
        let url = Url::parse(&format!("http://stub{}", self.target)).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A stub HTTP/1.1 server on 127.0.0.1, recording every request.
struct Stub {
    url: Url,
    log: Arc<Mutex<Vec<Seen>>>,
    task: Option<JoinHandle<()>>,
}

impl Stub {
    async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve(stream, handler.clone(), log.clone()));
                }
            }
        });
        Self {
            url: Url::parse(&format!("http://{addr}")).expect("stub URL"),
            log,
            task: Some(task),
        }
    }

    /// A stub that answers `/health_check` as healthy and everything else with `handler`.
    async fn healthy(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(move |seen: &Seen| {
            if seen.path == "/health_check" {
                healthy()
            } else {
                handler(seen)
            }
        })
        .await
    }

    fn url(&self) -> Url {
        self.url.clone()
    }

    /// Every request seen.
    fn seen(&self) -> Vec<Seen> {
        self.log.lock().expect("log lock").clone()
    }

    /// How many requests were seen, health checks included.
    fn total(&self) -> usize {
        self.seen().len()
    }

    /// How many requests for paths starting with `prefix` were seen.
    fn count(&self, prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .count()
    }

    /// How many requests for exactly `path` were seen.
    fn exact(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }

    /// How many requests other than health checks were seen.
    fn api_requests(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path != "/health_check")
            .count()
    }

    /// Stops listening: from now on connections to this port are refused.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Reads one request head (and a `Content-Length` body), at most 64 KiB.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0)
        .min(64 * 1024);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

async fn serve(mut stream: TcpStream, handler: Handler, log: Arc<Mutex<Vec<Seen>>>) {
    let Some((head, _body)) = read_request(&mut stream).await else {
        return;
    };
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let seen = Seen {
        method,
        target,
        path,
        head,
    };
    log.lock().expect("log lock").push(seen.clone());
    match handler(&seen) {
        Reply::Answer {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} Stub\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&body);
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::RawThenHang(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
        Reply::Close => drop(stream),
        Reply::Trickle(head, every) => {
            if stream.write_all(&head).await.is_err() {
                return;
            }
            loop {
                tokio::time::sleep(every).await;
                if stream.write_all(b"a").await.is_err() {
                    return;
                }
            }
        }
    }
}

fn answer(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply::Answer {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into(),
    }
}

fn json_answer(status: u16, value: Value) -> Reply {
    answer(status, value.to_string())
}

fn healthy() -> Reply {
    json_answer(200, json!({"data": {"healthy": true}}))
}

fn ok_json() -> Reply {
    json_answer(200, json!({"data": {"ok": true}}))
}

/// The `{"code", "error"}` body Audius gives with an error status.
fn audius_error(status: u16, message: &str) -> Reply {
    json_answer(status, json!({"code": status, "error": message}))
}

/// A port that was bound and released: connections to it are refused.
async fn dead_url() -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    drop(listener);
    Url::parse(&format!("http://{addr}")).expect("URL")
}

/// Short timeouts keep the suite fast; every bound asserted on elapsed time is far looser.
const TIMEOUT: Duration = Duration::from_millis(300);
/// A generous bound on anything that must merely *return* within a short timeout.
const GENEROUS: Duration = Duration::from_secs(5);

/// A client builder with short timeouts, probing one host at a time (so "first healthy host"
/// is deterministic).
fn fast() -> ApiClientBuilder {
    ApiClient::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .health_timeout(TIMEOUT)
        .probe_count(1)
}

fn fixed(stub: &Stub) -> ApiClient {
    fast().base_url(stub.url()).build().expect("client")
}

fn kind<T: std::fmt::Debug>(result: Result<T, Error>) -> ErrorKind {
    result.expect_err("an error was expected").kind()
}

// ---------------------------------------------------------------------------------------------
// Fail-over
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fails_over_when_the_first_host_refuses_connections() {
    let mut a = Stub::healthy(|_: &Seen| ok_json()).await;
    let b = Stub::healthy(|_: &Seen| ok_json()).await;
    let client = fast()
        .hosts(vec![a.url(), b.url()])
        .build()
        .expect("client");
    // A is healthy when selected, then goes away: its port now refuses connections.
    assert_eq!(client.current_host().await.expect("selected"), a.url());
    a.stop().await;
    let answer = client.get("/v1/users/eYorL").await.expect("B answers");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.host, b.url());
    assert_eq!(a.api_requests(), 0);
    assert_eq!(b.api_requests(), 1);
}

#[tokio::test]
async fn a_dead_port_in_the_list_is_skipped() {
    let dead = dead_url().await;
    let b = Stub::healthy(|_: &Seen| ok_json()).await;
    let client = fast()
        .hosts(vec![dead.clone(), b.url()])
        .build()
        .expect("client");
    let answer = client.get("/v1/users/eYorL").await.expect("B answers");
    assert_eq!(answer.host, b.url());
    assert_eq!(b.api_requests(), 1);
    // A client pinned to the dead port fails, typed, without hanging.
    let started = Instant::now();
    let alone = fast().base_url(dead).build().expect("client");
    assert_eq!(
        kind(alone.get("/v1/users/eYorL").await),
        ErrorKind::UpstreamUnavailable
    );
    assert!(started.elapsed() < GENEROUS);
}

#[tokio::test]
async fn fails_over_when_the_first_host_hangs_past_the_timeout() {
    let a = Stub::healthy(|_: &Seen| Reply::Hang).await;
    let b = Stub::healthy(|_: &Seen| ok_json()).await;
    let client = fast()
        .hosts(vec![a.url(), b.url()])
        .build()
        .expect("client");
    let started = Instant::now();
    let answer = client.get("/v1/users/eYorL").await.expect("B answers");
    assert!(started.elapsed() < GENEROUS, "took {:?}", started.elapsed());
    assert!(
        started.elapsed() >= TIMEOUT,
        "A's timeout was not waited for"
    );
    assert_eq!(answer.host, b.url());
    assert_eq!(a.api_requests(), 1);
    assert_eq!(b.api_requests(), 1);
}

#[tokio::test]
async fn fails_over_on_500_502_and_503() {
    for status in [500u16, 502, 503] {
        let a = Stub::healthy(move |_: &Seen| audius_error(status, "upstream trouble")).await;
        let b = Stub::healthy(|_: &Seen| ok_json()).await;
        let client = fast()
            .hosts(vec![a.url(), b.url()])
            .build()
            .expect("client");
        let answer = client.get("/v1/users/eYorL").await.expect("B answers");
        assert_eq!(answer.status, 200, "{status}");
        assert_eq!(answer.host, b.url(), "{status}");
        assert_eq!(a.api_requests(), 1, "{status}");
        assert_eq!(b.api_requests(), 1, "{status}");
    }
}

#[tokio::test]
async fn fails_over_when_the_connection_is_dropped() {
    let a = Stub::healthy(|_: &Seen| Reply::Close).await;
    let b = Stub::healthy(|_: &Seen| ok_json()).await;
    let client = fast()
        .hosts(vec![a.url(), b.url()])
        .build()
        .expect("client");
    let answer = client.get("/v1/users/eYorL").await.expect("B answers");
    assert_eq!(answer.host, b.url());
    assert_eq!(a.api_requests(), 1);
    assert_eq!(b.api_requests(), 1);
}

#[tokio::test]
async fn every_host_failing_is_upstream_unavailable_with_the_last_status() {
    let a = Stub::healthy(|_: &Seen| audius_error(502, "bad gateway")).await;
    let b = Stub::healthy(|_: &Seen| audius_error(503, "busy")).await;
    let client = fast()
        .hosts(vec![a.url(), b.url()])
        .build()
        .expect("client");
    match client.get("/v1/users/eYorL").await {
        Err(Error::UpstreamUnavailable { status, message }) => {
            assert_eq!(status, Some(503));
            assert!(message.contains("busy"), "{message}");
        }
        other => panic!("expected UpstreamUnavailable, got {other:?}"),
    }
    assert_eq!(a.api_requests(), 1);
    assert_eq!(b.api_requests(), 1);
}

#[tokio::test]
async fn no_fail_over_on_400_or_404() {
    for status in [400u16, 404] {
        let a = Stub::healthy(move |_: &Seen| audius_error(status, "about the request")).await;
        let b = Stub::healthy(|_: &Seen| ok_json()).await;
        let client = fast()
            .hosts(vec![a.url(), b.url()])
            .build()
            .expect("client");
        let answer = client.get("/v1/users/eYorL").await.expect("A's answer");
        assert_eq!(answer.status, status);
        assert_eq!(answer.host, a.url());
        assert_eq!(answer.error_message(), "about the request");
        assert_eq!(a.api_requests(), 1, "{status}");
        assert_eq!(b.total(), 0, "{status}: B must see no request at all");
        // Again: a 4xx is not a failure of the host, so A stays selected.
        client.get("/v1/users/eYorL").await.expect("A's answer");
        assert_eq!(a.api_requests(), 2, "{status}");
        assert_eq!(b.total(), 0, "{status}");
    }
}

#[tokio::test]
async fn post_form_is_not_sent_twice_once_it_may_have_arrived() {
    // A hangs after reading the form: the request may have been acted on, so B must not see it.
    let a = Stub::healthy(|_: &Seen| Reply::Hang).await;
    let b = Stub::healthy(|_: &Seen| ok_json()).await;
    let client = fast()
        .hosts(vec![a.url(), b.url()])
        .build()
        .expect("client");
    let started = Instant::now();
    let result = client
        .post_form("/v1/oauth/token", &[("grant_type", "authorization_code")])
        .await;
    assert_eq!(kind(result), ErrorKind::UpstreamUnavailable);
    assert!(started.elapsed() < GENEROUS);
    assert_eq!(a.count("/v1/oauth/token"), 1);
    assert_eq!(a.seen()[1].method, "POST");
    assert_eq!(b.total(), 0);
}

#[tokio::test]
async fn post_form_goes_to_the_next_host_when_refused() {
    let mut a = Stub::healthy(|_: &Seen| ok_json()).await;
    let b = Stub::healthy(|_: &Seen| ok_json()).await;
    let client = fast()
        .hosts(vec![a.url(), b.url()])
        .build()
        .expect("client");
    assert_eq!(client.current_host().await.expect("selected"), a.url());
    a.stop().await;
    let answer = client
        .post_form("/v1/oauth/token", &[("code", "c")])
        .await
        .expect("B answers");
    assert_eq!(answer.host, b.url());
    assert_eq!(b.count("/v1/oauth/token"), 1);
}

// ---------------------------------------------------------------------------------------------
// Bodies: garbage, over-size, truncated
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_garbage_body_is_upstream_unexpected() {
    for garbage in [
        b"<html>502 Bad Gateway</html>".to_vec(),
        vec![0x00, 0xff, 0xfe, 0x7b],
        b"{\"data\": ".to_vec(),
        Vec::new(),
    ] {
        let stub = Stub::start({
            let garbage = garbage.clone();
            move |_: &Seen| answer(200, garbage.clone())
        })
        .await;
        let client = fixed(&stub);
        let answer = client
            .get("/v1/users/verify_token?token=x")
            .await
            .expect("an answer");
        assert_eq!(
            answer.json::<Value>().expect_err("not JSON").kind(),
            ErrorKind::UpstreamUnexpected
        );
        let verifier = ApiVerifier::new(client);
        match verifier.verify(&token(&OWNER_KEY, USER, Some(IAT))).await {
            Err(Error::UpstreamUnexpected { status, .. }) => assert_eq!(status, 200),
            other => panic!("{garbage:?}: expected UpstreamUnexpected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_json_body_of_the_wrong_shape_is_upstream_unexpected() {
    for body in [
        json!([1, 2]),
        json!({"data": null}),
        json!({"data": "eYorL"}),
        json!({"data": {"userId": true}}),
        json!({"data": {"email": "no user id"}}),
    ] {
        let stub = Stub::start({
            let body = body.clone();
            move |_: &Seen| json_answer(200, body.clone())
        })
        .await;
        let verifier = ApiVerifier::new(fixed(&stub));
        assert_eq!(
            kind(verifier.verify(&token(&OWNER_KEY, USER, Some(IAT))).await),
            ErrorKind::UpstreamUnexpected,
            "{body}"
        );
    }
}

const LIMIT: usize = 64 * 1024;
const TWO_MIB: usize = 2 * 1024 * 1024;

fn capped(stub: &Stub, timeout: Duration) -> ApiClient {
    fast()
        .base_url(stub.url())
        .timeout(timeout)
        .max_body_bytes(LIMIT)
        .build()
        .expect("client")
}

fn head_with_length(length: usize) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

const CHUNKED_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

/// `total` bytes of body in chunked encoding, 8 KiB a chunk, with or without the last chunk.
fn chunked(total: usize, terminated: bool) -> Vec<u8> {
    let mut out = CHUNKED_HEAD.as_bytes().to_vec();
    let mut left = total;
    while left > 0 {
        let n = left.min(8 * 1024);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'x', n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    if terminated {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

fn is_too_large<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::TooLarge { limit, .. }) => assert_eq!(limit, LIMIT),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_body_with_an_honest_length_is_too_large() {
    let stub = Stub::start(|_: &Seen| {
        let mut bytes = head_with_length(TWO_MIB).into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', TWO_MIB));
        Reply::Raw(bytes)
    })
    .await;
    is_too_large(capped(&stub, TIMEOUT).get("/v1/users/eYorL").await);
    is_too_large(
        ApiVerifier::new(capped(&stub, TIMEOUT))
            .verify(&token(&OWNER_KEY, USER, Some(IAT)))
            .await,
    );
}

#[tokio::test]
async fn an_oversized_length_is_refused_without_reading_the_body() {
    // The server announces 2 MiB, sends 1 KiB and stalls: waiting for the rest would end in a
    // timeout, so a quick TooLarge shows the announced length alone was enough.
    let stub = Stub::start(|_: &Seen| {
        let mut bytes = head_with_length(TWO_MIB).into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', 1024));
        Reply::RawThenHang(bytes)
    })
    .await;
    let started = Instant::now();
    is_too_large(
        capped(&stub, Duration::from_secs(10))
            .get("/v1/users/eYorL")
            .await,
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_oversized_chunked_body_is_too_large() {
    let stub = Stub::start(|_: &Seen| Reply::Raw(chunked(TWO_MIB, true))).await;
    is_too_large(capped(&stub, TIMEOUT).get("/v1/users/eYorL").await);
}

#[tokio::test]
async fn an_oversized_chunked_body_is_refused_without_reading_it_all() {
    // Just over the limit, then the server stalls without ending the body: only a client that
    // stops at the limit returns before its (long) timeout.
    let stub = Stub::start(|_: &Seen| Reply::RawThenHang(chunked(LIMIT + 8 * 1024, false))).await;
    let started = Instant::now();
    is_too_large(
        capped(&stub, Duration::from_secs(10))
            .get("/v1/users/eYorL")
            .await,
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read() {
    let exact = Stub::start(|_: &Seen| {
        let mut bytes = head_with_length(LIMIT).into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', LIMIT));
        Reply::Raw(bytes)
    })
    .await;
    let answer = capped(&exact, TIMEOUT)
        .get("/v1/users/eYorL")
        .await
        .expect("at the limit");
    assert_eq!(answer.body.len(), LIMIT);
    let exact_chunked = Stub::start(|_: &Seen| Reply::Raw(chunked(LIMIT, true))).await;
    let answer = capped(&exact_chunked, TIMEOUT)
        .get("/v1/users/eYorL")
        .await
        .expect("at the limit");
    assert_eq!(answer.body.len(), LIMIT);
}

#[tokio::test]
async fn a_truncated_body_is_a_transport_failure() {
    // Content-Length says 100, 10 bytes come, the connection closes.
    let truncated = || {
        let mut bytes = head_with_length(100).into_bytes();
        bytes.extend_from_slice(b"{\"data\":{}");
        Reply::Raw(bytes)
    };
    let alone = Stub::start(move |_: &Seen| truncated()).await;
    match fixed(&alone).get("/v1/users/eYorL").await {
        Err(Error::UpstreamUnavailable { .. }) => {}
        other => panic!("expected UpstreamUnavailable, got {other:?}"),
    }
    // ... and so it fails over.
    let a = Stub::healthy(move |_: &Seen| truncated()).await;
    let b = Stub::healthy(|_: &Seen| ok_json()).await;
    let client = fast()
        .hosts(vec![a.url(), b.url()])
        .build()
        .expect("client");
    let answer = client.get("/v1/users/eYorL").await.expect("B answers");
    assert_eq!(answer.host, b.url());
    assert_eq!(a.api_requests(), 1);
}

#[tokio::test]
async fn a_truncated_chunked_body_is_a_transport_failure() {
    let stub = Stub::start(|_: &Seen| Reply::Raw(chunked(100, false))).await;
    assert_eq!(
        kind(fixed(&stub).get("/v1/users/eYorL").await),
        ErrorKind::UpstreamUnavailable
    );
}

// ---------------------------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn redirects_are_never_followed() {
    for status in [301u16, 302, 303, 307, 308] {
        let elsewhere = Stub::start(|_: &Seen| ok_json()).await;
        let location = elsewhere
            .url()
            .join("/v1/users/verify_token")
            .expect("join");
        let stub = Stub::start({
            let location = location.to_string();
            move |_: &Seen| Reply::Answer {
                status,
                headers: vec![("Location".into(), location.clone())],
                body: Vec::new(),
            }
        })
        .await;
        let client = fixed(&stub);
        let answer = client
            .get("/v1/users/verify_token?token=a.b.c")
            .await
            .expect("the redirect itself");
        assert_eq!(answer.status, status);
        assert_eq!(answer.location.as_deref(), Some(location.as_str()));
        match ApiVerifier::new(client)
            .verify(&token(&OWNER_KEY, USER, Some(IAT)))
            .await
        {
            Err(Error::UpstreamUnexpected {
                status: got,
                message,
            }) => {
                assert_eq!(got, status);
                assert!(message.contains("not followed"), "{message}");
            }
            other => panic!("{status}: expected UpstreamUnexpected, got {other:?}"),
        }
        assert_eq!(elsewhere.total(), 0, "{status}: the redirect was followed");
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

/// A bootstrap stub answering `{"data": list}`, where `list` can change between reads.
async fn bootstrap(list: Arc<Mutex<Value>>) -> Stub {
    Stub::start(move |_: &Seen| {
        let list = list.lock().expect("list lock").clone();
        json_answer(200, json!({ "data": list }))
    })
    .await
}

#[tokio::test]
async fn discovery_selects_the_first_healthy_host() {
    let unhealthy_status = Stub::start(|s: &Seen| {
        if s.path == "/health_check" {
            audius_error(503, "starting")
        } else {
            ok_json()
        }
    })
    .await;
    let unhealthy_flag = Stub::start(|s: &Seen| {
        if s.path == "/health_check" {
            json_answer(200, json!({"data": {"healthy": false}}))
        } else {
            ok_json()
        }
    })
    .await;
    let hanging = Stub::start(|s: &Seen| {
        if s.path == "/health_check" {
            Reply::Hang
        } else {
            ok_json()
        }
    })
    .await;
    let dead = dead_url().await;
    let first_healthy = Stub::healthy(|_: &Seen| ok_json()).await;
    let second_healthy = Stub::healthy(|_: &Seen| ok_json()).await;
    let list = Arc::new(Mutex::new(json!([
        unhealthy_status.url().as_str(),
        unhealthy_flag.url().as_str(),
        hanging.url().as_str(),
        dead.as_str(),
        first_healthy.url().as_str(),
        second_healthy.url().as_str(),
    ])));
    let boot = bootstrap(list).await;
    let client = fast().discovery(boot.url()).build().expect("client");
    let answer = client.get("/v1/users/eYorL").await.expect("an answer");
    assert_eq!(answer.host, first_healthy.url());
    assert_eq!(boot.total(), 1);
    for skipped in [&unhealthy_status, &unhealthy_flag, &hanging] {
        assert_eq!(skipped.count("/health_check"), 1);
        assert_eq!(skipped.api_requests(), 0);
    }
    assert_eq!(first_healthy.api_requests(), 1);
    assert_eq!(second_healthy.total(), 0);
    // The selection sticks: no second read of the list, no second health check.
    client.get("/v1/users/eYorL").await.expect("an answer");
    assert_eq!(boot.total(), 1);
    assert_eq!(first_healthy.count("/health_check"), 1);
}

#[tokio::test]
async fn discovery_ignores_invalid_entries() {
    let good = Stub::healthy(|_: &Seen| ok_json()).await;
    let list = Arc::new(Mutex::new(json!([
        "not a url",
        5,
        null,
        {"url": "http://127.0.0.1:1"},
        "ftp://127.0.0.1/",
        "javascript:alert(1)",
        "mailto:a@example.com",
        "",
        good.url().as_str(),
    ])));
    let boot = bootstrap(list).await;
    let client = fast().discovery(boot.url()).build().expect("client");
    assert_eq!(client.current_host().await.expect("selected"), good.url());
}

#[tokio::test]
async fn discovery_without_a_usable_list_is_a_typed_error() {
    let cases: Vec<(Reply, ErrorKind)> = vec![
        (
            json_answer(200, json!({"data": []})),
            ErrorKind::UpstreamUnavailable,
        ),
        (
            json_answer(200, json!({"data": ["nope", 3]})),
            ErrorKind::UpstreamUnavailable,
        ),
        (answer(200, "garbage"), ErrorKind::UpstreamUnexpected),
        (
            json_answer(200, json!({"data": "http://127.0.0.1:1"})),
            ErrorKind::UpstreamUnexpected,
        ),
        (json_answer(200, json!([])), ErrorKind::UpstreamUnexpected),
        (audius_error(500, "down"), ErrorKind::UpstreamUnavailable),
        (Reply::Close, ErrorKind::UpstreamUnavailable),
        (Reply::Hang, ErrorKind::UpstreamUnavailable),
    ];
    for (i, (reply, want)) in cases.into_iter().enumerate() {
        let boot = Stub::start(move |_: &Seen| reply.clone()).await;
        let client = fast().discovery(boot.url()).build().expect("client");
        let started = Instant::now();
        assert_eq!(kind(client.get("/v1/users/eYorL").await), want, "case {i}");
        assert!(started.elapsed() < GENEROUS, "case {i}");
    }
    // Every host unhealthy.
    let sick = Stub::start(|_: &Seen| audius_error(503, "sick")).await;
    let boot = bootstrap(Arc::new(Mutex::new(json!([sick.url().as_str()])))).await;
    let client = fast().discovery(boot.url()).build().expect("client");
    assert_eq!(
        kind(client.get("/v1/users/eYorL").await),
        ErrorKind::UpstreamUnavailable
    );
    assert_eq!(sick.api_requests(), 0);
}

#[tokio::test]
async fn discovery_is_read_again_after_repeated_failures() {
    let failing = Arc::new(AtomicBool::new(false));
    let a = Stub::start({
        let failing = failing.clone();
        move |s: &Seen| match (s.path.as_str(), failing.load(Ordering::SeqCst)) {
            ("/health_check", false) => healthy(),
            (_, true) => audius_error(503, "A is down"),
            _ => ok_json(),
        }
    })
    .await;
    let b = Stub::healthy(|_: &Seen| ok_json()).await;
    let list = Arc::new(Mutex::new(json!([a.url().as_str()])));
    let boot = bootstrap(list.clone()).await;
    let client = fast()
        .discovery(boot.url())
        .reselect_after(2)
        .build()
        .expect("client");
    assert_eq!(client.get("/v1/x").await.expect("A answers").host, a.url());
    assert_eq!(boot.total(), 1);

    // A fails; the network now lists B only.
    failing.store(true, Ordering::SeqCst);
    *list.lock().expect("list lock") = json!([b.url().as_str()]);
    for _ in 0..2 {
        assert_eq!(
            kind(client.get("/v1/x").await),
            ErrorKind::UpstreamUnavailable
        );
    }
    assert_eq!(boot.total(), 1, "read again too early");
    let answer = client.get("/v1/x").await.expect("B answers");
    assert_eq!(answer.host, b.url());
    assert_eq!(boot.total(), 2, "the discovery list was not read again");
    assert_eq!(a.count("/v1/x"), 3);
    assert_eq!(client.current_host().await.expect("selected"), b.url());
}

#[tokio::test]
async fn reselect_re_reads_the_discovery_list() {
    let a = Stub::healthy(|_: &Seen| ok_json()).await;
    let boot = bootstrap(Arc::new(Mutex::new(json!([a.url().as_str()])))).await;
    let client = fast().discovery(boot.url()).build().expect("client");
    client.get("/v1/x").await.expect("answer");
    client.reselect().await;
    client.get("/v1/x").await.expect("answer");
    assert_eq!(boot.total(), 2);
}

// ---------------------------------------------------------------------------------------------
// Total timeouts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_that_trickles_forever_ends_within_the_timeout() {
    let stub = Stub::start(|_: &Seen| {
        Reply::Trickle(
            head_with_length(1_000_000).into_bytes(),
            Duration::from_millis(20),
        )
    })
    .await;
    let client = fixed(&stub);
    let started = Instant::now();
    assert_eq!(
        kind(client.get("/v1/users/eYorL").await),
        ErrorKind::UpstreamUnavailable
    );
    assert!(started.elapsed() < GENEROUS, "took {:?}", started.elapsed());
    // Chunked, through the verifier.
    let stub = Stub::start(|_: &Seen| {
        Reply::Trickle(
            format!("{CHUNKED_HEAD}100000\r\n").into_bytes(),
            Duration::from_millis(20),
        )
    })
    .await;
    let started = Instant::now();
    assert_eq!(
        kind(
            ApiVerifier::new(fixed(&stub))
                .verify(&token(&OWNER_KEY, USER, Some(IAT)))
                .await
        ),
        ErrorKind::UpstreamUnavailable
    );
    assert!(started.elapsed() < GENEROUS);
}

#[tokio::test]
async fn headers_that_trickle_forever_end_within_the_timeout() {
    let stub = Stub::start(|_: &Seen| {
        Reply::Trickle(
            b"HTTP/1.1 200 OK\r\nX-Slow: ".to_vec(),
            Duration::from_millis(20),
        )
    })
    .await;
    let started = Instant::now();
    assert_eq!(
        kind(fixed(&stub).get_with_bearer("/v1/me", "access-token").await),
        ErrorKind::UpstreamUnavailable
    );
    assert!(started.elapsed() < GENEROUS);
    assert!(stub.seen()[0].head.contains("Bearer access-token"));
}

#[tokio::test]
async fn a_trickling_discovery_list_and_health_check_end_within_their_timeouts() {
    let slow = || {
        Reply::Trickle(
            head_with_length(1_000_000).into_bytes(),
            Duration::from_millis(20),
        )
    };
    let boot = Stub::start(move |_: &Seen| slow()).await;
    let client = fast().discovery(boot.url()).build().expect("client");
    let started = Instant::now();
    assert_eq!(
        kind(client.get("/v1/x").await),
        ErrorKind::UpstreamUnavailable
    );
    assert!(started.elapsed() < GENEROUS);

    let slow_health = Stub::start(move |s: &Seen| {
        if s.path == "/health_check" {
            slow()
        } else {
            ok_json()
        }
    })
    .await;
    let good = Stub::healthy(|_: &Seen| ok_json()).await;
    let client = fast()
        .hosts(vec![slow_health.url(), good.url()])
        .build()
        .expect("client");
    let started = Instant::now();
    assert_eq!(
        client.get("/v1/x").await.expect("good answers").host,
        good.url()
    );
    assert!(started.elapsed() < GENEROUS);
}

// ---------------------------------------------------------------------------------------------
// Tokens and users for the verifiers
// ---------------------------------------------------------------------------------------------

const OWNER_KEY: [u8; 32] = [0x11; 32];
const MANAGER_KEY: [u8; 32] = [0x22; 32];
const STRANGER_KEY: [u8; 32] = [0x33; 32];
const NEW_KEY: [u8; 32] = [0x44; 32];
const USER: u64 = 44;
const IAT: i64 = 1_764_288_000;

fn wallet(key: &[u8; 32]) -> Wallet {
    wallet_of_secret_key(key).expect("valid key")
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

/// Claims as the login page signs them today (spec section 3).
fn claims(user: u64, iat: Option<i64>) -> Map<String, Value> {
    let id = UserId::new(user).hashid();
    let mut c = object(json!({
        "userId": id,
        "email": "alice@example.com",
        "name": "Alice (token)",
        "handle": "alice_token",
        "verified": true,
        "profilePicture": {
            "150x150": "https://content.example.org/t/150x150.jpg",
            "480x480": "https://content.example.org/t/480x480.jpg",
            "1000x1000": "https://content.example.org/t/1000x1000.jpg",
            "mirrors": ["https://mirror.example.org"]
        },
        "apiKey": null,
        "sub": id,
    }));
    if let Some(iat) = iat {
        c.insert("iat".into(), iat.into());
    }
    c
}

fn token(key: &[u8; 32], user: u64, iat: Option<i64>) -> String {
    Token::sign(&claims(user, iat), key).expect("signs")
}

/// A user object as `GET /v1/users/{id}` gives it (spec section 7).
fn user_json(user: u64, wallet: Wallet) -> Value {
    json!({
        "id": UserId::new(user).hashid(),
        "handle": "alice",
        "name": "Alice",
        "is_verified": false,
        "profile_picture": {
            "150x150": "https://content.example.org/u/150x150.jpg",
            "480x480": "https://content.example.org/u/480x480.jpg",
            "1000x1000": "https://content.example.org/u/1000x1000.jpg",
            "mirrors": ["https://mirror.example.org"]
        },
        "wallet": wallet.to_string(),
        "erc_wallet": wallet.to_string(),
        "spl_wallet": "CgnWzWKPKhJcN4NCtWtdjo8ZqPbtQvNdxHqRDq1S9c2A",
        "follower_count": 3,
    })
}

/// A managers entry (`GET /v1/users/{id}/managers`).
fn grant(manager: u64, wallet: Wallet, approved: Value, revoked: bool) -> Value {
    json!({
        "manager": user_json(manager, wallet),
        "grant": {
            "user_id": UserId::new(USER).hashid(),
            "grantee_address": wallet.to_string(),
            "is_approved": approved,
            "is_revoked": revoked,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z"
        }
    })
}

/// A stub Audius API serving users and manager lists; `users` maps a hashid to the user's
/// current wallet (absent: 404).
#[derive(Clone, Default)]
struct Directory {
    users: Arc<Mutex<HashMap<String, Wallet>>>,
    managers: Arc<Mutex<HashMap<String, Vec<Value>>>>,
    /// When set, every request is answered this way instead.
    failing: Arc<Mutex<Option<Reply>>>,
}

impl Directory {
    fn with_user(self, user: u64, wallet: Wallet) -> Self {
        self.set_wallet(user, wallet);
        self
    }

    fn set_wallet(&self, user: u64, wallet: Wallet) {
        self.users
            .lock()
            .expect("users lock")
            .insert(UserId::new(user).hashid(), wallet);
    }

    fn with_managers(self, user: u64, grants: Vec<Value>) -> Self {
        self.managers
            .lock()
            .expect("managers lock")
            .insert(UserId::new(user).hashid(), grants);
        self
    }

    /// Answers every request with `reply` from now on (`None`: serves again).
    fn fail_with(&self, reply: Option<Reply>) {
        *self.failing.lock().expect("failing lock") = reply;
    }

    fn reply(&self, seen: &Seen) -> Reply {
        if let Some(reply) = self.failing.lock().expect("failing lock").clone() {
            return reply;
        }
        let rest = seen.path.strip_prefix("/v1/users/").unwrap_or_default();
        if let Some(id) = rest.strip_suffix("/managers") {
            let grants = self
                .managers
                .lock()
                .expect("managers lock")
                .get(id)
                .cloned()
                .unwrap_or_default();
            return json_answer(200, json!({ "data": grants }));
        }
        let wallet = self.users.lock().expect("users lock").get(rest).copied();
        match (wallet, UserId::from_hashid(rest)) {
            (Some(w), Ok(id)) => json_answer(200, json!({ "data": user_json(id.get(), w) })),
            _ => audius_error(404, "User not found"),
        }
    }

    async fn serve(&self) -> Stub {
        let me = self.clone();
        Stub::start(move |s: &Seen| me.reply(s)).await
    }
}

fn local(stub: &Stub) -> LocalVerifier {
    LocalVerifier::new(fixed(stub))
}

fn mismatch_status<T: std::fmt::Debug>(result: Result<T, Error>) -> Option<u16> {
    match result {
        Err(Error::WalletMismatch { status, .. }) => status,
        other => panic!("expected WalletMismatch, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// LocalVerifier
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn local_accepts_the_owner_wallet() {
    let api = Directory::default()
        .with_user(USER, wallet(&OWNER_KEY))
        .serve()
        .await;
    let profile = local(&api)
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("the owner's token");
    assert_eq!(profile.user_id, UserId::new(USER));
    assert_eq!(profile.signer, Some(wallet(&OWNER_KEY)));
    assert_eq!(profile.wallet, Some(wallet(&OWNER_KEY)));
    // By default the profile is Audius' word, and only the email is the token's.
    assert_eq!(profile.source, ProfileSource::UserRecord);
    assert_eq!(profile.handle, "alice");
    assert_eq!(profile.name, "Alice");
    assert!(!profile.verified, "the token's claim of verified was taken");
    assert_eq!(profile.email.as_deref(), Some("alice@example.com"));
    assert_eq!(
        profile
            .profile_picture
            .as_ref()
            .and_then(|p| p.small.as_deref()),
        Some("https://content.example.org/u/150x150.jpg")
    );
    assert_eq!(profile.issued_at.map(|t| t.unix_timestamp()), Some(IAT));
    assert_eq!(api.exact("/v1/users/eYorL/managers"), 0);
}

#[tokio::test]
async fn local_accepts_an_approved_manager() {
    let api = Directory::default()
        .with_user(USER, wallet(&OWNER_KEY))
        .with_managers(
            USER,
            vec![
                grant(7, wallet(&STRANGER_KEY), json!(true), true),
                grant(8, wallet(&MANAGER_KEY), json!(true), false),
            ],
        )
        .serve()
        .await;
    let profile = local(&api)
        .verify(&token(&MANAGER_KEY, USER, Some(IAT)))
        .await
        .expect("an approved manager's token");
    assert_eq!(profile.user_id, UserId::new(USER));
    assert_eq!(profile.signer, Some(wallet(&MANAGER_KEY)));
    assert_eq!(profile.wallet, Some(wallet(&OWNER_KEY)));
    assert_eq!(api.exact("/v1/users/eYorL/managers"), 1);
}

/// A manager list that carries another user's grant (an answer mixed up on the way, a cache
/// keyed wrongly): the grant names the user it manages (`grant.user_id`), and only a grant of
/// the token's user vouches for a signer (review 7).
#[tokio::test]
async fn local_refuses_a_manager_grant_of_another_user() {
    let mut others_grant = grant(8, wallet(&MANAGER_KEY), json!(true), false);
    others_grant["grant"]["user_id"] = json!(UserId::new(USER + 1).hashid());
    let api = Directory::default()
        .with_user(USER, wallet(&OWNER_KEY))
        .with_managers(USER, vec![others_grant])
        .serve()
        .await;
    let result = local(&api)
        .verify(&token(&MANAGER_KEY, USER, Some(IAT)))
        .await;
    assert_eq!(
        mismatch_status(result),
        None,
        "another user's grant vouches for nobody here"
    );
}

#[tokio::test]
async fn local_refuses_a_revoked_or_pending_manager() {
    for (approved, revoked) in [
        (json!(true), true),
        (json!(false), false),
        (Value::Null, false),
        (json!(false), true),
    ] {
        let api = Directory::default()
            .with_user(USER, wallet(&OWNER_KEY))
            .with_managers(
                USER,
                vec![grant(8, wallet(&MANAGER_KEY), approved.clone(), revoked)],
            )
            .serve()
            .await;
        let result = local(&api)
            .verify(&token(&MANAGER_KEY, USER, Some(IAT)))
            .await;
        // Local verification claims no Audius status: it does not know which Audius would give.
        assert_eq!(
            mismatch_status(result),
            None,
            "approved {approved}, revoked {revoked}"
        );
    }
    // A stranger, with no grant at all.
    let api = Directory::default()
        .with_user(USER, wallet(&OWNER_KEY))
        .serve()
        .await;
    assert_eq!(
        mismatch_status(
            local(&api)
                .verify(&token(&STRANGER_KEY, USER, Some(IAT)))
                .await
        ),
        None
    );
}

#[tokio::test]
async fn local_refuses_an_unknown_user() {
    let api = Directory::default().serve().await;
    let verifier = local(&api);
    // Not Audius' 404 "invalid wallet": whether an account owns the signer is not known here.
    let result = verifier.verify(&token(&OWNER_KEY, USER, Some(IAT))).await;
    match &result {
        Err(Error::WalletMismatch { message, .. }) => {
            assert!(message.contains("no user"), "{message}")
        }
        other => panic!("expected WalletMismatch, got {other:?}"),
    }
    assert_eq!(mismatch_status(result), None);
    assert_eq!(api.exact("/v1/users/eYorL"), 1);
    // The unknown id is remembered briefly: more tokens of that signer cost no request.
    for i in 1..=10 {
        let again = verifier
            .verify(&token(&OWNER_KEY, USER, Some(IAT + i)))
            .await;
        assert_eq!(kind(again), ErrorKind::WalletMismatch);
    }
    assert_eq!(api.total(), 1, "a negative entry answered the others");
    // Another signer (the account may exist by now) reads it again once; then it is refused
    // too, from the entry.
    for i in 1..=10 {
        let again = verifier
            .verify(&token(&STRANGER_KEY, USER, Some(IAT + i)))
            .await;
        assert_eq!(kind(again), ErrorKind::WalletMismatch);
    }
    assert_eq!(api.total(), 2, "one read again for a new signer");
    // ... and forgotten after its time to live.
    let brief = LocalVerifier::with_directory(Arc::new(
        UserDirectory::new(fixed(&api)).negative_ttl(Duration::from_millis(50)),
    ));
    brief.verify(&token(&OWNER_KEY, USER, Some(IAT))).await.ok();
    tokio::time::sleep(Duration::from_millis(80)).await;
    brief.verify(&token(&OWNER_KEY, USER, Some(IAT))).await.ok();
    assert_eq!(api.total(), 4);
}

#[tokio::test]
async fn local_uses_the_user_cache() {
    let api = Directory::default()
        .with_user(USER, wallet(&OWNER_KEY))
        .serve()
        .await;
    let verifier = local(&api);
    let first = token(&OWNER_KEY, USER, Some(IAT));
    let second = token(&OWNER_KEY, USER, Some(IAT + 1));
    verifier.verify(&first).await.expect("first");
    verifier.verify(&second).await.expect("second");
    assert_eq!(api.total(), 1, "the second verify made a request");
    assert_eq!(verifier.directory().cached(), 1);
}

#[tokio::test]
async fn local_reads_a_cached_user_again_at_most_once_per_interval() {
    const INTERVAL: Duration = Duration::from_millis(300);
    let directory = Directory::default().with_user(USER, wallet(&OWNER_KEY));
    let api = directory.serve().await;
    let verifier = LocalVerifier::with_directory(Arc::new(
        UserDirectory::new(fixed(&api)).refetch_interval(INTERVAL),
    ));
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("cached now");
    assert_eq!(api.exact("/v1/users/eYorL"), 1);

    // The account's wallet changed after it was cached. Within the interval the record is not
    // read again: the new wallet is refused for now (and costs one managers lookup)...
    directory.set_wallet(USER, wallet(&NEW_KEY));
    assert_eq!(
        kind(verifier.verify(&token(&NEW_KEY, USER, Some(IAT))).await),
        ErrorKind::WalletMismatch
    );
    assert_eq!(api.exact("/v1/users/eYorL"), 1);
    // ...after it, one more read, and the new wallet's token is accepted.
    tokio::time::sleep(INTERVAL + Duration::from_millis(50)).await;
    let profile = verifier
        .verify(&token(&NEW_KEY, USER, Some(IAT + 1)))
        .await
        .expect("the new wallet");
    assert_eq!(profile.wallet, Some(wallet(&NEW_KEY)));
    assert_eq!(api.exact("/v1/users/eYorL"), 2);
    // ... and the refreshed record is what the cache holds now.
    verifier
        .verify(&token(&NEW_KEY, USER, Some(IAT + 2)))
        .await
        .expect("cached");
    assert_eq!(api.exact("/v1/users/eYorL"), 2);

    // Strangers, however many, are refused without reading the record again (it was just
    // read) and with the manager list read once (cached, empty as it is).
    for i in 0..20 {
        assert_eq!(
            mismatch_status(
                verifier
                    .verify(&token(&STRANGER_KEY, USER, Some(IAT + i)))
                    .await
            ),
            None
        );
    }
    assert_eq!(api.exact("/v1/users/eYorL"), 2);
    assert_eq!(api.exact("/v1/users/eYorL/managers"), 1);
}

/// A login is judged against a record read within the refetch interval: an older one is read
/// again first, whatever the signer, so a wallet changed (or an account deactivated) at Audius
/// is refused here within the interval, although the user cache (5 minutes) still holds the
/// old record.
#[tokio::test]
async fn a_login_reads_a_record_older_than_the_refetch_interval_again() {
    const INTERVAL: Duration = Duration::from_millis(200);
    let directory = Directory::default().with_user(USER, wallet(&OWNER_KEY));
    let api = directory.serve().await;
    let verifier = LocalVerifier::with_directory(Arc::new(
        UserDirectory::new(fixed(&api)).refetch_interval(INTERVAL),
    ));
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("the owner");
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT + 1)))
        .await
        .expect("the owner again, from the cache");
    assert_eq!(api.exact("/v1/users/eYorL"), 1);
    // The wallet changes at Audius (the old key leaked, say): past the interval, the old key
    // is refused at its next login.
    directory.set_wallet(USER, wallet(&NEW_KEY));
    tokio::time::sleep(INTERVAL + Duration::from_millis(50)).await;
    assert_eq!(
        kind(
            verifier
                .verify(&token(&OWNER_KEY, USER, Some(IAT + 2)))
                .await
        ),
        ErrorKind::WalletMismatch
    );
    assert_eq!(api.exact("/v1/users/eYorL"), 2, "read again, once");
    verifier
        .verify(&token(&NEW_KEY, USER, Some(IAT + 3)))
        .await
        .expect("the new wallet, from the record just read");
    assert_eq!(api.exact("/v1/users/eYorL"), 2);
}

/// A read that fails (Audius rate limiting the app, or failing) counts as a read: forged
/// tokens during the episode do not each make a request. The cached record decides meanwhile:
/// the owner still gets in, a token that does not match it is refused (as Audius being
/// unavailable, since no cached manager list can vouch for its signer), and the next read waits
/// the interval, doubling while reads keep failing.
#[tokio::test]
async fn a_failing_refetch_backs_off_and_the_cached_record_decides() {
    const INTERVAL: Duration = Duration::from_millis(1000);
    let directory = Directory::default().with_user(USER, wallet(&OWNER_KEY));
    let api = directory.serve().await;
    let verifier = LocalVerifier::with_directory(Arc::new(
        UserDirectory::new(fixed(&api)).refetch_interval(INTERVAL),
    ));
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("cached now");
    tokio::time::sleep(INTERVAL + Duration::from_millis(50)).await;
    directory.fail_with(Some(audius_error(429, "Too many requests")));
    let before = api.total();
    for i in 0..20 {
        assert_eq!(
            kind(
                verifier
                    .verify(&token(&STRANGER_KEY, USER, Some(IAT + i)))
                    .await
            ),
            ErrorKind::UpstreamUnavailable,
            "forged token {i}"
        );
    }
    assert_eq!(
        api.total() - before,
        1,
        "one failed read for twenty forged tokens"
    );
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT + 100)))
        .await
        .expect("the owner, from the cached record, while Audius fails");
    assert_eq!(api.total() - before, 1);
    // After the back-off, one more attempt (failing again: the next waits twice as long).
    tokio::time::sleep(INTERVAL + Duration::from_millis(50)).await;
    for i in 0..5 {
        verifier
            .verify(&token(&STRANGER_KEY, USER, Some(IAT + 200 + i)))
            .await
            .expect_err("forged");
    }
    assert_eq!(api.total() - before, 2);
    tokio::time::sleep(INTERVAL + Duration::from_millis(50)).await;
    verifier
        .verify(&token(&STRANGER_KEY, USER, Some(IAT + 300)))
        .await
        .expect_err("forged");
    assert_eq!(
        api.total() - before,
        2,
        "still backing off (twice the interval)"
    );
    // Audius answers again: once the back-off ends, the record is read, and forged tokens are
    // refused as such (the manager list read once).
    directory.fail_with(None);
    tokio::time::sleep(INTERVAL).await;
    for i in 0..5 {
        assert_eq!(
            kind(
                verifier
                    .verify(&token(&STRANGER_KEY, USER, Some(IAT + 400 + i)))
                    .await
            ),
            ErrorKind::WalletMismatch
        );
    }
    assert_eq!(api.exact("/v1/users/eYorL"), 4);
    assert_eq!(api.exact("/v1/users/eYorL/managers"), 1);
}

/// A manager list that cannot be read is not asked for again within the back-off.
#[tokio::test]
async fn a_manager_list_that_fails_is_not_read_again_within_the_back_off() {
    let directory = Directory::default().with_user(USER, wallet(&OWNER_KEY));
    let api = directory.serve().await;
    let verifier = local(&api);
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("cached now (the record is fresh for 30 s)");
    directory.fail_with(Some(audius_error(503, "down")));
    for i in 0..20 {
        assert_eq!(
            kind(
                verifier
                    .verify(&token(&STRANGER_KEY, USER, Some(IAT + i)))
                    .await
            ),
            ErrorKind::UpstreamUnavailable
        );
    }
    assert_eq!(api.exact("/v1/users/eYorL/managers"), 1);
    assert_eq!(api.exact("/v1/users/eYorL"), 1);
}

/// Concurrent lookups of one user share one request and its outcome, failures included: six
/// concurrent verifications while Audius hangs answer within about one timeout, after one
/// request (not the k-th after k timeouts).
#[tokio::test]
async fn concurrent_lookups_share_one_failed_request() {
    let directory = Directory::default().with_user(USER, wallet(&OWNER_KEY));
    directory.fail_with(Some(Reply::Hang));
    let api = directory.serve().await;
    let verifier = local(&api);
    let forged: Vec<String> = (0..6u8)
        .map(|i| token(&[0x60 + i; 32], USER, Some(IAT + i64::from(i))))
        .collect();
    let started = std::time::Instant::now();
    let results = futures_util::future::join_all(forged.iter().map(|t| verifier.verify(t))).await;
    let took = started.elapsed();
    for result in results {
        assert_eq!(kind(result), ErrorKind::UpstreamUnavailable);
    }
    assert_eq!(api.exact("/v1/users/eYorL"), 1, "one request for all six");
    assert!(
        took < TIMEOUT * 3,
        "took {took:?}; one timeout is {TIMEOUT:?}"
    );
    // The next lookup is a new request (a failure of a user never cached is not remembered).
    directory.fail_with(None);
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("Audius answers again");
    assert_eq!(api.exact("/v1/users/eYorL"), 2);
}

#[tokio::test]
async fn forged_tokens_for_one_user_cost_at_most_two_requests() {
    let api = Directory::default()
        .with_user(USER, wallet(&OWNER_KEY))
        .serve()
        .await;
    let verifier = local(&api);
    // Twenty distinct forged tokens, each signed by a key nobody owns, concurrently.
    let forged: Vec<String> = (0..20u8)
        .map(|i| token(&[0x50 + i; 32], USER, Some(IAT + i64::from(i))))
        .collect();
    let results = futures_util::future::join_all(forged.iter().map(|t| verifier.verify(t))).await;
    for result in results {
        assert_eq!(kind(result), ErrorKind::WalletMismatch);
    }
    assert_eq!(api.exact("/v1/users/eYorL"), 1, "the record, once");
    assert_eq!(
        api.exact("/v1/users/eYorL/managers"),
        1,
        "the managers, once"
    );
    assert_eq!(api.total(), 2);
    // The owner still gets in, from the cache.
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("the owner");
    assert_eq!(api.total(), 2);
}

#[tokio::test]
async fn local_refuses_a_deactivated_account_or_manager() {
    // The account itself is deactivated: refused, whoever signs.
    let deactivated = |user: u64, w: Wallet| {
        let mut u = user_json(user, w);
        u["is_deactivated"] = json!(true);
        u
    };
    let owner = wallet(&OWNER_KEY);
    let api = Stub::start(move |s: &Seen| match s.path.as_str() {
        "/v1/users/eYorL" => json_answer(200, json!({"data": deactivated(USER, owner)})),
        _ => audius_error(404, "User not found"),
    })
    .await;
    let result = local(&api)
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await;
    match &result {
        Err(Error::WalletMismatch { message, status }) => {
            assert!(message.contains("deactivated"), "{message}");
            assert_eq!(*status, None);
        }
        other => panic!("expected WalletMismatch, got {other:?}"),
    }
    // A manager whose own account is deactivated: its approved grant no longer counts.
    let mut manager = grant(8, wallet(&MANAGER_KEY), json!(true), false);
    manager["manager"]["is_deactivated"] = json!(true);
    let api = Directory::default()
        .with_user(USER, owner)
        .with_managers(USER, vec![manager])
        .serve()
        .await;
    let result = local(&api)
        .verify(&token(&MANAGER_KEY, USER, Some(IAT)))
        .await;
    match &result {
        Err(Error::WalletMismatch { message, .. }) => {
            assert!(message.contains("deactivated"), "{message}")
        }
        other => panic!("expected WalletMismatch, got {other:?}"),
    }
    // The owner of an active account is unaffected.
    local(&api)
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("the owner");
}

const APP_KEY: &str = "0123456789abcdef0123456789abcdef01234567";

fn token_for_app(key: &[u8; 32], api_key: Value) -> String {
    let mut c = claims(USER, Some(IAT));
    c.insert("apiKey".into(), api_key);
    Token::sign(&c, key).expect("signs")
}

/// The key a token must carry is an API key: anything else (empty, blank, `0x` alone, a
/// prefix, not hex) would make tokens with such an `apiKey` "this app's", and is refused with
/// `Error::Config`; the key is normalised (trimmed, no `0x`/`0X`, lower case).
#[test]
fn verify_options_refuse_an_api_key_that_is_not_one() {
    let not_hex = "z".repeat(40);
    for bad in ["", " ", "0x", "0X", " 0x ", &APP_KEY[..39], &not_hex] {
        match VerifyOptions::default().api_key(Some(bad)) {
            Err(e) => assert_eq!(e.kind(), ErrorKind::Config, "{bad:?}"),
            Ok(o) => panic!("{bad:?} accepted as {:?}", o.get_api_key()),
        }
    }
    let options = VerifyOptions::default()
        .api_key(Some(&format!(" 0X{} ", APP_KEY.to_ascii_uppercase())))
        .expect("a key");
    assert_eq!(options.get_api_key(), Some(APP_KEY));
    assert_eq!(
        VerifyOptions::default()
            .api_key(None)
            .expect("no key")
            .get_api_key(),
        None
    );
    // A token whose apiKey is blank or `0x` is another app's.
    for blank in ["", "0x", "  "] {
        let c = object(json!({"userId": "eYorL", "iat": IAT, "apiKey": blank}));
        let claims = audius_login::Claims::from_map(c).expect("claims");
        assert_eq!(
            options.check_audience(&claims).expect_err("refused").kind(),
            ErrorKind::AudienceMismatch,
            "{blank:?}"
        );
    }
}

#[tokio::test]
async fn both_verifiers_refuse_a_token_for_another_app_without_a_request() {
    let api = verify_api(
        json_answer(200, json!({"data": go_data(&claims(USER, Some(IAT)))})),
        Directory::default().with_user(USER, wallet(&OWNER_KEY)),
    )
    .await;
    let options = VerifyOptions::default()
        .api_key(Some(APP_KEY))
        .expect("a key");
    let verifiers: Vec<(&str, Box<dyn Verifier>)> = vec![
        ("local", Box::new(local(&api).options(options.clone()))),
        (
            "api",
            Box::new(ApiVerifier::new(fixed(&api)).options(options.clone())),
        ),
    ];
    let other_app = "89abcdef0123456789abcdef0123456789abcdef";
    for (name, verifier) in &verifiers {
        for (case, api_key) in [
            ("another app", json!(other_app)),
            ("no apiKey", Value::Null),
            ("a number", json!(7)),
            ("half the key", json!(&APP_KEY[..20])),
        ] {
            let result = verifier.verify(&token_for_app(&OWNER_KEY, api_key)).await;
            assert_eq!(kind(result), ErrorKind::AudienceMismatch, "{name}: {case}");
        }
        let mut absent = claims(USER, Some(IAT));
        absent.remove("apiKey");
        let absent = Token::sign(&absent, &OWNER_KEY).expect("signs");
        match verifier.verify(&absent).await {
            Err(e @ Error::AudienceMismatch { found: None, .. }) => {
                assert_eq!(e.suggested_status(), 401, "{name}")
            }
            other => panic!("{name}: expected AudienceMismatch, got {other:?}"),
        }
    }
    assert_eq!(api.total(), 0, "refused before any request");
    // The app's own key, in any spelling, passes.
    for spelling in [
        APP_KEY.to_owned(),
        APP_KEY.to_ascii_uppercase(),
        format!("0x{APP_KEY}"),
        format!("0X{}", APP_KEY.to_ascii_uppercase()),
    ] {
        for (name, verifier) in &verifiers {
            verifier
                .verify(&token_for_app(&OWNER_KEY, json!(spelling)))
                .await
                .unwrap_or_else(|e| panic!("{name}: {spelling}: {e}"));
        }
    }
}

#[tokio::test]
async fn api_verifier_checks_age_and_parses_before_asking() {
    let api = verify_api(
        json_answer(200, json!({"data": go_data(&claims(USER, Some(IAT)))})),
        Directory::default().with_user(USER, wallet(&OWNER_KEY)),
    )
    .await;
    let clock = Arc::new(ManualClock::at_unix(IAT + 3600));
    let verifier = ApiVerifier::new(fixed(&api)).options(
        VerifyOptions::default()
            .max_age(Some(Duration::from_secs(300)))
            .clock(clock),
    );
    assert_eq!(
        kind(verifier.verify(&token(&OWNER_KEY, USER, Some(IAT))).await),
        ErrorKind::Stale
    );
    assert_eq!(
        kind(verifier.verify("not.a.token").await),
        ErrorKind::Malformed
    );
    let good = token(&OWNER_KEY, USER, Some(IAT));
    let (signed, _) = good.rsplit_once('.').expect("three parts");
    let zero = audius_login::Signature::from_bytes([0u8; 65]).to_segment();
    assert_eq!(
        kind(verifier.verify(&format!("{signed}.{zero}")).await),
        ErrorKind::BadSignature
    );
    assert_eq!(api.total(), 0, "no request for any of them");
}

#[tokio::test]
async fn local_enforces_the_maximum_age_against_the_clock() {
    let api = Directory::default()
        .with_user(USER, wallet(&OWNER_KEY))
        .serve()
        .await;
    let clock = Arc::new(ManualClock::at_unix(IAT + 60));
    let verifier = local(&api).options(
        VerifyOptions::default()
            .max_age(Some(Duration::from_secs(300)))
            .clock_skew(Duration::from_secs(30))
            .clock(clock.clone()),
    );
    verifier
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("fresh");
    let stale = |result: Result<_, Error>| match result {
        Err(Error::Stale { max_age, .. }) => assert_eq!(max_age, Duration::from_secs(300)),
        other => panic!("expected Stale, got {other:?}"),
    };
    // Old.
    clock.advance(Duration::from_secs(300));
    stale(verifier.verify(&token(&OWNER_KEY, USER, Some(IAT))).await);
    // From the future.
    stale(
        verifier
            .verify(&token(&OWNER_KEY, USER, Some(IAT + 3600)))
            .await,
    );
    // Without iat.
    stale(verifier.verify(&token(&OWNER_KEY, USER, None)).await);
    // Without a maximum age, the same old token is accepted.
    local(&api)
        .options(VerifyOptions::default().clock(clock))
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await
        .expect("no age limit");
}

#[tokio::test]
async fn local_refuses_bad_tokens_without_a_request() {
    let api = Directory::default()
        .with_user(USER, wallet(&OWNER_KEY))
        .serve()
        .await;
    let verifier = local(&api);
    let good = token(&OWNER_KEY, USER, Some(IAT));
    let (signed, _) = good.rsplit_once('.').expect("three parts");
    assert_eq!(
        kind(verifier.verify("not a token").await),
        ErrorKind::Malformed
    );
    // A signature of 65 zero bytes recovers nobody.
    let zero = audius_login::Signature::from_bytes([0u8; 65]).to_segment();
    assert_eq!(
        kind(verifier.verify(&format!("{signed}.{zero}")).await),
        ErrorKind::BadSignature
    );
    assert_eq!(
        kind(verifier.verify(&"a".repeat(20_000)).await),
        ErrorKind::TooLarge
    );
    // A legacy numeric userId is refused, as the API refuses it.
    let mut numeric = claims(USER, Some(IAT));
    numeric.insert("userId".into(), json!(USER));
    let numeric = Token::sign(&numeric, &OWNER_KEY).expect("signs");
    match verifier.verify(&numeric).await {
        Err(Error::Malformed { part, .. }) => assert_eq!(part, TokenPart::UserId),
        other => panic!("expected Malformed(user_id), got {other:?}"),
    }
    assert_eq!(api.total(), 0);
    // ... unless asked to accept it.
    local(&api)
        .accept_numeric_user_id(true)
        .verify(&numeric)
        .await
        .expect("legacy accepted");
}

#[tokio::test]
async fn local_maps_a_broken_user_lookup_to_typed_errors() {
    let token = token(&OWNER_KEY, USER, Some(IAT));
    let cases: Vec<(Reply, ErrorKind)> = vec![
        (audius_error(500, "db down"), ErrorKind::UpstreamUnavailable),
        (
            audius_error(429, "slow down"),
            ErrorKind::UpstreamUnavailable,
        ),
        (answer(200, "<html>"), ErrorKind::UpstreamUnexpected),
        (
            json_answer(200, json!({"data": {"handle": "no id"}})),
            ErrorKind::UpstreamUnexpected,
        ),
        // The API answered another user than the one asked for.
        (
            json_answer(200, json!({"data": user_json(45, wallet(&OWNER_KEY))})),
            ErrorKind::UpstreamUnexpected,
        ),
        (audius_error(401, "no"), ErrorKind::UpstreamUnexpected),
    ];
    for (i, (reply, want)) in cases.into_iter().enumerate() {
        let api = Stub::start(move |_: &Seen| reply.clone()).await;
        assert_eq!(kind(local(&api).verify(&token).await), want, "case {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// ApiVerifier: every answer of spec 4.1
// ---------------------------------------------------------------------------------------------

/// An API whose `verify_token` gives `reply`, and whose user lookups use `directory`.
async fn verify_api(reply: Reply, directory: Directory) -> Stub {
    Stub::start(move |s: &Seen| {
        if s.path == "/v1/users/verify_token" {
            reply.clone()
        } else {
            directory.reply(s)
        }
    })
    .await
}

#[tokio::test]
async fn api_verifier_maps_every_error_answer() {
    enum Want {
        Malformed(TokenPart),
        BadSignature,
        Mismatch(u16),
        Unavailable(u16),
        Unexpected(u16),
    }
    use Want::*;
    let go = [
        (400, "token is required", Malformed(TokenPart::Unknown)),
        (
            400,
            "Invalid JWT token format",
            Malformed(TokenPart::Structure),
        ),
        (
            400,
            "The JWT signature could not be decoded",
            Malformed(TokenPart::Signature),
        ),
        (
            400,
            "The JWT signature was incorrectly signed",
            Malformed(TokenPart::Signature),
        ),
        (
            400,
            "JWT payload could not be decoded",
            Malformed(TokenPart::Payload),
        ),
        (
            400,
            "JWT payload could not be unmarshalled",
            Malformed(TokenPart::Payload),
        ),
        (
            400,
            "JWT payload missing userId field",
            Malformed(TokenPart::UserId),
        ),
        (
            400,
            "JWT payload userId must be a string",
            Malformed(TokenPart::UserId),
        ),
        (
            400,
            "Invalid JWT payload userId",
            Malformed(TokenPart::UserId),
        ),
        (
            404,
            "The JWT signature is invalid - wallet could not be recovered",
            BadSignature,
        ),
        (
            404,
            "The JWT signature is invalid - invalid wallet",
            Mismatch(404),
        ),
        (
            403,
            "The JWT signature is invalid - the wallet does not match the user",
            Mismatch(403),
        ),
        (429, "Too many requests", Unavailable(429)),
        (404, "Not found", Unexpected(404)),
        (401, "Unauthorized", Unexpected(401)),
        (418, "teapot", Unexpected(418)),
    ];
    // The older Python servers: the same answers, messages ending in a full stop.
    let python: Vec<_> = go
        .iter()
        .filter(|(status, _, _)| matches!(status, 400 | 403 | 404))
        .filter(|(_, text, _)| *text != "Not found" && *text != "token is required")
        .map(|(status, text, want)| {
            let want = match want {
                Malformed(p) => Malformed(*p),
                BadSignature => BadSignature,
                Mismatch(s) => Mismatch(*s),
                Unavailable(s) => Unavailable(*s),
                Unexpected(s) => Unexpected(*s),
            };
            (*status, format!("{text}."), want)
        })
        .collect();
    let all = go
        .iter()
        .map(|(s, t, w)| {
            (
                *s,
                (*t).to_owned(),
                match w {
                    Malformed(p) => Malformed(*p),
                    BadSignature => BadSignature,
                    Mismatch(s) => Mismatch(*s),
                    Unavailable(s) => Unavailable(*s),
                    Unexpected(s) => Unexpected(*s),
                },
            )
        })
        .chain(python);
    let token = token(&OWNER_KEY, USER, Some(IAT));
    for (status, text, want) in all {
        let api = verify_api(audius_error(status, &text), Directory::default()).await;
        let verifier = ApiVerifier::new(fixed(&api));
        let result = verifier.verify(&token).await;
        let what = format!("{status} {text:?}: got {result:?}");
        match (want, result) {
            (Malformed(part), Err(Error::Malformed { part: got, message })) => {
                assert_eq!(got, part, "{what}");
                assert_eq!(message, text, "{what}: the server's words are kept");
            }
            (BadSignature, Err(Error::BadSignature { message })) => {
                assert_eq!(message, text, "{what}")
            }
            (
                Mismatch(s),
                Err(Error::WalletMismatch {
                    status: got,
                    message,
                }),
            ) => {
                assert_eq!(got, Some(s), "{what}");
                assert_eq!(message, text, "{what}");
            }
            (Unavailable(s), Err(Error::UpstreamUnavailable { status: got, .. })) => {
                assert_eq!(got, Some(s), "{what}")
            }
            (
                Unexpected(s),
                Err(Error::UpstreamUnexpected {
                    status: got,
                    message,
                }),
            ) => {
                assert_eq!(got, s, "{what}");
                assert_eq!(message, text, "{what}");
            }
            _ => panic!("{what}"),
        }
        // The token went to the server, whole, as the `token` query parameter; nothing else
        // was asked.
        let seen = api.seen();
        assert_eq!(seen.len(), 1, "{what}");
        assert_eq!(seen[0].query("token").as_deref(), Some(token.as_str()));
    }
}

#[tokio::test]
async fn api_verifier_reports_500_after_failing_over() {
    let a = Stub::healthy(|_: &Seen| audius_error(500, "internal error")).await;
    let b = Stub::healthy(|_: &Seen| audius_error(500, "internal error")).await;
    let client = fast()
        .hosts(vec![a.url(), b.url()])
        .build()
        .expect("client");
    let result = ApiVerifier::new(client)
        .verify(&token(&OWNER_KEY, USER, Some(IAT)))
        .await;
    match result {
        Err(Error::UpstreamUnavailable { status, .. }) => assert_eq!(status, Some(500)),
        other => panic!("expected UpstreamUnavailable, got {other:?}"),
    }
    assert_eq!(a.count("/v1/users/verify_token"), 1);
    assert_eq!(b.count("/v1/users/verify_token"), 1);
}

/// The `data` the current (Go) server answers: the whole payload, `iat` as a string.
fn go_data(token_claims: &Map<String, Value>) -> Value {
    let mut data = token_claims.clone();
    if let Some(iat) = data.get("iat").and_then(Value::as_i64) {
        data.insert("iat".into(), iat.to_string().into());
    }
    Value::Object(data)
}

#[tokio::test]
async fn api_verifier_reads_the_current_answer() {
    let mut signed = claims(USER, Some(IAT));
    signed.insert(
        "apiKey".into(),
        json!("0123456789abcdef0123456789abcdef01234567"),
    );
    signed.insert("txSignature".into(), json!({"r": "0x1"}));
    signed.insert("favoriteColor".into(), json!("teal"));
    let token = Token::sign(&signed, &OWNER_KEY).expect("signs");
    let data = go_data(&signed);
    let directory = Directory::default().with_user(USER, wallet(&OWNER_KEY));
    let api = verify_api(json_answer(200, json!({ "data": data })), directory).await;

    // Profile from the user record (the default).
    let verifier = ApiVerifier::new(fixed(&api));
    let profile = verifier.verify(&token).await.expect("verified");
    assert_eq!(profile.user_id, UserId::new(USER));
    assert_eq!(profile.handle, "alice");
    assert_eq!(profile.name, "Alice");
    assert!(!profile.verified);
    assert_eq!(profile.email.as_deref(), Some("alice@example.com"));
    assert_eq!(profile.wallet, Some(wallet(&OWNER_KEY)));
    assert_eq!(profile.signer, None);
    assert_eq!(profile.issued_at.map(|t| t.unix_timestamp()), Some(IAT));
    let c = &profile.claims;
    assert_eq!(c.iat, Some(IAT));
    assert_eq!(c.sub, Some(UserId::new(USER)));
    assert_eq!(
        c.api_key.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(c.extra.get("txSignature"), Some(&json!({"r": "0x1"})));
    assert_eq!(c.extra.get("favoriteColor"), Some(&json!("teal")));
    assert_eq!(
        serde_json::to_value(c).expect("serialises"),
        data,
        "every claim kept as answered"
    );
    assert_eq!(api.count("/v1/users/verify_token"), 1);
    assert_eq!(api.exact("/v1/users/eYorL"), 1);

    // Profile from the token's claims: no user lookup.
    let before = api.exact("/v1/users/eYorL");
    let verifier = ApiVerifier::new(fixed(&api))
        .options(VerifyOptions::default().profile_source(ProfileSource::TokenClaims));
    let profile = verifier.verify(&token).await.expect("verified");
    assert_eq!(profile.handle, "alice_token");
    assert_eq!(profile.name, "Alice (token)");
    assert!(profile.verified);
    assert_eq!(
        profile.profile_picture.as_ref().map(|p| p.mirrors.clone()),
        Some(vec!["https://mirror.example.org".to_owned()])
    );
    assert_eq!(profile.wallet, None);
    assert_eq!(api.exact("/v1/users/eYorL"), before);
}

#[tokio::test]
async fn api_verifier_reads_the_older_python_answer() {
    // Only the documented claims; userId, sub and iat as strings (decimal or hashid).
    for id_text in ["44", "eYorL"] {
        let data = json!({
            "userId": id_text,
            "email": "alice@example.com",
            "name": "Alice",
            "handle": "alice",
            "verified": false,
            "profilePicture": null,
            "apiKey": null,
            "sub": id_text,
            "iat": IAT.to_string(),
        });
        let api = verify_api(
            json_answer(200, json!({ "data": data })),
            Directory::default(),
        )
        .await;
        let clock = Arc::new(ManualClock::at_unix(IAT + 10));
        let verifier = ApiVerifier::new(fixed(&api)).options(
            VerifyOptions::default()
                .profile_source(ProfileSource::TokenClaims)
                .max_age(Some(Duration::from_secs(300)))
                .clock(clock.clone()),
        );
        let token = token(&OWNER_KEY, USER, Some(IAT));
        let profile = verifier.verify(&token).await.expect(id_text);
        assert_eq!(profile.user_id, UserId::new(USER), "{id_text}");
        assert_eq!(profile.claims.sub, Some(UserId::new(USER)), "{id_text}");
        assert_eq!(profile.claims.iat, Some(IAT), "{id_text}");
        assert_eq!(profile.handle, "alice");
        assert_eq!(profile.profile_picture, None);
        assert!(profile.claims.extra.is_empty());
        // The string iat is judged by the age rule like a number.
        clock.advance(Duration::from_secs(3600));
        assert_eq!(kind(verifier.verify(&token).await), ErrorKind::Stale);
    }
}

#[tokio::test]
async fn api_verifier_refuses_an_oversized_token_without_a_request() {
    let api = Stub::start(|_: &Seen| ok_json()).await;
    let verifier = ApiVerifier::new(fixed(&api));
    assert_eq!(
        kind(verifier.verify(&"a".repeat(16 * 1024 + 1)).await),
        ErrorKind::TooLarge
    );
    assert_eq!(api.total(), 0);
}

#[tokio::test]
async fn api_verifier_flags_a_user_the_lookup_does_not_know() {
    let data = go_data(&claims(USER, Some(IAT)));
    let api = verify_api(
        json_answer(200, json!({ "data": data })),
        Directory::default(),
    )
    .await;
    assert_eq!(
        kind(
            ApiVerifier::new(fixed(&api))
                .verify(&token(&OWNER_KEY, USER, Some(IAT)))
                .await
        ),
        ErrorKind::UpstreamUnexpected
    );
}

// ---------------------------------------------------------------------------------------------
// Error messages
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn transport_errors_never_carry_the_token() {
    // A token is a credential until it is too old: it must not end up in error messages, which
    // are logged and may be shown.
    let token = token(&OWNER_KEY, USER, Some(IAT));
    let truncated = || {
        let mut bytes = head_with_length(100).into_bytes();
        bytes.extend_from_slice(b"{\"data\":");
        Reply::Raw(bytes)
    };
    let bad_chunk = || Reply::Raw(format!("{CHUNKED_HEAD}zz\r\nxx\r\n0\r\n\r\n").into_bytes());
    let cases: Vec<(&str, Reply)> = vec![
        ("hang", Reply::Hang),
        ("close", Reply::Close),
        ("truncated", truncated()),
        ("bad chunk", bad_chunk()),
        (
            "garbage status line",
            Reply::Raw(b"NOT HTTP AT ALL\r\n\r\n".to_vec()),
        ),
        (
            "trickle",
            Reply::Trickle(
                head_with_length(1000).into_bytes(),
                Duration::from_millis(20),
            ),
        ),
    ];
    let payload = token.split('.').nth(1).expect("a payload");
    for (what, reply) in cases {
        let api = Stub::start(move |_: &Seen| reply.clone()).await;
        let err = ApiVerifier::new(fixed(&api))
            .verify(&token)
            .await
            .expect_err(what);
        assert_eq!(err.kind(), ErrorKind::UpstreamUnavailable, "{what}: {err}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(
                !shown.contains(payload) && !shown.contains("token="),
                "{what}: the token leaks into {shown}"
            );
        }
        assert_eq!(api.count("/v1/users/verify_token"), 1, "{what}");
    }
    let dead = dead_url().await;
    let err = ApiVerifier::new(fast().base_url(dead).build().expect("client"))
        .verify(&token)
        .await
        .expect_err("refused");
    assert!(!err.to_string().contains(payload), "refused: {err}");
}
