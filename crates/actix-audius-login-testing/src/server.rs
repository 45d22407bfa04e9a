//! [`TestServer`]: the app served on a free port of `127.0.0.1`.

use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer};
use url::Url;

use actix_audius_login::AudiusLogin;

use crate::client::TestClient;
use crate::error::TestError;

/// An app server for tests, on a free port of `127.0.0.1` taken before the app is built, so
/// that the app's redirect URI can name it. See the [crate docs](crate) for the whole set-up.
///
/// One worker, no signal handling; stopped when dropped. Needs a Tokio runtime (actix-web's
/// `#[actix_web::test]` or `#[tokio::test]`).
#[derive(Debug)]
pub struct TestServer {
    listener: Option<TcpListener>,
    base: Url,
    handle: Option<actix_web::dev::ServerHandle>,
}

impl TestServer {
    /// Takes a free port on `127.0.0.1`.
    pub fn bind() -> Result<Self, TestError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let base = Url::parse(&format!("http://127.0.0.1:{port}/"))
            .map_err(|e| TestError::unexpected_because("the server's URL", e))?;
        Ok(Self {
            listener: Some(listener),
            base,
            handle: None,
        })
    }

    /// The server's URL for `path`: `server.url("/auth/audius/callback")` is the redirect URI
    /// to build the [`AudiusLogin`] with, and `server.url("/")` the base URL,
    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self, path: &str) -> String {
        self.base
            .join(path)
            .map_or_else(|_| format!("{}{path}", self.base), String::from)
    }

    /// Serves the apps `factory` makes (one per worker, as `HttpServer::new` does) on the
    /// port, in the background.
    pub fn start<F, T, B>(mut self, factory: F) -> Result<Self, TestError>
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        let listener = self.listener.take().ok_or_else(|| {
            TestError::unexpected("this test server was started already; bind another")
        })?;
        let server = HttpServer::new(factory)
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
        self.handle = Some(server.handle());
        tokio::spawn(server);
        Ok(self)
    }

    /// Stops the server as a deploy's `SIGTERM` does (a graceful stop: its workers finish the
    /// requests they serve, then stop, dropping their tasks) and waits until it has stopped.
    /// A stopped server answers nothing; dropping it afterwards does nothing more.
    pub async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(true).await;
        }
    }

    /// A new [`TestClient`] (its own cookies) for this server's app, configured with `audius`.
    pub fn client(&self, audius: &AudiusLogin) -> Result<TestClient, TestError> {
        TestClient::new(audius, self.base.as_str())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The stop command is sent at once; waiting for the workers is not needed.
            drop(handle.stop(false));
        }
    }
}
