//! Token verification (`verify_vs_libsecp256k1`): `LocalVerifier::verify` with a warm user
//! cache, over raw libsecp256k1 recovery of the same signature (the floor: no verifier can skip
//! it), and `Token::parse_and_recover` alone over the same floor, interleaved.

use std::hint::black_box;
use std::time::{Duration, Instant};

use audius_login::token::eip191_hash;
use audius_login::{ApiClient, LocalVerifier, Signature, Token, Verifier as _};
use audius_sandbox::{SandboxHandle, TokenOverrides};
use secp256k1::Message;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};

use super::plan::Plan;
use super::report::say;
use super::rounds::{BLOCK_QUANTILE, quantile};
use crate::BenchResult;
use crate::stats::median;

/// Verifications per block of the verification figure.
const VERIFY_BLOCK: usize = 20;

/// Gives the median over rounds of (verification time / raw recovery time), on a token of the
/// built-in `@artist` minted by `sandbox`.
pub(super) async fn ratio(plan: &Plan, sandbox: &SandboxHandle) -> BenchResult<f64> {
    let artist = sandbox.user("artist").ok_or("no built-in artist")?;
    let token = sandbox.mint_token(artist, TokenOverrides::default());
    let (signed, segment) = token.rsplit_once('.').ok_or("a token has three segments")?;
    let signature = Signature::from_segment(segment)?;
    let bytes = *signature.as_bytes();
    let recid = RecoveryId::from_u8_masked(signature.recovery_id().ok_or("v is 27 or 28")?);
    let hash = eip191_hash(signed.as_bytes());
    let verifier = LocalVerifier::new(ApiClient::new(sandbox.base_url())?);
    let expected = verifier.verify(&token).await?; // warms the user cache
    let n = plan.verify_iterations;

    // Interleaved blocks of VERIFY_BLOCK of each, order alternating, `n` of each per round; a
    // round's time per verification is the BLOCK_QUANTILE of its block times.
    let raw = |k: usize| -> BenchResult<Duration> {
        let start = Instant::now();
        for _ in 0..k {
            let sig = RecoverableSignature::from_compact(black_box(&bytes[..64]), recid)?;
            black_box(sig.recover_ecdsa(Message::from_digest(black_box(hash)))?);
        }
        Ok(start.elapsed())
    };
    let parse = |k: usize| -> BenchResult<Duration> {
        let start = Instant::now();
        for _ in 0..k {
            black_box(Token::parse_and_recover(black_box(&token), 16 * 1024)?);
        }
        Ok(start.elapsed())
    };
    let (mut full_ratios, mut parse_ratios) = (Vec::new(), Vec::new());
    let (mut raw_us, mut full_us) = (Vec::new(), Vec::new());
    let k = VERIFY_BLOCK.min(n.max(1));
    for round in 0..=plan.verify_rounds {
        let (mut rs, mut ps, mut fs) = (Vec::new(), Vec::new(), Vec::new());
        for block in 0..n.div_ceil(k) {
            if block % 2 == 0 {
                rs.push(raw(k)?);
                ps.push(parse(k)?);
                fs.push(verify_loop(&verifier, &token, k).await?);
            } else {
                fs.push(verify_loop(&verifier, &token, k).await?);
                ps.push(parse(k)?);
                rs.push(raw(k)?);
            }
        }
        if round == 0 {
            continue; // warm-up
        }
        let (r, p, f) = (
            quantile(&rs, BLOCK_QUANTILE),
            quantile(&ps, BLOCK_QUANTILE),
            quantile(&fs, BLOCK_QUANTILE),
        );
        full_ratios.push(f.as_secs_f64() / r.as_secs_f64());
        parse_ratios.push(p.as_secs_f64() / r.as_secs_f64());
        raw_us.push(r.as_secs_f64() * 1e6 / k as f64);
        full_us.push(f.as_secs_f64() * 1e6 / k as f64);
    }
    black_box(expected);
    let ratio = median(&full_ratios);
    say(format!(
        "token verification (median of {} rounds of {n}, interleaved blocks of {k}): raw libsecp256k1 recovery {:.1} us; \
         LocalVerifier::verify, warm cache {:.1} us = {ratio:.3}x; Token::parse_and_recover \
         alone {:.3}x",
        plan.verify_rounds,
        median(&raw_us),
        median(&full_us),
        median(&parse_ratios)
    ));
    Ok(ratio)
}

async fn verify_loop(verifier: &LocalVerifier, token: &str, n: usize) -> BenchResult<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        black_box(verifier.verify(black_box(token)).await?);
    }
    Ok(start.elapsed())
}
