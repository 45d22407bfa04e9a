//! A verified-artist gate: `/studio/*` is for verified Audius artists only.
//!
//! ```text
//! cargo run --example artist_gate
//! ```
//!
//! Signed-out visitors are sent to log in (and come back); signed-in listeners get a 403 page;
//! verified artists get in. The `verified` mark comes from Audius' user record, not from the
//! token's self-signed claims.

use audius_login_examples as shared;

use actix_audius_login::{ButtonOptions, VerifiedArtist, guard};
use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    shared::init_tracing();
    let setup = match shared::Setup::from_env("Audius artist gate example").await {
        Ok(setup) => setup,
        Err(message) => {
            eprintln!("artist_gate: {message}");
            std::process::exit(2);
        }
    };
    let audius = setup.audius.clone();
    let key = setup.session_key.clone();
    let listener = setup.listener.try_clone()?;
    setup.announce();
    HttpServer::new(move || {
        let audius = audius.clone();
        let button = audius.login_button(&ButtonOptions::default().return_to("/studio"));
        App::new()
            .configure(audius.routes())
            // The same path answers differently by who is asking (guards choose the route).
            .route(
                "/",
                web::get().guard(guard::IsVerifiedArtist).to(|| async {
                    shared::page("Home", "<h1>Welcome, artist</h1><p><a href=\"/studio\">Open your studio</a></p>", "")
                }),
            )
            .route(
                "/",
                web::get().to(move || {
                    let button = button.clone();
                    async move { shared::page("Home", &format!("<h1>Artists' studio</h1>{button}"), "") }
                }),
            )
            .service(
                web::scope("/studio")
                    .wrap(audius.require_verified_artist())
                    .route("", web::get().to(studio)),
            )
            .wrap(audius.middleware())
            .wrap(shared::session_middleware(&audius, key.clone()))
    })
    .listen(listener)?
    .run()
    .await
}

async fn studio(artist: VerifiedArtist) -> HttpResponse {
    shared::page(
        "Studio",
        &format!(
            "<h1>{}'s studio</h1><p>Verified artists only.</p>",
            shared::escape(&artist.name)
        ),
        "",
    )
}
