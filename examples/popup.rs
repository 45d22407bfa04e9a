//! The popup (postmessage) channel: the login page opens in a 375x785 popup and answers the
//! opener with `postMessage`; the page never navigates away.
//!
//! ```text
//! cargo run --example popup
//! ```
//!
//! The button's script accepts a message only from the Audius origin and only from the popup it
//! opened, reports a closed or blocked popup (`audius-login:abandoned`, `audius-login:blocked`),
//! and on success fires `audius-login:success`; this page handles it to show the user in place.

use audius_login_examples as shared;

use actix_audius_login::{AudiusLogin, AudiusUser, ButtonCorners, ButtonOptions, ResponseMode};
use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    shared::init_tracing();
    let setup =
        match shared::Setup::from_env_with("Audius popup example", Some(ResponseMode::PostMessage))
            .await
        {
            Ok(setup) => setup,
            Err(message) => {
                eprintln!("popup: {message}");
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
            "<h1>Popup login</h1><div id=\"login\">{}</div><div id=\"profile\"></div>{}\
             <script>document.addEventListener('audius-login:abandoned', function (e) {{ \
             console.log('login abandoned:', e.detail.message); }});</script>",
            audius.login_button(&ButtonOptions::default().corners(ButtonCorners::Pill)),
            shared::IN_PLACE_SCRIPT,
        ),
    };
    shared::page("Popup login", &body, &shared::environment_banner(&audius))
}
