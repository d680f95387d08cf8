//! The `wormgate` command.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use wormgate::config::{BackendSettings, FileConfig, ProcessEnv, Settings};
use wormgate::server::Server;

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
        #[arg(long, short, env = "WORMGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration, probe the backend (and OSS's WORM policies), and print what
    /// each bucket's profile will enforce. Touches no index: safe beside a running gateway.
    CheckConfig {
        /// TOML configuration file; environment variables (WORMGATE_*) apply as for `serve`.
        #[arg(env = "WORMGATE_CONFIG")]
        file: PathBuf,
    },
    /// Exit 0 if the admin listener at ADDR answers /healthz with 200 (a container's
    /// HEALTHCHECK; no curl needed in the image).
    Health {
        #[arg(default_value = "127.0.0.1:9001")]
        addr: std::net::SocketAddr,
    },
    /// Work on the lock index (stop `wormgate serve` first: the index is one process's).
    Index {
        #[command(subcommand)]
        action: IndexAction,
    },
    /// The retention audit, offline from the lock index (stop `wormgate serve` first, or ask
    /// its admin listener's /audit routes instead).
    Audit {
        /// TOML configuration file, the same one `serve` uses.
        #[arg(long, short, env = "WORMGATE_CONFIG")]
        config: Option<PathBuf>,
        /// table, csv or jsonl.
        #[arg(long, default_value = "table")]
        format: AuditFormat,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only retentions ending before this RFC 3339 date.
        #[arg(long)]
        expiring_before: Option<chrono::DateTime<chrono::Utc>>,
        /// Only the versions whose wanted protection outlives the backend's own.
        #[arg(long)]
        gaps: bool,
        /// Per-bucket figures instead of one row per version.
        #[arg(long)]
        summary: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuditFormat {
    Table,
    Csv,
    Jsonl,
}

#[derive(Subcommand)]
enum IndexAction {
    /// Recreate the index from the backend: every lock travels with its object (lock headers,
    /// or wormgate's metadata), so listing and reading every object rebuilds it.
    Rebuild {
        /// TOML configuration file, the same one `serve` uses.
        #[arg(long, short, env = "WORMGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Compare the index with the backend and list every difference, changing nothing: `lost`
    /// (an active lock in the index, no version on the backend), `unindexed`, `index-weaker`,
    /// `index-stricter`, `pending` (a write whose outcome was never seen). Exits 1 when a lock
    /// is lost or weaker than the backend's, 0 otherwise.
    Verify {
        /// TOML configuration file, the same one `serve` uses.
        #[arg(long, short, env = "WORMGATE_CONFIG")]
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
    let runtime = |workers: Option<usize>| {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = workers {
            builder.worker_threads(n);
        }
        builder.enable_all().build()
    };
    match cli.command {
        Command::Serve { config } => {
            let settings = settings_from(config.as_ref())?;
            runtime(Some(settings.worker_threads))?
                .block_on(wormgate::server::process::serve(settings))
        }
        Command::CheckConfig { file } => runtime(None)?.block_on(check_config(&file)),
        Command::Health { addr } => runtime(None)?.block_on(health(addr)),
        Command::Index {
            action: IndexAction::Rebuild { config },
        } => runtime(None)?.block_on(rebuild(config)),
        Command::Index {
            action: IndexAction::Verify { config },
        } => runtime(None)?.block_on(verify(config)),
        Command::Audit {
            config,
            format,
            bucket,
            prefix,
            expiring_before,
            gaps,
            summary,
        } => {
            let filter = wormgate::ops::audit::Filter {
                bucket,
                prefix,
                expiring_before,
                gaps_only: gaps,
            };
            audit(config.as_ref(), format, &filter, summary)
        }
    }
}

fn audit(
    config: Option<&PathBuf>,
    format: AuditFormat,
    filter: &wormgate::ops::audit::Filter,
    summary: bool,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use wormgate::ops::audit::Context;

    let settings = settings_from(config)?;
    let locks = &settings.locks;
    // One pass over the records: loading them all into memory first would only cost time.
    let index = wormgate::server::open_index(&locks.index_dir, locks.index_cache_bytes, false);
    let index = index.with_context(|| {
        format!(
            "cannot open the lock index in {} (is `wormgate serve` running? ask its admin listener instead)",
            locks.index_dir.display()
        )
    })?;
    let profile_of = |b: &str| settings.locks.profile_of(b);
    let backend_of = |b: &str| index.bucket(b).ok().flatten().and_then(|r| r.backend);
    let cx = Context {
        now: chrono::Utc::now(),
        profile_of: &profile_of,
        backend_of: &backend_of,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let configured: Vec<String> = settings.locks.bucket_profiles.keys().cloned().collect();
    let format = match format {
        AuditFormat::Table => wormgate::ops::audit::Format::Table,
        AuditFormat::Csv => wormgate::ops::audit::Format::Csv,
        AuditFormat::Jsonl => wormgate::ops::audit::Format::Jsonl,
    };
    let summary = summary.then_some(configured.as_slice());
    wormgate::ops::audit::export(index.as_ref(), &cx, filter, format, summary, &mut out)?;
    Ok(out.flush()?)
}

fn settings_from(config: Option<&PathBuf>) -> anyhow::Result<Settings> {
    let file = match config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    Settings::resolve(file, &ProcessEnv).context("invalid configuration")
}

async fn health(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    })
    .await
    .context("no answer within 5 s")?
    .with_context(|| format!("cannot reach {addr}"))?;
    if !head_is_ok(&answer) {
        anyhow::bail!("{addr}/healthz: {}", String::from_utf8_lossy(&answer));
    }
    println!("ok");
    Ok(())
}

fn head_is_ok(status_line: &[u8]) -> bool {
    status_line.starts_with(b"HTTP/1.") && status_line.ends_with(b" 200")
}

async fn check_config(file: &PathBuf) -> anyhow::Result<()> {
    let settings = settings_from(Some(file))?;
    println!("{}: valid", file.display());
    match &settings.backend {
        BackendSettings::Embedded => println!(
            "backend: embedded local store under {}",
            settings.data_dir.display()
        ),
        BackendSettings::Remote(r) => println!("backend: {} (region {})", r.url, r.region),
    }
    println!(
        "listen: {}{}; admin: {}; lock index: {}",
        settings.listen,
        if settings.tls.is_some() { " (TLS)" } else { "" },
        settings.admin.listen,
        settings.locks.index_dir.display()
    );
    let overrides = wormgate::server::Overrides {
        index: Some(std::sync::Arc::new(policy::index::MemoryIndex::new())),
        clock: None,
    };
    let server = Server::build(&settings, overrides)
        .await
        .context("the start-up probe failed")?;
    let lines = server
        .describe_buckets()
        .await
        .context("the backend cannot be listed with these keys")?;
    println!(
        "buckets not listed below: {}",
        settings.locks.default_profile.as_str()
    );
    for line in lines {
        println!("  {line}");
    }
    Ok(())
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

async fn verify(config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = settings_from(config.as_ref())?;
    let server = Server::new(&settings).await.context("cannot start")?;
    let report = server
        .verify_index()
        .await
        .context("index verify could not finish")?;
    print!("{}", report.render());
    if report.has_loss() {
        anyhow::bail!("the index and the backend disagree in a way that weakens a lock");
    }
    if report.disagrees() {
        anyhow::bail!(
            "the index and the backend disagree about protection (the index is the stricter side: `wormgate index rebuild` merges the backend's records and keeps the stricter ones)"
        );
    }
    Ok(())
}
