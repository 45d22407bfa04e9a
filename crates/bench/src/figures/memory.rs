//! Memory (`rss_growth_ratio`): resident memory after the second half of a run of logins and
//! authenticated requests, over resident memory after the first half. A ratio near 1 says the
//! caches stay within their bounds and nothing else grows with the logins.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_audius_login::{Limits, VerifierKind, VerifyOptions};
use actix_web::cookie::Key;
use actix_web::test;
use audius_login::replay::MemoryReplayCache;
use audius_sandbox::SandboxHandle;

use super::plan::Plan;
use super::report::{mib, say};
use crate::BenchResult;
use crate::apps;
use crate::login::{LoginRun, UserPicker, audius_builder, run_logins};
use crate::stats::rss_bytes;

/// The memory run's maximum token age (its tokens live in the replay cache this long plus twice
/// [`MEM_CLOCK_SKEW`]).
const MEM_TOKEN_AGE: Duration = Duration::from_secs(2);
/// The memory run's clock skew.
const MEM_CLOCK_SKEW: Duration = Duration::from_secs(1);
/// The memory run's login attempt lifetime (its consumed states live in the replay cache up to
/// this long and a second; the run pauses this long and a second between its halves).
const MEM_ATTEMPT_TTL: Duration = Duration::from_secs(5);

/// Runs `plan.mem_logins` logins in two halves, each login followed by
/// `plan.mem_requests_per_login` authenticated requests, through one app whose replay and user
/// caches are sized by the plan; gives RSS after the second half / RSS after the first.
pub(super) async fn growth_ratio(
    plan: &Plan,
    sandbox: &SandboxHandle,
    sandbox_addr: SocketAddr,
    key: &Key,
    picker: Rc<RefCell<UserPicker>>,
) -> BenchResult<f64> {
    let replay = Arc::new(MemoryReplayCache::new(plan.mem_replay_capacity));
    let audius = audius_builder(sandbox, VerifierKind::Local)
        .replay_cache(replay.clone())
        .limits(Limits {
            user_cache_capacity: plan.mem_user_capacity,
            attempt_ttl: MEM_ATTEMPT_TTL,
            ..Limits::default()
        })
        .verify_options(
            VerifyOptions::default()
                .max_age(Some(MEM_TOKEN_AGE))
                .clock_skew(MEM_CLOCK_SKEW),
        )
        .build()?;
    let app = Rc::new(test::init_service(apps::audius_app(key.clone(), audius.clone())).await);
    let directory = audius
        .user_directory()
        .ok_or("the built-in verifier has a user directory")?
        .clone();
    let start = rss_bytes().ok_or("VmRSS is not readable")?;
    let half = plan.mem_logins / 2;
    let mut after = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // Let the first half's replay entries expire (tokens: the maximum age plus twice
            // the skew; states: the rest of the attempt's lifetime, and a second): the second
            // half's first login drops them, so the cache is measured at its steady size, not
            // growing because the run is shorter than its entries' lifetime.
            actix_web::rt::time::sleep(MEM_ATTEMPT_TTL + Duration::from_secs(1)).await;
        }
        let run: LoginRun = run_logins(
            app.clone(),
            &audius,
            sandbox_addr,
            picker.clone(),
            half,
            plan.login_concurrency,
            plan.mem_requests_per_login,
        )
        .await?;
        let rss = rss_bytes().ok_or("VmRSS is not readable")?;
        say(format!(
            "memory: +{} logins and +{} authenticated requests in {:.1} s; RSS {:.1} MiB; replay \
             cache {}/{}; user cache {}/{}",
            run.logins,
            run.requests,
            run.elapsed.as_secs_f64(),
            mib(rss),
            replay.len(),
            replay.capacity(),
            directory.cached(),
            directory.capacity()
        ));
        after.push(rss);
    }
    let ratio = after[1] as f64 / after[0] as f64;
    say(format!(
        "memory: RSS {:.1} MiB at the start, {:.1} MiB after the first half, {:.1} MiB after the \
         second ({} logins, {} requests in all): growth ratio {ratio:.3}",
        mib(start),
        mib(after[0]),
        mib(after[1]),
        half * 2,
        half * 2 * plan.mem_requests_per_login
    ));
    Ok(ratio)
}
