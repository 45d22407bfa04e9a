//! The signed-in user.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use audius_login::{ProfilePicture, VerifiedProfile};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// A user signed in with Audius: who they are, as verified at login.
///
/// Read its fields directly (`user.handle`, `user.name`, `user.email`: they are those of
/// [`AudiusUserData`], reached through `Deref`). The value is shared: cloning it, or taking it as
/// a handler argument, copies a pointer, not the strings. It is `Clone + Send + Sync` and
/// serializes as its fields; it is stored in the session at login and read back on each request
/// without any network call. Take it as a handler argument:
///
/// ```
/// use actix_audius_login::AudiusUser;
///
/// async fn hello(user: AudiusUser) -> String {
///     format!("Hello, {} (@{})!", user.name, user.handle)
/// }
/// ```
///
/// A field is changed in place with copy-on-write (`user.name = ...` copies the fields first
/// when the value is shared), and `(*user).clone()` gives the fields by value.
#[derive(Clone, PartialEq, Eq)]
pub struct AudiusUser(Arc<AudiusUserData>);

/// The fields of an [`AudiusUser`], reached through it (`user.handle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AudiusUserData {
    /// The numeric user id.
    pub id: u64,
    /// The same id as a hashid, as Audius writes it in URLs and API paths (`eYorL` for 44).
    pub hashid: String,
    /// The handle (`@handle`).
    pub handle: String,
    /// The display name.
    pub name: String,
    /// The email from the login token: `None` when the flow gives none (the authorization-code
    /// flow never does). It is the user's own word, not an address Audius vouches for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The verified-artist check mark, from Audius' user record.
    pub verified: bool,
    /// The profile picture, if the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_picture: Option<ProfilePicture>,
    /// When this login happened.
    #[serde(with = "time::serde::rfc3339")]
    pub signed_in_at: OffsetDateTime,
}

impl AudiusUser {
    /// The user with these fields.
    pub(crate) fn new(data: AudiusUserData) -> Self {
        Self(Arc::new(data))
    }

    /// The user from a verified profile, signed in at `now`.
    pub(crate) fn from_profile(profile: &VerifiedProfile, now: OffsetDateTime) -> Self {
        Self::new(AudiusUserData {
            id: profile.user_id.get(),
            hashid: profile.user_id.hashid(),
            handle: profile.handle.clone(),
            name: profile.name.clone(),
            email: profile.email.clone(),
            verified: profile.verified,
            profile_picture: profile.profile_picture.clone(),
            signed_in_at: now,
        })
    }
}

impl AudiusUserData {
    /// The URL of the picture closest to `min_pixels` wide (150, 480 or 1000), if any.
    pub fn picture_url(&self, min_pixels: u32) -> Option<&str> {
        self.profile_picture.as_ref()?.best(min_pixels)
    }
}

impl Deref for AudiusUser {
    type Target = AudiusUserData;

    fn deref(&self) -> &AudiusUserData {
        &self.0
    }
}

impl DerefMut for AudiusUser {
    /// Copy-on-write: the fields are copied first when the user is shared.
    fn deref_mut(&mut self) -> &mut AudiusUserData {
        Arc::make_mut(&mut self.0)
    }
}

impl From<AudiusUserData> for AudiusUser {
    fn from(data: AudiusUserData) -> Self {
        Self::new(data)
    }
}

impl fmt::Debug for AudiusUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for AudiusUser {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AudiusUser {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        AudiusUserData::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn user() -> AudiusUser {
        AudiusUser::new(AudiusUserData {
            id: 44,
            hashid: "eYorL".into(),
            handle: "listener".into(),
            name: "Lee".into(),
            email: None,
            verified: false,
            profile_picture: None,
            signed_in_at: OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
        })
    }

    #[test]
    fn a_clone_shares_and_a_change_copies() {
        let a = user();
        let mut b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0), "a clone shares the fields");
        b.name = "Changed".into();
        assert_eq!(a.name, "Lee", "the other clone keeps its fields");
        assert_eq!(b.name, "Changed");
        assert!(!Arc::ptr_eq(&a.0, &b.0));
        assert_eq!((*b).clone().name, "Changed");
    }

    #[test]
    fn it_serializes_and_prints_as_its_fields() {
        let u = user();
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["handle"], "listener");
        assert_eq!(json["signed_in_at"], "2025-06-15T15:06:40Z");
        assert!(json.get("email").is_none());
        assert_eq!(serde_json::from_value::<AudiusUser>(json).unwrap(), u);
        assert!(format!("{u:?}").starts_with("AudiusUserData { id: 44,"));
    }
}
