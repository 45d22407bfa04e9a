//! The Redis of the scale-out figures: a private `redis-server` on loopback (the workspace's
//! shared starter, `audius-login-redis-server`), the stores the apps use on it, and what it
//! counts (`INFO commandstats`) and spends (its CPU time).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_audius_login::store::{GuardedStore, ReconnectingStore};
use actix_session::storage::RedisSessionStore;
use audius_login_redis_server::RedisServer;

use crate::BenchResult;

/// The bound on every session-store call of the guarded store (generous: a healthy Redis on a
/// busy 2-core machine must never look down).
pub(super) const STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts a `redis-server` on a free loopback port (on a runtime of its own: it only waits for
/// the server to answer).
pub(super) fn start() -> BenchResult<RedisServer> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(RedisServer::try_start_with(&[]))?)
}

/// A synchronous connection to `redis`, for the bench's own commands (1 s timeouts).
pub(super) fn connection(redis: &RedisServer) -> BenchResult<redis::Connection> {
    let client = redis::Client::open(redis.url())?;
    let connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
    connection.set_read_timeout(Some(Duration::from_secs(1)))?;
    connection.set_write_timeout(Some(Duration::from_secs(1)))?;
    Ok(connection)
}

/// Commands counted by `INFO commandstats` since the last [`reset`], by command (lower case;
/// the bench's own `INFO` and `CONFIG` left out).
pub(super) type Commands = BTreeMap<String, u64>;

/// `CONFIG RESETSTAT`: the counts start again from zero.
pub(super) fn reset(connection: &mut redis::Connection) -> BenchResult<()> {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(connection)?;
    Ok(())
}

/// The counts of `INFO commandstats`.
pub(super) fn commands(connection: &mut redis::Connection) -> BenchResult<Commands> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(connection)?;
    Ok(parse_commandstats(&info))
}

/// Reads the `cmdstat_<name>:calls=<n>,...` lines of `INFO commandstats`.
fn parse_commandstats(info: &str) -> Commands {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_ascii_lowercase(), calls))
        })
        .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
        .collect()
}

/// `counts` per `per` (a request, a login), as `GET 1.00, SET 2.00` (every command, then the
/// total).
pub(super) fn per(counts: &Commands, per: usize) -> (String, f64) {
    let per = per.max(1) as f64;
    let total: u64 = counts.values().sum();
    let each: Vec<String> = counts
        .iter()
        .map(|(name, n)| format!("{} {:.2}", name.to_ascii_uppercase(), *n as f64 / per))
        .collect();
    let total = total as f64 / per;
    (
        if each.is_empty() {
            "none".to_owned()
        } else {
            each.join(", ")
        },
        total,
    )
}

/// The `schedstat` path of `redis`' main thread (the one that runs every command), for
/// `LoadTarget::backend_threads`; empty when it does not run.
pub(super) fn main_thread(redis: &RedisServer) -> Vec<String> {
    redis
        .pid()
        .map(|pid| format!("/proc/{pid}/task/{pid}/schedstat"))
        .into_iter()
        .collect()
}

/// The CPU time (user and system) the process `pid` has used, from `/proc/<pid>/stat` (in
/// clock ticks of 10 ms: for spans of a second or more).
pub(super) fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// actix-session's `RedisSessionStore` on `url`, as this project recommends it: reconnecting
/// after failures and bounded by [`STORE_TIMEOUT`] (a failure is a `503` through the
/// `SessionStoreGuard`).
pub(super) async fn guarded_store(
    url: String,
) -> BenchResult<GuardedStore<ReconnectingStore<RedisSessionStore>>> {
    let first = RedisSessionStore::new(url.clone())
        .await
        .map_err(|e| format!("RedisSessionStore: {e}"))?;
    let store = ReconnectingStore::new(first, move || {
        let url = url.clone();
        async move { RedisSessionStore::new(url).await }
    });
    Ok(GuardedStore::new(store).timeout(STORE_TIMEOUT))
}

/// actix-session's `RedisSessionStore` on `url`, plain (as any actix-web app uses it).
pub(super) async fn plain_store(url: String) -> BenchResult<RedisSessionStore> {
    Ok(RedisSessionStore::new(url)
        .await
        .map_err(|e| format!("RedisSessionStore: {e}"))?)
}

/// A multiplexed connection to `url` that reconnects (the redis crate's `ConnectionManager`,
/// as a real app would use).
pub(super) async fn manager(url: String) -> BenchResult<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    Ok(redis::aio::ConnectionManager::new(client).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commandstats() {
        let info = "# Commandstats\r\ncmdstat_get:calls=12,usec=30,usec_per_call=2.50\r\n\
                    cmdstat_set:calls=3,usec=9\r\ncmdstat_info:calls=1,usec=5\r\n\
                    cmdstat_config|resetstat:calls=1,usec=5\r\n";
        let counts = parse_commandstats(info);
        assert_eq!(counts.get("get"), Some(&12));
        assert_eq!(counts.get("set"), Some(&3));
        assert_eq!(counts.len(), 2);
        let (each, total) = per(&counts, 3);
        assert_eq!(each, "GET 4.00, SET 1.00");
        assert!((total - 5.0).abs() < 1e-9);
    }

    #[test]
    fn reads_its_own_process_cpu() {
        assert!(process_cpu(std::process::id()).is_some());
    }
}
