//! [`ApiResponse`]: an answer of the API.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::StatusCode;
use crate::error::{Error, Result};

/// An answer from the API: status, body (capped) and the host that gave it.
///
/// ```
/// use audius_login::client::{ApiResponse, StatusCode};
///
/// fn found(answer: &ApiResponse) -> bool {
///     answer.status == StatusCode::OK // or `answer.status == 200`
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status (the `http` crate's, version 1: [`StatusCode`]).
    pub status: StatusCode,
    /// The body, at most the configured cap.
    pub body: Bytes,
    /// The host that answered.
    pub host: Url,
    /// The `Location` header of a redirect (never followed).
    pub location: Option<String>,
}

impl ApiResponse {
    /// Parses the body as JSON, or [`Error::UpstreamUnexpected`] with the status.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::UpstreamUnexpected {
            status: self.status.as_u16(),
            message: format!("the body is not the JSON expected: {e}"),
        })
    }

    /// The server's error message: `error` (a string, or `error_description` beside an OAuth
    /// `error` code), else `message`, else the start of the body (blank strings are skipped:
    /// the message is never empty).
    pub fn error_message(&self) -> String {
        if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&self.body) {
            for key in ["error_description", "error", "message"] {
                if let Some(Value::String(s)) = obj.get(key)
                    && !s.trim().is_empty()
                {
                    return s.clone();
                }
            }
        }
        let text = String::from_utf8_lossy(&self.body);
        let text: String = text.chars().take(200).collect();
        if text.trim().is_empty() {
            format!("HTTP {} with an empty body", self.status.as_u16())
        } else {
            text
        }
    }
}
