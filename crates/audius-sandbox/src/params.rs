//! Request parameters: a query or form body, or a JSON object of strings.

use http::{HeaderMap, header};
use serde_json::Value;

/// The parameters of a query or body, first value of each, empty values counting as absent.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters of a query string or an `application/x-www-form-urlencoded` body.
    pub(crate) fn parse(raw: &str) -> Self {
        Self(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The value of `name` as sent: the first one given, an empty one too; `None` when absent.
    pub(crate) fn get_sent(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`: the first one given, `None` when absent or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A POST body's parameters, `application/json` (an object of strings; `null` is absent) or
/// `application/x-www-form-urlencoded`; empty values count as absent, the first of repeated
/// form fields counts. `None` when the body cannot be parsed (or has another content type).
pub(crate) fn body_params(headers: &HeaderMap, body: &[u8]) -> Option<Params> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match content_type.as_str() {
        "application/json" => {
            let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
                return None;
            };
            let mut pairs = Vec::with_capacity(map.len());
            for (k, v) in map {
                match v {
                    Value::String(s) => pairs.push((k, s)),
                    Value::Null => {}
                    _ => return None,
                }
            }
            Some(Params(pairs))
        }
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(body).ok()?;
            Some(Params::parse(text))
        }
        _ => None,
    }
}

/// The `grant_type` of a token request, for the request log (cut to 64 characters).
pub(crate) fn logged_grant_type(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    body_params(headers, body)?
        .get("grant_type")
        .map(|g| g.chars().take(64).collect())
}
