//! `GET /auth/me` (spec §4.4) and logout (spec §10).

use serde_json::{Value, json};

use crate::failure::{AuthFailure, Result};
use crate::identity::{Login, Reference};
use crate::records;
use crate::service::Auth;
use crate::session::Caller;
use oxmed_repo::{SERVER_PROJECT, Scope, parse_stored};

/// How far back `security.sessions` looks (spec: updated within the last hour).
const SESSION_WINDOW_MICROS: i64 = 3600 * 1_000_000;

impl Auth {
    pub async fn me(&self, caller: &Caller) -> Result<Value> {
        let repo = self.repo();
        let profile = match caller.profile().parts() {
            Some((t, id)) => match repo.system_read(t, id).await? {
                Some(r) => parse_stored(&r)?,
                None => Value::Null,
            },
            None => Value::Null,
        };
        let project = &caller.project;
        let membership = &caller.membership;
        let mut body = json!({
            "project": {"resourceType": "Project", "id": project.id(), "name": project.name,
                "description": project.description, "strictMode": project.strict_mode,
                "superAdmin": project.super_admin},
            "membership": {"resourceType": "ProjectMembership", "id": membership.id(),
                "identifier": membership.rest.get("identifier"), "user": membership.user,
                "profile": membership.profile, "admin": membership.admin},
            "profile": profile,
            "config": default_config(caller),
        });
        if let Some(user) = self.user_of(&caller.user).await? {
            body["user"] = json!({"resourceType": "User", "id": user.id(), "email": user.email,
                "identifier": user.rest.get("identifier")});
            body["security"] = json!({
                "mfaEnrolled": user.mfa_enrolled == Some(true),
                "sessions": self.sessions_of(&caller.user).await?,
                "memberships": self.active_memberships(&caller.user, project.id()).await?,
            });
        }
        Ok(body)
    }

    /// The user's Logins of the last hour that have a membership and are not revoked.
    async fn sessions_of(&self, user: &Reference) -> Result<Vec<Value>> {
        let since =
            oxmed_repo::meta::instant(oxmed_repo::meta::now_micros() - SESSION_WINDOW_MICROS);
        let found = self
            .repo()
            .system_search(
                Scope::Project(SERVER_PROJECT),
                "Login",
                &[
                    ("user", user.text()),
                    ("_lastUpdated", &format!("ge{since}")),
                    ("_count", "100"),
                ],
            )
            .await?;
        let mut out = Vec::new();
        for r in &found {
            let login = Login::from_value(parse_stored(r)?)?;
            if login.is_revoked() || login.membership.is_none() {
                continue;
            }
            out.push(
                json!({"id": login.id(), "lastUpdated": oxmed_repo::meta::instant(r.last_updated),
                "authMethod": login.auth_method, "remoteAddress": login.remote_address,
                "browser": login.user_agent, "os": Value::Null}),
            );
        }
        Ok(out)
    }

    async fn active_memberships(&self, user: &Reference, project: &str) -> Result<Vec<Value>> {
        let found = self
            .repo()
            .system_search(
                Scope::Project(project),
                "ProjectMembership",
                &[("user", user.text()), ("_count", "100")],
            )
            .await?;
        let mut out = Vec::new();
        for r in &found {
            let v = parse_stored(r)?;
            if v.get("active") == Some(&Value::Bool(false)) {
                continue;
            }
            out.push(json!({"id": r.id, "profile": v.get("profile"), "admin": v.get("admin")}));
        }
        Ok(out)
    }

    /// `POST /auth/revoke {loginId}`: ends one of the caller's own sessions (spec §10). Someone
    /// else's Login is 404, as if it did not exist.
    pub async fn revoke_session(&self, caller: &Caller, login_id: &str) -> Result<()> {
        if uuid::Uuid::parse_str(login_id).is_err() {
            return Err(AuthFailure::invalid("Login ID is required."));
        }
        let stored = self
            .repo()
            .system_read("Login", login_id)
            .await?
            .ok_or(AuthFailure::NotFound)?;
        let login = Login::from_value(parse_stored(&stored)?)?;
        if login.user.text() != caller.user.text() {
            return Err(AuthFailure::NotFound);
        }
        self.revoke_sign_in(login_id).await.map(|_| ())
    }

    /// Revokes the caller's Login. A client-credentials Login was never stored; its revocation
    /// is, under the id its tokens carry.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        if caller.login_id.is_empty() {
            return Err(AuthFailure::Unauthorized);
        }
        if self.revoke_sign_in(&caller.login_id).await? {
            return Ok(());
        }
        let login = Login {
            id: Some(caller.login_id.clone()),
            client: caller
                .client_id
                .as_deref()
                .map(|c| Reference::to("ClientApplication", c)),
            user: caller.user.clone(),
            membership: Some(caller.membership.reference()),
            auth_method: caller.auth_method.clone(),
            auth_time: oxmed_repo::meta::instant(oxmed_repo::meta::now_micros()),
            scope: Some(caller.scope.clone()),
            revoked: Some(true),
            ..Default::default()
        };
        records::put(self.repo(), SERVER_PROJECT, login.to_value()).await?;
        Ok(())
    }
}

/// The default menu of `/auth/me` `config` when the membership has no UserConfiguration.
fn default_config(caller: &Caller) -> Value {
    let favorites = [
        "Patient",
        "Practitioner",
        "Organization",
        "ServiceRequest",
        "DiagnosticReport",
        "Questionnaire",
    ];
    let mut menu = vec![json!({"title": "Favorites", "link": favorites.iter()
        .map(|t| json!({"name": t, "target": format!("/{t}")})).collect::<Vec<_>>()})];
    if caller.is_project_admin() {
        menu.push(json!({"title": "Admin", "link": [
            {"name": "Project", "target": "/admin/project"},
            {"name": "AccessPolicy", "target": "/AccessPolicy"},
            {"name": "Subscriptions", "target": "/Subscription"},
            {"name": "Batch", "target": "/batch"}]}));
    }
    if caller.is_super_admin() {
        menu.push(json!({"title": "Super Admin", "link": [
            {"name": "Projects", "target": "/Project"},
            {"name": "Users", "target": "/User"}]}));
    }
    json!({"resourceType": "UserConfiguration", "menu": menu})
}
