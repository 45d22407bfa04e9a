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
use super::requests::{CONFIG_NAMES, Cookies, Ratios};
use super::rounds::upper_quantile;
use crate::BenchResult;
use crate::apps::{self, AUTH_PATH, PAGE_PATH};
use crate::load::{self, LoadTarget};
use crate::login::audius_builder;
use crate::stats::median;

/// One run of one configuration over loopback.
const HTTP_CHUNK: Duration = Duration::from_millis(40);

/// One app's HTTP server (one worker) on threads of its own: its address, its handle, and the
/// `schedstat` paths of its threads whose CPU time is the app's (the worker, and the thread of
/// the system that started it, where the driver task of a Redis connection made before
/// `HttpServer::new` runs, as in an app's `main`).
pub(super) struct AppServer {
    pub(super) addr: SocketAddr,
    pub(super) handle: ServerHandle,
    pub(super) threads: Vec<String>,
}

/// Runs one app's HTTP server on a thread of its own (pinned to `core`): `build` runs there,
/// inside the server's actix system, and gives the server and its address.
pub(super) fn spawn_server<F, Fut>(
    core: Option<core_affinity::CoreId>,
    worker: ThreadSlot,
    build: F,
) -> BenchResult<AppServer>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = BenchResult<(Server, SocketAddr)>>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            if let Some(core) = core {
                pin(core, "a server's system thread");
            }
            let system_thread = load::current_thread_schedstat();
            actix_rt::System::new().block_on(async move {
                match build().await {
                    Ok((server, addr)) => {
                        let _ = tx.send(Ok((addr, server.handle(), system_thread)));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
        })?;
    let (addr, handle, system_thread) = rx.recv()??;
    // The worker builds its app as it starts: wait for it to say which thread it is.
    let waiting = Instant::now();
    while recorded_thread(&worker).is_none() && waiting.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let threads = [recorded_thread(&worker), system_thread]
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    Ok(AppServer {
        addr,
        handle,
        threads,
    })
}

/// Where a server's worker thread writes its `schedstat` path when it builds its app.
pub(super) type ThreadSlot = Arc<std::sync::Mutex<Option<String>>>;

pub(super) fn record_thread(slot: &ThreadSlot) {
    if let Ok(mut s) = slot.lock() {
        *s = load::current_thread_schedstat();
    }
}

fn recorded_thread(slot: &ThreadSlot) -> Option<String> {
    slot.lock().ok().and_then(|s| s.clone())
}

/// Starts a one-worker server (an [`AppServer`]) on `$core`: `$setup` (an async block, run in
/// the server's system, giving a `BenchResult`) makes what the app shares between workers,
/// bound to `$shared` (cloned for each worker) in `$app`.
macro_rules! serve {
    ($core:expr, $setup:expr, |$shared:ident| $app:expr) => {{
        let worker = $crate::figures::loopback::ThreadSlot::default();
        let slot = worker.clone();
        let core: Option<core_affinity::CoreId> = $core;
        $crate::figures::loopback::spawn_server(core, worker, move || async move {
            let shared = $setup.await?;
            let server = actix_web::HttpServer::new(move || {
                $crate::figures::loopback::record_thread(&slot);
                if let Some(core) = core {
                    $crate::figures::loopback::pin(core, "a server worker");
                }
                #[allow(clippy::redundant_clone)]
                let $shared = shared.clone();
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
pub(super) use serve;

/// Starts a one-worker server of the app built by `$app` (nothing shared but what it
/// captures).
macro_rules! server {
    ($core:expr, $app:expr) => {
        serve!($core, async { $crate::BenchResult::Ok(()) }, |_unit| $app)
    };
}

/// Cores for the loopback figures: the load generator on the first, the server workers on the
/// last, so that neither runs on the other's core between requests. Left to the scheduler, the
/// two move between the cores of a 2-core machine, and a server's CPU time per request swings
/// by a third from one 40 ms run to the next with where the generator happened to be. `None`
/// with fewer than two cores.
pub(super) fn loopback_cores() -> Option<(core_affinity::CoreId, core_affinity::CoreId)> {
    let ids = core_affinity::get_core_ids()?;
    Some((*ids.first()?, *ids.get(1..)?.last()?))
}

/// Pins the current thread to `core`; says so when the system refuses (the figures are then
/// taken unpinned, as before pinning existed).
pub(super) fn pin(core: core_affinity::CoreId, who: &str) {
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
    let cores = loopback_cores();
    match cores {
        Some((client, server)) => say(format!(
            "loopback: load generator pinned to core {}, server workers to core {}",
            client.id, server.id
        )),
        None => say("loopback: fewer than two cores: nothing pinned"),
    }
    let server_core = cores.map(|(_, server)| server);
    let bare = server!(server_core, apps::bare_app(k1.clone()));
    let identity = server!(server_core, apps::identity_app(k2.clone()));
    let audius_server = if plan.null_check {
        say("loopback: NULL CHECK: the \"audius\" rows below are a second bare server");
        server!(server_core, apps::bare_app(k3.clone()))
    } else {
        server!(server_core, apps::audius_app(k3.clone(), audius.clone()))
    };
    let targets = [
        target(&bare, AUTH_PATH, Some(&cookies.audius)),
        target(&identity, AUTH_PATH, Some(&cookies.identity)),
        target(&audius_server, AUTH_PATH, Some(&cookies.audius)),
        target(&bare, PAGE_PATH, None),
        target(&audius_server, PAGE_PATH, None),
    ];
    let result = interleave(plan, cores, &targets, &CONFIG_NAMES);
    stop_servers([bare, identity, audius_server].iter())?;
    let measured = result?;
    let ratios = Ratios::from_rates(&measured.wall);
    ratios.print(
        &format!(
            "loopback HTTP/1.1, wall clock ({} keep-alive connections, one request in flight \
             each, interleaved runs of {} ms, {} ms per app per round, server: 1 worker)",
            plan.http_connections,
            HTTP_CHUNK.as_millis(),
            plan.http_round.as_millis()
        ),
        &measured.wall,
    );
    measured.print_busy();
    // The headline: requests per second of server worker CPU. On a shared 2-core machine the
    // load generator, the server and other processes take turns on the cores, so wall-clock
    // throughput measures the scheduler's share as much as the app; what a saturated worker
    // serves (requests / its CPU time, kernel time included) does not depend on that share.
    let headline = if measured.has_cpu(plan) {
        let per_cpu = Ratios::from_rates(&measured.cpu);
        per_cpu.print(
            "loopback HTTP/1.1, requests per second of server worker CPU (the headline figures)",
            &measured.cpu,
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

/// A load target: `path` with `cookie` on `server`, whose threads' CPU time is measured.
pub(super) fn target(server: &AppServer, path: &str, cookie: Option<&String>) -> LoadTarget {
    LoadTarget {
        addrs: vec![server.addr],
        path: path.to_owned(),
        cookie: cookie.cloned(),
        server_threads: server.threads.clone(),
        backend_threads: Vec::new(),
    }
}

/// Stops `servers` (waiting for each to finish).
pub(super) fn stop_servers<'a>(servers: impl Iterator<Item = &'a AppServer>) -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for server in servers {
            server.handle.stop(false).await;
        }
    });
    Ok(())
}

/// What [`interleave`] measured, `[configuration][round]`.
pub(super) struct Measured {
    /// Requests per second (wall clock).
    pub(super) wall: Vec<Vec<f64>>,
    /// Requests per second of the CPU of the servers and their backends (`redis-server`).
    pub(super) cpu: Vec<Vec<f64>>,
    /// Requests per second of the servers' CPU alone.
    pub(super) cpu_app: Vec<Vec<f64>>,
    /// The share of the time the servers' threads were on the CPU.
    busy: Vec<Vec<f64>>,
}

impl Measured {
    /// Whether every configuration has a CPU figure in every round.
    pub(super) fn has_cpu(&self, plan: &Plan) -> bool {
        self.cpu.iter().all(|c| c.len() == plan.rounds)
            && self.cpu_app.iter().all(|c| c.len() == plan.rounds)
    }

    /// Prints how busy the servers were, per configuration.
    pub(super) fn print_busy(&self) {
        let busy: Vec<String> = self
            .busy
            .iter()
            .map(|b| format!("{:.0}%", median(b) * 100.0))
            .collect();
        say(format!(
            "  server worker busy (median per configuration, 100% = the server sets the pace): {}",
            busy.join(", ")
        ));
    }
}

/// Loads `targets` (named `names`) in interleaved rounds from a load generator on a thread of
/// its own, pinned to the client core of `cores`: in each round, runs of [`HTTP_CHUNK`] of
/// every target in turn (order rotated) over connections kept open, until the round's time is
/// up (`plan.http_round` per target); a target's rate in a round is the upper quantile of its
/// chunks' rates. The first round is a warm-up. Every answer must be 200.
pub(super) fn interleave(
    plan: &Plan,
    cores: Option<(core_affinity::CoreId, core_affinity::CoreId)>,
    targets: &[LoadTarget],
    names: &[&str],
) -> BenchResult<Measured> {
    let n = targets.len();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut capacity: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut capacity_app: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut busy: Vec<Vec<f64>> = vec![Vec::new(); n];
    // The load generator runs on a thread of its own, pinned to its core (the main thread keeps
    // its affinity for the rest of the run).
    let generate = || -> BenchResult<()> {
        if let Some((client, _)) = cores {
            pin(client, "the load generator");
        }
        runtime.block_on(async {
            let mut pools = Vec::with_capacity(n);
            for target in targets {
                pools.push(load::LoadPool::open(target.clone(), plan.http_connections).await?);
            }
            for round in 0..=plan.rounds {
                let budget = if round == 0 {
                    plan.http_round
                } else {
                    plan.http_round * n as u32
                };
                let mut chunk_rates: Vec<Vec<f64>> = vec![Vec::new(); n];
                let mut chunk_capacity: Vec<Vec<f64>> = vec![Vec::new(); n];
                let mut chunk_app: Vec<Vec<f64>> = vec![Vec::new(); n];
                let mut chunk_busy: Vec<Vec<f64>> = vec![Vec::new(); n];
                let start = Instant::now();
                let mut turn = 0;
                while start.elapsed() < budget {
                    for i in 0..n {
                        let config = (i + turn) % n;
                        let run = pools[config].run(HTTP_CHUNK).await?;
                        if run.failed > 0 {
                            return Err(format!(
                                "{}: {} requests did not answer 200",
                                names[config], run.failed
                            )
                            .into());
                        }
                        chunk_rates[config].push(run.per_second());
                        chunk_capacity[config].extend(run.per_total_cpu_second());
                        chunk_app[config].extend(run.per_server_cpu_second());
                        chunk_busy[config].extend(run.server_busy());
                    }
                    turn += 1;
                }
                if round > 0 {
                    for config in 0..n {
                        rates[config].push(upper_quantile(&chunk_rates[config]));
                        if !chunk_capacity[config].is_empty() {
                            capacity[config].push(upper_quantile(&chunk_capacity[config]));
                        }
                        if !chunk_app[config].is_empty() {
                            capacity_app[config].push(upper_quantile(&chunk_app[config]));
                        }
                        busy[config].push(median(&chunk_busy[config]));
                    }
                }
            }
            Ok(())
        })
    };
    std::thread::scope(|scope| {
        scope
            .spawn(generate)
            .join()
            .unwrap_or_else(|_| Err("the load generator panicked".into()))
    })?;
    Ok(Measured {
        wall: rates,
        cpu: capacity,
        cpu_app: capacity_app,
        busy,
    })
}
