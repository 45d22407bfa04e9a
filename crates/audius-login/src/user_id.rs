//! Audius user ids: a number, written in tokens and URLs as a *hashid*.
//!
//! ```
//! use audius_login::UserId;
//!
//! let id: UserId = "eYorL".parse()?;
//! assert_eq!(id.get(), 44);
//! assert_eq!(id.hashid(), "eYorL");
//! assert_eq!(UserId::new(44), id);
//! // A decimal string is accepted too, as Audius accepts it.
//! assert_eq!("44".parse::<UserId>()?, id);
//! # Ok::<(), audius_login::user_id::UserIdError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use harsh::Harsh;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The hashids salt Audius uses for user ids.
pub const HASHID_SALT: &str = "azowernasdfoia";
/// The minimum length of an Audius hashid.
pub const HASHID_MIN_LENGTH: usize = 5;

/// Longest hashid text this crate will decode. Every `u64` below 3.9e18 encodes in fewer
/// characters; the cap keeps arbitrary input from overflowing the decoder's arithmetic.
const MAX_HASHID_LEN: usize = 12;
/// Longest decimal text accepted (`u64::MAX` has 20 digits).
const MAX_DECIMAL_LEN: usize = 20;

fn harsh() -> &'static Harsh {
    static HARSH: OnceLock<Harsh> = OnceLock::new();
    HARSH.get_or_init(|| {
        Harsh::builder()
            .salt(HASHID_SALT)
            .length(HASHID_MIN_LENGTH)
            .build()
            .expect("the Audius hashids settings are valid")
    })
}

/// Why a text is not a user id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Audius user id {input:?}: neither a hashid nor a decimal id")]
pub struct UserIdError {
    input: String,
}

impl UserIdError {
    /// The text that was refused (cut to 64 characters).
    pub fn input(&self) -> &str {
        &self.input
    }

    fn new(input: &str) -> Self {
        Self {
            input: input.chars().take(64).collect(),
        }
    }
}

/// An Audius user id.
///
/// Holds the numeric id and gives its hashid on demand. Parses from a hashid (`"eYorL"`), a
/// decimal string (`"44"`) and, when deserialised, a legacy JSON number (`44`). Serialises as
/// the hashid, the form the Audius API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(u64);

impl UserId {
    /// A user id from its number.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The numeric id.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The hashid of this id, as Audius writes it in tokens and API paths.
    pub fn hashid(self) -> String {
        harsh().encode(&[self.0])
    }

    /// Decodes a hashid only (no decimal fallback).
    pub fn from_hashid(s: &str) -> Result<Self, UserIdError> {
        if s.is_empty() || s.len() > MAX_HASHID_LEN || !s.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(UserIdError::new(s));
        }
        match harsh().decode(s) {
            Ok(values) if values.len() == 1 => Ok(Self(values[0])),
            _ => Err(UserIdError::new(s)),
        }
    }

    /// Parses a decimal id, or failing that a hashid, in the order Audius' `verify_token` tries
    /// them: a digit string that happens to be a valid hashid as well (`"1433591643"`) names the
    /// number it spells, as it does for Audius.
    pub fn parse(s: &str) -> Result<Self, UserIdError> {
        match Self::parse_decimal(s) {
            Some(id) => Ok(id),
            None => Self::from_hashid(s),
        }
    }

    /// The decimal reading of `s`, the one [`UserId::parse`] tries first.
    pub(crate) fn parse_decimal(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > MAX_DECIMAL_LEN || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok().map(Self)
    }

    /// Reads a user id from a JSON value: a hashid or decimal string, or a non-negative number.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, UserIdError> {
        match value {
            serde_json::Value::String(s) => Self::parse(s),
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(Self)
                .ok_or_else(|| UserIdError::new(&n.to_string())),
            other => Err(UserIdError::new(&other.to_string())),
        }
    }
}

impl From<u64> for UserId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl FromStr for UserId {
    type Err = UserIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Shows the hashid.
impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hashid())
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hashid())
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = UserId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an Audius user id (hashid, decimal string or number)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<UserId, E> {
                Ok(UserId(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<UserId, E> {
                u64::try_from(v)
                    .map(UserId)
                    .map_err(|_| E::custom("a user id cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UserId, E> {
                UserId::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        assert_eq!(UserId::new(44).hashid(), "eYorL");
        assert_eq!(UserId::parse("eYorL").unwrap().get(), 44);
    }

    #[test]
    fn decimal_and_number() {
        assert_eq!(UserId::parse("106").unwrap().get(), 106);
        let id: UserId = serde_json::from_str("107").unwrap();
        assert_eq!(id.get(), 107);
        let id: UserId = serde_json::from_str("\"eYorL\"").unwrap();
        assert_eq!(id.get(), 44);
        assert_eq!(
            serde_json::to_string(&UserId::new(44)).unwrap(),
            "\"eYorL\""
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "!!",
            "-1",
            "eYorL!",
            "1.5",
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(serde_json::from_str::<UserId>("-3").is_err());
        assert!(serde_json::from_str::<UserId>("true").is_err());
    }

    #[test]
    fn decimal_wins_over_an_all_digit_hashid() {
        // "1433591643" is also the hashid of 547222655265041; Audius reads it as a number.
        assert_eq!(
            UserId::from_hashid("1433591643").unwrap().get(),
            547_222_655_265_041
        );
        assert_eq!(UserId::parse("1433591643").unwrap().get(), 1_433_591_643);
    }

    #[test]
    fn round_trip() {
        for n in [0u64, 1, 44, 51_000, 2_147_483_647, 1 << 40] {
            let id = UserId::new(n);
            assert_eq!(UserId::parse(&id.hashid()).unwrap(), id);
        }
    }
}
