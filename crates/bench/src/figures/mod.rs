//! The figures the benchmark binary measures, and the order it measures them in.
//!
//! One sandbox (with generated users) serves the whole run. In process, on one actix system:
//!
//! 1. memory (`memory.rs`) first, while the heap is fresh, so that its growth ratio does not
//!    count what the other figures leave allocated;
//! 2. the session cookie of a real login (`session.rs`): its size is a figure, and the request
//!    figures send that cookie;
//! 3. authenticated and anonymous requests against actix-identity and a bare app
//!    (`requests.rs`), in process;
//! 4. logins per second with each verifier, and the callback's latency (`logins.rs`);
//! 5. token verification against raw libsecp256k1 recovery (`verification.rs`).
//!
//! Then, with the in-process system gone, the request figures again over loopback HTTP
//! (`loopback.rs`), whose ratios are the headline ones; and, on a private `redis-server`
//! (`redis.rs`), the same comparison like with like, actix-identity finding the profile for its
//! id (`lookup.rs`), and two instances behind one Redis (`instances.rs`).
//!
//! Every ratio compares against a baseline measured in the same process, interleaved with it
//! in short blocks, and is the median over rounds: a block another process slowed down falls
//! outside the quantile a round is read from (see `rounds.rs`).

mod instances;
mod logins;
mod lookup;
mod loopback;
mod memory;
mod plan;
mod redis;
mod report;
mod requests;
mod rounds;
mod session;
mod verification;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_audius_login::VerifierKind;
use actix_web::cookie::Key;
use actix_web::test;
use audius_sandbox::SandboxHandle;

pub use plan::Plan;
pub use report::{Report, say};
pub(crate) use requests::{get, identity_login};
pub(crate) use session::cookie_header;

use crate::BenchResult;
use crate::apps;
use crate::login::{self, UserPicker, audius_builder, bench_handle};
use crate::stats::machine;
use report::round3;
use requests::Cookies;

/// Measures every figure at the sizes of `plan`, printing as it goes; gives the headline
/// figures.
pub fn run(plan: &Plan) -> BenchResult<Report> {
    say(format!("machine: {}", machine()));
    say(format!(
        "mode: {}",
        if plan.quick {
            "--quick (fewer, shorter rounds; memory run scaled down to 2,000 logins and 20,000 \
             requests)"
        } else {
            "full"
        }
    ));
    let setup = Instant::now();
    let (sandbox_runtime, sandbox) = login::start_sandbox(login::bench_users(plan.users)?, 2_000)?;
    let sandbox = Arc::new(sandbox);
    say(format!(
        "sandbox: {} users on {} (started in {:.2} s)",
        sandbox.users().len(),
        sandbox.base_url(),
        setup.elapsed().as_secs_f64()
    ));
    let mut report = Report::default();
    let key = apps::key();

    let system = actix_rt::System::new();
    let cookies = system.block_on(in_process(plan, &sandbox, &key, &mut report))?;
    drop(system);

    loopback::measure(plan, &sandbox, &key, &cookies, &mut report)?;

    let mut redis = redis::start()?;
    say(format!(
        "redis-server: {} (started by the bench)",
        redis.url()
    ));
    lookup::measure(plan, &sandbox, &key, &cookies, &redis, &mut report)?;
    instances::measure(plan, &sandbox, &key, &mut redis, &mut report)?;
    drop(redis);

    if let Ok(sandbox) = Arc::try_unwrap(sandbox) {
        sandbox_runtime.block_on(sandbox.stop());
    }
    Ok(report)
}

/// The in-process figures, in the order of the module docs; gives the session cookies the
/// loopback figures send.
async fn in_process(
    plan: &Plan,
    sandbox: &Arc<SandboxHandle>,
    key: &Key,
    report: &mut Report,
) -> BenchResult<Cookies> {
    let sandbox_addr = login::sandbox_addr(sandbox)?;
    let handles: Vec<String> = (0..plan.users).map(bench_handle).collect();
    let picker = Rc::new(RefCell::new(UserPicker::new(handles)));

    // Memory first, on a fresh heap.
    report.rss_growth_ratio =
        round3(memory::growth_ratio(plan, sandbox, sandbox_addr, key, picker.clone()).await?);

    // The session's size, and the cookie the request figures send.
    let audius = audius_builder(sandbox, VerifierKind::Local).build()?;
    let audius_app = test::init_service(apps::audius_app(key.clone(), audius.clone())).await;
    let audius_cookie = session::measure(&audius_app, &audius, key, sandbox_addr, report).await?;

    // Requests, in process.
    let cookies = requests::in_process(plan, key, &audius_app, &audius_cookie).await?;

    // Logins, and the callback alone.
    logins::measure(plan, sandbox, sandbox_addr, key, picker.clone(), report).await?;
    let waits = picker.borrow().waits();
    if waits > 0 {
        say(format!(
            "  note: logins waited {waits} times for a user free to log in (more users needed)"
        ));
    }

    // Token verification.
    report.verify_vs_libsecp256k1 = round3(verification::ratio(plan, sandbox).await?);

    Ok(cookies)
}
