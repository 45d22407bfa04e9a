//! ChromeDriver as a child process, and browser sessions (Debian's Chromium, headless) on it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{Error, Result};

/// How long ChromeDriver may take to answer `/status` after it starts.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a new browser session may take.
const SESSION_START_TIMEOUT: Duration = Duration::from_secs(45);
/// The session's page-load timeout (ChromeDriver's default is 300 s).
const PAGE_LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The session's script timeout (for `execute_async`).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(15);

/// The Chromium binary: `$CHROMIUM` or `/usr/bin/chromium` (Debian's package `chromium`).
pub fn chromium_binary() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The ChromeDriver binary: `$CHROMEDRIVER` or `/usr/bin/chromedriver` (Debian's package
/// `chromium-driver`).
pub fn chromedriver_binary() -> PathBuf {
    std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// Browsers running at once in this test process: `$AUDIUS_E2E_BROWSERS`, else the number of
/// CPUs (at least 1, at most 4). Each scenario holds one permit while its browser runs, so a
/// small CI machine is not swamped by a dozen Chromiums at once.
static BROWSER_SLOTS: LazyLock<Semaphore> = LazyLock::new(|| {
    let n = std::env::var("AUDIUS_E2E_BROWSERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .clamp(1, 4);
    Semaphore::new(n)
});

/// Waits for a free browser slot (see [`BROWSER_SLOTS`]).
pub(crate) async fn browser_slot() -> Result<SemaphorePermit<'static>> {
    BROWSER_SLOTS
        .acquire()
        .await
        .map_err(|e| Error::from(format!("browser slots closed: {e}")))
}

/// A scratch directory removed on drop (Chromium's profile, ChromeDriver's log).
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A new empty directory under the system's temp dir.
    pub fn new(prefix: &str) -> Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A ChromeDriver process on a free port of 127.0.0.1, in its own process group; killed (with
/// the group: the Chromium it started, should its session not have been closed) on drop.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    port: u16,
    dir: ScratchDir,
}

impl ChromeDriver {
    /// Starts ChromeDriver and waits until `/status` says it is ready.
    pub async fn start() -> Result<Self> {
        let binary = chromedriver_binary();
        if !binary.exists() {
            return Err(format!(
                "ChromeDriver is not installed at {} (install Debian's chromium-driver, as \
                 .ci/run does, or set CHROMEDRIVER)",
                binary.display()
            )
            .into());
        }
        let mut last_error = String::new();
        // A free port can be taken between our probe and ChromeDriver's bind: try again then.
        for _ in 0..3 {
            match Self::try_start(&binary).await {
                Ok(driver) => return Ok(driver),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(format!("ChromeDriver did not start: {last_error}").into())
    }

    async fn try_start(binary: &Path) -> Result<Self> {
        let port = free_port()?;
        let dir = ScratchDir::new("audius-e2e-chromedriver")?;
        let log = dir.path().join("chromedriver.log");
        let mut command = Command::new(binary);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut driver = Self { child, port, dir };
        driver.wait_ready().await?;
        Ok(driver)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let status = format!("{}status", self.url());
        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        loop {
            if let Some(exit) = self.child.try_wait()? {
                return Err(format!(
                    "ChromeDriver exited ({exit}) before answering on port {}: {}",
                    self.port,
                    self.log_tail(20)
                )
                .into());
            }
            // Only once our ChromeDriver says it listens: another one may hold the port.
            if self.log_says_started()
                && let Ok(res) = http.get(&status).send().await
                && let Ok(body) = res.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ChromeDriver did not answer on port {} within {DRIVER_START_TIMEOUT:?}: {}",
                    self.port,
                    self.log_tail(20)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_says_started(&self) -> bool {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log"))
            .is_ok_and(|log| log.contains("ChromeDriver was started successfully"))
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The last `lines` lines of ChromeDriver's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("chromedriver.log"))
            .unwrap_or_else(|e| format!("(no ChromeDriver log: {e})"));
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A new browser session: a fresh headless Chromium with its own profile directory.
    pub async fn new_session(&self) -> Result<Session> {
        let profile = ScratchDir::new("audius-e2e-chromium")?;
        let chromium = chromium_binary();
        if !chromium.exists() {
            return Err(format!(
                "Chromium is not installed at {} (install Debian's chromium, as .ci/run does, or \
                 set CHROMIUM)",
                chromium.display()
            )
            .into());
        }
        let caps = capabilities(&chromium, profile.path());
        let connect = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url())
            .await;
        let client = match connect {
            Ok(client) => client,
            Err(e) => {
                return Err(format!(
                    "no browser session: {e}\nChromeDriver log:\n{}",
                    self.log_tail(40)
                )
                .into());
            }
        };
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(SCRIPT_TIMEOUT),
                Some(PAGE_LOAD_TIMEOUT),
                Some(Duration::ZERO),
            ))
            .await?;
        Ok(Session {
            client,
            _profile: profile,
        })
    }

    /// [`new_session`](Self::new_session) with a deadline.
    pub async fn new_session_within_deadline(&self) -> Result<Session> {
        match tokio::time::timeout(SESSION_START_TIMEOUT, self.new_session()).await {
            Ok(session) => session,
            Err(_) => Err(format!(
                "no browser session within {SESSION_START_TIMEOUT:?}\nChromeDriver log:\n{}",
                self.log_tail(40)
            )
            .into()),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole process group: ChromeDriver and anything it left running.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port of 127.0.0.1 (free when asked; see [`ChromeDriver::start`]).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

fn capabilities(chromium: &Path, profile: &Path) -> Capabilities {
    let args = [
        // Headless Chromium as root (CI runs as root) needs --no-sandbox.
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        // No network of its own: the machine may have none.
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-default-apps".to_owned(),
        "--disable-extensions".to_owned(),
        "--password-store=basic".to_owned(),
        "--window-size=1280,900".to_owned(),
        "--lang=en-US".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": args,
            // ChromeDriver starts Chromium with --disable-popup-blocking unless told not to:
            // keep Chromium's popup blocker, as every user has it. A popup opened by a click
            // (a user gesture) opens; `window.open` without user activation gives `null`.
            "excludeSwitches": ["disable-popup-blocking"],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    match caps {
        Value::Object(map) => map,
        _ => Capabilities::new(),
    }
}

/// A browser session; close it with [`Session::close`] (the profile directory goes on drop).
#[derive(Debug)]
pub struct Session {
    /// The WebDriver client.
    pub client: Client,
    _profile: ScratchDir,
}

impl Session {
    /// Ends the session (Chromium quits).
    pub async fn close(self) -> Result<()> {
        let Session { client, _profile } = self;
        match tokio::time::timeout(Duration::from_secs(15), client.close()).await {
            Ok(r) => r.map_err(Error::from),
            Err(_) => Err("closing the browser session took over 15 s".into()),
        }
    }
}

/// ChromeDriver's log endpoint (`POST /session/{id}/se/log`, not in W3C WebDriver): the
/// browser's console messages since the last call (with `goog:loggingPrefs`).
#[derive(Debug)]
struct GetLog;

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The browser console's messages since the last call, one a line (`LEVEL message`).
pub async fn browser_log(client: &Client) -> Result<Vec<String>> {
    let value = client.issue_cmd(GetLog).await?;
    Ok(value
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["level"].as_str().unwrap_or("?"),
                        e["message"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}
