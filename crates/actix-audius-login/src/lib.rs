#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod button;
pub mod config;
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

pub use audius_login;
pub use audius_login::{Display, Environment, ProfilePicture, Scope, UserId};
pub use button::{ButtonCorners, ButtonOptions, ButtonSize, ButtonWidth, HoverGrowth};
pub use config::{
    AudiusLogin, AudiusLoginBuilder, Flow, LoginEvent, LogoutBehavior, ResponseMode,
    UnauthenticatedResponse, VerifierKind,
};
pub use error::{AudiusLoginError, LoginErrorKind};
pub use extract::{AudiusRequestExt, VerifiedArtist};
pub use middleware::{AudiusLoginMiddleware, RequireLogin};
pub use oauth::AudiusClient;
pub use user::{AudiusUser, AudiusUserData};
