//! HTTP/1.1 client connections, and the bounded load generator.
//!
//! [`Connection`] (hyper's client) drives the sandbox's login page. The load generator uses
//! [`RawConnection`] instead: the request's bytes are built once and each answer is read with a
//! minimal parser (status line, `Content-Length`), so that the generator spends far less CPU per
//! request than the server does and the server, not the generator, sets the pace.
//!
//! Bounded load: a fixed number of keep-alive connections, each with exactly one request in
//! flight (the next is sent when the answer has been read), for a fixed duration. The offered
//! load adapts to the server (closed loop), so a slower app is measured as fewer requests per
//! second, never as a growing queue.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::body::Body as _;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, COOKIE, HOST, LOCATION, SET_COOKIE};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::BenchResult;

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    sender: SendRequest<String>,
    host: String,
}

/// What a `GET` got back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The `name=value` of the first `Set-Cookie` header, if any.
    pub set_cookie: Option<String>,
    /// The body (empty when not kept).
    pub body: Vec<u8>,
}

impl Connection {
    /// Connects to `addr` (`TCP_NODELAY` set) and runs the connection on the current tokio
    /// runtime.
    pub async fn open(addr: SocketAddr) -> BenchResult<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// `GET target` (path and query) with an optional `Cookie` header; the body is read to its
    /// end and kept when `keep_body`.
    pub async fn get(
        &mut self,
        target: &str,
        cookie: Option<&str>,
        keep_body: bool,
    ) -> BenchResult<Answer> {
        self.get_as(target, cookie, None, keep_body).await
    }

    /// [`get`](Self::get) with an optional `Accept` header (`application/json`: the login
    /// routes answer errors as JSON).
    pub async fn get_as(
        &mut self,
        target: &str,
        cookie: Option<&str>,
        accept: Option<&str>,
        keep_body: bool,
    ) -> BenchResult<Answer> {
        self.sender.ready().await?;
        let mut request = Request::get(target).header(HOST, &self.host);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        let response = self
            .sender
            .send_request(request.body(String::new())?)
            .await?;
        let (parts, mut body) = response.into_parts();
        let mut kept = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(data) = frame?.into_data()
                && keep_body
            {
                kept.extend_from_slice(&data);
            }
        }
        Ok(Answer {
            status: parts.status.as_u16(),
            location: parts
                .headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            set_cookie: parts
                .headers
                .get(SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::to_owned),
            body: kept,
        })
    }
}

/// A keep-alive HTTP/1.1 connection that sends one pre-built request again and again.
pub struct RawConnection {
    stream: TcpStream,
    request: Vec<u8>,
    buffer: Vec<u8>,
}

/// Largest answer head read by [`RawConnection`].
const MAX_HEAD: usize = 16 * 1024;

impl RawConnection {
    /// Connects to `addr` (`TCP_NODELAY` set) to send `GET path` with an optional `Cookie`
    /// header.
    pub async fn open(addr: SocketAddr, path: &str, cookie: Option<&str>) -> BenchResult<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        if let Some(cookie) = cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        request.push_str("\r\n");
        Ok(Self {
            stream,
            request: request.into_bytes(),
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends the request and reads the whole answer; returns its status.
    pub async fn request(&mut self) -> BenchResult<u16> {
        self.stream.write_all(&self.request).await?;
        self.buffer.clear();
        let mut chunk = [0u8; 4096];
        let (head_len, body_len) = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break (end + 4, content_length(&self.buffer[..end])?);
            }
            if self.buffer.len() > MAX_HEAD {
                return Err("an answer head over 16 KiB".into());
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        };
        while self.buffer.len() < head_len + body_len {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err("the server closed the connection mid-body".into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
        if self.buffer.len() != head_len + body_len {
            return Err(
                "more bytes than one answer (unexpected with one request in flight)".into(),
            );
        }
        let status = self
            .buffer
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse().ok())
            .ok_or("no HTTP/1.1 status line")?;
        Ok(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `Content-Length` of an answer head (0 when absent); chunked answers are refused.
fn content_length(head: &[u8]) -> BenchResult<usize> {
    let head = std::str::from_utf8(head).map_err(|_| "an answer head that is not UTF-8")?;
    let mut length = 0;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().map_err(|_| "a bad Content-Length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked answers are not supported by the load generator".into());
        }
    }
    Ok(length)
}

/// The CPU time a thread has used, from `/proc/<pid>/task/<tid>/schedstat` (nanoseconds).
pub fn thread_cpu(schedstat: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(schedstat).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The `schedstat` path of the calling thread, for [`thread_cpu`].
pub fn current_thread_schedstat() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(format!("/proc/{}/schedstat", link.display()))
}

/// What to load: one server or several (each loaded by as many connections as one alone: the
/// load grows with the servers), a path, and the `Cookie` header to send (if any).
#[derive(Debug, Clone)]
pub struct LoadTarget {
    /// The servers: connection `i` goes to `addrs[i % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    /// Path and query of every request.
    pub path: String,
    /// The `Cookie` header of every request.
    pub cookie: Option<String>,
    /// The `schedstat` paths of the servers' threads, to measure their CPU time (summed); the
    /// CPU time is unknown if any is unreadable, or if there is none.
    pub server_threads: Vec<String>,
    /// The `schedstat` paths of other processes' threads that serve these requests too (the
    /// `redis-server` an app reads from), measured apart; empty when there are none.
    pub backend_threads: Vec<String>,
}

/// The CPU time the threads of `schedstats` have used, summed; `None` if any is unreadable or
/// there is none.
pub fn threads_cpu(schedstats: &[String]) -> Option<Duration> {
    if schedstats.is_empty() {
        return None;
    }
    schedstats
        .iter()
        .map(|s| thread_cpu(s))
        .sum::<Option<Duration>>()
}

/// The outcome of one load run.
#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    /// Answers with status 200.
    pub ok: u64,
    /// Answers with another status.
    pub failed: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// CPU time the servers' threads used meanwhile (when they are known).
    pub server_cpu: Option<Duration>,
    /// CPU time the backend threads used meanwhile (zero when there are none; `None` when
    /// unreadable).
    pub backend_cpu: Option<Duration>,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Requests per second of server CPU: what one saturated worker would serve.
    pub fn per_server_cpu_second(&self) -> Option<f64> {
        self.server_cpu
            .filter(|c| !c.is_zero())
            .map(|c| self.ok as f64 / c.as_secs_f64())
    }

    /// Requests per second of the CPU of the servers and their backends together (the same as
    /// [`per_server_cpu_second`](Self::per_server_cpu_second) without backends).
    pub fn per_total_cpu_second(&self) -> Option<f64> {
        self.server_cpu
            .zip(self.backend_cpu)
            .map(|(s, b)| s + b)
            .filter(|c| !c.is_zero())
            .map(|c| self.ok as f64 / c.as_secs_f64())
    }

    /// The share of the wall time the server's worker spent on the CPU (1.0: saturated).
    pub fn server_busy(&self) -> Option<f64> {
        self.server_cpu
            .map(|c| c.as_secs_f64() / self.elapsed.as_secs_f64())
    }
}

/// Keep-alive connections to one [`LoadTarget`], kept open between [`LoadPool::run`]s, so that
/// short runs of several targets can be interleaved without reconnecting.
pub struct LoadPool {
    target: LoadTarget,
    connections: Vec<RawConnection>,
}

impl LoadPool {
    /// Opens `connections` (at least one) keep-alive connections to each server of `target`.
    pub async fn open(target: LoadTarget, connections: usize) -> BenchResult<Self> {
        if target.addrs.is_empty() {
            return Err("a load target without a server".into());
        }
        let total = connections.max(1) * target.addrs.len();
        let mut opened = Vec::with_capacity(total);
        for i in 0..total {
            let addr = target.addrs[i % target.addrs.len()];
            opened.push(RawConnection::open(addr, &target.path, target.cookie.as_deref()).await?);
        }
        Ok(Self {
            target,
            connections: opened,
        })
    }

    /// Runs every connection, one request in flight on each, for `duration`. Must run on a
    /// tokio runtime; the connections are spawned on it and come back when done.
    pub async fn run(&mut self, duration: Duration) -> BenchResult<LoadResult> {
        let cpu = || threads_cpu(&self.target.server_threads);
        let backend = || {
            if self.target.backend_threads.is_empty() {
                Some(Duration::ZERO)
            } else {
                threads_cpu(&self.target.backend_threads)
            }
        };
        let cpu_before = cpu();
        let backend_before = backend();
        let start = Instant::now();
        let deadline = start + duration;
        let tasks: Vec<_> = std::mem::take(&mut self.connections)
            .into_iter()
            .map(|mut connection| {
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        if connection.request().await? == 200 {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    Ok::<_, crate::BenchError>((connection, ok, failed))
                })
            })
            .collect();
        let (mut ok, mut failed) = (0, 0);
        for task in tasks {
            let (connection, o, f) = task.await??;
            self.connections.push(connection);
            ok += o;
            failed += f;
        }
        let elapsed = start.elapsed();
        let server_cpu = cpu()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let backend_cpu = backend()
            .zip(backend_before)
            .map(|(after, before)| after.saturating_sub(before));
        Ok(LoadResult {
            ok,
            failed,
            elapsed,
            server_cpu,
            backend_cpu,
        })
    }
}

/// Runs `connections` keep-alive connections against `target`, one request in flight on each,
/// for `duration` (connections are opened before the clock starts). Must run on a tokio
/// runtime; the connections are spawned on it.
pub async fn run(
    target: &LoadTarget,
    connections: usize,
    duration: Duration,
) -> BenchResult<LoadResult> {
    LoadPool::open(target.clone(), connections)
        .await?
        .run(duration)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_answer_heads() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain";
        assert_eq!(content_length(head).ok(), Some(2));
        assert_eq!(
            content_length(b"HTTP/1.1 302 Found\r\nlocation: /").ok(),
            Some(0)
        );
        assert!(content_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked").is_err());
        assert_eq!(find(b"ab\r\n\r\nok", b"\r\n\r\n"), Some(2));
    }

    #[test]
    fn reads_its_own_cpu_time() {
        let path = current_thread_schedstat().unwrap_or_default();
        assert!(thread_cpu(&path).is_some());
    }
}
