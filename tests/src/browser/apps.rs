//! The servers a browser scenario talks to: the demo app on `localhost`, the Audius sandbox on
//! `127.0.0.1` (another origin, another site), and small pages of the test's own on yet another
//! port.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_audius_login::{AudiusLogin, Flow, ResponseMode, Scope};
use actix_audius_login_testing::TestServer;
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, web};
use audius_login_examples::Setup;
use audius_sandbox::{DeveloperApp, Sandbox, SandboxHandle, SandboxUser, TokenOverrides};
use url::Url;

use super::Result;

/// Runs an actix-web server as a task of the current tokio runtime; stopped on drop.
#[derive(Debug)]
struct Running {
    handle: ServerHandle,
}

impl Running {
    fn spawn(server: actix_web::dev::Server) -> Self {
        let handle = server.handle();
        tokio::spawn(server);
        Self { handle }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

/// The demo app (exactly `audius_login_examples::demo::server`) on `http://localhost:<port>/`,
/// logging in against its own sandbox on `http://127.0.0.1:<port>/`.
#[derive(Debug)]
pub struct DemoApp {
    /// The sandbox (mint tokens with it, read its request log).
    pub sandbox: SandboxHandle,
    /// The app's URL, `http://localhost:<port>/`.
    pub url: Url,
    /// The answer channel the app was built with.
    pub mode: ResponseMode,
    _server: Running,
}

impl DemoApp {
    /// Starts a sandbox and the demo app answering through `mode`.
    pub async fn start(mode: ResponseMode) -> Result<Self> {
        Self::start_flow(mode, Flow::Implicit).await
    }

    /// Starts a sandbox and the demo app running the authorization-code flow (scope `write`)
    /// through `mode`, as `AUDIUS_FLOW=code` does: a developer app registered with the
    /// sandbox for the demo's callback and `postmessage`.
    pub async fn start_code_flow(mode: ResponseMode) -> Result<Self> {
        Self::start_flow(mode, Flow::AuthorizationCode).await
    }

    async fn start_flow(mode: ResponseMode, flow: Flow) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        // `localhost`, not 127.0.0.1: the sandbox is on 127.0.0.1, so the two are different
        // origins and different sites, as an app and Audius are.
        let url = Url::parse(&format!("http://localhost:{port}/"))?;
        let callback = url.join("auth/audius/callback")?;
        let key = audius_login_examples::DEMO_API_KEY;
        let developer_app = DeveloperApp::new(
            "Audius Login E2E",
            key,
            vec![callback.to_string(), "postmessage".into()],
        )?;
        let sandbox = Sandbox::builder().app(developer_app).start().await?;
        let mut setup = Setup::with_environment(
            "Audius Login E2E",
            listener,
            url.clone(),
            sandbox.environment(),
            mode,
        )?;
        if flow == Flow::AuthorizationCode {
            setup.audius = AudiusLogin::builder("Audius Login E2E", callback)
                .response_mode(mode)
                .environment(sandbox.environment())
                .flow(flow)
                .api_key(key)
                .scope(Scope::Write)
                .build()?;
            // The demo's pages show, and its `/me/audius` checks, the flow it was built with.
            setup.settings.flow = flow;
            setup.settings.api_key = Some(key.to_owned());
        }
        let server = audius_login_examples::demo::server(&setup)?;
        Ok(Self {
            sandbox,
            url,
            mode,
            _server: Running::spawn(server),
        })
    }

    /// A URL of the app: `path` joined to its base.
    pub fn at(&self, path: &str) -> String {
        self.url
            .join(path)
            .map(String::from)
            .unwrap_or_else(|_| format!("{}{}", self.url, path.trim_start_matches('/')))
    }

    /// The app's origin, `http://localhost:<port>`.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// The sandbox's origin, `http://127.0.0.1:<port>`.
    pub fn sandbox_origin(&self) -> String {
        self.sandbox.base_url().origin().ascii_serialization()
    }

    /// A sandbox user by handle.
    pub fn user(&self, handle: &str) -> Result<&SandboxUser> {
        self.sandbox
            .user(handle)
            .ok_or_else(|| format!("no sandbox user {handle:?}").into())
    }

    /// A valid token for `handle`, signed now, exactly as the login page would sign it.
    pub fn mint_token(&self, handle: &str) -> Result<String> {
        Ok(self
            .sandbox
            .mint_token(self.user(handle)?, TokenOverrides::default()))
    }
}

/// Pages of the test's own, served on `http://127.0.0.1:<port>/` (an origin of its own):
/// fixed HTML per path, and optionally an app's routes (for the button's stylesheet).
#[derive(Debug)]
pub struct PageServer {
    /// `http://127.0.0.1:<port>/`.
    pub url: Url,
    server: TestServer,
}

impl PageServer {
    /// Serves `pages` (path to HTML); every other path is a 404.
    pub fn start(pages: HashMap<String, String>) -> Result<Self> {
        Self::start_with(pages, |_| {})
    }

    /// Serves `pages` and whatever `configure` adds (run for each worker).
    pub fn start_with<F>(pages: HashMap<String, String>, configure: F) -> Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Sync + Clone + 'static,
    {
        let server = TestServer::bind()?;
        let url = Url::parse(&server.url("/"))?;
        let pages = Arc::new(pages);
        let server = server.start(move || {
            let pages = pages.clone();
            App::new()
                .configure(configure.clone())
                .default_service(web::to(move |req: HttpRequest| {
                    let pages = pages.clone();
                    async move {
                        match pages.get(req.path()) {
                            Some(html) => HttpResponse::Ok()
                                .content_type("text/html; charset=utf-8")
                                .insert_header(("cache-control", "no-store"))
                                .body(html.clone()),
                            None => HttpResponse::NotFound().body("not found"),
                        }
                    }
                }))
        })?;
        Ok(Self { url, server })
    }

    /// A URL of this server.
    pub fn at(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// This server's origin.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
}
