//! What `audius.middleware()` does, both ways: the implicit flow with its routes on the App
//! needs none (and, with one, does not care where it is registered); routes inside a scope, and
//! the code flow, need it, and say so when it is missing; the code flow's must run inside the
//! session middleware, and says so when it does not.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_audius_login::{
    AudiusClient, AudiusLogin, AudiusRequestExt as _, AudiusUser, Flow, Limits, LoginGuard,
    RequireLogin, ResponseMode, VerifiedArtist, VerifyOptions,
};
use actix_audius_login_testing::sign_in_service;
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, Key};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpRequest, HttpResponse, web};
use audius_login::clock::ManualClock;

fn session(key: &Key) -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
        .cookie_secure(false)
        .build()
}

/// Every way an app asks for the user.
fn handlers(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/me",
        web::get().to(|u: AudiusUser| async move { u.handle.clone() }),
    )
    .route(
        "/artists",
        web::get().to(|a: VerifiedArtist| async move { a.handle.clone() }),
    )
    .route(
        "/who",
        web::get().to(|u: Option<AudiusUser>| async move {
            u.map_or_else(|| "nobody".to_owned(), |u| u.handle.clone())
        }),
    )
    .route(
        "/ext",
        web::get().to(|req: HttpRequest| async move {
            req.audius_user()
                .map_or_else(|| "nobody".to_owned(), |u| u.handle.clone())
        }),
    )
    .route(
        "/config",
        web::get().to(|audius: AudiusLogin| async move { audius.paths().login.clone() }),
    )
    .route(
        "/guarded",
        web::get()
            .guard(LoginGuard::SignedIn)
            .to(|| async { HttpResponse::Ok().body("member") }),
    )
    .route(
        "/guarded",
        web::get().to(|| async { HttpResponse::Ok().body("visitor") }),
    )
    // The request extension in a guard of the app's own.
    .route(
        "/ctx",
        web::get()
            .guard(actix_web::guard::fn_guard(|ctx| {
                ctx.audius_user().is_some_and(|u| u.handle == "listener")
            }))
            .to(|| async { HttpResponse::Ok().body("the listener") }),
    )
    .route(
        "/ctx",
        web::get().to(|| async { HttpResponse::Ok().body("someone else") }),
    );
}

async fn get<S, B>(app: &S, path: &str, cookie: Option<&Cookie<'static>>) -> (StatusCode, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = TestRequest::get().uri(path);
    if let Some(cookie) = cookie {
        req = req.cookie(cookie.clone());
    }
    match test::try_call_service(app, req.to_request()).await {
        Ok(res) => {
            let status = res.status();
            let body = test::read_body(res).await;
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
        // A middleware's error: the answer actix-web makes of it.
        Err(e) => {
            let res = e.error_response();
            let status = res.status();
            let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    }
}

/// What every handler answers for a user (or nobody), and after the login deadline.
async fn check_everything<S, B>(app: &S, audius: &AudiusLogin, clock: &ManualClock)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let ok = |body: &str| (StatusCode::OK, body.to_owned());
    assert_eq!(get(app, "/config", None).await, ok("/auth/audius/login"));
    assert_eq!(get(app, "/me", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(app, "/who", None).await, ok("nobody"));
    assert_eq!(get(app, "/guarded", None).await, ok("visitor"));
    assert_eq!(get(app, "/ctx", None).await, ok("someone else"));
    assert_eq!(get(app, "/account", None).await.0, StatusCode::UNAUTHORIZED);

    let listener = sign_in_service(app, audius, "listener").await.unwrap();
    let listener = Some(&listener);
    assert_eq!(get(app, "/me", listener).await, ok("listener"));
    assert_eq!(get(app, "/who", listener).await, ok("listener"));
    assert_eq!(get(app, "/ext", listener).await, ok("listener"));
    assert_eq!(get(app, "/guarded", listener).await, ok("member"));
    assert_eq!(get(app, "/ctx", listener).await, ok("the listener"));
    assert_eq!(get(app, "/account", listener).await, ok("account"));
    assert_eq!(
        get(app, "/artists", listener).await.0,
        StatusCode::FORBIDDEN
    );

    let artist = sign_in_service(app, audius, "artist").await.unwrap();
    assert_eq!(get(app, "/artists", Some(&artist)).await, ok("artist"));
    assert_eq!(get(app, "/ctx", Some(&artist)).await, ok("someone else"));

    // The login deadline (a setting only the configuration knows) applies everywhere.
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(get(app, "/me", listener).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(app, "/who", listener).await, ok("nobody"));
    assert_eq!(get(app, "/ext", listener).await, ok("nobody"));
    assert_eq!(get(app, "/guarded", listener).await, ok("visitor"));
    assert_eq!(get(app, "/ctx", listener).await, ok("someone else"));
    assert_eq!(
        get(app, "/account", listener).await.0,
        StatusCode::UNAUTHORIZED
    );
}

fn implicit(sandbox: &audius_sandbox::SandboxHandle, clock: Arc<ManualClock>) -> AudiusLogin {
    AudiusLogin::builder("Middleware", "http://localhost:8080/auth/audius/callback")
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .verify_options(VerifyOptions::default().clock(clock))
        .limits(Limits {
            login_deadline: Some(Duration::from_secs(3600)),
            ..Limits::default()
        })
        .build()
        .unwrap()
}

#[actix_web::test]
async fn the_implicit_flow_with_its_routes_on_the_app_needs_no_middleware_nor_an_order() {
    let sandbox = common::sandbox().await;
    let key = Key::generate();
    let now = || Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));

    // No middleware at all.
    let clock = now();
    let audius = implicit(&sandbox, clock.clone());
    let app = test::init_service(
        App::new()
            .configure(audius.routes())
            .configure(handlers)
            .service(
                web::scope("/account")
                    .wrap(RequireLogin::SignedIn)
                    .route("", web::get().to(|| async { "account" })),
            )
            .wrap(session(&key)),
    )
    .await;
    check_everything(&app, &audius, &clock).await;

    // The middleware registered first (inside the session middleware), as the docs show.
    let clock = now();
    let audius = implicit(&sandbox, clock.clone());
    let app = test::init_service(
        App::new()
            .configure(audius.routes())
            .configure(handlers)
            .service(
                web::scope("/account")
                    .wrap(RequireLogin::SignedIn)
                    .route("", web::get().to(|| async { "account" })),
            )
            .wrap(audius.middleware())
            .wrap(session(&key)),
    )
    .await;
    check_everything(&app, &audius, &clock).await;

    // The middleware registered last (outside the session middleware): the same, since in
    // the implicit flow it never touches the session.
    let clock = now();
    let audius = implicit(&sandbox, clock.clone());
    let app = test::init_service(
        App::new()
            .configure(audius.routes())
            .configure(handlers)
            .service(
                web::scope("/account")
                    .wrap(RequireLogin::SignedIn)
                    .route("", web::get().to(|| async { "account" })),
            )
            .wrap(session(&key))
            .wrap(audius.middleware()),
    )
    .await;
    check_everything(&app, &audius, &clock).await;
}

#[actix_web::test]
async fn routes_inside_a_scope_need_the_middleware_and_say_so() {
    let sandbox = common::sandbox().await;
    let key = Key::generate();
    let audius = implicit(
        &sandbox,
        Arc::new(ManualClock::new(time::OffsetDateTime::now_utc())),
    );
    // The routes' app data is the scope's: outside it, nothing knows the configuration.
    let app = test::init_service(
        App::new()
            .service(web::scope("/elsewhere").configure(audius.routes()))
            .configure(handlers)
            .wrap(session(&key)),
    )
    .await;
    for path in ["/me", "/artists", "/config"] {
        let (status, body) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "misconfigured", "{path}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains(".wrap(audius.middleware())"),
            "{path}: {body}"
        );
    }
    // A user signed in (by the same app with its routes on the App, sharing the session key):
    // `Option<AudiusUser>` turns the extractor's error into `None` (actix-web's rule), while
    // guards and `req.audius_user()` still read the user, without the settings.
    let signing_app =
        test::init_service(App::new().configure(audius.routes()).wrap(session(&key))).await;
    let user = sign_in_service(&signing_app, &audius, "listener")
        .await
        .unwrap();
    let user = Some(&user);
    let ok = |body: &str| (StatusCode::OK, body.to_owned());
    assert_eq!(get(&app, "/who", user).await, ok("nobody"));
    assert_eq!(get(&app, "/guarded", user).await, ok("member"));
    assert_eq!(get(&app, "/ext", user).await, ok("listener"));
    assert_eq!(
        get(&app, "/me", user).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    // With the middleware, the same app knows the configuration everywhere.
    let app = test::init_service(
        App::new()
            .service(web::scope("/elsewhere").configure(audius.routes()))
            .configure(handlers)
            .wrap(audius.middleware())
            .wrap(session(&key)),
    )
    .await;
    assert_eq!(get(&app, "/me", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&app, "/me", user).await, ok("listener"));
    assert_eq!(get(&app, "/who", user).await, ok("listener"));
    assert_eq!(get(&app, "/config", None).await, ok("/auth/audius/login"));
}

#[actix_web::test]
async fn the_code_flow_needs_its_middleware_inside_the_session_middleware() {
    let api = AudiusLogin::builder("Code", "http://localhost:8080/auth/audius/callback")
        .flow(Flow::AuthorizationCode)
        .api_key("c0de00c0de00c0de00c0de00c0de00c0de00c0de")
        .build()
        .unwrap();
    let key = Key::generate();
    let client_route = |cfg: &mut web::ServiceConfig| {
        cfg.route(
            "/audius/me",
            web::get()
                .to(|_client: AudiusClient, user: AudiusUser| async move { user.handle.clone() }),
        );
    };
    let misconfigured = |body: &str, words: &str| {
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "misconfigured", "{body}");
        assert!(body["message"].as_str().unwrap().contains(words), "{body}");
    };

    // Without it: the client and the user cannot be found.
    let app = test::init_service(
        App::new()
            .configure(api.routes())
            .configure(handlers)
            .configure(client_route)
            .wrap(session(&key)),
    )
    .await;
    for path in ["/audius/me", "/me", "/config"] {
        let (status, body) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        misconfigured(&body, "audius.middleware()");
    }

    // Outside the session middleware: every request is refused, saying why (the refreshed
    // tokens would be written after the session was saved, and lost).
    let app = test::init_service(
        App::new()
            .configure(api.routes())
            .configure(handlers)
            .configure(client_route)
            .wrap(session(&key))
            .wrap(api.middleware()),
    )
    .await;
    for path in ["/me", "/audius/me", "/auth/audius/login"] {
        let (status, body) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        misconfigured(&body, "outside the session middleware");
    }

    // Inside it, as the docs show: the usual "not signed in".
    let app = test::init_service(
        App::new()
            .configure(api.routes())
            .configure(handlers)
            .configure(client_route)
            .wrap(api.middleware())
            .wrap(session(&key)),
    )
    .await;
    for path in ["/me", "/audius/me"] {
        let res = test::call_service(
            &app,
            TestRequest::get()
                .uri(path)
                .insert_header((header::ACCEPT, "application/json"))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(
        get(&app, "/auth/audius/login", None).await.0,
        StatusCode::FOUND
    );
}
