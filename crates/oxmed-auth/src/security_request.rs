//! UserSecurityRequests (spec §6): the single-use, expiring secrets behind the links of invite
//! and password-reset emails, and the endpoints that redeem them (`/auth/setpassword`,
//! `/auth/resetpassword`, `/auth/verifyemail`). Setting a password ends the user's sessions
//! (OWASP ASVS 3.3.3): whoever held one may have known the old password.

use std::sync::Arc;

use oxmed_repo::{SERVER_PROJECT, Scope, WriteRequest, parse_stored};
use serde_json::{Value, json};

use crate::email::{Delivery, Email};
use crate::failure::{AuthFailure, Result};
use crate::identity::{Reference, User};
use crate::invite::is_valid_email;
use crate::secret::constant_time_eq;
use crate::service::Auth;
use crate::{password, secret};

/// bcrypt reads 72 bytes; a longer password would be cut silently.
const MAX_PASSWORD_BYTES: usize = 72;

/// A new request of `kind` (`invite`, `reset`, `verify-email`) for `user`, stored in
/// `project` (the user's), with its secret; not yet written.
pub fn new_request(kind: &str, user: &str, redirect_uri: Option<&str>) -> Result<(Value, String)> {
    let secret = secret::generate_secret(16)?;
    let mut request = json!({"resourceType": "UserSecurityRequest",
        "id": oxmed_repo::meta::new_id(), "type": kind,
        "user": {"reference": user}, "secret": secret});
    if let Some(r) = redirect_uri.filter(|r| !r.is_empty()) {
        request["redirectUri"] = json!(r);
    }
    Ok((request, secret))
}

/// How long a link of this kind works.
fn ttl(auth: &Auth, kind: &str) -> std::time::Duration {
    match kind {
        "reset" => auth.config().reset_link_ttl,
        _ => auth.config().invite_link_ttl,
    }
}

/// `1 day`, `7 days`, `2 hours`: a link's lifetime in an email.
fn spoken(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s >= 86_400 && s.is_multiple_of(86_400) {
        (s / 86_400, "day")
    } else if s >= 3600 && s.is_multiple_of(3600) {
        (s / 3600, "hour")
    } else {
        (s.div_ceil(60).max(1), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl Auth {
    /// The server-scoped User with this (lower-cased) email, as stored and read.
    pub(crate) async fn server_user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(oxmed_store::StoredResource, User)>> {
        let found = self
            .repo()
            .system_find_one(
                Scope::Project(SERVER_PROJECT),
                "User",
                &[("email:exact", email)],
            )
            .await?
            // A project-scoped user is found only through its project.
            .filter(|(_, v)| v.get("project").is_none());
        found
            .map(|(r, v)| Ok((r, User::from_value(v)?)))
            .transpose()
    }

    /// `<app_base_url>setpassword/<id>/<secret>` (spec §6.1).
    pub fn set_password_link(&self, id: &str, secret: &str) -> String {
        format!("{}setpassword/{id}/{secret}", self.config().app_base_url)
    }

    /// The email of a new invited user: the link that sets their first password.
    pub fn invite_email(
        &self,
        to: &str,
        first_name: &str,
        project_name: &str,
        request: (&str, &str),
    ) -> Email {
        let link = self.set_password_link(request.0, request.1);
        Email {
            to: to.to_owned(),
            subject: "Welcome to oxmed".into(),
            text: format!(
                "Hello {first_name},\n\nYou have been invited to {project_name} on oxmed.\n\n\
Please click on the following link to create your account:\n\n{link}\n\n\
The link works once, for {}.\n\nThank you,\noxmed\n",
                spoken(self.config().invite_link_ttl)
            ),
        }
    }

    /// The email of an invited user who already has an account: nothing to set.
    pub fn welcome_email(&self, to: &str, first_name: &str, project_name: &str) -> Email {
        Email {
            to: to.to_owned(),
            subject: format!("oxmed: Welcome to {project_name}"),
            text: format!(
                "Hello {first_name},\n\nYou have been invited to {project_name} on oxmed.\n\n\
The next time you sign in, you will see {project_name} as an option:\n\n{}\n\n\
Thank you,\noxmed\n",
                self.config().app_base_url
            ),
        }
    }

    /// Asks a newly registered user to confirm their address: a `verify-email` request and an
    /// email with its link (`<app_base_url>verifyemail/<id>/<secret>`).
    pub async fn send_verification(
        &self,
        user_project: &str,
        user_id: &str,
        to: &str,
        first_name: &str,
    ) -> Result<Delivery> {
        let (request, secret) = new_request("verify-email", &format!("User/{user_id}"), None)?;
        let id = request["id"].as_str().unwrap_or_default().to_owned();
        self.repo()
            .system_transaction(vec![(user_project.to_owned(), put(request))])
            .await?;
        let link = format!("{}verifyemail/{id}/{secret}", self.config().app_base_url);
        self.mailer()
            .send(Email {
                to: to.to_owned(),
                subject: "oxmed: Verify your email address".into(),
                text: format!(
                    "Hello {first_name},\n\nPlease confirm that this is your email address by \
opening the following link:\n\n{link}\n\nThe link works once, for {}. If you did not \
create an oxmed account, you can ignore this email.\n\nThank you,\noxmed\n",
                    spoken(self.config().invite_link_ttl)
                ),
            })
            .await
    }

    /// `POST /auth/setpassword {id, secret, password}` (spec §6.4).
    pub async fn set_password(&self, id: &str, secret: &str, new_password: &str) -> Result<()> {
        let request = self.open_request(id, secret).await?;
        if request.kind == "verify-email" {
            return Err(AuthFailure::invalid("Invalid request type"));
        }
        if new_password.chars().count() < 8 {
            return Err(AuthFailure::invalid(
                "Invalid password, must be at least 8 characters",
            ));
        }
        if new_password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthFailure::invalid(
                "Password must be between 8 and 72 characters",
            ));
        }
        let (stored_user, mut user) = self.request_user(&request).await?;
        let cost = self.config().bcrypt_cost;
        let password = new_password.to_owned();
        let hash = tokio::task::spawn_blocking(move || password::hash_password(&password, cost))
            .await
            .map_err(|e| AuthFailure::Internal(e.to_string()))??;
        user["passwordHash"] = json!(hash);
        user["emailVerified"] = json!(true);
        // Every other set-password link of the user dies with this one: an older invite or
        // reset email must not reopen the account after its owner chose a password.
        let others = self.other_password_links(&request).await?;
        self.redeem(request, stored_user, user, others).await
    }

    /// `POST /auth/verifyemail {id, secret}`.
    pub async fn verify_email(&self, id: &str, secret: &str) -> Result<()> {
        let request = self.open_request(id, secret).await?;
        if request.kind != "verify-email" {
            return Err(AuthFailure::invalid("Invalid user security request type"));
        }
        let (stored_user, mut user) = self.request_user(&request).await?;
        user["emailVerified"] = json!(true);
        self.redeem(request, stored_user, user, Vec::new()).await
    }

    /// `POST /auth/resetpassword` (spec §6.3): always `Ok` whether or not the user exists, so
    /// that the answer tells nothing. For a user found, the request is written and its email
    /// sent after the answer, by a task of its own: done inline, they made the answer for a
    /// known address a write and an SMTP exchange slower than for an unknown one, which told
    /// the two apart (account enumeration, which OWASP ASVS forbids). A failure is logged.
    pub async fn reset_password(
        self: &Arc<Self>,
        email: &str,
        project_id: Option<&str>,
        send_email: bool,
        redirect_uri: Option<&str>,
        recaptcha: &crate::recaptcha::RecaptchaInput<'_>,
    ) -> Result<()> {
        let email = email.trim().to_lowercase();
        if !is_valid_email(&email) {
            return Err(AuthFailure::invalid("Valid email address is required"));
        }
        self.check_recaptcha(recaptcha).await?;
        if let Some((_, domain)) = email.rsplit_once('@')
            && self
                .repo()
                .system_find_one(
                    Scope::Project(SERVER_PROJECT),
                    "DomainConfiguration",
                    &[("domain", domain)],
                )
                .await?
                .is_some()
        {
            return Err(AuthFailure::invalid(
                "Cannot reset password for external auth. Contact your system administrator.",
            ));
        }
        let project = project_id.filter(|p| !p.is_empty() && *p != "new");
        let found = match project {
            Some(p) => {
                let reference = format!("Project/{p}");
                match self
                    .repo()
                    .system_find_one(
                        Scope::Project(p),
                        "User",
                        &[("email:exact", &email), ("project", &reference)],
                    )
                    .await?
                {
                    Some((r, v)) => Some((r, User::from_value(v)?)),
                    None => None,
                }
            }
            None => self.server_user_by_email(&email).await?,
        };
        let Some((stored, user)) = found else {
            return Ok(());
        };
        let auth = Arc::clone(self);
        let redirect_uri = redirect_uri.map(str::to_owned);
        tokio::spawn(async move {
            let issued = auth
                .issue_reset(&stored, &user, email, send_email, redirect_uri.as_deref())
                .await;
            if let Err(e) = issued {
                tracing::error!(error = %e, "a password reset was not issued");
            }
        });
        Ok(())
    }

    /// The reset request of a user found by [`Auth::reset_password`], and its email.
    async fn issue_reset(
        &self,
        stored: &oxmed_store::StoredResource,
        user: &User,
        email: String,
        send_email: bool,
        redirect_uri: Option<&str>,
    ) -> Result<()> {
        let (request, secret) = new_request("reset", &format!("User/{}", stored.id), redirect_uri)?;
        let id = request["id"].as_str().unwrap_or_default().to_owned();
        self.repo()
            .system_transaction(vec![(stored.project.clone(), put(request))])
            .await?;
        if !send_email {
            return Ok(());
        }
        let link = self.set_password_link(&id, &secret);
        let name = user.first_name.as_deref().unwrap_or("");
        let email = Email {
            to: email,
            subject: "oxmed Password Reset".into(),
            text: format!(
                "Hello {name},\n\nSomeone asked to reset your oxmed password.\n\n\
To choose a new password, please click on the following link:\n\n{link}\n\n\
The link works once, for {}. If you did not ask for this, you can ignore this email.\n\n\
Thank you,\noxmed\n",
                spoken(self.config().reset_link_ttl)
            ),
        };
        // The mailer logs what it could not send and keeps trying.
        self.mailer().send(email).await?;
        Ok(())
    }

    /// A request that may be redeemed with `secret`: 404 if unknown, 400 if used, expired or
    /// the secret is wrong (compared in constant time).
    async fn open_request(&self, id: &str, secret: &str) -> Result<OpenRequest> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(AuthFailure::invalid("Invalid request ID"));
        }
        if secret.is_empty() {
            return Err(AuthFailure::invalid("Missing secret"));
        }
        let stored = self
            .repo()
            .system_read("UserSecurityRequest", id)
            .await?
            .ok_or(AuthFailure::NotFound)?;
        let value = parse_stored(&stored)?;
        if value["used"] == json!(true) {
            return Err(AuthFailure::invalid("Already used"));
        }
        let kind = value["type"].as_str().unwrap_or_default().to_owned();
        // An unused request is never written again, so its version's time is its creation.
        let age = oxmed_repo::meta::now_micros().saturating_sub(stored.last_updated);
        let ttl = i64::try_from(ttl(self, &kind).as_micros()).unwrap_or(i64::MAX);
        let expected = value["secret"].as_str().unwrap_or_default();
        if !constant_time_eq(expected, secret) {
            return Err(AuthFailure::invalid("Incorrect secret"));
        }
        if age > ttl {
            return Err(AuthFailure::invalid("Request expired"));
        }
        Ok(OpenRequest {
            project: stored.project,
            version: stored.version_id,
            value,
            kind,
        })
    }

    /// The user's other unused invite and reset requests, marked used (each over the version
    /// read, so a concurrent redemption of one of them fails this one cleanly). The server
    /// writes them in the user's partition, but an admin may have made one elsewhere over FHIR.
    async fn other_password_links(
        &self,
        request: &OpenRequest,
    ) -> Result<Vec<(String, WriteRequest)>> {
        let user_ref = request.value["user"]["reference"]
            .as_str()
            .unwrap_or_default();
        let this = request.value["id"].as_str().unwrap_or_default();
        let found = self
            .repo()
            .system_search(
                Scope::AllProjects,
                "UserSecurityRequest",
                &[("user", user_ref), ("_count", "1000")],
            )
            .await?;
        let mut out = Vec::new();
        for stored in found {
            let mut value = parse_stored(&stored)?;
            if stored.id == this || value["used"] == json!(true) || value["type"] == "verify-email"
            {
                continue;
            }
            value["used"] = json!(true);
            out.push((
                stored.project.clone(),
                WriteRequest::Update {
                    resource_type: "UserSecurityRequest".into(),
                    id: stored.id.clone(),
                    resource: value,
                    if_match: Some(stored.version_id),
                },
            ));
        }
        Ok(out)
    }

    /// The User a request is for, as stored (project, value).
    async fn request_user(&self, request: &OpenRequest) -> Result<(String, Value)> {
        let user_ref = request.value["user"]["reference"]
            .as_str()
            .unwrap_or_default();
        let id = id_of_user(user_ref)?;
        let stored = self
            .repo()
            .system_read("User", &id)
            .await?
            .ok_or(AuthFailure::NotFound)?;
        let mut user = parse_stored(&stored)?;
        // Carried to `redeem`, which writes only over this version: a change made meanwhile (an
        // MFA enrolment, an admin's edit) is not lost.
        user["meta"]["versionId"] = json!(stored.version_id);
        Ok((stored.project.clone(), user))
    }

    /// Writes the user and marks the request used, in one transaction; the request's version
    /// must not have changed, so two uses of one link cannot both succeed. Then ends the
    /// user's sessions.
    async fn redeem(
        &self,
        request: OpenRequest,
        user_project: String,
        user: Value,
        also_used: Vec<(String, WriteRequest)>,
    ) -> Result<()> {
        let user_id = user["id"].as_str().unwrap_or_default().to_owned();
        let mut used = request.value;
        used["used"] = json!(true);
        let id = used["id"].as_str().unwrap_or_default().to_owned();
        let mut writes = also_used;
        writes.extend([
            (
                request.project,
                WriteRequest::Update {
                    resource_type: "UserSecurityRequest".into(),
                    id,
                    resource: used,
                    if_match: Some(request.version),
                },
            ),
            (
                user_project,
                WriteRequest::Update {
                    resource_type: "User".into(),
                    id: user_id.clone(),
                    if_match: user["meta"]["versionId"].as_str().map(str::to_owned),
                    resource: user,
                },
            ),
        ]);
        match self.repo().system_transaction(writes).await {
            Ok(_) => {}
            Err(oxmed_repo::RepoError::PreconditionFailed(_)) => {
                return Err(AuthFailure::invalid("Already used"));
            }
            Err(e) => return Err(e.into()),
        }
        self.revoke_other_logins(&Reference::to("User", &user_id), "")
            .await
    }
}

struct OpenRequest {
    project: String,
    version: String,
    value: Value,
    kind: String,
}

fn id_of_user(reference: &str) -> Result<String> {
    reference
        .strip_prefix("User/")
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| AuthFailure::Internal("a security request names no User".into()))
}

/// An update-as-create of a resource whose id was chosen here.
pub(crate) fn put(resource: Value) -> WriteRequest {
    WriteRequest::Update {
        resource_type: resource["resourceType"].as_str().unwrap_or("").to_owned(),
        id: resource["id"].as_str().unwrap_or("").to_owned(),
        resource,
        if_match: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_well() {
        use std::time::Duration;
        assert_eq!(spoken(Duration::from_secs(86_400)), "1 day");
        assert_eq!(spoken(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(spoken(Duration::from_secs(2 * 3600)), "2 hours");
        assert_eq!(spoken(Duration::from_secs(90)), "2 minutes");
    }
}
