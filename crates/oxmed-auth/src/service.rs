//! The authorization server as one value the HTTP layer holds: configuration, the signing keys,
//! the session caches, and the repository it keeps its records in.

use std::sync::{Arc, RwLock};

use oxmed_repo::Repository;

use crate::bootstrap::{self, Seeded};
use crate::config::AuthConfig;
use crate::failure::Result;
use crate::jwt::KeySet;
use crate::keystore;
use crate::session::Sessions;

pub struct Auth {
    repo: Repository,
    config: AuthConfig,
    keys: RwLock<Arc<KeySet>>,
    pub(crate) sessions: Arc<Sessions>,
    assertions: crate::assertion::SeenAssertions,
    dummy_hash: tokio::sync::OnceCell<String>,
    used_steps: crate::mfa::UsedSteps,
    /// When the keys were last read again for an unknown `kid` (microseconds).
    keys_loaded: std::sync::atomic::AtomicI64,
    mailer: crate::email::Mailer,
}

impl Auth {
    /// Loads (or creates) the signing keys, seeds the super admin on first start, and starts
    /// listening to writes that make cached sessions stale.
    pub async fn start(
        repo: Repository,
        config: AuthConfig,
    ) -> Result<(Arc<Auth>, Option<Seeded>)> {
        let mailer = crate::email::Mailer::new(&config.mailer)?;
        let keys = keystore::load_or_create(&repo, config.signing_alg).await?;
        let seeded = bootstrap::seed(&repo, &config).await?;
        let sessions = Arc::new(Sessions::new(
            config.token_cache_ttl,
            config.session_recheck,
        ));
        let listener = sessions.clone();
        repo.on_change(Arc::new(move |change| listener.invalidate(change)));
        let auth = Auth {
            repo,
            config,
            keys: RwLock::new(Arc::new(keys)),
            sessions,
            assertions: Default::default(),
            dummy_hash: tokio::sync::OnceCell::new(),
            used_steps: Default::default(),
            keys_loaded: Default::default(),
            mailer,
        };
        Ok((Arc::new(auth), seeded))
    }

    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// A bcrypt hash at the configured cost of a random password nobody knows.
    pub(crate) async fn dummy_hash(&self) -> Result<String> {
        let cost = self.config.bcrypt_cost;
        self.dummy_hash
            .get_or_try_init(|| async move {
                let password = crate::secret::generate_secret(16)?;
                tokio::task::spawn_blocking(move || crate::password::hash_password(&password, cost))
                    .await
                    .map_err(|e| crate::failure::AuthFailure::Internal(e.to_string()))?
                    .map_err(crate::failure::AuthFailure::from)
            })
            .await
            .cloned()
    }

    pub(crate) fn assertions(&self) -> &crate::assertion::SeenAssertions {
        &self.assertions
    }

    pub(crate) fn used_steps(&self) -> &crate::mfa::UsedSteps {
        &self.used_steps
    }

    pub fn mailer(&self) -> &crate::email::Mailer {
        &self.mailer
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn keys(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a complete key set: keys are replaced whole.
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `{"keys": [...]}` without private parts.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys().jwks()
    }

    /// Adds a signing key; tokens signed by the previous keys keep verifying until those keys
    /// are made inactive.
    pub async fn rotate_keys(&self) -> Result<()> {
        let keys = keystore::rotate(&self.repo, self.config.signing_alg).await?;
        self.set_keys(keys);
        Ok(())
    }

    /// Rotates the signing key when it is due and retires keys past their overlap (see
    /// [`keystore::maintain`]); also picks up keys another instance wrote. Run periodically.
    pub async fn maintain_keys(&self) -> Result<keystore::Maintenance> {
        let (keys, done) = keystore::maintain(
            &self.repo,
            self.config.signing_alg,
            self.config.key_rotation,
            self.config.key_overlap,
        )
        .await?;
        self.set_keys(keys);
        Ok(done)
    }

    /// Reads the active keys again, at most once a second: a token whose `kid` this instance
    /// does not know may be signed by a key another instance just made.
    pub(crate) async fn reload_keys(&self) -> Result<bool> {
        let now = oxmed_repo::meta::now_micros();
        let last = self.keys_loaded.load(std::sync::atomic::Ordering::Relaxed);
        if now - last < 1_000_000 {
            return Ok(false);
        }
        self.keys_loaded
            .store(now, std::sync::atomic::Ordering::Relaxed);
        let keys = keystore::load_or_create(&self.repo, self.config.signing_alg).await?;
        self.set_keys(keys);
        Ok(true)
    }

    fn set_keys(&self, keys: KeySet) {
        let mut current = self.keys.write().unwrap_or_else(|e| e.into_inner());
        // Tokens verified with a key that is gone must be verified again, and fail.
        let retired = current.kids().any(|k| !keys.has_kid(k));
        *current = Arc::new(keys);
        drop(current);
        if retired {
            self.sessions.forget_tokens();
        }
    }
}
