//! What a fault answers on the wire.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::FaultAction;
use crate::respond::{error_json, oauth_error};

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a sandbox fault")
    }
}

impl std::error::Error for DropConnection {}

/// What a fault answers instead of the route; `None` to answer normally. On the OAuth endpoints
/// a 5xx status is `{"error": "server_error", "error_description": ..}`.
pub(crate) fn fault_response(
    action: FaultAction,
    oauth: bool,
) -> Result<Option<Response<Body>>, DropConnection> {
    let response = match action {
        FaultAction::Pass => return Ok(None),
        FaultAction::Drop => return Err(DropConnection),
        FaultAction::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = format!(
                "sandbox fault: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("error")
            );
            let mut r = if oauth && status.is_server_error() {
                oauth_error(status, "server_error", &text)
            } else {
                error_json(status, &text)
            };
            if status == StatusCode::TOO_MANY_REQUESTS {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            r
        }
        FaultAction::Garbage => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(Body::from(
                "<!doctype html><html><head><title>502 Bad Gateway</title></head>\
                 <body><h1>Bad Gateway</h1><p>sandbox fault: this is not JSON</p></body></html>\n",
            ))
            .unwrap_or_default(),
        FaultAction::Truncate => {
            let full = padded_json(TRUNCATED_PROMISE);
            let sent = Bytes::from(full[..full.len() / 2].to_vec());
            // Half the body, then a pause (hyper flushes the headers and that half while the
            // body is pending), then an error: hyper closes the connection mid-body.
            let body = futures_util::stream::unfold(Some(sent), |pending| async move {
                match pending {
                    Some(chunk) => Some((Ok(chunk), None)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Some((
                            Err(std::io::Error::other("truncated by a sandbox fault")),
                            None,
                        ))
                    }
                }
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, full.len())
                .body(Body::from_stream(body))
                .unwrap_or_default()
        }
        FaultAction::Oversize(bytes) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(padded_json(bytes)))
            .unwrap_or_default(),
    };
    Ok(Some(response))
}

/// The `Content-Length` a truncated answer promises; half of it is sent.
const TRUNCATED_PROMISE: usize = 2048;

/// Valid-looking JSON (`{"data":[{user-like}, ...]}`) of exactly `len` bytes (at least 13).
fn padded_json(len: usize) -> Vec<u8> {
    const ITEM: &[u8] =
        br#"{"id":"eYorL","handle":"padding","name":"Sandbox oversize padding","is_verified":false},"#;
    let mut out = Vec::with_capacity(len.max(13));
    out.extend_from_slice(br#"{"data":["#);
    while out.len() + ITEM.len() + 4 <= len {
        out.extend_from_slice(ITEM);
    }
    out.extend_from_slice(b"{}]}");
    while out.len() < len {
        out.push(b' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_json_of_the_size() {
        for len in [13, 100, 2048, 2 * 1024 * 1024] {
            let body = padded_json(len);
            assert_eq!(body.len(), len);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert!(v["data"].is_array(), "{len}");
        }
    }
}
