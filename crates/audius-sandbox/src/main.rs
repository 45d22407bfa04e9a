//! `audius-sandbox`: runs a local Audius (login page and API) until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use audius_sandbox::Sandbox;
use clap::Parser;

/// A faithful local Audius for tests and demos: the login page and the API, with real
/// signatures.
#[derive(Debug, Parser)]
#[command(name = "audius-sandbox", version, about)]
struct Args {
    /// Address of host 0; host i listens on port + i (port 0: free ports).
    #[arg(long, default_value = "127.0.0.1:8787")]
    bind: SocketAddr,
    /// Number of API hosts sharing the users.
    #[arg(long, default_value_t = 1)]
    hosts: usize,
    /// A users file (JSON) that extends or replaces the built-in users.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut builder = Sandbox::builder().bind(args.bind).hosts(args.hosts);
    if let Some(path) = &args.users {
        builder = builder.users_file(path);
    }
    let sandbox = match builder.start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("audius-sandbox: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Listen for the stop signals before telling anyone the sandbox runs: a SIGTERM sent as
    // soon as the banner is read must stop it cleanly, not kill it.
    let stopped = match stop_signal() {
        Ok(stopped) => stopped,
        Err(e) => {
            eprintln!("audius-sandbox: cannot wait for a stop signal: {e}");
            sandbox.stop().await;
            return std::process::ExitCode::FAILURE;
        }
    };
    let base = sandbox.base_url();
    println!("Audius sandbox running (not the real Audius; every key here is public).");
    println!("  login page : {}", sandbox.login_page_url());
    println!("  API base   : {base}");
    for (i, host) in sandbox.host_urls().iter().enumerate() {
        println!("  host {i:<6} : {host}");
    }
    println!("  users list : {base}_sandbox/users");
    println!("  users:");
    for u in sandbox.users() {
        println!(
            "    {:<12} id {:<5} {:<7} {}  {}{}",
            u.handle,
            u.id.get(),
            u.id.hashid(),
            u.wallet,
            u.role,
            if u.verified { ", verified" } else { "" }
        );
    }
    println!("Press Ctrl-C to stop.");
    if let Err(e) = stopped.await {
        eprintln!("audius-sandbox: cannot wait for a stop signal: {e}");
        sandbox.stop().await;
        return std::process::ExitCode::FAILURE;
    }
    sandbox.stop().await;
    std::process::ExitCode::SUCCESS
}

/// Listens, from now on, for Ctrl-C (SIGINT) or, on Unix, SIGTERM; the future ends at the
/// first of them.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl Future<Output = std::io::Result<()>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        Ok(())
    })
}

/// Listens for Ctrl-C; the future ends when it comes.
#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl Future<Output = std::io::Result<()>>> {
    Ok(tokio::signal::ctrl_c())
}
