//! What a verification gives: the [`VerifiedProfile`], and the API's user records
//! ([`ApiUser`], [`ManagerGrant`]) it is built from.

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::token::{Claims, ProfilePicture};
use crate::{UserId, Wallet};

/// Where a verified profile's `handle`, `name`, `verified` and picture come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProfileSource {
    /// Audius' user record (`GET /v1/users/{id}`, cached): what Audius says (default).
    #[default]
    UserRecord,
    /// The token's claims: what the signer says, no extra lookup.
    TokenClaims,
}

/// A user as verified: who they are on Audius.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VerifiedProfile {
    /// The user's id.
    pub user_id: UserId,
    /// Their handle (empty only with [`ProfileSource::TokenClaims`] and a token without one).
    pub handle: String,
    /// Their display name (may be empty).
    pub name: String,
    /// The email in the token: the only place an app gets it. The user's own word.
    pub email: Option<String>,
    /// The verified-artist check mark.
    pub verified: bool,
    /// Their picture.
    pub profile_picture: Option<ProfilePicture>,
    /// The account's wallet, from the user record (when one was read).
    pub wallet: Option<Wallet>,
    /// The wallet that signed the token, when recovered here (local verification). Differs from
    /// `wallet` when an approved manager signed for the account.
    pub signer: Option<Wallet>,
    /// When the user approved the login (`iat`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub issued_at: Option<OffsetDateTime>,
    /// Where `handle`, `name`, `verified` and the picture came from.
    pub source: ProfileSource,
    /// Every claim, as the token (or, for the API verifier, the API) gave them.
    pub claims: Claims,
}

impl VerifiedProfile {
    /// The profile of a user record, as the authorization-code flow learns it (`GET /v1/me`
    /// with the user's access token): no token was verified, so there is no `email`, no
    /// `signer` and no `issued_at`, and [`claims`](Self::claims) is made from the record
    /// (`userId`, `sub`, `name`, `handle`, `verified`, `profilePicture`).
    pub fn from_api_user(user: &ApiUser) -> Self {
        let mut map = Map::new();
        map.insert("userId".into(), Value::String(user.id.hashid()));
        map.insert("name".into(), Value::String(user.name.clone()));
        map.insert("handle".into(), Value::String(user.handle.clone()));
        map.insert("verified".into(), Value::Bool(user.is_verified));
        map.insert(
            "profilePicture".into(),
            user.raw
                .get("profile_picture")
                .cloned()
                .unwrap_or(Value::Null),
        );
        map.insert("sub".into(), Value::String(user.id.hashid()));
        // A hashid made only of digits reads as a decimal id: then write the decimal id.
        let claims = match Claims::from_map(map.clone()) {
            Ok(claims) if claims.user_id == user.id => claims,
            _ => {
                let decimal = Value::String(user.id.get().to_string());
                map.insert("userId".into(), decimal.clone());
                map.insert("sub".into(), decimal);
                Claims::from_map(map).expect("a decimal userId is always accepted")
            }
        };
        Self {
            user_id: user.id,
            handle: user.handle.clone(),
            name: user.name.clone(),
            email: None,
            verified: user.is_verified,
            profile_picture: user.profile_picture.clone(),
            wallet: user.wallet,
            signer: None,
            issued_at: None,
            source: ProfileSource::UserRecord,
            claims,
        }
    }
}

/// A user as the API describes it (spec section 7).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ApiUser {
    /// `id`.
    pub id: UserId,
    /// `handle`.
    pub handle: String,
    /// `name`.
    pub name: String,
    /// `is_verified`.
    pub is_verified: bool,
    /// `is_deactivated`: the account was deactivated (absent reads as `false`). The local
    /// verifier refuses a deactivated account, and a deactivated manager.
    pub is_deactivated: bool,
    /// `profile_picture`.
    pub profile_picture: Option<ProfilePicture>,
    /// `wallet` (or `erc_wallet` when `wallet` is absent): the account's signing wallet.
    pub wallet: Option<Wallet>,
    /// `spl_wallet`: a Solana address, not a signing key.
    pub spl_wallet: Option<String>,
    /// The whole object as the API gave it.
    pub raw: Map<String, Value>,
}

impl ApiUser {
    /// Reads a user object; `None` when `id` or `handle` is missing or invalid.
    pub fn from_json(value: &Value) -> Option<Self> {
        let obj = value.as_object()?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str);
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
        let wallet = text("wallet")
            .or_else(|| text("erc_wallet"))
            .and_then(|w| w.parse().ok());
        Some(Self {
            id: UserId::from_json(obj.get("id")?).ok()?,
            handle: text("handle")?.to_owned(),
            name: text("name").unwrap_or_default().to_owned(),
            is_verified: flag("is_verified"),
            is_deactivated: flag("is_deactivated"),
            profile_picture: ProfilePicture::from_json(obj.get("profile_picture")),
            wallet,
            spl_wallet: text("spl_wallet").map(str::to_owned),
            raw: obj.clone(),
        })
    }
}

/// A manager grant (`GET /v1/users/{id}/managers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ManagerGrant {
    /// The manager's wallet (`grant.grantee_address`).
    pub grantee: Wallet,
    /// The manager's user id, when given.
    pub manager_id: Option<UserId>,
    /// The managed user (`grant.user_id`), when given: a grant vouches only for the user it
    /// names.
    pub user_id: Option<UserId>,
    /// `grant.is_approved`.
    pub is_approved: bool,
    /// `grant.is_revoked`.
    pub is_revoked: bool,
    /// `manager.is_deactivated`: the manager's own account is deactivated.
    pub manager_deactivated: bool,
}

impl ManagerGrant {
    /// Reads one entry of the managers list: `{"manager": user, "grant": {...}}`. `None` (the
    /// entry is skipped) without a readable grantee, or with a `grant.user_id` that is not a
    /// user id.
    pub fn from_json(value: &Value) -> Option<Self> {
        let grant = value.get("grant")?;
        let manager = value.get("manager");
        let grantee = grant
            .get("grantee_address")
            .and_then(Value::as_str)
            .or_else(|| manager?.get("wallet")?.as_str())?
            .parse()
            .ok()?;
        Some(Self {
            grantee,
            manager_id: manager
                .and_then(|m| m.get("id"))
                .and_then(|id| UserId::from_json(id).ok()),
            // A managed user named in a form that cannot be read makes the grant unusable: it
            // vouches for nobody (review 8), rather than for whichever user the list was for.
            user_id: match grant.get("user_id") {
                None | Some(Value::Null) => None,
                Some(id) => Some(UserId::from_json(id).ok()?),
            },
            is_approved: grant.get("is_approved").and_then(Value::as_bool) == Some(true),
            is_revoked: grant.get("is_revoked").and_then(Value::as_bool) != Some(false),
            manager_deactivated: manager
                .and_then(|m| m.get("is_deactivated"))
                .and_then(Value::as_bool)
                == Some(true),
        })
    }

    /// Approved, not revoked, and the manager's account not deactivated: the grantee may sign
    /// for the account.
    pub fn is_active(&self) -> bool {
        self.is_approved && !self.is_revoked && !self.manager_deactivated
    }
}

/// Builds the profile from verified claims and, per the source, the user record.
pub(super) fn profile(
    claims: Claims,
    record: Option<&ApiUser>,
    source: ProfileSource,
    signer: Option<Wallet>,
) -> VerifiedProfile {
    let (handle, name, verified, profile_picture) = match (source, record) {
        (ProfileSource::UserRecord, Some(user)) => (
            user.handle.clone(),
            user.name.clone(),
            user.is_verified,
            user.profile_picture.clone(),
        ),
        _ => (
            claims.handle.clone().unwrap_or_default(),
            claims.name.clone().unwrap_or_default(),
            claims.verified,
            claims.profile_picture.clone(),
        ),
    };
    VerifiedProfile {
        user_id: claims.user_id,
        handle,
        name,
        email: claims.email.clone(),
        verified,
        profile_picture,
        wallet: record.and_then(|u| u.wallet),
        signer,
        issued_at: claims.issued_at(),
        source,
        claims,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grants() {
        let g = ManagerGrant::from_json(&json!({
            "manager": {"id": "eYorL", "wallet": "0x5bb302630d6412513edf124f0c3819d5c7fc228a"},
            "grant": {"grantee_address": "0x5bb302630d6412513edf124f0c3819d5c7fc228a", "is_approved": true, "is_revoked": false}
        }))
        .unwrap();
        assert!(g.is_active());
        assert_eq!(g.manager_id, Some(UserId::new(44)));
        let pending = ManagerGrant::from_json(&json!({
            "grant": {"grantee_address": "0x5bb302630d6412513edf124f0c3819d5c7fc228a", "is_approved": null, "is_revoked": false}
        }))
        .unwrap();
        assert!(!pending.is_active());
    }
}
