//! The popup (postmessage) channel: the login page opens in a 375x785 popup and answers the
//! opener with `postMessage`; the page never navigates away.
//!
//! ```text
//! cargo run --example popup
//! # then open http://127.0.0.1:8080
//! ```
//!
//! The button's script accepts a message only from the Audius origin and only from the popup it
//! opened, reports a closed or blocked popup (`audius-login:abandoned`, `audius-login:blocked`),
//! and on success fires `audius-login:success`; this page handles it to show the user in place.
//! It runs on a local Audius sandbox; for the real Audius, leave out `.environment(..)` and use
//! your app's callback URL.

use actix_audius_login::{AudiusLogin, AudiusUser, ButtonOptions, ResponseMode};
use actix_session::{SessionMiddleware, storage::CookieSessionStore};
use actix_web::cookie::{Key, SameSite};
use actix_web::{App, HttpResponse, HttpServer, web};
use maud::{DOCTYPE, PreEscaped, html};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init(); // RUST_LOG=info shows the logins
    let sandbox = audius_sandbox::Sandbox::builder().start().await?;
    let audius = AudiusLogin::builder(
        "Audius popup example",
        "http://127.0.0.1:8080/auth/audius/callback",
    )
    .response_mode(ResponseMode::PostMessage)
    .environment(sandbox.environment())
    .build()?;
    // The session cookie's key. In production: the same 64 random bytes on every instance,
    // `Key::try_from(bytes)`; a fresh key here, so sessions end with the process.
    let key = Key::generate();

    println!(
        "listening on http://127.0.0.1:8080/ (Audius sandbox at {})",
        sandbox.base_url()
    );
    HttpServer::new(move || {
        App::new()
            .configure(audius.routes())
            .route("/", web::get().to(home))
            .wrap(
                SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                    // `Secure` except on plain-http localhost (as here).
                    .cookie_secure(audius.cookie_secure())
                    // The login answer arrives by a cross-site request: `Lax`, not `Strict`.
                    .cookie_same_site(SameSite::Lax)
                    .cookie_http_only(true)
                    .build(),
            )
    })
    .bind(("127.0.0.1", 8080))?
    .run()
    .await?;
    Ok(())
}

/// The button, or the signed-in user with a logout form. `AudiusLogin` is a handler argument.
/// The page is built with `maud`, which escapes every value it is given (the user's handle
/// here); the button is HTML already, so it goes in as `PreEscaped`.
async fn home(audius: AudiusLogin, user: Option<AudiusUser>) -> HttpResponse {
    let page = html! {
        (DOCTYPE)
        title { "Popup login" }
        @match user {
            Some(user) => {
                p { "Signed in as @" (user.handle) }
                form method="post" action=(audius.paths().logout.as_str()) { button { "Log out" } }
            }
            None => {
                h1 { "Popup login" }
                div #login {
                    (PreEscaped(audius.login_button(&ButtonOptions { pill: true, ..ButtonOptions::default() })))
                }
                p #profile {}
                script { (PreEscaped(IN_PLACE)) }
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

/// Shows the user in place when the popup login succeeds (no reload), and logs an abandoned one.
const IN_PLACE: &str = r#"
document.addEventListener('audius-login:success', function (event) {
  event.preventDefault();
  document.getElementById('profile').textContent = 'Signed in as @' + event.detail.user.handle;
  document.getElementById('login').hidden = true;
});
document.addEventListener('audius-login:abandoned', function (event) {
  console.log('login abandoned:', event.detail.message);
});
"#;
