#![allow(clippy::unwrap_used)]
//! A tenth independent review (main at 9a26580): `ApiClient::with_own_connections` and
//! `OAuthClient::with_own_connections`, which the actix crate's background runtime uses for its
//! refreshes and revocations. Promise: a copy with the same settings (hosts, host selection and
//! fail-over, timeouts, body cap, user agent, `client_id`, body encoding), and connections of its
//! own. Against a keep-alive stub HTTP/1.1 server written here.
//!
//! Tests marked FINDING assert the promised behaviour and FAIL on the code they were written
//! against; the others are defences that held, kept because the suite lacked their case.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audius_login::oauth::{BodyEncoding, OAuthClient};
use audius_login::{ApiClient, ErrorKind};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use url::Url;

const KEY: &str = "c0de00c0de00c0de00c0de00c0de00c0de00c0de";

/// One request as the stub saw it: the connection it came on, its head and its body.
#[derive(Debug, Clone)]
struct Seen {
    conn: usize,
    head: String,
    body: String,
}

/// A keep-alive HTTP/1.1 stub: `/health_check` is healthy, `/big` answers 1 KiB, `/hang`
/// never answers, everything else `{"data":{}}`.
struct Stub {
    url: Url,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let l = log.clone();
        // On a thread of its own, so that it outlives any runtime a test drops.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let listener =
                rt.block_on(async { TcpListener::from_std(listener.into_std().unwrap()) });
            let listener = listener.unwrap();
            rt.block_on(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let conn = conns.fetch_add(1, Ordering::SeqCst);
                    let log = l.clone();
                    tokio::spawn(async move {
                        let mut stream = BufReader::new(stream);
                        loop {
                            let mut head = String::new();
                            loop {
                                let mut line = String::new();
                                if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == "\r\n" {
                                    break;
                                }
                                head.push_str(&line);
                            }
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            let mut body = vec![0; length];
                            stream.read_exact(&mut body).await.unwrap();
                            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                            log.lock().unwrap().push(Seen {
                                conn,
                                head: head.clone(),
                                body: String::from_utf8_lossy(&body).into_owned(),
                            });
                            let answer = match path.as_str() {
                                "/hang" => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    return;
                                }
                                "/health_check" => r#"{"data":{"healthy":true}}"#.to_owned(),
                                "/big" => format!(r#"{{"data":"{}"}}"#, "a".repeat(1024)),
                                _ => r#"{"data":{}}"#.to_owned(),
                            };
                            let reply = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                 Content-Length: {}\r\n\r\n{answer}",
                                answer.len()
                            );
                            if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
        });
        Self { url, log }
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    fn api(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| !s.head.contains("/health_check"))
            .collect()
    }
}

/// A port that was bound and released: connections to it are refused.
async fn dead_url() -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    url
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

// Held: the copy keeps the host list (a dead host first, failed over), the body cap, the user
// agent, the timeouts (the call budget and a hang cut at the request timeout), `client_id` and
// the JSON body encoding.
#[tokio::test]
async fn a_copy_keeps_every_setting() {
    let stub = Stub::start().await;
    let dead = dead_url().await;
    let api = ApiClient::builder()
        .hosts(vec![dead.clone(), stub.url.clone()])
        .timeout(Duration::from_millis(400))
        .connect_timeout(Duration::from_millis(300))
        .health_timeout(Duration::from_millis(200))
        .max_attempts(2)
        .probe_count(1)
        .max_body_bytes(512)
        .user_agent("review10-agent/1")
        .build()
        .unwrap();
    let oauth = OAuthClient::new(api.clone())
        .client_id(KEY)
        .unwrap()
        .body_encoding(BodyEncoding::Json);
    let copy = oauth.with_own_connections().unwrap();
    assert_eq!(copy.api().source(), api.source());
    assert_eq!(copy.api().max_body_bytes(), 512);
    assert_eq!(copy.api().call_budget(), api.call_budget());
    assert_eq!(copy.get_client_id(), oauth.get_client_id());

    copy.revoke("the-refresh-token").await.unwrap();
    let calls = stub.api();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let revoke = &calls[0];
    assert!(
        revoke.head.starts_with("POST /v1/oauth/revoke "),
        "{revoke:?}"
    );
    assert_eq!(header(revoke, "user-agent"), Some("review10-agent/1"));
    assert_eq!(header(revoke, "content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&revoke.body).unwrap();
    assert_eq!(body["token"], "the-refresh-token");
    assert_eq!(body["client_id"], oauth.get_client_id().unwrap());

    // Over the cap (1 KiB > 512 bytes): refused, then failed over to the dead host, as the
    // original does (a copy with the default 1 MiB cap would answer 200).
    let too_big = copy.api().get("/big").await.unwrap_err();
    let original = api.get("/big").await.unwrap_err();
    assert_eq!(
        too_big.kind(),
        original.kind(),
        "{too_big:?} / {original:?}"
    );
    let started = Instant::now();
    let hung = copy.api().get("/hang").await.unwrap_err();
    assert_eq!(hung.kind(), ErrorKind::UpstreamUnavailable, "{hung:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

// Held: the copy's connections are its own. A connection the original opened on a runtime that
// is then dropped (a stopped worker) is not used by the copy: its call succeeds on a new one.
#[tokio::test]
async fn a_copy_does_not_ride_a_connection_of_a_dropped_runtime() {
    let stub = Stub::start().await;
    let api = ApiClient::builder()
        .base_url(stub.url.clone())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let copy = api.with_own_connections().unwrap();
    // "A worker": a runtime that makes one call (its keep-alive connection pooled), then dies.
    let on_worker = api.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { on_worker.get("/v1/users/1").await.unwrap() })
    })
    .join()
    .unwrap();
    let answer = copy.get("/v1/users/2").await.unwrap();
    assert_eq!(answer.status, 200);
    let conns: Vec<usize> = stub.api().iter().map(|s| s.conn).collect();
    assert_eq!(conns.len(), 2);
    assert_ne!(
        conns[0], conns[1],
        "the copy rode the dead runtime's connection"
    );
}
