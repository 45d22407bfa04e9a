//! The mountable routes: login, callback, logout, and the button's assets.
//!
//! | route | default path | what |
//! |---|---|---|
//! | login | `GET /auth/audius/login?return_to=/path` | new state in the session, 302 to the Audius login page |
//! | callback | the redirect URI's path, `GET` and `POST` | checks state, verifies the token, signs in, 302/303 to the return-to |
//! | logout | `POST /auth/logout` | refuses cross-site requests, purges the session, 303 to the landing page |
//! | assets | `GET /auth/audius/assets/{login.js,button.css}` | the popup script and the button stylesheet |

use actix_session::SessionExt as _;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse};
use audius_login::return_to::sanitize_return_to;
use audius_login::{LoginUrl, RedirectUri, State};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::config::{AudiusLogin, LoginEvent, LogoutBehavior, ResponseMode};
use crate::error::{AudiusLoginError, LoginErrorKind};
use crate::pages;
use crate::session::{self, PendingLogin, USER_KEY};
use crate::user::AudiusUser;

/// Largest callback body read: a token (16 KiB) and a state, with room for encoding.
const MAX_CALLBACK_BODY: usize = 64 * 1024;

impl AudiusLogin {
    /// The routes, for `App::configure`: login, callback (`GET` and `POST`), logout, assets.
    pub fn routes(&self) -> impl FnOnce(&mut ServiceConfig) + 'static {
        let this = self.clone();
        move |cfg: &mut ServiceConfig| {
            let c = &this.inner;
            let login = this.clone();
            let callback_get = this.clone();
            let callback_post = this.clone();
            let logout = this.clone();
            cfg.service(web::resource(c.login_path.as_str()).route(web::get().to(
                move |req: HttpRequest| {
                    let a = login.clone();
                    async move { start_login(&a, &req).map_err(|e| present(&a, &req, e)) }
                },
            )))
            .service(
                web::resource(c.callback_path.as_str())
                    .route(web::get().to(move |req: HttpRequest| {
                        let a = callback_get.clone();
                        async move { callback_get_handler(&a, req).await }
                    }))
                    .route(web::post().to(move |req: HttpRequest, body: web::Payload| {
                        let a = callback_post.clone();
                        async move { callback_post_handler(&a, req, body).await }
                    })),
            )
            .service(web::resource(c.logout_path.as_str()).route(web::post().to(
                move |req: HttpRequest| {
                    let a = logout.clone();
                    async move { logout_handler(&a, &req).map_err(|e| present(&a, &req, e)) }
                },
            )))
            .service(
                web::resource(format!("{}/login.js", c.assets_path)).route(web::get().to(
                    |req: HttpRequest| async move {
                        asset(&req, pages::LOGIN_JS, "text/javascript; charset=utf-8")
                    },
                )),
            )
            .service(
                web::resource(format!("{}/button.css", c.assets_path)).route(web::get().to(
                    |req: HttpRequest| async move {
                        asset(&req, pages::BUTTON_CSS, "text/css; charset=utf-8")
                    },
                )),
            );
        }
    }
}

/// Makes an error answer in the client's language (page or JSON).
fn present(audius: &AudiusLogin, req: &HttpRequest, e: AudiusLoginError) -> AudiusLoginError {
    e.for_client(req, &audius.inner.login_path, &audius.inner.landing_path)
}

fn no_store(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The first value of a query or form parameter.
fn first_param(pairs: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(pairs.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn start_login(audius: &AudiusLogin, req: &HttpRequest) -> Result<HttpResponse, AudiusLoginError> {
    let c = &audius.inner;
    let return_to = first_param(req.query_string(), "return_to")
        .and_then(|r| sanitize_return_to(&r))
        .unwrap_or_else(|| c.landing_path.clone());
    let state = State::generate();
    let (redirect_uri, mode) = match c.response_mode {
        ResponseMode::Query => (
            RedirectUri::Url(c.redirect_uri.clone()),
            audius_login::ResponseMode::Query,
        ),
        ResponseMode::Fragment => (
            RedirectUri::Url(c.redirect_uri.clone()),
            audius_login::ResponseMode::Fragment,
        ),
        ResponseMode::PostMessage => (
            RedirectUri::PostMessage,
            audius_login::ResponseMode::Fragment,
        ),
    };
    let mut builder = LoginUrl::builder()
        .scope(c.scope)
        .app_name(c.app_name.clone())
        .redirect_uri(redirect_uri)
        .state(&state)
        .response_mode(mode)
        .display(c.display)
        .environment(c.environment.clone());
    if let Some(key) = &c.api_key {
        builder = builder.api_key(key.clone());
    }
    if c.response_mode == ResponseMode::PostMessage {
        builder = builder.origin(c.app_origin.clone());
    }
    let url = builder.build()?;
    session::push_pending(
        &req.get_session(),
        c,
        PendingLogin {
            state,
            return_to,
            started_at: session::now(c).unix_timestamp(),
        },
    )?;
    tracing::debug!(mode = ?c.response_mode, "starting an Audius login");
    let mut res = HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .finish();
    no_store(&mut res);
    Ok(res)
}

/// The two values a callback carries.
#[derive(Debug, Default, Deserialize)]
struct CallbackParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// How to answer a successful callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 302 (a `GET` navigation).
    Found,
    /// 303 (a form `POST`).
    SeeOther,
    /// 200 JSON `{redirect, user}` (the bridge and popup scripts).
    Json,
}

#[derive(Serialize)]
struct SignedIn<'a> {
    redirect: &'a str,
    user: &'a AudiusUser,
}

async fn callback_get_handler(
    audius: &AudiusLogin,
    req: HttpRequest,
) -> Result<HttpResponse, actix_web::Error> {
    let c = &audius.inner;
    let query = req.query_string();
    let params = CallbackParams {
        state: first_param(query, "state"),
        token: first_param(query, "token"),
    };
    match c.response_mode {
        ResponseMode::Query => finish(audius, req, params, Answer::Found).await,
        ResponseMode::Fragment if params.state.is_none() && params.token.is_none() => {
            let mut res = HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header(("content-security-policy", pages::bridge_csp()))
                .body(pages::bridge_page(&c.callback_path, &c.login_path));
            no_store(&mut res);
            Ok(res)
        }
        _ => Err(present(
            audius,
            &req,
            AudiusLoginError::new(
                LoginErrorKind::InvalidCallback,
                format!(
                    "This app expects the login answer through the {} channel.",
                    match c.response_mode {
                        ResponseMode::Fragment => "fragment",
                        ResponseMode::PostMessage => "popup (postMessage)",
                        _ => "query",
                    }
                ),
            ),
        )
        .into()),
    }
}

async fn callback_post_handler(
    audius: &AudiusLogin,
    req: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let invalid = |message: String| {
        present(
            audius,
            &req,
            AudiusLoginError::new(LoginErrorKind::InvalidCallback, message),
        )
    };
    if let Err(e) = same_origin(audius, &req) {
        return Err(present(audius, &req, e).into());
    }
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| invalid(format!("The callback body could not be read: {e}")))?;
        if bytes.len() + chunk.len() > MAX_CALLBACK_BODY {
            return Err(present(
                audius,
                &req,
                AudiusLoginError::new(
                    LoginErrorKind::TokenTooLarge,
                    format!("The callback body is over {MAX_CALLBACK_BODY} bytes."),
                ),
            )
            .into());
        }
        bytes.extend_from_slice(&chunk);
    }
    let content_type = req.content_type().to_ascii_lowercase();
    let (params, answer) = if content_type == "application/json" {
        let params: CallbackParams = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("The callback body is not the JSON expected: {e}")))?;
        (params, Answer::Json)
    } else if content_type == "application/x-www-form-urlencoded" {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| invalid("The callback form is not UTF-8.".into()))?;
        let params = CallbackParams {
            state: first_param(text, "state"),
            token: first_param(text, "token"),
        };
        (params, Answer::SeeOther)
    } else {
        return Err(invalid(format!(
            "The callback takes application/json or a form, not {content_type:?}."
        ))
        .into());
    };
    finish(audius, req, params, answer).await
}

/// Refuses a request that a browser marks as cross-site, or whose `Origin` is another origin.
fn same_origin(audius: &AudiusLogin, req: &HttpRequest) -> Result<(), AudiusLoginError> {
    let refuse = |why: &str| {
        Err(AudiusLoginError::new(
            LoginErrorKind::CrossSiteRequest,
            format!("Cross-site request refused ({why})."),
        ))
    };
    if let Some(site) = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return refuse(&format!("Sec-Fetch-Site: {site}"));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && origin.as_bytes() != audius.inner.app_origin.as_bytes()
    {
        return refuse("Origin is another site");
    }
    Ok(())
}

/// The callback's work, whatever the channel.
async fn finish(
    audius: &AudiusLogin,
    req: HttpRequest,
    params: CallbackParams,
    answer: Answer,
) -> Result<HttpResponse, actix_web::Error> {
    let (user, return_to) = match complete(audius, &req, params).await {
        Ok(done) => done,
        Err(CallbackError::Login(e)) => {
            tracing::info!(code = e.code(), error = %e, "Audius login refused");
            let e = if answer == Answer::Json {
                e
            } else {
                present(audius, &req, e)
            };
            return Err(e.into());
        }
        Err(CallbackError::Hook(e)) => return Err(e),
    };
    tracing::info!(user_id = user.id, handle = %user.handle, "signed in with Audius");
    let mut res = match answer {
        Answer::Found => HttpResponse::Found()
            .insert_header((header::LOCATION, return_to.as_str()))
            .finish(),
        Answer::SeeOther => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, return_to.as_str()))
            .finish(),
        Answer::Json => HttpResponse::Ok().json(SignedIn {
            redirect: &return_to,
            user: &user,
        }),
    };
    no_store(&mut res);
    Ok(res)
}

enum CallbackError {
    Login(AudiusLoginError),
    Hook(actix_web::Error),
}

impl From<AudiusLoginError> for CallbackError {
    fn from(e: AudiusLoginError) -> Self {
        Self::Login(e)
    }
}

impl From<audius_login::Error> for CallbackError {
    fn from(e: audius_login::Error) -> Self {
        Self::Login(e.into())
    }
}

async fn complete(
    audius: &AudiusLogin,
    req: &HttpRequest,
    params: CallbackParams,
) -> Result<(AudiusUser, String), CallbackError> {
    let c = &audius.inner;
    let session = req.get_session();
    let state = params.state.filter(|s| !s.is_empty()).ok_or_else(|| {
        AudiusLoginError::new(
            LoginErrorKind::MissingState,
            "The login answer carries no state. Please log in again.",
        )
    })?;
    // The state is consumed here, whatever happens next.
    let attempt = session::take_pending(&session, c, &state)?;
    let token = params.token.filter(|t| !t.is_empty()).ok_or_else(|| {
        AudiusLoginError::new(
            LoginErrorKind::MissingToken,
            "The login answer carries no token. Please log in again.",
        )
    })?;
    let profile = c.verifier.verify(&token).await?;
    // Enforced here too, whatever verifier is configured.
    c.verify_options.check_age(&profile.claims)?;
    let ttl = c.max_token_age + c.clock_skew * 2;
    if !c.replay_cache.first_use(&token, ttl).await? {
        return Err(audius_login::Error::Replayed.into());
    }
    let user = AudiusUser::from_profile(&profile, session::now(c));
    if let Some(hook) = &c.on_login {
        let event = LoginEvent {
            user: user.clone(),
            profile,
            return_to: attempt.return_to.clone(),
        };
        if let Err(e) = hook(req.clone(), event).await {
            return Err(match e.as_error::<AudiusLoginError>() {
                Some(login_error) => CallbackError::Login(AudiusLoginError::new(
                    login_error.kind(),
                    login_error.message(),
                )),
                None => CallbackError::Hook(e),
            });
        }
    }
    session::sign_in(&session, &user)?;
    crate::extract::cache_user(req, Some(user.clone()));
    Ok((user, attempt.return_to))
}

fn logout_handler(
    audius: &AudiusLogin,
    req: &HttpRequest,
) -> Result<HttpResponse, AudiusLoginError> {
    same_origin(audius, req)?;
    let session = req.get_session();
    match audius.inner.logout_behavior {
        LogoutBehavior::PurgeSession => session.purge(),
        LogoutBehavior::ForgetUser => {
            session.remove(USER_KEY);
            session.renew();
        }
    }
    tracing::debug!("signed out");
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, audius.inner.landing_path.as_str()))
        .finish();
    no_store(&mut res);
    Ok(res)
}

fn asset(req: &HttpRequest, content: &'static str, content_type: &'static str) -> HttpResponse {
    let etag = format!("\"{}\"", pages::content_version(content));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let versioned = req.query_string().starts_with("v=");
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    let mut builder = if fresh {
        HttpResponse::build(StatusCode::NOT_MODIFIED)
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag))
        .insert_header(("x-content-type-options", "nosniff"));
    if fresh || req.method() == Method::HEAD {
        builder.finish()
    } else {
        builder.content_type(content_type).body(content)
    }
}
