//! Local verification cost against raw libsecp256k1 recovery, measured in the same run.
//!
//! `cargo bench -p audius-login --bench verify`
//!
//! - `verify/raw_secp256k1_recover`: the baseline, `RecoverableSignature::from_compact` +
//!   `recover_ecdsa` on the signature and EIP-191 hash of the `basic` vector, precomputed;
//! - `verify/parse_and_recover`: what a local verification costs before any user lookup:
//!   size check, split, signature decode, EIP-191 hash, recovery, keccak address, payload
//!   decode and claims;
//! - `parse/token_parse`: parsing alone;
//! - `return_to/*`: the return-to sanitiser on a kept path and on a refused one.

#![allow(missing_docs)]

use std::hint::black_box;

use audius_login::return_to::sanitize_return_to;
use audius_login::token::eip191_hash;
use audius_login::{Signature, Token};
use criterion::{Criterion, criterion_group, criterion_main};
use secp256k1::Message;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};

/// The `basic` vector of `testdata/tokens.json`: a current, realistic token.
fn basic_token() -> String {
    audius_login_testdata::vector_token("basic")
}

fn verify(c: &mut Criterion) {
    let token = basic_token();
    let (signed, segment) = token.rsplit_once('.').expect("three segments");
    let signature = Signature::from_segment(segment).expect("a valid signature");
    let bytes = *signature.as_bytes();
    let recid = RecoveryId::from_u8_masked(signature.recovery_id().expect("v is 27/28"));
    let hash = eip191_hash(signed.as_bytes());
    let expected = Token::parse_and_recover(&token, 16 * 1024)
        .expect("the basic vector verifies")
        .1;

    let mut group = c.benchmark_group("verify");
    group.bench_function("raw_secp256k1_recover", |b| {
        b.iter(|| {
            let sig = RecoverableSignature::from_compact(black_box(&bytes[..64]), recid)
                .expect("compact signature");
            sig.recover_ecdsa(Message::from_digest(black_box(hash)))
                .expect("recovers")
        })
    });
    group.bench_function("parse_and_recover", |b| {
        b.iter(|| {
            let (_token, signer) =
                Token::parse_and_recover(black_box(&token), 16 * 1024).expect("verifies");
            assert_eq!(signer, expected);
            signer
        })
    });
    group.finish();

    c.bench_function("parse/token_parse", |b| {
        b.iter(|| Token::parse(black_box(&token)).expect("parses"))
    });
}

fn return_to(c: &mut Criterion) {
    let kept = "/artists/alice/tracks?page=2&sort=recent#top";
    let refused = "/%2f%2fevil.example/%2e%2e/path";
    assert!(sanitize_return_to(kept).is_some());
    assert!(sanitize_return_to(refused).is_none());
    let mut group = c.benchmark_group("return_to");
    group.bench_function("kept", |b| b.iter(|| sanitize_return_to(black_box(kept))));
    group.bench_function("refused", |b| {
        b.iter(|| sanitize_return_to(black_box(refused)))
    });
    group.finish();
}

criterion_group!(benches, verify, return_to);
criterion_main!(benches);
