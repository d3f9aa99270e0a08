//! The oxmed HTTP server: axum routes grouped by area, middleware, configuration. It translates
//! HTTP to repository calls and back; it never touches the store's SQL.

#[cfg(feature = "bench-anonymous")]
mod bench_anonymous;
pub mod config;
pub mod error;
pub mod fhir_json;
pub mod middleware;
mod query;
mod routes;
mod summary;

use std::future::Future;
use std::sync::Arc;

use axum::ServiceExt;
use oxmed_auth::{Auth, AuthConfig};
use oxmed_repo::Repository;
use oxmed_store::Store;
use tokio::net::TcpListener;
use tower_http::normalize_path::NormalizePathLayer;

pub use config::{Config, ServeArgs};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub repo: Repository,
    pub config: Arc<Config>,
    pub auth: Arc<Auth>,
    /// Consecutive failed passwords per account (lockout with back-off).
    pub failures: Arc<middleware::FailureLimiter>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the database: {0}")]
    Store(#[from] oxmed_store::StoreError),
    #[error("cannot start the authorization server: {0}")]
    Auth(#[from] oxmed_auth::AuthFailure),
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
    let mut config = config;
    // Port 0 picks a free port; a base URL left to its default follows the port picked, since
    // it is also the token issuer.
    if let Ok(addr) = listener.local_addr()
        && config.base_url == format!("http://{}/", config.listen)
        && config.listen.ends_with(":0")
    {
        if config.app_base_url == config.base_url {
            config.app_base_url = format!("http://{addr}/");
        }
        config.base_url = format!("http://{addr}/");
    }
    let repo = Repository::new(store);
    let mut auth_config = AuthConfig::new(&config.base_url);
    auth_config.admin_email = config.admin_email.clone();
    auth_config.admin_password = config.admin_password.clone();
    auth_config.bcrypt_cost = config.bcrypt_cost;
    auth_config.signing_alg = config.signing_alg;
    auth_config.key_rotation = config.key_rotation;
    auth_config.key_overlap = config.key_overlap;
    auth_config.mailer = oxmed_auth::email::MailerConfig {
        smtp_url: config.smtp_url.clone(),
        from: config.email_from.clone(),
        retry_delay: config.email_retry_delay,
        extra_roots_pem: config.smtp_ca_pem.clone(),
        attempt_timeout: config.email_attempt_timeout,
        ..Default::default()
    };
    auth_config.app_base_url = config.app_base_url.clone();
    auth_config.reset_link_ttl = config.reset_link_ttl;
    auth_config.invite_link_ttl = config.invite_link_ttl;
    auth_config.register_enabled = config.register_enabled;
    auth_config.recaptcha_site_key = config.recaptcha_site_key.clone();
    auth_config.recaptcha_secret_key = config.recaptcha_secret_key.clone();
    auth_config.recaptcha_verify_url = config.recaptcha_verify_url.clone();
    let (auth, seeded) = Auth::start(repo.clone(), auth_config).await?;
    if let Some(seeded) = seeded {
        // On the console, once, and not through the log: the log may be shipped elsewhere.
        match &seeded.generated_password {
            Some(password) => eprintln!(
                "oxmed: created the super admin {} with the password {password} (shown once; change it after signing in)",
                seeded.email
            ),
            None => eprintln!(
                "oxmed: created the super admin {} with the configured password",
                seeded.email
            ),
        }
    }
    #[cfg(feature = "bench-anonymous")]
    eprintln!(
        "oxmed: WARNING: built with the bench-anonymous feature: requests without credentials act as the super admin. Never deploy this build."
    );
    let state = AppState {
        repo,
        config: Arc::new(config),
        auth,
        failures: Arc::new(middleware::FailureLimiter::default()),
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
    let limiter = Arc::new(middleware::IpRateLimiter::new(middleware::RateLimits {
        auth_per_minute: state.config.auth_rate_limit,
        general_per_minute: state.config.rate_limit,
    }));
    let trusted_proxies = state.config.trusted_proxies;
    let keys = tokio::spawn(maintain_keys(state.auth.clone()));
    // `[base]/` and `[base]` are the same endpoint to FHIR clients (Medplum's client posts
    // batches to `fhir/R4/`); trimming happens before routing, so it wraps the router. The
    // client address is known before the limits are checked (the first layer is outermost).
    let app = tower::ServiceBuilder::new()
        .layer(NormalizePathLayer::trim_trailing_slash())
        .layer(axum::middleware::from_fn_with_state(
            trusted_proxies,
            middleware::client_addr_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            middleware::rate_limit_layer,
        ))
        .service(routes::router(state));
    let result = axum::serve(
        listener,
        ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(app),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    keys.abort();
    store.close().await;
    Ok(result?)
}

/// How often the signing keys are checked for rotation and retirement, and re-read.
const KEY_MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Rotates and retires signing keys on schedule, from the start and every ten minutes after.
async fn maintain_keys(auth: Arc<Auth>) {
    let mut tick = tokio::time::interval(KEY_MAINTENANCE_EVERY);
    loop {
        tick.tick().await;
        match auth.maintain_keys().await {
            Ok(done) if done.rotated || !done.retired.is_empty() => {
                tracing::info!(rotated = done.rotated, retired = ?done.retired, "signing keys maintained")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "signing key maintenance failed"),
        }
    }
}
