//! `wagu`: the server. `cargo run --release` starts it on 127.0.0.1:8080 with embedded
//! backends; see the README for every setting.
//!
//! Subcommands share the configuration: `wagu migrate` creates the CQL schema (a no-op for the
//! embedded store, which creates its tables on open), `wagu places import FILE` loads places
//! from CSV or GeoJSON and prints what was accepted and rejected.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use wagu_gateway::config::{Config, DatabaseBackend, FlagOverrides, LogFormat};

#[derive(Parser, Debug)]
#[command(name = "wagu", version, about = "Wagu realtime room server")]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "WAGU_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the file and WAGU_LISTEN).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory (overrides the file and WAGU_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Base URL used in share links.
    #[arg(long)]
    public_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Serve HTTP and WebSockets (the default).
    Serve,
    /// Create the database schema (CQL keyspace and tables), idempotently.
    Migrate,
    /// Places (restaurants).
    #[command(subcommand)]
    Places(PlacesCommand),
    /// Ask the node running on this host (at `listen`) to drain and stop, as SIGTERM does:
    /// `/readyz` turns 503, sessions are handed over to other nodes, then it exits. Returns
    /// once it has stopped (or fails after `cluster.drain_timeout_s` + 10 s).
    Drain,
}

#[derive(clap::Subcommand, Debug)]
enum PlacesCommand {
    /// Load places from a CSV (header: id,name,category,address,lat,lng,phone,hours) or a
    /// GeoJSON FeatureCollection of points (an OpenStreetMap export). Existing ids are replaced.
    Import {
        file: PathBuf,
        /// `csv` or `geojson`; guessed from the extension when absent.
        #[arg(long, value_parser = ["csv", "geojson"])]
        format: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    // Several dependencies (the S3 SDK, the CQL driver) use rustls without choosing a crypto
    // provider; pick one process-wide before anything opens a connection.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    release_large_allocations();
    let cli = Cli::parse();
    let flags = FlagOverrides {
        listen: cli.listen,
        data_dir: cli.data_dir,
        public_url: cli.public_url,
        log_format: cli.log_format.as_deref().map(|f| match f {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        }),
    };
    let config = match Config::load(cli.config.as_deref(), flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wagu: {e}");
            std::process::exit(2);
        }
    };
    wagu_gateway::telemetry::init_logs(config.log_format == LogFormat::Json);
    for var in wagu_gateway::config::ignored_env_vars() {
        tracing::warn!(var, "environment variable names no setting; ignored");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => rt.block_on(run(config)),
        Command::Migrate => rt.block_on(migrate(config)),
        Command::Drain => rt.block_on(drain(config)),
        Command::Places(PlacesCommand::Import { file, format }) => {
            rt.block_on(import_places(config, file, format))
        }
    };
    // One line with the whole chain of causes, not a backtrace: these are operator errors
    // (a wrong path, an unreachable database), not bugs.
    if let Err(e) = result {
        eprintln!("wagu: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// Makes glibc return every freed allocation of 1 MiB or more to the kernel. Its default
/// threshold adapts upwards after the first large free, after which each argon2 hash (19 MiB)
/// comes from a per-thread arena that keeps it: measured 427 MB of RSS after 40 log-ins,
/// against 20 MB with this. Large buffers are rare here, so the mmap per allocation is cheap.
fn release_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; it is called once, before any thread
    // is started, and takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    wagu_gateway::app::open_records(&config, true).await?;
    match config.database.backend {
        DatabaseBackend::Cql => println!(
            "schema ready: keyspace {} on {}",
            config.database.keyspace,
            config.database.cql_nodes.join(",")
        ),
        DatabaseBackend::Embedded => println!(
            "embedded database ready in {}",
            config.data_dir.join("records").display()
        ),
    }
    Ok(())
}

async fn import_places(
    config: Config,
    file: PathBuf,
    format: Option<String>,
) -> anyhow::Result<()> {
    use wagu_storage::records::import::{self, Format};
    let format = match format.as_deref() {
        Some("csv") => Format::Csv,
        Some(_) => Format::GeoJson,
        None => Format::from_path(&file).with_context(|| {
            format!(
                "{}: cannot tell the format from the extension; pass --format csv|geojson",
                file.display()
            )
        })?,
    };
    let size = tokio::fs::metadata(&file)
        .await
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if size > import::MAX_IMPORT_BYTES as u64 {
        anyhow::bail!(
            "{} is {size} bytes; the import takes at most {} (split the file)",
            file.display(),
            import::MAX_IMPORT_BYTES
        );
    }
    let bytes = tokio::fs::read(&file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let parsed = import::parse(format, &bytes).with_context(|| file.display().to_string())?;
    let records =
        wagu_gateway::app::open_records(&config, config.database.migrate_on_start).await?;
    let report = import::import(&records, parsed).await?;
    println!("{}", report.summary());
    Ok(())
}

async fn drain(config: Config) -> anyhow::Result<()> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/admin/drain");
    let r = reqwest::Client::new()
        .post(&url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("POST {url}: {status} {body}");
    }
    println!("{body}");
    // Block until the node has stopped (its drain handed everything over), so a preStop hook
    // that runs this holds the pod until then.
    let client = reqwest::Client::new();
    let health = format!("http://{addr}/healthz");
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_secs(config.cluster.drain_timeout_s + 10);
    while std::time::Instant::now() < deadline {
        let up = client
            .get(&health)
            .timeout(std::time::Duration::from_secs(1))
            .send()
            .await
            .is_ok();
        if !up {
            println!("stopped");
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    anyhow::bail!("the node at {addr} was still answering after the drain timeout")
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    // Every connection is a file descriptor: take all the kernel allows this process.
    match wagu_gateway::fdlimit::raise_soft_to_hard() {
        Ok(r) if r.before != r.after => tracing::info!(
            "raised the open-file limit from {} to {}",
            r.before.map_or("unlimited".into(), |v| v.to_string()),
            r.after.map_or("unlimited".into(), |v| v.to_string())
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let app = wagu_gateway::App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen {listen}"))?;
    tracing::info!(
        "listening on http://{} (WebSocket at /ws, health at /healthz and /readyz)",
        listener.local_addr()?
    );
    wagu_gateway::serve(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
