//! The request figures (`auth_vs_identity`, `auth_vs_bare`, `anon_vs_bare`): the five request
//! configurations, their per-round ratios, and the in-process measurement (through
//! `actix_web::test::call_service`). The same configurations over loopback HTTP, which give the
//! headline values, are in the `loopback` module.

use std::hint::black_box;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, Key};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};

use super::plan::Plan;
use super::report::say;
use super::rounds::{BLOCK_QUANTILE, quantile};
use super::session::cookie_header;
use crate::apps::{self, AUTH_PATH, IDENTITY_LOGIN_PATH, PAGE_PATH};
use crate::stats::{median, min_max};
use crate::{BenchError, BenchResult};

/// The request configurations, in round order.
pub(super) const CONFIGS: usize = 5;
pub(super) const BARE_AUTH: usize = 0;
pub(super) const IDENTITY_AUTH: usize = 1;
pub(super) const AUDIUS_AUTH: usize = 2;
pub(super) const BARE_ANON: usize = 3;
pub(super) const AUDIUS_ANON: usize = 4;
pub(super) const CONFIG_NAMES: [&str; CONFIGS] = [
    "bare, /me with the session cookie",
    "actix-identity, /me (Identity)",
    "audius, /me (AudiusUser)",
    "bare, /page without a cookie",
    "audius, /page without a cookie (Option<AudiusUser>)",
];

/// Requests per in-process block.
const BLOCK: usize = 32;

/// The session cookies the request figures send, as `Cookie` headers: this project's (of a
/// real login of `@artist`; the bare app is sent it too) and actix-identity's.
pub(super) struct Cookies {
    pub(super) audius: String,
    pub(super) identity: String,
}

/// Measures the five configurations in process, interleaved, and prints their rates and
/// ratios. `audius_app` is this project's app and `audius_cookie` a session of it; the bare and
/// identity apps are built here with `key`. Gives the cookies, for the loopback figures.
pub(super) async fn in_process<S, B>(
    plan: &Plan,
    key: &Key,
    audius_app: &S,
    audius_cookie: &Cookie<'static>,
) -> BenchResult<Cookies>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let bare_app = test::init_service(apps::bare_app(key.clone())).await;
    let identity_app = test::init_service(apps::identity_app(key.clone())).await;
    let identity_cookie = cookie_header(&identity_login(&identity_app).await?);
    let audius_cookie = cookie_header(audius_cookie);
    say(format!(
        "actix-identity's session cookie: {} bytes",
        identity_cookie.len()
    ));
    let (audius_cookie, identity_cookie) = (audius_cookie.as_str(), identity_cookie.as_str());
    // Sanity: each app accepts its cookie and the audius app refuses a request without one.
    for (status, what) in [
        (
            test::call_service(&bare_app, get(AUTH_PATH, Some(audius_cookie)))
                .await
                .status(),
            "bare /me",
        ),
        (
            test::call_service(&identity_app, get(AUTH_PATH, Some(identity_cookie)))
                .await
                .status(),
            "identity /me",
        ),
        (
            test::call_service(audius_app, get(AUTH_PATH, Some(audius_cookie)))
                .await
                .status(),
            "audius /me",
        ),
    ] {
        if status.as_u16() != 200 {
            return Err(format!("{what} answered {status}").into());
        }
    }
    let anon = test::call_service(audius_app, get(AUTH_PATH, None)).await;
    if anon.status().as_u16() != 401 {
        return Err(format!("audius /me without a cookie answered {}", anon.status()).into());
    }
    drop(anon);

    // Interleaved at a fine grain: in each round, blocks of BLOCK requests of every
    // configuration in turn (order rotated), until the round's time is up; a configuration's
    // rate in a round is BLOCK / the BLOCK_QUANTILE of its block times. A block that another
    // process preempted is slow and falls above the quantile; this is what makes the figure
    // hold on a shared machine.
    let mut rates: [Vec<f64>; CONFIGS] = Default::default();
    let rounds = plan.rounds + 1; // the first is a warm-up
    for round in 0..rounds {
        let budget = if round == 0 {
            plan.inproc_round
        } else {
            plan.inproc_round * CONFIGS as u32
        };
        let mut blocks: [Vec<Duration>; CONFIGS] = Default::default();
        let start = Instant::now();
        let mut turn = 0;
        while start.elapsed() < budget {
            for i in 0..CONFIGS {
                let config = (i + turn) % CONFIGS;
                let took = match config {
                    BARE_AUTH => inproc_block(&bare_app, AUTH_PATH, Some(audius_cookie)).await?,
                    IDENTITY_AUTH => {
                        inproc_block(&identity_app, AUTH_PATH, Some(identity_cookie)).await?
                    }
                    AUDIUS_AUTH => inproc_block(audius_app, AUTH_PATH, Some(audius_cookie)).await?,
                    BARE_ANON => inproc_block(&bare_app, PAGE_PATH, None).await?,
                    _ => inproc_block(audius_app, PAGE_PATH, None).await?,
                };
                blocks[config].push(took);
            }
            turn += 1;
        }
        if round > 0 {
            for (config, times) in blocks.iter().enumerate() {
                let q = quantile(times, BLOCK_QUANTILE);
                rates[config].push(BLOCK as f64 / q.as_secs_f64());
            }
        }
    }
    let ratios = Ratios::from_rates(&rates);
    ratios.print(
        &format!(
            "in process (actix_web::test::call_service; interleaved blocks of {BLOCK}, rate from \
             the {:.0}th percentile block time)",
            BLOCK_QUANTILE * 100.0
        ),
        &rates,
    );
    Ok(Cookies {
        audius: audius_cookie.to_owned(),
        identity: identity_cookie.to_owned(),
    })
}

/// Logs the identity app in (`Identity::login`) and returns its session cookie.
pub(crate) async fn identity_login<S, B>(app: &S) -> BenchResult<Cookie<'static>>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(
        app,
        TestRequest::get().uri(IDENTITY_LOGIN_PATH).to_request(),
    )
    .await;
    res.response()
        .cookies()
        .next()
        .map(|c| c.into_owned())
        .ok_or_else(|| BenchError::from("the identity login set no cookie"))
}

/// A `GET` with a ready-made `Cookie` header (built once, as a browser would send it).
pub(crate) fn get(path: &str, cookie: Option<&str>) -> actix_http::Request {
    let mut req = TestRequest::get().uri(path);
    if let Some(cookie) = cookie {
        req = req.insert_header((actix_web::http::header::COOKIE, cookie));
    }
    req.to_request()
}

/// The time of [`BLOCK`] in-process requests on `app` (each must answer 200).
async fn inproc_block<S, B>(app: &S, path: &str, cookie: Option<&str>) -> BenchResult<Duration>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut failed = 0usize;
    let start = Instant::now();
    for _ in 0..BLOCK {
        let res = test::call_service(app, get(path, cookie)).await;
        if res.status().as_u16() != 200 {
            failed += 1;
        }
        drop(black_box(res));
    }
    let took = start.elapsed();
    if failed > 0 {
        return Err(format!("{failed} of {BLOCK} requests to {path} failed").into());
    }
    Ok(took)
}

/// Per-round ratios, and their medians.
pub(super) struct Ratios {
    pub(super) auth_vs_identity: f64,
    pub(super) auth_vs_bare: f64,
    pub(super) anon_vs_bare: f64,
    per_round: [Vec<f64>; 3],
}

impl Ratios {
    /// The ratios of each round's rates (`rates[config][round]`).
    pub(super) fn from_rates(rates: &[Vec<f64>]) -> Self {
        let per = |num: usize, den: usize| -> Vec<f64> {
            rates[num]
                .iter()
                .zip(&rates[den])
                .map(|(n, d)| n / d)
                .collect()
        };
        let per_round = [
            per(AUDIUS_AUTH, IDENTITY_AUTH),
            per(AUDIUS_AUTH, BARE_AUTH),
            per(AUDIUS_ANON, BARE_ANON),
        ];
        Self {
            auth_vs_identity: median(&per_round[0]),
            auth_vs_bare: median(&per_round[1]),
            anon_vs_bare: median(&per_round[2]),
            per_round,
        }
    }

    /// Prints each configuration's rate and the three ratios, with their spread and goals.
    pub(super) fn print(&self, what: &str, rates: &[Vec<f64>]) {
        say(format!(
            "requests, {what}: median of {} rounds",
            rates[0].len()
        ));
        for (name, r) in CONFIG_NAMES.iter().zip(rates) {
            let (lo, hi) = min_max(r);
            say(format!(
                "  {name}: {:.0} req/s (rounds {lo:.0} to {hi:.0})",
                median(r)
            ));
        }
        for (label, value, goal, r) in [
            (
                "audius / identity (authenticated)",
                self.auth_vs_identity,
                1.0,
                &self.per_round[0],
            ),
            (
                "audius / bare (authenticated)",
                self.auth_vs_bare,
                0.9,
                &self.per_round[1],
            ),
            (
                "audius / bare (anonymous)",
                self.anon_vs_bare,
                0.97,
                &self.per_round[2],
            ),
        ] {
            let (lo, hi) = min_max(r);
            say(format!(
                "  {label}: {value:.3} (rounds {lo:.3} to {hi:.3}; goal >= {goal}: {})",
                if value >= goal { "met" } else { "MISSED" }
            ));
        }
    }
}
