//! Like with like (`auth_vs_identity_lookup`, `auth_vs_identity_redis_lookup`,
//! `auth_vs_identity_redis`, `auth_vs_bare_redis`), over loopback HTTP as the headline request
//! figures (`loopback.rs`): requests per second of the servers' CPU, interleaved rounds.
//!
//! actix-identity keeps only an id: an app using it must still find the name, picture and
//! "verified" flag of the user on every request, which this project's `AudiusUser` carries in
//! the session. The two ways such an app does it are measured beside this project on the
//! cookie store: the profile from an in-process map (the cheapest; one instance only), and a
//! `GET` of the profile from Redis (what an app on several instances does). Then the three
//! apps of the headline figures on actix-session's `RedisSessionStore`, where the cookie holds
//! only the session key for all of them.

use std::time::Duration;

use actix_audius_login::VerifierKind;
use actix_web::cookie::Key;
use audius_login_redis_server::RedisServer;
use audius_sandbox::SandboxHandle;
use redis::Commands as _;

use super::loopback::{self, AppServer, interleave, serve, stop_servers, target};
use super::plan::Plan;
use super::redis::{self as bench_redis, manager, plain_store};
use super::report::{Report, round3, say};
use super::requests::Cookies;
use crate::apps::{self, AUTH_PATH, IDENTITY_LOGIN_PATH, Profile, profile_key};
use crate::load::{Connection, LoadPool, LoadTarget};
use crate::login::{self, audius_builder, http_begin, http_deliver};
use crate::stats::{median, min_max};
use crate::{BenchError, BenchResult};

const AUDIUS_COOKIE: usize = 0;
const IDENTITY_COOKIE: usize = 1;
const IDENTITY_MAP: usize = 2;
const IDENTITY_REDIS_LOOKUP: usize = 3;
const BARE_REDIS: usize = 4;
const IDENTITY_REDIS: usize = 5;
const AUDIUS_REDIS: usize = 6;
const NAMES: [&str; 7] = [
    "audius, /me (AudiusUser), cookie store",
    "actix-identity, /me (Identity), cookie store",
    "actix-identity + profile from an in-process map, cookie store",
    "actix-identity + profile GET from Redis, cookie store",
    "bare, /me, RedisSessionStore",
    "actix-identity, /me (Identity), RedisSessionStore",
    "audius, /me (AudiusUser), RedisSessionStore",
];

/// How long each Redis-using configuration is loaded alone while Redis counts its commands.
const COUNTED_RUN: Duration = Duration::from_millis(300);

/// Serves the seven apps, loads them in interleaved rounds, prints their rates and ratios, counts
/// the Redis commands of a request of each app that uses Redis, and records the four ratios in
/// `report`.
pub(super) fn measure(
    plan: &Plan,
    sandbox: &SandboxHandle,
    key: &Key,
    cookies: &Cookies,
    redis: &RedisServer,
    report: &mut Report,
) -> BenchResult<()> {
    let url = redis.url();
    let mut commands = bench_redis::connection(redis)?;
    // The profile of the signed-in user, as the identity apps keep it.
    let profile = Profile::artist(sandbox.base_url().as_str());
    commands.set::<_, _, ()>(
        profile_key(apps::IDENTITY_USER_ID),
        serde_json::to_string(&profile)?,
    )?;
    let profiles = apps::profile_map(profile);
    let audius = audius_builder(sandbox, VerifierKind::Local).build()?;
    let cores = loopback::loopback_cores();
    let core = cores.map(|(_, server)| server);
    // Each server's own copies of the key, the login settings and the Redis URL.
    let owned = || (key.clone(), audius.clone(), url.clone());
    let servers: Vec<AppServer> = vec![
        {
            let (k, a, _) = owned();
            serve!(core, async { BenchResult::Ok(()) }, |_unit| {
                apps::audius_app(k.clone(), a.clone())
            })
        },
        {
            let (k, _, _) = owned();
            serve!(core, async { BenchResult::Ok(()) }, |_unit| {
                apps::identity_app(k.clone())
            })
        },
        {
            let (k, _, _) = owned();
            serve!(core, async { BenchResult::Ok(profiles) }, |map| {
                apps::identity_map_app(k.clone(), map)
            })
        },
        {
            let (k, _, u) = owned();
            serve!(core, manager(u), |connection| {
                apps::identity_redis_app(k.clone(), connection)
            })
        },
        {
            let (k, _, u) = owned();
            serve!(core, plain_store(u), |store| {
                apps::bare_app_on(apps::session_middleware_on(store, &k))
            })
        },
        {
            let (k, _, u) = owned();
            serve!(core, plain_store(u), |store| {
                apps::identity_app_on(apps::session_middleware_on(store, &k))
            })
        },
        {
            let (k, a, u) = owned();
            serve!(core, plain_store(u), |store| {
                apps::audius_app_on(a.clone(), apps::session_middleware_on(store, &k))
            })
        },
    ];
    let result = measure_on(
        plan,
        sandbox,
        cookies,
        cores,
        &servers,
        &mut commands,
        redis,
        report,
    );
    stop_servers(servers.iter())?;
    result
}

#[allow(clippy::too_many_arguments)]
fn measure_on(
    plan: &Plan,
    sandbox: &SandboxHandle,
    cookies: &Cookies,
    cores: Option<(core_affinity::CoreId, core_affinity::CoreId)>,
    servers: &[AppServer],
    commands: &mut redis::Connection,
    redis: &RedisServer,
    report: &mut Report,
) -> BenchResult<()> {
    // The sessions on Redis: a real login on this project's app (the bare app loads the same
    // session), and actix-identity's login on its app.
    let sandbox_addr = login::sandbox_addr(sandbox)?;
    let (audius_redis, identity_redis) = actix_rt::System::new().block_on(async {
        let mut app = Connection::open(servers[AUDIUS_REDIS].addr).await?;
        let mut page = Connection::open(sandbox_addr).await?;
        let login_path = audius_builder(sandbox, VerifierKind::Local)
            .build()?
            .paths()
            .login
            .as_str()
            .to_owned();
        let pending = http_begin(&mut app, &mut page, &login_path, "artist").await?;
        let login::Delivery::Accepted(audius) = http_deliver(&mut app, &pending).await? else {
            return Err(BenchError::from("the Redis-session login was refused"));
        };
        let mut identity = Connection::open(servers[IDENTITY_REDIS].addr).await?;
        let identity = identity
            .get(IDENTITY_LOGIN_PATH, None, false)
            .await?
            .set_cookie
            .ok_or("the identity login set no cookie")?;
        Ok::<_, BenchError>((audius, identity))
    })?;
    let cookie_of = |config: usize| -> &String {
        match config {
            AUDIUS_COOKIE => &cookies.audius,
            IDENTITY_COOKIE | IDENTITY_MAP | IDENTITY_REDIS_LOOKUP => &cookies.identity,
            BARE_REDIS | AUDIUS_REDIS => &audius_redis,
            _ => &identity_redis,
        }
    };
    let targets: Vec<LoadTarget> = (0..NAMES.len())
        .map(|config| {
            let mut target = target(&servers[config], AUTH_PATH, Some(cookie_of(config)));
            if config >= IDENTITY_REDIS_LOOKUP {
                target.backend_threads = bench_redis::main_thread(redis);
            }
            target
        })
        .collect();
    let measured = interleave(plan, cores, &targets, &NAMES)?;
    let table = |rates: &[Vec<f64>], what: &str| {
        say(format!(
            "like with like, loopback HTTP/1.1, {what}: median of {} rounds",
            plan.rounds
        ));
        for (name, r) in NAMES.iter().zip(rates.iter()) {
            let (lo, hi) = min_max(r);
            say(format!(
                "  {name}: {:.0} req/s (rounds {lo:.0} to {hi:.0})",
                median(r)
            ));
        }
    };
    let rates = if measured.has_cpu(plan) {
        table(&measured.wall, "requests per second, wall clock");
        table(
            &measured.cpu_app,
            "requests per second of the app server's CPU alone",
        );
        let app = |num: usize, den: usize| -> f64 {
            median(
                &measured.cpu_app[num]
                    .iter()
                    .zip(&measured.cpu_app[den])
                    .map(|(n, d)| n / d)
                    .collect::<Vec<_>>(),
            )
        };
        say(format!(
            "  app CPU alone: audius / identity + map {:.3}, audius / identity + GET from Redis \
             {:.3}, audius / identity (Redis sessions) {:.3}, audius / bare (Redis sessions) {:.3}",
            app(AUDIUS_COOKIE, IDENTITY_MAP),
            app(AUDIUS_COOKIE, IDENTITY_REDIS_LOOKUP),
            app(AUDIUS_REDIS, IDENTITY_REDIS),
            app(AUDIUS_REDIS, BARE_REDIS),
        ));
        table(
            &measured.cpu,
            "requests per second of the CPU of the app server and redis-server together (the \
             headline figures: Redis serves the request too)",
        );
        &measured.cpu
    } else {
        table(
            &measured.wall,
            "requests per second (wall clock: the servers' CPU time is not readable)",
        );
        &measured.wall
    };
    measured.print_busy();
    let ratio = |num: usize, den: usize| -> (f64, f64, f64) {
        let per: Vec<f64> = rates[num]
            .iter()
            .zip(&rates[den])
            .map(|(n, d)| n / d)
            .collect();
        let (lo, hi) = min_max(&per);
        (median(&per), lo, hi)
    };
    let line = |label: &str, (value, lo, hi): (f64, f64, f64), goal: Option<f64>| {
        let verdict = goal.map_or(String::new(), |g| {
            format!(
                "; goal >= {g}: {}",
                if value >= g { "met" } else { "MISSED" }
            )
        });
        say(format!(
            "  {label}: {value:.3} (rounds {lo:.3} to {hi:.3}{verdict})"
        ));
        round3(value)
    };
    line(
        "identity + in-process map / identity alone (cookie store)",
        ratio(IDENTITY_MAP, IDENTITY_COOKIE),
        None,
    );
    report.auth_vs_identity_lookup = line(
        "audius / identity + in-process map (cookie store)",
        ratio(AUDIUS_COOKIE, IDENTITY_MAP),
        None,
    );
    report.auth_vs_identity_redis_lookup = line(
        "audius / identity + GET from Redis (cookie store)",
        ratio(AUDIUS_COOKIE, IDENTITY_REDIS_LOOKUP),
        Some(1.5),
    );
    report.auth_vs_identity_redis = line(
        "audius / identity (RedisSessionStore)",
        ratio(AUDIUS_REDIS, IDENTITY_REDIS),
        Some(0.97),
    );
    report.auth_vs_bare_redis = line(
        "audius / bare (RedisSessionStore)",
        ratio(AUDIUS_REDIS, BARE_REDIS),
        Some(0.97),
    );

    // What each app that uses Redis asks of it per request, and what Redis spends on it.
    say(format!(
        "Redis commands per authenticated request (INFO commandstats over {} ms of each alone), \
         and redis-server CPU per request:",
        COUNTED_RUN.as_millis()
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for config in [
        IDENTITY_REDIS_LOOKUP,
        BARE_REDIS,
        IDENTITY_REDIS,
        AUDIUS_REDIS,
    ] {
        let cpu = || redis.pid().and_then(bench_redis::process_cpu);
        bench_redis::reset(commands)?;
        let before = cpu();
        let run = runtime.block_on(async {
            LoadPool::open(targets[config].clone(), plan.http_connections)
                .await?
                .run(COUNTED_RUN)
                .await
        })?;
        let after = cpu();
        let counts = bench_redis::commands(commands)?;
        if run.failed > 0 {
            return Err(format!("{}: {} requests failed", NAMES[config], run.failed).into());
        }
        let (each, total) = bench_redis::per(&counts, run.ok as usize);
        let redis_us = after
            .zip(before)
            .map(|(a, b)| (a.saturating_sub(b)).as_secs_f64() * 1e6 / run.ok.max(1) as f64);
        say(format!(
            "  {}: {total:.2} commands ({each}) over {} requests; redis-server {}",
            NAMES[config],
            run.ok,
            redis_us.map_or("CPU not readable".to_owned(), |us| format!(
                "{us:.1} us CPU"
            ))
        ));
    }
    Ok(())
}
