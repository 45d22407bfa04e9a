//! The limits of a sandbox host: how much it reads, how many it serves, how long it waits.

use std::time::Duration;

/// Most hosts one sandbox runs.
pub const MAX_HOSTS: usize = 64;
/// Longest request URI the sandbox reads: 48 KiB (longer: 414).
pub const MAX_URI_BYTES: usize = 48 * 1024;
/// Largest request body the sandbox reads: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most connections one host serves at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 1024;
/// Time a client has to send a request's headers: 30 s.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
