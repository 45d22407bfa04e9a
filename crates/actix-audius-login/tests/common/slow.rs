//! A slow client at the socket level: the app's address and origin, and reading an answer until
//! the server closes the connection (for the attacks with bodies that trickle).

use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use super::TestApp;

/// The app's `host:port`.
pub fn addr_of(app: &TestApp) -> String {
    format!(
        "{}:{}",
        app.base.host_str().unwrap(),
        app.base.port().unwrap()
    )
}

/// The app's origin, as its own pages send it.
pub fn origin_of(app: &TestApp) -> String {
    app.audius.redirect_uri().origin().ascii_serialization()
}

/// Reads until the server closes the connection or `patience` passes; gives what was read and
/// whether the server closed it.
pub async fn read_until_closed(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    patience: Duration,
) -> (String, bool) {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + patience;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&all).into_owned(), true),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&all).into_owned(), false),
        }
    }
}
