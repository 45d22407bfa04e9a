//! The demo: an actix-web app with "Log In with Audius", on an embedded Audius sandbox by default.
//!
//! ```text
//! cargo run --example demo
//! # then open http://127.0.0.1:8080, click the button, pick a sandbox user
//! ```
//!
//! Environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BIND` | `127.0.0.1:8080` | where the app listens (port 0: any free port) |
//! | `AUDIUS_RESPONSE_MODE` | `fragment` | `query`, `fragment` or `postmessage` |
//! | `AUDIUS_ENV` | (embedded sandbox) | `production`, `staging`, or the URL of a running sandbox |
//! | `AUDIUS_APP_NAME` | `Audius Login Demo` | the name the login page shows |
//! | `AUDIUS_REDIRECT_URI` | `http://<BIND>/auth/audius/callback` | the callback URL (must match the app's address) |
//! | `AUDIUS_VERIFIER` | `local` | `local` or `api` |
//! | `SESSION_KEY` | random (with a warning) | 64 bytes, hex or base64: the session cookie key, shared by instances |
//!
//! Routes: `/` (the button, or the profile), `/me` (the `AudiusUser` as JSON, or 401 JSON),
//! `/artists` (verified artists only), `POST /auth/logout`. The app itself is
//! `audius_login_examples::demo`, which the end-to-end suites drive too.

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    audius_login_examples::init_tracing();
    let setup = match audius_login_examples::Setup::from_env("Audius Login Demo").await {
        Ok(setup) => setup,
        Err(message) => {
            eprintln!("demo: {message}");
            std::process::exit(2);
        }
    };
    setup.announce();
    audius_login_examples::demo::server(&setup)?.await
}
