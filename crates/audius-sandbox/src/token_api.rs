//! The back half of the authorization-code flow (`docs/protocol-pkce.md` sections 2 to 4):
//! `POST /v1/oauth/token`, `POST /v1/oauth/revoke`, `GET /v1/me`, `GET /v1/oauth/me`, and a
//! write endpoint, `POST`/`DELETE /v1/tracks/{track_id}/favorites`, with
//! `GET /v1/users/{id}/favorites` to read the result.

use audius_login::login_url::normalize_api_key;
use audius_login::{Scope, UserId};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::RngCore as _;
use serde_json::{Value, json};

use crate::limits::MAX_BODY_BYTES;
use crate::oauth::{AccessError, AccessGrant, verify_pkce};
use crate::params::{Params, body_params};
use crate::respond::{INVALID_REQUEST_BODY, error_json, json_response, no_store, oauth_error};
use crate::state::{AppState, Shared};

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// `POST /v1/oauth/token`: the code exchange and the refresh (PKCE spec section 2).
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = &state.shared;
    let Some(p) = body_params(&headers, &body) else {
        return invalid_request(INVALID_REQUEST_BODY);
    };
    let now = shared.clock.now();
    match p.get("grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(verifier)) = (p.get("code"), p.get("code_verifier")) else {
                return invalid_request("Missing required parameters for authorization_code grant");
            };
            // The code is used up here, whatever the checks below say.
            let grant = match shared.codes.redeem(code, now) {
                Ok(g) => g,
                Err(e) => return invalid_grant(&e.to_string()),
            };
            if let Some(given) = p.get("client_id")
                && normalize_api_key(given).ok().as_deref() != Some(grant.client_id.as_str())
            {
                return invalid_grant("client_id mismatch");
            }
            if let Some(given) = p.get("redirect_uri") {
                let same = given == grant.redirect_uri
                    || (given.eq_ignore_ascii_case("postmessage")
                        && grant.redirect_uri.eq_ignore_ascii_case("postmessage"));
                if !same {
                    return invalid_grant("redirect_uri mismatch");
                }
            }
            if !verify_pkce(verifier, &grant.code_challenge) {
                return invalid_grant("PKCE verification failed");
            }
            let issued = shared
                .tokens
                .issue(&grant.client_id, grant.user_id, grant.scope, now);
            no_store(json_response(StatusCode::OK, &issued.to_json()))
        }
        Some("refresh_token") => {
            let Some(refresh_token) = p.get("refresh_token") else {
                return invalid_request("refresh_token is required for refresh_token grant");
            };
            match shared
                .tokens
                .refresh(refresh_token, p.get("client_id"), now)
            {
                Ok(issued) => no_store(json_response(StatusCode::OK, &issued.to_json())),
                Err(e) => invalid_grant(&e.to_string()),
            }
        }
        _ => invalid_request("grant_type must be 'authorization_code' or 'refresh_token'"),
    }
}

/// `POST /v1/oauth/revoke`: revokes the token's family; `200 {}` always, except `400` for an
/// unparsable body or a missing token (PKCE spec section 3).
pub(crate) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Read here rather than by the `Bytes` extractor, whose refusal of an over-size body is
    // plain text: an OAuth endpoint answers in OAuth errors.
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            INVALID_REQUEST_BODY,
        );
    };
    let Some(p) = body_params(&headers, &body) else {
        return invalid_request(INVALID_REQUEST_BODY);
    };
    let Some(token) = p.get("token") else {
        return invalid_request("token is required");
    };
    let known = state.shared.tokens.revoke(token);
    tracing::debug!(known, "token revocation");
    no_store(json_response(StatusCode::OK, &json!({})))
}

/// The Bearer token of a request, if the header is `Bearer <token>` (scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthorized(e: AccessError) -> Response {
    let mut r = error_json(StatusCode::UNAUTHORIZED, &e.to_string());
    let challenge = match e {
        AccessError::Missing => "Bearer",
        _ => "Bearer error=\"invalid_token\"",
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

/// The grant of the request's access token, or the `401` answer.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<AccessGrant, Box<Response>> {
    let token = bearer(headers).ok_or_else(|| Box::new(unauthorized(AccessError::Missing)))?;
    shared
        .tokens
        .authenticate(token, shared.clock.now())
        .map_err(|e| Box::new(unauthorized(e)))
}

/// `GET /v1/me`: `{"data": <user object>}` for the token's user (no email).
pub(crate) async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let shared = &state.shared;
    let grant = match authenticate(shared, &headers) {
        Ok(g) => g,
        Err(r) => return *r,
    };
    match shared.directory.by_id(grant.user_id) {
        Some(user) => json_response(StatusCode::OK, &json!({ "data": shared.user_json(user) })),
        None => unauthorized(AccessError::Invalid),
    }
}

/// `GET /v1/oauth/me`: the older alias, `{userId, name, handle, verified, profilePicture, sub,
/// iat}` without `data` (`iat`: when the access token was issued, Unix seconds).
pub(crate) async fn oauth_me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let shared = &state.shared;
    let grant = match authenticate(shared, &headers) {
        Ok(g) => g,
        Err(r) => return *r,
    };
    let Some(user) = shared.directory.by_id(grant.user_id) else {
        return unauthorized(AccessError::Invalid);
    };
    let hashid = user.hashid();
    json_response(
        StatusCode::OK,
        &json!({
            "userId": hashid,
            "name": user.name,
            "handle": user.handle,
            "verified": user.verified,
            "profilePicture": shared.api_picture(user),
            "sub": hashid,
            "iat": grant.issued_at.unix_timestamp(),
        }),
    )
}

/// What a write call needs: a `write` token, and `user_id` (when given) naming its user.
fn authorize_write(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<AccessGrant, Box<Response>> {
    let grant = authenticate(shared, headers)?;
    if grant.scope != Scope::Write {
        return Err(Box::new(error_json(
            StatusCode::FORBIDDEN,
            "OAuth token scope insufficient: write scope required",
        )));
    }
    if let Some(given) = Params::parse(query.unwrap_or_default()).get("user_id")
        && UserId::parse(given).ok() != Some(grant.user_id)
    {
        return Err(Box::new(error_json(
            StatusCode::FORBIDDEN,
            "user_id does not match the user of the access token",
        )));
    }
    Ok(grant)
}

fn track_id(text: &str) -> Result<u64, Box<Response>> {
    // Track ids are hashids with the same salt as user ids.
    UserId::from_hashid(text).map(UserId::get).map_err(|_| {
        Box::new(error_json(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid track id {:?}: not a hashid",
                text.chars().take(64).collect::<String>()
            ),
        ))
    })
}

fn transaction_hash() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("0x{}", hex::encode(bytes))
}

/// `POST /v1/tracks/{track_id}/favorites[?user_id=]`: favorites a track for the token's user.
/// Needs a `write` token (`403` "OAuth token scope insufficient: write scope required"
/// otherwise). Body: optional, JSON `{"is_save_of_repost": bool}`.
pub(crate) async fn favorite(
    State(state): State<AppState>,
    Path(track): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change_favorite(
        &state.shared,
        &track,
        query.as_deref(),
        &headers,
        &body,
        true,
    )
}

/// `DELETE /v1/tracks/{track_id}/favorites[?user_id=]`: removes the favorite.
pub(crate) async fn unfavorite(
    State(state): State<AppState>,
    Path(track): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change_favorite(
        &state.shared,
        &track,
        query.as_deref(),
        &headers,
        &body,
        false,
    )
}

fn change_favorite(
    shared: &Shared,
    track: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    add: bool,
) -> Response {
    let grant = match authorize_write(shared, headers, query) {
        Ok(g) => g,
        Err(r) => return *r,
    };
    let track = match track_id(track) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map))
                if map
                    .get("is_save_of_repost")
                    .is_none_or(|v| v.is_boolean() || v.is_null()) => {}
            _ => {
                return error_json(
                    StatusCode::BAD_REQUEST,
                    "Invalid request body: expected {\"is_save_of_repost\": boolean}",
                );
            }
        }
    }
    shared.set_favorite(grant.user_id, track, add, shared.clock.now());
    json_response(
        StatusCode::OK,
        &json!({ "success": true, "transaction_hash": transaction_hash() }),
    )
}

/// `GET /v1/users/{id}/favorites`: the tracks a user favorited, newest first.
pub(crate) async fn user_favorites(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let shared = &state.shared;
    let Ok(user_id) = UserId::from_hashid(&id) else {
        return error_json(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid user id {:?}: not a hashid",
                id.chars().take(64).collect::<String>()
            ),
        );
    };
    if shared.directory.by_id(user_id).is_none() {
        return error_json(StatusCode::NOT_FOUND, &format!("User {id} not found"));
    }
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let list: Vec<Value> = shared
        .favorites_of(user_id)
        .into_iter()
        .map(|(track, at)| {
            json!({
                "favorite_item_id": UserId::new(track).hashid(),
                "favorite_type": "SaveType.track",
                "user_id": user_id.hashid(),
                "created_at": at.format(rfc3339).unwrap_or_default(),
            })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "data": list }))
}
