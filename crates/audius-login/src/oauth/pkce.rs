//! PKCE (RFC 7636): the code verifier kept in the session, and its S256 challenge.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ConfigError, Error, Result};

/// Whether a text is made only of RFC 7636's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
fn unreserved(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 challenge of a verifier: `base64url(SHA-256(verifier))`, no padding (43 characters).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A PKCE code verifier (RFC 7636): a secret kept in the user's session between the
/// authorization request and the code exchange.
///
/// Generated ones are 32 random bytes, base64url (43 characters). It prints as
/// `PkceVerifier(..)` and has no `PartialEq`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PkceVerifier(String);

impl PkceVerifier {
    /// Length of a generated verifier, in characters.
    pub const GENERATED_LEN: usize = 43;
    /// Shortest verifier RFC 7636 allows.
    pub const MIN_LEN: usize = 43;
    /// Longest verifier RFC 7636 allows.
    pub const MAX_LEN: usize = 128;

    /// A fresh verifier from the operating system's random source: 32 bytes, base64url.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A verifier given by the caller: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&value.len()) || !unreserved(&value) {
            return Err(ConfigError::new(
                "pkce_verifier",
                "a PKCE verifier is 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
            )
            .into());
        }
        Ok(Self(value))
    }

    /// The verifier's text, sent once, at the code exchange.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Its S256 challenge, sent in the authorization request.
    pub fn challenge(&self) -> String {
        pkce_challenge(&self.0)
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier(..)")
    }
}

impl TryFrom<String> for PkceVerifier {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<PkceVerifier> for String {
    fn from(verifier: PkceVerifier) -> Self {
        verifier.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(pkce_challenge(RFC_VERIFIER), RFC_CHALLENGE);
        let v = PkceVerifier::new(RFC_VERIFIER).unwrap();
        assert_eq!(v.challenge(), RFC_CHALLENGE);
        assert_eq!(v.secret(), RFC_VERIFIER);
    }

    #[test]
    fn generated_verifiers() {
        let a = PkceVerifier::generate();
        let b = PkceVerifier::generate();
        assert_eq!(a.secret().len(), PkceVerifier::GENERATED_LEN);
        assert_ne!(a.secret(), b.secret());
        assert!(
            a.secret()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(a.challenge().len(), 43);
        assert_eq!(format!("{a:?}"), "PkceVerifier(..)");
        // Round trip through storage; invalid stored values are refused.
        let text = serde_json::to_string(&a).unwrap();
        let back: PkceVerifier = serde_json::from_str(&text).unwrap();
        assert_eq!(back.secret(), a.secret());
        assert!(serde_json::from_str::<PkceVerifier>("\"short\"").is_err());
        assert!(PkceVerifier::new("a".repeat(42)).is_err());
        assert!(PkceVerifier::new("a".repeat(129)).is_err());
        assert!(PkceVerifier::new(format!("{}+", "a".repeat(42))).is_err());
        assert!(PkceVerifier::new("a~.-_".repeat(9)).is_ok());
    }
}
