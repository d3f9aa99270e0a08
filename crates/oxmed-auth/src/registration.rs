//! Registration (spec §4.4, §13.4): `/auth/newuser` makes a User and a Login without a
//! membership; `/auth/newproject` gives that Login a new project of its own, and
//! `/auth/newpatient` a Patient membership of a project open to registration (one with a
//! `defaultPatientAccessPolicy`). Both then answer `{login, code}` like a sign-in.

use oxmed_repo::{SERVER_PROJECT, parse_stored};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::failure::{AuthFailure, Result};
use crate::identity::{Login, User};
use crate::invite::is_valid_email;
use crate::login::{LoginRequest, LoginResult};
use crate::security_request::put;
use crate::service::Auth;
use crate::{password, records};

const MAX_NAME_CHARS: usize = 128;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct NewUserRequest {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub project_id: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub remember: Option<bool>,
    pub recaptcha_token: Option<String>,
    pub recaptcha_site_key: Option<String>,
}

fn name(value: &Option<String>, field: &str) -> Result<String> {
    let v = value.as_deref().map(str::trim).unwrap_or_default();
    if v.is_empty() {
        return Err(AuthFailure::invalid(format!("{field} is required")));
    }
    if v.chars().count() > MAX_NAME_CHARS {
        return Err(AuthFailure::invalid(format!(
            "{field} must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(v.to_owned())
}

impl Auth {
    /// `POST /auth/newuser`: `{login}`, a Login of the new user with no membership yet.
    pub async fn register_user(
        &self,
        req: &NewUserRequest,
        remote_address: Option<String>,
        user_agent: Option<String>,
    ) -> Result<Value> {
        let first_name = name(&req.first_name, "First name")?;
        let last_name = name(&req.last_name, "Last name")?;
        let email = req
            .email
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .unwrap_or_default();
        if !is_valid_email(&email) || !(3..=72).contains(&email.len()) {
            return Err(AuthFailure::invalid(
                "Valid email address between 3 and 72 characters is required",
            ));
        }
        let password = req.password.clone().unwrap_or_default();
        crate::change_password::check_new_password(&password)?;
        self.check_recaptcha(&crate::recaptcha::RecaptchaInput {
            token: req.recaptcha_token.as_deref(),
            site_key: req.recaptcha_site_key.as_deref(),
            project_id: req.project_id.as_deref(),
            registration: true,
        })
        .await?;
        if !self.config().register_enabled {
            return Err(AuthFailure::invalid("Registration is disabled"));
        }
        let mut project = req
            .project_id
            .clone()
            .filter(|p| !p.is_empty() && p != "new");
        if let Some(client_id) = &req.client_id {
            let client = self
                .repo()
                .system_read("ClientApplication", client_id)
                .await?
                .ok_or(AuthFailure::NotFound)?;
            match &project {
                Some(p) if *p != client.project => {
                    return Err(AuthFailure::invalid("Client and project do not match"));
                }
                _ => project = Some(client.project.clone()),
            }
        }
        if let Some(p) = &project {
            let Some(stored) = self.repo().system_read("Project", p).await? else {
                return Err(AuthFailure::invalid("Project not found"));
            };
            // Accounts of a project are made by its admins, or by anyone only where it is open
            // to registration: otherwise a stranger could plant an account under someone's
            // address that a later invite would join to the project.
            if parse_stored(&stored)?
                .get("defaultPatientAccessPolicy")
                .is_none()
            {
                return Err(AuthFailure::invalid(
                    "Project does not allow open registration",
                ));
            }
        }
        let cost = self.config().bcrypt_cost;
        let secret = password.clone();
        let hash = tokio::task::spawn_blocking(move || password::hash_password(&secret, cost))
            .await
            .map_err(|e| AuthFailure::Internal(e.to_string()))??;
        let mut user = json!({"resourceType": "User", "firstName": first_name,
            "lastName": last_name, "email": email, "passwordHash": hash});
        if let Some(p) = &project {
            user["project"] = json!({"reference": format!("Project/{p}")});
        }
        // The unique key of a User's email in its scope refuses a second registration:
        // "Email already registered".
        let user_project = project.as_deref().unwrap_or(SERVER_PROJECT).to_owned();
        let created = records::create(self.repo(), &user_project, user).await?;
        let user_id = created["id"].as_str().unwrap_or_default().to_owned();
        let result = self
            .password_login(&LoginRequest {
                email,
                password,
                project_id: Some(project.unwrap_or_else(|| "new".into())),
                client_id: req.client_id.clone(),
                scope: req.scope.clone(),
                nonce: req.nonce.clone(),
                code_challenge: req.code_challenge.clone(),
                code_challenge_method: req.code_challenge_method.clone(),
                remember: req.remember == Some(true),
                remote_address,
                user_agent,
                allow_no_membership: true,
                ..Default::default()
            })
            .await?;
        // The address is confirmed from its own mailbox; a failure to send it is logged and
        // retried, and does not undo the registration.
        let to = created["email"].as_str().unwrap_or_default();
        if let Err(e) = self
            .send_verification(&user_project, &user_id, to, &first_name)
            .await
        {
            tracing::error!(error = %e, "the email verification could not be sent");
        }
        Ok(json!({"login": result.body["login"]}))
    }

    /// `POST /auth/newproject {login, projectName}`.
    pub async fn register_project(
        &self,
        login_id: &str,
        project_name: &str,
    ) -> Result<LoginResult> {
        let name = project_name.trim();
        if !(4..=72).contains(&name.chars().count()) {
            return Err(AuthFailure::invalid(
                "Project name must be between 4 and 72 characters",
            ));
        }
        let (login, user) = self.registering(login_id).await?;
        if user.project.is_some() {
            return Err(AuthFailure::invalid(
                "Project owner must not belong to another Project",
            ));
        }
        let created = self.create_project(name, Some(&user), Vec::new()).await?;
        let membership = created
            .membership
            .as_ref()
            .and_then(|m| m["id"].as_str())
            .ok_or_else(|| AuthFailure::Internal("a new project has no membership".into()))?;
        self.choose_membership(login.id(), membership).await
    }

    /// `POST /auth/newpatient {login, projectId}` (spec §13.4).
    pub async fn register_patient(&self, login_id: &str, project_id: &str) -> Result<LoginResult> {
        if project_id.is_empty() {
            return Err(AuthFailure::invalid("Project ID is required"));
        }
        let (login, user) = self.registering(login_id).await?;
        let project_ref = format!("Project/{project_id}");
        if user.project.as_ref().map(|p| p.text()) != Some(project_ref.as_str()) {
            return Err(AuthFailure::invalid("User must be scoped to the project"));
        }
        let project = self
            .repo()
            .system_read("Project", project_id)
            .await?
            .ok_or(AuthFailure::NotFound)?;
        let project = parse_stored(&project)?;
        let Some(policy) = project.get("defaultPatientAccessPolicy").cloned() else {
            return Err(AuthFailure::invalid(
                "Project does not allow open registration",
            ));
        };
        let first = user.first_name.clone().unwrap_or_default();
        let last = user.last_name.clone().unwrap_or_default();
        let patient_id = oxmed_repo::meta::new_id();
        let mut patient = json!({"resourceType": "Patient", "id": patient_id,
            "name": [{"given": [first], "family": last}]});
        if let Some(email) = &user.email {
            patient["telecom"] = json!([{"system": "email", "use": "home", "value": email}]);
        }
        let membership_id = oxmed_repo::meta::new_id();
        let membership = json!({"resourceType": "ProjectMembership", "id": membership_id,
            "project": {"reference": project_ref},
            "user": {"reference": format!("User/{}", user.id())},
            "profile": {"reference": format!("Patient/{patient_id}"),
                "display": format!("{first} {last}").trim()},
            "accessPolicy": policy});
        self.repo()
            .system_transaction(vec![
                (project_id.to_owned(), put(patient)),
                (project_id.to_owned(), put(membership)),
            ])
            .await?;
        self.choose_membership(login.id(), &membership_id).await
    }

    /// A Login that is still choosing: not revoked, not granted, without a membership; and its
    /// User.
    async fn registering(&self, login_id: &str) -> Result<(Login, User)> {
        if login_id.is_empty() {
            return Err(AuthFailure::invalid("Missing login"));
        }
        if uuid::Uuid::parse_str(login_id).is_err() {
            return Err(AuthFailure::invalid("Invalid login"));
        }
        let stored = self
            .repo()
            .system_read("Login", login_id)
            .await?
            .ok_or_else(|| AuthFailure::invalid("Login not found"))?;
        let login = Login::from_value(parse_stored(&stored)?)?;
        if login.is_revoked() {
            return Err(AuthFailure::invalid("Login revoked"));
        }
        if login.is_granted() {
            return Err(AuthFailure::invalid("Login granted"));
        }
        if login.membership.is_some() {
            return Err(AuthFailure::invalid("Login already has a membership"));
        }
        let user = self
            .user_of(&login.user)
            .await?
            .ok_or_else(|| AuthFailure::invalid("User not found"))?;
        Ok((login, user))
    }
}
