//! A private `redis-server` for a test: the workspace's shared starter
//! (`audius-login-redis-server`, also used by the benchmarks), re-exported here.

pub use audius_login_redis_server::{RedisServer, RedisServerError};
