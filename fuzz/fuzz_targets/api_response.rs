//! The API client's answer parsing: `ApiVerifier::interpret` (a `verify_token` answer),
//! `ApiResponse::error_message` and `json`, `ApiUser::from_json`, `ManagerGrant::from_json`.
//!
//! The first byte picks the HTTP status, the rest is the body. Invariants: no panic; a 200 is
//! either claims or `UpstreamUnexpected`; each error status maps to its typed error; a user read
//! keeps the object it came from.
//!
//! The invariants live in `crates/audius-login/tests/fuzz_regressions/checks.rs`, shared with
//! the regression test that replays every kept crash input in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/audius-login/tests/fuzz_regressions/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::api_response(data));
