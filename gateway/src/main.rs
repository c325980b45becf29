//! `wagu`: the server. `cargo run --release` starts it on 127.0.0.1:8080 with embedded
//! backends; see the README for every setting.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use wagu_gateway::config::{Config, FlagOverrides, LogFormat};

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
}

fn main() -> anyhow::Result<()> {
    // Several dependencies (the S3 SDK, the CQL driver) use rustls without choosing a crypto
    // provider; pick one process-wide before anything opens a connection.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
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
