//! `audius-login`: Log In with Audius from the command line.
//!
//! Inspect and verify the tokens the Audius login page hands an app, check redirect URIs against
//! the project's rules, and build login page URLs; readable text, or one JSON document with
//! `--json`. A thin layer over the `audius-login` crate. See the README for examples and
//! `audius-login --help` for the exit codes.

#![forbid(unsafe_code)]

mod cli;
mod duration;
mod input;
mod login_url;
mod output;
mod redirect_uri;
mod token;

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind as ClapErrorKind;

use crate::cli::{Cli, Command, RedirectUriCommand, TokenCommand};
use crate::output::{Exit, simple_failure};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let report = match &cli.command {
        Command::Token(TokenCommand::Inspect(args)) => token::inspect(args),
        Command::Token(TokenCommand::Verify(args)) => token::verify(args),
        Command::RedirectUri(RedirectUriCommand::Check(args)) => redirect_uri::check(args),
        Command::LoginUrl(args) => login_url::login_url(args),
    };
    report.emit(cli.json)
}

/// Shows a clap error: help and version as clap shows them (exit 0); a usage error as clap shows
/// it (exit 2), or, when `--json` is on the command line, as a JSON error on standard output.
fn usage_error(error: &clap::Error) -> ExitCode {
    let shows_info = matches!(
        error.kind(),
        ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion
    );
    let wants_json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if shows_info || !wants_json {
        let _ = error.print();
        return if shows_info {
            ExitCode::SUCCESS
        } else {
            Exit::BadInput.into()
        };
    }
    let rendered = error.render().to_string();
    let message = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ")
        .to_owned();
    simple_failure(Exit::BadInput, "usage", &message).emit(true)
}
