//! The oxmed HTTP server: axum routes grouped by area, middleware, configuration. It translates
//! HTTP to repository calls and back; it never touches the store's SQL.

pub mod config;
pub mod error;
pub mod fhir_json;
mod query;
mod routes;
mod summary;

use std::future::Future;
use std::sync::Arc;

use axum::ServiceExt;
use oxmed_repo::Repository;
use oxmed_store::Store;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

pub use config::{Config, ServeArgs};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub repo: Repository,
    pub config: Arc<Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the database: {0}")]
    Store(#[from] oxmed_store::StoreError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the store and binds the listener: everything that can fail before serving.
pub async fn prepare(config: Config) -> Result<(AppState, TcpListener), ServeError> {
    // The definitions are loaded while the database opens, so that the first request does not
    // pay for them and a healthy server is a ready one.
    let definitions = tokio::task::spawn_blocking(|| {
        oxmed_fhir::definitions::Definitions::global();
        oxmed_fhir::search_parameter::SearchParameters::global();
    });
    let store = Store::open(&config.database_url).await?;
    definitions
        .await
        .map_err(|e| ServeError::Io(std::io::Error::other(e.to_string())))?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| ServeError::Listen(config.listen.clone(), e))?;
    let state = AppState {
        repo: Repository::new(store),
        config: Arc::new(config),
    };
    Ok((state, listener))
}

/// Serves until `shutdown` completes, then lets in-flight requests finish and closes the store.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let store = state.repo.store().clone();
    // `[base]/` and `[base]` are the same endpoint to FHIR clients (Medplum's client posts
    // batches to `fhir/R4/`); trimming happens before routing, so it wraps the router.
    let app = NormalizePathLayer::trim_trailing_slash().layer(routes::router(state));
    let result = axum::serve(
        listener,
        ServiceExt::<axum::extract::Request>::into_make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    store.close().await;
    Ok(result?)
}
