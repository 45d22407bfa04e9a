//! Types a user passes and matches without conversions that can go wrong: the core crate's
//! `ResponseMode` accepted by the builder, `BuildError` named at the root, the settings as a
//! handler argument.
#![allow(clippy::unwrap_used)]

use actix_audius_login::{AudiusLogin, BuildError, Paths, ResponseMode};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};

const CALLBACK: &str = "http://localhost:8080/auth/audius/callback";

#[test]
fn the_builder_takes_either_response_mode() {
    for (core, ours) in [
        (audius_login::ResponseMode::Query, ResponseMode::Query),
        (audius_login::ResponseMode::Fragment, ResponseMode::Fragment),
    ] {
        // The builder takes the core's mode as well (through this `From`).
        AudiusLogin::builder("Modes", CALLBACK)
            .response_mode(core)
            .build()
            .unwrap();
        assert_eq!(ResponseMode::from(core), ours);
        assert_eq!(audius_login::ResponseMode::try_from(ours).unwrap(), core);
    }
    // The popup channel has no `response_mode`: refused, not mapped to another mode.
    let e = audius_login::ResponseMode::try_from(ResponseMode::PostMessage).unwrap_err();
    assert_eq!(e.kind(), audius_login::ErrorKind::Config);
    assert!(e.to_string().contains("postmessage"), "{e}");
}

#[test]
fn build_errors_are_named_at_the_root() {
    fn build(redirect_uri: &str) -> Result<AudiusLogin, BuildError> {
        AudiusLogin::builder("Errors", redirect_uri).build()
    }
    assert!(build(CALLBACK).is_ok());
    let e: BuildError = build("http://localhost:8080/cb#fragment").unwrap_err();
    assert_eq!(e.kind(), audius_login::ErrorKind::InvalidRedirectUri);
    let e = AudiusLogin::builder("Errors", CALLBACK)
        .paths(Paths {
            login: "no-slash".into(),
            ..Paths::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), audius_login::ErrorKind::Config);
    assert_eq!(e.setting(), "paths.login");
}

#[actix_web::test]
async fn handlers_get_the_settings_without_registering_them() {
    let audius = AudiusLogin::builder("Extractor", CALLBACK)
        .paths(Paths {
            login: "/sign-in".into(),
            ..Paths::default()
        })
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .configure(audius.routes())
            .route(
                "/paths",
                web::get().to(|audius: AudiusLogin| async move {
                    format!(
                        "{} {}",
                        audius.paths().login.as_str(),
                        audius.redirect_uri().path()
                    )
                }),
            )
            .wrap(SessionMiddleware::new(
                CookieSessionStore::default(),
                Key::generate(),
            )),
    )
    .await;
    let body = test::call_and_read_body(&app, TestRequest::get().uri("/paths").to_request()).await;
    assert_eq!(body, "/sign-in /auth/audius/callback");

    // Nowhere to find them: a typed 500, not a panic.
    let bare = test::init_service(App::new().route(
        "/paths",
        web::get().to(|audius: AudiusLogin| async move { audius.paths().login.clone() }),
    ))
    .await;
    let res = test::call_service(&bare, TestRequest::get().uri("/paths").to_request()).await;
    assert_eq!(res.status(), 500);
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["error"], "misconfigured");
}
