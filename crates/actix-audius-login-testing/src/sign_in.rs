//! Logging in through the sandbox: the approval the sandbox gives, and [`sign_in_service`]
//! for in-process services.

use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self};
use actix_web::test;
use url::Url;

use actix_audius_login::{AudiusLogin, ResponseMode};

use crate::approval::{Approval, app_origin, approve, callback_path};
use crate::error::TestError;

/// Logs in an in-process test service (from `actix_web::test::init_service`) as the sandbox
/// user `handle`, and returns the session cookie to send with later requests.
///
/// ```no_run
/// use actix_audius_login_testing::sign_in_service;
/// use actix_audius_login::{AudiusLogin, AudiusUser};
/// use actix_session::{SessionMiddleware, storage::CookieSessionStore};
/// use actix_web::cookie::Key;
/// use actix_web::{App, HttpResponse, test, web};
///
/// // In `tests/`, with `#[actix_web::test]` on it.
/// async fn me_answers_the_signed_in_user() -> Result<(), Box<dyn std::error::Error>> {
///     let sandbox = audius_sandbox::Sandbox::builder().start().await?;
///     // In process, nothing listens: any callback URL of the app will do.
///     let audius = AudiusLogin::builder("My App", "http://localhost:8080/auth/audius/callback")
///         .environment(sandbox.environment())
///         .build()?;
///     let app = test::init_service(
///         App::new()
///             .configure(audius.routes())
///             .route("/me", web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }))
///             .wrap(
///                 SessionMiddleware::builder(CookieSessionStore::default(), Key::generate())
///                     .cookie_secure(audius.cookie_secure())
///                     .build(),
///             ),
///     )
///     .await;
///     let cookie = sign_in_service(&app, &audius, "artist").await?;
///     let req = test::TestRequest::get().uri("/me").cookie(cookie).to_request();
///     let me: serde_json::Value = test::call_and_read_body_json(&app, req).await;
///     assert_eq!(me["handle"], "artist");
///     Ok(())
/// }
/// ```
pub async fn sign_in_service<S, B>(
    app: &S,
    audius: &AudiusLogin,
    handle: &str,
) -> Result<Cookie<'static>, TestError>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let login_path = audius.paths().login.as_str();
    let callback_path = callback_path(audius);
    let login_what = format!("the app's login route (GET {login_path})");
    let start =
        test::call_service(app, test::TestRequest::get().uri(login_path).to_request()).await;
    if !start.status().is_redirection() {
        let status = start.status();
        let body = test::read_body(start).await;
        return Err(TestError::refused(login_what, status, &body));
    }
    let cookie = session_cookie(&start)
        .ok_or_else(|| TestError::unexpected(format!("{login_what} set no session cookie")))?;
    let page = start
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| TestError::unexpected(format!("{login_what} sent no Location")))?
        .to_owned();
    let Approval {
        state,
        name,
        value,
        mode,
        location,
    } = approve(&page, handle).await?;
    let request = match (mode, location) {
        (ResponseMode::Query, Some(location)) => {
            let url = Url::parse(&location).map_err(|e| {
                TestError::unexpected_because(format!("the sandbox redirected to {location:?}"), e)
            })?;
            let path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            test::TestRequest::get().uri(&path)
        }
        _ => test::TestRequest::post()
            .uri(callback_path)
            .insert_header((header::ORIGIN, app_origin(audius)))
            .set_json(serde_json::json!({ "state": state, name: value })),
    };
    let done = test::call_service(app, request.cookie(cookie).to_request()).await;
    if !(done.status().is_success() || done.status().is_redirection()) {
        let status = done.status();
        let body = test::read_body(done).await;
        return Err(TestError::refused(
            format!("the app's callback ({callback_path})"),
            status,
            &body,
        ));
    }
    session_cookie(&done)
        .ok_or_else(|| TestError::unexpected("the app's callback set no session cookie"))
}

fn session_cookie<B>(res: &ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response().cookies().next().map(|c| c.into_owned())
}
