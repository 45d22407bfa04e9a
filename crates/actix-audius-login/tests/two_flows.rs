#![allow(clippy::unwrap_used)]
//! Which configuration answers for the user: one app with both flows (identity with the
//! implicit flow, API access with the code flow) in either order of the two `.wrap` calls, the
//! routes mounted on the app or inside a scope, and the code flow alone. A missing login is
//! redirected to the login route of the configuration that answered, which tells them apart.

use actix_audius_login::{AudiusLogin, AudiusUser, Flow, LoginGuard, Paths};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpResponse, web};

const BASE: &str = "http://localhost:8080";
const IDENTITY_LOGIN: &str = "/auth/audius/login";
const API_LOGIN: &str = "/auth/api/login";

fn identity() -> AudiusLogin {
    AudiusLogin::builder("Two Flows", format!("{BASE}/auth/audius/callback"))
        .build()
        .unwrap()
}

fn api_access() -> AudiusLogin {
    AudiusLogin::builder("Two Flows", format!("{BASE}/auth/api/callback"))
        .flow(Flow::AuthorizationCode)
        .api_key("c0de00c0de00c0de00c0de00c0de00c0de00c0de")
        .paths(Paths {
            login: API_LOGIN.into(),
            logout: "/auth/api/logout".into(),
            ..Paths::default()
        })
        .build()
        .unwrap()
}

fn session() -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), Key::generate())
        .cookie_secure(false)
        .build()
}

async fn me(user: AudiusUser) -> String {
    user.handle.clone()
}

async fn who(user: Option<AudiusUser>) -> String {
    user.map_or_else(|| "nobody".into(), |u| u.handle.clone())
}

/// Where a browser without a login is sent from `/me`, and what `/who` and a guarded route say.
async fn answers<S, B>(app: &S) -> (String, String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(
        app,
        TestRequest::get()
            .uri("/me")
            .insert_header((header::ACCEPT, "text/html"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 302);
    let location = res
        .headers()
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let login = location.split('?').next().unwrap().to_owned();
    let who = test::call_and_read_body(app, TestRequest::get().uri("/who").to_request()).await;
    let guarded =
        test::call_and_read_body(app, TestRequest::get().uri("/guarded").to_request()).await;
    (
        login,
        String::from_utf8(who.to_vec()).unwrap(),
        String::from_utf8(guarded.to_vec()).unwrap(),
    )
}

fn handlers(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/who", web::get().to(who))
        .route(
            "/guarded",
            web::get()
                .guard(LoginGuard::SignedIn)
                .to(|| async { HttpResponse::Ok().body("member") }),
        )
        .route(
            "/guarded",
            web::get().to(|| async { HttpResponse::Ok().body("visitor") }),
        );
}

#[actix_web::test]
async fn the_implicit_flow_answers_for_the_user_whatever_the_order() {
    let (id, api) = (identity(), api_access());
    let identity_inside = test::init_service(
        App::new()
            .configure(id.routes())
            .configure(api.routes())
            .configure(handlers)
            .wrap(id.middleware())
            .wrap(api.middleware())
            .wrap(session()),
    )
    .await;
    let identity_outside = test::init_service(
        App::new()
            .configure(api.routes())
            .configure(id.routes())
            .configure(handlers)
            .wrap(api.middleware())
            .wrap(id.middleware())
            .wrap(session()),
    )
    .await;
    for app_answers in [
        answers(&identity_inside).await,
        answers(&identity_outside).await,
    ] {
        assert_eq!(
            app_answers,
            (IDENTITY_LOGIN.into(), "nobody".into(), "visitor".into())
        );
    }
}

#[actix_web::test]
async fn routes_in_a_scope_or_not_mounted_still_find_the_configuration() {
    let id = identity();
    // The routes inside a scope: the app's data does not carry the configuration, the
    // middleware puts it into each request.
    let scoped = test::init_service(
        App::new()
            .service(web::scope("/elsewhere").configure(id.routes()))
            .configure(handlers)
            .wrap(id.middleware())
            .wrap(session()),
    )
    .await;
    assert_eq!(
        answers(&scoped).await,
        (IDENTITY_LOGIN.into(), "nobody".into(), "visitor".into())
    );
    // Both flows, the identity routes in a scope and the API ones on the app.
    let api = api_access();
    let mixed = test::init_service(
        App::new()
            .service(web::scope("/elsewhere").configure(id.routes()))
            .configure(api.routes())
            .configure(handlers)
            .wrap(id.middleware())
            .wrap(api.middleware())
            .wrap(session()),
    )
    .await;
    assert_eq!(answers(&mixed).await.0, IDENTITY_LOGIN);
}

#[actix_web::test]
async fn the_code_flow_alone_answers_for_the_user() {
    let api = api_access();
    let app = test::init_service(
        App::new()
            .configure(api.routes())
            .configure(handlers)
            .wrap(api.middleware())
            .wrap(session()),
    )
    .await;
    assert_eq!(
        answers(&app).await,
        (API_LOGIN.into(), "nobody".into(), "visitor".into())
    );
}

#[actix_web::test]
async fn without_any_configuration_the_answer_is_misconfigured() {
    let app = test::init_service(App::new().configure(handlers).wrap(session())).await;
    let res = test::call_service(&app, TestRequest::get().uri("/me").to_request()).await;
    assert_eq!(res.status(), 500);
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["error"], "misconfigured");
}
