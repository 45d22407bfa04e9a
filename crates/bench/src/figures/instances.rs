//! Scale out (`logins_per_s_two_instances`, `two_instances_vs_one`, `redis_outage_503_s`): two
//! instances of this project's app behind one Redis (actix-session's `RedisSessionStore`, as
//! this project recommends it: reconnecting, bounded, the `SessionStoreGuard` outermost; and
//! the `RedisReplayCache`), logins driven through the sandbox with the local verifier over
//! HTTP, requests spread over both.
//!
//! 1. logins in rounds alternating one instance and two (each login started on one instance
//!    and finished on the other; as many flows and logins a instance with two as with one):
//!    logins per second, and per second of the instances' CPU;
//! 2. the Redis commands of a login and of an authenticated request (`INFO commandstats`);
//! 3. authenticated requests on one instance and spread over two, interleaved: requests per
//!    second of the instances' CPU, two over one;
//! 4. logins whose callback is delivered to both instances at the same moment: each must be
//!    accepted exactly once (the run fails otherwise);
//! 5. a Redis outage: `redis-server` killed and started again while a client keeps
//!    requesting; the seconds of `503 session_unavailable`, and no answer that succeeds
//!    wrongly; then a login and requests on both instances, without restarting them.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_audius_login::VerifierKind;
use actix_web::cookie::Key;
use audius_login::replay::RedisReplayCache;
use audius_login_redis_server::RedisServer;
use audius_sandbox::SandboxHandle;

use super::loopback::{self, AppServer, interleave, serve, stop_servers};
use super::plan::Plan;
use super::redis::{self as bench_redis, guarded_store};
use super::report::{Report, round1, round3, say};
use crate::apps::{self, AUTH_PATH};
use crate::load::{Connection, LoadPool, LoadTarget, threads_cpu};
use crate::login::{self, UserPicker, audius_builder, bench_handle, http_logins};
use crate::stats::{median, min_max};
use crate::{BenchError, BenchResult};

/// How long authenticated requests run while Redis counts their commands.
const COUNTED_RUN: Duration = Duration::from_millis(300);
/// Logins while Redis counts their commands.
const COUNTED_LOGINS: usize = 40;

/// Starts an instance: this project's app with its own `AudiusLogin` (local verifier, the
/// shared `RedisReplayCache`) on the shared Redis sessions.
fn instance(
    core: Option<core_affinity::CoreId>,
    sandbox: &SandboxHandle,
    key: &Key,
    url: &str,
) -> BenchResult<AppServer> {
    let builder = audius_builder(sandbox, VerifierKind::Local);
    let (k, url) = (key.clone(), url.to_owned());
    Ok(serve!(
        core,
        async move {
            let replay = RedisReplayCache::builder(url.clone())
                .key_prefix("bench:replay:")
                .timeout(bench_redis::STORE_TIMEOUT)
                .connect()
                .await?;
            let audius = builder.replay_cache(Arc::new(replay)).build()?;
            let store = guarded_store(url).await?;
            BenchResult::Ok((audius, store))
        },
        |shared| {
            let (audius, store) = shared;
            let guard = audius.session_store_guard();
            apps::audius_app_on(audius, apps::session_middleware_on(store, &k)).wrap(guard)
        }
    ))
}

/// Measures the scale-out figures (module docs) and records them in `report`.
pub(super) fn measure(
    plan: &Plan,
    sandbox: &SandboxHandle,
    key: &Key,
    redis: &mut RedisServer,
    report: &mut Report,
) -> BenchResult<()> {
    let cores = loopback::loopback_cores();
    let url = redis.url();
    // Each instance on a core of its own, as instances on machines of their own: the first on
    // the server core of the other figures (it serves alone in the one-instance runs), the
    // second on the other core (beside the load generator, redis-server and the sandbox).
    // Both on one core, they would take turns on it and measure the scheduler's switches
    // between them.
    let servers = vec![
        instance(cores.map(|(_, server)| server), sandbox, key, &url)?,
        instance(cores.map(|(client, _)| client), sandbox, key, &url)?,
    ];
    let result = measure_on(plan, sandbox, cores, &servers, redis, report);
    stop_servers(servers.iter())?;
    result
}

fn measure_on(
    plan: &Plan,
    sandbox: &SandboxHandle,
    cores: Option<(core_affinity::CoreId, core_affinity::CoreId)>,
    servers: &[AppServer],
    redis: &mut RedisServer,
    report: &mut Report,
) -> BenchResult<()> {
    let sandbox_addr = login::sandbox_addr(sandbox)?;
    let login_path = audius_builder(sandbox, VerifierKind::Local)
        .build()?
        .paths()
        .login
        .as_str()
        .to_owned();
    let (a, b) = (servers[0].addr, servers[1].addr);
    let both = [a, b];
    let threads_one = servers[0].threads.clone();
    let threads_two: Vec<String> = servers.iter().flat_map(|s| s.threads.clone()).collect();
    let handles: Vec<String> = (0..plan.users).map(bench_handle).collect();
    let picker = Rc::new(RefCell::new(UserPicker::new(handles)));
    let mut commands = bench_redis::connection(redis)?;

    // 1. Logins, rounds alternating one instance and two.
    let per_round = (plan.scale_logins / plan.login_rounds).max(1);
    let system = actix_rt::System::new();
    let (mut wall, mut per_cpu): ([Vec<f64>; 2], [Vec<f64>; 2]) = Default::default();
    let cookie = system.block_on(async {
        http_logins(
            &both,
            sandbox_addr,
            &login_path,
            picker.clone(),
            20,
            2,
            false,
        )
        .await?;
        for round in 0..plan.login_rounds {
            for which in [round % 2, 1 - round % 2] {
                let (apps, threads): (&[SocketAddr], &[String]) = if which == 0 {
                    (&both[..1], &threads_one)
                } else {
                    (&both, &threads_two)
                };
                let before = threads_cpu(threads);
                let run = http_logins(
                    apps,
                    sandbox_addr,
                    &login_path,
                    picker.clone(),
                    per_round * apps.len(),
                    plan.login_concurrency * apps.len(),
                    false,
                )
                .await?;
                let cpu = threads_cpu(threads)
                    .zip(before)
                    .map(|(after, before)| after.saturating_sub(before));
                wall[which].push(run.per_second());
                if let Some(cpu) = cpu.filter(|c| !c.is_zero()) {
                    per_cpu[which].push(run.accepted as f64 / cpu.as_secs_f64());
                }
            }
        }
        // 2. The Redis commands of a login (two instances, one flow).
        bench_redis::reset(&mut commands)?;
        let run = http_logins(
            &both,
            sandbox_addr,
            &login_path,
            picker.clone(),
            COUNTED_LOGINS,
            1,
            false,
        )
        .await?;
        let counts = bench_redis::commands(&mut commands)?;
        let (each, total) = bench_redis::per(&counts, run.accepted);
        say(format!(
            "two instances: Redis commands per login (INFO commandstats over {} logins: login \
             route, callback; sessions and replay cache): {total:.2} ({each})",
            run.accepted
        ));
        run.last_cookie
            .ok_or_else(|| BenchError::from("no login was accepted"))
    })?;
    let login_ratio: Vec<f64> = per_cpu[1]
        .iter()
        .zip(&per_cpu[0])
        .map(|(two, one)| two / one)
        .collect();
    report.logins_per_s_two_instances = round1(median(&wall[1]));
    let (lo, hi) = min_max(&wall[1]);
    say(format!(
        "two instances on one Redis: logins (login route on one instance, sandbox page, callback \
         on the other; {} flows and {per_round} logins a instance a round, median of {} rounds): \
         {:.0}/s ({lo:.0} to {hi:.0}); one instance alone {:.0}/s; logins per second of the \
         instances' CPU: two {:.0}, one {:.0}, two / one {:.3}",
        plan.login_concurrency,
        plan.login_rounds,
        report.logins_per_s_two_instances,
        median(&wall[0]),
        median(&per_cpu[1]),
        median(&per_cpu[0]),
        median(&login_ratio),
    ));

    // 2. The Redis commands of an authenticated request (spread over both instances).
    let spread = LoadTarget {
        addrs: both.to_vec(),
        path: AUTH_PATH.to_owned(),
        cookie: Some(cookie.clone()),
        server_threads: threads_two.clone(),
        backend_threads: bench_redis::main_thread(redis),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    bench_redis::reset(&mut commands)?;
    let run = runtime.block_on(async {
        LoadPool::open(spread.clone(), plan.http_connections)
            .await?
            .run(COUNTED_RUN)
            .await
    })?;
    let counts = bench_redis::commands(&mut commands)?;
    if run.failed > 0 {
        return Err(format!("{} authenticated requests failed", run.failed).into());
    }
    let (each, total) = bench_redis::per(&counts, run.ok as usize);
    say(format!(
        "two instances: Redis commands per authenticated request (over {} requests): {total:.2} \
         ({each}); goal: one read",
        run.ok
    ));
    drop(runtime);

    // 3. Requests on one instance, and spread over two, interleaved.
    let one = LoadTarget {
        addrs: vec![a],
        server_threads: threads_one,
        ..spread.clone()
    };
    let names = [
        "one instance, /me (RedisSessionStore)",
        "two instances, /me spread over both",
    ];
    let efficiency = Plan {
        http_connections: plan.scale_connections,
        ..plan.clone()
    };
    say(format!(
        "two instances, efficiency runs: {} keep-alive connection(s) to each instance",
        efficiency.http_connections
    ));
    let measured = interleave(&efficiency, cores, &[one, spread], &names)?;
    let (lo_w, hi_w) = (median(&measured.wall[0]), median(&measured.wall[1]));
    say(format!(
        "two instances, requests per second, wall clock: one {lo_w:.0}, two {hi_w:.0}"
    ));
    measured.print_busy();
    let (rates, what) = if measured.has_cpu(plan) {
        let app: Vec<f64> = measured.cpu_app[1]
            .iter()
            .zip(&measured.cpu_app[0])
            .map(|(two, one)| two / one)
            .collect();
        say(format!(
            "two instances, requests per second of the instances' CPU alone (median of {} \
             rounds): one {:.0}, two {:.0}; two / one {:.3}",
            plan.rounds,
            median(&measured.cpu_app[0]),
            median(&measured.cpu_app[1]),
            median(&app)
        ));
        (
            &measured.cpu,
            "requests per second of the CPU of the instances and redis-server together",
        )
    } else {
        (&measured.wall, "requests per second (wall clock)")
    };
    let per: Vec<f64> = rates[1]
        .iter()
        .zip(&rates[0])
        .map(|(two, one)| two / one)
        .collect();
    let (lo, hi) = min_max(&per);
    report.two_instances_vs_one = round3(median(&per));
    say(format!(
        "two instances, {what} (median of {} rounds): one {:.0}, two {:.0}; two / one {:.3} \
         (rounds {lo:.3} to {hi:.3}; goal >= 0.9: {})",
        plan.rounds,
        median(&rates[0]),
        median(&rates[1]),
        report.two_instances_vs_one,
        if report.two_instances_vs_one >= 0.9 {
            "met"
        } else {
            "MISSED"
        }
    ));

    // 4. Exactly once across instances: every callback delivered to both at the same moment.
    let system = actix_rt::System::new();
    let run = system.block_on(http_logins(
        &both,
        sandbox_addr,
        &login_path,
        picker.clone(),
        plan.race_logins,
        plan.login_concurrency,
        true,
    ))?;
    if run.accepted != plan.race_logins || run.refused != plan.race_logins {
        return Err(format!(
            "{} logins delivered to both instances at once: {} accepted, {} refused",
            plan.race_logins, run.accepted, run.refused
        )
        .into());
    }
    say(format!(
        "two instances: {} logins, each callback delivered to both at the same moment: {} \
         accepted exactly once, {} second deliveries refused",
        plan.race_logins, run.accepted, run.refused
    ));

    // 5. A Redis outage.
    let outage = system.block_on(outage(plan, redis, &both, &cookie))?;
    report.redis_outage_503_s = round3(outage);
    let after = system.block_on(async {
        let run = http_logins(
            &both,
            sandbox_addr,
            &login_path,
            picker.clone(),
            2,
            1,
            false,
        )
        .await?;
        let cookie = run.last_cookie.ok_or("no login after the outage")?;
        for addr in both {
            let mut connection = Connection::open(addr).await?;
            let answer = connection.get(AUTH_PATH, Some(&cookie), false).await?;
            if answer.status != 200 {
                return Err(BenchError::from(format!(
                    "after the outage, /me on {addr} answered {}",
                    answer.status
                )));
            }
        }
        Ok(run.accepted)
    })?;
    say(format!(
        "  after the outage, without restarting the instances: {after} logins accepted, /me \
         answered 200 on both"
    ));
    Ok(())
}

/// One answer of the client during the outage.
#[derive(Debug, Clone, Copy)]
struct Seen {
    sent: Instant,
    answered: Instant,
    status: u16,
    /// A `503` with `"error": "session_unavailable"` (the crate's).
    ours: bool,
}

/// Kills `redis-server` while a client requests `/me` with `cookie` on both instances in turn,
/// starts it again after `plan.outage`, and waits until both answer without a `503`. Checks
/// every answer: `200` before the kill; after it, `503 session_unavailable` while Redis is
/// down, then `503` or `401` (the session died with the old Redis, which kept nothing): never
/// `200`, never another error (a request in flight at the kill may still get its `200`).
/// Gives the seconds of `503`s: from the sending of the first request answered `503` (the kill,
/// for one in flight then) to the last `503` answer.
async fn outage(
    plan: &Plan,
    redis: &mut RedisServer,
    instances: &[SocketAddr],
    cookie: &str,
) -> BenchResult<f64> {
    let done = Rc::new(Cell::new(false));
    let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
    // One client a instance, each with one request in flight.
    let mut clients = Vec::new();
    for addr in instances {
        let mut connection = Connection::open(*addr).await?;
        let (done, seen, cookie) = (done.clone(), seen.clone(), cookie.to_owned());
        clients.push(actix_rt::spawn(async move {
            while !done.get() {
                let sent = Instant::now();
                let answer = connection
                    .get_as(AUTH_PATH, Some(&cookie), Some("application/json"), true)
                    .await?;
                let ours = answer.status == 503
                    && serde_json::from_slice::<serde_json::Value>(&answer.body)
                        .ok()
                        .is_some_and(|v| v["error"] == "session_unavailable");
                seen.borrow_mut().push(Seen {
                    sent,
                    answered: Instant::now(),
                    status: answer.status,
                    ours,
                });
                actix_rt::time::sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, BenchError>(())
        }));
    }
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    redis.try_stop().await?;
    actix_rt::time::sleep(plan.outage).await;
    // From here Redis may answer (before `try_start_again` has seen it answer a PING).
    let restarting = Instant::now();
    redis.try_start_again().await?;
    let up = Instant::now();
    // Wait until both instances have answered without a 503 after Redis came back.
    let deadline = up + Duration::from_secs(20);
    loop {
        let back = {
            let seen = seen.borrow();
            let after: Vec<&Seen> = seen.iter().filter(|s| s.sent > up).collect();
            after.len() >= 4 && after.iter().rev().take(4).all(|s| s.status != 503)
        };
        if back || Instant::now() > deadline {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    done.set(true);
    for client in clients {
        client.await??;
    }
    let seen = seen.borrow();
    // From the sending of the first request answered 503 to the last 503 answer.
    let mut first_503 = None;
    let mut last_503 = None;
    let (mut before, mut during, mut unavailable, mut signed_out) = (0, 0, 0, 0);
    for s in seen.iter() {
        if s.sent < killed && s.answered < killed {
            if s.status != 200 {
                return Err(format!("before the outage, /me answered {}", s.status).into());
            }
            before += 1;
            continue;
        }
        // In flight at the kill: a 200 is right too (served before it); its 503 counts from
        // the kill.
        if s.sent < killed && s.status == 200 {
            continue;
        }
        let sent = s.sent.max(killed);
        during += 1;
        match s.status {
            503 if s.ours => {
                unavailable += 1;
                first_503 = Some(first_503.map_or(sent, |f: Instant| f.min(sent)));
                last_503 = Some(s.answered);
            }
            401 if s.answered > restarting => signed_out += 1,
            200 => {
                return Err(
                    "a request with the session succeeded after Redis was killed (wrongly)".into(),
                );
            }
            other => {
                return Err(format!(
                    "during the outage, /me answered {other} (ours: {}) at {:.3} s",
                    s.ours,
                    (s.answered - killed).as_secs_f64()
                )
                .into());
            }
        }
    }
    let last = seen.last().map(|s| s.status);
    if last != Some(401) {
        return Err(format!(
            "the instances did not serve again within 20 s of Redis' return (last answer {last:?})"
        )
        .into());
    }
    let seconds = first_503
        .zip(last_503)
        .map_or(0.0, |(first, last): (Instant, Instant)| {
            last.saturating_duration_since(first).as_secs_f64()
        });
    say(format!(
        "two instances, Redis outage: redis-server killed, started again {:.2} s later (empty: \
         nothing persisted; one client a instance requesting /me); {before} answers 200 before, {during} after the kill: {unavailable} \
         503 session_unavailable for {seconds:.3} s, then {signed_out} 401 (the session died \
         with the old Redis); none succeeded wrongly; the last 503 {:.3} s after Redis answered \
         again",
        (up - killed).as_secs_f64(),
        last_503.map_or(0.0, |l| l.saturating_duration_since(up).as_secs_f64()),
    ));
    Ok(seconds)
}
