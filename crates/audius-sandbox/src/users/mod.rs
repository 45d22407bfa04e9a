//! The sandbox's directory: its users, their manager grants, and the registered developer apps
//! (documented on [`SandboxUsers`]).

use std::path::Path;

use audius_login::UserId;
use time::OffsetDateTime;

use crate::error::SandboxError;

mod app;
mod file;
mod user;

pub use app::DeveloperApp;
pub use user::{Role, SandboxUser, derive_secret_key, derive_wallet};

/// The `created_at` / `updated_at` of the built-in manager grants (RFC 3339).
const BUILTIN_GRANT_TIME: &str = "2024-01-15T12:00:00Z";

/// A manager grant: `manager` may sign tokens for `user` while approved and not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// The managed account.
    pub user: UserId,
    /// The manager.
    pub manager: UserId,
    /// The managed account approved the grant.
    pub is_approved: bool,
    /// The grant was revoked.
    pub is_revoked: bool,
    /// When the grant was made.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl Grant {
    /// A grant made at `2024-01-15T12:00:00Z`, the time of the built-in grants.
    pub fn new(user: UserId, manager: UserId, is_approved: bool, is_revoked: bool) -> Self {
        let at = OffsetDateTime::parse(
            BUILTIN_GRANT_TIME,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Self {
            user,
            manager,
            is_approved,
            is_revoked,
            created_at: at,
            updated_at: at,
        }
    }

    /// Approved and not revoked: the manager may sign for the account.
    pub fn is_active(&self) -> bool {
        self.is_approved && !self.is_revoked
    }
}

/// The sandbox's directory: users, manager grants and registered developer apps.
///
/// Immutable once a sandbox is started. Every user has a distinct handle (case-insensitively),
/// id and wallet.
///
/// ```
/// use audius_sandbox::{Role, SandboxUsers};
///
/// let users = SandboxUsers::builtin();
/// let artist = users.get("artist").expect("a built-in user");
/// assert_eq!(artist.id.get(), 7);
/// assert_eq!(artist.id.hashid(), "OeJ7n");
/// assert!(artist.verified);
/// assert_eq!(artist.role, Role::Artist);
/// assert_eq!(artist.email, "artist@sandbox.audius.invalid");
/// // The key is derived from a documented seed: the same wallet on every machine.
/// assert_eq!(artist.wallet, audius_sandbox::derive_wallet("artist"));
/// ```
///
/// # Keys
///
/// A user's secp256k1 secret key is, unless given explicitly,
/// `keccak256("audius-sandbox/v1:" + handle)`; in the (astronomically unlikely) case that this is
/// not a valid key (zero, or not below the curve order), it is hashed again with keccak-256 until
/// it is. [`derive_secret_key`] computes it. The wallet is the Ethereum address of that key.
/// These keys are public knowledge: never use a sandbox key for anything real.
///
/// # Users file
///
/// A JSON file replaces or extends the built-in set ([`SandboxUsers::from_file`]):
///
/// ```json
/// {
///   "mode": "extend",
///   "users": [
///     {"handle": "dj", "name": "Dee Jay", "id": 300, "verified": true, "role": "artist"},
///     {"handle": "label", "name": "Label Co", "id": 301, "role": "manager",
///      "secret_key": "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"},
///     {"handle": "band", "name": "The Band", "id": 302,
///      "managers": [{"manager": "label", "approved": true, "revoked": false}]}
///   ],
///   "apps": [
///     {"name": "My App", "api_key": "0123456789abcdef0123456789abcdef01234567",
///      "redirect_uris": ["http://localhost:3000/callback", "postmessage"]}
///   ]
/// }
/// ```
///
/// Fields of a user: `handle` (1 to 30 of `A-Z a-z 0-9 _`), `name`, `id` (a number, or a hashid
/// string) are required; `email` (default `<handle>@sandbox.audius.invalid`), `verified` (default
/// `false`), `has_picture` (default `true`), `deactivated` (default `false`: a deactivated
/// account's wallet owns nothing at `verify_token`), `role` (`listener`, `artist`, `no_picture`,
/// `manager`, `managed`, `revoked_manager`; default `listener`), `secret_key` (64 hex digits,
/// `0x` optional; default derived as above) and `managers` (grants to other users of the final
/// set, by handle; `approved` defaults to `true`, `revoked` to `false`) are optional.
/// `mode` is `extend` (default: add to the built-in users; a handle, id or wallet that already
/// exists is an error) or `replace` (the file's users and grants replace the built-in ones;
/// registered apps are always kept). A bare JSON list of users means `extend`. Unknown fields
/// are refused, so a typo is an error rather than a silently ignored setting.
///
/// The registered apps (the built-in one, the file's `apps`, and those given to
/// [`SandboxBuilder::app`](crate::SandboxBuilder::app)) hold the only keys the login page
/// accepts, in either flow: any other `api_key` or `client_id` is "app API Key invalid" (see
/// [`crate::login`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxUsers {
    users: Vec<SandboxUser>,
    grants: Vec<Grant>,
    apps: Vec<DeveloperApp>,
}

impl Default for SandboxUsers {
    /// [`SandboxUsers::builtin`].
    fn default() -> Self {
        Self::builtin()
    }
}

impl SandboxUsers {
    /// The built-in users, grants and app:
    ///
    /// | handle | name | id | role | verified | picture |
    /// |---|---|---|---|---|---|
    /// | `listener` | Lena Listener | 44 | Listener | no | yes |
    /// | `artist` | Ari Artist | 7 | Artist | yes | yes |
    /// | `nopicture` | Nico Nopicture | 101 | NoPicture | no | no |
    /// | `manager` | Maya Manager | 200 | Manager | no | yes |
    /// | `managed` | Mo Managed | 201 | Managed | yes | yes |
    /// | `revoked` | Rex Revoked | 202 | RevokedManager | no | yes |
    ///
    /// `managed` has an approved, non-revoked grant to `manager` and an approved but revoked
    /// grant to `revoked`. The app is [`DeveloperApp::builtin`].
    pub fn builtin() -> Self {
        let table: [(u64, &str, &str, Role, bool, bool); 6] = [
            (44, "listener", "Lena Listener", Role::Listener, false, true),
            (7, "artist", "Ari Artist", Role::Artist, true, true),
            (
                101,
                "nopicture",
                "Nico Nopicture",
                Role::NoPicture,
                false,
                false,
            ),
            (200, "manager", "Maya Manager", Role::Manager, false, true),
            (201, "managed", "Mo Managed", Role::Managed, true, true),
            (
                202,
                "revoked",
                "Rex Revoked",
                Role::RevokedManager,
                false,
                true,
            ),
        ];
        let users = table
            .into_iter()
            .map(|(id, handle, name, role, verified, picture)| {
                SandboxUser::new(id, handle, name, role)
                    .expect("built-in users are valid")
                    .verified(verified)
                    .has_picture(picture)
            })
            .collect();
        Self {
            users,
            grants: vec![
                Grant::new(UserId::new(201), UserId::new(200), true, false),
                Grant::new(UserId::new(201), UserId::new(202), true, true),
            ],
            apps: vec![DeveloperApp::builtin()],
        }
    }

    /// No users, no grants, no apps.
    pub fn empty() -> Self {
        Self {
            users: Vec::new(),
            grants: Vec::new(),
            apps: Vec::new(),
        }
    }

    /// The built-in set changed by a users file (see [`SandboxUsers`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SandboxError> {
        Self::builtin().apply_file(path)
    }

    /// This set changed by a users file: its users extend or replace these.
    pub fn apply_file(self, path: impl AsRef<Path>) -> Result<Self, SandboxError> {
        let path = path.as_ref();
        let text = file::read(path)?;
        file::apply(self, &text, path)
    }

    /// This set changed by the text of a users file.
    pub fn apply_json(self, text: &str) -> Result<Self, SandboxError> {
        file::apply(self, text, Path::new("<inline>"))
    }

    /// Adds a user; fails when its handle (case-insensitively), id or wallet is taken.
    pub fn with_user(mut self, user: SandboxUser) -> Result<Self, SandboxError> {
        if let Some(other) = self.users.iter().find(|u| {
            u.handle.eq_ignore_ascii_case(&user.handle)
                || u.id == user.id
                || u.wallet == user.wallet
        }) {
            let what = if other.handle.eq_ignore_ascii_case(&user.handle) {
                format!("the handle {:?}", user.handle)
            } else if other.id == user.id {
                format!("the id {}", user.id.get())
            } else {
                format!("the wallet {}", user.wallet)
            };
            return Err(SandboxError::Directory(format!(
                "{what} already belongs to the user {:?}",
                other.handle
            )));
        }
        self.users.push(user);
        Ok(self)
    }

    /// Adds a manager grant between two users of the set; fails when either is unknown, they
    /// are the same user, or that pair already has a grant.
    pub fn with_grant(mut self, grant: Grant) -> Result<Self, SandboxError> {
        for id in [grant.user, grant.manager] {
            if self.by_id(id).is_none() {
                return Err(SandboxError::Directory(format!(
                    "grant names the user id {}, which is not in the sandbox",
                    id.get()
                )));
            }
        }
        if grant.user == grant.manager {
            return Err(SandboxError::Directory(
                "a user cannot manage itself".into(),
            ));
        }
        if self
            .grants
            .iter()
            .any(|g| g.user == grant.user && g.manager == grant.manager)
        {
            return Err(SandboxError::Directory(format!(
                "user {} already has a grant to manager {}",
                grant.user.get(),
                grant.manager.get()
            )));
        }
        self.grants.push(grant);
        Ok(self)
    }

    /// Registers a developer app, replacing the registration of the same API key if there is
    /// one (for example the built-in app's, with other redirect URIs).
    pub fn with_app_replaced(mut self, app: DeveloperApp) -> Self {
        self.apps.retain(|a| a.api_key != app.api_key);
        self.apps.push(app);
        self
    }

    /// Registers a developer app; fails when its API key is already registered.
    pub fn with_app(mut self, app: DeveloperApp) -> Result<Self, SandboxError> {
        if self.apps.iter().any(|a| a.api_key == app.api_key) {
            return Err(SandboxError::Directory(format!(
                "an app with the API key {} is already registered",
                app.api_key
            )));
        }
        self.apps.push(app);
        Ok(self)
    }

    /// The users, in order.
    pub fn users(&self) -> &[SandboxUser] {
        &self.users
    }

    /// The manager grants.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The registered developer apps.
    pub fn apps(&self) -> &[DeveloperApp] {
        &self.apps
    }

    /// The user with this handle (case-insensitively).
    pub fn get(&self, handle: &str) -> Option<&SandboxUser> {
        self.users
            .iter()
            .find(|u| u.handle.eq_ignore_ascii_case(handle))
    }

    /// The user with this id.
    pub fn by_id(&self, id: UserId) -> Option<&SandboxUser> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The registered app with this API key (normalised: `0x` optional, any case).
    pub fn app(&self, api_key: &str) -> Option<&DeveloperApp> {
        let key = audius_login::login_url::normalize_api_key(api_key).ok()?;
        self.apps.iter().find(|a| a.api_key == key)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table() {
        let users = SandboxUsers::builtin();
        let rows: Vec<_> = users
            .users()
            .iter()
            .map(|u| (u.handle.as_str(), u.id.get(), u.verified, u.has_picture))
            .collect();
        assert_eq!(
            rows,
            [
                ("listener", 44, false, true),
                ("artist", 7, true, true),
                ("nopicture", 101, false, false),
                ("manager", 200, false, true),
                ("managed", 201, true, true),
                ("revoked", 202, false, true),
            ]
        );
        assert_eq!(users.get("listener").unwrap().id.hashid(), "eYorL");
        assert_eq!(users.get("ARTIST").unwrap().handle, "artist");
        assert_eq!(users.grants().iter().filter(|g| g.is_active()).count(), 1);
        let debug = format!("{:?}", users.get("artist").unwrap());
        assert!(debug.contains("(hidden)"));
        assert!(!debug.contains(&hex::encode(users.get("artist").unwrap().secret_key())));
    }

    #[test]
    fn the_readme_shows_the_derived_wallets() {
        let readme = include_str!("../../README.md");
        for user in SandboxUsers::builtin().users() {
            let row = format!(
                "| `{}` | {} | {} (`{}`) |",
                user.handle,
                user.name,
                user.id.get(),
                user.hashid()
            );
            let line = readme
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("README row for {}", user.handle));
            assert!(
                line.contains(&format!("`{}`", user.wallet)),
                "README wallet of {}",
                user.handle
            );
        }
    }
}
