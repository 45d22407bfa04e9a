//! Real-browser end-to-end suite: the demo app (exactly `audius_login_examples::demo`) on
//! `localhost`, the Audius sandbox on `127.0.0.1` (another origin and site), and Debian's
//! Chromium, headless, driven through ChromeDriver. Every scenario gets a fresh browser; a
//! failing one prints the browser's windows, page sources and console.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them). Screenshots go to `<target>/e2e-screenshots/`;
//! `AUDIUS_E2E_UPDATE_DOCS=1` also rewrites `docs/images/login-button.png`.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use actix_audius_login::{AudiusLogin, ButtonOptions, ButtonSize, ResponseMode};
use audius_login_e2e::browser::{
    Browser, DemoApp, PageServer, Result, WAIT, scenario, screenshot_dir, wait_until, workspace_dir,
};
use audius_login_e2e::ensure;
use audius_login_e2e::http::query_param;
use fantoccini::actions::{InputSource as _, MouseActions, PointerAction};
use fantoccini::wd::WindowHandle;
use serde_json::{Value, json};

/// The status line of the button (`role="alert"`).
const STATUS: &str = "#audius-login-status";
const ABANDONED: &str = "The login popup was closed prematurely.";
const BLOCKED: &str = "The login popup was blocked.";

/// On the sandbox login page in the current window: picks `handle` and approves.
async fn approve_as(b: &Browser, handle: &str) -> Result {
    b.find("[data-sandbox-page=\"login\"]").await?;
    b.click(&format!("[data-sandbox-user=\"{handle}\"]"))
        .await?;
    b.click("#approve").await
}

/// Waits until the current page is the sandbox's login page; gives its URL.
async fn wait_for_sandbox_login(b: &Browser, app: &DemoApp) -> Result<url::Url> {
    let sandbox = app.sandbox_origin();
    let url = b
        .wait_for_url("the sandbox login page", |u| {
            u.origin().ascii_serialization() == sandbox && u.path() == "/oauth/auth"
        })
        .await?;
    b.find("[data-sandbox-page=\"login\"]").await?;
    Ok(url)
}

/// Clicks the button on the current page (a real click: a user gesture) and waits for the
/// popup; gives (the opener, the popup), the popup current.
async fn open_popup(b: &Browser) -> Result<(WindowHandle, WindowHandle)> {
    let opener = b.window().await?;
    let before = b.windows().await?;
    b.click("#audius-login-button").await?;
    let popup = b.wait_for_new_window(&before).await?;
    b.switch_to(&popup).await?;
    Ok((opener, popup))
}

/// The handle `/me` answers for this browser (`None` on 401).
async fn me(b: &Browser) -> Result<Option<String>> {
    let (status, body) = b.fetch("/me").await?;
    match status {
        200 => {
            let user: Value = serde_json::from_str(&body)?;
            Ok(user["handle"].as_str().map(str::to_owned))
        }
        401 => Ok(None),
        other => Err(format!("/me answered {other}: {body}").into()),
    }
}

/// Requests the current page made to the login callback (resource timing entries).
async fn callback_requests(b: &Browser) -> Result<u64> {
    let n = b
        .js(
            "return performance.getEntriesByType('resource')\
               .filter(function (e) { return new URL(e.name).pathname === '/auth/audius/callback'; })\
               .length;",
            vec![],
        )
        .await?;
    n.as_u64().ok_or_else(|| format!("not a count: {n}").into())
}

/// 1. Query mode: button, pick a user, approve, the profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_mode_login_lands_on_the_profile() {
    scenario("query mode login", |b| async move {
        let app = DemoApp::start(ResponseMode::Query).await?;
        b.goto(&app.at("/")).await?;
        b.find("#audius-login-button").await?;
        b.screenshot(&screenshot_dir().join("demo-home.png"))
            .await?;
        b.click("#audius-login-button").await?;
        let login = wait_for_sandbox_login(&b, &app).await?;
        ensure!(
            query_param(&login, "response_mode").as_deref() == Some("query"),
            "the login page was not asked for the query channel: {login}"
        );
        b.screenshot(&screenshot_dir().join("sandbox-login-page.png"))
            .await?;
        approve_as(&b, "listener").await?;
        b.wait_for_attr("#profile", "data-handle", "listener")
            .await?;
        let url = b.url().await?;
        ensure!(
            url.as_str() == app.at("/"),
            "after login the address is {url}, not the landing page"
        );
        ensure!(
            b.text("[data-field=\"name\"]").await? == "Lena Listener",
            "the profile shows another name"
        );
        ensure!(
            me(&b).await?.as_deref() == Some("listener"),
            "/me does not answer the user"
        );
        b.screenshot(&screenshot_dir().join("demo-signed-in.png"))
            .await?;
        Ok(())
    })
    .await;
}

/// 2. Fragment mode: the token never stays in the address bar or in history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_mode_login_leaves_no_token_behind() {
    scenario("fragment mode login", |b| async move {
        let app = DemoApp::start(ResponseMode::Fragment).await?;
        b.goto(&app.at("/")).await?;
        b.click("#audius-login-button").await?;
        let login = wait_for_sandbox_login(&b, &app).await?;
        ensure!(
            query_param(&login, "response_mode").as_deref() == Some("fragment"),
            "the login page was not asked for the fragment channel: {login}"
        );
        approve_as(&b, "listener").await?;
        b.wait_for_attr("#profile", "data-handle", "listener")
            .await?;
        let href = b.js("return window.location.href;", vec![]).await?;
        let href = href.as_str().unwrap_or_default().to_owned();
        ensure!(
            href == app.at("/"),
            "after login the address is {href}, not the landing page"
        );
        ensure!(
            !href.contains("token"),
            "the address holds the token: {href}"
        );

        // Walk back through history: no entry holds the token, and the bridge page (which
        // would post the answer again) is not among them.
        let length = b.js("return history.length;", vec![]).await?;
        let length = length.as_u64().unwrap_or(0);
        ensure!(
            length <= 4,
            "{length} history entries: expected the start page, home, the login page, home"
        );
        let mut seen = vec![href];
        for _ in 1..length {
            let before = b.url().await?;
            b.client.back().await?;
            let url = b
                .wait_for_url("the previous history entry", |u| *u != before)
                .await?;
            ensure!(
                !url.as_str().contains("token="),
                "a history entry holds the token: {url}"
            );
            ensure!(
                url.path() != "/auth/audius/callback",
                "history leads back to the callback (its bridge would post again): {url}"
            );
            seen.push(url.to_string());
            if url.scheme() == "data" || url.scheme() == "about" {
                break;
            }
        }
        ensure!(
            seen.iter().any(|u| u.contains("/oauth/auth")),
            "going back never reached the login page: {seen:?}"
        );
        // Still signed in, and forward leads home again.
        b.goto(&app.at("/")).await?;
        ensure!(
            me(&b).await?.as_deref() == Some("listener"),
            "signed out by going back"
        );

        // A refused answer (a state this browser never started) stays on the bridge page,
        // which must have taken the token out of the address bar anyway.
        let token = app.mint_token("artist")?;
        b.goto(&app.at(&format!(
            "/auth/audius/callback#state=not-a-state-we-issued&token={token}"
        )))
        .await?;
        b.wait_for_text("#audius-bridge [data-status]", "does not match")
            .await?;
        let href = b.js("return window.location.href;", vec![]).await?;
        let href = href.as_str().unwrap_or_default();
        ensure!(
            !href.contains("token") && !href.contains('#'),
            "the bridge left the answer in the address bar: {href}"
        );
        ensure!(
            me(&b).await?.as_deref() == Some("listener"),
            "a refused answer changed who is signed in"
        );
        Ok(())
    })
    .await;
}

/// 3. Popup (postmessage) mode: the popup answers, closes, and the page shows the profile in
/// place, never reloading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postmessage_mode_login_in_a_popup() {
    scenario("postmessage mode login", |b| async move {
        let app = DemoApp::start(ResponseMode::PostMessage).await?;
        b.goto(&app.at("/")).await?;
        b.find("#audius-login-button").await?;
        b.js("window.__marker = 42;", vec![]).await?;
        let (opener, popup) = open_popup(&b).await?;
        let login = wait_for_sandbox_login(&b, &app).await?;
        ensure!(
            query_param(&login, "redirect_uri").as_deref() == Some("postmessage")
                && query_param(&login, "origin").as_deref() == Some(app.origin().as_str()),
            "the popup was not asked to post to the app's origin: {login}"
        );
        approve_as(&b, "listener").await?;
        b.wait_for_window_closed(&popup).await?;
        b.switch_to(&opener).await?;
        b.wait_for_attr("#profile", "data-handle", "listener")
            .await?;
        let marker = b.js("return window.__marker;", vec![]).await?;
        ensure!(
            marker == json!(42),
            "the page was reloaded (marker is {marker})"
        );
        ensure!(
            b.url().await?.as_str() == app.at("/"),
            "the page navigated away"
        );
        ensure!(
            b.windows().await?.len() == 1,
            "a window is still open besides the page"
        );
        ensure!(
            me(&b).await?.as_deref() == Some("listener"),
            "/me does not answer the user"
        );
        ensure!(
            callback_requests(&b).await? == 1,
            "expected exactly one callback request"
        );
        b.screenshot(&screenshot_dir().join("demo-popup-signed-in.png"))
            .await?;
        Ok(())
    })
    .await;
}

/// The code flow's `/me/audius` for this browser: `(status, body)`.
async fn me_at_audius(b: &Browser) -> Result<(u16, Value)> {
    let (status, body) = b.fetch("/me/audius").await?;
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// 3b. The code flow in the browser, through the fragment bridge and through the popup: the
/// code reaches the callback, never stays in the address bar, and the app calls Audius as the
/// user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_login_through_the_bridge_and_the_popup() {
    scenario("code flow login", |b| async move {
        // Fragment: the bridge page forwards `#state=..&code=..`.
        let app = DemoApp::start_code_flow(ResponseMode::Fragment).await?;
        b.goto(&app.at("/")).await?;
        b.click("#audius-login-button").await?;
        let login = wait_for_sandbox_login(&b, &app).await?;
        ensure!(
            query_param(&login, "response_type").as_deref() == Some("code")
                && query_param(&login, "code_challenge_method").as_deref() == Some("S256"),
            "not a PKCE code-flow login: {login}"
        );
        approve_as(&b, "artist").await?;
        b.wait_for_attr("#profile", "data-handle", "artist").await?;
        let href = b.js("return window.location.href;", vec![]).await?;
        let href = href.as_str().unwrap_or_default().to_owned();
        ensure!(
            href == app.at("/"),
            "after login the address is {href}, not the landing page"
        );
        let (status, body) = me_at_audius(&b).await?;
        ensure!(
            status == 200 && body["handle"] == json!("artist") && body["scope"] == json!("write"),
            "/me/audius answered {status}: {body}"
        );

        // Popup: the login page posts `{state, code}` to the opener.
        let app = DemoApp::start_code_flow(ResponseMode::PostMessage).await?;
        b.goto(&app.at("/")).await?;
        b.find("#audius-login-button").await?;
        let (opener, popup) = open_popup(&b).await?;
        wait_for_sandbox_login(&b, &app).await?;
        approve_as(&b, "listener").await?;
        b.wait_for_window_closed(&popup).await?;
        b.switch_to(&opener).await?;
        b.wait_for_attr("#profile", "data-handle", "listener")
            .await?;
        let (status, body) = me_at_audius(&b).await?;
        ensure!(
            status == 200 && body["handle"] == json!("listener"),
            "/me/audius answered {status}: {body}"
        );
        Ok(())
    })
    .await;
}

/// 4. A popup closed by the user: the page says the login was abandoned; a later login works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_popup_is_reported_and_a_later_login_works() {
    scenario("popup closed before approving", |b| async move {
        let app = DemoApp::start(ResponseMode::PostMessage).await?;
        b.goto(&app.at("/")).await?;
        let (opener, popup) = open_popup(&b).await?;
        wait_for_sandbox_login(&b, &app).await?;
        b.close_window().await?;
        b.switch_to(&opener).await?;
        ensure!(
            !b.windows().await?.contains(&popup),
            "the popup did not close"
        );
        let status = b.wait_for_text(STATUS, ABANDONED).await?;
        ensure!(status == ABANDONED, "status says {status:?}");
        ensure!(me(&b).await?.is_none(), "signed in without approving");

        // Again, to the end this time.
        let (opener, popup) = open_popup(&b).await?;
        approve_as(&b, "artist").await?;
        b.wait_for_window_closed(&popup).await?;
        b.switch_to(&opener).await?;
        b.wait_for_attr("#profile", "data-handle", "artist").await?;
        ensure!(
            me(&b).await?.as_deref() == Some("artist"),
            "the second login did not sign in"
        );
        Ok(())
    })
    .await;
}

/// 5. A blocked popup is reported. Chromium's popup blocker (kept on: see the harness) blocks
/// `window.open` without user activation; a click from a script has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_popup_is_reported() {
    scenario("popup blocked", |b| async move {
        let app = DemoApp::start(ResponseMode::PostMessage).await?;
        b.goto(&app.at("/")).await?;
        b.find("#audius-login-button").await?;
        let windows = b.windows().await?;
        // No user gesture: the popup blocker refuses the window.
        b.js(
            "document.getElementById('audius-login-button').click();",
            vec![],
        )
        .await?;
        let status = b.wait_for_text(STATUS, BLOCKED).await?;
        ensure!(status.contains("Allow pop-ups"), "status says {status:?}");
        ensure!(
            b.windows().await? == windows,
            "a window opened although the status says blocked"
        );
        ensure!(
            b.url().await?.as_str() == app.at("/"),
            "the page navigated away instead"
        );
        // A real click (a user gesture) is allowed, and clears the message.
        let (opener, popup) = open_popup(&b).await?;
        wait_for_sandbox_login(&b, &app).await?;
        b.switch_to(&opener).await?;
        let hidden = b
            .js(
                "return document.getElementById('audius-login-status').hidden;",
                vec![],
            )
            .await?;
        ensure!(hidden == json!(true), "the blocked message stayed up");
        b.switch_to(&popup).await?;
        b.close_window().await?;
        b.switch_to(&opener).await?;
        Ok(())
    })
    .await;
}

/// An attacker's page: posts `{state, token}` from its URL's fragment to its opener.
const FORGER_PAGE: &str = "<!doctype html><meta charset=\"utf-8\"><title>forger</title>\
<p id=\"out\">waiting</p><script>\
var p = new URLSearchParams(location.hash.slice(1));\
if (window.opener) {\
  window.opener.postMessage({state: p.get('state'), token: p.get('token')}, '*');\
  document.getElementById('out').textContent = 'posted';\
} else {\
  document.getElementById('out').textContent = 'no opener';\
}\
</script>";

/// After a forged message reached the page (the current window): no callback request, nobody
/// signed in, no message shown, and the popup still open (the script closes it on an answer).
async fn nothing_happened(b: &Browser, popup: &WindowHandle, what: &str) -> Result {
    // A login would have sent the callback request at once; give it a moment to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        callback_requests(b).await? == 0,
        "{what}: the page sent it to the callback"
    );
    ensure!(me(b).await?.is_none(), "{what}: it signed the browser in");
    ensure!(
        b.windows().await?.contains(popup),
        "{what}: the page took it for the answer and closed the popup"
    );
    let status = b
        .js(
            "return document.getElementById('audius-login-status').textContent;",
            vec![],
        )
        .await?;
    ensure!(status == json!(""), "{what}: the page reports {status}");
    Ok(())
}

/// 6. Forged messages are ignored: the right `{state, token}` from the popup window once it is
/// on another origin (the origin check), and from a window on the Audius origin that is not
/// the popup (the source check). No login happens, no callback request is made, and the state
/// stays unused: the real answer afterwards, with the same state, signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_messages_are_ignored() {
    scenario("forged postMessage", |b| async move {
        let app = DemoApp::start(ResponseMode::PostMessage).await?;
        let forger = PageServer::start(HashMap::from([(
            "/forger".to_owned(),
            FORGER_PAGE.to_owned(),
        )]))?;
        b.goto(&app.at("/")).await?;
        b.find("#audius-login-button").await?;
        // Record every message the page receives, to know the forgeries did arrive.
        b.js(
            "window.__messages = [];\
             window.addEventListener('message', function (e) { window.__messages.push(e.origin); });",
            vec![],
        )
        .await?;
        let (opener, popup) = open_popup(&b).await?;
        let login = wait_for_sandbox_login(&b, &app).await?;
        let state = query_param(&login, "state").ok_or("the login URL has no state")?;
        b.switch_to(&opener).await?;

        // Forgery 1 (event.source): a window on the Audius origin that is not the popup.
        // The sandbox's own postmessage page, opened by the app page, answers with the real
        // state and a valid token for another user.
        let mut forged = app.sandbox.login_page_url();
        forged
            .query_pairs_mut()
            .append_pair("scope", "read")
            .append_pair("app_name", "Forger")
            .append_pair("redirect_uri", "postmessage")
            .append_pair("origin", &app.origin())
            .append_pair("state", &state)
            .append_pair("sandbox_user", "artist");
        let before = b.windows().await?;
        b.js(
            "var url = arguments[0];\
             var b = document.createElement('button'); b.id = 'e2e-open'; b.textContent = 'open';\
             b.onclick = function () { window.open(url, '_blank'); };\
             document.body.append(b);",
            vec![Value::String(forged.to_string())],
        )
        .await?;
        b.click("#e2e-open").await?;
        let sandbox_origin = app.sandbox_origin();
        wait_until("the page to receive the forged message", WAIT, async || {
            let m = b.js("return window.__messages;", vec![]).await?;
            Ok((m == json!([sandbox_origin])).then_some(()))
        })
        .await?;
        // That window posts, then closes itself.
        wait_until("the forging window to close", WAIT, async || {
            let now = b.windows().await?;
            Ok(now.iter().all(|w| before.contains(w)).then_some(()))
        })
        .await?;
        nothing_happened(&b, &popup, "forgery from another window on the Audius origin").await?;

        // Forgery 2 (event.origin): the popup itself, sent to an attacker's page (as by an open
        // redirect), posts the real state and a valid token.
        b.switch_to(&popup).await?;
        let token = app.mint_token("artist")?;
        b.goto(&format!(
            "{}#state={state}&token={token}",
            forger.at("/forger")
        ))
        .await?;
        b.switch_to(&opener).await?;
        let forger_origin = forger.origin();
        wait_until("the page to receive the second forgery", WAIT, async || {
            let m = b.js("return window.__messages;", vec![]).await?;
            Ok((m == json!([sandbox_origin, forger_origin])).then_some(()))
        })
        .await?;

        nothing_happened(&b, &popup, "forgery from the popup on another origin").await?;

        // The real answer, through the popup, with the same state: accepted, so the callback
        // had not consumed that state before.
        b.switch_to(&popup).await?;
        b.goto(login.as_str()).await?;
        approve_as(&b, "listener").await?;
        b.wait_for_window_closed(&popup).await?;
        b.switch_to(&opener).await?;
        b.wait_for_attr("#profile", "data-handle", "listener")
            .await?;
        ensure!(
            me(&b).await?.as_deref() == Some("listener"),
            "the real login did not sign in"
        );
        ensure!(
            callback_requests(&b).await? == 1,
            "expected exactly one callback request, the real one"
        );
        Ok(())
    })
    .await;
}

/// 7. A protected page sends the browser to login and, after it, back to that page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_to_the_protected_page() {
    scenario("return to", |b| async move {
        let app = DemoApp::start(ResponseMode::Fragment).await?;
        b.goto(&app.at("/me?view=full")).await?;
        wait_for_sandbox_login(&b, &app).await?;
        approve_as(&b, "nopicture").await?;
        let url = b.wait_for_url("back on /me", |u| u.path() == "/me").await?;
        ensure!(
            url.query() == Some("view=full"),
            "the return-to lost its query: {url}"
        );
        let body = b.text("body").await?;
        let user: Value = serde_json::from_str(body.trim())
            .map_err(|e| format!("/me is not JSON ({e}): {body}"))?;
        ensure!(
            user["handle"] == json!("nopicture"),
            "/me shows another user: {user}"
        );
        Ok(())
    })
    .await;
}

/// 8. Logout from the page; a protected page then asks for login again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_from_the_page() {
    scenario("logout", |b| async move {
        let app = DemoApp::start(ResponseMode::Query).await?;
        b.goto(&app.at("/")).await?;
        b.click("#audius-login-button").await?;
        approve_as(&b, "listener").await?;
        b.wait_for_attr("#profile", "data-handle", "listener")
            .await?;
        b.click("#logout").await?;
        b.find("#audius-login-button").await?;
        ensure!(
            b.url().await?.as_str() == app.at("/"),
            "logout did not land on the landing page"
        );
        ensure!(
            !b.exists("#profile[data-handle]").await?,
            "the profile is still shown"
        );
        ensure!(me(&b).await?.is_none(), "/me still answers a user");
        b.goto(&app.at("/artists")).await?;
        let login = wait_for_sandbox_login(&b, &app).await?;
        ensure!(
            query_param(&login, "state").is_some(),
            "no new login attempt: {login}"
        );
        Ok(())
    })
    .await;
}

/// 9. `/artists`: a listener gets the 403 page; after switching to a verified artist, it opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_artist_page() {
    scenario("verified artists only", |b| async move {
        let app = DemoApp::start(ResponseMode::Query).await?;
        b.goto(&app.at("/artists")).await?;
        wait_for_sandbox_login(&b, &app).await?;
        approve_as(&b, "listener").await?;
        b.find("[data-audius-error=\"not_verified_artist\"]")
            .await?;
        ensure!(
            b.url().await?.path() == "/artists",
            "the 403 page is not at /artists"
        );
        ensure!(
            b.fetch_status("/artists").await? == 403,
            "/artists is not a 403 for a listener"
        );
        ensure!(
            !b.exists("[data-page=\"artists\"]").await?,
            "a listener sees the artists' page"
        );

        b.goto(&app.at("/")).await?;
        b.click("#logout").await?;
        b.find("#audius-login-button").await?;
        b.goto(&app.at("/artists")).await?;
        wait_for_sandbox_login(&b, &app).await?;
        approve_as(&b, "artist").await?;
        let heading = b
            .wait_for_text("[data-page=\"artists\"]", "Welcome backstage")
            .await?;
        ensure!(
            heading.contains("Ari Artist"),
            "the page greets {heading:?}"
        );
        ensure!(
            b.fetch_status("/artists").await? == 200,
            "/artists is not a 200 for an artist"
        );
        Ok(())
    })
    .await;
}

/// The button variants shown in the gallery: (id, label, options).
fn variants() -> Vec<(&'static str, &'static str, ButtonOptions)> {
    vec![
        ("default", "default (medium)", ButtonOptions::default()),
        (
            "small",
            "size small",
            ButtonOptions {
                size: ButtonSize::Small,
                ..ButtonOptions::default()
            },
        ),
        (
            "large",
            "size large",
            ButtonOptions {
                size: ButtonSize::Large,
                ..ButtonOptions::default()
            },
        ),
        (
            "pill",
            "pill corners",
            ButtonOptions {
                pill: true,
                ..ButtonOptions::default()
            },
        ),
        (
            "full-width",
            "full width",
            ButtonOptions {
                full_width: true,
                ..ButtonOptions::default()
            },
        ),
        (
            "custom-text",
            "custom text",
            ButtonOptions {
                text: Some("Sign in with Audius".into()),
                ..ButtonOptions::default()
            },
        ),
        (
            "still",
            "no hover growth",
            ButtonOptions {
                grow_on_hover: false,
                ..ButtonOptions::default()
            },
        ),
    ]
}

fn gallery_page(audius: &AudiusLogin) -> String {
    let mut rows = String::new();
    for (id, label, options) in variants() {
        rows.push_str(&format!(
            "<div class=\"variant\" id=\"v-{id}\"><code>{label}</code><div class=\"slot\">{}</div></div>",
            audius.login_button(&options)
        ));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Log In with Audius: button variants</title><style>\
         body{{margin:0;background:#fff;font-family:system-ui,sans-serif}}\
         #gallery{{display:inline-block;padding:20px 24px 8px}}\
         .variant{{display:flex;align-items:center;gap:20px;margin:0 0 14px}}\
         .variant code{{width:130px;font-size:13px;color:#555}}\
         .slot{{width:320px}}.audius-login-status{{display:none}}\
         </style></head><body><div id=\"gallery\">{rows}</div></body></html>"
    )
}

/// The element's `getBoundingClientRect()` as (width, height).
async fn size(b: &Browser, css: &str) -> Result<(f64, f64)> {
    let r = b
        .js(
            "var r = document.querySelector(arguments[0]).getBoundingClientRect();\
             return [r.width, r.height];",
            vec![Value::String(css.to_owned())],
        )
        .await?;
    match (r[0].as_f64(), r[1].as_f64()) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("no size for {css}: {r}").into()),
    }
}

async fn computed(b: &Browser, css: &str, property: &str) -> Result<String> {
    let v = b
        .js(
            "return getComputedStyle(document.querySelector(arguments[0]))\
               .getPropertyValue(arguments[1]);",
            vec![
                Value::String(css.to_owned()),
                Value::String(property.to_owned()),
            ],
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

/// The mouse over the element matching `css`; gives its computed transform once settled.
async fn hover_transform(b: &Browser, css: &str) -> Result<String> {
    let element = b.find(css).await?;
    b.client
        .perform_actions(
            MouseActions::new("mouse".to_owned()).then(PointerAction::MoveToElement {
                element,
                duration: None,
                x: 0.0,
                y: 0.0,
            }),
        )
        .await?;
    // The transition is 70 ms: wait until the transform stops changing.
    let mut last = computed(b, css, "transform").await?;
    wait_until("the hover transition to settle", WAIT, async || {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = computed(b, css, "transform").await?;
        let settled = now == last;
        last = now.clone();
        Ok(settled.then_some(now))
    })
    .await
}

/// 10. The button's variants, rendered by `AudiusLogin::login_button`: sizes, corners, width,
/// text and hover growth as documented, and screenshots of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn button_variants_render_as_documented() {
    scenario("button variants", |b| async move {
        let audius = AudiusLogin::builder(
            "Button gallery",
            "http://localhost:8080/auth/audius/callback",
        )
        .build()?;
        let routes_for = audius.clone();
        let gallery = PageServer::start_with(
            HashMap::from([("/".to_owned(), gallery_page(&audius))]),
            move |cfg| (routes_for.routes())(cfg),
        )?;
        b.goto(&gallery.at("/")).await?;
        wait_until("the button stylesheet", WAIT, async || {
            let display = computed(&b, "#v-default .audius-login-button", "display").await?;
            Ok((display == "inline-flex").then_some(()))
        })
        .await?;

        let (_, small) = size(&b, "#v-small .audius-login-button").await?;
        let (_, medium) = size(&b, "#v-default .audius-login-button").await?;
        let (_, large) = size(&b, "#v-large .audius-login-button").await?;
        ensure!(
            (small, medium, large) == (32.0, 40.0, 52.0),
            "heights small/medium/large are {small}/{medium}/{large}, not 32/40/52"
        );
        let radius = computed(&b, "#v-pill .audius-login-button", "border-top-left-radius").await?;
        ensure!(radius == "999px", "pill corners have a radius of {radius}");
        let radius = computed(
            &b,
            "#v-default .audius-login-button",
            "border-top-left-radius",
        )
        .await?;
        ensure!(radius == "8px", "default corners have a radius of {radius}");
        let (full, _) = size(&b, "#v-full-width .audius-login-button").await?;
        let (slot, _) = size(&b, "#v-full-width .slot").await?;
        let (fit, _) = size(&b, "#v-default .audius-login-button").await?;
        ensure!(
            full == slot && fit < slot,
            "full width is {full}px in a {slot}px slot (fit: {fit}px)"
        );
        ensure!(
            b.text("#v-custom-text .audius-login-button").await? == "Sign in with Audius",
            "the custom text is not shown"
        );
        ensure!(
            b.text("#v-default .audius-login-button").await? == "Continue With Audius",
            "the default text is not shown"
        );

        // Screenshots, before any hover.
        let dir = screenshot_dir();
        for (id, _, _) in variants() {
            b.screenshot_element(
                &format!("#v-{id} .audius-login-button"),
                &dir.join(format!("button-{id}.png")),
            )
            .await?;
        }
        b.screenshot_element("#gallery", &dir.join("login-button.png"))
            .await?;
        if std::env::var_os("AUDIUS_E2E_UPDATE_DOCS").is_some() {
            b.screenshot_element(
                "#gallery",
                &workspace_dir().join("docs/images/login-button.png"),
            )
            .await?;
        }

        // Hover growth: the default grows, "still" does not.
        let grown = hover_transform(&b, "#v-default .audius-login-button").await?;
        ensure!(
            grown.starts_with("matrix(1.04, 0, 0, 1.04"),
            "the default button does not grow on hover: {grown}"
        );
        let still = hover_transform(&b, "#v-still .audius-login-button").await?;
        ensure!(still == "none", "the still button moves on hover: {still}");
        Ok(())
    })
    .await;
}
