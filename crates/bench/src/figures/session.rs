//! The session cookie's size (`session_cookie_bytes`): the `Set-Cookie` of a real login of
//! `@artist`, as the browser sends it back; the longest profile the sandbox allows, for
//! comparison; and what the session holds before encryption.

use std::net::SocketAddr;

use actix_audius_login::AudiusLogin;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, Key};
use actix_web::dev::{Service, ServiceResponse};

use super::report::{Report, say};
use crate::BenchResult;
use crate::apps;
use crate::load;
use crate::login::{LONG_USER, finish_login, start_login};

/// The `Cookie` request header a browser sends back for this `Set-Cookie`: `name=value`, the
/// value percent-encoded as actix-web sends it. Its length is what counts against a browser's
/// 4 KiB cookie limit.
pub(crate) fn cookie_header(cookie: &Cookie<'_>) -> String {
    cookie.stripped().encoded().to_string()
}

/// Logs `@artist` in on `app` (this project's app, configured with `audius`) and records the
/// session cookie's size in `report`; gives the cookie, which the request figures send.
pub(super) async fn measure<S, B>(
    app: &S,
    audius: &AudiusLogin,
    key: &Key,
    sandbox_addr: SocketAddr,
    report: &mut Report,
) -> BenchResult<Cookie<'static>>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let audius_cookie = actix_audius_login_testing::sign_in_service(app, audius, "artist").await?;
    let bytes = cookie_header(&audius_cookie).len() as u64;
    report.session_cookie_bytes = bytes;
    let mut connection = load::Connection::open(sandbox_addr).await?;
    let pending = start_login(app, audius, &mut connection, LONG_USER).await?;
    let (long_cookie, _) = finish_login(app, pending).await?;
    say(format!(
        "session cookie after login (name=value): {bytes} bytes for @artist (verified, picture, \
         email); {} bytes for the longest profile the sandbox allows (30-character handle, \
         100-character name, 100-character email, picture); goal <= 1024",
        cookie_header(&long_cookie).len()
    ));
    let entries = apps::session_entries_of(key, &audius_cookie).await;
    let plaintext = serde_json::to_string(&entries)?.len();
    let sizes: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{k}: {} bytes", v.as_str().map_or(0, str::len)))
        .collect();
    say(format!(
        "  the session of @artist before encryption: {plaintext} bytes of JSON ({}); the cookie \
         adds the AES-GCM nonce and tag, base64 and percent-encoding",
        sizes.join(", ")
    ));
    if let Some(user) = entries.get("audius.user").and_then(|v| v.as_str()) {
        say(format!("  audius.user = {user}"));
    }
    Ok(audius_cookie)
}
