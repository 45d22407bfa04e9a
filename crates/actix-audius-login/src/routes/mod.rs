//! The mountable routes: login, callback (in [`callback`]), logout, and the button's assets.
//!
//! | route | default path | what |
//! |---|---|---|
//! | login | `GET /auth/audius/login?return_to=/path` | new state (code flow: and PKCE verifier) in the session, 302 to the Audius login page (code flow: `{api}/v1/oauth/authorize`) |
//! | callback | the redirect URI's path, `GET` and `POST` | checks state, verifies the token (code flow: exchanges the code, reads `/v1/me`), signs in, 302/303 to the return-to |
//! | logout | `POST /auth/logout` | refuses cross-site requests, revokes the code flow's tokens (best effort), purges the session, 303 to the landing page |
//! | assets | `GET /auth/audius/assets/{login.js,button.css}` | the popup script and the button stylesheet |

mod callback;

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_session::SessionExt as _;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse};
use audius_login::oauth::{AuthorizeUrl, PkceVerifier};
use audius_login::return_to::sanitize_return_to;
use audius_login::{LoginUrl, RedirectUri, State};
use futures_util::future::LocalBoxFuture;

use crate::config::{Flow, LogoutBehavior, ResponseMode};
use crate::diagnose;
use crate::error::{AudiusLoginError, LoginErrorKind};
use crate::lookup::{CodeFlow, MountedLogin};
use crate::pages;
use crate::refresh::{self, read_tokens};
use crate::session::{self, PendingLogin, TOKENS_KEY, USER_KEY};
use crate::state::{AudiusLogin, warn_if_replay_caches_are_per_worker};
use callback::{callback_get_handler, callback_post_handler};

/// The routes of `this` ([`AudiusLogin::routes`](crate::AudiusLogin::routes)).
pub(crate) fn configure(this: AudiusLogin) -> impl FnOnce(&mut ServiceConfig) + 'static {
    {
        move |cfg: &mut ServiceConfig| {
            warn_if_replay_caches_are_per_worker(&this);
            if this.inner.flow == Flow::Implicit {
                cfg.app_data(MountedLogin(this.clone()));
            }
            let c = &this.inner;
            let login = this.clone();
            let callback_get = this.clone();
            let callback_post = this.clone();
            let logout = this.clone();
            cfg.service(
                web::resource(c.paths.login.as_str())
                    .wrap_fn(close_if_body_left(BodyRead::Never))
                    .route(web::get().to(move |req: HttpRequest| {
                        let a = login.clone();
                        async move { start_login(&a, &req).map_err(|e| present(&a, &req, e)) }
                    })),
            )
            .service(
                web::resource(c.callback_path.as_str())
                    .wrap_fn(close_if_body_left(BodyRead::ByPost))
                    .route(web::get().to(move |req: HttpRequest| {
                        let a = callback_get.clone();
                        async move { callback_get_handler(&a, req).await }
                    }))
                    .route(web::post().to(move |req: HttpRequest, body: web::Payload| {
                        let a = callback_post.clone();
                        async move { callback_post_handler(&a, req, body).await }
                    })),
            )
            .service(
                web::resource(c.paths.logout.as_str())
                    .wrap_fn(close_if_body_left(BodyRead::Never))
                    .route(web::post().to(move |req: HttpRequest| {
                        let a = logout.clone();
                        async move {
                            logout_handler(&a, &req)
                                .await
                                .map_err(|e| present(&a, &req, e))
                        }
                    })),
            )
            .service(
                web::resource(format!("{}/login.js", c.paths.assets))
                    .wrap_fn(close_if_body_left(BodyRead::Never))
                    .route(web::get().to(|req: HttpRequest| async move {
                        asset(&req, pages::LOGIN_JS, "text/javascript; charset=utf-8")
                    })),
            )
            .service(
                web::resource(format!("{}/button.css", c.paths.assets))
                    .wrap_fn(close_if_body_left(BodyRead::Never))
                    .route(web::get().to(|req: HttpRequest| async move {
                        asset(&req, pages::BUTTON_CSS, "text/css; charset=utf-8")
                    })),
            );
        }
    }
}

/// Which requests of a route have their body read to its end.
#[derive(Debug, Clone, Copy)]
enum BodyRead {
    /// None (the body carries nothing the route uses).
    Never,
    /// By a `POST` (the callback's; its refusals that leave it unread keep it themselves).
    ByPost,
}

/// An answer's body that keeps the request's unread body until it is sent, so that actix-web
/// closes the connection after the answer. actix-web reads (and throws away) what is left of a
/// *dropped* chunked body to reuse the connection, with no deadline: a body trickling a byte
/// now and then would hold the connection for ever after the answer (found by review 8). A
/// request body still held when the answer's body ends makes it close the connection instead.
pub(crate) struct UnreadBody {
    answer: BoxBody,
    _unread: Payload,
}

impl UnreadBody {
    /// `res`, keeping `unread` until it is sent, with `Connection: close`.
    pub(crate) fn close_with(unread: Payload, mut res: HttpResponse) -> HttpResponse {
        res.head_mut().set_connection_type(ConnectionType::Close);
        res.map_body(|_, answer| {
            BoxBody::new(UnreadBody {
                answer,
                _unread: unread,
            })
        })
    }
}

impl MessageBody for UnreadBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.answer.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().answer).poll_next(cx)
    }
}

/// Closes the connection after answering a request that declared a body the route left unread
/// (or may have): see [`UnreadBody`].
fn close_if_body_left<S>(
    read: BodyRead,
) -> impl Fn(
    ServiceRequest,
    &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>
+ Clone
+ 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    move |mut req: ServiceRequest, service: &S| {
        let declares_body = req.headers().contains_key(header::TRANSFER_ENCODING)
            || req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|len| len.as_bytes() != b"0");
        // A route that reads no body of this request: the body is kept from the handler, and
        // held with the answer. (The callback's `POST` keeps its own unread body with its
        // refusals: `callback_post_handler`.)
        let unread = match read {
            BodyRead::Never => declares_body,
            BodyRead::ByPost => declares_body && req.method() != Method::POST,
        }
        .then(|| req.take_payload());
        let answer = service.call(req);
        Box::pin(async move {
            let res = answer.await?;
            Ok(match unread {
                Some(body) => {
                    let (req, res) = res.into_parts();
                    ServiceResponse::new(req, UnreadBody::close_with(body, res))
                }
                None => res,
            })
        })
    }
}

/// Makes an error answer in the client's language (page or JSON).
fn present(audius: &AudiusLogin, req: &HttpRequest, e: AudiusLoginError) -> AudiusLoginError {
    e.for_client(req, &audius.inner.paths.login, &audius.inner.paths.landing)
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
    // Without a session middleware the state would be forgotten, and the callback could only
    // say "state mismatch": say what is wrong now.
    if diagnose::session_middleware_missing(req) {
        return Err(diagnose::no_session_middleware());
    }
    let return_to = first_param(req.query_string(), "return_to")
        .and_then(|r| sanitize_return_to(&r))
        .unwrap_or_else(|| c.paths.landing.clone());
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
    let popup = c.response_mode == ResponseMode::PostMessage;
    let (url, verifier) = match c.flow {
        Flow::Implicit => {
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
            if popup {
                builder = builder.origin(c.app_origin.clone());
            }
            (builder.build()?, None)
        }
        Flow::AuthorizationCode => {
            let verifier = PkceVerifier::generate();
            let mut builder = AuthorizeUrl::builder()
                .client_id(c.api_key.clone().unwrap_or_default())
                .redirect_uri(redirect_uri)
                .scope(c.scope)
                .state(&state)
                .pkce(&verifier)
                .response_mode(mode)
                .display(c.display)
                .environment(c.environment.clone());
            if popup {
                builder = builder.origin(c.app_origin.clone());
            }
            (builder.build()?, Some(verifier))
        }
    };
    let started_at = session::now(c).unix_timestamp();
    c.issued_states.remember(state.secret(), started_at);
    session::push_pending(
        &req.get_session(),
        c,
        PendingLogin {
            state,
            return_to,
            started_at,
            verifier,
        },
    )?;
    tracing::debug!(mode = ?c.response_mode, flow = ?c.flow, "starting an Audius login");
    let mut res = HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .finish();
    no_store(&mut res);
    Ok(res)
}

/// Refuses a request that a browser marks as cross-site, or whose `Origin` is another origin;
/// when neither `Sec-Fetch-Site` nor `Origin` is sent (older browsers, some privacy settings),
/// a `Referer` of another origin is refused too. A request with none of the three (a
/// non-browser client) passes: the session cookie is `SameSite=Lax` anyway.
pub(crate) fn same_origin(audius: &AudiusLogin, req: &HttpRequest) -> Result<(), AudiusLoginError> {
    let refuse = |why: &str| {
        Err(AudiusLoginError::new(
            LoginErrorKind::CrossSiteRequest,
            format!("Cross-site request refused ({why})."),
        ))
    };
    let headers = req.headers();
    let fetch_site = headers.get("sec-fetch-site");
    if let Some(site) = fetch_site.and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return refuse(&format!("Sec-Fetch-Site: {site}"));
    }
    let origin = headers.get(header::ORIGIN);
    if let Some(origin) = origin
        && origin.as_bytes() != audius.inner.app_origin.as_bytes()
    {
        return refuse("Origin is another site");
    }
    if fetch_site.is_none()
        && origin.is_none()
        && let Some(referer) = headers.get(header::REFERER)
    {
        let same = referer
            .to_str()
            .ok()
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|r| r.origin().ascii_serialization() == audius.inner.app_origin);
        if !same {
            return refuse("Referer is another site");
        }
    }
    Ok(())
}

async fn logout_handler(
    audius: &AudiusLogin,
    req: &HttpRequest,
) -> Result<HttpResponse, AudiusLoginError> {
    same_origin(audius, req)?;
    let session = req.get_session();
    let tokens = read_tokens(&session);
    match audius.inner.logout_behavior {
        LogoutBehavior::PurgeSession => session.purge(),
        LogoutBehavior::ForgetUser => {
            session.remove(USER_KEY);
            session.remove(TOKENS_KEY);
            session.renew();
        }
    }
    if let Some(tokens) = tokens {
        // Revoked with the code flow's configuration when there is one (it tracks the session's
        // newest tokens), else with this one's client: revocation needs no client_id.
        let code_flow = req.extensions().get::<CodeFlow>().cloned();
        let config = code_flow.map_or_else(|| audius.clone(), |CodeFlow(c)| c);
        refresh::revoke(
            &config.inner,
            &config.inner.families,
            &config.inner.background,
            &tokens,
        )
        .await;
    }
    tracing::debug!("signed out");
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, audius.inner.paths.landing.as_str()))
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
