//! The `oxmed` binary.

use clap::{Parser, Subcommand};
use oxmed_server::{Config, ServeArgs};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// oxmed: a FHIR R4 server with authentication and fine-grained access control.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server. With no options: SQLite under ./data, listening on 127.0.0.1:8103.
    Serve(ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    let config = match Config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oxmed: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("oxmed: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let (state, listener) = oxmed_server::prepare(config).await?;
        tracing::info!(
            listen = %state.config.listen,
            database = state.repo.store().backend_name(),
            "oxmed is ready"
        );
        oxmed_server::serve(state, listener, shutdown_signal()).await
    });
    match result {
        Ok(()) => {
            tracing::info!("oxmed stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oxmed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM.
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
    tracing::info!("shutting down: finishing in-flight requests");
}
