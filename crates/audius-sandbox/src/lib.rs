#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
pub mod error;
pub mod faults;
mod handle;
mod host;
mod html;
mod limits;
pub mod log;
pub mod login;
mod mint;
pub mod oauth;
mod params;
mod respond;
mod routes;
mod state;
mod token_api;
pub mod users;
pub mod verify;

pub use builder::{DEFAULT_BIND, Sandbox, SandboxBuilder};
pub use error::SandboxError;
pub use faults::{Fault, FaultAction, FaultRoute};
pub use handle::SandboxHandle;
pub use limits::{HEADER_READ_TIMEOUT, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HOSTS, MAX_URI_BYTES};
pub use log::LoggedRequest;
pub use mint::TokenOverrides;
pub use oauth::{AuthorizationCode, CodeStore, TokenStore};
pub use users::{DeveloperApp, Grant, Role, SandboxUser, SandboxUsers};
