//! What the suites of the code flow's refresh across instances share
//! (`refresh_two_instances.rs`, `review4_refresh_attacks.rs`, `review5_refresh_attacks.rs`): a
//! TCP proxy in front of Redis that a test can cut (a partition), the refreshes Audius received,
//! and the tokens in a browser's session cookie.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::cookie::{Cookie, CookieJar, Key};
use audius_sandbox::SandboxHandle;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use reqwest::header::ACCEPT;

use crate::app::SESSION_COOKIE;
use crate::http::{self, begin_login, client_with_jar};

/// Forwards 127.0.0.1:`port` to Redis; [`cut`](Self::cut) closes every connection and refuses
/// new ones until [`heal`](Self::heal).
pub struct RedisProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    /// Commands still reach Redis; its replies are dropped.
    mute: Arc<AtomicBool>,
    pumps: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl RedisProxy {
    /// Starts forwarding to Redis on 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let mute = Arc::new(AtomicBool::new(false));
        let pumps: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (cut2, pumps2, mute2) = (cut.clone(), pumps.clone(), mute.clone());
        let std_listener = listener.into_std().unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut2.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let mute = mute2.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)).await {
                            let (mut in_read, mut in_write) = inbound.into_split();
                            let (mut out_read, mut out_write) = outbound.into_split();
                            let up = async {
                                let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
                            };
                            // Redis' replies, dropped while muted.
                            let down = async {
                                let mut chunk = [0u8; 4096];
                                while let Ok(n) = out_read.read(&mut chunk).await {
                                    if n == 0 {
                                        break;
                                    }
                                    if mute.load(Ordering::SeqCst) {
                                        continue;
                                    }
                                    if in_write.write_all(&chunk[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            };
                            tokio::join!(up, down);
                        }
                    });
                    pumps2.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        Self {
            port,
            cut,
            mute,
            pumps,
        }
    }

    /// The proxy's Redis URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Cuts every connection, and refuses new ones until [`heal`](Self::heal).
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for pump in self.pumps.lock().unwrap().drain(..) {
            pump.abort();
        }
    }

    /// Lets connections (and replies) through again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.mute.store(false, Ordering::SeqCst);
    }

    /// From now on, A's commands reach Redis but its replies are lost.
    pub fn mute(&self) {
        self.mute.store(true, Ordering::SeqCst);
    }
}

/// The refresh requests Audius (the sandbox) received: `POST /v1/oauth/token` with
/// `grant_type=refresh_token`.
pub fn refresh_requests(sandbox: &SandboxHandle) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/oauth/token" && r.grant_type.as_deref() == Some("refresh_token"))
        .count()
}

/// The code flow's tokens in the session cookie `jar` holds for `app_url`, decrypted with the
/// app's `key`: the session entry `audius.tokens` (family `f`, generation `g`, refresh token
/// `r`, ...). Panics when there is no such cookie or entry.
pub fn session_tokens(jar: &reqwest::cookie::Jar, app_url: &str, key: &Key) -> Value {
    use reqwest::cookie::CookieStore as _;
    let url = Url::parse(app_url).unwrap();
    let header = jar.cookies(&url).expect("a cookie");
    let value = header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| {
            c.strip_prefix(&format!("{SESSION_COOKIE}="))
                .map(str::to_owned)
        })
        .expect("the session cookie");
    let mut cookies = CookieJar::new();
    // As sent: percent-encoded.
    let cookie = Cookie::parse_encoded(format!("{SESSION_COOKIE}={value}")).unwrap();
    cookies.add_original(cookie.into_owned());
    let session = cookies
        .private(key)
        .get(SESSION_COOKIE)
        .expect("a session cookie the app's key opens");
    let state: std::collections::HashMap<String, String> =
        serde_json::from_str(session.value()).unwrap();
    serde_json::from_str(&state["audius.tokens"]).unwrap()
}

/// Logs a new browser in as `handle` with the hops on two instances, as a round-robin balancer
/// spreads them: the login route at `login_url`, the sandbox's page, then the callback's path and
/// query on the instance `callback_on` gives the URL of. Asserts that Audius sent the browser
/// to `public_callback` (the balancer's address both instances announce) and that the callback
/// signed it in (302, asked for JSON errors). Gives the client and its cookie jar.
pub async fn sign_in_across(
    login_url: String,
    public_callback: &str,
    callback_on: impl Fn(&str) -> String,
    handle: &str,
) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let (client, jar) = client_with_jar();
    let page = begin_login(&client, login_url).await;
    let callback = http::approve(&client, &page, handle).await;
    assert!(callback.as_str().starts_with(public_callback), "{callback}");
    let done = client
        .get(callback_on(&format!(
            "{}?{}",
            callback.path(),
            callback.query().unwrap()
        )))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    let status = done.status();
    assert_eq!(status, 302, "{}", done.text().await.unwrap());
    (client, jar)
}

/// Makes Audius (the sandbox) answer the next refresh `latency` late, so that it is still in
/// flight while the test does something else.
pub fn slow_next_refresh(sandbox: &SandboxHandle, latency: std::time::Duration) {
    sandbox
        .set_fault(
            0,
            "/v1/oauth/token",
            audius_sandbox::Fault::latency(latency).times(1),
        )
        .unwrap();
}

/// `GET url` as JSON (status and body, `null` if none) in a task of its own, so that the test
/// can act while the request is in flight.
pub fn spawn_get_json(
    client: &reqwest::Client,
    url: String,
) -> actix_web::rt::task::JoinHandle<(u16, Value)> {
    let client = client.clone();
    actix_web::rt::spawn(async move { http::get_json(&client, url).await })
}
