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
//! `/artists` (verified artists only), `POST /auth/logout`.

#[path = "shared/mod.rs"]
mod shared;

use actix_audius_login::{
    AudiusLogin, AudiusUser, ButtonOptions, ButtonSize, ResponseMode, VerifiedArtist,
};
use actix_web::{App, HttpResponse, HttpServer, web};
use shared::{escape, page};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    shared::init_tracing();
    let setup = match shared::Setup::from_env("Audius Login Demo").await {
        Ok(setup) => setup,
        Err(message) => {
            eprintln!("demo: {message}");
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
            .app_data(web::Data::new(audius.clone()))
            .configure(audius.routes())
            .route("/", web::get().to(home))
            .route("/me", web::get().to(me))
            .route("/artists", web::get().to(artists))
            .wrap(audius.middleware())
            .wrap(shared::session_middleware(&audius, key.clone()))
    })
    .listen(listener)?
    .run()
    .await
}

async fn home(user: Option<AudiusUser>, audius: web::Data<AudiusLogin>) -> HttpResponse {
    let body = match user {
        Some(user) => shared::profile_card(&user, audius.logout_path()),
        None => format!(
            "<section class=\"welcome\"><h1>Log In with Audius</h1>\
             <p>This demo signs you in with your Audius account and shows what the app learns: \
             your handle, name, email, picture, and whether you are a verified artist.</p>\
             <div id=\"login\">{button}</div>\
             <div id=\"profile\"></div></section>{inplace}",
            button = audius.login_button(&ButtonOptions::default().size(ButtonSize::Large)),
            inplace = if audius.response_mode() == ResponseMode::PostMessage {
                shared::IN_PLACE_SCRIPT
            } else {
                ""
            },
        ),
    };
    page(
        "Log In with Audius: demo",
        &body,
        &shared::environment_banner(&audius),
    )
}

async fn me(user: AudiusUser) -> HttpResponse {
    HttpResponse::Ok().json(user)
}

async fn artists(artist: VerifiedArtist) -> HttpResponse {
    page(
        "Verified artists",
        &format!(
            "<section><h1 data-page=\"artists\">Welcome backstage, {}</h1>\
             <p>Only verified Audius artists can see this page.</p><p><a href=\"/\">Home</a></p></section>",
            escape(&artist.name)
        ),
        "",
    )
}
