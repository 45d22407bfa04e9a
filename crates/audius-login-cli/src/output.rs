//! What a command answers: an exit code, a JSON document and readable text; and how it is shown.

use std::io::Write as _;
use std::process::ExitCode;

use audius_login::Error;
use serde_json::{Map, Value, json};

/// The exit codes, as documented in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: done; the token is verified, the URI accepted, the URL built.
    Ok = 0,
    /// 1: refused: verification failed, Audius could not be reached, the redirect URI breaks a
    /// rule.
    Refused = 1,
    /// 2: the input cannot be read (a malformed token, over-size input) or the command line is
    /// wrong.
    BadInput = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A command's answer, in both forms.
#[derive(Debug)]
pub(crate) struct Report {
    /// The exit code.
    pub(crate) exit: Exit,
    /// The machine form (`--json`).
    pub(crate) json: Value,
    /// The readable form.
    pub(crate) text: String,
}

impl Report {
    /// A success.
    pub(crate) fn ok(json: Value, text: String) -> Self {
        Self {
            exit: Exit::Ok,
            json,
            text,
        }
    }

    /// A failure: `fields` become the `error` object of the JSON form, and `text` is shown on
    /// standard error.
    pub(crate) fn failure(exit: Exit, fields: Map<String, Value>, text: String) -> Self {
        Self {
            exit,
            json: json!({ "error": fields }),
            text,
        }
    }

    /// Shows the report (JSON on standard output; text on standard output for a success and on
    /// standard error for a failure) and gives the exit code.
    pub(crate) fn emit(self, as_json: bool) -> ExitCode {
        if as_json {
            print_out(&self.json.to_string());
        } else if self.exit == Exit::Ok {
            print_out(self.text.trim_end());
        } else {
            print_err(self.text.trim_end());
        }
        self.exit.into()
    }
}

/// Writes a line to standard output. A closed pipe (`| head`) is not worth a panic: write errors
/// are ignored.
pub(crate) fn print_out(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Writes a line to standard error, ignoring write errors.
pub(crate) fn print_err(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Makes text from a token or from Audius safe to print to a terminal: control characters
/// (escape sequences, new lines) are shown escaped.
pub(crate) fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Rows of `label  value`, labels padded to one width.
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: Vec<(String, String)>,
}

impl Table {
    /// An empty table.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a row; the value is shown as given (clean it first if it is untrusted).
    pub(crate) fn row(&mut self, label: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.rows.push((label.into(), value.into()));
        self
    }

    /// The rows, each on its own line, values aligned, every line indented by `indent` spaces.
    pub(crate) fn render(&self, indent: usize) -> String {
        let width = self
            .rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (label, value) in &self.rows {
            let pad = width - label.chars().count() + 2;
            out.push_str(&" ".repeat(indent));
            out.push_str(label);
            if value.is_empty() {
                out.push('\n');
                continue;
            }
            out.push_str(&" ".repeat(pad));
            out.push_str(value);
            out.push('\n');
        }
        out
    }
}

/// The words of an error without its prefix: the server's own words when Audius gave them.
pub(crate) fn message_of(error: &Error) -> String {
    match error {
        Error::Malformed { message, .. }
        | Error::BadSignature { message }
        | Error::WalletMismatch { message, .. }
        | Error::Stale { message, .. }
        | Error::UpstreamUnavailable { message, .. }
        | Error::UpstreamUnexpected { message, .. } => message.clone(),
        Error::InvalidRedirectUri(e) => e.message().to_owned(),
        other => other.to_string(),
    }
}

/// The HTTP status Audius answered for this refusal, or would answer (spec section 4.1: 400 for
/// a malformed token, 404 when no wallet can be recovered, 403/404 for a wallet mismatch); `None`
/// when the refusal is not one Audius makes (a stale token, an over-size input).
pub(crate) fn audius_status(error: &Error) -> Option<u16> {
    match error {
        Error::Malformed { .. } => Some(400),
        Error::BadSignature { .. } => Some(404),
        // `None` from the local verifier: it does not know which of 403 and 404 Audius gives.
        Error::WalletMismatch { status, .. } => *status,
        Error::UpstreamUnexpected { status, .. } => Some(*status),
        Error::UpstreamUnavailable { status, .. } => *status,
        _ => None,
    }
}

/// `kind` and `message` of an error, and `part` for a malformed token.
pub(crate) fn error_fields(error: &Error) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("kind".into(), error.kind().as_str().into());
    fields.insert("message".into(), message_of(error).into());
    if let Error::Malformed { part, .. } = error {
        fields.insert("part".into(), part.as_str().into());
    }
    fields
}

/// The text form of an error: `error: <what>` and a line with its kind (and more when known).
pub(crate) fn error_text(error: &Error, status: Option<u16>) -> String {
    let mut details = format!("kind: {}", error.kind());
    if let Error::Malformed { part, .. } = error {
        details.push_str(&format!(", part: {part}"));
    }
    if let Some(status) = status {
        details.push_str(&format!(", Audius status: {status}"));
    }
    format!("error: {}\n  {details}", clean(&error.to_string()))
}

/// A failure with just a kind and a message (input and usage errors).
pub(crate) fn simple_failure(exit: Exit, kind: &str, message: &str) -> Report {
    let mut fields = Map::new();
    fields.insert("kind".into(), kind.into());
    fields.insert("message".into(), message.into());
    Report::failure(exit, fields, format!("error: {}", clean(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let mut t = Table::new();
        t.row("a", "1").row("long label", "2").row("section", "");
        assert_eq!(t.render(2), "  a           1\n  long label  2\n  section\n");
    }

    #[test]
    fn clean_escapes_controls() {
        assert_eq!(clean("Al\u{1b}[31mice\n"), "Al\\u{1b}[31mice\\n");
        assert_eq!(clean("Zoë 🎵"), "Zoë 🎵");
    }

    #[test]
    fn error_shapes() {
        let e = Error::Malformed {
            part: audius_login::TokenPart::Structure,
            message: "Invalid JWT token format".into(),
        };
        let f = error_fields(&e);
        assert_eq!(
            Value::Object(f),
            json!({"kind": "malformed", "message": "Invalid JWT token format", "part": "structure"})
        );
        assert_eq!(audius_status(&e), Some(400));
        let e = Error::UpstreamUnavailable {
            message: "down".into(),
            status: None,
        };
        assert_eq!(audius_status(&e), None);
        assert!(error_text(&e, None).starts_with("error: Audius is unavailable: down"));
    }
}
