//! Test helpers (feature `testing`): run the app on a free port, and log a test client in as a
//! sandbox user in one call.
//!
//! Point the app at an `audius-sandbox` ([`AudiusLoginBuilder::environment`] with
//! `sandbox.environment()`), then either drive a real server with [`TestServer`] and
//! [`TestClient`], or an in-process `actix_web::test` service with [`sign_in_service`]. Both go
//! through the app's real login route, the sandbox's real login page (its `sandbox_user`
//! automation hook approves at once) and the app's real callback, in whatever channel and flow
//! the app uses (the code flow through `/v1/oauth/authorize`, its code exchanged by the callback
//! as in production).
//!
//! The redirect URI names the app's port, which is known only once something listens on it:
//! [`TestServer::bind`] takes a free port on `127.0.0.1` first, [`TestServer::url`] gives the
//! callback URL to build the [`AudiusLogin`](crate::AudiusLogin) with, and [`TestServer::start`]
//! then serves the app
//! there. The whole set-up:
//!
//! ```no_run
//! use actix_audius_login::testing::{TestError, TestServer};
//! use actix_audius_login::{AudiusLogin, AudiusUser, VerifiedArtist};
//! use actix_session::{SessionMiddleware, storage::CookieSessionStore};
//! use actix_web::cookie::{Key, SameSite};
//! use actix_web::http::StatusCode;
//! use actix_web::{App, HttpResponse, web};
//!
//! // In `tests/`, with `#[actix_web::test]` on it.
//! async fn artists_get_in_and_listeners_do_not() -> Result<(), Box<dyn std::error::Error>> {
//!     let sandbox = audius_sandbox::Sandbox::builder().start().await?;
//!     let server = TestServer::bind()?; // a free port on 127.0.0.1, before the app exists
//!     let audius = AudiusLogin::builder("My App", server.url("/auth/audius/callback"))
//!         .environment(sandbox.environment())
//!         .build()?;
//!     let key = Key::generate();
//!     let server = server.start({
//!         let audius = audius.clone();
//!         move || {
//!             App::new()
//!                 .configure(audius.routes())
//!                 .route("/me", web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }))
//!                 .route("/studio", web::get().to(|a: VerifiedArtist| async move { a.name.clone() }))
//!                 .wrap(
//!                     SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
//!                         .cookie_secure(audius.cookie_secure()) // false on http://127.0.0.1
//!                         .cookie_same_site(SameSite::Lax)
//!                         .build(),
//!                 )
//!         }
//!     })?;
//!
//!     let listener = server.client(&audius)?;
//!     assert_eq!(listener.get("/me").send().await?.status(), StatusCode::UNAUTHORIZED);
//!     listener.sign_in_as("listener").await?;
//!     let me: serde_json::Value = listener.get("/me").send().await?.json()?;
//!     assert_eq!(me["handle"], "listener");
//!     assert_eq!(listener.get("/studio").send().await?.status(), StatusCode::FORBIDDEN);
//!
//!     let artist = server.client(&audius)?;
//!     artist.sign_in_as("artist").await?; // a verified artist
//!     assert_eq!(artist.get("/studio").send().await?.status(), StatusCode::OK);
//!     artist.logout().await?;
//!     assert_eq!(artist.get("/studio").send().await?.status(), StatusCode::UNAUTHORIZED);
//!
//!     // A refused login is typed, with the status of the refusal.
//!     match artist.sign_in_as("nobody-such").await {
//!         Err(TestError::Refused { status, .. }) => assert_eq!(status, StatusCode::BAD_REQUEST),
//!         other => panic!("{other:?}"),
//!     }
//!     Ok(())
//! }
//! ```
//!
//! [`AudiusLoginBuilder::environment`]: crate::AudiusLoginBuilder::environment

mod client;
mod error;
mod server;
mod sign_in;

pub use client::{RequestBuilder, TestClient, TestResponse};
pub use error::TestError;
pub use server::TestServer;
pub use sign_in::sign_in_service;
