#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod faults;
mod html;
pub mod log;
pub mod login;
mod mint;
pub mod oauth;
mod routes;
mod server;
mod token_api;
pub mod users;
pub mod verify;

pub use error::SandboxError;
pub use faults::{Fault, FaultAction, FaultRoute};
pub use log::LoggedRequest;
pub use mint::TokenOverrides;
pub use oauth::{AuthorizationCode, CodeStore, DeveloperApp, TokenStore};
pub use server::{
    DEFAULT_BIND, HEADER_READ_TIMEOUT, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HOSTS, MAX_URI_BYTES,
    Sandbox, SandboxBuilder, SandboxHandle,
};
pub use users::{Grant, Role, SandboxUser, SandboxUsers};
