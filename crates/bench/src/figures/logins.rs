//! Logins (`logins_per_s_api`, `logins_per_s_local`, `callback_p99_us_local`): complete logins
//! per second with each verifier, in rounds that alternate the two, and then the callback
//! handler alone, timed one call at a time while the sandbox's request log shows whether it
//! used the network.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_audius_login::{AudiusLogin, VerifierKind};
use actix_web::cookie::Key;
use actix_web::test;
use audius_login::UserId;
use audius_sandbox::SandboxHandle;

use super::plan::Plan;
use super::report::{Report, round1, say};
use crate::apps;
use crate::load;
use crate::login::{UserPicker, audius_builder, finish_login, run_logins, start_login};
use crate::stats::{median, min_max, percentile};
use crate::{BenchError, BenchResult};

/// Callbacks per round of the callback latency figure.
const CALLBACK_ROUND: usize = 100;

/// Measures login throughput with the API and the local verifier, then the callback alone;
/// records the three figures in `report`.
pub(super) async fn measure(
    plan: &Plan,
    sandbox: &SandboxHandle,
    sandbox_addr: SocketAddr,
    key: &Key,
    picker: Rc<RefCell<UserPicker>>,
    report: &mut Report,
) -> BenchResult<()> {
    let api = audius_builder(sandbox, VerifierKind::Api).build()?;
    let local = audius_builder(sandbox, VerifierKind::Local).build()?;
    let api_app = Rc::new(test::init_service(apps::audius_app(key.clone(), api.clone())).await);
    let local_app = Rc::new(test::init_service(apps::audius_app(key.clone(), local.clone())).await);
    let warm = Instant::now();
    warm_user_cache(&api, plan.users).await?;
    warm_user_cache(&local, plan.users).await?;
    say(format!(
        "logins: user caches warmed with {} users each in {:.2} s",
        plan.users,
        warm.elapsed().as_secs_f64()
    ));
    let per_round = plan.logins / plan.login_rounds;
    let (mut api_rates, mut local_rates) = (Vec::new(), Vec::new());
    for round in 0..plan.login_rounds {
        for which in [round % 2, 1 - round % 2] {
            let (app, audius, rates) = if which == 0 {
                (&api_app, &api, &mut api_rates)
            } else {
                (&local_app, &local, &mut local_rates)
            };
            let run = run_logins(
                app.clone(),
                audius,
                sandbox_addr,
                picker.clone(),
                per_round,
                plan.login_concurrency,
                0,
            )
            .await?;
            rates.push(run.per_second());
        }
    }
    report.logins_per_s_api = round1(median(&api_rates));
    report.logins_per_s_local = round1(median(&local_rates));
    let (alo, ahi) = min_max(&api_rates);
    let (llo, lhi) = min_max(&local_rates);
    say(format!(
        "logins (login route, sandbox login page over loopback, callback; {} flows at once; \
         median of {} rounds of {per_round}): API verifier {:.0}/s ({alo:.0} to {ahi:.0}), local \
         verifier {:.0}/s ({llo:.0} to {lhi:.0})",
        plan.login_concurrency,
        plan.login_rounds,
        report.logins_per_s_api,
        report.logins_per_s_local,
    ));

    // The callback alone: logins started and approved first, then only the callbacks, timed one
    // at a time, while watching the sandbox's request log.
    for (name, app, audius, n) in [
        ("local", &local_app, &local, plan.callbacks),
        ("API", &api_app, &api, plan.callbacks / 4),
    ] {
        let mut connection = load::Connection::open(sandbox_addr).await?;
        let mut pending = Vec::with_capacity(n);
        while pending.len() < n {
            let next = picker.borrow_mut().next_user();
            let Some(handle) = next else {
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            pending.push(start_login(&**app, audius, &mut connection, &handle).await?);
        }
        // A login is judged against a user record read within the directory's refetch interval
        // (30 s by default): records read longer ago (at the warm-up, before the rounds above)
        // are read again now, outside the timed part, so that the callbacks run on a warm cache.
        warm_user_cache(audius, plan.users).await?;
        let last_seq = sandbox.requests().last().map(|r| r.seq);
        let mut times = Vec::with_capacity(n);
        for p in pending {
            let (_, took) = finish_login(&**app, p).await?;
            times.push(took);
        }
        let during = sandbox
            .requests()
            .iter()
            .filter(|r| last_seq.is_none_or(|s| r.seq > s))
            .count();
        let us = |p: f64| percentile(&times, p).as_secs_f64() * 1e6;
        say(format!(
            "callback alone, {name} verifier, warm user cache ({n} callbacks, one at a time): p50 \
             {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us; sandbox requests during them: \
             {during}",
            us(50.0),
            us(90.0),
            us(99.0),
            us(100.0)
        ));
        // Consecutive rounds of CALLBACK_ROUND callbacks: another process that takes the core
        // mid-callback adds its time slice to that callback, so on a shared machine the p99 of
        // the whole run measures the neighbours; the quietest round's p99 measures the handler.
        let round_p99: Vec<f64> = times
            .chunks(CALLBACK_ROUND)
            .filter(|c| c.len() == CALLBACK_ROUND || times.len() < CALLBACK_ROUND)
            .map(|c| percentile(c, 99.0).as_secs_f64() * 1e6)
            .collect();
        let (quietest, _) = min_max(&round_p99);
        say(format!(
            "  p99 per round of {CALLBACK_ROUND}: quietest {quietest:.0} us, median {:.0} us \
             ({} rounds)",
            median(&round_p99),
            round_p99.len()
        ));
        if name == "local" {
            report.callback_p99_us_local = round1(quietest);
            if during > 0 {
                say("  WARNING: the local verifier used the network during the measured callbacks");
            }
        }
    }
    Ok(())
}

/// Reads the records of the first `users` generated users into `audius`' user cache (8 at
/// once, whatever the age of a cached record), so that the timed logins measure a warm cache.
async fn warm_user_cache(audius: &AudiusLogin, users: usize) -> BenchResult<()> {
    let directory = audius
        .user_directory()
        .ok_or("the built-in verifier has a user directory")?
        .clone();
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let directory = directory.clone();
        tasks.push(actix_rt::spawn(async move {
            for i in (w..users).step_by(workers) {
                directory
                    .fetch_user(UserId::new(1_000_000 + i as u64))
                    .await?
                    .ok_or("a bench user is missing")?;
            }
            Ok::<_, BenchError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
