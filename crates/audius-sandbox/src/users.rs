//! The sandbox's directory: its users, their manager grants, and the registered developer apps.
//!
//! ```
//! use audius_sandbox::{Role, SandboxUsers};
//!
//! let users = SandboxUsers::builtin();
//! let artist = users.get("artist").expect("a built-in user");
//! assert_eq!(artist.id.get(), 7);
//! assert_eq!(artist.id.hashid(), "OeJ7n");
//! assert!(artist.verified);
//! assert_eq!(artist.role, Role::Artist);
//! assert_eq!(artist.email, "artist@sandbox.audius.invalid");
//! // The key is derived from a documented seed: the same wallet on every machine.
//! assert_eq!(artist.wallet, audius_sandbox::users::derive_wallet("artist"));
//! ```
//!
//! # Keys
//!
//! A user's secp256k1 secret key is, unless given explicitly,
//! `keccak256("audius-sandbox/v1:" + handle)`; in the (astronomically unlikely) case that this is
//! not a valid key (zero, or not below the curve order), it is hashed again with keccak-256 until
//! it is. [`derive_secret_key`] computes it. The wallet is the Ethereum address of that key.
//! These keys are public knowledge: never use a sandbox key for anything real.
//!
//! # Users file
//!
//! A JSON file replaces or extends the built-in set ([`SandboxUsers::from_file`]):
//!
//! ```json
//! {
//!   "mode": "extend",
//!   "users": [
//!     {"handle": "dj", "name": "Dee Jay", "id": 300, "verified": true, "role": "artist"},
//!     {"handle": "label", "name": "Label Co", "id": 301, "role": "manager",
//!      "secret_key": "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"},
//!     {"handle": "band", "name": "The Band", "id": 302,
//!      "managers": [{"manager": "label", "approved": true, "revoked": false}]}
//!   ],
//!   "apps": [
//!     {"name": "My App", "api_key": "0123456789abcdef0123456789abcdef01234567",
//!      "redirect_uris": ["http://localhost:3000/callback", "postmessage"]}
//!   ]
//! }
//! ```
//!
//! Fields of a user: `handle` (1 to 30 of `A-Z a-z 0-9 _`), `name`, `id` (a number, or a hashid
//! string) are required; `email` (default `<handle>@sandbox.audius.invalid`), `verified` (default
//! `false`), `has_picture` (default `true`), `deactivated` (default `false`: a deactivated
//! account's wallet owns nothing at `verify_token`), `role` (`listener`, `artist`, `no_picture`,
//! `manager`, `managed`, `revoked_manager`; default `listener`), `secret_key` (64 hex digits,
//! `0x` optional; default derived as above) and `managers` (grants to other users of the final
//! set, by handle; `approved` defaults to `true`, `revoked` to `false`) are optional.
//! `mode` is `extend` (default: add to the built-in users; a handle, id or wallet that already
//! exists is an error) or `replace` (the file's users and grants replace the built-in ones;
//! registered apps are always kept). A bare JSON list of users means `extend`. Unknown fields
//! are refused, so a typo is an error rather than a silently ignored setting.
//!
//! The registered apps (the built-in one, the file's `apps`, and those given to
//! [`SandboxBuilder::app`](crate::SandboxBuilder::app)) hold the only keys the login page
//! accepts, in either flow: any other `api_key` or `client_id` is "app API Key invalid" (see
//! [`crate::login`]).

use std::fmt;
use std::path::{Path, PathBuf};

use audius_login::token::wallet_of_secret_key;
use audius_login::{ProfilePicture, UserId, Wallet};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};
use time::OffsetDateTime;
use url::Url;

use crate::error::SandboxError;
use crate::oauth::DeveloperApp;

/// The prefix of the key-derivation seed: `keccak256(KEY_SEED_PREFIX + handle)`.
pub const KEY_SEED_PREFIX: &str = "audius-sandbox/v1:";
/// The domain of the default email addresses: `<handle>@sandbox.audius.invalid`.
pub const EMAIL_DOMAIN: &str = "sandbox.audius.invalid";
/// Largest users file read, in bytes: 1 MiB.
pub const MAX_USERS_FILE_BYTES: u64 = 1024 * 1024;
/// Longest handle, in characters.
pub const MAX_HANDLE_LEN: usize = 30;
/// Longest display name, in characters.
pub const MAX_NAME_LEN: usize = 100;
/// The `created_at` / `updated_at` of the built-in manager grants (RFC 3339).
pub const BUILTIN_GRANT_TIME: &str = "2024-01-15T12:00:00Z";

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

/// The secret key of a handle, derived from the documented seed (see the [module docs](self)).
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
    pub fn picture_urls(&self, base: &Url) -> Option<ProfilePicture> {
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
    pub fn spl_wallet(&self) -> String {
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
    /// A grant made at [`BUILTIN_GRANT_TIME`].
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

    /// The built-in set changed by a users file (see the [module docs](self)).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SandboxError> {
        Self::builtin().apply_file(path)
    }

    /// This set changed by a users file: its users extend or replace these.
    pub fn apply_file(self, path: impl AsRef<Path>) -> Result<Self, SandboxError> {
        let path = path.as_ref();
        let io = |source| SandboxError::UsersFileIo {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_USERS_FILE_BYTES {
            return Err(SandboxError::UsersFile {
                path: path.to_owned(),
                message: format!("larger than {MAX_USERS_FILE_BYTES} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        self.apply_json_at(&text, path)
    }

    /// This set changed by the text of a users file.
    pub fn apply_json(self, text: &str) -> Result<Self, SandboxError> {
        self.apply_json_at(text, Path::new("<inline>"))
    }

    fn apply_json_at(self, text: &str, path: &Path) -> Result<Self, SandboxError> {
        let fail = |message: String| SandboxError::UsersFile {
            path: PathBuf::from(path),
            message,
        };
        if text.len() as u64 > MAX_USERS_FILE_BYTES {
            return Err(fail(format!("larger than {MAX_USERS_FILE_BYTES} bytes")));
        }
        // A bare list of users, or the object form: parsed as what it looks like, so that the
        // error names the line and column (an untagged enum would only say "no variant").
        let (mode, users, apps) = if text.trim_start().starts_with('[') {
            let users: Vec<FileUser> =
                serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
            (Mode::Extend, users, Vec::new())
        } else {
            let file: UsersFile = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
            (file.mode, file.users, file.apps)
        };
        let mut out = self;
        if mode == Mode::Replace {
            if users.is_empty() {
                return Err(fail(
                    "mode \"replace\" needs at least one user in \"users\"".into(),
                ));
            }
            out.users.clear();
            out.grants.clear();
        }
        let mut pending_grants = Vec::new();
        for (i, u) in users.into_iter().enumerate() {
            let at = |m: String| fail(format!("users[{i}] ({}): {m}", u.handle));
            let id = UserId::from_json(&u.id).map_err(|e| at(e.to_string()))?;
            let role = u.role.unwrap_or(Role::Listener);
            let user = match &u.secret_key {
                Some(hex_key) => {
                    let key = parse_secret_key(hex_key).map_err(at)?;
                    SandboxUser::with_secret_key(id, u.handle.clone(), u.name.clone(), role, key)
                }
                None => SandboxUser::new(id, u.handle.clone(), u.name.clone(), role),
            }
            .map_err(|e| at(e.to_string()))?;
            let mut user = user
                .verified(u.verified.unwrap_or(false))
                .has_picture(u.has_picture.unwrap_or(true))
                .deactivated(u.deactivated.unwrap_or(false));
            if let Some(email) = u.email {
                check_email(&email).map_err(at)?;
                user = user.email(email);
            }
            for g in u.managers {
                pending_grants.push((i, user.id, g));
            }
            out = out
                .with_user(user)
                .map_err(|e| fail(format!("users[{i}]: {e}")))?;
        }
        for (i, user_id, g) in pending_grants {
            let manager = out
                .get(&g.manager)
                .ok_or_else(|| {
                    fail(format!(
                        "users[{i}]: the manager {:?} is not a user of the sandbox",
                        g.manager
                    ))
                })?
                .id;
            out = out
                .with_grant(Grant::new(
                    user_id,
                    manager,
                    g.approved.unwrap_or(true),
                    g.revoked.unwrap_or(false),
                ))
                .map_err(|e| fail(format!("users[{i}]: {e}")))?;
        }
        for (i, a) in apps.into_iter().enumerate() {
            let app = DeveloperApp::new(a.name, &a.api_key, a.redirect_uris)
                .map_err(|e| fail(format!("apps[{i}]: {e}")))?;
            out = out
                .with_app(app)
                .map_err(|e| fail(format!("apps[{i}]: {e}")))?;
        }
        Ok(out)
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

fn parse_secret_key(text: &str) -> Result<[u8; 32], String> {
    let hex_part = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let mut key = [0u8; 32];
    if hex_part.len() != 64 || hex::decode_to_slice(hex_part, &mut key).is_err() {
        return Err("secret_key must be 64 hex digits (0x optional)".into());
    }
    Ok(key)
}

fn check_email(email: &str) -> Result<(), String> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!("{email:?} is not an email address"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Extend,
    Replace,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    users: Vec<FileUser>,
    #[serde(default)]
    apps: Vec<FileApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    handle: String,
    name: String,
    id: serde_json::Value,
    email: Option<String>,
    verified: Option<bool>,
    has_picture: Option<bool>,
    deactivated: Option<bool>,
    role: Option<Role>,
    secret_key: Option<String>,
    #[serde(default)]
    managers: Vec<FileGrant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGrant {
    manager: String,
    approved: Option<bool>,
    revoked: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    name: String,
    api_key: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
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
    fn the_readme_shows_the_derived_wallets() {
        let readme = include_str!("../README.md");
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

    #[test]
    fn base58_known_values() {
        assert_eq!(base58(b""), "");
        assert_eq!(base58(&[0, 0, 1]), "112");
        assert_eq!(base58(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(base58(&[0xff; 32]).len(), 44);
    }

    #[test]
    fn file_extend_and_replace() {
        let text = r#"{"users":[{"handle":"dj","name":"Dee Jay","id":300,"verified":true,
            "managers":[{"manager":"manager"}]},
            {"handle":"gone","name":"Gone","id":301,"deactivated":true}],
            "apps":[{"name":"A","api_key":"0x0123456789ABCDEF0123456789abcdef01234567","redirect_uris":["postmessage"]}]}"#;
        let users = SandboxUsers::builtin().apply_json(text).unwrap();
        assert_eq!(users.len(), 8);
        assert!(users.get("gone").unwrap().deactivated);
        let dj = users.get("dj").unwrap();
        assert!(dj.verified);
        assert!(!dj.deactivated);
        assert_eq!(dj.email, "dj@sandbox.audius.invalid");
        assert_eq!(dj.wallet, derive_wallet("dj"));
        assert!(
            users
                .grants()
                .iter()
                .any(|g| g.user == dj.id && g.is_active())
        );
        assert!(
            users
                .app("0123456789abcdef0123456789abcdef01234567")
                .is_some()
        );

        let replaced = SandboxUsers::builtin()
            .apply_json(
                r#"{"mode":"replace","users":[{"handle":"solo","name":"Solo","id":"eYorL"}]}"#,
            )
            .unwrap();
        assert_eq!(replaced.len(), 1);
        assert_eq!(replaced.get("solo").unwrap().id.get(), 44);
        assert!(replaced.grants().is_empty());
        assert_eq!(replaced.apps().len(), 1, "apps are kept");

        let list = SandboxUsers::builtin()
            .apply_json(r#"[{"handle":"x1","name":"X","id":9999}]"#)
            .unwrap();
        assert_eq!(list.len(), 7);
    }

    #[test]
    fn file_errors_are_clear() {
        let cases = [
            ("not json", "expected"),
            (
                r#"{"users":[{"handle":"artist","name":"A","id":999}]}"#,
                "handle",
            ),
            (
                r#"{"users":[{"handle":"x","name":"A","id":7}]}"#,
                "the id 7",
            ),
            (
                r#"{"users":[{"handle":"x y","name":"A","id":999}]}"#,
                "handle",
            ),
            (r#"{"users":[{"handle":"x","name":" ","id":999}]}"#, "name"),
            (
                r#"{"users":[{"handle":"x","name":"A","id":999,"colour":"red"}]}"#,
                "",
            ),
            (
                r#"{"users":[{"handle":"x","name":"A","id":999,"secret_key":"00"}]}"#,
                "64 hex",
            ),
            (
                r#"{"users":[{"handle":"x","name":"A","id":999,"secret_key":"0000000000000000000000000000000000000000000000000000000000000000"}]}"#,
                "valid secp256k1",
            ),
            (
                r#"{"users":[{"handle":"x","name":"A","id":999,"managers":[{"manager":"ghost"}]}]}"#,
                "ghost",
            ),
            (r#"{"mode":"replace","users":[]}"#, "at least one"),
            (r#"{"mode":"merge","users":[]}"#, ""),
            (
                r#"{"users":[{"handle":"x","name":"A","id":999,"email":"nope"}]}"#,
                "email",
            ),
            (r#"{"apps":[{"name":"A","api_key":"12"}]}"#, "40 hex"),
        ];
        for (text, needle) in cases {
            let err = SandboxUsers::builtin().apply_json(text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("invalid users file"), "{text}: {msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
        }
        let err = SandboxUsers::from_file("/nonexistent/users.json").unwrap_err();
        assert!(matches!(err, SandboxError::UsersFileIo { .. }));
    }
}
