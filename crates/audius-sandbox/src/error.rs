//! The sandbox's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong when setting up or steering a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// A users file could not be read.
    #[error("cannot read the users file {path}: {source}")]
    UsersFileIo {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A users file was read but is not valid.
    #[error("invalid users file {path}: {message}")]
    UsersFile {
        /// The file (`<inline>` for text given directly).
        path: PathBuf,
        /// What is wrong, in words (with line and column for JSON errors).
        message: String,
    },
    /// A user, grant or app definition is not valid.
    #[error("invalid sandbox directory: {0}")]
    Directory(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A fault or its route is not valid, or names a host that does not exist.
    #[error("invalid fault: {0}")]
    Fault(String),
    /// A setting that cannot work, named in the error.
    #[error("invalid sandbox configuration: {0}")]
    Config(#[from] SandboxConfigError),
    /// Signing a token failed (an invalid secp256k1 secret key).
    #[error("cannot sign the token: {0}")]
    Signing(#[from] audius_login::Error),
}

/// A setting that cannot work: which one, and why.
///
/// `setting` is the name of the [`SandboxBuilder`](crate::SandboxBuilder) method (`hosts`,
/// `bind`, `users`) or, for a minted token, of the [`TokenOverrides`](crate::TokenOverrides)
/// one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
#[non_exhaustive]
pub struct SandboxConfigError {
    /// The setting, by the name of the method that sets it.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl SandboxConfigError {
    /// The error of `setting`, for `reason`.
    pub(crate) fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}
