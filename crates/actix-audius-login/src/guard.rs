//! [`LoginGuard`]: route guards that match a route only for signed-in users, only for verified
//! artists, or only for visitors.

use actix_web::guard::{Guard, GuardContext};

use crate::extract::AudiusRequestExt as _;

/// A route guard on who is signed in: `web::get().guard(LoginGuard::SignedIn)`.
///
/// Each is [`AudiusRequestExt::audius_user`](crate::AudiusRequestExt::audius_user) on the
/// guard's context, which any `guard::fn_guard` can call too. Guards decide *which* route answers
/// (a guard that fails lets routing try the next route), where extractors (and
/// [`RequireLogin`](crate::RequireLogin)) decide *whether* a route answers. Use them to serve
/// variants of a page:
///
/// ```no_run
/// use actix_web::{web, App, HttpResponse};
/// use actix_audius_login::LoginGuard;
/// # fn make(audius: actix_audius_login::AudiusLogin) {
/// let app = App::new()
///     .route("/", web::get().guard(LoginGuard::VerifiedArtist).to(|| async { HttpResponse::Ok().body("artist home") }))
///     .route("/", web::get().guard(LoginGuard::SignedIn).to(|| async { HttpResponse::Ok().body("listener home") }))
///     .route("/", web::get().to(|| async { HttpResponse::Ok().body("welcome, please log in") }))
///     .wrap(audius.middleware());
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoginGuard {
    /// Matches requests of a signed-in user.
    SignedIn,
    /// Matches requests without a signed-in user.
    SignedOut,
    /// Matches requests of a signed-in verified artist.
    VerifiedArtist,
}

impl Guard for LoginGuard {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        let user = ctx.audius_user();
        match self {
            Self::SignedIn => user.is_some(),
            Self::SignedOut => user.is_none(),
            Self::VerifiedArtist => user.is_some_and(|u| u.verified),
        }
    }
}
