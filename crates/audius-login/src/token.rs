//! The Log In with Audius token: three base64url segments, an Ethereum (EIP-191) signature.
//!
//! Ordinary JWT libraries reject these tokens (`"alg":"keccak256"` is not a JOSE algorithm, and
//! the third segment is base64url of the *text* `0x<r‖s‖v hex>`). This module parses them, keeps
//! every claim, and recovers the signing wallet.
//!
//! ```
//! use audius_login::Token;
//!
//! # let token = include_str!("../tests/fixtures/basic.token").trim();
//! let token = Token::parse(token)?;
//! assert_eq!(token.claims().user_id.get(), 44);
//! assert_eq!(token.claims().handle.as_deref(), Some("alice"));
//! let signer = token.recover_signer()?;
//! assert_eq!(signer.to_string(), "0x5bb302630d6412513edf124f0c3819d5c7fc228a");
//! # Ok::<(), audius_login::Error>(())
//! ```
//!
//! Parsing checks structure only; [`Token::recover_signer`] checks the signature; neither says
//! whether the signer *owns* the account: that is the job of a
//! [`Verifier`](crate::verify::Verifier).

use std::fmt;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha3::{Digest, Keccak256};

use crate::error::{Error, Result, TokenPart};
use crate::{UserId, Wallet};

/// Default limit on the length of a token given to the library: 16 KiB.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// base64url, padding optional on input.
const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as base64url without padding, the encoding of every token segment.
pub fn encode_segment(bytes: &[u8]) -> String {
    general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a base64url segment, with or without padding.
pub fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    B64_LENIENT.decode(segment).ok()
}

/// The EIP-191 (`personal_sign`) hash of a message:
/// `keccak256("\x19Ethereum Signed Message:\n" + len(message) + message)`.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    // The decimal length, written without allocating.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut len = message.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (len % 10) as u8;
        len /= 10;
        if len == 0 {
            break;
        }
    }
    hasher.update(&digits[at..]);
    hasher.update(message);
    hasher.finalize().into()
}

/// A token's signature: 65 bytes `r ‖ s ‖ v`, as written in the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 65]);

impl Signature {
    /// A signature from its 65 bytes `r ‖ s ‖ v` (`v` 27/28 or 0/1).
    pub const fn from_bytes(bytes: [u8; 65]) -> Self {
        Self(bytes)
    }

    /// The 65 bytes as written in the token.
    pub const fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// Decodes the third segment of a token: base64url (padding optional) of the text `0x` +
    /// hex(r ‖ s ‖ v); the hex may lack `0x` and be of either case.
    ///
    /// Errors are [`Error::Malformed`] with [`TokenPart::Signature`], worded as Audius words them.
    pub fn from_segment(segment: &str) -> Result<Self> {
        let text = decode_segment(segment).ok_or_else(|| {
            Error::malformed(
                TokenPart::Signature,
                "The JWT signature could not be decoded",
            )
        })?;
        let hex_text = text
            .strip_prefix(b"0x")
            .or_else(|| text.strip_prefix(b"0X"))
            .unwrap_or(&text);
        let mut out = [0u8; 65];
        if hex_text.len() != 130 || hex::decode_to_slice(hex_text, &mut out).is_err() {
            return Err(Error::malformed(
                TokenPart::Signature,
                "The JWT signature was incorrectly signed",
            ));
        }
        Ok(Self(out))
    }

    /// The third segment of a token for this signature: base64url of `0x` + lower-case hex.
    pub fn to_segment(&self) -> String {
        encode_segment(format!("0x{}", hex::encode(self.0)).as_bytes())
    }

    /// The recovery id, normalised to 0 or 1 (`v` 27/28 and 0/1 are accepted), or `None` when
    /// `v` is anything else.
    pub fn recovery_id(&self) -> Option<u8> {
        let v = self.0[64];
        let v = if v >= 27 { v - 27 } else { v };
        (v <= 1).then_some(v)
    }

    /// Recovers the wallet that signed `message` with `personal_sign` (EIP-191).
    ///
    /// High-S signatures recover the same key as their low-S twins and are accepted, as Audius
    /// accepts them. Fails with [`Error::BadSignature`] when no key can be recovered.
    pub fn recover(&self, message: &[u8]) -> Result<Wallet> {
        self.recover_prehashed(&eip191_hash(message))
    }

    /// Recovers the wallet from an already computed EIP-191 hash.
    pub fn recover_prehashed(&self, hash: &[u8; 32]) -> Result<Wallet> {
        const NOT_RECOVERED: &str = "The JWT signature is invalid - wallet could not be recovered";
        let recid = self
            .recovery_id()
            .ok_or_else(|| Error::bad_signature(NOT_RECOVERED))?;
        let recid = RecoveryId::from_u8_masked(recid);
        let sig = RecoverableSignature::from_compact(&self.0[..64], recid)
            .map_err(|_| Error::bad_signature(NOT_RECOVERED))?;
        let key = sig
            .recover_ecdsa(secp256k1::Message::from_digest(*hash))
            .map_err(|_| Error::bad_signature(NOT_RECOVERED))?;
        Wallet::from_uncompressed_public_key(&key.serialize_uncompressed())
            .ok_or_else(|| Error::bad_signature(NOT_RECOVERED))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(0x{})", hex::encode(self.0))
    }
}

/// A user's profile picture: up to three sizes, and the content hosts that mirror them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProfilePicture {
    /// The 150x150 image.
    #[serde(rename = "150x150", default, skip_serializing_if = "Option::is_none")]
    pub small: Option<String>,
    /// The 480x480 image.
    #[serde(rename = "480x480", default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// The 1000x1000 image.
    #[serde(rename = "1000x1000", default, skip_serializing_if = "Option::is_none")]
    pub large: Option<String>,
    /// Other content hosts serving the same images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
}

impl ProfilePicture {
    /// Reads a picture from a claim or API field. `{}`, `null`, an absent field, an object with
    /// no image URL, or a value of another type all mean "no picture": `None`.
    pub fn from_json(value: Option<&Value>) -> Option<Self> {
        let obj = value?.as_object()?;
        let url = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_owned);
        let picture = Self {
            small: url("150x150"),
            medium: url("480x480"),
            large: url("1000x1000"),
            mirrors: obj
                .get("mirrors")
                .and_then(Value::as_array)
                .map(|hosts| {
                    hosts
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        };
        (picture.small.is_some() || picture.medium.is_some() || picture.large.is_some())
            .then_some(picture)
    }

    /// The URL of the smallest size that is at least `min_pixels` wide, else the largest there is.
    pub fn best(&self, min_pixels: u32) -> Option<&str> {
        let sizes = [(150, &self.small), (480, &self.medium), (1000, &self.large)];
        sizes
            .iter()
            .find(|(px, url)| *px >= min_pixels && url.is_some())
            .or_else(|| sizes.iter().rev().find(|(_, url)| url.is_some()))
            .and_then(|(_, url)| url.as_deref())
    }
}

/// How the `userId` claim was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UserIdForm {
    /// A hashid string (current tokens).
    Hashid,
    /// A decimal string.
    Decimal,
    /// A JSON number (tokens before mid-2022). The current Audius API refuses these.
    LegacyNumber,
}

/// The claims of a token (its payload), typed, with every claim kept.
///
/// Only `userId` is required; every other claim is optional, as Audius treats them. A documented
/// claim of an unexpected type reads as absent here and stays in [`Claims::as_map`]. Serialising
/// gives the payload exactly as signed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Claims {
    /// The user's id (`userId`).
    pub user_id: UserId,
    /// How `userId` was written.
    pub user_id_form: UserIdForm,
    /// `email`: the only place an app can get the user's email. It is the user's own word, signed
    /// with the user's own key: not a verified address.
    pub email: Option<String>,
    /// `name`: the display name.
    pub name: Option<String>,
    /// `handle`.
    pub handle: Option<String>,
    /// `verified`: the verified-artist check mark, *as claimed by the token*. The token is signed
    /// by the user's own key, so verifiers take this from Audius' user record instead.
    pub verified: bool,
    /// `profilePicture`; `None` for `{}`, `null` or absent.
    pub profile_picture: Option<ProfilePicture>,
    /// `apiKey`: the key of the app the user approved, if any.
    pub api_key: Option<String>,
    /// `sub`: the same user as `userId`.
    pub sub: Option<UserId>,
    /// `iat`: Unix seconds when the user approved (a number, or a string as the API echoes it).
    pub iat: Option<i64>,
    /// Every claim not listed above, in the order signed (`txSignature` among them).
    pub extra: Map<String, Value>,
    raw: Map<String, Value>,
}

/// The claims this crate gives a typed field.
const DOCUMENTED_CLAIMS: [&str; 9] = [
    "userId",
    "email",
    "name",
    "handle",
    "verified",
    "profilePicture",
    "apiKey",
    "sub",
    "iat",
];

/// The error of a `userId` that is not a user id: Audius' words, and why when the id is out of
/// range (an id of 2^31 or more, which Audius would compare as another user's).
fn invalid_user_id(e: crate::user_id::UserIdError) -> Error {
    match e.out_of_range() {
        Some(n) => Error::malformed(
            TokenPart::UserId,
            format!(
                "Invalid JWT payload userId: {n} is not below 2^31 (Audius user ids are 32-bit, \
                 and Audius compares them as such: it would verify the token as another user's)"
            ),
        ),
        None => Error::malformed(TokenPart::UserId, "Invalid JWT payload userId"),
    }
}

impl Claims {
    /// Reads claims from a decoded payload object.
    ///
    /// Fails with [`TokenPart::UserId`] when `userId` is missing, not a string or number, not
    /// a hashid or decimal id, or an id above [`UserId::MAX`] (2^31 - 1).
    pub fn from_map(raw: Map<String, Value>) -> Result<Self> {
        let (user_id, user_id_form) = match raw.get("userId") {
            None => {
                return Err(Error::malformed(
                    TokenPart::UserId,
                    "JWT payload missing userId field",
                ));
            }
            // The order of `UserId::parse`: decimal first, then hashid.
            Some(Value::String(s)) => match UserId::parse_decimal(s) {
                Some(id) => (id.map_err(invalid_user_id)?, UserIdForm::Decimal),
                None => (
                    UserId::from_hashid(s).map_err(invalid_user_id)?,
                    UserIdForm::Hashid,
                ),
            },
            Some(v @ Value::Number(_)) => (
                UserId::from_json(v).map_err(invalid_user_id)?,
                UserIdForm::LegacyNumber,
            ),
            Some(_) => {
                return Err(Error::malformed(
                    TokenPart::UserId,
                    "JWT payload userId must be a string",
                ));
            }
        };
        let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
        let extra = raw
            .iter()
            .filter(|(k, _)| !DOCUMENTED_CLAIMS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Self {
            user_id,
            user_id_form,
            email: text("email"),
            name: text("name"),
            handle: text("handle"),
            verified: raw
                .get("verified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            profile_picture: ProfilePicture::from_json(raw.get("profilePicture")),
            api_key: text("apiKey"),
            sub: match raw.get("sub") {
                // Usually the very text of `userId`: already decoded.
                Some(sub) if Some(sub) == raw.get("userId") => Some(user_id),
                other => other.and_then(|v| UserId::from_json(v).ok()),
            },
            iat: raw.get("iat").and_then(parse_iat),
            extra,
            raw,
        })
    }

    /// When the user approved the login, from `iat`.
    pub fn issued_at(&self) -> Option<time::OffsetDateTime> {
        self.iat
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
    }

    /// The payload exactly as signed.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// A claim by its name, as signed.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.raw.get(name)
    }

    /// The payload exactly as signed, by value.
    pub fn into_map(self) -> Map<String, Value> {
        self.raw
    }
}

/// `iat` as a number (integral, or a float with its fraction dropped) or a decimal string.
fn parse_iat(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        Value::String(s) if !s.is_empty() && s.len() <= 20 => s.trim().parse().ok(),
        _ => None,
    }
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Map::deserialize(deserializer)?;
        Self::from_map(raw).map_err(serde::de::Error::custom)
    }
}

/// A parsed token. Holds the text it was parsed from.
#[derive(Clone)]
pub struct Token {
    text: String,
    /// Byte offset of the second `.`: `text[..signed_len]` is the signed text.
    signed_len: usize,
    /// The header object, decoded on first use (verification never needs it).
    header: OnceLock<Option<Map<String, Value>>>,
    claims: Claims,
    signature: Signature,
}

impl Token {
    /// Parses a token of at most [`DEFAULT_MAX_TOKEN_BYTES`].
    ///
    /// Checks, in Audius' order: three segments, the signature segment's encoding, the payload's
    /// base64url and JSON, and `userId`. Does not recover the signer: see
    /// [`Token::recover_signer`]. The header is kept when it decodes, and otherwise ignored as
    /// Audius ignores it.
    pub fn parse(token: &str) -> Result<Self> {
        Self::parse_with_limit(token, DEFAULT_MAX_TOKEN_BYTES)
    }

    /// Parses a token, refusing one longer than `max_bytes` with [`Error::TooLarge`] before
    /// reading it.
    pub fn parse_with_limit(token: &str, max_bytes: usize) -> Result<Self> {
        let (signed_len, signature) = Self::split(token, max_bytes)?;
        Self::finish(token, signed_len, signature)
    }

    /// Parses a token and recovers its signer, in exactly the order the Audius API does: a token
    /// with both an unrecoverable signature and a broken payload is a
    /// [`BadSignature`](Error::BadSignature), as Audius answers 404 for it.
    pub fn parse_and_recover(token: &str, max_bytes: usize) -> Result<(Self, Wallet)> {
        let (signed_len, signature) = Self::split(token, max_bytes)?;
        let signer = signature.recover(&token.as_bytes()[..signed_len])?;
        Ok((Self::finish(token, signed_len, signature)?, signer))
    }

    /// Size check, segment split and signature decode.
    fn split(token: &str, max_bytes: usize) -> Result<(usize, Signature)> {
        if token.len() > max_bytes {
            return Err(Error::TooLarge {
                what: crate::error::Limited::Token,
                limit: max_bytes,
            });
        }
        let mut dots = token.match_indices('.').map(|(i, _)| i);
        let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
            return Err(Error::malformed(
                TokenPart::Structure,
                "Invalid JWT token format",
            ));
        };
        let _ = first;
        let signature = Signature::from_segment(&token[second + 1..])?;
        Ok((second, signature))
    }

    fn finish(token: &str, signed_len: usize, signature: Signature) -> Result<Self> {
        let first = token[..signed_len].find('.').expect("split found two dots");
        let payload_seg = &token[first + 1..signed_len];
        let payload = decode_segment(payload_seg).ok_or_else(|| {
            Error::malformed(TokenPart::Payload, "JWT payload could not be decoded")
        })?;
        let raw: Map<String, Value> = serde_json::from_slice(&payload).map_err(|_| {
            Error::malformed(TokenPart::Payload, "JWT payload could not be unmarshalled")
        })?;
        let claims = Claims::from_map(raw)?;
        Ok(Self {
            text: token.to_owned(),
            signed_len,
            header: OnceLock::new(),
            claims,
            signature,
        })
    }

    /// The header, when it decodes as a JSON object (normally `{"typ":"JWT","alg":"keccak256"}`).
    pub fn header(&self) -> Option<&Map<String, Value>> {
        self.header
            .get_or_init(|| {
                let segment = self.text.split('.').next().unwrap_or_default();
                decode_segment(segment).and_then(|h| serde_json::from_slice(&h).ok())
            })
            .as_ref()
    }

    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The signed text: `header.payload`, exactly as in the token.
    pub fn signing_input(&self) -> &str {
        &self.text[..self.signed_len]
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Recovers the wallet that signed the token. This proves who signed, not that the signer
    /// owns the account: a [`Verifier`](crate::verify::Verifier) checks that.
    pub fn recover_signer(&self) -> Result<Wallet> {
        self.signature.recover(self.signing_input().as_bytes())
    }

    /// Signs claims into a token with a raw secp256k1 secret key, as the Audius login page does
    /// (header `{"typ":"JWT","alg":"keccak256"}`, EIP-191, `v` 27/28).
    ///
    /// Meant for tests and sandboxes: a real app never holds a user's key.
    pub fn sign(claims: &Map<String, Value>, secret_key: &[u8; 32]) -> Result<String> {
        let payload = serde_json::to_vec(claims)
            .map_err(|e| Error::Config(format!("claims do not serialise: {e}")))?;
        Self::sign_raw(br#"{"typ":"JWT","alg":"keccak256"}"#, &payload, secret_key)
    }

    /// Signs an arbitrary header and payload (bytes as given) into a token.
    pub fn sign_raw(header: &[u8], payload: &[u8], secret_key: &[u8; 32]) -> Result<String> {
        let key = secp256k1::SecretKey::from_secret_bytes(*secret_key)
            .map_err(|_| Error::Config("not a valid secp256k1 secret key".into()))?;
        let signed = format!("{}.{}", encode_segment(header), encode_segment(payload));
        let hash = eip191_hash(signed.as_bytes());
        let sig = RecoverableSignature::sign_ecdsa_recoverable(
            secp256k1::Message::from_digest(hash),
            &key,
        );
        let (recid, compact) = sig.serialize_compact();
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&compact);
        bytes[64] = 27 + recid.to_u8();
        Ok(format!("{signed}.{}", Signature(bytes).to_segment()))
    }
}

/// Shows the claims and a shortened token; never the whole token.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("header", &self.header())
            .field("claims", &self.claims)
            .field("signature", &self.signature)
            .finish()
    }
}

/// The wallet of a raw secp256k1 secret key.
pub fn wallet_of_secret_key(secret_key: &[u8; 32]) -> Result<Wallet> {
    let key = secp256k1::SecretKey::from_secret_bytes(*secret_key)
        .map_err(|_| Error::Config("not a valid secp256k1 secret key".into()))?;
    let public = secp256k1::PublicKey::from_secret_key(&key);
    Wallet::from_uncompressed_public_key(&public.serialize_uncompressed())
        .ok_or_else(|| Error::Config("public key did not serialise".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];

    fn claims(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sign_then_recover() {
        let token = Token::sign(&claims(r#"{"userId":"eYorL","iat":5}"#), &KEY).unwrap();
        let parsed = Token::parse(&token).unwrap();
        assert_eq!(
            parsed.recover_signer().unwrap(),
            wallet_of_secret_key(&KEY).unwrap()
        );
        assert_eq!(parsed.claims().iat, Some(5));
        assert!(parsed.signature().to_segment().starts_with("MH"));
    }

    #[test]
    fn eip191_prefix_carries_the_decimal_length() {
        for len in [0usize, 1, 9, 10, 99, 100, 731, 1000, 12_345] {
            let message = vec![b'm'; len];
            let mut reference = Keccak256::new();
            reference.update(format!("\x19Ethereum Signed Message:\n{len}").as_bytes());
            reference.update(&message);
            let want: [u8; 32] = reference.finalize().into();
            assert_eq!(eip191_hash(&message), want, "length {len}");
        }
    }

    #[test]
    fn header_is_read_on_demand() {
        let token = Token::sign(&claims(r#"{"userId":"eYorL","sub":"eYorL"}"#), &KEY).unwrap();
        let parsed = Token::parse(&token).unwrap();
        assert_eq!(
            parsed.header().and_then(|h| h.get("alg")),
            Some(&Value::from("keccak256"))
        );
        assert_eq!(parsed.claims().sub, Some(UserId::new(44)));
        let odd = Token::sign_raw(b"not json", br#"{"userId":"44","sub":"eYorL"}"#, &KEY).unwrap();
        let parsed = Token::parse(&odd).unwrap();
        assert_eq!(parsed.header(), None);
        assert_eq!(parsed.claims().user_id_form, UserIdForm::Decimal);
        assert_eq!(parsed.claims().sub, Some(UserId::new(44)));
    }

    #[test]
    fn iat_as_string_and_float() {
        let c = Claims::from_map(claims(r#"{"userId":"eYorL","iat":"1764288000"}"#)).unwrap();
        assert_eq!(c.iat, Some(1_764_288_000));
        let c = Claims::from_map(claims(r#"{"userId":"eYorL","iat":1.5}"#)).unwrap();
        assert_eq!(c.iat, Some(1));
        let c = Claims::from_map(claims(r#"{"userId":"eYorL","iat":"soon"}"#)).unwrap();
        assert_eq!(c.iat, None);
    }

    #[test]
    fn wrong_typed_claims_read_as_absent_and_are_kept() {
        let c = Claims::from_map(claims(
            r#"{"userId":"eYorL","email":5,"verified":"yes","profilePicture":[1]}"#,
        ))
        .unwrap();
        assert_eq!(c.email, None);
        assert!(!c.verified);
        assert_eq!(c.profile_picture, None);
        assert_eq!(c.get("email"), Some(&Value::from(5)));
    }

    #[test]
    fn user_id_errors() {
        let e = Claims::from_map(claims(r#"{"userId":true}"#)).unwrap_err();
        assert!(e.to_string().contains("must be a string"));
        let e = Claims::from_map(claims(r#"{"iat":1}"#)).unwrap_err();
        assert!(e.to_string().contains("missing userId"));
    }

    #[test]
    fn oversize_is_refused_before_parsing() {
        let big = "a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1);
        assert!(matches!(Token::parse(&big), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn picture_best() {
        let p =
            ProfilePicture::from_json(Some(&serde_json::json!({"150x150": "a", "1000x1000": "c"})))
                .unwrap();
        assert_eq!(p.best(100), Some("a"));
        assert_eq!(p.best(400), Some("c"));
        assert_eq!(p.best(5000), Some("c"));
        assert!(ProfilePicture::from_json(Some(&serde_json::json!({}))).is_none());
        assert!(ProfilePicture::from_json(Some(&Value::Null)).is_none());
        assert!(ProfilePicture::from_json(None).is_none());
    }
}
