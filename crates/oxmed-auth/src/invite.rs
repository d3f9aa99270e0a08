//! `POST /admin/projects/:projectId/invite` (spec §13.1, §7.5): a person joins a project as a
//! Patient, Practitioner or RelatedPerson, with a User found or made for them. The User, the
//! profile, the membership and the invite's UserSecurityRequest are written in one transaction:
//! a refused or failed invite leaves nothing behind.

use oxmed_repo::{SERVER_PROJECT, Scope, WriteRequest, parse_stored};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::change_password::check_new_password;
use crate::email::Delivery;
use crate::failure::{AuthFailure, Result};
use crate::identity::{Project, Reference};
use crate::security_request::{new_request, put};
use crate::service::Auth;
use crate::{password, secret, totp};

const PROFILE_TYPES: [&str; 3] = ["Patient", "Practitioner", "RelatedPerson"];
const MAX_NAME_CHARS: usize = 128;
const MAX_EXTERNAL_ID_CHARS: usize = 256;
pub const ALREADY_MEMBER: &str = "User is already a member of this project";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct InviteRequest {
    pub resource_type: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    /// `project` or `server`.
    pub scope: Option<String>,
    pub password: Option<String>,
    pub send_email: Option<bool>,
    /// A partial ProjectMembership (`access`, `accessPolicy`, `admin`, `profile`, ...).
    pub membership: Option<Map<String, Value>>,
    pub upsert: Option<bool>,
    pub force_new_membership: Option<bool>,
    pub mfa_required: Option<bool>,
    /// Deprecated forms of `membership.accessPolicy`, `membership.access`, `membership.admin`.
    pub access_policy: Option<Value>,
    pub access: Option<Value>,
    pub admin: Option<bool>,
}

/// What an invite did.
pub struct Invited {
    /// The membership, as stored.
    pub membership: Value,
    /// Set when the invite made a User with an email: the set-password link's request id and
    /// secret (spec §6.1), for the invite email.
    pub set_password: Option<(String, String)>,
    /// What became of the invite email, if one was sent.
    pub delivery: Option<Delivery>,
}

/// A syntactically valid email address (RFC 5321 lengths, one `@`, a dotted domain, no space).
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && (1..=64).contains(&local.len())
        && (3..=253).contains(&domain.len())
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn required(value: &Option<String>, message: &str, field: &str) -> Result<String> {
    let v = value.as_deref().map(str::trim).unwrap_or_default();
    if v.is_empty() {
        return Err(AuthFailure::invalid(message));
    }
    if v.chars().count() > MAX_NAME_CHARS {
        return Err(AuthFailure::invalid(format!(
            "{field} must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(v.to_owned())
}

/// The request's fields, checked (spec §13.1 validator messages).
struct Checked {
    resource_type: String,
    first_name: String,
    last_name: String,
    email: Option<String>,
    external_id: Option<String>,
    project_scoped: bool,
}

fn check(req: &InviteRequest) -> Result<Checked> {
    let resource_type = match req.resource_type.as_deref() {
        None | Some("") => return Err(AuthFailure::invalid("Resource type is required")),
        Some(t) if PROFILE_TYPES.contains(&t) => t.to_owned(),
        Some(_) => {
            return Err(AuthFailure::invalid(
                "Resource type must be Patient, Practitioner or RelatedPerson",
            ));
        }
    };
    let first_name = required(&req.first_name, "First name is required", "First name")?;
    let last_name = required(&req.last_name, "Last name is required", "Last name")?;
    let email = match req.email.as_deref().map(str::trim) {
        None => None,
        Some(e) if is_valid_email(e) => Some(e.to_lowercase()),
        Some(_) => return Err(AuthFailure::invalid("Valid email address is required")),
    };
    let external_id = match req.external_id.as_deref() {
        None => None,
        Some(x) if x.trim().is_empty() => {
            return Err(AuthFailure::invalid("External ID cannot be empty"));
        }
        Some(x) if x.chars().count() > MAX_EXTERNAL_ID_CHARS => {
            return Err(AuthFailure::invalid(format!(
                "External ID must be at most {MAX_EXTERNAL_ID_CHARS} characters"
            )));
        }
        Some(x) => Some(x.to_owned()),
    };
    if email.is_none() && external_id.is_none() {
        return Err(AuthFailure::invalid(
            "Either email or externalId is required",
        ));
    }
    if let Some(p) = &req.password {
        check_new_password(p)?;
    }
    let project_scoped = resource_type == "Patient"
        || external_id.is_some()
        || req.scope.as_deref() == Some("project");
    Ok(Checked {
        resource_type,
        first_name,
        last_name,
        email,
        external_id,
        project_scoped,
    })
}

/// Every AccessPolicy reference an invite names (spec §13.1 step 7).
fn policy_references(req: &InviteRequest, partial: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |v: Option<&Value>| {
        if let Some(r) = v.and_then(|v| v.get("reference")).and_then(Value::as_str) {
            out.push(r.to_owned());
        }
    };
    add(req.access_policy.as_ref());
    add(partial.get("accessPolicy"));
    for list in [req.access.as_ref(), partial.get("access")] {
        for entry in list.and_then(Value::as_array).into_iter().flatten() {
            add(entry.get("policy"));
        }
    }
    out
}

impl Auth {
    pub async fn invite(&self, project: &Project, req: &InviteRequest) -> Result<Invited> {
        let c = check(req)?;
        let project_id = project.id().to_owned();
        let project_ref = format!("Project/{project_id}");
        let user_project = if c.project_scoped {
            project_id.as_str()
        } else {
            SERVER_PROJECT
        };

        // The membership's fields from the request: the deprecated top-level ones first, the
        // `membership` object over them.
        let mut partial = Map::new();
        if let Some(x) = &c.external_id {
            partial.insert("externalId".into(), json!(x));
        }
        if let Some(p) = &req.access_policy {
            partial.insert("accessPolicy".into(), p.clone());
        }
        if let Some(a) = &req.access {
            partial.insert("access".into(), a.clone());
        }
        if let Some(a) = req.admin {
            partial.insert("admin".into(), json!(a));
        }
        // The membership's identity and bookkeeping are the server's: a body cannot pick the
        // id an upsert writes to, nor stamp `meta`.
        for (k, v) in req.membership.clone().unwrap_or_default() {
            if !matches!(
                k.as_str(),
                "resourceType" | "id" | "meta" | "project" | "user"
            ) {
                partial.insert(k, v);
            }
        }
        for reference in policy_references(req, &partial) {
            self.check_project_policy(&project_id, &reference).await?;
        }

        let force_new = req.force_new_membership == Some(true);
        if let Some(email) = &c.email
            && !force_new
            && let Some(other) = self
                .user_by_email(email, !c.project_scoped, &project_id)
                .await?
            && self.membership_of(&project_id, &other).await?.is_some()
        {
            return Err(AuthFailure::Conflict(ALREADY_MEMBER.into()));
        }
        let existing_user = match (&c.email, force_new) {
            (Some(email), false) => {
                self.user_by_email(email, c.project_scoped, &project_id)
                    .await?
            }
            _ => None,
        };

        let mut writes: Vec<(String, WriteRequest)> = Vec::new();
        let mut set_password = None;
        let mut reclaimed = false;
        let user_id = match &existing_user {
            Some(id) => {
                // An account whose address was never proven may have been made by someone who
                // is not its owner (a registration or another project's invite with a password
                // they chose): joining it to this project would hand the project to them. Its
                // password is replaced by one nobody knows and the invite email carries a link
                // to set a new one, so the mailbox's owner takes it over.
                let stored = self
                    .repo()
                    .system_read("User", id)
                    .await?
                    .ok_or(AuthFailure::NotFound)?;
                let mut user = parse_stored(&stored)?;
                if user["emailVerified"] != json!(true) {
                    user["passwordHash"] = json!(self.hash_new_password(None).await?);
                    writes.push((
                        stored.project.clone(),
                        WriteRequest::Update {
                            resource_type: "User".into(),
                            id: id.clone(),
                            resource: user,
                            if_match: Some(stored.version_id.clone()),
                        },
                    ));
                    let (request, secret) = new_request("invite", &format!("User/{id}"), None)?;
                    let request_id = request["id"].as_str().unwrap_or_default().to_owned();
                    writes.push((stored.project.clone(), put(request)));
                    set_password = Some((request_id, secret));
                    reclaimed = true;
                }
                id.clone()
            }
            None => {
                let id = oxmed_repo::meta::new_id();
                let mut user = json!({"resourceType": "User", "id": id,
                    "firstName": c.first_name, "lastName": c.last_name,
                    "passwordHash": self.hash_new_password(req.password.clone()).await?});
                if let Some(email) = &c.email {
                    user["email"] = json!(email);
                }
                if c.project_scoped {
                    user["project"] = json!({"reference": project_ref});
                }
                if req.mfa_required == Some(true) {
                    user["mfaRequired"] = json!(true);
                    user["mfaSecret"] = json!(totp::generate_secret()?);
                }
                writes.push((user_project.to_owned(), put(user)));
                if c.email.is_some() {
                    let (request, secret) = new_request("invite", &format!("User/{id}"), None)?;
                    let request_id = request["id"].as_str().unwrap_or_default().to_owned();
                    writes.push((user_project.to_owned(), put(request)));
                    set_password = Some((request_id, secret));
                }
                id
            }
        };
        let user_ref = format!("User/{user_id}");

        let profile = self.invite_profile(&c, &project_id, &partial).await?;
        let profile_ref = match &profile {
            Profile::Existing(r) => r.clone(),
            Profile::New(resource) => {
                let r = format!(
                    "{}/{}",
                    c.resource_type,
                    resource["id"].as_str().unwrap_or("")
                );
                writes.push((project_id.clone(), put(resource.clone())));
                r
            }
        };

        let current = match (force_new, &existing_user) {
            (false, Some(_)) => self.membership_of(&project_id, &user_ref).await?,
            _ => None,
        };
        let mut membership = Value::Object(partial);
        match current {
            None => {
                membership["resourceType"] = json!("ProjectMembership");
                membership["id"] = json!(oxmed_repo::meta::new_id());
            }
            Some(current) => {
                if req.upsert != Some(true) {
                    return Err(AuthFailure::Conflict(ALREADY_MEMBER.into()));
                }
                if current["profile"]["reference"].as_str() != Some(profile_ref.as_str()) {
                    return Err(AuthFailure::Conflict(format!(
                        "{ALREADY_MEMBER} with a different profile"
                    )));
                }
                let mut updated = current;
                if let (Some(o), Value::Object(fields)) = (updated.as_object_mut(), membership) {
                    for (k, v) in fields {
                        o.insert(k, v);
                    }
                }
                membership = updated;
            }
        }
        // Whatever the request said, the membership is of this project, user and profile.
        membership["project"] = json!({"reference": project_ref});
        membership["user"] = json!({"reference": user_ref});
        membership["profile"] = json!({"reference": profile_ref,
            "display": format!("{} {}", c.first_name, c.last_name)});
        writes.push((project_id.clone(), put(membership)));

        let written = match self.repo().system_transaction(writes).await {
            Err(oxmed_repo::RepoError::PreconditionFailed(_)) => {
                return Err(AuthFailure::Conflict(
                    "The user was changed meanwhile; please try again".into(),
                ));
            }
            other => other?,
        };
        if reclaimed {
            self.revoke_other_logins(&Reference::to("User", &user_id), "")
                .await?;
        }
        let stored = written
            .last()
            .and_then(|w| w.resource.as_ref())
            .ok_or_else(|| AuthFailure::Internal("the invite wrote no membership".into()))?;
        let membership = parse_stored(stored)?;
        // The email goes after the commit: what it links to exists, and a failure to send it
        // never undoes the invite (spec §6.2).
        let delivery = match (&c.email, req.send_email) {
            (Some(to), None | Some(true)) => {
                let project_name = project.name.as_deref().unwrap_or("a project");
                let email = match &set_password {
                    Some((id, secret)) => {
                        self.invite_email(to, &c.first_name, project_name, (id, secret))
                    }
                    None => self.welcome_email(to, &c.first_name, project_name),
                };
                Some(self.mailer().send(email).await?)
            }
            _ => None,
        };
        Ok(Invited {
            membership,
            set_password,
            delivery,
        })
    }

    /// 400 unless `reference` is an AccessPolicy of `project` (spec §13.1 step 7).
    pub(crate) async fn check_project_policy(&self, project: &str, reference: &str) -> Result<()> {
        let shown: String = reference.chars().take(100).collect();
        let id = Reference {
            reference: Some(reference.to_owned()),
            ..Default::default()
        };
        let Some(id) = id.id_of("AccessPolicy") else {
            return Err(AuthFailure::invalid(format!(
                "Access policy {shown} does not exist"
            )));
        };
        match self.repo().system_read("AccessPolicy", id).await? {
            None => Err(AuthFailure::invalid(format!(
                "Access policy {shown} does not exist"
            ))),
            Some(p) if p.project != project => Err(AuthFailure::invalid(format!(
                "Access policy {shown} does not belong to this project"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// The id of the User with this email in a scope: of `project` when `project_scoped`, the
    /// server's otherwise.
    async fn user_by_email(
        &self,
        email: &str,
        project_scoped: bool,
        project: &str,
    ) -> Result<Option<String>> {
        let reference = format!("Project/{project}");
        let found = if project_scoped {
            self.repo()
                .system_find_one(
                    Scope::Project(project),
                    "User",
                    &[("email:exact", email), ("project", &reference)],
                )
                .await?
        } else {
            self.repo()
                .system_find_one(
                    Scope::Project(SERVER_PROJECT),
                    "User",
                    &[("email:exact", email)],
                )
                .await?
        };
        Ok(found.map(|(r, _)| r.id))
    }

    /// The live membership of `user` (`User/<id>`) in `project`, if any.
    async fn membership_of(&self, project: &str, user: &str) -> Result<Option<Value>> {
        let user = if user.contains('/') {
            user.to_owned()
        } else {
            format!("User/{user}")
        };
        Ok(self
            .repo()
            .system_find_one(
                Scope::Project(project),
                "ProjectMembership",
                &[("user", &user)],
            )
            .await?
            .map(|(_, v)| v))
    }

    /// The profile an invite names, finds by email, or makes (spec §13.1 step 6).
    async fn invite_profile(
        &self,
        c: &Checked,
        project: &str,
        partial: &Map<String, Value>,
    ) -> Result<Profile> {
        if let Some(named) = partial
            .get("profile")
            .and_then(|p| p.get("reference"))
            .and_then(Value::as_str)
        {
            let (t, id) = named.split_once('/').unwrap_or(("", named));
            let found = match oxmed_repo::Repository::check_type(t) {
                Ok(()) => self.repo().system_read(t, id).await?,
                Err(_) => None,
            };
            return match found {
                Some(r) if r.project == project => {
                    if r.resource_type == c.resource_type {
                        Ok(Profile::Existing(format!("{}/{}", r.resource_type, r.id)))
                    } else {
                        Err(AuthFailure::invalid(
                            "Profile resourceType does not match request",
                        ))
                    }
                }
                _ => Err(AuthFailure::invalid("Profile does not belong to project")),
            };
        }
        if let Some(email) = &c.email
            && let Some((r, _)) = self
                .repo()
                .system_find_one(
                    Scope::Project(project),
                    &c.resource_type,
                    &[("email", email)],
                )
                .await?
        {
            return Ok(Profile::Existing(format!("{}/{}", r.resource_type, r.id)));
        }
        let mut profile = json!({"resourceType": c.resource_type, "id": oxmed_repo::meta::new_id(),
            "name": [{"given": [c.first_name], "family": c.last_name}]});
        if let Some(email) = &c.email {
            profile["telecom"] = json!([{"system": "email", "use": "work", "value": email}]);
        }
        Ok(Profile::New(profile))
    }

    /// A bcrypt hash of the given password, or of 16 random bytes nobody is told.
    async fn hash_new_password(&self, password: Option<String>) -> Result<String> {
        let password = match password {
            Some(p) => p,
            None => secret::generate_secret(16)?,
        };
        let cost = self.config().bcrypt_cost;
        tokio::task::spawn_blocking(move || password::hash_password(&password, cost))
            .await
            .map_err(|e| AuthFailure::Internal(e.to_string()))?
            .map_err(AuthFailure::from)
    }
}

enum Profile {
    /// `Type/id` of a profile already in the project.
    Existing(String),
    /// A profile to create, with its id.
    New(Value),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "first.last+tag@example.org",
            "x@sub.domain.example",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a@@b.co", "a b@c.co", "a@.co", "a@b.co.", "a@b@c.co",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
        assert!(!is_valid_email(&format!("{}@b.co", "a".repeat(65))));
    }
}
