//! The code flow's tokens in the session, and their refresh: one refresh per session, and the
//! newest tokens win, within a process and, with a shared replay cache (Redis), across app
//! instances.
//!
//! A refresh token can be used once: Audius answers a second use with "Token reuse detected"
//! and revokes the whole family, which signs the user out. So a session must never refresh
//! twice with the same refresh token, even when a page fires ten API calls at once and every
//! one of them finds the access token expired. This process keeps, per session (keyed by a
//! random family id stored with the tokens at login, so the key is bound to the session and
//! survives session renewal), a lock and the newest tokens it knows (a bounded LRU map,
//! [`Limits::tracked_sessions`](crate::Limits::tracked_sessions)):
//!
//! 1. a request that needs a refresh takes the session's lock; the first one refreshes, records
//!    the new tokens (generation + 1) and writes them to its session;
//! 2. the others wait on the lock, then find tokens newer than their own and use those, and
//!    write them to their sessions too: one `POST /v1/oauth/token` in all;
//! 3. every request whose session changes (whatever the handler did) and carries tokens older
//!    than the newest known has them replaced on the way out (in the middleware), and a request
//!    that arrives with a stale cookie adopts the newest tokens before using them. So every
//!    `Set-Cookie` the browser receives after the refresh carries the newest tokens, whichever
//!    of the concurrent answers it processes last, and a stale cookie is never used to refresh.
//!
//! # Across instances
//!
//! When the replay cache is shared and offers it
//! ([`ReplayCache::refresh_coordination`]; `RedisReplayCache` does), the process lock is only
//! the first stage (one attempt per process and session at a time), and the second is shared
//! ([`RefreshCoordination`], in Redis: a lock per family with a random owner and a time to
//! live, the family's newest tokens and its "dead" mark):
//!
//! - the request that holds the process lock asks the shared state: the family is dead (sign
//!   out), or newer tokens were recorded by another instance (use them, and remember them in
//!   this process: no refresh), or it takes the shared lock, or another instance holds it (wait,
//!   polling, at most the lock's time to live, then `503 session_unavailable`);
//! - the holder refreshes at Audius, bounded by the API client's
//!   [`call_budget`](audius_login::ApiClient::call_budget); the lock's time to live is that
//!   budget plus two shared-state calls and a second, and the holder's deadline is counted from
//!   before it asked for the lock, so a lock cannot expire while its holder may still present
//!   the token (a holder granted the lock too late gives it back unsent), and a crashed holder
//!   blocks the family for that long at most;
//! - with the lock, the holder leaves an in-flight marker (the generation it presents): until
//!   the next generation is published (or the holder says it did not present the token), no
//!   other instance presents that token, even after the lock expired: it answers `503
//!   session_unavailable` for the holder's in-doubt window (ten locks' times to live, during
//!   which a holder that could not publish keeps trying in the background), then signs the
//!   session out;
//! - the refresh runs in a task of its own, which the request awaits, on the `AudiusLogin`'s
//!   own runtime ([`background`]): a dropped request future (a client hanging up, an app's
//!   deadline) or a stopped worker (a graceful stop, its shutdown timeout) cuts nothing;
//! - the new tokens are published (never over a newer generation, never into a dead family),
//!   then the lock is released by its owner only (compare-and-delete);
//! - a logout (or a refusal by Audius) marks the family dead in the shared state, atomically
//!   taking back its newest tokens, which are the ones revoked.
//!
//! A shared state that cannot be reached answers `503 session_unavailable`: never a refresh
//! without coordination. The tokens sit in Redis as the session does (see SECURITY.md), for no
//! longer than the refresh token lives (30 days).
//!
//! Without a shared replay cache the coordination is per process: several app instances behind
//! a load balancer should route a session to one instance (sticky sessions); otherwise two
//! instances may refresh the same token and Audius' reuse detection will sign the user out
//! (safe, but a new login). In every setup a refresh whose answer is lost (a timeout after
//! Audius received it) uses the refresh token up: the next refresh is refused and the user logs
//! in again.

mod background;
mod job;
mod late;
mod tokens;

pub(crate) use background::Background;
use job::{Bounds, Job, shared_state_unavailable, shared_tokens, wait_bound};
use tokens::send_revocation;
pub(crate) use tokens::{Families, Known, RefreshFailure, StoredTokens};

use std::time::Instant;

use actix_session::{Session, SessionExt as _, SessionStatus};
use actix_web::HttpRequest;
use audius_login::defaults::REFRESH_TOKEN_LIFETIME;
use audius_login::replay::ReplayCache;

use crate::config::Config;
use crate::error::AudiusLoginError;
use crate::session::TOKENS_KEY;
/// The tokens in the session, if any; an unreadable entry is removed.
pub(crate) fn read_tokens(session: &Session) -> Option<StoredTokens> {
    match session.get::<StoredTokens>(TOKENS_KEY) {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable Audius tokens in the session; dropping them");
            session.remove(TOKENS_KEY);
            None
        }
    }
}

pub(crate) fn write_tokens(
    session: &Session,
    tokens: &StoredTokens,
) -> Result<(), AudiusLoginError> {
    session
        .insert(TOKENS_KEY, tokens)
        .map_err(AudiusLoginError::from)
}

/// The middleware's last step: when the session changed during the request and carries tokens
/// older than the newest this process knows, the newest replace them, so that the cookie (or
/// server-side state) written last always holds the newest tokens.
pub(crate) fn upgrade_session_tokens(req: &HttpRequest, families: &Families) {
    let session = req.get_session();
    if !matches!(
        session.status(),
        SessionStatus::Changed | SessionStatus::Renewed
    ) {
        return;
    }
    let Some(tokens) = read_tokens(&session) else {
        return;
    };
    if let Known::Newer(newer) = families.known(&tokens) {
        tracing::debug!(
            generation = newer.generation,
            "replacing stale Audius tokens in the session"
        );
        if let Err(e) = write_tokens(&session, &newer) {
            tracing::warn!(error = %e, "could not write the newest Audius tokens");
        }
    }
}

/// Revokes the session's tokens at Audius (best effort: a failure is logged) and forgets them
/// here and, with a shared replay cache, in the shared state (the family is marked dead there,
/// so no instance refreshes it again). Bounded by the API client's and the cache's timeouts.
/// Runs on the refreshes' own runtime, counted, and is awaited: a request cut meanwhile (a
/// server's shutdown timeout) cuts nothing, and `drain` waits for it (review 10).
pub(crate) async fn revoke(
    config: &Config,
    families: &Families,
    background: &Background,
    tokens: &StoredTokens,
) {
    let newest = retire(families, tokens);
    let oauth = config.background_oauth.clone();
    let cache = config.replay_cache.clone();
    let task = background.spawn(async move {
        let newest = retire_shared(cache.as_ref(), newest).await;
        send_revocation(&oauth, &newest).await;
    });
    if let Some(task) = task
        && let Err(e) = task.await
    {
        tracing::warn!(error = %e, "the revocation of the Audius tokens did not finish");
    }
}

/// Revokes tokens that never reached a session (a login that failed after the code exchange):
/// no request, in this process or another, can know their family, so only Audius is told. On
/// the refreshes' own runtime, counted, awaited (as [`revoke`]).
pub(crate) async fn revoke_new(config: &Config, background: &Background, tokens: &StoredTokens) {
    let oauth = config.background_oauth.clone();
    let tokens = tokens.clone();
    let task = background.spawn(async move { send_revocation(&oauth, &tokens).await });
    if let Some(task) = task
        && let Err(e) = task.await
    {
        tracing::warn!(error = %e, "the revocation of the Audius tokens did not finish");
    }
}

/// As [`revoke`], without waiting: on the refreshes' own runtime, counted (a graceful stop
/// does not cut it, and [`AudiusLogin::drain`](crate::AudiusLogin::drain) waits for it: review
/// 9). The family is retired in this process at once (no refresh after this call), in the
/// shared state by the background task.
pub(crate) fn revoke_in_background(
    config: &Config,
    families: &Families,
    background: &Background,
    tokens: StoredTokens,
) {
    let newest = retire(families, &tokens);
    let oauth = config.background_oauth.clone();
    let cache = config.replay_cache.clone();
    drop(background.spawn(async move {
        let newest = retire_shared(cache.as_ref(), newest).await;
        send_revocation(&oauth, &newest).await;
    }));
}

/// Marks the family dead here and gives the newest tokens known for it (the ones to revoke:
/// the session may hold an older, already rotated refresh token). The newest must be read
/// before the family is marked dead, which forgets them.
fn retire(families: &Families, tokens: &StoredTokens) -> StoredTokens {
    let newest = families.newest(tokens);
    families.mark_dead(&tokens.family);
    newest
}

/// With a shared replay cache that coordinates refreshes: marks the family dead there, and
/// gives the newest of `newest` and the tokens recorded there (a failure is logged: the
/// revocation at Audius still ends the family, and other instances learn it from Audius'
/// refusal).
async fn retire_shared(cache: &dyn ReplayCache, newest: StoredTokens) -> StoredTokens {
    let Some(shared) = cache.refresh_coordination() else {
        return newest;
    };
    match shared.retire(&newest.family, REFRESH_TOKEN_LIFETIME).await {
        Ok(Some((generation, text))) if generation > newest.generation => {
            match shared_tokens(&newest, generation, &text) {
                Ok(recorded) => recorded,
                Err(_) => {
                    tracing::warn!(
                        "unreadable Audius tokens in the shared state; revoking the session's"
                    );
                    newest
                }
            }
        }
        Ok(_) => newest,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "could not mark the Audius tokens revoked in the shared state; other \
                 instances learn it from Audius"
            );
            newest
        }
    }
}

/// Refreshes `seen` (the session's tokens), at most once per session at a time, in this
/// process and, with a shared replay cache that coordinates refreshes, across instances: see
/// the [module docs](self).
///
/// Once this process' lock is taken, the refresh runs in a task of its own on the
/// `AudiusLogin`'s own runtime, which the request awaits: a request future that is dropped (the
/// client hung up, an app's deadline) or a stopped worker never cuts a refresh between Audius'
/// answer and its publication, nor strands the shared lock.
pub(crate) async fn refresh(
    config: &Config,
    families: &Families,
    background: &Background,
    seen: &StoredTokens,
) -> Result<StoredTokens, RefreshFailure> {
    let family = families.entry(&seen.family);
    // Every wait of this request, for this process' lock and then for another instance's
    // refresh, ends by one deadline: the requests queued here never wait one after another.
    let shared = config.replay_cache.refresh_coordination();
    let give_up_at = Instant::now() + wait_bound(config, shared);
    let Ok(one_at_a_time) =
        tokio::time::timeout_at(give_up_at.into(), family.refresh_lock.clone().lock_owned()).await
    else {
        let message = "another request's refresh of this session did not finish in time";
        return Err(match shared {
            Some(_) => shared_state_unavailable(message.into()),
            None => RefreshFailure::Failed(audius_login::Error::UpstreamUnavailable {
                message: message.into(),
                status: None,
            }),
        });
    };
    {
        let latest = family.latest();
        if latest.dead {
            return Err(RefreshFailure::Revoked(
                "the Audius tokens of this session were revoked".into(),
            ));
        }
        if let Some(t) = &latest.tokens
            && t.generation > seen.generation
        {
            // Another request of this session refreshed while this one waited.
            return Ok(t.clone());
        }
    }
    let job = Job {
        oauth: config.background_oauth.clone(),
        cache: config.replay_cache.clone(),
        clock: config.clock.clone(),
        bounds: shared.map(|shared| Bounds::of(config, shared)),
        family,
        seen: seen.clone(),
        give_up_at,
        background: background.tracker(),
    };
    let task = background.spawn(async move {
        let result = job.run().await;
        drop(one_at_a_time);
        result
    });
    let failed = |message: String| {
        Err(RefreshFailure::Failed(
            audius_login::Error::UpstreamUnavailable {
                message,
                status: None,
            },
        ))
    };
    match task {
        Some(task) => match task.await {
            Ok(result) => result,
            Err(e) => failed(format!("the token refresh task failed: {e}")),
        },
        None => failed("no runtime to refresh the token on".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use audius_login::ErrorKind;
    use audius_login::Scope;
    use audius_login::oauth::{AccessToken, OAuthClient, RefreshToken, TokenSet};
    use time::OffsetDateTime;

    use super::job::surely_not_rotated;
    use super::tokens::FamilyState;
    use super::*;

    fn tokens(generation: u64) -> StoredTokens {
        StoredTokens {
            family: "fam".into(),
            user_id: 1,
            access: AccessToken::new(format!("a{generation}")),
            refresh: RefreshToken::new(format!("r{generation}")),
            expires_at: 1_000,
            scope: Scope::Read,
            generation,
        }
    }

    #[test]
    fn stored_tokens_do_not_print_secrets() {
        let t = tokens(0);
        let shown = format!("{t:?}");
        assert!(shown.contains("AccessToken(..)"), "{shown}");
        assert!(!shown.contains("a0") && !shown.contains("r0"), "{shown}");
        let json = serde_json::to_string(&t).unwrap();
        let back: StoredTokens = serde_json::from_str(&json).unwrap();
        assert_eq!(back.refresh.secret(), "r0");
    }

    #[test]
    fn expiry_with_margin() {
        let t = tokens(0);
        let at = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert!(!t.expiring(at(939), Duration::from_secs(60)));
        assert!(t.expiring(at(940), Duration::from_secs(60)));
        assert!(t.expiring(at(1_000), Duration::ZERO));
        assert!(t.expiring(at(0), Duration::MAX));
    }

    #[test]
    fn families_know_the_newest_and_the_dead() {
        let families = Families::new(2);
        assert!(matches!(families.known(&tokens(0)), Known::Same));
        let state = families.entry("fam");
        state.latest().tokens = Some(tokens(3));
        assert!(matches!(families.known(&tokens(3)), Known::Same));
        match families.known(&tokens(1)) {
            Known::Newer(t) => assert_eq!(t.generation, 3),
            _ => panic!("newer expected"),
        }
        assert_eq!(families.newest(&tokens(0)).refresh.secret(), "r3");
        families.mark_dead("fam");
        assert!(matches!(families.known(&tokens(5)), Known::Dead));
        // Bounded: the least recently used goes, once nothing holds it.
        drop(state);
        families.entry("b");
        families.entry("c");
        assert_eq!(families.len(), 2);
        assert!(families.peek("fam").is_none());
        // A state still held (a refresh in flight, a late publication) is found again after
        // its eviction: a logout marks the very state the holder sees (review 6).
        let held = families.entry("held");
        families.entry("d");
        families.entry("e");
        families.mark_dead("held");
        assert!(held.latest().dead);
        assert!(matches!(families.peek("held"), Some(s) if std::sync::Arc::ptr_eq(&s, &held)));
    }

    #[test]
    fn retiring_a_stale_session_revokes_the_newest_tokens() {
        let families = Families::new(4);
        families.entry("fam").latest().tokens = Some(tokens(3));
        // The session still holds generation 1 (a stale cookie): generation 3 is revoked.
        let revoked = retire(&families, &tokens(1));
        assert_eq!(revoked.refresh.secret(), "r3");
        assert!(matches!(families.known(&tokens(3)), Known::Dead));
    }

    #[test]
    fn the_process_never_records_an_older_generation_over_a_newer() {
        let state = FamilyState::default();
        assert_eq!(state.record(tokens(2)).generation, 2);
        // A late holder's older tokens are given back to its request, not remembered.
        assert_eq!(state.record(tokens(1)).generation, 1);
        assert_eq!(state.latest().tokens.as_ref().unwrap().generation, 2);
        state.record(tokens(3));
        assert_eq!(state.latest().tokens.as_ref().unwrap().generation, 3);
        state.mark_dead();
        state.record(tokens(4));
        let latest = state.latest();
        assert!(latest.dead && latest.tokens.is_none(), "dead stays dead");
    }

    #[test]
    fn shared_tokens_of_another_session_are_never_adopted() {
        let seen = tokens(1);
        let text = |t: &StoredTokens| serde_json::to_string(t).unwrap();
        let newer = tokens(2);
        let adopted = shared_tokens(&seen, 2, &text(&newer)).ok().unwrap();
        assert_eq!(adopted.refresh.secret(), "r2");
        // Another family (a family id from another session), another user, a generation that
        // is not the one announced, or unreadable text: refused (503), never adopted.
        let mut other_family = tokens(2);
        other_family.family = "other".into();
        let mut other_user = tokens(2);
        other_user.user_id = 2;
        for bad in [
            text(&other_family),
            text(&other_user),
            text(&tokens(3)),
            "{".into(),
        ] {
            match shared_tokens(&seen, 2, &bad) {
                Err(RefreshFailure::Failed(e)) => {
                    assert_eq!(e.kind(), ErrorKind::StoreUnavailable, "{e}");
                }
                _ => panic!("adopted {bad}"),
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_known_not_to_have_rotated() {
        // A port nobody listens on: the request never leaves.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = audius_login::ApiClient::builder()
            .base_url(format!("http://127.0.0.1:{port}/").parse().unwrap())
            .max_attempts(1)
            .build()
            .unwrap();
        let e = OAuthClient::new(api)
            .refresh(&RefreshToken::new("r"))
            .await
            .err()
            .unwrap();
        assert!(surely_not_rotated(&e), "{e:?}");
        // An answer lost to a timeout, any 5xx (a gateway's after Audius rotated), anything
        // unexpected: maybe rotated.
        let failure = |message: &str, status| audius_login::Error::UpstreamUnavailable {
            message: message.into(),
            status,
        };
        for maybe in [
            failure("http://a/v1/oauth/token timed out", None),
            failure("a answered HTTP 500", Some(500)),
            failure("a answered HTTP 502", Some(502)),
            failure("a answered HTTP 503", Some(503)),
            failure("a answered HTTP 524", Some(524)),
        ] {
            assert!(!surely_not_rotated(&maybe), "{maybe:?}");
        }
        // "Slow down" comes before any processing: not rotated.
        assert!(surely_not_rotated(&failure(
            "a answered HTTP 429",
            Some(429)
        )));
    }

    #[test]
    fn random_family_ids() {
        let set = |a: &str| {
            TokenSet::from_json(&serde_json::json!({
                "access_token": a, "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": "r", "scope": "read"
            }))
            .unwrap()
        };
        let now = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let a = StoredTokens::new(set("a"), 1, now);
        let b = StoredTokens::new(set("b"), 1, now);
        assert_eq!(a.family.len(), 22);
        assert_ne!(a.family, b.family);
        assert_eq!(a.expires_at, 3600);
        let c = a.rotated(set("c"), now);
        assert_eq!((c.family.as_str(), c.generation), (a.family.as_str(), 1));
    }
}
