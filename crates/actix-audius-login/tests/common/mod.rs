//! A real app on port 0, a real sandbox, and a cookie-keeping client that does not follow
//! redirects (so every hop can be checked).
#![allow(dead_code, unreachable_pub)]

pub mod attacker;
pub mod slow;

use std::net::TcpListener;
use std::sync::Arc;

use actix_audius_login::{
    AudiusLogin, AudiusLoginBuilder, AudiusRequestExt as _, AudiusUser, ButtonOptions, LoginGuard,
    RequireLogin, ResponseMode, UnauthenticatedResponse, VerifiedArtist,
};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use audius_sandbox::{Sandbox, SandboxHandle};
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::redirect::Policy;
use url::Url;

pub const SESSION_COOKIE: &str = "id";

pub struct TestApp {
    pub base: Url,
    pub audius: AudiusLogin,
    /// The answer channel the app was built with.
    pub mode: ResponseMode,
    pub sandbox: Arc<SandboxHandle>,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    /// The session cookie's key (to read a session, as only the server can).
    pub key: Key,
    server: ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let server = self.server.clone();
        actix_web::rt::spawn(async move { server.stop(false).await });
    }
}

pub async fn sandbox() -> Arc<SandboxHandle> {
    Arc::new(Sandbox::builder().start().await.expect("sandbox starts"))
}

/// Starts the test app in `mode` against `sandbox`, letting `tweak` adjust the builder.
pub async fn start_with(
    sandbox: Arc<SandboxHandle>,
    mode: ResponseMode,
    tweak: impl FnOnce(AudiusLoginBuilder) -> AudiusLoginBuilder,
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let builder = AudiusLogin::builder("Test App", format!("{base}auth/audius/callback"))
        .response_mode(mode)
        .environment(sandbox.environment());
    let audius = tweak(builder).build().expect("config is valid");
    let key = Key::generate();
    let kept_key = key.clone();
    let app_audius = audius.clone();
    let server = HttpServer::new(move || {
        let audius = app_audius.clone();
        App::new()
            .app_data(web::Data::new(audius.clone()))
            .configure(audius.routes())
            .route("/", web::get().to(home))
            .route("/me", web::get().to(me))
            .route("/artists", web::get().to(artists))
            .route("/who", web::get().to(who))
            .route("/forget", web::get().to(forget))
            .route("/session/{key}", web::get().to(session_value))
            .route(
                "/guarded",
                web::get()
                    .guard(LoginGuard::VerifiedArtist)
                    .to(|| async { "artist route" }),
            )
            .route(
                "/guarded",
                web::get()
                    .guard(LoginGuard::SignedIn)
                    .to(|| async { "listener route" }),
            )
            .route("/guarded", web::get().to(|| async { "anonymous route" }))
            .service(
                web::scope("/api")
                    .app_data(UnauthenticatedResponse::Json)
                    .route("/me", web::get().to(me)),
            )
            .service(
                web::scope("/account")
                    .wrap(RequireLogin::SignedIn)
                    .route("", web::get().to(|| async { "account page" })),
            )
            .service(
                web::scope("/studio")
                    .wrap(RequireLogin::VerifiedArtist)
                    .route("", web::get().to(|| async { "studio page" })),
            )
            .wrap(audius.middleware())
            .wrap(
                SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                    .cookie_name(SESSION_COOKIE.to_owned())
                    .cookie_secure(audius.cookie_secure())
                    .cookie_http_only(true)
                    .cookie_same_site(actix_web::cookie::SameSite::Lax)
                    .build(),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .disable_signals()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    TestApp {
        base,
        audius,
        mode,
        sandbox,
        client,
        jar,
        key: kept_key,
        server: handle,
    }
}

pub async fn start(mode: ResponseMode) -> TestApp {
    start_with(sandbox().await, mode, |b| b).await
}

async fn home(user: Option<AudiusUser>, audius: web::Data<AudiusLogin>) -> HttpResponse {
    match user {
        Some(u) => HttpResponse::Ok().body(format!("signed in as @{}", u.handle)),
        None => HttpResponse::Ok()
            .content_type("text/html")
            .body(audius.login_button(&ButtonOptions::default())),
    }
}

async fn me(user: AudiusUser) -> HttpResponse {
    HttpResponse::Ok().json(user)
}

async fn artists(artist: VerifiedArtist) -> String {
    format!("artist @{}", artist.handle)
}

async fn session_value(req: HttpRequest, key: web::Path<String>) -> String {
    use actix_session::SessionExt as _;
    req.get_session()
        .get::<serde_json::Value>(&key)
        .ok()
        .flatten()
        .map_or_else(|| "none".into(), |v| v.to_string())
}

async fn who(req: HttpRequest) -> String {
    req.audius_user()
        .map_or_else(|| "nobody".into(), |u| u.handle.clone())
}

/// Reads the user, signs them out, and reads again in the same request.
async fn forget(user: AudiusUser, req: HttpRequest) -> String {
    req.forget_audius_user();
    let after = req
        .audius_user()
        .map_or_else(|| "nobody".into(), |u| u.handle.clone());
    format!("{}, then {after}", user.handle)
}

impl TestApp {
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_html(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(ACCEPT, "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap()
    }

    /// The session cookie's value, if any.
    pub fn session_cookie(&self) -> Option<String> {
        use reqwest::cookie::CookieStore as _;
        let header = self.jar.cookies(&self.base)?;
        header.to_str().ok()?.split("; ").find_map(|c| {
            c.strip_prefix(&format!("{SESSION_COOKIE}="))
                .map(str::to_owned)
        })
    }

    /// Starts a login; returns the sandbox login URL the app redirected to.
    pub async fn begin_login(&self, return_to: Option<&str>) -> Url {
        let path = match return_to {
            Some(r) => self.audius.login_url_for(r),
            None => self.audius.paths().login.clone(),
        };
        let res = self.get(&path).await;
        assert_eq!(res.status(), 302, "login route redirects");
        let location = res.headers()[LOCATION].to_str().unwrap();
        Url::parse(location).unwrap()
    }

    /// Asks the sandbox to approve `login_page` as `handle` at once; returns where it sends the
    /// browser (a `Location`), or the answer page for postmessage.
    pub async fn approve(&self, login_page: &Url, handle: &str) -> reqwest::Response {
        let mut url = login_page.clone();
        url.query_pairs_mut().append_pair("sandbox_user", handle);
        self.client.get(url).send().await.unwrap()
    }

    /// Logs in through the configured channel as `handle`; returns the final response of the
    /// callback.
    pub async fn login(&self, handle: &str, return_to: Option<&str>) -> reqwest::Response {
        let page = self.begin_login(return_to).await;
        let answer = self.approve(&page, handle).await;
        self.deliver(answer).await
    }

    /// Hands the sandbox's answer to the app's callback, as a browser would.
    pub async fn deliver(&self, answer: reqwest::Response) -> reqwest::Response {
        match self.mode {
            ResponseMode::Query => {
                assert_eq!(answer.status(), 302, "sandbox redirects to the callback");
                let location = answer.headers()[LOCATION].to_str().unwrap().to_owned();
                self.client.get(location).send().await.unwrap()
            }
            ResponseMode::Fragment => {
                assert_eq!(answer.status(), 302, "sandbox redirects to the callback");
                let location = Url::parse(answer.headers()[LOCATION].to_str().unwrap()).unwrap();
                let fragment = location.fragment().unwrap_or_default().to_owned();
                let pairs: Vec<(String, String)> = url::form_urlencoded::parse(fragment.as_bytes())
                    .into_owned()
                    .collect();
                let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                self.post_callback_json(get("state"), get("token")).await
            }
            _ => {
                let page = answer.text().await.unwrap();
                let (state, token) = postmessage_answer(&page);
                self.post_callback_json(Some(state), Some(token)).await
            }
        }
    }

    pub async fn post_callback_json(
        &self,
        state: Option<String>,
        token: Option<String>,
    ) -> reqwest::Response {
        let mut body = serde_json::Map::new();
        if let Some(s) = state {
            body.insert("state".into(), s.into());
        }
        if let Some(t) = token {
            body.insert("token".into(), t.into());
        }
        self.client
            .post(self.url(self.audius.redirect_uri().path()))
            .header(ACCEPT, "application/json")
            .header(
                "origin",
                self.audius.redirect_uri().origin().ascii_serialization(),
            )
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self) -> reqwest::Response {
        self.client
            .get(self.url("/me"))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap()
    }

    pub async fn logout(&self) -> reqwest::Response {
        self.client
            .post(self.url(self.audius.paths().logout.as_str()))
            .header(
                "origin",
                self.audius.redirect_uri().origin().ascii_serialization(),
            )
            .send()
            .await
            .unwrap()
    }
}

/// `{state, token}` from the sandbox's postmessage page (`var message = {...};`).
pub fn postmessage_answer(page: &str) -> (String, String) {
    let start = page
        .find("var message = ")
        .unwrap_or_else(|| panic!("no postmessage payload in the sandbox page:\n{page}"))
        + "var message = ".len();
    let end = start + page[start..].find(";\n").expect("end of the message");
    let message: serde_json::Value = serde_json::from_str(&page[start..end]).expect("JSON message");
    (
        message["state"].as_str().expect("state").to_owned(),
        message["token"].as_str().expect("token").to_owned(),
    )
}
