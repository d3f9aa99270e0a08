//! The authorization server against a real store (a SQLite file; PostgreSQL too when
//! `OXMED_TEST_POSTGRES_URL` is set): a user of an ordinary project, with memberships in two
//! projects, signing in, refreshing, and the RFC 9700 rules on refresh-token reuse.

use std::collections::HashMap;
use std::sync::Arc;

mod common;

use common::{TempDir, store};
use oxmed_auth::{Auth, AuthConfig, AuthFailure, LoginRequest, TokenRequest, records};
use oxmed_repo::Repository;
use serde_json::{Value, json};

struct Env {
    auth: Arc<Auth>,
    project_a: String,
    project_b: String,
    client_a: String,
    _dir: Option<TempDir>,
}

const EMAIL: &str = "clinician@example.com";
const PASSWORD: &str = "correct horse battery";

/// Two ordinary projects; one server-scoped user who is a member of both; a client in A.
async fn setup(postgres: bool) -> Option<Env> {
    let (store, dir) = store(postgres).await?;
    let repo = Repository::new(store);
    let mut config = AuthConfig::new("http://localhost:8103/");
    config.bcrypt_cost = 4;
    config.admin_password = Some("admin-password".into());
    let (auth, seeded) = Auth::start(repo.clone(), config).await.unwrap();
    assert!(seeded.is_some());
    let user_id = oxmed_repo::meta::new_id();
    let mut projects = Vec::new();
    for name in ["Clinic A", "Clinic B"] {
        let id = oxmed_repo::meta::new_id();
        records::put(
            &repo,
            &id,
            json!({"resourceType": "Project", "id": id, "name": name}),
        )
        .await
        .unwrap();
        let practitioner = records::create(
            &repo,
            &id,
            json!({"resourceType": "Practitioner", "name": [{"family": name}]}),
        )
        .await
        .unwrap();
        records::create(
            &repo,
            &id,
            json!({"resourceType": "ProjectMembership",
                "project": {"reference": format!("Project/{id}")},
                "user": {"reference": format!("User/{user_id}")},
                "profile": {"reference": format!("Practitioner/{}", practitioner["id"].as_str().unwrap())}}),
        )
        .await
        .unwrap();
        projects.push(id);
    }
    let hash = oxmed_auth::password::hash_password(PASSWORD, 4).unwrap();
    records::put(
        &repo,
        oxmed_repo::SERVER_PROJECT,
        json!({"resourceType": "User", "id": user_id, "firstName": "C", "lastName": "L",
            "email": EMAIL, "passwordHash": hash}),
    )
    .await
    .unwrap();
    let client = records::create(
        &repo,
        &projects[0],
        json!({"resourceType": "ClientApplication", "name": "App A", "secret": "s3cret-a",
            "redirectUris": ["https://app.example/cb"]}),
    )
    .await
    .unwrap();
    Some(Env {
        auth,
        project_a: projects[0].clone(),
        project_b: projects[1].clone(),
        client_a: client["id"].as_str().unwrap().to_owned(),
        _dir: dir,
    })
}

fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = oxmed_auth::pkce::s256_challenge(&verifier);
    (verifier, challenge)
}

fn login_request(challenge: &str, client: Option<&str>, scope: &str) -> LoginRequest {
    LoginRequest {
        email: EMAIL.into(),
        password: PASSWORD.into(),
        client_id: client.map(str::to_owned),
        scope: Some(scope.into()),
        code_challenge: Some(challenge.into()),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

async fn token(auth: &Auth, fields: &[(&str, &str)]) -> Result<Value, AuthFailure> {
    let form: HashMap<String, String> = fields
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    auth.token(&TokenRequest {
        form: &form,
        authorization: None,
        remote_address: None,
        user_agent: None,
    })
    .await
}

async fn code_tokens(env: &Env, scope: &str) -> Value {
    let (verifier, challenge) = pkce();
    let r = env
        .auth
        .password_login(&login_request(&challenge, Some(&env.client_a), scope))
        .await
        .unwrap();
    let code = r.body["code"]
        .as_str()
        .expect("one membership in A: a code")
        .to_owned();
    assert_eq!(
        r.cookie.as_ref().unwrap().0,
        format!("medplum-{}", env.client_a)
    );
    token(
        &env.auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
        ],
    )
    .await
    .unwrap()
}

fn is_invalid_grant(r: &Result<Value, AuthFailure>, description: &str) -> bool {
    matches!(r, Err(AuthFailure::OAuth { error: "invalid_grant", description: d, .. }) if d == description)
}

macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let env = setup(false).await.unwrap();
                ($body)(env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(env) = setup(true).await {
                    ($body)(env).await;
                }
            }
        }
    };
}

both!(memberships_in_two_projects, |env: Env| async move {
    // Without a client or project: both memberships, no code until one is chosen.
    let (verifier, challenge) = pkce();
    let r = env
        .auth
        .password_login(&login_request(&challenge, None, "openid"))
        .await
        .unwrap();
    assert!(r.body.get("code").is_none());
    let memberships = r.body["memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 2);
    let login = r.body["login"].as_str().unwrap();
    let in_b = memberships
        .iter()
        .find(|m| m["project"]["reference"] == format!("Project/{}", env.project_b))
        .unwrap();
    // A membership of somebody else is refused.
    let other = env
        .auth
        .choose_membership(login, "00000000-0000-0000-0000-000000000000")
        .await;
    assert!(matches!(other, Err(AuthFailure::Invalid(m)) if m == "Profile not found"));
    let chosen = env
        .auth
        .choose_membership(login, in_b["id"].as_str().unwrap())
        .await
        .unwrap();
    let code = chosen.body["code"].as_str().unwrap();
    let again = env
        .auth
        .choose_membership(login, in_b["id"].as_str().unwrap())
        .await;
    assert!(matches!(again, Err(AuthFailure::Invalid(m)) if m == "Login profile already set"));
    let tokens = token(
        &env.auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", &verifier),
        ],
    )
    .await
    .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let caller = env
        .auth
        .authenticate(Some(&format!("Bearer {access}")))
        .await
        .unwrap();
    assert_eq!(caller.project_id(), env.project_b);
    assert_eq!(caller.request_context().project, env.project_b);
    assert!(!caller.is_project_admin());
    // With the client of A, only A's membership counts: a code at once.
    let tokens = code_tokens(&env, "openid").await;
    let caller = env
        .auth
        .authenticate(Some(&format!(
            "Bearer {}",
            tokens["access_token"].as_str().unwrap()
        )))
        .await
        .unwrap();
    assert_eq!(caller.project_id(), env.project_a);
    assert_eq!(caller.client_id.as_deref(), Some(env.client_a.as_str()));
});

both!(
    refresh_rotates_and_reuse_revokes_the_login,
    |env: Env| async move {
        let first = code_tokens(&env, "openid offline").await;
        let r1 = first["refresh_token"]
            .as_str()
            .expect("offline: a refresh token")
            .to_owned();
        let access1 = first["access_token"].as_str().unwrap().to_owned();
        let second = token(
            &env.auth,
            &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
        )
        .await
        .unwrap();
        let r2 = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(r1, r2);
        assert_eq!(second["scope"], "openid offline");
        let access2 = second["access_token"].as_str().unwrap().to_owned();
        assert!(
            env.auth
                .authenticate(Some(&format!("Bearer {access2}")))
                .await
                .is_ok()
        );
        // The rotated-out token again: refused, and the whole Login is revoked.
        let reuse = token(
            &env.auth,
            &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
        )
        .await;
        assert!(is_invalid_grant(&reuse, "Invalid token"), "{reuse:?}");
        for access in [&access1, &access2] {
            let r = env
                .auth
                .authenticate(Some(&format!("Bearer {access}")))
                .await;
            assert!(matches!(r, Err(AuthFailure::Unauthorized)), "{r:?}");
        }
        let after = token(
            &env.auth,
            &[("grant_type", "refresh_token"), ("refresh_token", &r2)],
        )
        .await;
        assert!(is_invalid_grant(&after, "Token revoked"), "{after:?}");
    }
);

both!(concurrent_refreshes_mint_one_token, |env: Env| async move {
    let first = code_tokens(&env, "openid offline_access").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let auth = env.auth.clone();
            let r1 = r1.clone();
            tokio::spawn(async move {
                token(
                    &auth,
                    &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for a in attempts {
        if a.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one refresh wins");
});

both!(client_secret_rules, |env: Env| async move {
    // Medplum issues tokens to a pkceOptional client with no authentication at all; here such
    // a client must send its secret when it does not use PKCE.
    let repo = env.auth.repo();
    let stored = repo
        .system_read("ClientApplication", &env.client_a)
        .await
        .unwrap()
        .unwrap();
    let mut client = oxmed_repo::parse_stored(&stored).unwrap();
    client["pkceOptional"] = json!(true);
    client["retiringSecret"] = json!("old-secret");
    records::put(repo, &env.project_a, client).await.unwrap();
    let login = LoginRequest {
        email: EMAIL.into(),
        password: PASSWORD.into(),
        client_id: Some(env.client_a.clone()),
        ..Default::default()
    };
    let r = env.auth.password_login(&login).await.unwrap();
    let code = r.body["code"].as_str().unwrap().to_owned();
    let bare = token(
        &env.auth,
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert!(
        matches!(&bare, Err(AuthFailure::OAuth { description, .. }) if description == "Missing client_secret"),
        "{bare:?}"
    );
    let wrong = token(
        &env.auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &env.client_a),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert!(
        matches!(&wrong, Err(AuthFailure::OAuth { description, .. }) if description == "Invalid secret"),
        "{wrong:?}"
    );
    // The retiring secret still works while it is set.
    let ok = token(
        &env.auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &env.client_a),
            ("client_secret", "old-secret"),
        ],
    )
    .await;
    assert!(ok.is_ok(), "{ok:?}");
});
