//! The demo app: `/` (the button, or the profile), `/me` (the `AudiusUser` as JSON, or 401
//! JSON), `/artists` (verified artists only), and the login routes.

use actix_audius_login::{
    AudiusLogin, AudiusUser, ButtonOptions, ButtonSize, ResponseMode, VerifiedArtist,
};
use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::{Setup, escape, page};

/// Builds the demo's server on the setup's listener (not yet running: await or spawn it).
pub fn server(setup: &Setup) -> std::io::Result<Server> {
    let audius = setup.audius.clone();
    let key = setup.session_key.clone();
    let listener = setup.listener.try_clone()?;
    Ok(HttpServer::new(move || {
        let audius = audius.clone();
        App::new()
            .app_data(web::Data::new(audius.clone()))
            .configure(audius.routes())
            .route("/", web::get().to(home))
            .route("/me", web::get().to(me))
            .route("/artists", web::get().to(artists))
            .wrap(audius.middleware())
            .wrap(crate::session_middleware(&audius, key.clone()))
    })
    .listen(listener)?
    .run())
}

async fn home(user: Option<AudiusUser>, audius: web::Data<AudiusLogin>) -> HttpResponse {
    let body = match user {
        Some(user) => crate::profile_card(&user, audius.logout_path()),
        None => format!(
            "<section class=\"welcome\"><h1>Log In with Audius</h1>\
             <p>This demo signs you in with your Audius account and shows what the app learns: \
             your handle, name, email, picture, and whether you are a verified artist.</p>\
             <div id=\"login\">{button}</div>\
             <div id=\"profile\"></div></section>{inplace}",
            button = audius.login_button(&ButtonOptions::default().size(ButtonSize::Large)),
            inplace = if audius.response_mode() == ResponseMode::PostMessage {
                crate::IN_PLACE_SCRIPT
            } else {
                ""
            },
        ),
    };
    page(
        "Log In with Audius: demo",
        &body,
        &crate::environment_banner(&audius),
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
