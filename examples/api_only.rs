//! An API-only app: no pages, JSON everywhere. A request without a login gets
//! `401 {"error":"not_signed_in","message":".."}`, whatever its `Accept` header.
//!
//! ```text
//! cargo run --example api_only
//! curl -i http://127.0.0.1:8080/api/me        # 401 JSON
//! ```
//!
//! Clients log in through `/auth/audius/login` in a browser (query channel here), then call the
//! API with the session cookie.

use audius_login_examples as shared;

use actix_audius_login::{AudiusUser, ResponseMode, UnauthenticatedResponse};
use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    shared::init_tracing();
    let setup =
        match shared::Setup::from_env_with("Audius API example", Some(ResponseMode::Query)).await {
            Ok(setup) => setup,
            Err(message) => {
                eprintln!("api_only: {message}");
                std::process::exit(2);
            }
        };
    let audius = setup.audius.clone();
    let key = setup.session_key.clone();
    let listener = setup.listener.try_clone()?;
    setup.announce();
    HttpServer::new(move || {
        let audius = audius.clone();
        App::new()
            .configure(audius.routes())
            .service(
                web::scope("/api")
                    // JSON 401 for everyone under /api, browsers included.
                    .app_data(UnauthenticatedResponse::Json)
                    .route(
                        "/me",
                        web::get()
                            .to(|user: AudiusUser| async move { HttpResponse::Ok().json(user) }),
                    )
                    .route(
                        "/greeting",
                        web::get().to(|user: AudiusUser| async move {
                            HttpResponse::Ok().json(
                                serde_json::json!({ "greeting": format!("hi @{}", user.handle) }),
                            )
                        }),
                    ),
            )
            .wrap(audius.middleware())
            .wrap(shared::session_middleware(&audius, key.clone()))
    })
    .listen(listener)?
    .run()
    .await
}
