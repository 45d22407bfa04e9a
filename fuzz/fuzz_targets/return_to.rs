//! Return-to sanitising: `sanitize_return_to`.
//!
//! Invariants: no panic; what is kept is a plain path that, joined on any base, stays on the
//! base's origin without userinfo; sanitising is idempotent; no control characters, spaces or
//! backslashes survive.
//!
//! The invariants live in `crates/audius-login/tests/fuzz_regressions/checks.rs`, shared with
//! the regression test that replays every kept crash input in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/audius-login/tests/fuzz_regressions/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::return_to(data));
