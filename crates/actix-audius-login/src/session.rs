//! What this crate keeps in the actix-session session, under its own keys.

use std::cell::RefCell;
use std::num::NonZeroUsize;

use actix_session::Session;
use audius_login::oauth::PkceVerifier;
use audius_login::{ProfilePicture, State};
use lru::LruCache;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::Config;
use crate::error::{AudiusLoginError, LoginErrorKind};
use crate::user::{AudiusUser, AudiusUserData};

/// Session key of the signed-in user.
pub(crate) const USER_KEY: &str = "audius.user";
/// Session key of the pending login attempts.
pub(crate) const PENDING_KEY: &str = "audius.pending";
/// Session key of the code flow's tokens ([`crate::refresh::StoredTokens`]).
pub(crate) const TOKENS_KEY: &str = "audius.tokens";

/// Most bytes the pending attempts may take in the session, serialised: 1,536. The session is
/// a cookie by default, and a cookie holds about 4 KiB (name and value, after encryption and
/// base64: about 4/3 of the session's text); the signed-in user (up to about 500 bytes) and the
/// code flow's tokens share it. Without a bound, a few forced logins with long `return_to`s
/// (up to 2 KiB each) would push the cookie past what browsers keep, and lock the user out.
pub(crate) const MAX_PENDING_BYTES: usize = 1536;

/// One login attempt: its state, where to go after, when it started (Unix seconds), and for the
/// code flow its PKCE verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    #[serde(rename = "s")]
    pub(crate) state: State,
    #[serde(rename = "r")]
    pub(crate) return_to: String,
    #[serde(rename = "t")]
    pub(crate) started_at: i64,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub(crate) verifier: Option<PkceVerifier>,
}

/// The pending attempts; an unreadable entry is dropped (and logged).
pub(crate) fn pending(session: &Session) -> Vec<PendingLogin> {
    match session.get::<Vec<PendingLogin>>(PENDING_KEY) {
        Ok(list) => list.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable pending Audius logins in the session; starting afresh");
            session.remove(PENDING_KEY);
            Vec::new()
        }
    }
}

/// The serialised size of the pending attempts.
fn pending_bytes(list: &[PendingLogin]) -> usize {
    serde_json::to_vec(list).map_or(usize::MAX, |v| v.len())
}

/// Records a new attempt, dropping expired ones, the oldest beyond the limit, and the oldest
/// while they take more than [`MAX_PENDING_BYTES`]. An attempt too large on its own (a very
/// long `return_to`) keeps its state and returns to the landing page instead (logged).
pub(crate) fn push_pending(
    session: &Session,
    config: &Config,
    mut attempt: PendingLogin,
) -> Result<(), AudiusLoginError> {
    let now = config.clock.now().unix_timestamp();
    let ttl = i64::try_from(config.attempt_ttl.as_secs()).unwrap_or(i64::MAX);
    if pending_bytes(std::slice::from_ref(&attempt)) > MAX_PENDING_BYTES {
        tracing::info!(
            return_to_bytes = attempt.return_to.len(),
            limit = MAX_PENDING_BYTES,
            "the return-to is too long to keep in the session; this login returns to the \
             landing page"
        );
        attempt.return_to.clone_from(&config.paths.landing);
    }
    let mut list: Vec<PendingLogin> = pending(session)
        .into_iter()
        .filter(|p| now.saturating_sub(p.started_at) <= ttl)
        .collect();
    list.push(attempt);
    let excess = list.len().saturating_sub(config.max_pending_attempts);
    list.drain(..excess);
    while list.len() > 1 && pending_bytes(&list) > MAX_PENDING_BYTES {
        list.remove(0);
    }
    session
        .insert(PENDING_KEY, list)
        .map_err(AudiusLoginError::from)
}

/// Takes the attempt whose state matches `state` (compared in constant time) out of the
/// session, whatever happens next: a state is used once.
pub(crate) fn take_pending(
    session: &Session,
    config: &Config,
    state: &str,
) -> Result<PendingLogin, AudiusLoginError> {
    let mut list = pending(session);
    // Compare against every entry, so the time taken does not depend on which one matches.
    let mut found = None;
    for (i, p) in list.iter().enumerate() {
        if p.state.matches(state) && found.is_none() {
            found = Some(i);
        }
    }
    let Some(index) = found else {
        return Err(AudiusLoginError::new(
            LoginErrorKind::StateMismatch,
            "This login does not match one started in this browser (or it was already used). Please log in again.",
        ));
    };
    let attempt = list.remove(index);
    if list.is_empty() {
        session.remove(PENDING_KEY);
    } else {
        session
            .insert(PENDING_KEY, &list)
            .map_err(AudiusLoginError::from)?;
    }
    let age = config
        .clock
        .now()
        .unix_timestamp()
        .saturating_sub(attempt.started_at);
    if age > i64::try_from(config.attempt_ttl.as_secs()).unwrap_or(i64::MAX) || age < -60 {
        return Err(AudiusLoginError::new(
            LoginErrorKind::StateExpired,
            "This login attempt expired. Please log in again.",
        ));
    }
    Ok(attempt)
}

/// The signed-in user as the session keeps it: one-letter keys, the time as Unix nanoseconds
/// (no RFC 3339 to parse on every request), the picture URLs' common prefix written once. The
/// session is a cookie by default, so every byte here is sent, decrypted and parsed on every
/// request.
#[derive(Debug, Serialize, Deserialize)]
struct StoredUser {
    #[serde(rename = "i")]
    id: u64,
    #[serde(rename = "x")]
    hashid: String,
    #[serde(rename = "h")]
    handle: String,
    #[serde(rename = "n")]
    name: String,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(rename = "v", default, skip_serializing_if = "std::ops::Not::not")]
    verified: bool,
    /// `[prefix, 150x150 suffix, 480x480 suffix, 1000x1000 suffix, mirrors...]`, `null` for a
    /// missing size.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    picture: Vec<Option<String>>,
    #[serde(rename = "t")]
    signed_in_at: i64,
    #[serde(rename = "u", default, skip_serializing_if = "is_zero")]
    signed_in_nanos: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn pack_picture(picture: Option<&ProfilePicture>) -> Vec<Option<String>> {
    let Some(p) = picture else {
        return Vec::new();
    };
    let sizes = [&p.small, &p.medium, &p.large];
    let mut prefix: Option<&str> = None;
    for url in sizes.iter().filter_map(|u| u.as_deref()) {
        prefix = Some(match prefix {
            None => url,
            Some(pre) => {
                let common = pre
                    .char_indices()
                    .zip(url.chars())
                    .find(|((_, a), b)| a != b)
                    .map_or(pre.len().min(url.len()), |((i, _), _)| i);
                &pre[..common]
            }
        });
    }
    let prefix = prefix.unwrap_or("");
    let mut out = vec![Some(prefix.to_owned())];
    out.extend(
        sizes
            .iter()
            .map(|u| u.as_deref().map(|u| u[prefix.len()..].to_owned())),
    );
    out.extend(p.mirrors.iter().cloned().map(Some));
    out
}

fn unpack_picture(packed: Vec<Option<String>>) -> Result<Option<ProfilePicture>, &'static str> {
    if packed.is_empty() {
        return Ok(None);
    }
    if packed.len() < 4 {
        return Err("a picture with fewer than four parts");
    }
    let mut parts = packed.into_iter();
    let prefix = parts.next().flatten().ok_or("a picture without a prefix")?;
    let mut url = || {
        parts.next().flatten().map(|s| {
            let mut url = String::with_capacity(prefix.len() + s.len());
            url.push_str(&prefix);
            url.push_str(&s);
            url
        })
    };
    let mut picture = ProfilePicture::default();
    picture.small = url();
    picture.medium = url();
    picture.large = url();
    picture.mirrors = parts
        .map(|m| m.ok_or("a null mirror"))
        .collect::<Result<_, _>>()?;
    Ok(Some(picture))
}

impl StoredUser {
    fn new(user: &AudiusUser) -> Self {
        Self {
            id: user.id,
            hashid: user.hashid.clone(),
            handle: user.handle.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            verified: user.verified,
            picture: pack_picture(user.profile_picture.as_ref()),
            signed_in_at: user.signed_in_at.unix_timestamp(),
            signed_in_nanos: user.signed_in_at.nanosecond(),
        }
    }

    fn into_user(self) -> Result<AudiusUser, &'static str> {
        Ok(AudiusUser::new(AudiusUserData {
            id: self.id,
            hashid: self.hashid,
            handle: self.handle,
            name: self.name,
            email: self.email,
            verified: self.verified,
            profile_picture: unpack_picture(self.picture)?,
            signed_in_at: OffsetDateTime::from_unix_timestamp(self.signed_in_at)
                .ok()
                .and_then(|t| t.replace_nanosecond(self.signed_in_nanos).ok())
                .ok_or("a sign-in time out of range")?,
        }))
    }
}

/// Most bytes the signed-in user may take in the session, as stored: 1,536 (an Audius profile
/// takes about 500). Its fields come from the token's claims with
/// `ProfileSource::TokenClaims`, where a user signing their own token chooses them: without a
/// bound, a profile of kilobytes would push a cookie session past what browsers keep (and
/// actix-session's cookie store would answer `500`). Measured as actix-session stores it (the
/// user's JSON, as a JSON string: a quote or a backslash takes four bytes there, not two: review
/// 9), it leaves room for the code flow's tokens in a 4 KiB cookie. Refused with `413
/// token_too_large`.
pub(crate) const MAX_USER_BYTES: usize = 1536;

/// Signs the user in: a new session id, no pending attempts, the user stored. A user over
/// [`MAX_USER_BYTES`] is refused first, the session untouched.
pub(crate) fn sign_in(session: &Session, user: &AudiusUser) -> Result<(), AudiusLoginError> {
    let stored = StoredUser::new(user);
    let size = serde_json::to_string(&stored)
        .and_then(|text| serde_json::to_string(&text))
        .map_or(usize::MAX, |text| text.len());
    if size > MAX_USER_BYTES {
        return Err(AudiusLoginError::new(
            LoginErrorKind::TokenTooLarge,
            format!(
                "The Audius profile is over {MAX_USER_BYTES} bytes: too large to keep in the \
                 session."
            ),
        ));
    }
    session.renew();
    session.remove(PENDING_KEY);
    session
        .insert(USER_KEY, stored)
        .map_err(AudiusLoginError::from)
}

/// How many parsed users each worker thread keeps, by the session text they came from.
const PARSED_USERS_PER_THREAD: usize = 512;

thread_local! {
    /// Users already parsed on this thread, keyed by the exact session text they were parsed
    /// from (least recently used first out). Parsing is a pure function of that text, which the
    /// session store authenticated, so a hit gives exactly what parsing would: a signed-in user
    /// making request after request is parsed once, not on every request.
    static PARSED_USERS: RefCell<LruCache<Box<str>, AudiusUser>> = RefCell::new(LruCache::new(
        NonZeroUsize::new(PARSED_USERS_PER_THREAD).unwrap_or(NonZeroUsize::MIN),
    ));
}

/// The user in the session's text: the compact form, or the form sessions written before it
/// hold (`AudiusUser`'s own serialization).
fn parse_user(text: &str) -> Result<AudiusUser, String> {
    serde_json::from_str::<StoredUser>(text)
        .map_err(|e| e.to_string())
        .and_then(|u| u.into_user().map_err(str::to_owned))
        .or_else(|e| serde_json::from_str::<AudiusUser>(text).map_err(|_| e))
}

/// The user in the session's text, parsed at most once per thread for the same text.
fn parse_user_memoized(text: &str) -> Result<AudiusUser, String> {
    let hit = PARSED_USERS.with(|memo| memo.borrow_mut().get(text).cloned());
    if let Some(user) = hit {
        return Ok(user);
    }
    let user = parse_user(text)?;
    PARSED_USERS.with(|memo| memo.borrow_mut().put(text.into(), user.clone()));
    Ok(user)
}

/// The signed-in user, if any and still within the login deadline. An unreadable or expired
/// entry is removed.
pub(crate) fn read_user(session: &Session, config: Option<&Config>) -> Option<AudiusUser> {
    let parsed = {
        let entries = session.entries();
        parse_user_memoized(entries.get(USER_KEY)?)
    };
    let user = match parsed {
        Ok(user) => user,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable Audius user in the session; treating as signed out");
            session.remove(USER_KEY);
            return None;
        }
    };
    if let Some((deadline, now)) = config.and_then(|c| c.login_deadline.map(|d| (d, c.clock.now())))
        && now - user.signed_in_at > deadline
    {
        session.remove(USER_KEY);
        return None;
    }
    Some(user)
}

/// When the user signed in, for a fresh `AudiusUser`.
pub(crate) fn now(config: &Config) -> OffsetDateTime {
    config.clock.now()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn user(picture: Option<ProfilePicture>) -> AudiusUser {
        AudiusUser::new(AudiusUserData {
            id: 7,
            hashid: "OeJ7n".into(),
            handle: "artist".into(),
            name: "Ari \"Artist\" ✔".into(),
            email: Some("artist@sandbox.audius.invalid".into()),
            verified: true,
            profile_picture: picture,
            signed_in_at: OffsetDateTime::from_unix_timestamp(1_750_000_000)
                .unwrap()
                .replace_nanosecond(123_456_789)
                .unwrap(),
        })
    }

    fn round_trip(u: &AudiusUser) -> AudiusUser {
        let json = serde_json::to_string(&StoredUser::new(u)).unwrap();
        serde_json::from_str::<StoredUser>(&json)
            .unwrap()
            .into_user()
            .unwrap()
    }

    /// A picture in the three sizes, under one prefix.
    fn three_sizes() -> ProfilePicture {
        let mut picture = ProfilePicture::default();
        picture.small = Some("https://cn.example/content/Qm1/150x150.jpg".into());
        picture.medium = Some("https://cn.example/content/Qm1/480x480.jpg".into());
        picture.large = Some("https://cn.example/content/Qm1/1000x1000.jpg".into());
        picture
    }

    #[test]
    fn the_compact_form_keeps_everything() {
        let mut full = three_sizes();
        full.mirrors = vec!["https://m1.example".into(), "https://m2.example".into()];
        let mut partial = ProfilePicture::default();
        partial.medium = Some("https://cn.example/ü/480x480.jpg".into());
        let mut mirrors_only = ProfilePicture::default();
        mirrors_only.mirrors = vec!["https://m1.example".into()];
        for picture in [None, Some(full), Some(partial), Some(mirrors_only)] {
            let u = user(picture);
            assert_eq!(round_trip(&u), u);
        }
    }

    #[test]
    fn the_compact_form_is_smaller_and_old_sessions_still_read() {
        let u = user(Some(three_sizes()));
        let old = serde_json::to_string(&u).unwrap();
        let new = serde_json::to_string(&StoredUser::new(&u)).unwrap();
        assert!(
            new.len() * 3 < old.len() * 2,
            "{} vs {}",
            new.len(),
            old.len()
        );
        // A session written in the old form: read through the fallback.
        assert!(serde_json::from_str::<StoredUser>(&old).is_err());
        assert_eq!(serde_json::from_str::<AudiusUser>(&old).unwrap(), u);
    }

    #[test]
    fn parsed_users_are_kept_by_their_exact_text() {
        let a = user(None);
        let mut b = user(None);
        b.handle = "other".into();
        let text_a = serde_json::to_string(&StoredUser::new(&a)).unwrap();
        let text_b = serde_json::to_string(&StoredUser::new(&b)).unwrap();
        for _ in 0..3 {
            assert_eq!(parse_user_memoized(&text_a).unwrap(), a);
            assert_eq!(parse_user_memoized(&text_b).unwrap(), b);
        }
        assert!(PARSED_USERS.with(|m| m.borrow().contains(text_a.as_str())));
        // An unreadable text is an error every time, and is not kept.
        let broken = &text_a[..text_a.len() - 1];
        assert!(parse_user_memoized(broken).is_err());
        assert!(parse_user_memoized(broken).is_err());
        assert!(!PARSED_USERS.with(|m| m.borrow().contains(broken)));
        // Bounded: the oldest text goes first.
        for i in 0..PARSED_USERS_PER_THREAD as u64 {
            let mut u = user(None);
            u.id = 1000 + i;
            parse_user_memoized(&serde_json::to_string(&StoredUser::new(&u)).unwrap()).unwrap();
        }
        PARSED_USERS.with(|m| {
            let m = m.borrow();
            assert_eq!(m.len(), PARSED_USERS_PER_THREAD);
            assert!(!m.contains(text_a.as_str()));
        });
    }

    #[test]
    fn a_broken_compact_picture_is_an_error_not_a_panic() {
        for packed in [
            vec![Some("p".to_owned())],
            vec![None, None, None, None],
            vec![Some("p".into()), None, None, None, None],
        ] {
            assert!(unpack_picture(packed).is_err());
        }
    }
}
