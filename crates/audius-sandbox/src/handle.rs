//! A running sandbox: [`SandboxHandle`].

use std::sync::Arc;

use audius_login::clock::Clock;
use audius_login::{Environment, UserId};
use serde_json::{Map, Value};
use tokio_util::task::TaskTracker;
use url::Url;

use crate::error::SandboxError;
use crate::faults::{Fault, FaultRoute};
use crate::log::LoggedRequest;
use crate::mint::TokenOverrides;
use crate::oauth::{CodeStore, TokenStore};
use crate::state::Shared;
use crate::users::{SandboxUser, SandboxUsers};

/// A running sandbox. Dropping it stops every host (the tasks end shortly after);
/// [`stop`](Self::stop) stops them and waits until they have.
pub struct SandboxHandle {
    shared: Arc<Shared>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("hosts", &self.shared.hosts)
            .field("users", &self.shared.directory.len())
            .finish()
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl SandboxHandle {
    /// The handle of the hosts `tracker` runs over `shared`.
    pub(crate) fn new(shared: Arc<Shared>, tracker: TaskTracker) -> Self {
        Self { shared, tracker }
    }

    /// Host 0's base URL (`http://127.0.0.1:<port>/`): it serves the login page and the API.
    pub fn base_url(&self) -> Url {
        self.shared.base().clone()
    }

    /// Every host's base URL, host 0 first.
    pub fn host_urls(&self) -> Vec<Url> {
        self.shared.hosts.clone()
    }

    /// The login page: `{base}oauth/auth`.
    pub fn login_page_url(&self) -> Url {
        let mut url = self.base_url();
        url.set_path("/oauth/auth");
        url
    }

    /// The environment to give the core crate: `Custom { login_page, api: base }`.
    pub fn environment(&self) -> Environment {
        Environment::Custom {
            login_page: self.login_page_url(),
            api: self.base_url(),
        }
    }

    /// The users, in order.
    pub fn users(&self) -> &[SandboxUser] {
        self.shared.directory.users()
    }

    /// The user with this handle (case-insensitively).
    pub fn user(&self, handle: &str) -> Option<&SandboxUser> {
        self.shared.directory.get(handle)
    }

    /// The whole directory: users, grants, apps.
    pub fn directory(&self) -> &SandboxUsers {
        &self.shared.directory
    }

    /// The claims the login page would sign for `user` now (no `apiKey`: `null`).
    pub fn claims_for(&self, user: &SandboxUser) -> Map<String, Value> {
        self.shared.claims(user, None)
    }

    /// A token for `user`, as the login page signs it now, changed by `overrides`.
    ///
    /// # Panics
    ///
    /// Only when [`TokenOverrides::signing_key`] was given bytes that are not a valid
    /// secp256k1 secret key (zero, or not below the curve order); see
    /// [`try_mint_token`](Self::try_mint_token).
    pub fn mint_token(&self, user: &SandboxUser, overrides: TokenOverrides) -> String {
        match self.try_mint_token(user, overrides) {
            Ok(token) => token,
            Err(e) => panic!("mint_token: {e}"),
        }
    }

    /// As [`mint_token`](Self::mint_token), with an error instead of a panic.
    pub fn try_mint_token(
        &self,
        user: &SandboxUser,
        overrides: TokenOverrides,
    ) -> Result<String, SandboxError> {
        self.shared.mint(user, None, &overrides)
    }

    /// Sets (or replaces) the fault of `route` on `host` (see [`Fault`]).
    pub fn set_fault(&self, host: usize, route: &str, fault: Fault) -> Result<(), SandboxError> {
        self.shared.set_fault(host, route, fault)
    }

    /// Removes the fault of `route` on `host`; `false` when there was none.
    pub fn remove_fault(&self, host: usize, route: &str) -> Result<bool, SandboxError> {
        let route = FaultRoute::parse(route)?;
        Ok(self.shared.remove_fault(host, &route))
    }

    /// The faults of `host`: route and fault.
    pub fn faults(&self, host: usize) -> Vec<(String, Fault)> {
        self.shared
            .faults_of(host)
            .into_iter()
            .map(|(r, f)| (r.as_str().to_owned(), f))
            .collect()
    }

    /// Removes every fault of every host.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// The request log, oldest first (requests to `/_sandbox/*` are not logged).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.requests()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// The PKCE codes issued by the login page.
    pub fn codes(&self) -> &CodeStore {
        &self.shared.codes
    }

    /// The access and refresh tokens issued by `POST /v1/oauth/token`.
    pub fn tokens(&self) -> &TokenStore {
        &self.shared.tokens
    }

    /// The tracks `user` favorited through the write endpoint (numeric track ids), newest
    /// first.
    pub fn favorites(&self, user: UserId) -> Vec<u64> {
        self.shared
            .favorites_of(user)
            .into_iter()
            .map(|(track, _)| track)
            .collect()
    }

    /// The sandbox's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Stops every host and waits until their listeners are closed and their connections ended.
    pub async fn stop(self) {
        self.shared.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<SandboxHandle>();
        send_sync::<crate::SandboxBuilder>();
    }
}
