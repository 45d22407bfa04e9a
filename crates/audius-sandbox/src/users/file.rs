//! Users files: the JSON that extends or replaces a directory (format in the
//! [module docs](super)).

use std::path::{Path, PathBuf};

use audius_login::UserId;
use serde::Deserialize;

use super::{DeveloperApp, Grant, Role, SandboxUser, SandboxUsers};
use crate::error::SandboxError;

/// Largest users file read, in bytes: 1 MiB.
const MAX_USERS_FILE_BYTES: u64 = 1024 * 1024;

/// The text of a users file, checked for size first.
pub(super) fn read(path: &Path) -> Result<String, SandboxError> {
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
    std::fs::read_to_string(path).map_err(io)
}

/// `directory` changed by the text of a users file read from `path` (named in errors).
pub(super) fn apply(
    directory: SandboxUsers,
    text: &str,
    path: &Path,
) -> Result<SandboxUsers, SandboxError> {
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
        let users: Vec<FileUser> = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
        (Mode::Extend, users, Vec::new())
    } else {
        let file: UsersFile = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
        (file.mode, file.users, file.apps)
    };
    let mut out = directory;
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
    use crate::users::derive_wallet;

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
