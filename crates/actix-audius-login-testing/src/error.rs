//! [`TestError`]: why a test request, login or logout did not go through.

use actix_web::http::StatusCode;

/// The cause of a [`TestError`].
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a test request, login or logout did not go through.
///
/// A refusal keeps its HTTP status ([`status`](Self::status)); a failure keeps its cause
/// ([`source`](std::error::Error::source)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// An answer refused a step: the login route, the sandbox's login page, the callback, the
    /// logout route.
    #[error("{what} refused (HTTP {status}): {body}")]
    Refused {
        /// The step, in words (`"the app's callback"`).
        what: String,
        /// The status of the refusal.
        status: StatusCode,
        /// The body of the refusal (the start of it, at most 4 KiB).
        body: String,
    },
    /// A request could not be sent, or its answer could not be read: connection refused,
    /// timeout, a body over the limit.
    #[error("{what} did not answer: {source}")]
    Transport {
        /// The step, in words.
        what: String,
        /// The cause.
        source: Cause,
    },
    /// An answer the helper cannot use: a login route that sends nowhere, a sandbox answer
    /// without a token, a URL that does not parse, a server started twice.
    #[error("{what}")]
    Unexpected {
        /// What was wrong.
        what: String,
        /// The cause, when there is one.
        source: Option<Cause>,
    },
    /// The test server could not listen or start.
    #[error("the test server could not start: {0}")]
    Io(#[from] std::io::Error),
}

impl TestError {
    /// The HTTP status of a refusal ([`TestError::Refused`]), else `None`.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn transport(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::Transport {
            what: what.into(),
            source: source.into(),
        }
    }

    pub(crate) fn unexpected(what: impl Into<String>) -> Self {
        Self::Unexpected {
            what: what.into(),
            source: None,
        }
    }

    pub(crate) fn unexpected_because(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::Unexpected {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn refused(what: impl Into<String>, status: StatusCode, body: &[u8]) -> Self {
        Self::Refused {
            what: what.into(),
            status,
            body: excerpt(body),
        }
    }
}

/// Most bytes of a refused answer's body kept in the error.
const EXCERPT_BYTES: usize = 4096;

pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_BYTES)]);
    text.into_owned()
}
