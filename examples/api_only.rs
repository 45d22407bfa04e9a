//! An API-only app: no pages, JSON everywhere. A request without a login gets
//! `401 {"error":"not_signed_in","message":".."}`, whatever its `Accept` header.
//!
//! ```text
//! cargo run --example api_only
//! curl -i http://127.0.0.1:8080/api/me        # 401 JSON
//! ```
//!
//! Clients log in through `/auth/audius/login` in a browser (the query channel here: no
//! JavaScript), then call the API with the session cookie. It runs on a local Audius sandbox
//! (users `artist`, `listener`, ...); for the real Audius, leave out `.environment(..)` and use
//! your app's callback URL.

use actix_audius_login::{AudiusLogin, AudiusUser, ResponseMode, UnauthenticatedResponse};
use actix_session::{SessionMiddleware, storage::CookieSessionStore};
use actix_web::cookie::{Key, SameSite};
use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init(); // RUST_LOG=info shows the logins
    let sandbox = audius_sandbox::Sandbox::builder().start().await?;
    let audius = AudiusLogin::builder(
        "Audius API example",
        "http://127.0.0.1:8080/auth/audius/callback",
    )
    .response_mode(ResponseMode::Query)
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
            .service(
                web::scope("/api")
                    // JSON 401 for everyone under /api, browsers included.
                    .app_data(UnauthenticatedResponse::Json)
                    .route("/me", web::get().to(me))
                    .route("/greeting", web::get().to(greeting)),
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

async fn me(user: AudiusUser) -> HttpResponse {
    HttpResponse::Ok().json(user)
}

async fn greeting(user: AudiusUser) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "greeting": format!("hi @{}", user.handle) }))
}
