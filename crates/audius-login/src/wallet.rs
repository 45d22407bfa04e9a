//! Ethereum wallet addresses: the identity that signs Audius tokens.
//!
//! ```
//! use audius_login::Wallet;
//!
//! let w: Wallet = "0x5BB302630D6412513EDF124F0C3819D5C7FC228A".parse()?;
//! assert_eq!(w.to_string(), "0x5bb302630d6412513edf124f0c3819d5c7fc228a");
//! // Text of either case, with or without 0x, names the same wallet.
//! assert_eq!(w, "5bb302630d6412513edf124f0c3819d5c7fc228a".parse()?);
//! # Ok::<(), audius_login::wallet::WalletParseError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Keccak256};

/// A 20-byte Ethereum address. Shown as lower-case `0x` hex; equal when the bytes are equal, so
/// text of any case compares equal once parsed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wallet([u8; 20]);

/// Why a text is not a wallet address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid wallet address: expected 40 hex digits, with or without 0x")]
pub struct WalletParseError;

impl Wallet {
    /// A wallet from its 20 bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The 20 bytes of the address.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The address of an uncompressed secp256k1 public key (65 bytes starting `0x04`, or the 64
    /// bytes without it): the last 20 bytes of its keccak-256 hash.
    pub(crate) fn from_uncompressed_public_key(key: &[u8]) -> Option<Self> {
        let body = match key.len() {
            65 if key[0] == 0x04 => &key[1..],
            64 => key,
            _ => return None,
        };
        let hash = Keccak256::digest(body);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Some(Self(out))
    }
}

impl FromStr for Wallet {
    type Err = WalletParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if hex_part.len() != 40 {
            return Err(WalletParseError);
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| WalletParseError)?;
        Ok(Self(out))
    }
}

impl fmt::Display for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wallet({self})")
    }
}

impl Serialize for Wallet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Wallet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let a: Wallet = "0xABCDEFabcdef0123456789abcdefABCDEF012345"
            .parse()
            .unwrap();
        let b: Wallet = "abcdefabcdef0123456789abcdefabcdef012345".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "0xabcdefabcdef0123456789abcdefabcdef012345");
        for bad in [
            "",
            "0x",
            "0x123",
            "zz",
            &"a".repeat(41),
            &format!("0x{}", "g".repeat(40)),
        ] {
            assert!(bad.parse::<Wallet>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let a: Wallet = "0x5bb302630d6412513edf124f0c3819d5c7fc228a"
            .parse()
            .unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"0x5bb302630d6412513edf124f0c3819d5c7fc228a\"");
        assert_eq!(serde_json::from_str::<Wallet>(&json).unwrap(), a);
    }
}
