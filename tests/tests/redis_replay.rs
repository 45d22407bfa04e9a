//! The replay cache on a real `redis-server`: keyed by the token's identity (two spellings of
//! one token are one key), `EXISTS` for the read before any network call, and the eviction
//! policy read at connect (a warning, or a refusal when asked, for a Redis that may evict the
//! cache's keys or whose `CONFIG` is disabled).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use audius_login::replay::{RedisReplayCache, ReplayCache as _, ReplayKey};
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
