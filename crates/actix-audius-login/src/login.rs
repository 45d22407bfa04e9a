//! Everything [`AudiusLogin`] does for an app, in one place: its builder, its routes, its
//! middleware, its button, its session-store guard, and the few settings an app's pages and
//! tests need back (its routes' paths and callback URL). The
//! work is done in the modules below (`routes`, `middleware`, `button`, `store`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::ServiceConfig;
use audius_login::UserDirectory;
use url::Url;

use crate::builder::AudiusLoginBuilder;
use crate::button::{self, ButtonOptions};
use crate::config::Paths;
use crate::middleware::AudiusLoginMiddleware;
use crate::routes;
use crate::state::AudiusLogin;
use crate::store::SessionStoreGuard;

impl AudiusLogin {
    /// A builder for an app called `app_name` (shown on the Audius login page) whose callback is
    /// `redirect_uri` (an absolute `http(s)` URL; its path becomes the callback route).
    pub fn builder(
        app_name: impl Into<String>,
        redirect_uri: impl AsRef<str>,
    ) -> AudiusLoginBuilder {
        AudiusLoginBuilder::new(app_name.into(), redirect_uri.as_ref().to_owned())
    }

    /// The routes, for `App::configure`:
    ///
    /// | route | default path | what |
    /// |---|---|---|
    /// | login | `GET /auth/audius/login?return_to=/path` | new state (code flow: and PKCE verifier) in the session, 302 to the Audius login page (code flow: `{api}/v1/oauth/authorize`) |
    /// | callback | the redirect URI's path, `GET` and `POST` | checks state, verifies the token (code flow: exchanges the code, reads `/v1/me`), signs in, 302/303 to the return-to |
    /// | logout | `POST /auth/logout` | refuses cross-site requests, revokes the code flow's tokens (best effort), purges the session, 303 to the landing page |
    /// | assets | `GET /auth/audius/assets/{login.js,button.css}` | the popup script and the button stylesheet |
    ///
    /// Mounted on the `App` itself with the implicit flow, they also make these settings the
    /// app's (see [`AudiusLoginMiddleware`] for when the middleware is needed besides).
    pub fn routes(&self) -> impl FnOnce(&mut ServiceConfig) + 'static {
        routes::configure(self.clone())
    }

    /// The middleware that puts these settings into each request: needed for the code flow and
    /// when the routes are mounted inside a scope, not for the implicit flow with its routes on
    /// the `App` (see [`AudiusLoginMiddleware`] for exactly what it does). Register it before
    /// the session middleware ([order](AudiusLoginMiddleware#order)).
    pub fn middleware(&self) -> AudiusLoginMiddleware {
        AudiusLoginMiddleware::new(self.clone())
    }

    /// The HTML of a "Log In with Audius" button, with the options of the Audius SDK's
    /// `renderButton`.
    ///
    /// ```
    /// use actix_audius_login::{AudiusLogin, ButtonOptions, ButtonSize};
    ///
    /// # fn page(audius: &AudiusLogin) -> String {
    /// let button = audius.login_button(&ButtonOptions {
    ///     size: ButtonSize::Large,
    ///     pill: true,
    ///     return_to: Some("/studio".into()),
    ///     ..ButtonOptions::default()
    /// });
    /// format!("<!doctype html><title>Welcome</title>{button}")
    /// # }
    /// ```
    ///
    /// The HTML is an `<a id="audius-login-button">` to the login route (it works without
    /// JavaScript in the redirect channels), a `<link>` to the stylesheet served by
    /// [`routes`](Self::routes), a status line (`role="alert"`) for messages, and in
    /// [`ResponseMode::PostMessage`](crate::ResponseMode::PostMessage) the popup script. Everything is served by the app itself.
    pub fn login_button(&self, options: &ButtonOptions) -> String {
        button::render(&self.inner, options)
    }

    /// Waits for the background work to finish: call it once `HttpServer::run` has returned
    /// (a graceful stop), before the process exits. Waits at most `within`; answers how many
    /// pieces of work still run (`0`: none).
    ///
    /// The work is the code flow's: each token refresh, and, with a replay cache that
    /// coordinates refreshes across instances (`RedisReplayCache`), the recording of new tokens
    /// that Redis failed to take (retried in the background while the other instances wait for
    /// them, answering `503`, rather than present the used refresh token). It runs on a runtime
    /// of this `AudiusLogin`'s own (one thread, started with the first refresh), so a worker
    /// stopped by a graceful stop, or cut by its shutdown timeout, does not cut it; but it ends
    /// with the process, and a refresh cut between Audius' answer and its recording costs the
    /// session a sign-out. `drain` waits until each piece has ended: the tokens recorded (the
    /// other instances carry on with them), or the session's in-doubt window over (the session
    /// is then signed out and its tokens revoked, as it would be without a stop). Without such
    /// work (the implicit flow, or nothing in flight) it returns `0` at once. An app with both
    /// flows drains both `AudiusLogin`s (a revocation of code-flow tokens by the implicit
    /// flow's routes runs on the code flow's runtime when the request went through the code
    /// flow's middleware, else on the implicit one's).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use actix_audius_login::AudiusLogin;
    /// use actix_web::{App, HttpServer};
    ///
    /// # async fn serve(audius: AudiusLogin) -> std::io::Result<()> {
    /// let app_login = audius.clone();
    /// HttpServer::new(move || App::new().configure(app_login.routes()))
    ///     .bind(("127.0.0.1", 8080))?
    ///     .run()
    ///     .await?;
    /// // Stopped (SIGTERM, SIGINT): give the background work up to 20 s.
    /// let unfinished = audius.drain(Duration::from_secs(20)).await;
    /// if unfinished > 0 {
    ///     eprintln!("{unfinished} sessions' new tokens were not recorded");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn drain(&self, within: Duration) -> usize {
        self.inner.background.drain(within).await
    }

    /// A [`SessionStoreGuard`] linking to this app's login route and landing page, with the
    /// other defaults. Wrap it around the `SessionMiddleware` (outermost); see [`crate::store`].
    pub fn session_store_guard(&self) -> SessionStoreGuard {
        SessionStoreGuard::linking(&self.inner.paths.login, &self.inner.paths.landing)
    }

    /// The login route with a `return_to` for after login.
    pub fn login_url_for(&self, return_to: &str) -> String {
        self.inner.login_url_for(return_to)
    }

    /// Whether the session cookie should be `Secure`: always, except for an app served over
    /// plain http on a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`).
    pub fn cookie_secure(&self) -> bool {
        let url = &self.inner.redirect_uri;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        !(url.scheme() == "http" && loopback)
    }

    /// The callback URL given to Audius: its path is the callback route's, and its origin
    /// (`redirect_uri().origin()`) the app's, which same-origin requests send as `Origin`.
    pub fn redirect_uri(&self) -> &Url {
        &self.inner.redirect_uri
    }

    /// The routes' paths: the login route (`paths().login`), the logout route, the assets and
    /// the landing page, as [`AudiusLoginBuilder::paths`] set them (the assets' path without a
    /// trailing `/`).
    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    /// The user directory (and its cache) of the built-in verifier, when one was built.
    pub fn user_directory(&self) -> Option<&Arc<UserDirectory>> {
        self.inner.directory.as_ref()
    }
}
