//! The server's signing keys, kept as `JsonWebKey` resources in the server's own partition
//! (spec §3.3): the first active key signs, every active key verifies, and a key made inactive
//! stops verifying at once.
//!
//! Rotation (beyond Medplum, which never rotates): when the signing key is older than the
//! configured rotation period a new key is added, which signs from then on; an older key is
//! retired once its successor has signed for the overlap period, by which time every token it
//! signed has expired (the overlap is at least the longest token lifetime).

use oxmed_repo::{Repository, RequestContext, Scope, WriteRequest, parse_stored};
use serde_json::Value;

use crate::failure::{AuthFailure, Result};
use crate::jwt::KeySet;
use crate::keys::{KeyAlgorithm, SigningKey};

/// A stored active key and when it was written (microseconds).
struct StoredKey {
    key: SigningKey,
    written: i64,
    resource: Value,
}

fn generate(alg: KeyAlgorithm) -> Result<SigningKey> {
    let id = oxmed_repo::meta::new_id();
    Ok(match alg {
        KeyAlgorithm::Es256 => SigningKey::generate_es256(id)?,
        KeyAlgorithm::Rs256 => SigningKey::generate_rs256(id)?,
    })
}

/// The active keys, newest first; one of `alg` is created when there is none.
pub async fn load_or_create(repo: &Repository, alg: KeyAlgorithm) -> Result<KeySet> {
    let mut keys = active_keys(repo).await?;
    if keys.is_empty() {
        let key = generate(alg)?;
        store_key(repo, key.to_json_web_key_resource()).await?;
        tracing::info!(kid = %key.id(), %alg, "created a signing key");
        keys = active_keys(repo).await?;
    }
    KeySet::new(keys.into_iter().map(|k| k.key).collect()).map_err(AuthFailure::from)
}

/// Adds a new signing key of `alg`, which signs from now on; the others keep verifying.
pub async fn rotate(repo: &Repository, alg: KeyAlgorithm) -> Result<KeySet> {
    let key = generate(alg)?;
    store_key(repo, key.to_json_web_key_resource()).await?;
    tracing::info!(kid = %key.id(), %alg, "rotated the signing key");
    load_or_create(repo, alg).await
}

/// What [`maintain`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub rotated: bool,
    pub retired: Vec<String>,
}

/// Rotates when the signing key is older than `rotation` (if set), and retires every older key
/// whose successor was written more than `overlap` ago. Then the keys as they are.
pub async fn maintain(
    repo: &Repository,
    alg: KeyAlgorithm,
    rotation: Option<std::time::Duration>,
    overlap: std::time::Duration,
) -> Result<(KeySet, Maintenance)> {
    let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let mut done = Maintenance::default();
    let keys = active_keys(repo).await?;
    if let (Some(rotation), Some(newest)) = (rotation, keys.first())
        && oxmed_repo::meta::now_micros().saturating_sub(newest.written) >= micros(rotation)
    {
        rotate(repo, alg).await?;
        done.rotated = true;
    }
    // After any rotation: the new key's time is not in the future.
    let now_micros = oxmed_repo::meta::now_micros();
    let keys = active_keys(repo).await?;
    // keys[i]'s successor is keys[i - 1]: the key that took over signing from it.
    for pair in keys.windows(2) {
        let (successor, older) = (&pair[0], &pair[1]);
        if now_micros.saturating_sub(successor.written) >= micros(overlap) {
            let mut resource = older.resource.clone();
            resource["active"] = Value::Bool(false);
            store_key(repo, resource).await?;
            tracing::info!(kid = %older.key.id(), "retired a signing key");
            done.retired.push(older.key.id().to_owned());
        }
    }
    Ok((load_or_create(repo, alg).await?, done))
}

async fn store_key(repo: &Repository, resource: Value) -> Result<()> {
    let id = resource["id"].as_str().unwrap_or_default().to_owned();
    repo.write(
        &RequestContext::system(),
        WriteRequest::Update {
            resource_type: "JsonWebKey".into(),
            id,
            resource,
            if_match: None,
        },
    )
    .await?;
    Ok(())
}

async fn active_keys(repo: &Repository) -> Result<Vec<StoredKey>> {
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
            Ok(key) => keys.push(StoredKey {
                key,
                written: r.last_updated,
                resource: v,
            }),
            // One unusable key must not stop the server from signing with the others.
            Err(e) => tracing::error!(kid = %r.id, error = %e, "unusable signing key skipped"),
        }
    }
    Ok(keys)
}
