//! Wire compatibility with real client libraries from npm, on both backends:
//! `compat/medplum.mjs` drives oxmed with Medplum's own `@medplum/core` (`MedplumClient`), and
//! `compat/openid.mjs` with `openid-client` (OpenID Certified). Versions are pinned in
//! `compat/package.json` and its lock file; `scripts/test` installs them (`npm ci`).
//! Without `compat/node_modules` the test is skipped, except under CI, where it fails.

mod common;

use std::path::PathBuf;

use common::TestServer;
use oxmed_auth::records;
use serde_json::json;

const USER_EMAIL: &str = "clinician@example.com";
const USER_PASSWORD: &str = "compat-password-1";
const CLIENT_SECRET: &str = "compat-client-secret-0123456789abcdef";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

fn compat_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compat");
    if dir.join("node_modules/@medplum/core").exists()
        && dir.join("node_modules/openid-client").exists()
    {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI needs the compat packages: cd compat && npm ci"
    );
    eprintln!("skipped: run `npm ci` in compat/ first");
    None
}

/// An ordinary project (refresh tokens are not given in the super admin's): a server-scoped
/// user who is a Practitioner member, and a confidential client with a membership. The client id.
async fn ordinary_project(srv: &TestServer) -> String {
    let repo = srv.auth.repo();
    let project = oxmed_repo::meta::new_id();
    let user = oxmed_repo::meta::new_id();
    records::put(
        repo,
        &project,
        json!({"resourceType": "Project", "id": project, "name": "Compat Clinic"}),
    )
    .await
    .unwrap();
    let practitioner = records::create(
        repo,
        &project,
        json!({"resourceType": "Practitioner", "name": [{"given": ["Grace"], "family": "Hopper"}]}),
    )
    .await
    .unwrap();
    let member = |user: &str, profile: &str| {
        json!({"resourceType": "ProjectMembership",
            "project": {"reference": format!("Project/{project}")},
            "user": {"reference": user}, "profile": {"reference": profile}})
    };
    let practitioner_ref = format!("Practitioner/{}", practitioner["id"].as_str().unwrap());
    records::create(
        repo,
        &project,
        member(&format!("User/{user}"), &practitioner_ref),
    )
    .await
    .unwrap();
    let hash = oxmed_auth::password::hash_password(USER_PASSWORD, 4).unwrap();
    records::put(
        repo,
        oxmed_repo::SERVER_PROJECT,
        json!({"resourceType": "User", "id": user, "firstName": "Grace", "lastName": "Hopper",
            "email": USER_EMAIL, "emailVerified": true, "passwordHash": hash}),
    )
    .await
    .unwrap();
    let client = records::create(
        repo,
        &project,
        json!({"resourceType": "ClientApplication", "name": "Compat App",
            "secret": CLIENT_SECRET, "redirectUris": [REDIRECT_URI]}),
    )
    .await
    .unwrap();
    let client_ref = format!("ClientApplication/{}", client["id"].as_str().unwrap());
    records::create(repo, &project, member(&client_ref, &client_ref))
        .await
        .unwrap();
    client["id"].as_str().unwrap().to_owned()
}

async fn run_node(dir: &PathBuf, script: &str, base: &str, client_id: &str) {
    let out = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(dir)
        .env("OXMED_BASE_URL", base)
        .env("ADMIN_EMAIL", common::ADMIN_EMAIL)
        .env("ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .env("USER_EMAIL", USER_EMAIL)
        .env("USER_PASSWORD", USER_PASSWORD)
        .env("CLIENT_ID", client_id)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URI", REDIRECT_URI)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{script}:\n{stdout}");
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("not ok"), "{stdout}");
    assert!(stdout.contains("ok - "), "no check ran: {stdout}");
}

e2e!(medplum_client_library, |srv| async move {
    let Some(dir) = compat_dir() else {
        return;
    };
    let client_id = ordinary_project(&srv).await;
    run_node(&dir, "medplum.mjs", &srv.base, &client_id).await;
});

e2e!(openid_certified_client, |srv| async move {
    let Some(dir) = compat_dir() else {
        return;
    };
    let client_id = ordinary_project(&srv).await;
    run_node(&dir, "openid.mjs", &srv.base, &client_id).await;
});
