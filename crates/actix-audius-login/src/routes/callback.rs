//! The callback route: what the login page hands back (a token, or a code), checked and
//! turned into a signed-in session, in whichever channel the app answers.

use actix_session::SessionExt as _;
use actix_web::http::header;
use actix_web::web;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, ResponseError as _};
use audius_login::defaults::MAX_CODE_LEN;
use audius_login::replay::ReplayKey;
use audius_login::{PreparedToken, RedirectUri};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::{UnreadBody, first_param, no_store, present, same_origin};
use crate::config::{Config, Flow, LoginEvent, ResponseMode};
use crate::diagnose;
use crate::error::{AudiusLoginError, LoginErrorKind, loggable};
use crate::lookup::CodeFlow;
use crate::metrics;
use crate::pages;
use crate::refresh::{self, StoredTokens, read_tokens};
use crate::session::{self, PendingLogin, TOKENS_KEY};
use crate::state::AudiusLogin;
use crate::user::AudiusUser;

/// Largest callback body read: a token (16 KiB) and a state, with room for encoding.
const MAX_CALLBACK_BODY: usize = 64 * 1024;
/// The most characters of a handle the "signed in" log line carries (Audius' handles have 30 at
/// most; one taken from a token's claims could have anything).
const LOGGED_HANDLE_CHARS: usize = 64;

/// What a callback carries: `state` and `token` (implicit flow), or `state` and `code`, or
/// `state`, `error` and `error_description` (code flow).
#[derive(Debug, Default, Deserialize)]
struct CallbackParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl CallbackParams {
    /// The parameters of a query string or form.
    fn from_pairs(pairs: &str) -> Self {
        Self {
            state: first_param(pairs, "state"),
            token: first_param(pairs, "token"),
            code: first_param(pairs, "code"),
            error: first_param(pairs, "error"),
            error_description: first_param(pairs, "error_description"),
        }
    }

    fn is_empty(&self) -> bool {
        self.state.is_none() && self.token.is_none() && self.code.is_none() && self.error.is_none()
    }
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

pub(super) async fn callback_get_handler(
    audius: &AudiusLogin,
    req: HttpRequest,
) -> Result<HttpResponse, actix_web::Error> {
    let c = &audius.inner;
    let params = CallbackParams::from_pairs(req.query_string());
    match c.response_mode {
        ResponseMode::Query => finish(audius, req, params, Answer::Found).await,
        ResponseMode::Fragment if params.is_empty() => {
            let mut res = HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header(("content-security-policy", pages::bridge_csp()))
                .body(pages::bridge_page(&c.callback_path, &c.paths.login));
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

/// Why the callback's body was not read.
enum BodyRefusal {
    /// Reading it failed (the connection is broken): nothing to keep.
    Broken(AudiusLoginError),
    /// It is too large or too slow: its rest is left unread.
    LeftUnread(AudiusLoginError),
}

/// The answer to a callback refused before its body was read to the end: the body is kept with
/// it, and the connection closed after it ([`UnreadBody`]).
fn refuse_unread(e: AudiusLoginError, body: web::Payload) -> HttpResponse {
    UnreadBody::close_with(body.into_inner(), e.error_response())
}

pub(super) async fn callback_post_handler(
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
        return Ok(refuse_unread(present(audius, &req, e), body));
    }
    // Bounded in size and in time: a body that trickles (or never comes) is cut off, and its
    // rest is kept with the answer, which closes the connection (`UnreadBody`).
    let deadline = audius.inner.callback_body_timeout;
    let read = async {
        let mut bytes = web::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                BodyRefusal::Broken(invalid(format!("The callback body could not be read: {e}")))
            })?;
            if bytes.len() + chunk.len() > MAX_CALLBACK_BODY {
                return Err(BodyRefusal::LeftUnread(AudiusLoginError::new(
                    LoginErrorKind::TokenTooLarge,
                    format!("The callback body is over {MAX_CALLBACK_BODY} bytes."),
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let read = tokio::time::timeout(deadline, read)
        .await
        .unwrap_or_else(|_| {
            Err(BodyRefusal::LeftUnread(AudiusLoginError::new(
                LoginErrorKind::CallbackTimeout,
                format!(
                    "The callback body did not arrive within {} s.",
                    deadline.as_secs_f64()
                ),
            )))
        });
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(BodyRefusal::Broken(e)) => return Err(e.into()),
        Err(BodyRefusal::LeftUnread(e)) => {
            return Ok(refuse_unread(present(audius, &req, e), body));
        }
    };
    let content_type = req.content_type().to_ascii_lowercase();
    let (params, answer) = if content_type == "application/json" {
        let params: CallbackParams = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("The callback body is not the JSON expected: {e}")))?;
        (params, Answer::Json)
    } else if content_type == "application/x-www-form-urlencoded" {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| invalid("The callback form is not UTF-8.".into()))?;
        (CallbackParams::from_pairs(text), Answer::SeeOther)
    } else {
        return Err(invalid(format!(
            "The callback takes application/json or a form, not {content_type:?}."
        ))
        .into());
    };
    finish(audius, req, params, answer).await
}

/// The callback's work, whatever the channel.
async fn finish(
    audius: &AudiusLogin,
    req: HttpRequest,
    params: CallbackParams,
    answer: Answer,
) -> Result<HttpResponse, actix_web::Error> {
    // Asked before the callback touches the session (see `explain_state_mismatch`).
    let no_session = diagnose::session_middleware_missing(&req);
    let state = params.state.clone();
    let span = metrics::callback_span(&audius.inner);
    let completed = complete(audius, &req, params)
        .instrument(span.clone())
        .await;
    metrics::login_outcome(&span, completed.as_ref().map(|(user, _)| user));
    let _entered = span.enter(); // No await below.
    let (user, return_to) = match completed {
        Ok(done) => done,
        Err(e) => {
            let e = diagnose::explain_state_mismatch(
                &audius.inner,
                &audius.inner.issued_states,
                &req,
                state.as_deref(),
                no_session,
                e,
            );
            tracing::info!(code = e.code(), error = %e.for_log(), "Audius login refused");
            let e = if answer == Answer::Json {
                e
            } else {
                present(audius, &req, e)
            };
            return Err(e.into());
        }
    };
    // The handle may come from the token's claims (`ProfileSource::TokenClaims`): escaped.
    tracing::info!(
        user_id = user.id,
        handle = %loggable(&user.handle, LOGGED_HANDLE_CHARS),
        "signed in with Audius"
    );
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

async fn complete(
    audius: &AudiusLogin,
    req: &HttpRequest,
    params: CallbackParams,
) -> Result<(AudiusUser, String), AudiusLoginError> {
    let c = &audius.inner;
    let session = req.get_session();
    let state = params
        .state
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AudiusLoginError::new(
                LoginErrorKind::MissingState,
                "The login answer carries no state. Please log in again.",
            )
        })?;
    // The state is taken out of the session here, whatever happens next...
    let attempt = session::take_pending(&session, c, &state)?;
    // ...and refused if a callback already signed in with it: with a cookie store, the cookie
    // from before that callback still carries it. (Recorded only when a callback succeeds, see
    // `consume_state`: a failed callback records nothing, so anonymous garbage callbacks cannot
    // fill the replay cache.)
    let state_key = ReplayKey::for_state(&state);
    if c.replay_cache.seen(&state_key).await? {
        return Err(state_used_already());
    }
    if c.flow == Flow::AuthorizationCode {
        return complete_code_flow(audius, req, params, attempt, &state_key).await;
    }
    let token = params.token.filter(|t| !t.is_empty()).ok_or_else(|| {
        AudiusLoginError::new(
            LoginErrorKind::MissingToken,
            "The login answer carries no token. Please log in again.",
        )
    })?;
    // Cheap checks first, before any network call: structure and signer (parsed and recovered
    // here, whatever verifier is configured), age, audience, and a replay read. The replay key
    // is the token's identity, the same for every spelling of it the parser accepts.
    let prepared = PreparedToken::parse(&token, c.verify_options.get_max_token_bytes())?;
    c.verify_options.check_claims(prepared.claims())?;
    let key = prepared.replay_key();
    if c.replay_cache.seen(key).await? {
        return Err(audius_login::Error::Replayed.into());
    }
    // A user with as many live logins as allowed is refused before any request. Nothing is
    // held yet: a forged token waiting on Audius must not take the user's places.
    if !c.user_logins.admits(prepared.claims().user_id.get()) {
        return Err(too_many_logins());
    }
    let profile = c.verifier.verify_prepared(&prepared).await?;
    // Enforced on the verified claims too, whatever verifier is configured.
    c.verify_options.check_claims(&profile.claims)?;
    // Verified: the place is reserved now, atomically (verified callbacks racing cannot all
    // pass), and given back unless this login succeeds.
    let reservation = c
        .user_logins
        .try_reserve(profile.user_id.get())
        .ok_or_else(too_many_logins)?;
    // Recorded only now, atomically, the state first (two callbacks racing with one state from
    // a replayed cookie: one wins, and the loser's token stays unused): a forged token, or a
    // failed callback, never takes a place in the cache.
    let state_ttl = consume_state(c, &state_key, &attempt).await?;
    let token_ttl = token_entry_ttl(c, &prepared);
    if !c.replay_cache.first_use(key, token_ttl).await? {
        return Err(audius_login::Error::Replayed.into());
    }
    reservation.confirm(instant_after(state_ttl.max(token_ttl)));
    let user = AudiusUser::from_profile(&profile, session::now(c));
    run_hook(audius, req, &user, profile, &attempt.return_to).await?;
    // Signed in first: a user the session cannot take (too large) fails the login and leaves
    // the session as it was, its code-flow tokens included (review 11).
    let old = read_tokens(&session);
    session::sign_in(&session, &user)?;
    // Tokens of another user (a code-flow login in the same session) no longer apply.
    if let Some(tokens) = old
        && tokens.user_id != user.id
    {
        session.remove(TOKENS_KEY);
        // Revoked by the code flow's configuration when the app has one (it tracks the
        // session's newest tokens and runs the code flow's background work: review 10).
        let code_flow = req.extensions().get::<CodeFlow>().cloned();
        let owner = code_flow.map_or_else(|| audius.clone(), |CodeFlow(config)| config);
        let o = &owner.inner;
        refresh::revoke_in_background(o, &o.families, &o.background, tokens);
    }
    Ok((user, attempt.return_to))
}

/// The refusal of a state a callback already signed in with.
fn state_used_already() -> AudiusLoginError {
    tracing::info!("a consumed login state was presented again (an old session cookie)");
    metrics::replay_refused("replayed");
    AudiusLoginError::new(
        LoginErrorKind::StateMismatch,
        "This login does not match one started in this browser (or it was already used). \
         Please log in again.",
    )
}

/// The refusal of a user with as many live logins as allowed.
fn too_many_logins() -> AudiusLoginError {
    tracing::warn!("a user with as many live logins as allowed logged in again: refused");
    AudiusLoginError::new(
        LoginErrorKind::TooManyLogins,
        "This account signed in here too many times in the last few minutes; please try again \
         in a few minutes.",
    )
}

/// The instant `ttl` from now (far in the future when that overflows).
fn instant_after(ttl: std::time::Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(ttl)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// How long an accepted token is remembered: until it is stale on every clock within the skew
/// of this one (`iat + max_age + 2 × skew`), and never less than `max_age + 2 × skew` (the
/// token's whole acceptance window, whatever its age now).
fn token_entry_ttl(c: &Config, prepared: &PreparedToken) -> std::time::Duration {
    let Some(issued_at) = prepared.claims().issued_at() else {
        return c.replay_ttl;
    };
    let stale_everywhere = time::Duration::try_from(c.replay_ttl)
        .ok()
        .and_then(|window| issued_at.checked_add(window));
    let left = stale_everywhere.map(|at| at - session::now(c));
    match left.and_then(|left| std::time::Duration::try_from(left).ok()) {
        Some(left) => left.max(c.replay_ttl),
        None => c.replay_ttl,
    }
}

/// Records the state of a successful callback as consumed in the replay cache, for the rest of
/// its attempt's lifetime, and says for how long; refuses it when another callback recorded it
/// first (an old cookie replayed, at the same moment).
///
/// Only successful callbacks record their state: a state whose callback failed (a malformed,
/// forged, stale or refused token) can be presented again with an old cookie, and used at most
/// once more *successfully*, within its attempt's lifetime. That is no login CSRF: the state
/// is still bound to the browser's session, and only a token for it signs in. Recording failed
/// callbacks too would let anyone fill an in-memory replay cache with garbage callbacks.
async fn consume_state(
    c: &Config,
    state_key: &ReplayKey,
    attempt: &PendingLogin,
) -> Result<std::time::Duration, AudiusLoginError> {
    let now = session::now(c).unix_timestamp();
    let ttl_secs = i64::try_from(c.attempt_ttl.as_secs()).unwrap_or(i64::MAX);
    // The attempt is accepted while its age is at most the attempt lifetime (see
    // `take_pending`): remember the state until then, and one second more.
    let left = attempt
        .started_at
        .saturating_add(ttl_secs)
        .saturating_sub(now)
        .saturating_add(1)
        .max(1);
    let ttl = std::time::Duration::from_secs(u64::try_from(left).unwrap_or(1));
    if c.replay_cache.first_use(state_key, ttl).await? {
        Ok(ttl)
    } else {
        Err(state_used_already())
    }
}

/// Runs the `on_login` hook, if any.
async fn run_hook(
    audius: &AudiusLogin,
    req: &HttpRequest,
    user: &AudiusUser,
    profile: audius_login::VerifiedProfile,
    return_to: &str,
) -> Result<(), AudiusLoginError> {
    let Some(hook) = &audius.inner.on_login else {
        return Ok(());
    };
    let event = LoginEvent {
        user: user.clone(),
        profile,
        return_to: return_to.to_owned(),
    };
    hook(req.clone(), event).await
}

/// The code flow's callback, after the state was checked: the code exchanged for tokens with
/// the session's verifier, the user read from `/v1/me`, the tokens kept in the session.
async fn complete_code_flow(
    audius: &AudiusLogin,
    req: &HttpRequest,
    params: CallbackParams,
    attempt: PendingLogin,
    state_key: &ReplayKey,
) -> Result<(AudiusUser, String), AudiusLoginError> {
    let c = &audius.inner;
    let session = req.get_session();
    if let Some(error) = params.error.filter(|e| !e.is_empty()) {
        let error: String = error.chars().take(64).collect();
        return Err(audius_login::oauth::callback_error(
            &error,
            params.error_description.as_deref(),
        )
        .into());
    }
    let verifier = attempt.verifier.as_ref().ok_or_else(|| {
        AudiusLoginError::new(
            LoginErrorKind::StateMismatch,
            "This login was not started for the authorization-code flow. Please log in again.",
        )
    })?;
    let code = params.code.filter(|t| !t.is_empty()).ok_or_else(|| {
        AudiusLoginError::new(
            LoginErrorKind::MissingCode,
            "The login answer carries no authorization code. Please log in again.",
        )
    })?;
    if code.len() > MAX_CODE_LEN {
        return Err(AudiusLoginError::new(
            LoginErrorKind::TokenTooLarge,
            format!("The authorization code is over {MAX_CODE_LEN} bytes."),
        ));
    }
    let redirect_uri = match c.response_mode {
        ResponseMode::PostMessage => RedirectUri::PostMessage,
        _ => RedirectUri::Url(c.redirect_uri.clone()),
    };
    let set = c
        .oauth
        .exchange_code(&code, verifier, &redirect_uri)
        .await?;
    let now = session::now(c);
    let profile = match c.oauth.me(&set.access_token).await {
        Ok(p) => p,
        Err(e) => {
            let tokens = StoredTokens::new(set, 0, now);
            refresh::revoke_new(c, &c.background, &tokens).await;
            return Err(e.into());
        }
    };
    let mut user = AudiusUser::from_profile(&profile, now);
    let tokens = StoredTokens::new(set, user.id, now);
    // The state is recorded as consumed only now that the login succeeded (see
    // `consume_state`), and the user's live logins are bounded as in the implicit flow.
    let reservation = c.user_logins.try_reserve(user.id);
    let recorded = match reservation {
        Some(_) => consume_state(c, state_key, &attempt).await,
        None => Err(too_many_logins()),
    };
    let state_ttl = match recorded {
        Ok(ttl) => ttl,
        Err(e) => {
            refresh::revoke_new(c, &c.background, &tokens).await;
            return Err(e);
        }
    };
    if let Some(reservation) = reservation {
        reservation.confirm(instant_after(state_ttl));
    }
    // An identity login of the same user (implicit flow, in the same session) keeps its email.
    if let Some(signed_in) = session::read_user(&session, Some(c))
        && signed_in.id == user.id
    {
        user.email.clone_from(&signed_in.email);
    }
    if let Err(e) = run_hook(audius, req, &user, profile, &attempt.return_to).await {
        refresh::revoke_new(c, &c.background, &tokens).await;
        return Err(e);
    }
    // Signed in first: a user the session cannot take (too large) keeps the old tokens, and
    // the new ones are revoked (review 10).
    let old = read_tokens(&session);
    let signed_in =
        session::sign_in(&session, &user).and_then(|()| refresh::write_tokens(&session, &tokens));
    if let Err(e) = signed_in {
        refresh::revoke_new(c, &c.background, &tokens).await;
        return Err(e);
    }
    if let Some(old) = old {
        refresh::revoke_in_background(c, &c.families, &c.background, old);
    }
    tracing::debug!(scope = ?tokens.scope, "Audius tokens kept in the session");
    Ok((user, attempt.return_to))
}
