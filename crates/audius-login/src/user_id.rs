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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdError {
    input: String,
    out_of_range: Option<u64>,
}

impl fmt::Display for UserIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid Audius user id {:?}: ", self.input)?;
        match self.out_of_range {
            Some(n) => write!(
                f,
                "{n} is not below 2^31 (Audius user ids are 32-bit signed integers)"
            ),
            None => f.write_str("neither a hashid nor a decimal id"),
        }
    }
}

impl std::error::Error for UserIdError {}

impl UserIdError {
    /// The text that was refused (cut to 64 characters).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The number the text spells when it reads as one (decimal, else hashid) but is not below
    /// 2^31 ([`UserId::MAX`] is the largest id): Audius' ids are 32-bit signed integers
    /// (`int4`), and its Go server compares user ids as `int32`, so such a number would name
    /// another user there (`44 + k × 2^32` is user 44). `None` when the text is not a number
    /// at all.
    pub fn out_of_range(&self) -> Option<u64> {
        self.out_of_range
    }

    fn new(input: &str) -> Self {
        Self {
            input: input.chars().take(64).collect(),
            out_of_range: None,
        }
    }

    fn too_large(input: &str, value: u64) -> Self {
        Self {
            out_of_range: Some(value),
            ..Self::new(input)
        }
    }
}

/// An Audius user id.
///
/// Holds the numeric id and gives its hashid on demand. Parses from a hashid (`"eYorL"`), a
/// decimal string (`"44"`) and, when deserialised, a legacy JSON number (`44`). Serialises as
/// the hashid, the form the Audius API uses.
///
/// Parsing refuses ids above [`UserId::MAX`] (2^31 - 1): Audius' ids are 32-bit signed
/// integers, and its `verify_token` compares them as `int32`, so a token of user 44 for user
/// id `44 + 2^32` is accepted there as user 44's; taken at its word here it would be another
/// identity ([`UserIdError::out_of_range`]).
///
/// ```
/// use audius_login::UserId;
///
/// assert!(UserId::parse("2147483647").is_ok());
/// let refused = UserId::parse("4294967340").unwrap_err();
/// assert_eq!(refused.out_of_range(), Some(4_294_967_340));
/// assert!(UserId::parse(&UserId::new(4_294_967_340).hashid()).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(u64);

impl UserId {
    /// The largest user id parsing accepts: 2^31 - 1 (`i32::MAX`, Audius' `int4` ids).
    pub const MAX: u64 = i32::MAX as u64;

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

    /// `value` as an id, unless it is above [`UserId::MAX`].
    fn in_range(input: &str, value: u64) -> Result<Self, UserIdError> {
        if value > Self::MAX {
            return Err(UserIdError::too_large(input, value));
        }
        Ok(Self(value))
    }

    /// Decodes a hashid only (no decimal fallback). Refuses an id above [`UserId::MAX`].
    pub fn from_hashid(s: &str) -> Result<Self, UserIdError> {
        if s.is_empty() || s.len() > MAX_HASHID_LEN || !s.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(UserIdError::new(s));
        }
        match harsh().decode(s) {
            Ok(values) if values.len() == 1 => Self::in_range(s, values[0]),
            _ => Err(UserIdError::new(s)),
        }
    }

    /// Parses a decimal id, or failing that a hashid, in the order Audius' `verify_token` tries
    /// them: a digit string that happens to be a valid hashid as well (`"1433591643"`) names the
    /// number it spells, as it does for Audius. Refuses an id above [`UserId::MAX`] (a decimal
    /// text too large is refused, never read as a hashid instead).
    pub fn parse(s: &str) -> Result<Self, UserIdError> {
        match Self::parse_decimal(s) {
            Some(result) => result,
            None => Self::from_hashid(s),
        }
    }

    /// The decimal reading of `s`, the one [`UserId::parse`] tries first: `None` when `s` is
    /// not a decimal number (then it may be a hashid), an error when it is one above
    /// [`UserId::MAX`].
    pub(crate) fn parse_decimal(s: &str) -> Option<Result<Self, UserIdError>> {
        if s.is_empty() || s.len() > MAX_DECIMAL_LEN || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok().map(|n| Self::in_range(s, n))
    }

    /// Reads a user id from a JSON value: a hashid or decimal string, or a non-negative number
    /// (at most [`UserId::MAX`]).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, UserIdError> {
        match value {
            serde_json::Value::String(s) => Self::parse(s),
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(v) => Self::in_range(&n.to_string(), v),
                None => Err(UserIdError::new(&n.to_string())),
            },
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
                UserId::in_range(&v.to_string(), v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<UserId, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a user id cannot be negative"))?;
                self.visit_u64(v)
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
        // "1433591643" is also the hashid of 547222655265041 (out of range: refused as a
        // hashid); Audius reads it as a number, and so does `parse`.
        assert_eq!(
            UserId::from_hashid("1433591643")
                .unwrap_err()
                .out_of_range(),
            Some(547_222_655_265_041)
        );
        assert_eq!(UserId::parse("1433591643").unwrap().get(), 1_433_591_643);
    }

    #[test]
    fn round_trip() {
        for n in [0u64, 1, 44, 51_000, 2_147_483_647] {
            let id = UserId::new(n);
            assert_eq!(UserId::parse(&id.hashid()).unwrap(), id);
            assert_eq!(UserId::parse(&n.to_string()).unwrap(), id);
        }
    }

    /// Audius' ids are `int4`, and its Go `verify_token` compares `int32(walletUserId)` with
    /// `int32(jwtUserId)`: `44 + k × 2^32` is user 44 there. Every spelling of an id of 2^31
    /// or more is refused, typed, and a decimal too large is never read as a hashid instead.
    #[test]
    fn ids_from_2_pow_31_are_refused_in_every_spelling() {
        for n in [1u64 << 31, (1 << 32) + 44, 1 << 40, u64::MAX] {
            let id = UserId::new(n);
            for text in [n.to_string(), id.hashid(), format!("000{n}")] {
                let e = UserId::parse(&text).unwrap_err();
                let digits = text.bytes().all(|b| b.is_ascii_digit());
                if text.len()
                    > if digits {
                        MAX_DECIMAL_LEN
                    } else {
                        MAX_HASHID_LEN
                    }
                {
                    // Longer than any id this crate reads: refused unread.
                    continue;
                }
                assert_eq!(e.out_of_range(), Some(n), "{text}");
                assert!(e.to_string().contains("2^31"), "{e}");
            }
            assert_eq!(
                UserId::from_json(&serde_json::json!(n))
                    .unwrap_err()
                    .out_of_range(),
                Some(n)
            );
            assert!(serde_json::from_str::<UserId>(&n.to_string()).is_err());
            assert!(serde_json::from_str::<UserId>(&format!("\"{n}\"")).is_err());
        }
        assert_eq!(UserId::parse("2147483647").unwrap().get(), UserId::MAX);
        // Not a number: not "out of range".
        assert_eq!(UserId::parse("!!").unwrap_err().out_of_range(), None);
    }
}
