//! The server's signing keys, kept as `JsonWebKey` resources in the server's own partition
//! (spec §3.3): the first active key signs, every active key verifies, and a key made inactive
//! stops verifying at once. Rotation: add a key (it signs from then on), and retire the old one
//! after the longest token lifetime has passed.

use oxmed_repo::{Repository, RequestContext, Scope, WriteRequest, parse_stored};
use serde_json::Value;

use crate::failure::{AuthFailure, Result};
use crate::jwt::KeySet;
use crate::keys::SigningKey;

/// The active keys, newest first; one is created when there is none.
pub async fn load_or_create(repo: &Repository) -> Result<KeySet> {
    let mut keys = active_keys(repo).await?;
    if keys.is_empty() {
        let key = SigningKey::generate_es256(oxmed_repo::meta::new_id())?;
        store_key(repo, &key).await?;
        tracing::info!(kid = %key.id(), "created a signing key (ES256)");
        keys = active_keys(repo).await?;
    }
    KeySet::new(keys).map_err(AuthFailure::from)
}

/// Adds a new signing key, which signs from now on; the others keep verifying.
pub async fn rotate(repo: &Repository) -> Result<KeySet> {
    let key = SigningKey::generate_es256(oxmed_repo::meta::new_id())?;
    store_key(repo, &key).await?;
    load_or_create(repo).await
}

async fn store_key(repo: &Repository, key: &SigningKey) -> Result<()> {
    repo.write(
        &RequestContext::system(),
        WriteRequest::Update {
            resource_type: "JsonWebKey".into(),
            id: key.id().to_owned(),
            resource: key.to_json_web_key_resource(),
            if_match: None,
        },
    )
    .await?;
    Ok(())
}

async fn active_keys(repo: &Repository) -> Result<Vec<SigningKey>> {
    let found = repo
        .system_search(
            Scope::Project(oxmed_repo::SERVER_PROJECT),
            "JsonWebKey",
            &[("active", "true"), ("_sort", "-_lastUpdated")],
        )
        .await?;
    let mut keys = Vec::with_capacity(found.len());
    for r in &found {
        let v: Value = parse_stored(r)?;
        match SigningKey::from_json_web_key_resource(&v) {
            Ok(k) => keys.push(k),
            // One unusable key must not stop the server from signing with the others.
            Err(e) => tracing::error!(kid = %r.id, error = %e, "unusable signing key skipped"),
        }
    }
    Ok(keys)
}
