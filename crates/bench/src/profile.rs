//! `--profile`: a profiling aid, not a figure. Logs in, then makes only in-process requests of
//! one configuration, inside `profile_loop`, the one function a profiler is told to record
//! (`valgrind --tool=callgrind --toggle-collect='*profile_loop*'`); or, with `token`, only
//! parses and recovers a token, inside `profile_token_loop`.

use std::hint::black_box;
use std::time::Instant;

use actix_audius_login::VerifierKind;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use audius_login::Token;
use audius_sandbox::TokenOverrides;

use crate::apps::{self, AUTH_PATH, PAGE_PATH};
use crate::figures::{cookie_header, get, identity_login, say};
use crate::login::{self, audius_builder};
use crate::{BenchError, BenchResult};

/// The request configurations `--profile` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileConfig {
    /// The bare app, `/me` with this project's session cookie.
    Bare,
    /// actix-identity, `/me` with its cookie.
    Identity,
    /// This project, `/me` with its cookie.
    Audius,
    /// The bare app, `/page` without a cookie.
    BareAnon,
    /// This project, `/page` without a cookie.
    AudiusAnon,
    /// Not a request: `Token::parse_and_recover` of a sandbox token (`--profile-requests`
    /// times), in `profile_token_loop`.
    Token,
}

/// The apps and cookies of the request figures, then `n` requests of `config` in
/// `profile_loop`; prints how long they took.
pub fn run(config: ProfileConfig, n: usize) -> BenchResult<()> {
    let (sandbox_runtime, sandbox) = login::start_sandbox(login::bench_users(0)?, 100)?;
    if config == ProfileConfig::Token {
        let artist = sandbox.user("artist").ok_or("no built-in artist")?;
        let token = sandbox.mint_token(artist, TokenOverrides::default());
        let start = Instant::now();
        profile_token_loop(&token, n)?;
        say(format!(
            "profiled {n} Token::parse_and_recover in {:.3} s ({:.2} us each)",
            start.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
        ));
        sandbox_runtime.block_on(sandbox.stop());
        return Ok(());
    }
    let key = apps::key();
    let audius = audius_builder(&sandbox, VerifierKind::Local).build()?;
    actix_rt::System::new().block_on(async {
        let audius_app = test::init_service(apps::audius_app(key.clone(), audius.clone())).await;
        let bare_app = test::init_service(apps::bare_app(key.clone())).await;
        let identity_app = test::init_service(apps::identity_app(key.clone())).await;
        let audius_cookie =
            actix_audius_login_testing::sign_in_service(&audius_app, &audius, "artist").await?;
        let audius_cookie = cookie_header(&audius_cookie);
        let identity_cookie = cookie_header(&identity_login(&identity_app).await?);
        let (audius_cookie, identity_cookie) = (audius_cookie.as_str(), identity_cookie.as_str());
        let start = Instant::now();
        match config {
            ProfileConfig::Bare => profile_loop(&bare_app, AUTH_PATH, Some(audius_cookie), n).await,
            ProfileConfig::Identity => {
                profile_loop(&identity_app, AUTH_PATH, Some(identity_cookie), n).await
            }
            ProfileConfig::Audius => {
                profile_loop(&audius_app, AUTH_PATH, Some(audius_cookie), n).await
            }
            ProfileConfig::BareAnon => profile_loop(&bare_app, PAGE_PATH, None, n).await,
            ProfileConfig::AudiusAnon => profile_loop(&audius_app, PAGE_PATH, None, n).await,
            ProfileConfig::Token => return Err("--profile token makes no requests".into()),
        }
        say(format!(
            "profiled {n} requests ({config:?}) in {:.3} s",
            start.elapsed().as_secs_f64()
        ));
        Ok::<_, BenchError>(())
    })?;
    sandbox_runtime.block_on(sandbox.stop());
    Ok(())
}

/// `n` times `Token::parse_and_recover` of `token`; the only place `--profile token` spends
/// time in, by name.
#[inline(never)]
fn profile_token_loop(token: &str, n: usize) -> BenchResult<()> {
    for _ in 0..n {
        black_box(Token::parse_and_recover(black_box(token), 16 * 1024)?);
    }
    Ok(())
}

/// `n` in-process requests; the only place `--profile` spends time in, by name.
#[inline(never)]
async fn profile_loop<S, B>(app: &S, path: &str, cookie: Option<&str>, n: usize)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    for _ in 0..n {
        let res = test::call_service(app, get(path, cookie)).await;
        assert_eq!(res.status().as_u16(), 200, "{path}");
        drop(black_box(res));
    }
}
