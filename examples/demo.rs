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
//! | `AUDIUS_FLOW` | `implicit` | `implicit` (identity, with email) or `code` (OAuth 2.0 code flow with PKCE: API access as the user with scope `write`, no email) |
//! | `AUDIUS_API_KEY` | embedded sandbox: the demo app's key (`DEMO_API_KEY`), registered for the callback; otherwise none (a warning: tokens of any app accepted) | the app's API key, required of every token (`apiKey`) |
//! | `SESSION_KEY` | random (with a warning) | 64 bytes, hex or base64: the session cookie key, shared by instances |
//! | `REDIS_URL` | none (sessions in the encrypted cookie) | sessions and the replay cache in Redis, shared by instances (`redis://127.0.0.1:6379/`) |
//!
//! Routes: `/` (the button, or the profile), `/me` (the `AudiusUser` as JSON, or 401 JSON),
//! `/me/audius` (code flow: Audius' `/v1/me` fetched as the signed-in user; 401 JSON when
//! signed out), `/artists` (verified artists only), `/metrics` (the login metrics in the
//! Prometheus text format; a real app would not serve it publicly), `POST /auth/logout`. The app itself is
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
    audius_login_examples::demo::server(&setup)?.await?;
    // Stopped (Ctrl-C, SIGTERM): finish the background work the workers left (the code flow's
    // new tokens not yet recorded in Redis), for at most 10 s.
    let unfinished = setup.audius.drain(std::time::Duration::from_secs(10)).await;
    if unfinished > 0 {
        eprintln!("demo: {unfinished} sessions' new Audius tokens could not be recorded");
    }
    Ok(())
}
