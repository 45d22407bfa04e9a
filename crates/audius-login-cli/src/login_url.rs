//! `login-url`.

use audius_login::{
    Display, Environment, LoginUrl, RedirectUri, ResponseMode, Scope, State, error::Error,
};
use serde_json::json;

use crate::cli::{DisplayArg, EnvArg, LoginUrlArgs, ResponseModeArg, ScopeArg};
use crate::output::{Exit, Report, Table, clean, simple_failure};
use crate::redirect_uri::{refusal_fields, refusal_text};

/// A wrong option: exit 2, kind `usage`.
fn usage(message: &str) -> Report {
    simple_failure(Exit::BadInput, "usage", message)
}

/// `login-url`.
pub(crate) fn login_url(args: &LoginUrlArgs) -> Report {
    let redirect_uri = match RedirectUri::parse(&args.redirect_uri) {
        Ok(uri) => uri,
        Err(e) => {
            let mut fields = refusal_fields(&e);
            fields.insert(
                "kind".into(),
                audius_login::ErrorKind::InvalidRedirectUri.as_str().into(),
            );
            return Report::failure(Exit::Refused, fields, refusal_text(&e));
        }
    };
    if redirect_uri.is_post_message() && args.origin.is_none() {
        return usage(
            "--redirect-uri postmessage needs --origin: the origin of the window that opens the \
             login popup, such as https://app.example",
        );
    }
    if args.scope == ScopeArg::Write && args.api_key.is_none() {
        return usage("--scope write needs --api-key (the app's 40-hex-character key)");
    }
    let (state, generated) = match &args.state {
        Some(s) => match State::new(s.clone()) {
            Ok(state) => (state, false),
            Err(e) => return usage(&format!("--state: {}", message(&e))),
        },
        None => (State::generate(), true),
    };
    let environment = match &args.env {
        EnvArg::Production => Environment::Production,
        EnvArg::Staging => Environment::Staging,
        EnvArg::Custom(base) => match Environment::custom_base(base) {
            Ok(env) => env,
            Err(e) => return usage(&format!("--env: {}", message(&e))),
        },
    };
    let mut builder = LoginUrl::builder()
        .redirect_uri(redirect_uri)
        .scope(match args.scope {
            ScopeArg::Read => Scope::Read,
            ScopeArg::Write => Scope::Write,
        })
        .response_mode(match args.response_mode {
            ResponseModeArg::Query => ResponseMode::Query,
            ResponseModeArg::Fragment => ResponseMode::Fragment,
        })
        .display(match args.display {
            DisplayArg::Popup => Display::Popup,
            DisplayArg::FullScreen => Display::FullScreen,
        })
        .state(&state)
        .environment(environment);
    if let Some(name) = &args.app_name {
        builder = builder.app_name(name.clone());
    }
    if let Some(key) = &args.api_key {
        builder = builder.api_key(key.clone());
    }
    if let Some(origin) = &args.origin {
        builder = builder.origin(origin.clone());
    }
    let url = match builder.build() {
        Ok(url) => url,
        Err(e) => return usage(&message(&e)),
    };
    let mut table = Table::new();
    table.row("url", url.as_str()).row(
        "state",
        if generated {
            format!(
                "{} (generated: keep it in the user's session and compare it with the state \
                 that comes back)",
                state.secret()
            )
        } else {
            state.secret().to_owned()
        },
    );
    if let Some(name) = &args.app_name {
        table.row("app name", clean(name));
    }
    Report::ok(
        json!({ "url": url.as_str(), "state": state.secret() }),
        table.render(0),
    )
}

/// The words of a builder error, without the `configuration error:` prefix.
fn message(error: &Error) -> String {
    match error {
        Error::Config(config) => config.reason().to_owned(),
        other => other.to_string(),
    }
}
