#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The modules, from the bottom up (each uses only those above it):
// - data: `defaults`, `pages`, `user`, `error`, `config` (the settings), `session` (the
//   session's keys and entries);
// - state: `refresh` (the code flow's tokens and their refresh), `diagnose`, `user_logins`,
//   `state` (`AudiusLogin`: the settings and that state), `lookup` (which `AudiusLogin`
//   answers a request);
// - the request side: `extract`, `guard`, `client` (`AudiusClient`), `middleware`, `routes`,
//   `button`, `store`;
// - `builder` and `login` (every method of `AudiusLogin`), at the top.
// Public: the re-exports below, once each, and the one namespace `store`.

mod builder;
mod button;
mod client;
mod config;
mod defaults;
mod diagnose;
mod error;
mod extract;
mod guard;
mod login;
mod lookup;
mod metrics;
mod middleware;
mod pages;
mod refresh;
mod routes;
mod session;
mod state;
pub mod store;
mod user;
mod user_logins;

pub use audius_login;
pub use audius_login::{
    Display, Environment, ProfilePicture, ProfileSource, Scope, UserId, VerifyOptions,
};
pub use builder::AudiusLoginBuilder;
pub use button::{ButtonOptions, ButtonSize};
pub use client::{AudiusClient, AudiusResponse};
pub use config::{
    Flow, Limits, LoginEvent, LogoutBehavior, Paths, ResponseMode, UnauthenticatedResponse,
    VerifierKind,
};
pub use error::{AudiusLoginError, BuildError, LoginErrorKind};
pub use extract::{AudiusRequestExt, VerifiedArtist};
pub use guard::LoginGuard;
pub use middleware::{AudiusLoginMiddleware, RequireLogin};
pub use state::AudiusLogin;
pub use user::{AudiusUser, AudiusUserData};
