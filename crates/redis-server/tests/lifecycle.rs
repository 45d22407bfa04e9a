//! The starter's life cycle against a real `redis-server` (installed by `.ci/run`): it answers
//! once started, refuses connections once stopped, answers again on the same port, and is gone
//! once dropped.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use audius_login_redis_server::RedisServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn pong(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    stream.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf[..n].starts_with(b"+PONG")
}

#[tokio::test]
async fn starts_stops_starts_again_on_the_same_port_and_dies_with_its_owner() {
    let mut redis = RedisServer::try_start_with(&[]).await.unwrap();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert!(redis.is_running() && redis.pid().is_some());
    assert!(pong(port).await);

    redis.try_stop().await.unwrap();
    assert!(!redis.is_running() && redis.pid().is_none());
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());

    redis.try_start_again().await.unwrap();
    assert_eq!(redis.port(), port);
    assert!(pong(port).await);

    drop(redis);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
