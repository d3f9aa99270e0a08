//! Who may manage a project through `/admin/projects/:projectId/*` (spec §13.1): its admins and
//! super admins. Medplum ignores the path's project for a project admin and acts on the admin's
//! own; oxmed answers 404 for any other project instead, so that a client naming project B while
//! signed in to project A never acts on A by surprise and learns nothing of B.

use oxmed_repo::parse_stored;

use crate::failure::{AuthFailure, Result};
use crate::identity::{Project, ProjectMembership};
use crate::service::Auth;
use crate::session::Caller;

impl Auth {
    /// The project `project_id` names, if the caller may administer it: 403 for a caller who
    /// is no admin, 404 for a project that is not the caller's (or, for a super admin, does not
    /// exist).
    pub async fn administered_project(&self, caller: &Caller, project_id: &str) -> Result<Project> {
        if !caller.is_admin() {
            return Err(AuthFailure::Forbidden);
        }
        if project_id == caller.project_id() {
            return Ok((*caller.project).clone());
        }
        if !caller.is_super_admin() {
            return Err(AuthFailure::NotFound);
        }
        let stored = self
            .repo()
            .system_read("Project", project_id)
            .await?
            .ok_or(AuthFailure::NotFound)?;
        Project::from_value(parse_stored(&stored)?)
    }

    /// A membership of `project`; 404 when it is absent or of another project.
    pub async fn project_membership(
        &self,
        project: &Project,
        membership_id: &str,
    ) -> Result<ProjectMembership> {
        let stored = self
            .repo()
            .system_read("ProjectMembership", membership_id)
            .await?
            .filter(|r| r.project == project.id())
            .ok_or(AuthFailure::NotFound)?;
        ProjectMembership::from_value(parse_stored(&stored)?)
    }
}

impl Auth {
    /// `POST /admin/projects/:projectId/members/:membershipId`: the body must be that
    /// membership (403 otherwise, as Medplum); it is written with the admin's own rights, so
    /// that `project` and `user`, read-only to project admins, keep their values.
    pub async fn update_member(
        &self,
        caller: &Caller,
        project: &Project,
        membership_id: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let same = body.get("resourceType").and_then(|t| t.as_str()) == Some("ProjectMembership")
            && body.get("id").and_then(|i| i.as_str()) == Some(membership_id);
        if !same {
            return Err(AuthFailure::Forbidden);
        }
        self.project_membership(project, membership_id).await?;
        // A super admin changes another project's member in that project; an admin, with
        // their own rights (`project` and `user` read-only to them).
        let ctx = if caller.is_super_admin() && project.id() != caller.project_id() {
            oxmed_repo::RequestContext {
                author: Some(caller.profile().text().to_owned()),
                ..oxmed_repo::RequestContext::system_in(project.id())
            }
        } else {
            caller.request_context()
        };
        let written = self
            .repo()
            .write(
                &ctx,
                oxmed_repo::WriteRequest::Update {
                    resource_type: "ProjectMembership".into(),
                    id: membership_id.to_owned(),
                    resource: body,
                    if_match: None,
                },
            )
            .await?;
        let stored = written
            .resource
            .ok_or_else(|| AuthFailure::Internal("an update returned no resource".into()))?;
        Ok(parse_stored(&stored)?)
    }

    /// `DELETE /admin/projects/:projectId/members/:membershipId` (spec §8.7): never the
    /// owner's membership.
    pub async fn remove_member(&self, project: &Project, membership_id: &str) -> Result<()> {
        let membership = self.project_membership(project, membership_id).await?;
        let owner = project.owner.as_ref().map(|o| o.text());
        if owner.is_some_and(|o| o == membership.user.text()) {
            return Err(AuthFailure::invalid(
                "Cannot delete the owner of the project",
            ));
        }
        self.repo()
            .write(
                &oxmed_repo::RequestContext::system_in(project.id()),
                oxmed_repo::WriteRequest::Delete {
                    resource_type: "ProjectMembership".into(),
                    id: membership_id.to_owned(),
                },
            )
            .await?;
        Ok(())
    }
}

impl Auth {
    /// `POST /admin/projects/:projectId/secrets` and `/sites` (spec §13.1): the array replaces
    /// `Project.secret` or `Project.site`; the project as stored after.
    pub async fn replace_project_list(
        &self,
        project: &Project,
        field: &str,
        list: serde_json::Value,
    ) -> Result<serde_json::Value> {
        if !list.is_array() {
            return Err(AuthFailure::invalid("The body must be a JSON array"));
        }
        let stored = self
            .repo()
            .system_read("Project", project.id())
            .await?
            .ok_or(AuthFailure::NotFound)?;
        let version = stored.version_id.clone();
        let mut value = parse_stored(&stored)?;
        value[field] = list;
        crate::records::put_if(self.repo(), &stored.project, value, &version)
            .await?
            .ok_or_else(|| AuthFailure::Conflict("The project was changed meanwhile".into()))
    }
}

impl Auth {
    /// `POST /admin/projects/setpassword {email, password}` (spec §13.1): an admin sets the
    /// password of a project-scoped user of the admin's own project; anyone else (a
    /// server-scoped user, another project's) is "User not found". Their sessions end.
    pub async fn admin_set_password(
        &self,
        caller: &Caller,
        email: &str,
        new_password: &str,
    ) -> Result<()> {
        if !caller.is_admin() {
            return Err(AuthFailure::Forbidden);
        }
        let email = email.trim().to_lowercase();
        if !crate::invite::is_valid_email(&email) {
            return Err(AuthFailure::invalid("Valid email address is required"));
        }
        crate::change_password::check_new_password(new_password)?;
        let project = caller.project_id();
        let reference = format!("Project/{project}");
        let Some((stored, mut user)) = self
            .repo()
            .system_find_one(
                oxmed_repo::Scope::Project(project),
                "User",
                &[("email:exact", &email), ("project", &reference)],
            )
            .await?
        else {
            return Err(AuthFailure::invalid("User not found"));
        };
        let cost = self.config().bcrypt_cost;
        let password = new_password.to_owned();
        let hash =
            tokio::task::spawn_blocking(move || crate::password::hash_password(&password, cost))
                .await
                .map_err(|e| AuthFailure::Internal(e.to_string()))??;
        user["passwordHash"] = serde_json::json!(hash);
        crate::records::put_if(self.repo(), &stored.project, user, &stored.version_id)
            .await?
            .ok_or_else(|| AuthFailure::Conflict("The user was changed meanwhile".into()))?;
        self.revoke_other_logins(&crate::identity::Reference::to("User", &stored.id), "")
            .await
    }
}
