//! First start (issue: "creates the super-admin project, a super-admin user and a super-admin
//! ClientApplication, idempotently"). The User is written last and is what makes the seed
//! complete: a start that stops half-way leaves an unused project behind and seeds again.

use oxmed_repo::{Repository, SERVER_PROJECT, Scope};
use serde_json::json;

use crate::config::AuthConfig;
use crate::failure::Result;
use crate::identity::Reference;
use crate::{password, records, secret};

/// What the first start made, for the console.
pub struct Seeded {
    pub email: String,
    /// Set when the password was generated: shown once, never logged.
    pub generated_password: Option<String>,
    pub project_id: String,
    pub client_id: String,
}

/// Creates the super admin unless a server-scoped user with the admin email exists.
pub async fn seed(repo: &Repository, config: &AuthConfig) -> Result<Option<Seeded>> {
    let email = config.admin_email.trim().to_lowercase();
    let existing = repo
        .system_find_one(
            Scope::Project(SERVER_PROJECT),
            "User",
            &[("email:exact", &email)],
        )
        .await?;
    if existing.is_some() {
        return Ok(None);
    }
    let (password, generated_password) = match &config.admin_password {
        Some(p) => (p.clone(), None),
        None => {
            let p = secret::generate_secret(16)?;
            (p.clone(), Some(p))
        }
    };
    let cost = config.bcrypt_cost;
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&password, cost))
        .await
        .map_err(|e| crate::failure::AuthFailure::Internal(e.to_string()))??;

    let project_id = oxmed_repo::meta::new_id();
    let user_id = oxmed_repo::meta::new_id();
    let project = &project_id;
    records::put(
        repo,
        project,
        json!({"resourceType": "Project", "id": project_id, "name": "Super Admin",
            "superAdmin": true, "strictMode": true,
            "owner": {"reference": format!("User/{user_id}")}}),
    )
    .await?;
    let practitioner = records::create(
        repo,
        project,
        json!({"resourceType": "Practitioner",
            "name": [{"given": ["Super"], "family": "Admin"}],
            "telecom": [{"system": "email", "use": "work", "value": email}]}),
    )
    .await?;
    let practitioner_id = practitioner["id"].as_str().unwrap_or_default().to_owned();
    let client = records::create(
        repo,
        project,
        json!({"resourceType": "ClientApplication", "name": "Super Admin Client",
            "status": "active", "secret": secret::generate_secret(32)?}),
    )
    .await?;
    let client_id = client["id"].as_str().unwrap_or_default().to_owned();
    records::create(
        repo,
        project,
        json!({"resourceType": "ProjectMembership",
            "project": Reference::to("Project", &project_id),
            "user": Reference::to("ClientApplication", &client_id),
            "profile": Reference::to("ClientApplication", &client_id),
            "admin": true}),
    )
    .await?;
    records::create(
        repo,
        project,
        json!({"resourceType": "ProjectMembership",
            "project": Reference::to("Project", &project_id),
            "user": Reference::to("User", &user_id),
            "profile": {"reference": format!("Practitioner/{practitioner_id}"), "display": "Super Admin"},
            "admin": true}),
    )
    .await?;
    records::put(
        repo,
        SERVER_PROJECT,
        json!({"resourceType": "User", "id": user_id, "firstName": "Super",
            "lastName": "Admin", "email": email, "emailVerified": true,
            "passwordHash": hash}),
    )
    .await?;
    Ok(Some(Seeded {
        email,
        generated_password,
        project_id,
        client_id,
    }))
}
