//! The demo's pages, built with `maud` (every value escaped unless marked `PreEscaped`): the page
//! frame, the banner naming the Audius the app talks to, the signed-in user's card, and the
//! script that shows the user in place after a popup login.

use actix_audius_login::{AudiusUser, Environment};

use crate::Settings;
use actix_web::HttpResponse;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// A whole page: `banner` above the `main` box holding `body`, the demo's links below.
pub(crate) fn page(title: &str, body: Markup, banner: Markup) -> HttpResponse {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (banner)
                main { (body) }
                footer {
                    a href="/" { "Home" } " · "
                    a href="/me" { "/me (JSON)" } " · "
                    a href="/artists" { "/artists (verified artists only)" }
                }
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

/// Says which Audius the app talks to, and through which channel the answer comes back.
pub(crate) fn environment_banner(settings: &Settings) -> Markup {
    let origin = settings.environment.login_origin();
    let sandbox = !matches!(
        settings.environment,
        Environment::Production | Environment::Staging
    );
    html! {
        p.banner data-audius-origin=(origin) {
            (if sandbox { "Audius sandbox at" } else { "Audius at" })
            " " code { (origin) }
            " · channel: " code { (format!("{:?}", settings.response_mode)) }
        }
    }
}

/// The signed-in user's card, with a logout form posting to `logout_path`.
pub(crate) fn profile_card(user: &AudiusUser, logout_path: &str) -> Markup {
    let at = user.signed_in_at;
    let signed_in_at = format!(
        "{} {:02}:{:02}:{:02} UTC",
        at.date(),
        at.hour(),
        at.minute(),
        at.second()
    );
    html! {
        section.profile #profile data-handle=(user.handle) {
            @match user.picture_url(480) {
                Some(url) => { img.avatar src=(url) alt="" width="96" height="96"; }
                None => { div.avatar."avatar--empty" aria-hidden="true" {} }
            }
            div {
                h1 {
                    span data-field="name" { (user.name) }
                    " "
                    @if user.verified {
                        span.badge data-verified="true" title="Verified artist" { "✔ verified artist" }
                    } @else {
                        span.badge."badge--plain" data-verified="false" { "listener" }
                    }
                }
                p {
                    "@" span data-field="handle" { (user.handle) }
                    " · id " code { (user.id) } " (" code { (user.hashid) } ")"
                }
                p { "email: " span data-field="email" { (user.email.as_deref().unwrap_or("(none)")) } }
                p { "signed in at " (signed_in_at) }
                form method="post" action=(logout_path) {
                    button #logout type="submit" { "Log out" }
                }
            }
        }
    }
}

/// In popup mode, shows the profile in place when the login succeeds (no reload).
pub(crate) fn in_place_script() -> Markup {
    html! { script { (PreEscaped(IN_PLACE_JS)) } }
}

const IN_PLACE_JS: &str = r#"
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
"#;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;\
background:#f7f5fa;color:#1b1b1f}main{max-width:40rem;margin:2rem auto;padding:1.5rem 2rem;\
background:#fff;border-radius:16px;box-shadow:0 2px 12px rgba(40,0,80,.08)}h1{font-size:1.5rem}\
.banner{margin:0;padding:.5rem 1rem;background:#2b0a48;color:#eadcff;font-size:.85rem}\
.banner code{color:#fff}footer{text-align:center;font-size:.85rem;margin:1rem}a{color:#7e1bcc}\
.profile{display:flex;gap:1.25rem;align-items:flex-start}.avatar{border-radius:50%;flex:none;\
width:96px;height:96px;background:#e8ddf3}.badge{font-size:.8rem;background:#7e1bcc;color:#fff;\
border-radius:999px;padding:.15rem .6rem;vertical-align:middle}.badge--plain{background:#ddd;color:#333}\
button#logout{font:inherit;padding:.4rem 1rem;border-radius:8px;border:1px solid #ccc;background:#fff;cursor:pointer}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_the_script_is_not() {
        let card = html! { (profile_card_of("<b>x</b>\"'&")) };
        let text = card.into_string();
        assert!(text.contains("&lt;b&gt;x&lt;/b&gt;&quot;'&amp;"), "{text}");
        assert!(!text.contains("<b>"), "{text}");
        let script = in_place_script().into_string();
        assert!(script.starts_with("<script>") && script.contains("event.detail.user"));
        assert!(
            !script.contains("&#39;") && !script.contains("&lt;"),
            "{script}"
        );
    }

    fn profile_card_of(name: &str) -> Markup {
        let user: AudiusUser = serde_json::from_value(serde_json::json!({
            "id": 1,
            "hashid": "7eP5n",
            "handle": name,
            "name": name,
            "verified": false,
            "signed_in_at": "2024-01-02T03:04:05Z",
        }))
        .unwrap_or_else(|e| panic!("a user: {e}"));
        profile_card(&user, "/auth/logout")
    }
}
