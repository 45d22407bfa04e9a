//! Minting tokens as the sandbox's login page signs them, with overrides for tests.

use std::fmt;

use audius_login::Token;
use serde_json::{Map, Value};

use crate::error::{SandboxConfigError, SandboxError};
use crate::users::SandboxUser;

/// Changes to a minted token. Every setter is optional; the default mints exactly what the
/// login page would sign for the user now.
///
/// ```
/// # use audius_sandbox::TokenOverrides;
/// # use serde_json::json;
/// # fn demo(other: &audius_sandbox::SandboxUser) {
/// let overrides = TokenOverrides::default()
///     .iat(1_700_000_000)                   // instead of the sandbox clock's now
///     .claim("verified", json!(true))       // set (or add) a claim, in place
///     .remove_claim("email")                // drop a claim
///     .signed_by(other);                    // sign with another user's key
/// # }
/// ```
#[derive(Clone, Default)]
pub struct TokenOverrides {
    iat: Option<i64>,
    edits: Vec<Edit>,
    key: Option<[u8; 32]>,
    header: Option<Vec<u8>>,
}

#[derive(Clone)]
enum Edit {
    Set(String, Value),
    Remove(String),
}

impl fmt::Debug for TokenOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let edits: Vec<String> = self
            .edits
            .iter()
            .map(|e| match e {
                Edit::Set(k, v) => format!("set {k} = {v}"),
                Edit::Remove(k) => format!("remove {k}"),
            })
            .collect();
        f.debug_struct("TokenOverrides")
            .field("iat", &self.iat)
            .field("edits", &edits)
            .field("key", &self.key.map(|_| "(hidden)"))
            .field(
                "header",
                &self.header.as_deref().map(String::from_utf8_lossy),
            )
            .finish()
    }
}

impl TokenOverrides {
    /// Sets `iat` (Unix seconds). Default: the sandbox clock's now.
    pub fn iat(mut self, iat: i64) -> Self {
        self.iat = Some(iat);
        self
    }

    /// Sets a claim: replaces it where it stands, or appends it. Applied in call order with
    /// [`remove_claim`](Self::remove_claim), after `iat`. Default: no change.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.edits.push(Edit::Set(name.into(), value));
        self
    }

    /// Removes a claim. Default: no change.
    pub fn remove_claim(mut self, name: impl Into<String>) -> Self {
        self.edits.push(Edit::Remove(name.into()));
        self
    }

    /// Signs with another user's key (for example a manager, or the wrong user). Default: the
    /// token's user signs.
    pub fn signed_by(mut self, signer: &SandboxUser) -> Self {
        self.key = Some(*signer.secret_key());
        self
    }

    /// Signs with a raw secp256k1 secret key (a wallet the sandbox does not know). Default: the
    /// token's user signs. An invalid key makes minting fail.
    pub fn signing_key(mut self, key: [u8; 32]) -> Self {
        self.key = Some(key);
        self
    }

    /// Uses this header (serialised compactly, signed as is) instead of
    /// `{"typ":"JWT","alg":"keccak256"}`, for example `{"alg":"ES256K"}` as Audius' own API
    /// tests sign. Default: the login page's header.
    pub fn header(mut self, header: &Value) -> Self {
        self.header = Some(serde_json::to_vec(header).unwrap_or_default());
        self
    }

    pub(crate) fn apply(&self, mut claims: Map<String, Value>) -> Map<String, Value> {
        if let Some(iat) = self.iat {
            claims.insert("iat".into(), Value::from(iat));
        }
        for edit in &self.edits {
            match edit {
                Edit::Set(k, v) => {
                    claims.insert(k.clone(), v.clone());
                }
                Edit::Remove(k) => {
                    claims.shift_remove(k);
                }
            }
        }
        claims
    }

    pub(crate) fn sign(
        &self,
        user: &SandboxUser,
        claims: &Map<String, Value>,
    ) -> Result<String, SandboxError> {
        let key = self.key.unwrap_or(*user.secret_key());
        let token = match &self.header {
            Some(header) => {
                let payload = serde_json::to_vec(claims).map_err(|e| {
                    SandboxConfigError::new("claim", format!("the claims do not serialise: {e}"))
                })?;
                Token::sign_raw(header, &payload, &key)?
            }
            None => Token::sign(claims, &key)?,
        };
        Ok(token)
    }
}
