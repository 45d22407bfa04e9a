//! [`ApiVerifier`]: verification by Audius' `verify_token` (spec section 4.1).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::ApiClient;
use crate::error::{Error, Result, TokenPart};
use crate::token::Claims;

use super::profile::profile;
use super::{
    PreparedToken, ProfileSource, UserDirectory, VerifiedProfile, Verifier, VerifyOptions,
    observed, parse_logged, unexpected_or_unavailable,
};

/// Verifies through `GET {api}/v1/users/verify_token`, mapping each answer of spec 4.1.
#[derive(Debug)]
pub struct ApiVerifier {
    directory: Arc<UserDirectory>,
    options: VerifyOptions,
}

impl ApiVerifier {
    /// A verifier on this client, with a default [`UserDirectory`] and default options.
    pub fn new(client: ApiClient) -> Self {
        Self::with_directory(Arc::new(UserDirectory::new(client)))
    }

    /// A verifier sharing a user directory (and its cache).
    pub fn with_directory(directory: Arc<UserDirectory>) -> Self {
        Self {
            directory,
            options: VerifyOptions::default(),
        }
    }

    /// Sets the options. Default: [`VerifyOptions::default`].
    pub fn options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// The user directory.
    pub fn directory(&self) -> &Arc<UserDirectory> {
        &self.directory
    }

    /// Maps a `verify_token` answer to the verified claims or the typed error.
    pub fn interpret(answer: &crate::ApiResponse) -> Result<Claims> {
        let message = || answer.error_message();
        match answer.status.as_u16() {
            200 => {
                let body: Value = answer.json()?;
                let data = match body.get("data") {
                    Some(Value::Object(data)) => data.clone(),
                    _ => {
                        return Err(Error::UpstreamUnexpected {
                            status: 200,
                            message: "verify_token answered without a data object".into(),
                        });
                    }
                };
                Claims::from_map(data).map_err(|e| Error::UpstreamUnexpected {
                    status: 200,
                    message: format!("verify_token answered claims that cannot be read: {e}"),
                })
            }
            400 => {
                let message = message();
                Err(Error::Malformed {
                    part: part_of(&message),
                    message,
                })
            }
            403 => Err(Error::WalletMismatch {
                status: Some(403),
                message: message(),
            }),
            404 => {
                let message = message();
                let lower = message.to_ascii_lowercase();
                if lower.contains("could not be recovered") {
                    Err(Error::BadSignature { message })
                } else if lower.contains("invalid wallet") || lower.contains("does not match") {
                    Err(Error::WalletMismatch {
                        status: Some(404),
                        message,
                    })
                } else {
                    Err(Error::UpstreamUnexpected {
                        status: 404,
                        message,
                    })
                }
            }
            status => Err(unexpected_or_unavailable(status, answer)),
        }
    }
}

/// Which part of the token a 400 message of spec 4.1 is about.
fn part_of(message: &str) -> TokenPart {
    let m = message.to_ascii_lowercase();
    if m.contains("userid") {
        TokenPart::UserId
    } else if m.contains("payload") {
        TokenPart::Payload
    } else if m.contains("signature") || m.contains("signed") {
        TokenPart::Signature
    } else if m.contains("format") {
        TokenPart::Structure
    } else {
        TokenPart::Unknown
    }
}

#[async_trait]
impl Verifier for ApiVerifier {
    /// Parses the token and recovers its signer locally (a malformed or unrecoverable token
    /// costs no request), then [`verify_prepared`](Verifier::verify_prepared).
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        let prepared = parse_logged("api", token, self.options.max_token_bytes)?;
        self.verify_prepared(&prepared).await
    }

    /// Checks age and audience on the token's claims, then asks Audius (`verify_token`).
    async fn verify_prepared(&self, prepared: &PreparedToken) -> Result<VerifiedProfile> {
        observed("api", prepared, async {
            let token = prepared.as_str();
            if token.len() > self.options.max_token_bytes {
                return Err(Error::TooLarge {
                    what: crate::error::Limited::Token,
                    limit: self.options.max_token_bytes,
                });
            }
            // Cheap checks first: no request for a stale or foreign token.
            self.options.check_claims(prepared.claims())?;
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", token)
                .finish();
            // The app-wide budget of requests that logins trigger.
            self.directory.spend()?;
            let answer = self
                .directory
                .client()
                .get(&format!("/v1/users/verify_token?{query}"))
                .await?;
            let claims = Self::interpret(&answer)?;
            if claims.user_id != prepared.claims().user_id {
                return Err(Error::UpstreamUnexpected {
                    status: answer.status.as_u16(),
                    message: format!(
                        "verify_token answered user {} for a token of user {}",
                        claims.user_id,
                        prepared.claims().user_id
                    ),
                });
            }
            // The answer's claims are the payload again (iat as a string): judged the same.
            self.options.check_age(&claims)?;
            let record = match self.options.profile_source {
                ProfileSource::UserRecord => Some(
                    self.directory
                        .user(claims.user_id)
                        .await?
                        .ok_or_else(|| Error::UpstreamUnexpected {
                            status: 404,
                            message: format!(
                                "verify_token accepted user {} but the user lookup found no such user",
                                claims.user_id
                            ),
                        })?,
                ),
                ProfileSource::TokenClaims => None,
            };
            Ok(profile(claims, record.as_deref(), self.options.profile_source, None))
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn messages_to_parts() {
        assert_eq!(part_of("Invalid JWT token format"), TokenPart::Structure);
        assert_eq!(
            part_of("The JWT signature could not be decoded"),
            TokenPart::Signature
        );
        assert_eq!(
            part_of("The JWT signature was incorrectly signed."),
            TokenPart::Signature
        );
        assert_eq!(
            part_of("JWT payload could not be unmarshalled"),
            TokenPart::Payload
        );
        assert_eq!(
            part_of("JWT payload missing userId field"),
            TokenPart::UserId
        );
        assert_eq!(part_of("Invalid JWT payload userId"), TokenPart::UserId);
        assert_eq!(part_of("huh"), TokenPart::Unknown);
    }
}
