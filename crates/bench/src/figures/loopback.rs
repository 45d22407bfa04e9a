//! The request figures over loopback HTTP (the headline values of `auth_vs_identity`,
//! `auth_vs_bare` and `anon_vs_bare`): each app in its own one-worker `HttpServer` on
//! 127.0.0.1, loaded by the bounded generator of [`crate::load`], the five configurations
//! interleaved in short runs; the figure is requests per second of the server worker's CPU.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_audius_login::VerifierKind;
use actix_web::cookie::Key;
use actix_web::dev::{Server, ServerHandle};
use audius_sandbox::SandboxHandle;

use super::plan::Plan;
use super::report::{Report, round3, say};
use super::requests::{CONFIG_NAMES, CONFIGS, Cookies, Ratios};
use super::rounds::upper_quantile;
use crate::BenchResult;
use crate::apps::{self, AUTH_PATH, PAGE_PATH};
use crate::load::{self, LoadTarget};
use crate::login::audius_builder;
use crate::stats::median;

/// One run of one configuration over loopback.
const HTTP_CHUNK: Duration = Duration::from_millis(40);

/// Runs one app's HTTP server (one worker) on a thread of its own.
fn spawn_server(
    build: impl FnOnce() -> std::io::Result<(Server, SocketAddr)> + Send + 'static,
) -> BenchResult<(SocketAddr, ServerHandle)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                match build() {
                    Ok((server, addr)) => {
                        let _ = tx.send(Ok((addr, server.handle())));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    Ok(rx.recv()??)
}

/// Where a server's worker thread writes its `schedstat` path when it builds its app.
type ThreadSlot = Arc<std::sync::Mutex<Option<String>>>;

fn record_thread(slot: &ThreadSlot) {
    if let Ok(mut s) = slot.lock() {
        *s = load::current_thread_schedstat();
    }
}

fn recorded_thread(slot: &ThreadSlot) -> Option<String> {
    slot.lock().ok().and_then(|s| s.clone())
}

/// Starts a one-worker server of the app built by `$app`; the worker records its thread.
macro_rules! server {
    ($slot:expr, $core:expr, $app:expr) => {{
        let slot: ThreadSlot = $slot.clone();
        let core: Option<core_affinity::CoreId> = $core;
        spawn_server(move || {
            let server = actix_web::HttpServer::new(move || {
                record_thread(&slot);
                if let Some(core) = core {
                    pin(core, "a server worker");
                }
                $app
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))?;
            let addr = server.addrs()[0];
            Ok((server.run(), addr))
        })?
    }};
}

/// Cores for the loopback figures: the load generator on the first, the server workers on the
/// last, so that neither runs on the other's core between requests. Left to the scheduler, the
/// two move between the cores of a 2-core machine, and a server's CPU time per request swings
/// by a third from one 40 ms run to the next with where the generator happened to be. `None`
/// with fewer than two cores.
fn loopback_cores() -> Option<(core_affinity::CoreId, core_affinity::CoreId)> {
    let ids = core_affinity::get_core_ids()?;
    Some((*ids.first()?, *ids.get(1..)?.last()?))
}

/// Pins the current thread to `core`; says so when the system refuses (the figures are then
/// taken unpinned, as before pinning existed).
fn pin(core: core_affinity::CoreId, who: &str) {
    if !core_affinity::set_for_current(core) {
        say(format!(
            "loopback: could not pin {who} to core {}: it runs where the scheduler puts it",
            core.id
        ));
    }
}

/// Serves the three apps, loads the five configurations in interleaved rounds, prints their
/// rates and ratios (wall clock, and per second of server CPU), and records the ratios in
/// `report`: per server CPU second when the server threads' CPU time is readable, else wall
/// clock. `cookies` are the sessions the in-process figures made.
pub(super) fn measure(
    plan: &Plan,
    sandbox: &SandboxHandle,
    key: &Key,
    cookies: &Cookies,
    report: &mut Report,
) -> BenchResult<()> {
    let audius = audius_builder(sandbox, VerifierKind::Local).build()?;
    let (k1, k2, k3) = (key.clone(), key.clone(), key.clone());
    let slots: [ThreadSlot; 3] = Default::default();
    let cores = loopback_cores();
    match cores {
        Some((client, server)) => say(format!(
            "loopback: load generator pinned to core {}, server workers to core {}",
            client.id, server.id
        )),
        None => say("loopback: fewer than two cores: nothing pinned"),
    }
    let server_core = cores.map(|(_, server)| server);
    let (bare_addr, bare) = server!(slots[0], server_core, apps::bare_app(k1.clone()));
    let (identity_addr, identity) = server!(slots[1], server_core, apps::identity_app(k2.clone()));
    let (audius_addr, audius_server) = if plan.null_check {
        say("loopback: NULL CHECK: the \"audius\" rows below are a second bare server");
        server!(slots[2], server_core, apps::bare_app(k3.clone()))
    } else {
        server!(
            slots[2],
            server_core,
            apps::audius_app(k3.clone(), audius.clone())
        )
    };
    // The workers build their apps as they start: wait for them to say which thread they are.
    let waiting = Instant::now();
    while slots.iter().any(|s| recorded_thread(s).is_none())
        && waiting.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let target =
        |addr: SocketAddr, slot: &ThreadSlot, path: &str, cookie: Option<&String>| LoadTarget {
            addr,
            path: path.to_owned(),
            cookie: cookie.cloned(),
            server_thread: recorded_thread(slot),
        };
    let targets: [LoadTarget; CONFIGS] = [
        target(bare_addr, &slots[0], AUTH_PATH, Some(&cookies.audius)),
        target(identity_addr, &slots[1], AUTH_PATH, Some(&cookies.identity)),
        target(audius_addr, &slots[2], AUTH_PATH, Some(&cookies.audius)),
        target(bare_addr, &slots[0], PAGE_PATH, None),
        target(audius_addr, &slots[2], PAGE_PATH, None),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Interleaved at a fine grain, as in process: in each round, runs of HTTP_CHUNK of every
    // configuration in turn (order rotated) over connections kept open, until the round's time
    // is up; a configuration's rate in a round is the upper quantile of its chunks' rates.
    let mut rates: [Vec<f64>; CONFIGS] = Default::default();
    let mut capacity: [Vec<f64>; CONFIGS] = Default::default();
    let mut busy: [Vec<f64>; CONFIGS] = Default::default();
    // The load generator runs on a thread of its own, pinned to its core (the main thread keeps
    // its affinity for the rest of the run).
    let generate = || -> BenchResult<()> {
        if let Some((client, _)) = cores {
            pin(client, "the load generator");
        }
        runtime.block_on(async {
            let mut pools = Vec::with_capacity(CONFIGS);
            for target in &targets {
                pools.push(load::LoadPool::open(target.clone(), plan.http_connections).await?);
            }
            for round in 0..=plan.rounds {
                let budget = if round == 0 {
                    plan.http_round
                } else {
                    plan.http_round * CONFIGS as u32
                };
                let mut chunk_rates: [Vec<f64>; CONFIGS] = Default::default();
                let mut chunk_capacity: [Vec<f64>; CONFIGS] = Default::default();
                let mut chunk_busy: [Vec<f64>; CONFIGS] = Default::default();
                let start = Instant::now();
                let mut turn = 0;
                while start.elapsed() < budget {
                    for i in 0..CONFIGS {
                        let config = (i + turn) % CONFIGS;
                        let run = pools[config].run(HTTP_CHUNK).await?;
                        if run.failed > 0 {
                            return Err(format!(
                                "{}: {} requests did not answer 200",
                                CONFIG_NAMES[config], run.failed
                            )
                            .into());
                        }
                        chunk_rates[config].push(run.per_second());
                        chunk_capacity[config].extend(run.per_server_cpu_second());
                        chunk_busy[config].extend(run.server_busy());
                    }
                    turn += 1;
                }
                if round > 0 {
                    for config in 0..CONFIGS {
                        rates[config].push(upper_quantile(&chunk_rates[config]));
                        if !chunk_capacity[config].is_empty() {
                            capacity[config].push(upper_quantile(&chunk_capacity[config]));
                        }
                        busy[config].push(median(&chunk_busy[config]));
                    }
                }
            }
            Ok(())
        })
    };
    let result = std::thread::scope(|scope| {
        scope
            .spawn(generate)
            .join()
            .unwrap_or_else(|_| Err("the load generator panicked".into()))
    });
    runtime.block_on(async {
        for handle in [bare, identity, audius_server] {
            handle.stop(false).await;
        }
    });
    result?;
    let ratios = Ratios::from_rates(&rates);
    ratios.print(
        &format!(
            "loopback HTTP/1.1, wall clock ({} keep-alive connections, one request in flight \
             each, interleaved runs of {} ms, {} ms per app per round, server: 1 worker)",
            plan.http_connections,
            HTTP_CHUNK.as_millis(),
            plan.http_round.as_millis()
        ),
        &rates,
    );
    let busy: Vec<String> = busy
        .iter()
        .map(|b| format!("{:.0}%", median(b) * 100.0))
        .collect();
    say(format!(
        "  server worker busy (median per configuration, 100% = the server sets the pace): {}",
        busy.join(", ")
    ));
    // The headline: requests per second of server worker CPU. On a shared 2-core machine the
    // load generator, the server and other processes take turns on the cores, so wall-clock
    // throughput measures the scheduler's share as much as the app; what a saturated worker
    // serves (requests / its CPU time, kernel time included) does not depend on that share.
    let headline = if capacity.iter().all(|c| c.len() == plan.rounds) {
        let per_cpu = Ratios::from_rates(&capacity);
        per_cpu.print(
            "loopback HTTP/1.1, requests per second of server worker CPU (the headline figures)",
            &capacity,
        );
        per_cpu
    } else {
        say("  (the server threads' CPU time is not readable: the headline is wall-clock)");
        ratios
    };
    report.auth_vs_identity = round3(headline.auth_vs_identity);
    report.auth_vs_bare = round3(headline.auth_vs_bare);
    report.anon_vs_bare = round3(headline.anon_vs_bare);
    Ok(())
}
