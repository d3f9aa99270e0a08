//! Signing-key rotation and several instances on one store, against a real store (SQLite;
//! PostgreSQL too when `OXMED_TEST_POSTGRES_URL` is set): a rotated key keeps verifying for its
//! overlap and not after; a second instance verifies tokens signed by a key it has not loaded
//! yet, and refuses a Login revoked through the first once its cache is due; RS256 is selectable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TempDir, store};
use oxmed_auth::keys::KeyAlgorithm;
use oxmed_auth::{Auth, AuthConfig, TokenRequest};
use oxmed_repo::Repository;
use serde_json::Value;

async fn instance(repo: Repository, alg: KeyAlgorithm) -> Arc<Auth> {
    let mut config = AuthConfig::new("http://localhost:8103/");
    config.bcrypt_cost = 4;
    config.admin_password = Some("admin-password".into());
    config.signing_alg = alg;
    Auth::start(repo, config).await.unwrap().0
}

/// A client-credentials access token of the super admin's client.
async fn cc_token(auth: &Auth) -> String {
    let client = auth
        .repo()
        .system_find_one(
            oxmed_repo::Scope::AllProjects,
            "ClientApplication",
            &[("name:exact", "Super Admin Client")],
        )
        .await
        .unwrap()
        .unwrap()
        .1;
    let mut form = std::collections::HashMap::new();
    form.insert("grant_type".to_owned(), "client_credentials".to_owned());
    form.insert(
        "client_id".to_owned(),
        client["id"].as_str().unwrap().to_owned(),
    );
    form.insert(
        "client_secret".to_owned(),
        client["secret"].as_str().unwrap().to_owned(),
    );
    let body: Value = auth
        .token(&TokenRequest {
            form: &form,
            authorization: None,
            remote_address: None,
            user_agent: None,
        })
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn accepted(auth: &Auth, token: &str) -> bool {
    auth.authenticate(Some(&format!("Bearer {token}")))
        .await
        .is_ok()
}

fn kid(token: &str) -> String {
    oxmed_auth::jwt::kid_of(token).unwrap()
}

async fn rotation(postgres: bool) {
    let Some((store, dir)) = store(postgres).await else {
        return;
    };
    let _dir: Option<TempDir> = dir;
    let repo = Repository::new(store);
    let a = instance(repo.clone(), KeyAlgorithm::Es256).await;
    let b = instance(repo.clone(), KeyAlgorithm::Es256).await;
    let old = cc_token(&a).await;
    assert!(accepted(&a, &old).await && accepted(&b, &old).await);

    // Nothing is due: no rotation, nothing retired.
    let done = a.maintain_keys().await.unwrap();
    assert!(!done.rotated && done.retired.is_empty(), "{done:?}");

    // A rotates; B has not looked at the keys since, and still verifies A's new tokens.
    a.rotate_keys().await.unwrap();
    let new = cc_token(&a).await;
    assert_ne!(kid(&new), kid(&old));
    assert!(accepted(&a, &new).await);
    assert!(
        accepted(&b, &new).await,
        "an unknown kid makes B read the keys again"
    );
    // The old key still verifies during the overlap; the JWKS has both.
    assert!(accepted(&a, &old).await);
    assert_eq!(a.jwks()["keys"].as_array().unwrap().len(), 2);
    // B signs with the newest key too, once it has read the keys.
    assert_eq!(kid(&cc_token(&b).await), kid(&new));
}

#[tokio::test]
async fn rotated_keys_verify_on_every_instance_sqlite() {
    rotation(false).await;
}

#[tokio::test]
async fn rotated_keys_verify_on_every_instance_postgres() {
    rotation(true).await;
}

async fn retirement(postgres: bool) {
    let Some((store, dir)) = store(postgres).await else {
        return;
    };
    let _dir: Option<TempDir> = dir;
    let repo = Repository::new(store);
    let mut config = AuthConfig::new("http://localhost:8103/");
    config.bcrypt_cost = 4;
    config.admin_password = Some("admin-password".into());
    // Rotate whenever asked, and retire a replaced key at once.
    config.key_rotation = Some(Duration::from_secs(0));
    config.key_overlap = Duration::from_secs(0);
    let (auth, _) = Auth::start(repo, config).await.unwrap();
    let old = cc_token(&auth).await;
    // Verified (and cached) before the retirement.
    assert!(accepted(&auth, &old).await);
    let done = auth.maintain_keys().await.unwrap();
    assert!(done.rotated);
    assert_eq!(done.retired, vec![kid(&old)]);
    let new = cc_token(&auth).await;
    assert_ne!(kid(&new), kid(&old));
    assert!(accepted(&auth, &new).await);
    assert!(
        !accepted(&auth, &old).await,
        "a retired key verifies nothing"
    );
    let jwks = auth.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![kid(&new).as_str()]);
}

#[tokio::test]
async fn retired_keys_stop_verifying_sqlite() {
    retirement(false).await;
}

#[tokio::test]
async fn retired_keys_stop_verifying_postgres() {
    retirement(true).await;
}

#[tokio::test]
async fn rs256_is_selectable() {
    let Some((store, _dir)) = store(false).await else {
        return;
    };
    let auth = instance(Repository::new(store), KeyAlgorithm::Rs256).await;
    let token = cc_token(&auth).await;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(accepted(&auth, &token).await);
    assert_eq!(auth.jwks()["keys"][0]["kty"], "RSA");
}

/// A Login revoked through one instance is refused by another on the same database once its
/// cached session is due for a recheck (`AuthConfig::session_recheck`).
async fn revocation_across_instances(postgres: bool) {
    let Some((store, dir)) = store(postgres).await else {
        return;
    };
    let _dir: Option<TempDir> = dir;
    let repo = Repository::new(store);
    let a = instance(repo.clone(), KeyAlgorithm::Es256).await;
    let mut config = AuthConfig::new("http://localhost:8103/");
    config.bcrypt_cost = 4;
    config.session_recheck = Duration::from_secs(1);
    let (b, _) = Auth::start(repo, config).await.unwrap();
    let token = cc_token(&a).await;
    assert!(accepted(&b, &token).await, "B caches the session");
    let caller = a
        .authenticate(Some(&format!("Bearer {token}")))
        .await
        .unwrap();
    a.logout(&caller).await.unwrap();
    assert!(
        !accepted(&a, &token).await,
        "refused at once where it was revoked"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        !accepted(&b, &token).await,
        "refused by the other instance after its recheck"
    );
}

#[tokio::test]
async fn revocation_reaches_other_instances_sqlite() {
    revocation_across_instances(false).await;
}

#[tokio::test]
async fn revocation_reaches_other_instances_postgres() {
    revocation_across_instances(true).await;
}
