//! The state every host of one sandbox shares, and what each handler is given.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use audius_login::clock::Clock;
use audius_login::{ProfilePicture, UserId};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::error::SandboxError;
use crate::faults::{Fault, FaultRoute, FaultTable};
use crate::log::{LoggedRequest, RequestLog};
use crate::mint::TokenOverrides;
use crate::oauth::{CodeStore, TokenStore};
use crate::users::{SandboxUser, SandboxUsers};

/// Most favorites the sandbox keeps (all users together); beyond, the oldest are forgotten.
pub(crate) const MAX_FAVORITES: usize = 100_000;

/// State shared by every host of one sandbox.
pub(crate) struct Shared {
    pub(crate) directory: SandboxUsers,
    pub(crate) clock: Arc<dyn Clock>,
    /// Each host's base URL, with a trailing `/`.
    pub(crate) hosts: Vec<Url>,
    pub(crate) faults: Vec<Mutex<FaultTable>>,
    pub(crate) log: Mutex<RequestLog>,
    pub(crate) codes: CodeStore,
    pub(crate) tokens: TokenStore,
    /// Favorited tracks: user, track id, when; oldest first.
    pub(crate) favorites: Mutex<VecDeque<(UserId, u64, time::OffsetDateTime)>>,
    pub(crate) shutdown: CancellationToken,
}

/// What every handler gets: the shared state and which host it runs on.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) host: usize,
}

/// Locks a mutex, going on after a panic elsewhere (the state stays consistent: every change
/// under these locks is a single step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Host 0's base URL: the login page, the pictures.
    pub(crate) fn base(&self) -> &Url {
        &self.hosts[0]
    }

    /// A host's URL as written in lists (`http://127.0.0.1:1234`, no trailing `/`).
    pub(crate) fn host_text(url: &Url) -> String {
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// The other hosts, as picture mirrors.
    pub(crate) fn mirrors(&self) -> Vec<String> {
        self.hosts[1..].iter().map(Self::host_text).collect()
    }

    /// The user's picture as tokens carry it: the three sizes and `mirrors`, or `{}`.
    pub(crate) fn token_picture(&self, user: &SandboxUser) -> Value {
        self.api_picture(user)
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// The user's picture as the API gives it, or `None` (JSON `null`).
    pub(crate) fn api_picture(&self, user: &SandboxUser) -> Option<Value> {
        let p: ProfilePicture = user.picture_urls(self.base())?;
        Some(json!({
            "150x150": p.small,
            "480x480": p.medium,
            "1000x1000": p.large,
            "mirrors": self.mirrors(),
        }))
    }

    /// The user object of spec section 7, with a few realistic extras.
    pub(crate) fn user_json(&self, user: &SandboxUser) -> Value {
        let wallet = user.wallet.to_string();
        let id = user.id.get();
        let is_artist = user.verified;
        json!({
            "id": user.hashid(),
            "handle": user.handle,
            "name": user.name,
            "is_verified": user.verified,
            "profile_picture": self.api_picture(user),
            "wallet": wallet,
            "erc_wallet": wallet,
            "spl_wallet": user.spl_wallet(),
            "bio": format!("Sandbox user ({}).", user.role),
            "location": "Audius sandbox",
            "cover_photo": null,
            "album_count": 0,
            "playlist_count": if is_artist { 2 } else { 0 },
            "track_count": if is_artist { 12 } else { 0 },
            "follower_count": if is_artist { 12_000 + id % 1000 } else { (id * 37) % 500 },
            "followee_count": (id * 13) % 200,
            "repost_count": (id * 7) % 50,
            "supporter_count": 0,
            "supporting_count": 0,
            "does_follow_current_user": false,
            "is_deactivated": user.deactivated,
            "is_available": true,
            "total_audio_balance": 0,
        })
    }

    /// The claims the login page signs for a user, in the current key order.
    pub(crate) fn claims(&self, user: &SandboxUser, api_key: Option<&str>) -> Map<String, Value> {
        let hashid = user.hashid();
        let mut claims = Map::new();
        claims.insert("userId".into(), Value::String(hashid.clone()));
        claims.insert("email".into(), Value::String(user.email.clone()));
        claims.insert("name".into(), Value::String(user.name.clone()));
        claims.insert("handle".into(), Value::String(user.handle.clone()));
        claims.insert("verified".into(), Value::Bool(user.verified));
        claims.insert("profilePicture".into(), self.token_picture(user));
        claims.insert(
            "apiKey".into(),
            api_key.map_or(Value::Null, |k| Value::String(k.to_owned())),
        );
        claims.insert("sub".into(), Value::String(hashid));
        claims.insert("iat".into(), Value::from(self.clock.now().unix_timestamp()));
        claims
    }

    /// A token for `user` as the login page signs it now (with `api_key` as its `apiKey`),
    /// changed by `overrides`.
    pub(crate) fn mint(
        &self,
        user: &SandboxUser,
        api_key: Option<&str>,
        overrides: &TokenOverrides,
    ) -> Result<String, SandboxError> {
        let claims = overrides.apply(self.claims(user, api_key));
        overrides.sign(user, &claims)
    }

    /// Sets (or replaces) the fault of `route` on `host`, after checking all three.
    pub(crate) fn set_fault(
        &self,
        host: usize,
        route: &str,
        fault: Fault,
    ) -> Result<(), SandboxError> {
        let table = self.faults.get(host).ok_or_else(|| {
            SandboxError::Fault(format!(
                "host {host} does not exist (the sandbox has {})",
                self.hosts.len()
            ))
        })?;
        let route = FaultRoute::parse(route)?;
        fault.validate()?;
        lock(table).set(route, fault);
        Ok(())
    }

    /// The faults of `host` (none for a host that does not exist).
    pub(crate) fn faults_of(&self, host: usize) -> Vec<(FaultRoute, Fault)> {
        self.faults
            .get(host)
            .map(|t| lock(t).list())
            .unwrap_or_default()
    }

    /// Removes the fault of `route` on `host`; `false` when there was none.
    pub(crate) fn remove_fault(&self, host: usize, route: &FaultRoute) -> bool {
        self.faults.get(host).is_some_and(|t| lock(t).remove(route))
    }

    /// Removes every fault of `host`.
    pub(crate) fn clear_faults_of(&self, host: usize) {
        if let Some(t) = self.faults.get(host) {
            lock(t).clear();
        }
    }

    /// Removes every fault of every host.
    pub(crate) fn clear_faults(&self) {
        for t in &self.faults {
            lock(t).clear();
        }
    }

    /// The fault that applies to a request for `path` on `host`, counted against its `times`.
    pub(crate) fn take_fault(&self, host: usize, path: &str) -> Option<Fault> {
        self.faults.get(host).and_then(|t| lock(t).take(path))
    }

    /// Adds (or, with `add` false, removes) a favorite.
    pub(crate) fn set_favorite(
        &self,
        user: UserId,
        track: u64,
        add: bool,
        at: time::OffsetDateTime,
    ) {
        let mut favorites = lock(&self.favorites);
        favorites.retain(|(u, t, _)| !(*u == user && *t == track));
        if add {
            if favorites.len() >= MAX_FAVORITES {
                favorites.pop_front();
            }
            favorites.push_back((user, track, at));
        }
    }

    /// A user's favorited tracks and when, newest first.
    pub(crate) fn favorites_of(&self, user: UserId) -> Vec<(u64, time::OffsetDateTime)> {
        lock(&self.favorites)
            .iter()
            .rev()
            .filter(|(u, _, _)| *u == user)
            .map(|(_, t, at)| (*t, *at))
            .collect()
    }

    /// Logs a request.
    pub(crate) fn log_request(&self, entry: LoggedRequest) {
        lock(&self.log).push(entry);
    }

    /// The request log, oldest first.
    pub(crate) fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.log).all()
    }

    /// Empties the request log.
    pub(crate) fn clear_requests(&self) {
        lock(&self.log).clear();
    }
}
