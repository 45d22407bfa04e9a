//! [`LocalVerifier`]: verification here, against the user's wallet and managers (spec
//! section 4.2).

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result, TokenPart};
use crate::token::UserIdForm;
use crate::{ApiClient, UserId, Wallet};

use super::profile::profile;
use super::{
    ApiUser, ManagerGrant, PreparedToken, UserDirectory, VerifiedProfile, Verifier, VerifyOptions,
    observed, parse_logged,
};

/// Verifies locally: recovers the signer and compares it with the user's wallet (user records
/// cached), accepting an approved, non-revoked manager (spec 4.2); refuses a deactivated account
/// or manager.
///
/// With a warm cache (the user's record read within the directory's
/// [`refetch_interval`](UserDirectory::refetch_interval), 30 s by default), verifying needs no
/// network at all. Its refusals carry no Audius status
/// ([`Error::WalletMismatch`] with `status: None`): for a signer that is not the user, Audius
/// answers 404 when no account owns the signer and 403 when another account does, and telling
/// the two apart would take a lookup by wallet that the spec advises against (it also matches
/// connected wallets). The local verifier does not guess.
#[derive(Debug)]
pub struct LocalVerifier {
    directory: Arc<UserDirectory>,
    options: VerifyOptions,
    accept_numeric_user_id: bool,
}

impl LocalVerifier {
    /// A verifier on this client, with a default [`UserDirectory`] and default options.
    pub fn new(client: ApiClient) -> Self {
        Self::with_directory(Arc::new(UserDirectory::new(client)))
    }

    /// A verifier sharing a user directory (and its cache).
    pub fn with_directory(directory: Arc<UserDirectory>) -> Self {
        Self {
            directory,
            options: VerifyOptions::default(),
            accept_numeric_user_id: false,
        }
    }

    /// Sets the options. Default: [`VerifyOptions::default`].
    pub fn options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// Accept tokens whose `userId` is a JSON number (tokens before mid-2022), which the
    /// current Audius API refuses. Default: `false`, agreeing with the API.
    pub fn accept_numeric_user_id(mut self, accept: bool) -> Self {
        self.accept_numeric_user_id = accept;
        self
    }

    /// The user directory.
    pub fn directory(&self) -> &Arc<UserDirectory> {
        &self.directory
    }

    async fn check_signer(&self, id: UserId, signer: Wallet) -> Result<Arc<ApiUser>> {
        let mismatch = |message: String| Error::WalletMismatch {
            status: None,
            message,
        };
        let record = self.directory.record_for_login(id, signer).await?;
        let Some(user) = record.user else {
            return Err(mismatch(format!(
                "The JWT signature is invalid - Audius has no user {id}"
            )));
        };
        if user.is_deactivated {
            return Err(mismatch(format!(
                "The JWT signature is invalid - the account of user {id} is deactivated"
            )));
        }
        if user.wallet == Some(signer) {
            return Ok(user);
        }
        let managers = match record.stale_because {
            None => self.directory.managers(id).await?,
            // The record could not be read again: only a cached manager list may vouch for this
            // signer; without one, say that Audius could not be asked (no request: the read
            // just failed, and forged tokens must not turn a failing Audius into a stream of
            // requests).
            Some(error) => self.directory.cached_managers(id).ok_or(error)?,
        };
        // Grants of this signer for this user (a grant naming another user vouches for nobody
        // here, whatever list it came in).
        let grants = || {
            managers.iter().filter(|grant| {
                grant.grantee == signer && grant.user_id.is_none_or(|user| user == id)
            })
        };
        if grants().any(ManagerGrant::is_active) {
            tracing::debug!(%signer, user_id = id.get(), "token signed by an approved manager");
            return Ok(user);
        }
        if grants().any(|g| g.is_approved && !g.is_revoked && g.manager_deactivated) {
            return Err(mismatch(
                "The JWT signature is invalid - the signing manager's account is deactivated"
                    .into(),
            ));
        }
        Err(mismatch(
            "The JWT signature is invalid - the signing wallet is neither the user's nor an \
             approved manager's"
                .into(),
        ))
    }
}

#[async_trait]
impl Verifier for LocalVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        let prepared = parse_logged("local", token, self.options.max_token_bytes)?;
        self.verify_prepared(&prepared).await
    }

    async fn verify_prepared(&self, prepared: &PreparedToken) -> Result<VerifiedProfile> {
        observed("local", prepared, async {
            let claims = prepared.claims();
            if claims.user_id_form == UserIdForm::LegacyNumber && !self.accept_numeric_user_id {
                return Err(Error::malformed(
                    TokenPart::UserId,
                    "JWT payload userId must be a string",
                ));
            }
            // Cheap checks first: no request for a stale or foreign token.
            self.options.check_claims(claims)?;
            let signer = prepared.signer();
            let user = self.check_signer(claims.user_id, signer).await?;
            Ok(profile(
                claims.clone(),
                Some(&user),
                self.options.profile_source,
                Some(signer),
            ))
        })
        .await
    }
}
