//! Token parsing and signer recovery: `Token::parse`, `Token::parse_and_recover` (the server's
//! order), `Signature::from_segment`, `UserId::parse`, `Claims` serialisation.
//!
//! Invariants: no panic; every refusal is a typed token error; what parses keeps its text; the
//! two decoders agree on the signer whenever either recovers one.
//!
//! The invariants live in `crates/audius-login/tests/fuzz_regressions/checks.rs`, shared with
//! the regression test that replays every kept crash input in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/audius-login/tests/fuzz_regressions/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::token(data));
