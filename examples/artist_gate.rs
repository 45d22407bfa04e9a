//! A verified-artist gate: `/studio` is for verified Audius artists only.
//!
//! ```text
//! cargo run --example artist_gate
//! # then open http://127.0.0.1:8080 and log in as `artist` (verified) or `listener` (not)
//! ```
//!
//! Signed-out visitors are sent to log in (and come back); signed-in listeners get a 403 page;
//! verified artists get in. The `verified` mark comes from Audius' user record, not from the
//! token's self-signed claims. It runs on a local Audius sandbox; for the real Audius, leave out
//! `.environment(..)` and use your app's callback URL.

use actix_audius_login::{AudiusLogin, ButtonOptions, LoginGuard, RequireLogin, VerifiedArtist};
use actix_session::{SessionMiddleware, storage::CookieSessionStore};
use actix_web::cookie::{Key, SameSite};
use actix_web::{App, HttpResponse, HttpServer, web};
use maud::{DOCTYPE, Markup, PreEscaped, html};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init(); // RUST_LOG=info shows the logins
    let sandbox = audius_sandbox::Sandbox::builder().start().await?;
    let audius = AudiusLogin::builder(
        "Audius artist gate example",
        "http://127.0.0.1:8080/auth/audius/callback",
    )
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
        // The button is HTML already (made by actix-audius-login): `PreEscaped` keeps it as is.
        let button = PreEscaped(audius.login_button(&ButtonOptions {
            return_to: Some("/studio".into()),
            ..ButtonOptions::default()
        }));
        App::new()
            .configure(audius.routes())
            // The same path answers differently by who asks (guards choose the route).
            .route(
                "/",
                web::get().guard(LoginGuard::VerifiedArtist).to(|| async {
                    page(html! { h1 { "Welcome, artist" } a href="/studio" { "Your studio" } })
                }),
            )
            .route(
                "/",
                web::get().to(move || {
                    let body = html! { h1 { "Artists' studio" } (button) };
                    async move { page(body) }
                }),
            )
            .service(
                web::scope("/studio")
                    .wrap(RequireLogin::VerifiedArtist)
                    .route("", web::get().to(studio)),
            )
            .wrap(
                SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                    // `Secure` except on plain-http localhost (as here).
                    .cookie_secure(audius.cookie_secure())
                    // The login answer arrives by a cross-site navigation: `Lax`, not `Strict`.
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

/// A page around `body`, built with `maud` (which escapes every value it is given).
fn page(body: Markup) -> HttpResponse {
    let page = html! { (DOCTYPE) title { "Studio" } (body) };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

/// Plain text: the artist's name needs no escaping there.
async fn studio(artist: VerifiedArtist) -> String {
    format!("{}'s studio: verified artists only.", artist.name)
}
