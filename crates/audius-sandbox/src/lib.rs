#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Public modules where a namespace helps the reader: the login page's refusal reasons
// (`login`), `verify_token`'s texts (`verify`), and the authorization-code flow's stores and
// PKCE helpers (`oauth`). Everything else is private and re-exported below, once.
mod builder;
mod error;
mod faults;
mod handle;
mod host;
mod html;
mod limits;
mod log;
pub mod login;
mod mint;
pub mod oauth;
mod params;
mod respond;
mod routes;
mod state;
mod token_api;
mod users;
pub mod verify;

pub use builder::{Sandbox, SandboxBuilder};
pub use error::{SandboxConfigError, SandboxError};
pub use faults::{Fault, FaultAction};
pub use handle::SandboxHandle;
pub use limits::{HEADER_READ_TIMEOUT, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HOSTS, MAX_URI_BYTES};
pub use log::LoggedRequest;
pub use mint::TokenOverrides;
pub use users::{
    DeveloperApp, Grant, Role, SandboxUser, SandboxUsers, derive_secret_key, derive_wallet,
};
