//! Harness for the workspace's end-to-end suites (in `tests/tests/`): real app servers on port 0,
//! the sandbox, and the external programs the suites drive (ChromeDriver and Chromium,
//! `redis-server`), started and stopped by the tests themselves.
//!
//! - [`app`]: the app the server suites run on `actix_audius_login_testing::TestServer` (the
//!   crate's own test server, the one its users get);
//! - [`http`]: a cookie-keeping client and the hops of a login, checked one by one;
//! - [`browser`]: a real browser, and the demo app it drives;
//! - [`redis`]: a private `redis-server`;
//! - [`refresh`]: what the suites of the code flow's refresh across instances share;
//! - [`two_instances`]: their world, two app instances on one Redis;
//! - [`two_flows`]: one app with both flows.
#![forbid(unsafe_code)]

pub mod app;
pub mod browser;
pub mod http;
pub mod redis;
pub mod refresh;
pub mod two_flows;
pub mod two_instances;
