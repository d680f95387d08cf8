//! The `wormgate` command.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use wormgate::config::{BackendSettings, FileConfig, ProcessEnv, Settings};
use wormgate::server::{Server, endpoint};

/// An S3 proxy that makes any object store a ransomware-proof backup target.
#[derive(Parser)]
#[command(name = "wormgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the S3 endpoint. Without --config: 127.0.0.1:9000 in front of an embedded local
    /// store under ./wormgate-data. Environment variables (WORMGATE_*) override the file.
    Serve {
        /// TOML configuration file (see configs/).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Work on the lock index (stop `wormgate serve` first: the index is one process's).
    Index {
        #[command(subcommand)]
        action: IndexAction,
    },
}

#[derive(Subcommand)]
enum IndexAction {
    /// Recreate the index from the backend: every lock travels with its object (lock headers,
    /// or wormgate's metadata), so listing and reading every object rebuilds it.
    Rebuild {
        /// TOML configuration file, the same one `serve` uses.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WORMGATE_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,s3s=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve { config } => runtime.block_on(serve(config)),
        Command::Index {
            action: IndexAction::Rebuild { config },
        } => runtime.block_on(rebuild(config)),
    }
}

fn settings_from(config: Option<&PathBuf>) -> anyhow::Result<Settings> {
    let file = match config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    Settings::resolve(file, &ProcessEnv).context("invalid configuration")
}

async fn rebuild(config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = settings_from(config.as_ref())?;
    let server = Server::new(&settings).await.context("cannot start")?;
    let report = server
        .rebuild_index()
        .await
        .context("index rebuild failed; the index may be partial, run it again")?;
    println!(
        "index rebuilt in {}: {} buckets, {} versions read, {} locked, {} unreadable",
        settings.locks.index_dir.display(),
        report.buckets,
        report.versions,
        report.locked,
        report.unreadable
    );
    if report.unreadable > 0 {
        anyhow::bail!("{} versions had an unreadable lock", report.unreadable);
    }
    Ok(())
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = settings_from(config.as_ref())?;
    let server = Server::new(&settings).await.context("cannot start")?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let url = endpoint(addr, server.is_tls());
    match &settings.backend {
        BackendSettings::Embedded => tracing::info!(
            data = %settings.data_dir.display(),
            "backend: embedded local store (no object lock of its own)"
        ),
        BackendSettings::Remote(r) => tracing::info!(url = %r.url, region = %r.region, "backend"),
    }
    // The endpoint and the keys go to stdout, so that a person or a script can read them.
    println!("wormgate listening on {url}");
    if settings.users.is_empty()
        && let Some(user) = server.users.first()
    {
        println!(
            "credentials (kept in {}):",
            settings.data_dir.join("credentials.toml").display()
        );
        println!("  AWS_ACCESS_KEY_ID={}", user.access_key);
        println!("  AWS_SECRET_ACCESS_KEY={}", user.secret_key.expose());
    } else {
        let keys: Vec<&str> = server.users.iter().map(|u| u.access_key.as_str()).collect();
        println!("users: {}", keys.join(", "));
    }
    println!("try: aws --endpoint-url {url} s3 ls");
    server.run(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down: no new connections, draining in-flight requests");
}
