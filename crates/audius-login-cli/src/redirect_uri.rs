//! `redirect-uri check`.

use audius_login::RedirectUri;
use audius_login::redirect_uri::RedirectUriError;
use serde_json::{Map, Value, json};

use crate::cli::CheckArgs;
use crate::output::{Exit, Report, Table, clean};

/// `rule` and `message` of a refused redirect URI.
pub(crate) fn refusal_fields(error: &RedirectUriError) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("rule".into(), error.rule().as_str().into());
    fields.insert("message".into(), error.message().into());
    fields
}

/// The text form of a refused redirect URI.
pub(crate) fn refusal_text(error: &RedirectUriError) -> String {
    format!(
        "error: redirect URI refused by the rule {}: {}",
        error.rule(),
        clean(error.message())
    )
}

/// `redirect-uri check`.
pub(crate) fn check(args: &CheckArgs) -> Report {
    match RedirectUri::parse(&args.uri) {
        Ok(uri) => {
            let mut table = Table::new();
            table.row("accepted", uri.as_str());
            if uri.is_post_message() {
                table.row(
                    "channel",
                    "postmessage: the answer is posted to the opener window (needs an origin)",
                );
            } else if uri.as_str() != args.uri {
                table.row("given", clean(&args.uri));
            }
            Report::ok(json!({ "redirect_uri": uri.as_str() }), table.render(0))
        }
        Err(e) => Report::failure(Exit::Refused, refusal_fields(&e), refusal_text(&e)),
    }
}
