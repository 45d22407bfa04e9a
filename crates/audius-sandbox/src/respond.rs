//! The shapes of the sandbox's answers: JSON, the API's and the OAuth endpoints' errors, HTML
//! pages and redirects.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// The `error_description` of a body that cannot be parsed (or read: over
/// [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES), `413`; not received in time, `408`), in the
/// spec's words.
pub(crate) const INVALID_REQUEST_BODY: &str = "Invalid request body";

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// `{"code": status, "error": text}`.
pub(crate) fn error_json(status: StatusCode, text: &str) -> Response<Body> {
    json_response(status, &json!({"code": status.as_u16(), "error": text}))
}

/// `{"error": code, "error_description": text}` with `Cache-Control: no-store`.
pub(crate) fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    no_store(json_response(
        status,
        &json!({ "error": code, "error_description": description }),
    ))
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache`.
pub(crate) fn no_store(mut response: Response<Body>) -> Response<Body> {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// An HTML page, not cached, not sniffed.
pub(crate) fn html_response(status: StatusCode, html: String) -> Response<Body> {
    let mut r = Response::new(Body::from(html));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `302` to `location`, not cached (`500` when `location` cannot be a header value).
pub(crate) fn redirect_to(location: &str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
