//! Route guards: match a route only for signed-in users, or only for verified artists.
//!
//! Each is [`AudiusRequestExt::audius_user`](crate::AudiusRequestExt::audius_user) on the
//! guard's context, which any `guard::fn_guard` can call too. Guards decide *which* route answers
//! (a guard that fails lets routing try the next route),
//! where extractors decide *whether* a route answers. Use them to serve two variants of a page:
//!
//! ```no_run
//! use actix_web::{web, App, HttpResponse};
//! use actix_audius_login::guard::{SignedIn, IsVerifiedArtist};
//! # fn make(audius: actix_audius_login::AudiusLogin) {
//! let app = App::new()
//!     .route("/", web::get().guard(IsVerifiedArtist).to(|| async { HttpResponse::Ok().body("artist home") }))
//!     .route("/", web::get().guard(SignedIn).to(|| async { HttpResponse::Ok().body("listener home") }))
//!     .route("/", web::get().to(|| async { HttpResponse::Ok().body("welcome, please log in") }))
//!     .wrap(audius.middleware());
//! # }
//! ```

use actix_web::guard::{Guard, GuardContext};

use crate::extract::AudiusRequestExt as _;

/// Matches requests of a signed-in user.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedIn;

impl Guard for SignedIn {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.audius_user().is_some()
    }
}

/// Matches requests without a signed-in user.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedOut;

impl Guard for SignedOut {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.audius_user().is_none()
    }
}

/// Matches requests of a signed-in verified artist.
#[derive(Debug, Clone, Copy, Default)]
pub struct IsVerifiedArtist;

impl Guard for IsVerifiedArtist {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.audius_user().is_some_and(|u| u.verified)
    }
}
