//! The command line, as clap reads it.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use url::Url;

use crate::duration::{parse_duration, parse_timeout};

/// The long description shown by `--help`: what the tool does, its output and its exit codes.
const LONG_ABOUT: &str = "\
Log In with Audius, from the command line: inspect and verify the tokens the Audius login page \
hands an app, check redirect URIs against the project's rules, and build login page URLs. For \
developers debugging a login, and for scripts.

Every subcommand takes --json: then exactly one JSON document is printed on standard output, \
errors included ({\"error\": {\"kind\": .., \"message\": .., ..}}). Without it the output is \
readable text, and errors go to standard error.

A TOKEN argument may be `-` to read the token from standard input (surrounding whitespace is \
trimmed; more than 64 KiB is refused).

Exit codes:
  0  ok: the token decodes or is verified, the redirect URI is accepted, the URL is built
  1  refused: verification failed (any refusal by Audius or by the local check, a stale token,
     Audius unreachable), or the redirect URI breaks a rule
  2  malformed input or usage error: a token that does not decode (token inspect), input over
     its size limit, a wrong argument or option (clap's own usage errors included)";

/// `audius-login`: Log In with Audius tokens, redirect URIs and login URLs.
#[derive(Debug, Parser)]
#[command(
    name = "audius-login",
    version,
    about = "Inspect and verify Log In with Audius tokens, check redirect URIs, build login URLs",
    long_about = LONG_ABOUT,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Print exactly one JSON document on standard output (errors included) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decode or verify a token.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Judge a redirect URI.
    #[command(name = "redirect-uri", subcommand)]
    RedirectUri(RedirectUriCommand),
    /// Print the URL of the Audius login page for an app.
    #[command(name = "login-url", long_about = LOGIN_URL_ABOUT)]
    LoginUrl(LoginUrlArgs),
}

/// The long description of `login-url`.
const LOGIN_URL_ABOUT: &str = "\
Print the URL of the Audius login page (implicit flow) for an app, and the state it carries.

Without --state a fresh random state is generated and shown: keep it in the user's session and \
compare it with the state that comes back. --redirect-uri postmessage (the popup channel) needs \
--origin. --scope write needs --api-key. Either --app-name or --api-key is required.

Exit codes: 0 the URL is printed; 1 the redirect URI breaks a rule; 2 any other wrong option.";

/// `token ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Decode a token: header, claims, recovered signer, user id and hashid, issue time.
    ///
    /// Decodes in the order the Audius API does. Recovering the signer proves who signed, not
    /// that the signer owns the account: `token verify` checks that.
    ///
    /// Exit codes: 0 the token decodes; 2 it does not (kind malformed or bad_signature), or the
    /// input is too large.
    Inspect(InspectArgs),
    /// Verify a token through the Audius API, or locally, and print the verified profile.
    ///
    /// Without --local: `GET {api}/v1/users/verify_token`, then the user record
    /// (`GET {api}/v1/users/{hashid}`). With --local: the signer is recovered here and compared
    /// with the user's wallet from the same API (and its manager grants,
    /// `GET {api}/v1/users/{hashid}/managers`); verify_token is not called.
    ///
    /// Exit codes: 0 verified; 1 refused, with the error's kind and the HTTP status Audius gave
    /// (or would give; null when the refusal is not Audius': stale, too_large); 2 usage error.
    Verify(VerifyArgs),
}

/// Arguments of `token inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The token, or `-` to read it from standard input.
    #[arg(value_name = "TOKEN|-")]
    pub(crate) token: String,
}

/// Arguments of `token verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The token, or `-` to read it from standard input.
    #[arg(value_name = "TOKEN|-")]
    pub(crate) token: String,

    /// Base URL of the Audius API (any deployment, such as a local sandbox).
    #[arg(long, value_name = "URL", default_value = "https://api.audius.co", value_parser = parse_base_url)]
    pub(crate) api: Url,

    /// Verify locally: recover the signer here and look the user up through --api.
    #[arg(long)]
    pub(crate) local: bool,

    /// Refuse a token issued longer ago than this (or without iat), with 30 s of grace for
    /// clocks that disagree. DURATION: 300, 300s, 5m, 1h, 2d. Default: no limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) max_age: Option<Duration>,

    /// The most the whole verification may take, every request included. DURATION: 300, 300s,
    /// 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub(crate) timeout: Duration,
}

/// `redirect-uri ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RedirectUriCommand {
    /// Judge a redirect URI by the rules of the spec (docs/protocol.md, section 5) and print it
    /// normalised.
    ///
    /// Refused: the schemes javascript:, data:, vbscript: and file:; a fragment (#); userinfo
    /// (user:pass@); a path traversal (/.. or \..), also after percent-decoding; an IP host that
    /// is not loopback; anything that is not a well-formed URI. `postmessage` is accepted.
    ///
    /// Exit codes: 0 accepted; 1 refused, naming the rule (syntax, scheme, fragment, userinfo,
    /// traversal, ip_host).
    Check(CheckArgs),
}

/// Arguments of `redirect-uri check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The redirect URI.
    #[arg(value_name = "URI")]
    pub(crate) uri: String,
}

/// Arguments of `login-url`.
#[derive(Debug, Args)]
pub(crate) struct LoginUrlArgs {
    /// The app's name, shown to the user (required unless --api-key is given).
    #[arg(long, value_name = "NAME", required_unless_present = "api_key")]
    pub(crate) app_name: Option<String>,

    /// Where the answer goes: a URL, or `postmessage` (the popup channel; needs --origin).
    #[arg(long, value_name = "URI")]
    pub(crate) redirect_uri: String,

    /// The app's API key: 40 hex characters (needed for --scope write).
    #[arg(long, value_name = "KEY")]
    pub(crate) api_key: Option<String>,

    /// What the app asks for.
    #[arg(long, value_enum, default_value_t = ScopeArg::Read)]
    pub(crate) scope: ScopeArg,

    /// How the answer comes back to a URL redirect URI.
    #[arg(long, value_enum, default_value_t = ResponseModeArg::Fragment)]
    pub(crate) response_mode: ResponseModeArg,

    /// The opener window's origin (scheme://host, with :port when not the default), required with
    /// postmessage.
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) origin: Option<String>,

    /// The state to send (URL-safe characters). Default: a fresh random one, shown.
    #[arg(long, value_name = "STATE")]
    pub(crate) state: Option<String>,

    /// How the login page shows itself.
    #[arg(long, value_enum, default_value_t = DisplayArg::Popup)]
    pub(crate) display: DisplayArg,

    /// Which Audius: `production`, `staging`, or the base URL of a server serving
    /// `/oauth/auth` (a sandbox).
    #[arg(long, value_name = "ENV", default_value = "production", value_parser = parse_env)]
    pub(crate) env: EnvArg,
}

/// `--scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScopeArg {
    /// Identity only.
    Read,
    /// Act for the user (needs --api-key).
    Write,
}

/// `--response-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ResponseModeArg {
    /// `?state=..&token=..`.
    Query,
    /// `#state=..&token=..`.
    Fragment,
}

/// `--display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DisplayArg {
    /// A popup window.
    Popup,
    /// The whole window.
    #[value(name = "fullScreen")]
    FullScreen,
}

/// `--env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvArg {
    /// `https://audius.co/oauth/auth`.
    Production,
    /// `https://staging.audius.co/oauth/auth`.
    Staging,
    /// A custom base URL serving `/oauth/auth`.
    Custom(Url),
}

/// Parses `--env`: `production`, `staging` or an http(s) base URL.
fn parse_env(input: &str) -> Result<EnvArg, String> {
    match input {
        "production" => Ok(EnvArg::Production),
        "staging" => Ok(EnvArg::Staging),
        _ => parse_base_url(input)
            .map(EnvArg::Custom)
            .map_err(|e| format!("expected production, staging or an http(s) base URL: {e}")),
    }
}

/// Parses a base URL: http or https, with a host, without query or fragment.
pub(crate) fn parse_base_url(input: &str) -> Result<Url, String> {
    let url = Url::parse(input).map_err(|e| format!("{input:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{input:?} is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{input:?} must be a base URL, without user, query or fragment"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn env_values() {
        assert_eq!(parse_env("production"), Ok(EnvArg::Production));
        assert_eq!(parse_env("staging"), Ok(EnvArg::Staging));
        assert!(matches!(
            parse_env("http://127.0.0.1:8080"),
            Ok(EnvArg::Custom(_))
        ));
        for bad in [
            "prod",
            "ftp://x",
            "http://",
            "http://h/?q=1",
            "mailto:a@b",
            "",
        ] {
            assert!(parse_env(bad).is_err(), "{bad:?}");
        }
        assert!(parse_base_url("http://user@h").is_err());
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("2  malformed input or usage error"));
    }
}
