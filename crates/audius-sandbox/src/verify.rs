//! `GET /v1/users/verify_token`: the algorithm of spec section 4.1, step by step, in its order,
//! with its status codes and texts (current Go server: no trailing full stop).
//!
//! | step | failure |
//! |---|---|
//! | `token` present (and not empty) | 400 `Missing token: the token query parameter is required` |
//! | split on `.` into exactly 3 parts | 400 `Invalid JWT token format` |
//! | base64url-decode part 3 (padding optional) | 400 `The JWT signature could not be decoded` |
//! | hex-decode (with or without `0x`); 65 bytes | 400 `The JWT signature was incorrectly signed` |
//! | `v >= 27` → `v -= 27`; recover the key over the EIP-191 hash of `part1.part2` | 404 `The JWT signature is invalid - wallet could not be recovered` |
//! | base64url-decode part 2 | 400 `JWT payload could not be decoded` |
//! | parse it as a JSON object | 400 `JWT payload could not be unmarshalled` |
//! | `userId` present | 400 `JWT payload missing userId field` |
//! | `userId` is a string | 400 `JWT payload userId must be a string` |
//! | `userId` decodes (decimal, else hashid) | 400 `Invalid JWT payload userId` |
//! | a current, active user owns the recovered wallet (lower-case compare) | 404 `The JWT signature is invalid - invalid wallet` |
//! | that user is the token's user, or an approved, non-revoked manager of it; and the token's user is not deactivated | 403 `The JWT signature is invalid - the wallet does not match the user` |
//! | success | 200 `{"data": <the payload, key order kept, iat turned into a string>}` |
//!
//! The first row's text is the sandbox's own (the spec gives only the status). A token longer
//! than [`MAX_TOKEN_BYTES`] is refused with 400 before any step.
//!
//! Deactivated accounts: the sandbox treats a deactivated user as owning no wallet (so its own
//! tokens, and its tokens as a manager, are 404 "invalid wallet"), and refuses a manager's token
//! for a deactivated account with 403. Audius' current `verify_token` looks the wallet up among
//! current users without looking at `is_deactivated`; its authentication of API requests does
//! exclude deactivated users, and its login page does not sign for them. The sandbox takes the
//! stricter reading, which the local verifier of `audius-login` shares.

use audius_login::UserId;
use audius_login::token::{Signature, decode_segment, eip191_hash};
use serde_json::{Map, Value, json};

use crate::users::SandboxUsers;

/// Longest token the endpoint reads: 32 KiB.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// Text of a missing or empty `token` parameter.
pub const MISSING_TOKEN: &str = "Missing token: the token query parameter is required";
/// Text of a token over [`MAX_TOKEN_BYTES`].
pub const TOKEN_TOO_LONG: &str = "The JWT token is too long";
/// Step 2.
pub const INVALID_FORMAT: &str = "Invalid JWT token format";
/// Step 3.
pub const SIGNATURE_NOT_DECODED: &str = "The JWT signature could not be decoded";
/// Step 4.
pub const SIGNATURE_INCORRECTLY_SIGNED: &str = "The JWT signature was incorrectly signed";
/// Step 5.
pub const WALLET_NOT_RECOVERED: &str =
    "The JWT signature is invalid - wallet could not be recovered";
/// Step 6.
pub const PAYLOAD_NOT_DECODED: &str = "JWT payload could not be decoded";
/// Step 7.
pub const PAYLOAD_NOT_UNMARSHALLED: &str = "JWT payload could not be unmarshalled";
/// Step 8.
pub const MISSING_USER_ID: &str = "JWT payload missing userId field";
/// Step 9.
pub const USER_ID_NOT_STRING: &str = "JWT payload userId must be a string";
/// Step 10.
pub const INVALID_USER_ID: &str = "Invalid JWT payload userId";
/// Step 11.
pub const INVALID_WALLET: &str = "The JWT signature is invalid - invalid wallet";
/// Step 12.
pub const WALLET_DOES_NOT_MATCH: &str =
    "The JWT signature is invalid - the wallet does not match the user";

/// The endpoint's answer: a status and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyAnswer {
    /// HTTP status.
    pub status: u16,
    /// `{"data": ...}` on success, `{"code": status, "error": text}` otherwise.
    pub body: Value,
}

impl VerifyAnswer {
    fn error(status: u16, text: &str) -> Self {
        Self {
            status,
            body: json!({"code": status, "error": text}),
        }
    }
}

/// Runs the algorithm on a `token` parameter (`None` when absent) against the sandbox's users.
pub fn verify_token(token: Option<&str>, directory: &SandboxUsers) -> VerifyAnswer {
    // Step 1: the token is present.
    let token = match token {
        Some(t) if !t.is_empty() => t,
        _ => return VerifyAnswer::error(400, MISSING_TOKEN),
    };
    if token.len() > MAX_TOKEN_BYTES {
        return VerifyAnswer::error(400, TOKEN_TOO_LONG);
    }

    // Step 2: exactly three parts.
    let parts: Vec<&str> = token.split('.').collect();
    let [header_part, payload_part, signature_part] = parts.as_slice() else {
        return VerifyAnswer::error(400, INVALID_FORMAT);
    };

    // Step 3: the third part is base64url (padding optional).
    let Some(signature_text) = decode_segment(signature_part) else {
        return VerifyAnswer::error(400, SIGNATURE_NOT_DECODED);
    };

    // Step 4: hex, with or without 0x, of exactly 65 bytes.
    let hex_text = signature_text
        .strip_prefix(b"0x")
        .or_else(|| signature_text.strip_prefix(b"0X"))
        .unwrap_or(&signature_text);
    let Ok(signature_bytes) = hex::decode(hex_text) else {
        return VerifyAnswer::error(400, SIGNATURE_INCORRECTLY_SIGNED);
    };
    let Ok(signature_bytes) = <[u8; 65]>::try_from(signature_bytes) else {
        return VerifyAnswer::error(400, SIGNATURE_INCORRECTLY_SIGNED);
    };

    // Step 5: v >= 27 becomes v - 27, once (`Signature::recovery_id`: a `v` of 54 is 27 then,
    // which recovers nothing: review 13); recover the signer over the EIP-191 hash of the
    // signed text, the first two parts exactly as sent.
    let signed_text = format!("{header_part}.{payload_part}");
    let Ok(signer) = Signature::from_bytes(signature_bytes)
        .recover_prehashed(&eip191_hash(signed_text.as_bytes()))
    else {
        return VerifyAnswer::error(404, WALLET_NOT_RECOVERED);
    };
    let signer_text = signer.to_string().to_ascii_lowercase();

    // Step 6: the payload is base64url.
    let Some(payload_bytes) = decode_segment(payload_part) else {
        return VerifyAnswer::error(400, PAYLOAD_NOT_DECODED);
    };

    // Step 7: the payload is a JSON object.
    let Ok(payload) = serde_json::from_slice::<Map<String, Value>>(&payload_bytes) else {
        return VerifyAnswer::error(400, PAYLOAD_NOT_UNMARSHALLED);
    };

    // Step 8: userId is present.
    let Some(user_id_value) = payload.get("userId") else {
        return VerifyAnswer::error(400, MISSING_USER_ID);
    };

    // Step 9: userId is a string (the current server refuses the legacy numbers).
    let Value::String(user_id_text) = user_id_value else {
        return VerifyAnswer::error(400, USER_ID_NOT_STRING);
    };

    // Step 10: userId decodes, as a decimal id or else as a hashid (into Go's 64-bit int: an
    // id of 2^31 or more too, which `UserId::parse` refuses).
    let user_id = match UserId::parse(user_id_text) {
        Ok(id) => id,
        Err(e) => match e.out_of_range() {
            Some(wide) => UserId::new(wide),
            None => return VerifyAnswer::error(400, INVALID_USER_ID),
        },
    };

    // Step 11: a current, active user owns the recovered wallet (lower-case compare).
    let Some(owner) = directory
        .users()
        .iter()
        .find(|u| !u.deactivated && u.wallet.to_string().to_ascii_lowercase() == signer_text)
    else {
        return VerifyAnswer::error(404, INVALID_WALLET);
    };

    // Step 12: the owner is the token's user, or an approved, non-revoked manager of it; and
    // the token's user is not deactivated.
    // As Go compares them: `int32(walletUserId) != int32(jwtUserId)`.
    let is_user = owner.id.get() as i32 == user_id.get() as i32;
    let is_manager = directory
        .grants()
        .iter()
        .any(|g| g.user == user_id && g.manager == owner.id && g.is_approved && !g.is_revoked);
    let account_active = directory.by_id(user_id).is_none_or(|u| !u.deactivated);
    if !(is_user || is_manager) || !account_active {
        return VerifyAnswer::error(403, WALLET_DOES_NOT_MATCH);
    }

    // Success: the whole payload, in its order, with iat turned into a string.
    let mut data = payload;
    if let Some(iat) = data.get_mut("iat")
        && let Value::Number(n) = iat
    {
        *iat = Value::String(n.to_string());
    }
    VerifyAnswer {
        status: 200,
        body: json!({ "data": data }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use audius_login::Token;

    fn sign(user: &str, payload: &str) -> String {
        let users = SandboxUsers::builtin();
        let key = users.get(user).unwrap().secret_key();
        Token::sign_raw(
            br#"{"typ":"JWT","alg":"keccak256"}"#,
            payload.as_bytes(),
            key,
        )
        .unwrap()
    }

    #[test]
    fn steps() {
        let users = SandboxUsers::builtin();
        let ok = verify_token(
            Some(&sign(
                "listener",
                r#"{"userId":"eYorL","b":1,"iat":1700000000,"a":2}"#,
            )),
            &users,
        );
        assert_eq!(ok.status, 200);
        assert_eq!(
            serde_json::to_string(&ok.body).unwrap(),
            r#"{"data":{"userId":"eYorL","b":1,"iat":"1700000000","a":2}}"#
        );
        let decimal = verify_token(Some(&sign("artist", r#"{"userId":"7"}"#)), &users);
        assert_eq!(decimal.status, 200);
        let numeric = verify_token(Some(&sign("artist", r#"{"userId":7}"#)), &users);
        assert_eq!(numeric.body["error"], USER_ID_NOT_STRING);
        let managed = users.get("managed").unwrap().hashid();
        let by_manager = sign("manager", &format!(r#"{{"userId":"{managed}"}}"#));
        assert_eq!(verify_token(Some(&by_manager), &users).status, 200);
        let by_revoked = sign("revoked", &format!(r#"{{"userId":"{managed}"}}"#));
        assert_eq!(verify_token(Some(&by_revoked), &users).status, 403);
        // The manager of `managed` is not a manager of anyone else.
        let by_manager_for_artist = sign("manager", r#"{"userId":"OeJ7n"}"#);
        assert_eq!(
            verify_token(Some(&by_manager_for_artist), &users).status,
            403
        );
        // A deactivated account owns no wallet; a manager cannot sign for a deactivated one.
        let gone = crate::SandboxUser::new(300u64, "gone", "Gone", crate::Role::Listener)
            .unwrap()
            .deactivated(true);
        let gone_key = *gone.secret_key();
        let gone_id = gone.id.hashid();
        let users = SandboxUsers::builtin()
            .with_user(gone)
            .unwrap()
            .with_grant(crate::Grant::new(
                audius_login::UserId::new(300),
                audius_login::UserId::new(200),
                true,
                false,
            ))
            .unwrap();
        let own = Token::sign_raw(
            br#"{"typ":"JWT","alg":"keccak256"}"#,
            format!(r#"{{"userId":"{gone_id}"}}"#).as_bytes(),
            &gone_key,
        )
        .unwrap();
        assert_eq!(
            verify_token(Some(&own), &users).body["error"],
            INVALID_WALLET
        );
        let by_manager = sign("manager", &format!(r#"{{"userId":"{gone_id}"}}"#));
        assert_eq!(
            verify_token(Some(&by_manager), &users).body["error"],
            WALLET_DOES_NOT_MATCH
        );
        assert_eq!(verify_token(None, &users).status, 400);
        assert_eq!(verify_token(Some(""), &users).body["error"], MISSING_TOKEN);
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            verify_token(Some(&long), &users).body["error"],
            TOKEN_TOO_LONG
        );
        // A broken payload behind an unrecoverable signature is a 404: recovery comes first.
        let zero_sig =
            audius_login::token::encode_segment(format!("0x{}", "0".repeat(130)).as_bytes());
        let t = format!("e30.!!!.{zero_sig}");
        assert_eq!(
            verify_token(Some(&t), &users).body["error"],
            WALLET_NOT_RECOVERED
        );
    }
}
