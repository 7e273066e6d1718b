//! `licentia`: serve the API, run migrations, or print the OpenAPI document.
#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use licentia_api::worker::Worker;
use licentia_api::{Config, document, prepare, serve_with_worker, telemetry};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "licentia",
    version,
    about = "Software license lifecycle service"
)]
struct Cli {
    /// Configuration file (TOML); defaults to ./licentia.toml when present.
    #[arg(long, global = true, env = "LICENTIA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (and the job worker).
    Serve {
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Run the job worker alone (no HTTP), for scaling out.
    Worker,
    /// Apply pending migrations and exit.
    Migrate,
    /// Print the OpenAPI document and exit.
    Openapi,
    /// Load a benchmark data set into an empty PostgreSQL database (see docs/performance.md).
    Seed {
        /// Partner accounts, each with a balance and an API key.
        #[arg(long, default_value_t = 1_000)]
        accounts: u32,
        /// Licenses, spread over the accounts (one in five to the largest).
        #[arg(long, default_value_t = 1_000_000)]
        licenses: u64,
        /// Where to write the manifest (JSON with the accounts' API keys); mode 0600.
        #[arg(long, default_value = "seed-manifest.json")]
        manifest: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        print!("{}", document::document_json());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(
        &config.log,
        config.log_format == licentia_api::config::LogFormat::Json,
    );
    // Requests run on the HTTP workers (one single-threaded runtime each, one per core);
    // this runtime carries only the background: the usage flusher, the job worker, the
    // invalidation feed, webhooks, metrics upkeep. Its work is waiting on the database, so
    // one thread carries it; a second thread per process added wake-ups that competed with
    // the HTTP workers for the cores (validate's p99 in docs/performance.md, seventh round).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command, config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("licentia: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), String> {
    match command {
        Command::Migrate => {
            prepare(config, true).await.map_err(|e| e.to_string())?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve { no_migrate } => {
            let addr = config.bind.addr();
            // The port first: a port in use is said before anything touches the database.
            let listener = TcpListener::bind(addr).map_err(|e| {
                format!("cannot listen on {addr} ({e}); choose another with LICENTIA_BIND")
            })?;
            let state = prepare(config, !no_migrate)
                .await
                .map_err(|e| e.to_string())?;
            let usage = state.usage.clone();
            let database_url = state.config.database_url.clone();
            // actix stops on the signal by itself; live event streams would hold its graceful
            // stop for its whole timeout, so they end on the same signal.
            let events = state.events.clone();
            tokio::spawn(async move {
                if stop_signal().await.is_ok() {
                    events.shutdown();
                }
            });
            let (server, worker) = serve_with_worker(state, listener).map_err(|e| e.to_string())?;
            tracing::info!(%addr, worker = %worker.id(), "serving; docs at /docs/");
            // actix stops on SIGTERM/SIGINT: the listener closes at once, requests already
            // accepted are answered (for up to 30 s), then the job worker hands its jobs back.
            let served = server.await.map_err(|e| e.to_string());
            // Every request has been answered: write the usage they recorded.
            flush_usage(&usage, &database_url).await;
            stop_worker(worker).await;
            served
        }
        Command::Worker => {
            let state = prepare(config, false).await.map_err(|e| e.to_string())?;
            let worker = licentia_api::worker::spawn_worker(state);
            tracing::info!(worker = %worker.id(), "job worker running");
            stop_signal().await.map_err(|e| e.to_string())?;
            stop_worker(worker).await;
            Ok(())
        }
        Command::Seed {
            accounts,
            licenses,
            manifest,
        } => {
            let state = prepare(config, true).await.map_err(|e| e.to_string())?;
            let size = licentia_api::seed::SeedSize { accounts, licenses };
            let written = licentia_api::seed::seed(&state, size).await?;
            let json = serde_json::to_vec_pretty(&written).map_err(|e| e.to_string())?;
            write_private(&manifest, &json)
                .map_err(|e| format!("cannot write {}: {e}", manifest.display()))?;
            tracing::info!(manifest = %manifest.display(), "manifest written");
            Ok(())
        }
        Command::Openapi => Ok(()),
    }
}

/// Writes a file only its owner may read (it holds API keys).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// SIGTERM or SIGINT (Ctrl-C), whichever comes first.
async fn stop_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => Ok(()),
        interrupted = tokio::signal::ctrl_c() => interrupted,
    }
}

/// Writes the usage still in memory on a graceful stop, over a connection of its own: the
/// pool's connections were opened on the HTTP workers' runtimes, which are gone by now.
async fn flush_usage(usage: &licentia_api::usage::UsageBuffer, database_url: &str) {
    usage.close().await;
    if usage.pending() == 0 {
        return;
    }
    let pool = licentia_persistence::PoolConfig {
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(5),
        hot_threads: 0,
        hot_per_thread: 0,
    };
    let written = match licentia_persistence::Db::connect(database_url, &pool).await {
        Ok(db) => {
            let written = usage.flush(&db).await;
            let _ = db.close().await;
            written
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(flushed) => tracing::info!(
            licenses = flushed.licenses,
            registrations = flushed.registrations,
            "usage written"
        ),
        Err(e) => tracing::warn!(error = %e, "writing the last usage failed; it is lost"),
    }
}

/// Stops the job worker and releases the jobs it leased, so that other workers take them now.
async fn stop_worker(worker: Worker) {
    match worker.shutdown().await {
        Ok(released) => tracing::info!(
            released,
            "job worker stopped; its leased jobs are queued again"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "job worker stopped; releasing its jobs failed (they return when their lease ends)")
        }
    }
}
