//! A private `redis-server` for a test or a benchmark: started on a free loopback port with
//! persistence off (`--save "" --appendonly no`), stopped and started again on the same port on
//! demand, killed when dropped. No Redis service needs to be running.
//!
//! The `try_` methods give the reason as an error; the others panic with it (for tests).

#![forbid(unsafe_code)]

use std::fmt;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The program started: `$REDIS_SERVER`, else `redis-server` on the `PATH`.
fn program() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// Why a `redis-server` could not be started or stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisServerError(String);

impl fmt::Display for RedisServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisServerError {}

/// A `redis-server` owned by a test or a benchmark.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Settings given on the command line after the defaults (`--maxmemory`, ...).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port of 127.0.0.1 and waits until it answers `PING` (10 s at
    /// most). Panics with the reason when it cannot (`redis-server` missing: install the
    /// `redis-server` package; `.ci/run` does).
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// As [`start`](Self::start), with more settings on the command line (for example
    /// `["--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"]`).
    pub async fn start_with(extra: &[&str]) -> Self {
        Self::try_start_with(extra)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`start_with`](Self::start_with), giving the reason as an error instead of panicking.
    pub async fn try_start_with(extra: &[&str]) -> Result<Self, RedisServerError> {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(|e| RedisServerError(format!("no free loopback port: {e}")))?;
            listener
                .local_addr()
                .map_err(|e| RedisServerError(format!("no local address: {e}")))?
                .port()
        };
        let mut server = Self {
            port,
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.spawn().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server, if it runs (to read its CPU time in `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (as a crash would: no goodbye to clients) and waits until the port
    /// refuses connections. Panics if it still accepts them after 10 s.
    pub async fn stop(&mut self) {
        self.try_stop().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// As [`stop`](Self::stop), giving the reason as an error instead of panicking.
    pub async fn try_stop(&mut self) -> Result<(), RedisServerError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
        {
            if Instant::now() >= deadline {
                return Err(RedisServerError("redis-server did not stop".to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Starts it again on the same port (empty: nothing is persisted). Panics with the reason
    /// when it cannot.
    pub async fn restart(&mut self) {
        self.try_restart().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// As [`restart`](Self::restart), giving the reason as an error instead of panicking.
    pub async fn try_restart(&mut self) -> Result<(), RedisServerError> {
        self.try_stop().await?;
        self.spawn().await
    }

    /// Starts it again after a [`stop`](Self::stop) (a no-op when it runs).
    pub async fn try_start_again(&mut self) -> Result<(), RedisServerError> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), RedisServerError> {
        let child = Command::new(program())
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &std::env::temp_dir().display().to_string(),
                "--logfile",
                "",
                "--loglevel",
                "warning",
            ])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                RedisServerError(format!(
                    "cannot start {} ({e}); install the redis-server package",
                    program()
                ))
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(self.port).await {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(RedisServerError(format!(
                    "redis-server exited at once ({status}); is port {} taken?",
                    self.port
                )));
            }
            if Instant::now() >= deadline {
                return Err(RedisServerError(format!(
                    "redis-server did not answer PING on port {} within 10 s",
                    self.port
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl RedisServer {
    /// Sends one command (its words, as a RESP array) and gives the answer's first line as
    /// sent (`+OK`, `:1`, `-ERR ...`), waiting as long as the server takes. Panics when the
    /// server cannot be reached.
    pub async fn command(&self, words: &[&str]) -> String {
        let mut command = format!("*{}\r\n", words.len());
        for word in words {
            command.push_str(&format!("${}\r\n{word}\r\n", word.len()));
        }
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("redis-server answers");
        stream.write_all(command.as_bytes()).await.expect("a write");
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        while !answer.ends_with(b"\r\n") {
            let n = stream.read(&mut buf).await.expect("a read");
            assert!(n > 0, "redis-server closed the connection");
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answer).trim_end().to_owned()
    }

    /// [`command`](Self::command), for an integer answer (`PTTL`, `EXISTS`, `DBSIZE`, ...),
    /// within five seconds. Panics on any other answer.
    pub async fn integer(&self, words: &[&str]) -> i64 {
        let text = tokio::time::timeout(Duration::from_secs(5), self.command(words))
            .await
            .expect("redis-server answers within 5 s");
        text.strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{words:?} answered {text:?}, not an integer"))
    }
}

/// Whether a Redis on `port` answers `PING` within a second.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"+PONG"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
