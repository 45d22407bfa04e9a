//! Replay protection: a token is accepted once, and a login state is consumed once.
//!
//! Audius tokens carry no `jti` and never expire, so an app that wants a token used once must
//! remember the tokens it accepted, for as long as it would accept them (the maximum age).
//! [`ReplayCache`] is that memory; [`MemoryReplayCache`] keeps it in the process (bounded, and
//! never forgetting a live entry), and with the `redis` feature `RedisReplayCache` shares it
//! between instances, and with it the coordination of the code flow's token refresh
//! ([`RefreshCoordination`]).
//!
//! # What is remembered: [`ReplayKey`]
//!
//! Not the token's text: the parser accepts many texts for one signed token (upper- or
//! lower-case hex, `0x`, `0X` or no prefix, base64url with or without padding, `v` as 0/1 or
//! 27/28, and the high-S twin of the signature), exactly as Audius does. Keyed on the text, each
//! of those spellings would be "new" and sign the victim in again. A [`ReplayKey`] is the
//! token's *identity* instead:
//!
//! ```text
//! SHA-256( "audius-login/replay/token/v1" 0x00 ‖ header.payload ‖ signer )
//! ```
//!
//! where `header.payload` is the signing input exactly as signed (the first two segments and
//! the dot between them) and `signer` the 20 bytes of the wallet recovered from the signature.
//! Every spelling of the signature recovers the same signer over the same signing input, so
//! they all share one key; changing a single byte of the signed text changes the key (and the
//! recovered signer). A consumed login state has keys of its own (tag
//! `"audius-login/replay/state/v1"`), which can never equal a token's.
//!
//! ```
//! use std::time::Duration;
//! use audius_login::Token;
//! use audius_login::replay::{MemoryReplayCache, ReplayCache, ReplayKey};
//!
//! # tokio_test_block_on(async {
//! # let text = include_str!("../../tests/fixtures/basic.token").trim();
//! let (token, signer) = Token::parse_and_recover(text, 16 * 1024)?;
//! let key = ReplayKey::for_token(token.signing_input(), &signer);
//! let cache = MemoryReplayCache::new(10_000);
//! let ttl = Duration::from_secs(360);
//! assert!(!cache.seen(&key).await?);
//! assert!(cache.first_use(&key, ttl).await?);
//! assert!(!cache.first_use(&key, ttl).await?); // a replay
//! assert!(cache.seen(&key).await?);
//! # Ok::<(), audius_login::Error>(()) }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod coordination;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::Wallet;
use crate::error::Result;

pub use coordination::{BeginRefresh, LockOwner, Published, RefreshCoordination};
pub use memory::MemoryReplayCache;
#[cfg(feature = "redis")]
pub use redis_store::{EvictionPolicy, Persistence, RedisReplayCache, RedisReplayCacheBuilder};

/// The domain-separation tag of a token's [`ReplayKey`] (NUL-terminated).
const TOKEN_KEY_TAG: &[u8] = b"audius-login/replay/token/v1\0";
/// The domain-separation tag of a consumed login state's [`ReplayKey`] (NUL-terminated).
const STATE_KEY_TAG: &[u8] = b"audius-login/replay/state/v1\0";

/// What a replay cache records: the identity of a token, or of a consumed login state, as 32
/// bytes of SHA-256 (see the [module docs](self)). Never the token or the state itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// The key of a token: SHA-256 of the tag `"audius-login/replay/token/v1"` and a NUL, the signing input exactly as signed
    /// (`header.payload`, see [`Token::signing_input`](crate::Token::signing_input)) and the
    /// recovered signer's 20 bytes. The signer is last and of fixed length, so the encoding is
    /// unambiguous.
    pub fn for_token(signing_input: &str, signer: &Wallet) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(TOKEN_KEY_TAG);
        hasher.update(signing_input.as_bytes());
        hasher.update(signer.as_bytes());
        Self(hasher.finalize().into())
    }

    /// The key of a consumed login state: SHA-256 of the tag `"audius-login/replay/state/v1"`
    /// and a NUL, then the state's text.
    pub fn for_state(state: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(STATE_KEY_TAG);
        hasher.update(state.as_bytes());
        Self(hasher.finalize().into())
    }

    /// A key from its 32 bytes (for stores that keep the bytes).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits of the key.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({})", self.to_hex())
    }
}

/// Remembers accepted tokens and consumed states, by their [`ReplayKey`].
#[async_trait]
pub trait ReplayCache: Send + Sync + fmt::Debug {
    /// Records `key` for `ttl`, atomically. `Ok(true)` the first time, `Ok(false)` when it was
    /// already recorded and has not expired (a replay). Errors when the store cannot be reached
    /// ([`Error::StoreUnavailable`](crate::Error::StoreUnavailable)) or cannot take one more live entry
    /// ([`Error::ReplayCacheFull`](crate::Error::ReplayCacheFull)): a refusal, never a silent acceptance.
    async fn first_use(&self, key: &ReplayKey, ttl: Duration) -> Result<bool>;

    /// Whether a live entry exists for `key`: a read that records nothing, used to refuse a
    /// replay before any network call. [`first_use`](Self::first_use) stays the authority
    /// (two concurrent uses may both read `false`; only one records).
    async fn seen(&self, key: &ReplayKey) -> Result<bool>;

    /// The shared state that coordinates the code flow's token refresh between app instances
    /// ([`RefreshCoordination`]), when this cache is shared between them and offers it.
    /// Default: `None` (a cache of one process: the refresh is coordinated within the process
    /// only). `RedisReplayCache` (feature `redis`) offers it, on its connection and key prefix.
    ///
    /// A cache that wraps another should pass this call on, or the coordination is lost.
    fn refresh_coordination(&self) -> Option<&dyn RefreshCoordination> {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_and_state_keys_live_apart() {
        let signer = Wallet::from_bytes([7; 20]);
        let token = ReplayKey::for_token("a.b", &signer);
        assert_ne!(token, ReplayKey::for_token("a.c", &signer));
        assert_ne!(
            token,
            ReplayKey::for_token("a.b", &Wallet::from_bytes([8; 20]))
        );
        // The same text under the other tag gives another key.
        assert_ne!(ReplayKey::for_state("a.b"), token);
        assert_eq!(ReplayKey::for_state("s"), ReplayKey::for_state("s"));
        assert_eq!(token.to_hex().len(), 64);
        assert!(format!("{token:?}").starts_with("ReplayKey("));
        // The definition, written out.
        let mut h = Sha256::new();
        h.update(b"audius-login/replay/token/v1\0a.b");
        h.update([7u8; 20]);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(token.as_bytes(), &want);
    }
}
