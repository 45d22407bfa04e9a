//! Real-browser end-to-end testing: Debian's Chromium, headless, driven through ChromeDriver
//! (started by the harness on a free port) with `fantoccini`.
//!
//! A test is a [`scenario`]: it gets a fresh browser session on a fresh ChromeDriver, runs its
//! body, and when the body fails (an error, a panic, or the overall deadline) prints every
//! window's URL and page source, the browser console and ChromeDriver's log before failing,
//! so a red CI run explains itself.
//!
//! ```no_run
//! use actix_audius_login::ResponseMode;
//! use audius_login_e2e::browser::{scenario, DemoApp};
//!
//! # async fn t() {
//! scenario("query login", |b| async move {
//!     let app = DemoApp::start(ResponseMode::Query).await?;
//!     b.goto(&app.at("/")).await?;
//!     b.click("#audius-login-button").await?;
//!     Ok(())
//! })
//! .await;
//! # }
//! ```

mod apps;
mod driver;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use fantoccini::elements::Element;
use fantoccini::wd::WindowHandle;
use futures_util::FutureExt as _;
use serde_json::Value;

pub use apps::{DemoApp, PageServer};
pub use driver::{
    ChromeDriver, ScratchDir, Session, browser_log, chromedriver_binary, chromium_binary, free_port,
};

/// Any error of a scenario.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The result of a scenario step.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// How long a step waits for the page by default (an element, a URL, a window).
pub const WAIT: Duration = Duration::from_secs(15);
/// How long a whole scenario may take.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// How often waits poll.
const POLL: Duration = Duration::from_millis(50);

/// Fails the step with a message (for use in scenario bodies: the failure dumps the browser).
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+).into());
        }
    };
}

/// A browser session's client, with waiting helpers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Browser {
    /// The raw WebDriver client, for anything the helpers lack.
    pub client: fantoccini::Client,
}

/// Polls `check` until it gives `Some`, or fails after `timeout` naming `what` (and the last
/// error `check` returned, if any).
pub async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => {
                    format!("timed out after {timeout:?} waiting for {what} (last error: {e})")
                }
                None => format!("timed out after {timeout:?} waiting for {what}"),
            }
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

impl Browser {
    /// Navigates the current window to `url` and waits for the load.
    pub async fn goto(&self, url: &str) -> Result {
        self.client.goto(url).await?;
        Ok(())
    }

    /// The current window's URL.
    pub async fn url(&self) -> Result<url::Url> {
        Ok(self.client.current_url().await?)
    }

    /// Waits for an element matching `css` to be in the page.
    pub async fn find(&self, css: &str) -> Result<Element> {
        wait_until(&format!("an element {css:?}"), WAIT, async || {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) => Ok(Some(e)),
                Err(e) if e.is_no_such_element() => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Whether an element matching `css` is in the page now.
    pub async fn exists(&self, css: &str) -> Result<bool> {
        match self.client.find(Locator::Css(css)).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_no_such_element() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for an element matching `css` and clicks it (a real click: a user gesture).
    pub async fn click(&self, css: &str) -> Result {
        let element = self.find(css).await?;
        element.click().await?;
        Ok(())
    }

    /// Waits for an element matching `css` and gives its text.
    pub async fn text(&self, css: &str) -> Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    /// Waits until the element matching `css` has the attribute `name` equal to `value`.
    pub async fn wait_for_attr(&self, css: &str, name: &str, value: &str) -> Result {
        wait_until(
            &format!("{css} with {name}={value:?}"),
            WAIT,
            async || match self.client.find(Locator::Css(css)).await {
                Ok(e) => Ok((e.attr(name).await?.as_deref() == Some(value)).then_some(())),
                Err(e) if e.is_no_such_element() => Ok(None),
                Err(e) => Err(e.into()),
            },
        )
        .await
    }

    /// Waits until the element matching `css` is shown and its text contains `needle`.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> Result<String> {
        wait_until(
            &format!("{css} to say {needle:?}"),
            WAIT,
            async || match self.client.find(Locator::Css(css)).await {
                Ok(e) => {
                    let text = e.text().await?;
                    Ok(text.contains(needle).then_some(text))
                }
                Err(e) if e.is_no_such_element() => Ok(None),
                Err(e) => Err(e.into()),
            },
        )
        .await
    }

    /// Waits until the current window's URL satisfies `pred`; gives it.
    pub async fn wait_for_url(
        &self,
        what: &str,
        pred: impl Fn(&url::Url) -> bool,
    ) -> Result<url::Url> {
        wait_until(&format!("the address to be {what}"), WAIT, async || {
            let url = self.url().await?;
            Ok(pred(&url).then_some(url))
        })
        .await
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the current window.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Runs an asynchronous `script`: it calls `arguments[arguments.length - 1](result)`.
    pub async fn js_async(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute_async(script, args).await?)
    }

    /// `GET path` fetched by the current page, as an API client would (the page's cookies,
    /// `Accept: application/json`, redirects not followed: a redirect is reported as 302):
    /// the status and the body.
    pub async fn fetch(&self, path: &str) -> Result<(u16, String)> {
        let value = self
            .js_async(
                "var done = arguments[arguments.length - 1];\
                 fetch(arguments[0], {credentials: 'same-origin', redirect: 'manual',\
                   headers: {'Accept': 'application/json'}})\
                   .then(function (r) {\
                     if (r.type === 'opaqueredirect') { done([302, '']); return; }\
                     return r.text().then(function (t) { done([r.status, t]); });\
                   })\
                   .catch(function (e) { done(['error', String(e)]); });",
                vec![Value::String(path.to_owned())],
            )
            .await?;
        match (value[0].as_u64(), value[1].as_str()) {
            (Some(status), Some(body)) => Ok((u16::try_from(status)?, body.to_owned())),
            _ => Err(format!("fetch {path} failed: {value}").into()),
        }
    }

    /// The HTTP status of [`fetch`](Self::fetch)ing `path`.
    pub async fn fetch_status(&self, path: &str) -> Result<u16> {
        Ok(self.fetch(path).await?.0)
    }

    /// Closes the current window (switch to another one afterwards).
    pub async fn close_window(&self) -> Result {
        self.client.close_window().await?;
        Ok(())
    }

    /// The open windows.
    pub async fn windows(&self) -> Result<Vec<WindowHandle>> {
        Ok(self.client.windows().await?)
    }

    /// The current window.
    pub async fn window(&self) -> Result<WindowHandle> {
        Ok(self.client.window().await?)
    }

    /// Switches to `window`.
    pub async fn switch_to(&self, window: &WindowHandle) -> Result {
        self.client.switch_to_window(window.clone()).await?;
        Ok(())
    }

    /// Waits for a window that is not in `known` to open; gives it (without switching).
    pub async fn wait_for_new_window(&self, known: &[WindowHandle]) -> Result<WindowHandle> {
        wait_until("a new window", WAIT, async || {
            Ok(self
                .windows()
                .await?
                .into_iter()
                .find(|w| !known.contains(w)))
        })
        .await
    }

    /// Waits until `window` is closed.
    pub async fn wait_for_window_closed(&self, window: &WindowHandle) -> Result {
        wait_until("the window to close", WAIT, async || {
            Ok((!self.windows().await?.contains(window)).then_some(()))
        })
        .await
    }

    /// A PNG of the current window's viewport, written to `path` (directories created).
    pub async fn screenshot(&self, path: &std::path::Path) -> Result {
        let png = self.client.screenshot().await?;
        write_file(path, &png)
    }

    /// A PNG of one element, written to `path` (directories created).
    pub async fn screenshot_element(&self, css: &str, path: &std::path::Path) -> Result {
        let png = self.find(css).await?.screenshot().await?;
        write_file(path, &png)
    }

    /// Everything worth printing when a scenario fails: each window's URL, title and source,
    /// and the browser console.
    pub async fn dump(&self) -> String {
        let mut out = String::new();
        let current = self.client.window().await.ok();
        match self.client.windows().await {
            Ok(windows) => {
                for (i, w) in windows.iter().enumerate() {
                    let marker = if Some(w) == current.as_ref() {
                        " (current)"
                    } else {
                        ""
                    };
                    out.push_str(&format!("\n--- window {i}{marker}\n"));
                    if let Err(e) = self.client.switch_to_window(w.clone()).await {
                        out.push_str(&format!("(cannot switch to it: {e})\n"));
                        continue;
                    }
                    match self.client.current_url().await {
                        Ok(u) => out.push_str(&format!("url: {u}\n")),
                        Err(e) => out.push_str(&format!("url: ({e})\n")),
                    }
                    match self.client.source().await {
                        Ok(s) => {
                            out.push_str("source:\n");
                            out.push_str(&truncate(&s, 20_000));
                            out.push('\n');
                        }
                        Err(e) => out.push_str(&format!("source: ({e})\n")),
                    }
                    match browser_log(&self.client).await {
                        Ok(lines) if lines.is_empty() => out.push_str("console: (empty)\n"),
                        Ok(lines) => {
                            out.push_str("console:\n");
                            for l in lines {
                                out.push_str(&format!("  {l}\n"));
                            }
                        }
                        Err(e) => out.push_str(&format!("console: ({e})\n")),
                    }
                }
                if let Some(w) = current {
                    let _ = self.client.switch_to_window(w).await;
                }
            }
            Err(e) => out.push_str(&format!("(no windows: {e})\n")),
        }
        out
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// The workspace's root (the parent of this package).
pub fn workspace_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The workspace's target directory: `$CARGO_TARGET_DIR` (relative: to the workspace root)
/// when set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_dir().join(dir)
            }
        }
        None => workspace_dir().join("target"),
    }
}

/// Where the suites write screenshots: `<target>/e2e-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    target_dir().join("e2e-screenshots")
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

/// Runs one browser scenario: a browser slot, a fresh ChromeDriver and browser session, the
/// body (within [`SCENARIO_TIMEOUT`]); on failure (error, panic or deadline) prints what the
/// browser shows and panics with the reason. The browser quits and ChromeDriver is killed
/// either way.
pub async fn scenario<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: Future<Output = Result>,
{
    let started = Instant::now();
    let _slot = match driver::browser_slot().await {
        Ok(slot) => slot,
        Err(e) => panic!("scenario {name:?}: {e}"),
    };
    let waited = started.elapsed();
    let driver = match ChromeDriver::start().await {
        Ok(d) => d,
        Err(e) => panic!("scenario {name:?}: {e}"),
    };
    let session = match driver.new_session_within_deadline().await {
        Ok(s) => s,
        Err(e) => panic!("scenario {name:?}: {e}"),
    };
    let browser = Browser {
        client: session.client.clone(),
    };
    let run = AssertUnwindSafe(tokio::time::timeout(
        SCENARIO_TIMEOUT,
        body(browser.clone()),
    ))
    .catch_unwind()
    .await;
    let failure = match run {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(e))) => Some(e.to_string()),
        Ok(Err(_)) => Some(format!("the scenario took over {SCENARIO_TIMEOUT:?}")),
        Err(panic) => Some(format!("panicked: {}", panic_message(panic.as_ref()))),
    };
    if let Some(reason) = &failure {
        // ChromeDriver's log as it was at the failure, before the dump adds its own commands.
        let driver_log = driver.log_tail(60);
        let dump = tokio::time::timeout(Duration::from_secs(30), browser.dump())
            .await
            .unwrap_or_else(|_| "(the browser did not answer within 30 s)".to_owned());
        eprintln!(
            "\n===== scenario {name:?} FAILED: {reason}\n===== the browser:{dump}\n\
             ===== ChromeDriver's log (tail, at the failure):\n{driver_log}\n===== end of {name:?}\n"
        );
    }
    if let Err(e) = session.close().await {
        eprintln!("scenario {name:?}: closing the browser: {e}");
    }
    drop(driver);
    eprintln!(
        "scenario {name:?}: {} in {:.1?} (waited {:.1?} for a browser slot)",
        if failure.is_some() { "FAILED" } else { "ok" },
        started.elapsed() - waited,
        waited
    );
    if let Some(reason) = failure {
        panic!("scenario {name:?} failed: {reason}");
    }
}
