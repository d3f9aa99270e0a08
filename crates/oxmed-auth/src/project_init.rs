//! New projects (spec §8.6): `POST /fhir/R4/Project/$init` for super admins, and the project a
//! newly registered user makes (`/auth/newproject`). A project comes with a default
//! ClientApplication and, when it has an owner, the owner's Practitioner profile and admin
//! membership, all written in one transaction.

use oxmed_repo::{SERVER_PROJECT, WriteRequest, parse_stored};
use serde_json::{Value, json};

use crate::failure::{AuthFailure, Result};
use crate::identity::User;
use crate::security_request::put;
use crate::service::Auth;
use crate::session::Caller;
use crate::{password, secret};

const MAX_PROJECT_NAME_CHARS: usize = 128;

/// What [`Auth::create_project`] wrote.
pub struct CreatedProject {
    pub project: Value,
    /// The owner's admin membership, when there is an owner.
    pub membership: Option<Value>,
}

impl Auth {
    /// `Project/$init` with its Parameters: `name`, and `owner` (a User reference) or
    /// `ownerEmail` (a server-scoped user, made if unknown); the caller itself by default.
    pub async fn init_project(
        &self,
        caller: &Caller,
        name: Option<&str>,
        owner: Option<&str>,
        owner_email: Option<&str>,
    ) -> Result<Value> {
        if !caller.is_super_admin() {
            return Err(AuthFailure::Forbidden);
        }
        let name = project_name(name)?;
        let mut writes = Vec::new();
        let owner = match (owner, owner_email) {
            (Some(reference), _) => Some(self.owner_by_reference(reference).await?),
            (None, Some(email)) => {
                let email = email.trim().to_lowercase();
                if !crate::invite::is_valid_email(&email) {
                    return Err(AuthFailure::invalid("Valid email address is required"));
                }
                match self.server_user_by_email(&email).await? {
                    Some((_, user)) => Some(user),
                    None => {
                        let user = self.new_owner(&email, &name).await?;
                        writes.push((SERVER_PROJECT.to_owned(), put(user.to_value())));
                        Some(user)
                    }
                }
            }
            (None, None) => match caller.user.id_of("User") {
                Some(_) => Some(self.owner_by_reference(caller.user.text()).await?),
                None => None,
            },
        };
        if owner.as_ref().is_some_and(|u| u.project.is_some()) {
            return Err(AuthFailure::invalid(
                "Project owner must not belong to another Project",
            ));
        }
        Ok(self
            .create_project(&name, owner.as_ref(), writes)
            .await?
            .project)
    }

    async fn owner_by_reference(&self, reference: &str) -> Result<User> {
        let (t, id) = reference.split_once('/').unwrap_or(("", reference));
        if t != "User" {
            return Err(AuthFailure::invalid(
                "Only Users are permitted to be the owner of a new Project",
            ));
        }
        let stored = self
            .repo()
            .system_read("User", id)
            .await?
            .ok_or_else(|| AuthFailure::invalid("Project owner not found"))?;
        User::from_value(parse_stored(&stored)?)
    }

    /// A server-scoped User for an unknown owner email, with a password nobody knows (they set
    /// one through a reset link).
    async fn new_owner(&self, email: &str, project_name: &str) -> Result<User> {
        let cost = self.config().bcrypt_cost;
        let random = secret::generate_secret(16)?;
        let hash = tokio::task::spawn_blocking(move || password::hash_password(&random, cost))
            .await
            .map_err(|e| AuthFailure::Internal(e.to_string()))??;
        User::from_value(
            json!({"resourceType": "User", "id": oxmed_repo::meta::new_id(),
            "email": email, "firstName": project_name, "lastName": "Admin",
            "passwordHash": hash}),
        )
    }

    /// Writes a project named `name`, its default client and, with an `owner`, the owner's
    /// profile and admin membership, together with `before` (writes of the same transaction).
    pub async fn create_project(
        &self,
        name: &str,
        owner: Option<&User>,
        mut writes: Vec<(String, WriteRequest)>,
    ) -> Result<CreatedProject> {
        let id = oxmed_repo::meta::new_id();
        let mut project = json!({"resourceType": "Project", "id": id, "name": name,
            "strictMode": true});
        if let Some(o) = owner {
            project["owner"] = json!({"reference": format!("User/{}", o.id())});
        }
        let project_ref = json!({"reference": format!("Project/{id}")});
        let client_id = oxmed_repo::meta::new_id();
        let client_ref = json!({"reference": format!("ClientApplication/{client_id}"),
            "display": format!("{name} Default Client")});
        writes.push((id.clone(), put(project)));
        writes.push((
            id.clone(),
            put(json!({"resourceType": "ClientApplication", "id": client_id,
                "name": format!("{name} Default Client"),
                "description": format!("Default client for {name}"),
                "status": "active", "secret": secret::generate_secret(32)?})),
        ));
        writes.push((
            id.clone(),
            put(
                json!({"resourceType": "ProjectMembership", "id": oxmed_repo::meta::new_id(),
                "project": project_ref, "user": client_ref, "profile": client_ref}),
            ),
        ));
        let mut membership_at = None;
        if let Some(o) = owner {
            let first = o.first_name.clone().unwrap_or_default();
            let last = o.last_name.clone().unwrap_or_default();
            let profile_id = oxmed_repo::meta::new_id();
            let mut profile = json!({"resourceType": "Practitioner", "id": profile_id,
                "name": [{"given": [first], "family": last}]});
            if let Some(email) = &o.email {
                profile["telecom"] = json!([{"system": "email", "use": "work", "value": email}]);
            }
            writes.push((id.clone(), put(profile)));
            membership_at = Some(writes.len());
            writes.push((
                id.clone(),
                put(
                    json!({"resourceType": "ProjectMembership", "id": oxmed_repo::meta::new_id(),
                    "project": project_ref,
                    "user": {"reference": format!("User/{}", o.id())},
                    "profile": {"reference": format!("Practitioner/{profile_id}"),
                        "display": format!("{first} {last}").trim()},
                    "admin": true}),
                ),
            ));
        }
        let project_at = writes
            .iter()
            .position(|(_, w)| matches!(w, WriteRequest::Update { resource_type, .. } if resource_type == "Project"))
            .unwrap_or_default();
        let written = self.repo().system_transaction(writes).await?;
        let value_at = |i: usize| -> Result<Value> {
            let stored = written
                .get(i)
                .and_then(|w| w.resource.as_ref())
                .ok_or_else(|| AuthFailure::Internal("a project write returned nothing".into()))?;
            Ok(parse_stored(stored)?)
        };
        Ok(CreatedProject {
            project: value_at(project_at)?,
            membership: membership_at.map(value_at).transpose()?,
        })
    }
}

fn project_name(name: Option<&str>) -> Result<String> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(AuthFailure::invalid("Project name is required"));
    }
    if name.chars().count() > MAX_PROJECT_NAME_CHARS {
        return Err(AuthFailure::invalid(format!(
            "Project name must be at most {MAX_PROJECT_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_owned())
}
