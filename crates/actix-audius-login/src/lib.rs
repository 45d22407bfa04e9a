#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod button;
pub mod config;
mod diagnose;
pub mod error;
mod extract;
pub mod guard;
pub mod middleware;
pub mod oauth;
mod pages;
pub mod routes;
mod session;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod user;
mod user_logins;

pub use audius_login;

/// The error of [`AudiusLoginBuilder::build`]: the core crate's [`audius_login::Error`], named
/// here so that an app can write `Result<AudiusLogin, BuildError>` without depending on the core
/// crate. Its [`kind()`](audius_login::Error::kind) says what was refused:
/// [`InvalidRedirectUri`](audius_login::ErrorKind::InvalidRedirectUri) (the rule broken is in the
/// message) or [`Config`](audius_login::ErrorKind::Config) (a setting, or settings that cannot
/// work together).
pub type BuildError = audius_login::Error;
pub use audius_login::{Display, Environment, ProfilePicture, Scope, UserId};
pub use button::{ButtonCorners, ButtonOptions, ButtonSize, ButtonWidth, HoverGrowth};
pub use config::{
    AudiusLogin, AudiusLoginBuilder, DEFAULT_LOGIN_DEADLINE, DEFAULT_MAX_LOGINS_PER_USER, Flow,
    LoginEvent, LogoutBehavior, MAX_CACHE_CAPACITY, MAX_SETTING_DURATION, ResponseMode,
    UnauthenticatedResponse, VerifierKind,
};
pub use error::{AudiusLoginError, LoginErrorKind};
pub use extract::{AudiusRequestExt, VerifiedArtist};
pub use middleware::{AudiusLoginMiddleware, RequireLogin};
pub use oauth::{AudiusClient, AudiusResponse};
pub use user::{AudiusUser, AudiusUserData};
