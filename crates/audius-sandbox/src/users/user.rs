//! A sandbox user, and the keys derived from a handle.

use std::fmt;

use audius_login::token::wallet_of_secret_key;
use audius_login::{ProfilePicture, UserId, Wallet};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};
use url::Url;

use crate::error::SandboxError;

/// The prefix of the key-derivation seed: `keccak256(KEY_SEED_PREFIX + handle)`.
const KEY_SEED_PREFIX: &str = "audius-sandbox/v1:";
/// The domain of the default email addresses: `<handle>@sandbox.audius.invalid`.
const EMAIL_DOMAIN: &str = "sandbox.audius.invalid";
/// Longest handle, in characters.
const MAX_HANDLE_LEN: usize = 30;
/// Longest display name, in characters.
const MAX_NAME_LEN: usize = 100;

/// Why a built-in user exists; file users pick one too (default [`Role::Listener`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// An ordinary user (`listener`).
    Listener,
    /// A verified artist (`artist`).
    Artist,
    /// A user without a profile picture (`no_picture`).
    NoPicture,
    /// A manager: may sign for an account that granted it (`manager`).
    Manager,
    /// An account managed by others (`managed`).
    Managed,
    /// A manager whose grant was revoked (`revoked_manager`).
    RevokedManager,
}

impl Role {
    /// The snake-case name, as in users files and `/_sandbox/users`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listener => "listener",
            Self::Artist => "artist",
            Self::NoPicture => "no_picture",
            Self::Manager => "manager",
            Self::Managed => "managed",
            Self::RevokedManager => "revoked_manager",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The secret key of a handle, derived from the documented seed (see [`SandboxUsers`](crate::SandboxUsers)).
pub fn derive_secret_key(handle: &str) -> [u8; 32] {
    let mut key: [u8; 32] = Keccak256::digest(format!("{KEY_SEED_PREFIX}{handle}")).into();
    while wallet_of_secret_key(&key).is_err() {
        key = Keccak256::digest(key).into();
    }
    key
}

/// The wallet of a handle's derived key.
pub fn derive_wallet(handle: &str) -> Wallet {
    wallet_of_secret_key(&derive_secret_key(handle))
        .expect("derive_secret_key only returns valid keys")
}

/// A sandbox user: an Audius account with its own secp256k1 key.
///
/// Built with [`SandboxUser::new`] (key derived from the handle) or
/// [`SandboxUser::with_secret_key`]; `wallet` is always the address of the key. `Debug` never
/// shows the key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SandboxUser {
    /// The user's id (`44`, shown as the hashid `eYorL`).
    pub id: UserId,
    /// The handle, unique in the sandbox (case-insensitively).
    pub handle: String,
    /// The display name.
    pub name: String,
    /// The email put in tokens.
    pub email: String,
    /// The verified-artist check mark (`is_verified` in the API; `verified` in tokens).
    pub verified: bool,
    /// Whether the user has a profile picture (served by the sandbox as SVG).
    pub has_picture: bool,
    /// The account was deactivated (`is_deactivated` in the API): `verify_token` refuses its
    /// tokens, and its grants as a manager.
    pub deactivated: bool,
    /// The user's wallet: the Ethereum address of its secret key.
    pub wallet: Wallet,
    /// Why the user exists.
    pub role: Role,
    secret_key: [u8; 32],
}

impl fmt::Debug for SandboxUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxUser")
            .field("id", &self.id.get())
            .field("hashid", &self.id.hashid())
            .field("handle", &self.handle)
            .field("name", &self.name)
            .field("email", &self.email)
            .field("verified", &self.verified)
            .field("has_picture", &self.has_picture)
            .field("deactivated", &self.deactivated)
            .field("wallet", &self.wallet)
            .field("role", &self.role)
            .field("secret_key", &"(hidden)")
            .finish()
    }
}

impl SandboxUser {
    /// A user with the derived key, the default email, not verified, with a picture.
    ///
    /// Fails when the handle is not 1 to 30 of `A-Z a-z 0-9 _`, the name is blank or longer
    /// than 100 characters, or the id is 0.
    pub fn new(
        id: impl Into<UserId>,
        handle: impl Into<String>,
        name: impl Into<String>,
        role: Role,
    ) -> Result<Self, SandboxError> {
        let handle = handle.into();
        check_handle(&handle)?;
        let key = derive_secret_key(&handle);
        Self::build(id.into(), handle, name.into(), role, key)
    }

    /// A user with an explicit secret key (for example one shared with a wallet in another
    /// tool). Fails as [`SandboxUser::new`] does, and when the key is not a valid secp256k1 key.
    pub fn with_secret_key(
        id: impl Into<UserId>,
        handle: impl Into<String>,
        name: impl Into<String>,
        role: Role,
        secret_key: [u8; 32],
    ) -> Result<Self, SandboxError> {
        let handle = handle.into();
        check_handle(&handle)?;
        Self::build(id.into(), handle, name.into(), role, secret_key)
    }

    fn build(
        id: UserId,
        handle: String,
        name: String,
        role: Role,
        secret_key: [u8; 32],
    ) -> Result<Self, SandboxError> {
        if id.get() == 0 {
            return Err(SandboxError::Directory(format!(
                "user {handle}: the id must be at least 1"
            )));
        }
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_LEN {
            return Err(SandboxError::Directory(format!(
                "user {handle}: the name must be 1 to {MAX_NAME_LEN} characters, not blank"
            )));
        }
        let wallet = wallet_of_secret_key(&secret_key).map_err(|_| {
            SandboxError::Directory(format!(
                "user {handle}: the secret key is not a valid secp256k1 key"
            ))
        })?;
        Ok(Self {
            id,
            email: format!("{}@{EMAIL_DOMAIN}", handle.to_ascii_lowercase()),
            handle,
            name,
            verified: false,
            has_picture: true,
            deactivated: false,
            wallet,
            role,
            secret_key,
        })
    }

    /// Sets the email. Default: `<handle>@sandbox.audius.invalid`.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets the verified-artist check mark. Default: `false`.
    pub fn verified(mut self, verified: bool) -> Self {
        self.verified = verified;
        self
    }

    /// Sets whether the user has a profile picture. Default: `true`.
    pub fn has_picture(mut self, has_picture: bool) -> Self {
        self.has_picture = has_picture;
        self
    }

    /// Sets whether the account is deactivated. Default: `false`.
    pub fn deactivated(mut self, deactivated: bool) -> Self {
        self.deactivated = deactivated;
        self
    }

    /// The user's secret key: signs the user's tokens. Public knowledge for built-in users.
    pub fn secret_key(&self) -> &[u8; 32] {
        &self.secret_key
    }

    /// The user's hashid (`eYorL` for 44).
    pub fn hashid(&self) -> String {
        self.id.hashid()
    }

    /// The user's picture URLs on a sandbox host (`{base}content/<handle>/150x150.svg`, ...), or
    /// `None` for a user without a picture. `mirrors` is left empty; the sandbox's answers list
    /// its other hosts there.
    pub(crate) fn picture_urls(&self, base: &Url) -> Option<ProfilePicture> {
        if !self.has_picture {
            return None;
        }
        let size = |s: &str| {
            base.join(&format!("content/{}/{s}.svg", self.handle))
                .map(String::from)
                .ok()
        };
        let mut picture = ProfilePicture::default();
        picture.small = size("150x150");
        picture.medium = size("480x480");
        picture.large = size("1000x1000");
        Some(picture)
    }

    /// A deterministic, Solana-looking address for `spl_wallet` (base58 of 32 bytes derived
    /// from the handle). Not a key anyone holds.
    pub(crate) fn spl_wallet(&self) -> String {
        let bytes: [u8; 32] =
            Keccak256::digest(format!("{KEY_SEED_PREFIX}spl:{}", self.handle)).into();
        base58(&bytes)
    }
}

fn check_handle(handle: &str) -> Result<(), SandboxError> {
    let ok = !handle.is_empty()
        && handle.len() <= MAX_HANDLE_LEN
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Directory(format!(
            "the handle {handle:?} must be 1 to {MAX_HANDLE_LEN} characters of A-Z a-z 0-9 _"
        )))
    }
}

/// Bitcoin-alphabet base58, as Solana addresses are written.
pub(crate) fn base58(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    // Base-58 digits, least significant first.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &byte in &bytes[zeros..] {
        let mut carry = u32::from(byte);
        for digit in digits.iter_mut() {
            carry += u32::from(*digit) << 8;
            *digit = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::users::SandboxUsers;

    #[test]
    fn key_derivation_is_the_documented_one() {
        let expected: [u8; 32] = Keccak256::digest(b"audius-sandbox/v1:listener").into();
        assert_eq!(derive_secret_key("listener"), expected);
        assert_eq!(
            SandboxUsers::builtin()
                .get("listener")
                .unwrap()
                .secret_key(),
            &expected
        );
    }

    #[test]
    fn base58_known_values() {
        assert_eq!(base58(b""), "");
        assert_eq!(base58(&[0, 0, 1]), "112");
        assert_eq!(base58(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(base58(&[0xff; 32]).len(), 44);
    }
}
