//! The `audius-sandbox` binary (feature `cli`), run as a user runs it: its banner names hosts that
//! answer, its arguments are checked, and it stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_audius-sandbox");

/// Kills the child if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The banner's lines up to "Press Ctrl-C to stop.", within 30 seconds.
fn banner(child: &mut Child) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let last = line.starts_with("Press Ctrl-C");
            if tx.send(line).is_err() || last {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("the banner ends with Press Ctrl-C ({e}): {lines:#?}"));
        let last = line.starts_with("Press Ctrl-C");
        lines.push(line);
        if last {
            return lines;
        }
    }
}

/// The value of the banner line `label : value`.
fn field<'a>(lines: &'a [String], label: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter_map(|l| {
            let (name, value) = l.split_once(" : ")?;
            (name.trim().starts_with(label)).then(|| value.trim())
        })
        .collect()
}

#[tokio::test]
async fn runs_the_hosts_it_prints_and_stops_on_sigterm() {
    let child = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--hosts", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let lines = banner(&mut running.0);

    let hosts = field(&lines, "host ");
    assert_eq!(hosts.len(), 2, "two hosts printed: {lines:#?}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for host in &hosts {
        let health: serde_json::Value = http
            .get(format!("{host}health_check"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["data"]["service"], "audius-sandbox", "{host}");
    }
    let login_page = field(&lines, "login page")[0];
    let page = http.get(login_page).send().await.unwrap();
    assert_eq!(
        page.status(),
        400,
        "the login page without parameters is an invalid link, not a missing page"
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("artist ")),
        "the built-in users are listed: {lines:#?}"
    );

    let pid = running.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean stop on SIGTERM: {status}");
}

#[test]
fn help_names_every_argument() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for arg in ["--bind", "--hosts", "--users", "--version"] {
        assert!(help.contains(arg), "--help names {arg}: {help}");
    }
}

#[test]
fn a_bad_argument_is_refused_with_its_name() {
    let out = Command::new(BIN)
        .args(["--hosts", "two"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--hosts"), "{stderr}");
}
