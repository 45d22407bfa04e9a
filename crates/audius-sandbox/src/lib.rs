//! A local Audius for tests and demos.
#![forbid(unsafe_code)]
