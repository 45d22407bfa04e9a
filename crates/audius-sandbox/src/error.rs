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
    /// A builder setting that cannot work.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// Signing a token failed (an invalid secp256k1 secret key).
    #[error("cannot sign the token: {0}")]
    Signing(#[from] audius_login::Error),
}
