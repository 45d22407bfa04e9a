//! What the example apps share: reading the environment, the embedded sandbox, the session
//! middleware with the right cookie settings, a little HTML, and the demo app itself (so the
//! end-to-end suites drive exactly the demo).
#![forbid(unsafe_code)]
#![allow(missing_docs)]

pub mod demo;

use std::net::TcpListener;

use actix_audius_login::{AudiusLogin, AudiusUser, Environment, ResponseMode, VerifierKind};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::HttpResponse;
use actix_web::cookie::{Key, SameSite};
use audius_sandbox::{Sandbox, SandboxHandle};
use base64::Engine as _;
use url::Url;

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

/// Everything an example app needs, read from the environment.
pub struct Setup {
    /// The Audius login settings.
    pub audius: AudiusLogin,
    pub session_key: Key,
    pub listener: TcpListener,
    pub app_url: Url,
    /// The embedded sandbox, when no `AUDIUS_ENV` was given. Kept alive with the app.
    pub sandbox: Option<SandboxHandle>,
    pub key_was_generated: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Setup {
    /// Reads `BIND`, `AUDIUS_*` and `SESSION_KEY`; starts the embedded sandbox unless
    /// `AUDIUS_ENV` names another Audius.
    pub async fn from_env(default_app_name: &str) -> Result<Self, String> {
        Self::from_env_with(default_app_name, None).await
    }

    /// As [`Setup::from_env`], with a response mode that wins over `AUDIUS_RESPONSE_MODE`.
    pub async fn from_env_with(
        default_app_name: &str,
        forced_mode: Option<ResponseMode>,
    ) -> Result<Self, String> {
        let bind = env("BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listener =
            TcpListener::bind(&bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        let mut addr = listener.local_addr().map_err(|e| e.to_string())?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let app_url = Url::parse(&format!("http://{addr}/")).map_err(|e| e.to_string())?;

        let mode = match forced_mode {
            Some(mode) => mode,
            None => match env("AUDIUS_RESPONSE_MODE").as_deref() {
                None | Some("fragment") => ResponseMode::Fragment,
                Some("query") => ResponseMode::Query,
                Some("postmessage") => ResponseMode::PostMessage,
                Some(other) => {
                    return Err(format!(
                        "AUDIUS_RESPONSE_MODE must be query, fragment or postmessage, not {other:?}"
                    ));
                }
            },
        };
        let verifier = match env("AUDIUS_VERIFIER").as_deref() {
            None | Some("local") => VerifierKind::Local,
            Some("api") => VerifierKind::Api,
            Some(other) => {
                return Err(format!(
                    "AUDIUS_VERIFIER must be local or api, not {other:?}"
                ));
            }
        };
        let (environment, sandbox) = match env("AUDIUS_ENV").as_deref() {
            None | Some("sandbox") => {
                let sandbox = Sandbox::builder()
                    .start()
                    .await
                    .map_err(|e| format!("the embedded sandbox did not start: {e}"))?;
                (sandbox.environment(), Some(sandbox))
            }
            Some("production") => (Environment::Production, None),
            Some("staging") => (Environment::Staging, None),
            Some(url) => {
                let base = Url::parse(url).map_err(|e| {
                    format!("AUDIUS_ENV must be production, staging or a URL, not {url:?} ({e})")
                })?;
                (
                    Environment::custom_base(&base).map_err(|e| e.to_string())?,
                    None,
                )
            }
        };
        let redirect_uri =
            env("AUDIUS_REDIRECT_URI").unwrap_or_else(|| format!("{app_url}auth/audius/callback"));
        let app_name = env("AUDIUS_APP_NAME").unwrap_or_else(|| default_app_name.into());
        let audius = AudiusLogin::builder(app_name, &redirect_uri)
            .response_mode(mode)
            .environment(environment)
            .verifier_kind(verifier)
            .build()
            .map_err(|e| format!("invalid Audius login settings: {e}"))?;

        let (session_key, key_was_generated) = match env("SESSION_KEY") {
            Some(text) => (parse_key(&text)?, false),
            None => (Key::generate(), true),
        };
        Ok(Self {
            audius,
            session_key,
            listener,
            app_url,
            sandbox,
            key_was_generated,
        })
    }

    /// For tests and embedding, without reading the environment: the app answers on `listener`,
    /// at `app_url` (`http://localhost:<port>/` or any address that reaches the listener; the
    /// callback is `{app_url}auth/audius/callback`), talks to the Audius at `environment` (for
    /// example `sandbox.environment()`), and takes the answer through `mode`. The verifier is
    /// the local one; the session key is random; the caller keeps its sandbox (`sandbox` is
    /// `None`).
    pub fn with_environment(
        app_name: &str,
        listener: TcpListener,
        app_url: Url,
        environment: Environment,
        mode: ResponseMode,
    ) -> Result<Self, String> {
        let redirect_uri = app_url
            .join("auth/audius/callback")
            .map_err(|e| format!("cannot make the callback URL from {app_url}: {e}"))?;
        let audius = AudiusLogin::builder(app_name, redirect_uri.as_str())
            .response_mode(mode)
            .environment(environment)
            .verifier_kind(VerifierKind::Local)
            .build()
            .map_err(|e| format!("invalid Audius login settings: {e}"))?;
        Ok(Self {
            audius,
            session_key: Key::generate(),
            listener,
            app_url,
            sandbox: None,
            key_was_generated: true,
        })
    }

    /// Prints where things are.
    pub fn announce(&self) {
        if self.key_was_generated {
            tracing::warn!(
                "SESSION_KEY is not set: using a random key, so sessions end when the app stops \
                 and instances cannot share them"
            );
        }
        println!("Log In with Audius demo listening on {}", self.app_url);
        println!("  channel:   {:?}", self.audius.response_mode());
        println!("  callback:  {}", self.audius.redirect_uri());
        match &self.sandbox {
            Some(sandbox) => {
                println!("  Audius:    embedded sandbox at {}", sandbox.base_url());
                println!(
                    "  users:     {}",
                    sandbox
                        .users()
                        .iter()
                        .map(|u| format!("@{}", u.handle))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            None => println!("  Audius:    {}", self.audius.environment().login_page()),
        }
    }
}

/// A 64-byte cookie key from hex or base64.
fn parse_key(text: &str) -> Result<Key, String> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .ok()
        })
        .ok_or("SESSION_KEY must be 64 bytes written as hex or base64")?;
    if bytes.len() < 64 {
        return Err(format!("SESSION_KEY must be 64 bytes, got {}", bytes.len()));
    }
    Ok(Key::from(&bytes))
}

/// The session middleware with the cookie settings the login needs: `HttpOnly`,
/// `SameSite=Lax` (the login comes back by a top-level cross-site navigation), `Secure` unless
/// the app runs on plain-http localhost.
pub fn session_middleware(audius: &AudiusLogin, key: Key) -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name("audius-demo".into())
        .cookie_secure(audius.cookie_secure())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .build()
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A whole page.
pub fn page(title: &str, body: &str, banner: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{banner}<main>{body}</main>\
         <footer><a href=\"/\">Home</a> · <a href=\"/me\">/me (JSON)</a> · \
         <a href=\"/artists\">/artists (verified artists only)</a></footer></body></html>",
            title = escape(title),
        ))
}

/// Says which Audius the app talks to.
pub fn environment_banner(audius: &AudiusLogin) -> String {
    let origin = audius.environment().login_origin();
    let sandbox = !matches!(
        audius.environment(),
        Environment::Production | Environment::Staging
    );
    format!(
        "<p class=\"banner\" data-audius-origin=\"{o}\">{what} <code>{o}</code> · channel: <code>{mode:?}</code></p>",
        o = escape(&origin),
        what = if sandbox {
            "Audius sandbox at"
        } else {
            "Audius at"
        },
        mode = audius.response_mode(),
    )
}

/// The signed-in user's card, with a logout form.
pub fn profile_card(user: &AudiusUser, logout_path: &str) -> String {
    let picture = match user.picture_url(480) {
        Some(url) => format!(
            "<img class=\"avatar\" src=\"{}\" alt=\"\" width=\"96\" height=\"96\">",
            escape(url)
        ),
        None => "<div class=\"avatar avatar--empty\" aria-hidden=\"true\"></div>".into(),
    };
    let badge = if user.verified {
        "<span class=\"badge\" data-verified=\"true\" title=\"Verified artist\">✔ verified artist</span>"
    } else {
        "<span class=\"badge badge--plain\" data-verified=\"false\">listener</span>"
    };
    format!(
        "<section class=\"profile\" id=\"profile\" data-handle=\"{handle}\">{picture}<div>\
         <h1><span data-field=\"name\">{name}</span> {badge}</h1>\
         <p>@<span data-field=\"handle\">{handle}</span> · id <code>{id}</code> (<code>{hashid}</code>)</p>\
         <p>email: <span data-field=\"email\">{email}</span></p>\
         <p>signed in at {at}</p>\
         <form method=\"post\" action=\"{logout}\"><button id=\"logout\" type=\"submit\">Log out</button></form>\
         </div></section>",
        handle = escape(&user.handle),
        name = escape(&user.name),
        id = user.id,
        hashid = escape(&user.hashid),
        email = escape(user.email.as_deref().unwrap_or("(none)")),
        at = user.signed_in_at,
        logout = escape(logout_path),
    )
}

/// In popup mode, shows the profile in place when the login succeeds (no reload).
pub const IN_PLACE_SCRIPT: &str = r#"<script>
document.addEventListener('audius-login:success', function (event) {
  event.preventDefault();
  var user = event.detail.user;
  var box = document.getElementById('profile');
  box.setAttribute('data-handle', user.handle);
  box.className = 'profile';
  box.textContent = '';
  var h = document.createElement('h1');
  h.textContent = user.name + (user.verified ? ' ✔ verified artist' : '');
  var p = document.createElement('p');
  p.textContent = '@' + user.handle + ' · email: ' + (user.email || '(none)');
  var a = document.createElement('a');
  a.href = '/';
  a.textContent = 'Continue';
  box.append(h, p, a);
  document.getElementById('login').hidden = true;
});
</script>"#;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;\
background:#f7f5fa;color:#1b1b1f}main{max-width:40rem;margin:2rem auto;padding:1.5rem 2rem;\
background:#fff;border-radius:16px;box-shadow:0 2px 12px rgba(40,0,80,.08)}h1{font-size:1.5rem}\
.banner{margin:0;padding:.5rem 1rem;background:#2b0a48;color:#eadcff;font-size:.85rem}\
.banner code{color:#fff}footer{text-align:center;font-size:.85rem;margin:1rem}a{color:#7e1bcc}\
.profile{display:flex;gap:1.25rem;align-items:flex-start}.avatar{border-radius:50%;flex:none;\
width:96px;height:96px;background:#e8ddf3}.badge{font-size:.8rem;background:#7e1bcc;color:#fff;\
border-radius:999px;padding:.15rem .6rem;vertical-align:middle}.badge--plain{background:#ddd;color:#333}\
button#logout{font:inherit;padding:.4rem 1rem;border-radius:8px;border:1px solid #ccc;background:#fff;cursor:pointer}";
