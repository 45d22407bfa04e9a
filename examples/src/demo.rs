//! The demo app: `/` (the button, or the profile), `/me` (the `AudiusUser` as JSON, or 401
//! JSON), `/me/audius` (code flow: Audius' `/v1/me` fetched as the signed-in user), `/artists`
//! (verified artists only), `/favicon.ico`, `/metrics` (the login metrics in the Prometheus text
//! format), and the login routes.

use actix_audius_login::{
    AudiusClient, AudiusLogin, AudiusUser, ButtonOptions, ButtonSize, Flow, ResponseMode,
    VerifiedArtist,
};
use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use maud::{PreEscaped, html};

use crate::pages::{environment_banner, in_place_script, page, profile_card};
use crate::{Settings, Setup};

/// Builds the demo's server on the setup's listener (not yet running: await or spawn it).
pub fn server(setup: &Setup) -> std::io::Result<Server> {
    // Before any login: the recorder the libraries' metrics go to (once per process).
    let metrics = crate::metrics::prometheus();
    let audius = setup.audius.clone();
    let settings = setup.settings.clone();
    let sessions = setup.session_middleware_factory();
    let listener = setup.listener.try_clone()?;
    Ok(HttpServer::new(move || {
        let audius = audius.clone();
        App::new()
            .app_data(web::Data::new(audius.clone()))
            .app_data(web::Data::new(settings.clone()))
            .app_data(web::Data::new(metrics.clone()))
            .configure(audius.routes())
            .route("/", web::get().to(home))
            .route("/me", web::get().to(me))
            .route("/me/audius", web::get().to(me_at_audius))
            .route("/artists", web::get().to(artists))
            .route("/favicon.ico", web::get().to(favicon))
            .route("/metrics", web::get().to(crate::metrics::render))
            .wrap(audius.middleware())
            .wrap(sessions())
            // Outermost: a session store outage (Redis down) is a clear 503, not a hang.
            .wrap(audius.session_store_guard())
    })
    .listen(listener)?
    .run())
}

async fn home(
    user: Option<AudiusUser>,
    audius: web::Data<AudiusLogin>,
    settings: web::Data<Settings>,
) -> HttpResponse {
    let body = match user {
        Some(user) => profile_card(&user, audius.paths().logout.as_str()),
        None => html! {
            section.welcome {
                h1 { "Log In with Audius" }
                p {
                    "This demo signs you in with your Audius account and shows what the app \
                     learns: your handle, name, email, picture, and whether you are a verified \
                     artist."
                }
                div #login {
                    // The button's HTML, rendered (and escaped) by actix-audius-login.
                    (PreEscaped(audius.login_button(&ButtonOptions { size: ButtonSize::Large, ..ButtonOptions::default() })))
                }
                div #profile {}
            }
            @if settings.response_mode == ResponseMode::PostMessage {
                (in_place_script())
            }
        },
    };
    page(
        "Log In with Audius: demo",
        body,
        environment_banner(&settings),
    )
}

async fn me(user: AudiusUser) -> HttpResponse {
    HttpResponse::Ok().json(user)
}

/// Code flow: the user as Audius describes them now, fetched with the session's access token
/// (refreshed when needed). 401 JSON when signed out.
async fn me_at_audius(
    settings: web::Data<Settings>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, actix_web::Error> {
    use actix_web::FromRequest as _;
    if settings.flow != Flow::AuthorizationCode {
        return Ok(HttpResponse::NotFound().json(serde_json::json!({
            "error": "code_flow_only",
            "message": "/me/audius calls the Audius API as the user: run the demo with AUDIUS_FLOW=code",
        })));
    }
    let client = AudiusClient::extract(&req).await?;
    let profile = client.me().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": profile.user_id.get(),
        "hashid": profile.user_id.hashid(),
        "handle": profile.handle,
        "name": profile.name,
        "verified": profile.verified,
        "email": profile.email,
        "scope": client.scope().as_str(),
        "access_token_expires_at": client.access_token_expires_at().unix_timestamp(),
    })))
}

async fn artists(artist: VerifiedArtist) -> HttpResponse {
    page(
        "Verified artists",
        html! {
            section {
                h1 data-page="artists" { "Welcome backstage, " (artist.name) }
                p { "Only verified Audius artists can see this page." }
                p { a href="/" { "Home" } }
            }
        },
        html! {},
    )
}

/// The demo's icon (32x32, a PNG in an ICO), which browsers ask for on every page load.
const FAVICON: &[u8] = include_bytes!("favicon.ico");

/// `/favicon.ico`: cacheable for a day, with a validator.
async fn favicon(req: actix_web::HttpRequest) -> HttpResponse {
    use actix_web::http::header;
    const ETAG: &str = "\"audius-demo-favicon-1\"";
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == ETAG));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::ETAG, ETAG));
    if fresh {
        res.finish()
    } else {
        res.content_type("image/x-icon").body(FAVICON)
    }
}
