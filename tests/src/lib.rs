//! Harness for the workspace's end-to-end suites (in `tests/tests/`): real app servers on port 0,
//! the sandbox, and the external programs the suites drive (ChromeDriver and Chromium,
//! `redis-server`), started and stopped by the tests themselves.
#![forbid(unsafe_code)]

pub mod browser;
pub mod redis;
