//! `token inspect` and `token verify`.

use std::time::Duration;

use audius_login::defaults::MAX_TOKEN_BYTES;
use audius_login::verify::ProfileSource;
use audius_login::{
    ApiClient, ApiVerifier, Error, ErrorKind, LocalVerifier, Token, VerifiedProfile, Verifier,
    VerifyOptions, Wallet,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

use crate::cli::{InspectArgs, VerifyArgs};
use crate::duration;
use crate::input::{InputError, token_from_arg};
use crate::output::{
    Exit, Report, Table, audius_status, clean, error_fields, error_text, simple_failure,
};

/// The failure for a token that could not be read: exit 2.
fn input_failure(error: &InputError) -> Report {
    simple_failure(Exit::BadInput, error.kind(), &error.message())
}

/// RFC 3339 text of a time, or `None` when it has no RFC 3339 form (a year outside 0..=9999).
fn rfc3339(at: Option<OffsetDateTime>) -> Option<String> {
    at.and_then(|t| t.format(&Rfc3339).ok())
}

/// `2025-11-28T00:00:00Z (3d ago)`, for text output.
fn when(at: Option<OffsetDateTime>) -> Option<String> {
    let at_text = rfc3339(at)?;
    let at = at?;
    let seconds = (OffsetDateTime::now_utc() - at).whole_seconds();
    let span = |s: i64| {
        let s = s.unsigned_abs();
        match s {
            0..120 => format!("{s}s"),
            120..7_200 => format!("{}m", s / 60),
            7_200..172_800 => format!("{}h", s / 3_600),
            _ => format!("{}d", s / 86_400),
        }
    };
    Some(if seconds >= 0 {
        format!("{at_text} ({} ago)", span(seconds))
    } else {
        format!("{at_text} ({} in the future)", span(seconds))
    })
}

/// `token inspect`.
pub(crate) fn inspect(args: &InspectArgs) -> Report {
    let text = match token_from_arg(&args.token) {
        Ok(t) => t,
        Err(e) => return input_failure(&e),
    };
    match Token::parse_and_recover(&text, MAX_TOKEN_BYTES) {
        Ok((token, signer)) => inspected(&token, signer),
        Err(e) => Report::failure(Exit::BadInput, error_fields(&e), error_text(&e, None)),
    }
}

/// The report on a token that decodes.
fn inspected(token: &Token, signer: Wallet) -> Report {
    let claims = token.claims();
    let header = token
        .header()
        .map_or(Value::Null, |h| Value::Object(h.clone()));
    let json = json!({
        "header": header,
        "claims": Value::Object(claims.as_map().clone()),
        "signer": signer.to_string(),
        "user_id": claims.user_id.get(),
        "user_id_hash": claims.user_id.hashid(),
        "issued_at": rfc3339(claims.issued_at()),
    });

    let mut table = Table::new();
    table
        .row(
            "signer",
            format!("{signer} (recovered; `token verify` checks it owns the account)"),
        )
        .row("user id", claims.user_id.get().to_string())
        .row("user hashid", claims.user_id.hashid())
        .row(
            "issued at",
            when(claims.issued_at()).unwrap_or_else(|| "(no usable iat)".to_owned()),
        )
        .row(
            "header",
            if header.is_null() {
                "(does not decode; ignored, as Audius ignores it)".to_owned()
            } else {
                clean(&header.to_string())
            },
        );
    let mut claim_rows = Table::new();
    for (name, value) in claims.as_map() {
        claim_rows.row(clean(name), clean(&value.to_string()));
    }
    let text = format!("{}claims\n{}", table.render(0), claim_rows.render(2));
    Report::ok(json, text)
}

/// `token verify`.
pub(crate) fn verify(args: &VerifyArgs) -> Report {
    let token = match token_from_arg(&args.token) {
        Ok(t) => t,
        Err(e) => return input_failure(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return simple_failure(
                Exit::Refused,
                "internal",
                &format!("could not start the async runtime: {e}"),
            );
        }
    };
    let result = runtime.block_on(run_verify(
        &token,
        &args.api,
        args.local,
        args.max_age,
        args.timeout,
    ));
    // Do not wait for work left behind by the deadline (such as a name lookup that hangs): the
    // answer is known, and the timeout promised.
    runtime.shutdown_background();
    match result {
        Ok(profile) => verified(&profile, &args.api, args.local),
        Err(e) => {
            let status = audius_status(&e);
            let mut fields = error_fields(&e);
            fields.insert("status".into(), status.map_or(Value::Null, Value::from));
            let exit = if e.kind() == ErrorKind::Config {
                Exit::BadInput
            } else {
                Exit::Refused
            };
            Report::failure(exit, fields, error_text(&e, status))
        }
    }
}

/// Verifies `token` through the API at `api`, or locally, within `timeout` in all.
async fn run_verify(
    token: &str,
    api: &Url,
    local: bool,
    max_age: Option<Duration>,
    timeout: Duration,
) -> Result<VerifiedProfile, Error> {
    let client = ApiClient::builder()
        .base_url(api.clone())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("audius-login-cli/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let options = VerifyOptions::default().max_age(max_age);
    let verification = async {
        if local {
            LocalVerifier::new(client)
                .options(options)
                .verify(token)
                .await
        } else {
            ApiVerifier::new(client)
                .options(options)
                .verify(token)
                .await
        }
    };
    match tokio::time::timeout(timeout, verification).await {
        Ok(result) => result,
        Err(_) => Err(Error::UpstreamUnavailable {
            message: format!(
                "no complete answer from {api} within {} (--timeout)",
                duration::show(timeout)
            ),
            status: None,
        }),
    }
}

/// The report on a verified token.
fn verified(profile: &VerifiedProfile, api: &Url, local: bool) -> Report {
    let json = serde_json::to_value(profile).unwrap_or_else(|e| {
        json!({"error": {"kind": "internal", "message": format!("the profile does not serialise: {e}")}})
    });
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut table = Table::new();
    table
        .row(
            "verified",
            if local {
                format!("locally (signature recovered here; user record from {api})")
            } else {
                format!("by the Audius API at {api}")
            },
        )
        .row(
            "user id",
            format!(
                "{} (hashid {})",
                profile.user_id.get(),
                profile.user_id.hashid()
            ),
        )
        .row("handle", format!("@{}", clean(&profile.handle)))
        .row("name", clean(&profile.name))
        .row("verified artist", yes_no(profile.verified))
        .row(
            "email",
            profile.email.as_deref().map_or_else(
                || "(none in the token)".to_owned(),
                |e| format!("{} (from the token: the user's own word)", clean(e)),
            ),
        );
    if let Some(wallet) = profile.wallet {
        table.row("wallet", wallet.to_string());
    }
    if let Some(signer) = profile.signer {
        let note = if profile.wallet.is_some_and(|w| w != signer) {
            " (an approved manager signed for the account)"
        } else {
            ""
        };
        table.row("signer", format!("{signer}{note}"));
    }
    table.row(
        "issued at",
        when(profile.issued_at).unwrap_or_else(|| "(no usable iat)".to_owned()),
    );
    if let Some(url) = profile.profile_picture.as_ref().and_then(|p| p.best(480)) {
        table.row("picture", clean(url));
    }
    table.row(
        "profile from",
        match profile.source {
            ProfileSource::UserRecord => "Audius' user record",
            ProfileSource::TokenClaims => "the token's claims",
            _ => "elsewhere",
        },
    );
    Report::ok(json, table.render(0))
}
