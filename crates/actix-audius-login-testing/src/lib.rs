#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod approval;
mod client;
mod error;
mod server;
mod sign_in;

pub use client::TestClient;
pub use error::TestError;
pub use server::TestServer;
pub use sign_in::sign_in_service;
