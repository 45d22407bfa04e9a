//! Redirect-URI validation (spec section 5): `RedirectUri::parse`.
//!
//! Invariants: no panic; what is accepted is `postmessage` or a URL without fragment, userinfo
//! or traversal (before and after percent-decoding), not of a refused scheme, whose host is not
//! a non-loopback IP; its normalised text is accepted as itself; refusals say why.
//!
//! The invariants live in `crates/audius-login/tests/fuzz_regressions/checks.rs`, shared with
//! the regression test that replays every kept crash input in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/audius-login/tests/fuzz_regressions/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::redirect_uri(data));
