//! The replay cache on a real `redis-server`: keyed by the token's identity (two spellings of
//! one token are one key), `EXISTS` for the read before any network call, and the eviction
//! policy read at connect (a warning, or a refusal when asked, for a Redis that may evict the
//! cache's keys or whose `CONFIG` is disabled); and the coordination of the code flow's refresh
//! it carries (`RefreshCoordination`): the lock's owner, its time to live and its
//! compare-and-delete release, tokens fenced by generation, the dead mark, an outage.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use audius_login::replay::{
    BeginRefresh, LockOwner, Published, RedisReplayCache, RefreshCoordination as _,
    ReplayCache as _, ReplayKey,
};
use audius_login::token::{decode_segment, encode_segment};
use audius_login::{ErrorKind, PreparedToken, Token};
use audius_login_e2e::redis::RedisServer;
use serde_json::json;

fn token() -> String {
    let claims = json!({"userId": "eYorL", "iat": 1_700_000_000});
    Token::sign(claims.as_object().unwrap(), &[0x11; 32]).unwrap()
}

/// The same token with its signature's hex in upper case and without `0x`.
fn respelled(token: &str) -> String {
    let (signed, segment) = token.rsplit_once('.').unwrap();
    let text = String::from_utf8(decode_segment(segment).unwrap()).unwrap();
    let upper = text[2..].to_ascii_uppercase();
    format!("{signed}.{}", encode_segment(upper.as_bytes()))
}

#[actix_web::test]
async fn two_spellings_of_a_token_are_one_entry_in_redis() {
    let redis = RedisServer::start().await;
    let cache = RedisReplayCache::builder(redis.url())
        .key_prefix("replay-test:")
        .connect()
        .await
        .unwrap();
    let token = token();
    let other = respelled(&token);
    assert_ne!(token, other);
    let key = *PreparedToken::parse(&token, 16 * 1024)
        .unwrap()
        .replay_key();
    let same = *PreparedToken::parse(&other, 16 * 1024)
        .unwrap()
        .replay_key();
    assert_eq!(key, same);
    assert_eq!(cache.key_for(&key), format!("replay-test:{}", key.to_hex()));
    let ttl = Duration::from_secs(60);
    assert!(!cache.seen(&key).await.unwrap());
    assert!(cache.first_use(&key, ttl).await.unwrap());
    assert!(cache.seen(&same).await.unwrap());
    assert!(!cache.first_use(&same, ttl).await.unwrap(), "a replay");
    // A consumed state lives in its own key space.
    let state = ReplayKey::for_state("some state");
    assert!(!cache.seen(&state).await.unwrap());
    assert!(cache.first_use(&state, ttl).await.unwrap());
}

#[actix_web::test]
async fn the_eviction_policy_is_read_at_connect() {
    // Redis' defaults: no memory limit, noeviction.
    let safe = RedisServer::start().await;
    let cache = RedisReplayCache::builder(safe.url())
        .require_noeviction(true)
        .connect()
        .await
        .unwrap();
    let policy = cache.eviction_policy().await.unwrap();
    assert_eq!(policy.policy.as_deref(), Some("noeviction"));
    assert_eq!(policy.may_evict(), Some(false));

    // A memory limit with a policy that evicts keys with a time to live (all of the cache's),
    // or any key: a warning by default, a refusal when asked.
    for evicting in ["volatile-lru", "volatile-ttl", "allkeys-lru"] {
        let redis =
            RedisServer::start_with(&["--maxmemory", "64mb", "--maxmemory-policy", evicting]).await;
        let cache = RedisReplayCache::connect(redis.url())
            .await
            .expect("a warning, not a refusal");
        let policy = cache.eviction_policy().await.unwrap();
        assert_eq!(policy.policy.as_deref(), Some(evicting));
        assert_eq!(policy.maxmemory, Some(64 * 1024 * 1024));
        assert_eq!(policy.may_evict(), Some(true), "{evicting}");
        let refused = RedisReplayCache::builder(redis.url())
            .require_noeviction(true)
            .connect()
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Config, "{evicting}");
        assert!(refused.to_string().contains(evicting), "{refused}");
    }

    // `CONFIG` disabled, as managed Redis services do: the cache works, the policy is unknown.
    let managed = RedisServer::start_with(&["--rename-command", "CONFIG", ""]).await;
    let cache = RedisReplayCache::connect(managed.url())
        .await
        .expect("tolerated");
    let policy = cache.eviction_policy().await.unwrap();
    assert_eq!(policy.may_evict(), None);
    assert!(policy.unreadable.is_some(), "{policy:?}");
    let key = ReplayKey::for_state("s");
    assert!(cache.first_use(&key, Duration::from_secs(5)).await.unwrap());
    let refused = RedisReplayCache::builder(managed.url())
        .require_noeviction(true)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Config);
}

// ---- The code flow's refresh coordination (`RefreshCoordination`) on a real Redis. ----

async fn coordination(redis: &RedisServer) -> RedisReplayCache {
    RedisReplayCache::builder(redis.url())
        .key_prefix("coordination-test:")
        .connect()
        .await
        .unwrap()
}

const LONG: Duration = Duration::from_secs(60);

#[actix_web::test]
async fn the_refresh_lock_belongs_to_its_owner_and_is_released_by_it_only() {
    let redis = RedisServer::start().await;
    let shared = coordination(&redis).await;
    let (one, two) = (LockOwner::random(), LockOwner::random());
    assert_ne!(one, two);
    assert_eq!(one.as_str().len(), 32);
    assert!(
        shared.refresh_coordination().is_some(),
        "the Redis cache offers it"
    );

    assert_eq!(
        shared.begin("fam", 0, &one, LONG).await.unwrap(),
        BeginRefresh::Locked
    );
    // The owner asking again (a command sent twice) still holds it; anyone else waits.
    assert_eq!(
        shared.begin("fam", 0, &one, LONG).await.unwrap(),
        BeginRefresh::Locked
    );
    assert_eq!(
        shared.begin("fam", 0, &two, LONG).await.unwrap(),
        BeginRefresh::Busy
    );
    // Another family has its own lock.
    assert_eq!(
        shared.begin("other", 0, &two, LONG).await.unwrap(),
        BeginRefresh::Locked
    );
    // Compare-and-delete: the wrong owner releases nothing.
    assert!(!shared.release("fam", &two).await.unwrap());
    assert_eq!(
        shared.begin("fam", 0, &two, LONG).await.unwrap(),
        BeginRefresh::Busy
    );
    assert!(shared.release("fam", &one).await.unwrap());
    assert!(!shared.release("fam", &one).await.unwrap(), "once");
    assert_eq!(
        shared.begin("fam", 0, &two, LONG).await.unwrap(),
        BeginRefresh::Locked
    );
    // The lock is a key under the cache's prefix, with the time to live asked for.
    let [lock, ..] = shared.refresh_keys_for("fam").unwrap();
    assert!(lock.starts_with("coordination-test:refresh:{"), "{lock}");
    let ttl = redis.integer(&["PTTL", &lock]).await;
    assert!(ttl > 50_000 && ttl <= 60_000, "PTTL {ttl}");
}

#[actix_web::test]
async fn an_expired_lock_is_taken_over_and_its_first_owner_cannot_release_it() {
    let redis = RedisServer::start().await;
    let shared = coordination(&redis).await;
    let (first, second) = (LockOwner::random(), LockOwner::random());
    let short = Duration::from_millis(200);
    assert_eq!(
        shared.begin("fam", 0, &first, short).await.unwrap(),
        BeginRefresh::Locked
    );
    assert_eq!(
        shared.begin("fam", 0, &second, LONG).await.unwrap(),
        BeginRefresh::Busy
    );
    // A holder that crashed blocks the family for its time to live, no longer.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        shared.begin("fam", 0, &second, LONG).await.unwrap(),
        BeginRefresh::Locked
    );
    // The first holder, late, cannot release the second's lock.
    assert!(!shared.release("fam", &first).await.unwrap());
    assert_eq!(
        shared.begin("fam", 0, &first, LONG).await.unwrap(),
        BeginRefresh::Busy
    );
}

#[actix_web::test]
async fn published_tokens_are_fenced_by_generation_and_expire() {
    let redis = RedisServer::start().await;
    let shared = coordination(&redis).await;
    let owner = LockOwner::random();
    assert_eq!(
        shared.publish("fam", 2, "tokens-2", LONG).await.unwrap(),
        Published::Stored
    );
    // The same call sent twice is still stored; other tokens of that generation, or an older
    // generation (a holder whose lock expired), never replace the newer.
    assert_eq!(
        shared.publish("fam", 2, "tokens-2", LONG).await.unwrap(),
        Published::Stored
    );
    assert_eq!(
        shared.publish("fam", 2, "other-2", LONG).await.unwrap(),
        Published::Superseded { generation: 2 }
    );
    assert_eq!(
        shared.publish("fam", 1, "tokens-1", LONG).await.unwrap(),
        Published::Superseded { generation: 2 }
    );
    // A caller with an older generation gets the newest instead of the lock; one with the
    // newest takes the lock.
    assert_eq!(
        shared.begin("fam", 1, &owner, LONG).await.unwrap(),
        BeginRefresh::Newer {
            generation: 2,
            tokens: "tokens-2".into()
        }
    );
    assert_eq!(
        shared.begin("fam", 2, &owner, LONG).await.unwrap(),
        BeginRefresh::Locked
    );
    assert_eq!(
        shared.publish("fam", 3, "tokens-3", LONG).await.unwrap(),
        Published::Stored
    );
    let shown = format!("{:?}", shared.begin("fam", 0, &owner, LONG).await.unwrap());
    assert!(
        !shown.contains("tokens-3"),
        "tokens are not printed: {shown}"
    );

    // Tokens live for the time given, no longer.
    assert_eq!(
        shared
            .publish("brief", 1, "t", Duration::from_millis(200))
            .await
            .unwrap(),
        Published::Stored
    );
    let [_, tokens, _] = shared.refresh_keys_for("brief").unwrap();
    assert!(redis.integer(&["PTTL", &tokens]).await <= 200);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(redis.integer(&["EXISTS", &tokens]).await, 0);
    assert_eq!(
        shared.begin("brief", 0, &owner, LONG).await.unwrap(),
        BeginRefresh::Locked
    );
}

#[actix_web::test]
async fn a_retired_family_is_dead_for_every_caller() {
    let redis = RedisServer::start().await;
    let shared = coordination(&redis).await;
    let owner = LockOwner::random();
    assert_eq!(shared.retire("unknown", LONG).await.unwrap(), None);
    assert_eq!(
        shared.publish("fam", 4, "tokens-4", LONG).await.unwrap(),
        Published::Stored
    );
    // Retiring hands back the newest tokens (to revoke) and forgets them.
    assert_eq!(
        shared.retire("fam", LONG).await.unwrap(),
        Some((4, "tokens-4".to_owned()))
    );
    let [_, tokens, dead] = shared.refresh_keys_for("fam").unwrap();
    assert_eq!(redis.integer(&["EXISTS", &tokens]).await, 0);
    let ttl = redis.integer(&["PTTL", &dead]).await;
    assert!(ttl > 50_000 && ttl <= 60_000, "PTTL {ttl}");
    // Dead: no lock, no newer tokens, and a late holder cannot bring the family back.
    assert_eq!(
        shared.begin("fam", 0, &owner, LONG).await.unwrap(),
        BeginRefresh::Dead
    );
    assert_eq!(
        shared.publish("fam", 5, "tokens-5", LONG).await.unwrap(),
        Published::Dead
    );
    assert_eq!(shared.retire("fam", LONG).await.unwrap(), None);
}

#[actix_web::test]
async fn the_refresh_coordination_fails_fast_while_redis_is_down_and_resumes() {
    let mut redis = RedisServer::start().await;
    let shared = RedisReplayCache::builder(redis.url())
        .key_prefix("coordination-test:")
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let owner = LockOwner::random();
    redis.stop().await;
    let started = std::time::Instant::now();
    let down = shared.begin("fam", 0, &owner, LONG).await.unwrap_err();
    assert_eq!(down.kind(), ErrorKind::StoreUnavailable, "{down}");
    assert!(shared.publish("fam", 1, "t", LONG).await.is_err());
    assert!(shared.release("fam", &owner).await.is_err());
    assert!(shared.retire("fam", LONG).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "each call within its timeout"
    );
    redis.restart().await;
    assert_eq!(
        shared.begin("fam", 0, &owner, LONG).await.unwrap(),
        BeginRefresh::Locked
    );
    // A family id is bounded.
    let long = "f".repeat(257);
    assert_eq!(
        shared
            .begin(&long, 0, &owner, LONG)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::TooLarge
    );
}

/// The in-flight marker (review 4): a holder that took the lock with `begin_marked` keeps
/// every other caller from presenting the same generation after its lock expired: `Busy`
/// while the lock lives, `InDoubt` within the holder's window, and past it the family is dead
/// (for every caller). The holder itself may begin again; publishing the next generation clears
/// the marker (the others adopt), and so does `abandon` (the token was not sent); `release`
/// keeps it; an unmarked `begin` leaves none.
#[actix_web::test]
async fn an_in_flight_marker_keeps_others_from_presenting_the_token_again() {
    let redis = RedisServer::start().await;
    let cache = coordination(&redis).await;
    let (holder, other) = (LockOwner::random(), LockOwner::random());
    let short = Duration::from_millis(150);
    let window = Duration::from_millis(1_200);
    let month = Duration::from_secs(30 * 24 * 3600);

    // Published: the marker goes, the others adopt.
    assert_eq!(
        cache
            .begin_marked("pub", 0, &holder, short, window)
            .await
            .unwrap(),
        BeginRefresh::Locked
    );
    assert_eq!(
        cache.begin("pub", 0, &other, short).await.unwrap(),
        BeginRefresh::Busy
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        cache.begin("pub", 0, &other, short).await.unwrap(),
        BeginRefresh::InDoubt,
        "the lock expired, the token may have reached Audius"
    );
    assert_eq!(
        cache
            .begin_marked("pub", 0, &other, short, window)
            .await
            .unwrap(),
        BeginRefresh::InDoubt
    );
    assert_eq!(
        cache.publish("pub", 1, "g1", month).await.unwrap(),
        Published::Stored
    );
    assert!(matches!(
        cache.begin("pub", 0, &other, short).await.unwrap(),
        BeginRefresh::Newer { generation: 1, .. }
    ));
    assert_eq!(
        cache
            .begin_marked("pub", 1, &other, short, window)
            .await
            .unwrap(),
        BeginRefresh::Locked,
        "the marker of generation 0 is gone with its publication"
    );

    // Abandoned (the token was not sent): the next caller may refresh at once.
    assert_eq!(
        cache
            .begin_marked("abandoned", 0, &holder, short, window)
            .await
            .unwrap(),
        BeginRefresh::Locked
    );
    assert!(cache.abandon("abandoned", &holder).await.unwrap());
    assert_eq!(
        cache
            .begin_marked("abandoned", 0, &other, short, window)
            .await
            .unwrap(),
        BeginRefresh::Locked
    );

    // Released (the token may have been used): in doubt; the holder may begin again; past the
    // window the family is dead, for everyone.
    assert_eq!(
        cache
            .begin_marked("lost", 0, &holder, short, window)
            .await
            .unwrap(),
        BeginRefresh::Locked
    );
    assert!(cache.release("lost", &holder).await.unwrap());
    assert_eq!(
        cache.begin("lost", 0, &other, short).await.unwrap(),
        BeginRefresh::InDoubt
    );
    assert_eq!(
        cache
            .begin_marked("lost", 0, &holder, short, window)
            .await
            .unwrap(),
        BeginRefresh::Locked,
        "the marker's own holder"
    );
    assert!(cache.release("lost", &holder).await.unwrap());
    tokio::time::sleep(window).await;
    assert_eq!(
        cache.begin("lost", 0, &other, short).await.unwrap(),
        BeginRefresh::Dead
    );
    assert_eq!(
        cache.begin("lost", 0, &holder, short).await.unwrap(),
        BeginRefresh::Dead
    );
    assert_eq!(
        cache.publish("lost", 1, "late", month).await.unwrap(),
        Published::Dead
    );

    // An unmarked `begin` leaves no marker: after its lock expires, another caller refreshes.
    assert_eq!(
        cache.begin("plain", 0, &holder, short).await.unwrap(),
        BeginRefresh::Locked
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        cache.begin("plain", 0, &other, short).await.unwrap(),
        BeginRefresh::Locked
    );

    // A retirement clears the marker too (and the family is dead anyway).
    assert_eq!(
        cache
            .begin_marked("retired", 0, &holder, short, window)
            .await
            .unwrap(),
        BeginRefresh::Locked
    );
    cache.retire("retired", month).await.unwrap();
    let [lock, ..] = cache.refresh_keys_for("retired").unwrap();
    let marker = lock.replace(":lock", ":inflight");
    assert_eq!(redis.integer(&["EXISTS", &marker]).await, 0);
}
