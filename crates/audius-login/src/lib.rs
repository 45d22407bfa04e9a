#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
pub mod client;
pub mod clock;
pub mod defaults;
pub mod error;
pub mod login_url;
mod metrics;
pub mod oauth;
pub mod redirect_uri;
pub mod replay;
pub mod return_to;
pub mod token;
pub mod user_id;
pub mod verify;
pub mod wallet;

pub use client::{ApiClient, ApiClientBuilder, ApiResponse, HostSource};
pub use error::{ConfigError, Error, ErrorKind, OAuthErrorCode, Result, TokenPart};
pub use login_url::{Display, Environment, LoginUrl, ResponseMode, Scope, State};
pub use oauth::{AccessToken, AuthorizeUrl, OAuthClient, PkceVerifier, RefreshToken, TokenSet};
pub use redirect_uri::RedirectUri;
pub use replay::ReplayKey;
pub use token::{Claims, ProfilePicture, Signature, Token};
pub use user_id::UserId;
pub use verify::{
    ApiUser, ApiVerifier, LocalVerifier, PreparedToken, ProfileSource, UpstreamBudget,
    UserDirectory, VerifiedProfile, Verifier, VerifyOptions,
};
pub use wallet::Wallet;
