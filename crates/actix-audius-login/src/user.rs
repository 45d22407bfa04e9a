//! The signed-in user.

use audius_login::{ProfilePicture, UserId, VerifiedProfile};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A user signed in with Audius: who they are, as verified at login.
///
/// A plain value (`Clone + Send + Serialize`), stored in the session at login and read back on
/// each request without any network call. Take it as a handler argument:
///
/// ```
/// use actix_audius_login::AudiusUser;
///
/// async fn hello(user: AudiusUser) -> String {
///     format!("Hello, {} (@{})!", user.name, user.handle)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AudiusUser {
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
    /// The user from a verified profile, signed in at `now`.
    pub fn from_profile(profile: &VerifiedProfile, now: OffsetDateTime) -> Self {
        Self {
            id: profile.user_id.get(),
            hashid: profile.user_id.hashid(),
            handle: profile.handle.clone(),
            name: profile.name.clone(),
            email: profile.email.clone(),
            verified: profile.verified,
            profile_picture: profile.profile_picture.clone(),
            signed_in_at: now,
        }
    }

    /// The user id as the core crate's type.
    pub fn user_id(&self) -> UserId {
        UserId::new(self.id)
    }

    /// The URL of the picture closest to `min_pixels` wide (150, 480 or 1000), if any.
    pub fn picture_url(&self, min_pixels: u32) -> Option<&str> {
        self.profile_picture.as_ref()?.best(min_pixels)
    }
}
