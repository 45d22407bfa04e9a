//! The routes of one host: the API, the pictures, the login page and `/_sandbox/*`.

use std::sync::Arc;

use audius_login::UserId;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, Uri, header};
use serde_json::{Value, json};

use crate::faults::{FaultRoute, FaultSpec};
use crate::html::{PICTURE_SIZES, avatar_svg};
use crate::limits::MAX_BODY_BYTES;
use crate::login;
use crate::params::Params;
use crate::respond::{error_json, json_response};
use crate::state::{AppState, Shared};
use crate::token_api;
use crate::verify::verify_token;

pub(crate) fn router(shared: Arc<Shared>, host: usize) -> Router {
    Router::new()
        .route("/", get(discovery))
        .route("/health_check", get(health_check))
        .route("/v1/users/verify_token", get(verify))
        .route("/v1/users/handle/{handle}", get(user_by_handle))
        .route("/v1/users/{id}", get(user_by_id))
        .route("/v1/users/{id}/managers", get(managers))
        .route("/v1/users/{id}/favorites", get(token_api::user_favorites))
        .route("/v1/oauth/authorize", get(login::authorize))
        .route("/v1/oauth/token", post(token_api::token))
        .route("/v1/oauth/revoke", post(token_api::revoke))
        .route("/v1/oauth/me", get(token_api::oauth_me))
        .route("/v1/me", get(token_api::me))
        .route(
            "/v1/tracks/{track_id}/favorites",
            post(token_api::favorite).delete(token_api::unfavorite),
        )
        .route("/oauth/auth", get(login::login_page))
        .route("/oauth/auth/approve", post(login::approve_form))
        .route("/oauth/auth/cancel", post(login::cancel_form))
        .route("/content/{handle}/{file}", get(picture))
        .route("/_sandbox/users", get(sandbox_users))
        .route(
            "/_sandbox/faults",
            get(list_faults).post(set_faults).delete(delete_faults),
        )
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/requests", get(requests))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState { shared, host })
}

async fn not_found(uri: Uri) -> Response {
    error_json(
        StatusCode::NOT_FOUND,
        &format!(
            "Not found: {}",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}

/// `GET /`: the legacy discovery list.
async fn discovery(State(state): State<AppState>) -> Response {
    let hosts: Vec<String> = state.shared.hosts.iter().map(Shared::host_text).collect();
    json_response(StatusCode::OK, &json!({ "data": hosts }))
}

/// `GET /health_check`.
async fn health_check(State(state): State<AppState>) -> Response {
    let shared = &state.shared;
    json_response(
        StatusCode::OK,
        &json!({
            "data": {
                "healthy": true,
                "service": "audius-sandbox",
                "version": env!("CARGO_PKG_VERSION"),
                "host": state.host,
                "url": Shared::host_text(&shared.hosts[state.host]),
                "users": shared.directory.len(),
            }
        }),
    )
}

/// `GET /v1/users/verify_token?token=`.
async fn verify(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.as_deref().unwrap_or_default());
    let answer = verify_token(params.get("token"), &state.shared.directory);
    json_response(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &answer.body,
    )
}

fn parse_hashid(text: &str) -> Result<UserId, Box<Response>> {
    UserId::from_hashid(text).map_err(|_| {
        Box::new(error_json(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid user id {:?}: not a hashid",
                text.chars().take(64).collect::<String>()
            ),
        ))
    })
}

fn user_not_found(what: &str) -> Response {
    error_json(StatusCode::NOT_FOUND, &format!("User {what} not found"))
}

/// `GET /v1/users/{hashid}`.
async fn user_by_id(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let user_id = match parse_hashid(&id) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    match state.shared.directory.by_id(user_id) {
        Some(user) => json_response(
            StatusCode::OK,
            &json!({ "data": state.shared.user_json(user) }),
        ),
        None => user_not_found(&id),
    }
}

/// `GET /v1/users/handle/{handle}`.
async fn user_by_handle(State(state): State<AppState>, Path(handle): Path<String>) -> Response {
    match state.shared.directory.get(&handle) {
        Some(user) => json_response(
            StatusCode::OK,
            &json!({ "data": state.shared.user_json(user) }),
        ),
        None => user_not_found(&format!("@{}", handle.chars().take(64).collect::<String>())),
    }
}

/// `GET /v1/users/{hashid}/managers`: every grant of the account, revoked ones included.
async fn managers(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let user_id = match parse_hashid(&id) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let shared = &state.shared;
    let Some(user) = shared.directory.by_id(user_id) else {
        return user_not_found(&id);
    };
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let list: Vec<Value> = shared
        .directory
        .grants()
        .iter()
        .filter(|g| g.user == user.id)
        .filter_map(|g| {
            let manager = shared.directory.by_id(g.manager)?;
            Some(json!({
                "manager": shared.user_json(manager),
                "grant": {
                    "grantee_address": manager.wallet.to_string(),
                    "user_id": user.hashid(),
                    "is_revoked": g.is_revoked,
                    "is_approved": g.is_approved,
                    "created_at": g.created_at.format(rfc3339).unwrap_or_default(),
                    "updated_at": g.updated_at.format(rfc3339).unwrap_or_default(),
                }
            }))
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "data": list }))
}

/// `GET /content/{handle}/{150x150|480x480|1000x1000}.svg`: the generated avatars.
async fn picture(
    State(state): State<AppState>,
    Path((handle, file)): Path<(String, String)>,
) -> Response {
    let size = file
        .strip_suffix(".svg")
        .and_then(|s| PICTURE_SIZES.iter().find(|(name, _)| *name == s))
        .map(|(_, px)| *px);
    let user = state
        .shared
        .directory
        .get(&handle)
        .filter(|u| u.has_picture);
    let (Some(px), Some(user)) = (size, user) else {
        return error_json(StatusCode::NOT_FOUND, "No such picture");
    };
    let mut r = Response::new(Body::from(avatar_svg(&user.handle, &user.name, px)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET /_sandbox/users`.
async fn sandbox_users(State(state): State<AppState>) -> Response {
    let list: Vec<Value> = state
        .shared
        .directory
        .users()
        .iter()
        .map(|u| {
            json!({
                "handle": u.handle,
                "id": u.id.get(),
                "hashid": u.hashid(),
                "name": u.name,
                "email": u.email,
                "wallet": u.wallet.to_string(),
                "verified": u.verified,
                "has_picture": u.has_picture,
                "deactivated": u.deactivated,
                "role": u.role.as_str(),
            })
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

fn faults_body(state: &AppState) -> Value {
    let list: Vec<FaultSpec> = state
        .shared
        .faults_of(state.host)
        .iter()
        .map(|(r, f)| FaultSpec::from_fault(r, f))
        .collect();
    json!({ "host": state.host, "faults": list })
}

/// `GET /_sandbox/faults`: this host's faults.
async fn list_faults(State(state): State<AppState>) -> Response {
    json_response(StatusCode::OK, &faults_body(&state))
}

/// `POST /_sandbox/faults`: sets faults on this host (one object or a list); all or nothing.
async fn set_faults(State(state): State<AppState>, body: Bytes) -> Response {
    let specs: Vec<FaultSpec> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => match serde_json::from_value(Value::Array(items)) {
            Ok(specs) => specs,
            Err(e) => return error_json(StatusCode::BAD_REQUEST, &format!("invalid fault: {e}")),
        },
        Ok(item) => match serde_json::from_value(item) {
            Ok(spec) => vec![spec],
            Err(e) => return error_json(StatusCode::BAD_REQUEST, &format!("invalid fault: {e}")),
        },
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                &format!("the body is not JSON: {e}"),
            );
        }
    };
    let mut checked = Vec::with_capacity(specs.len());
    for spec in &specs {
        match spec.route().and_then(|r| Ok((r, spec.to_fault()?))) {
            Ok(pair) => checked.push(pair),
            Err(e) => return error_json(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    for (route, fault) in checked {
        if let Err(e) = state.shared.set_fault(state.host, route.as_str(), fault) {
            return error_json(StatusCode::BAD_REQUEST, &e.to_string());
        }
    }
    json_response(StatusCode::OK, &faults_body(&state))
}

/// `DELETE /_sandbox/faults[?route=/path]`: removes one route's fault, or all of this host's.
async fn delete_faults(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.as_deref().unwrap_or_default());
    match params.get("route") {
        Some(route) => match FaultRoute::parse(route) {
            Ok(route) => {
                state.shared.remove_fault(state.host, &route);
            }
            Err(e) => return error_json(StatusCode::BAD_REQUEST, &e.to_string()),
        },
        None => state.shared.clear_faults_of(state.host),
    }
    json_response(StatusCode::OK, &faults_body(&state))
}

/// `POST /_sandbox/reset`: clears every host's faults and the request log.
async fn reset(State(state): State<AppState>) -> Response {
    state.shared.clear_faults();
    state.shared.clear_requests();
    json_response(StatusCode::OK, &json!({ "reset": true }))
}

/// `GET /_sandbox/requests`: the request log, oldest first.
async fn requests(State(state): State<AppState>) -> Response {
    let log = serde_json::to_value(state.shared.requests()).unwrap_or(Value::Array(vec![]));
    json_response(StatusCode::OK, &log)
}
