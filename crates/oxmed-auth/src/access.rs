//! A caller's effective AccessPolicy (spec §1.1), read from the store when its session is
//! loaded and cached with it: any write of an AccessPolicy, ProjectMembership or Project drops
//! the cached sessions (`session::Sessions::invalidate`), so a change holds from the next request.

use std::net::IpAddr;
use std::sync::Arc;

use oxmed_access::{AccessControl, AccessError, MembershipAccess, PolicyGrant, ProjectAccess};
use oxmed_repo::{LinkedProject, ProjectView, parse_stored};
use serde_json::Value;

use crate::failure::{AuthFailure, Result};
use crate::identity::{Project, ProjectMembership};
use crate::service::Auth;

/// Medplum's text for an address the IP rules refuse.
pub const IP_NOT_ALLOWED: &str = "IP address not allowed";

/// An address the server knows: not the placeholder of a request without a socket.
pub fn known_address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>().ok().filter(|a| !a.is_unspecified())
}

/// Whether the caller's IP rules let a request from `addr` through (spec §9).
pub fn ip_allowed(access: &AccessControl, addr: Option<IpAddr>) -> bool {
    oxmed_access::ip_rule::allowed(&access.policy().ip_access_rule, addr)
}

/// The ids in `Project.link[].project`.
fn linked_projects(project: &Project) -> Vec<String> {
    project
        .rest
        .get("link")
        .and_then(Value::as_array)
        .map(|links| {
            links
                .iter()
                .filter_map(|l| l.pointer("/project/reference").and_then(Value::as_str))
                .filter_map(|r| r.strip_prefix("Project/"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Auth {
    /// What a member of `project` reads beyond it (spec §8.2, §8.3): every project for a super
    /// admin, else the projects it links to that still exist, each for the types it exports.
    pub(crate) async fn project_view(&self, project: &Project) -> Result<ProjectView> {
        if project.is_super_admin() {
            return Ok(ProjectView::All);
        }
        let ids = linked_projects(project);
        if ids.is_empty() {
            return Ok(ProjectView::Own);
        }
        let mut links = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(stored) = self.repo().system_read("Project", &id).await? else {
                continue;
            };
            if stored.deleted || id == project.id() {
                continue;
            }
            let exported: Vec<String> = parse_stored(&stored)?
                .get("exportedResourceType")
                .and_then(Value::as_array)
                .map(|types| {
                    types
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            links.push(LinkedProject {
                id,
                // Medplum: a project that lists no type exports every type.
                exported: (!exported.is_empty()).then_some(exported),
            });
        }
        Ok(ProjectView::Linked(links.into()))
    }

    /// The effective policy of a membership, or why it cannot be built.
    pub async fn access_control(
        &self,
        membership: &ProjectMembership,
        project: &Project,
    ) -> Result<std::result::Result<Arc<AccessControl>, AccessError>> {
        let mut grants = Vec::new();
        if let Some(r) = &membership.access_policy {
            grants.push((r.text().to_owned(), Vec::new()));
        }
        if let Some(access) = membership.rest.get("access").and_then(Value::as_array) {
            for a in access {
                let reference = a
                    .pointer("/policy/reference")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let parameters = a
                    .get("parameter")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                grants.push((reference, parameters));
            }
        }
        let mut resolved = Vec::with_capacity(grants.len());
        for (reference, parameters) in grants {
            let policy = self.policy_of_project(&reference, project.id()).await?;
            resolved.push(PolicyGrant {
                reference,
                policy,
                parameters,
            });
        }
        let membership_access = MembershipAccess {
            profile: membership.profile.text().to_owned(),
            admin: membership.is_admin(),
            grants: resolved,
        };
        let project_access = ProjectAccess {
            id: project.id().to_owned(),
            super_admin: project.is_super_admin(),
            links: linked_projects(project),
        };
        Ok(
            oxmed_access::effective::build(&membership_access, &project_access).map(|policy| {
                Arc::new(AccessControl::new(
                    policy,
                    project.is_super_admin(),
                    membership.is_admin(),
                ))
            }),
        )
    }

    /// A stored AccessPolicy of the project by reference; `None` when it is not one: absent,
    /// deleted, of another project, or not an `AccessPolicy/<id>` reference.
    async fn policy_of_project(&self, reference: &str, project_id: &str) -> Result<Option<Value>> {
        let Some(id) = reference.strip_prefix("AccessPolicy/") else {
            return Ok(None);
        };
        let stored = self.repo().system_read("AccessPolicy", id).await?;
        match stored {
            Some(s) if s.project == project_id && !s.deleted => Ok(Some(parse_stored(&s)?)),
            _ => Ok(None),
        }
    }

    /// The effective policy a new session of this membership would have; the login is refused
    /// (400, Medplum's texts) when it cannot be built or its IP rules refuse `remote_address`
    /// (spec §9).
    pub async fn require_access(
        &self,
        membership: &ProjectMembership,
        project: &Project,
        remote_address: Option<&str>,
    ) -> Result<Arc<AccessControl>> {
        match self.access_control(membership, project).await? {
            Ok(a) => {
                if !ip_allowed(&a, remote_address.and_then(known_address)) {
                    return Err(AuthFailure::invalid(IP_NOT_ALLOWED));
                }
                Ok(a)
            }
            Err(e) => {
                tracing::warn!(membership = %membership.id(), error = %e, "access policy cannot be built");
                Err(AuthFailure::invalid(
                    AccessError::InvalidConfiguration.to_string(),
                ))
            }
        }
    }
}

impl Auth {
    /// Why the membership `membership_ref` (`ProjectMembership/<id>`) may or may not do
    /// `interaction` on `resource_type`, or on the stored resource `Type/id` (issue 5's
    /// explain). For project admins and super admins, about memberships of their own project;
    /// 403 for anyone else, 404 for a membership or resource that is not there.
    pub async fn explain(
        &self,
        caller: &crate::Caller,
        membership_ref: &str,
        resource_type: &str,
        resource_id: Option<&str>,
        interaction: oxmed_access::Interaction,
    ) -> Result<oxmed_access::explain::Explanation> {
        if !caller.is_admin() {
            return Err(AuthFailure::Forbidden);
        }
        let id = membership_ref
            .strip_prefix("ProjectMembership/")
            .unwrap_or(membership_ref);
        let Some((membership, project)) = self.membership_and_project(id).await? else {
            return Err(AuthFailure::NotFound);
        };
        if project.id() != caller.project_id() {
            return Err(AuthFailure::NotFound);
        }
        let resource = match resource_id {
            None => None,
            Some(rid) => match self.repo().system_read(resource_type, rid).await? {
                Some(r) if r.project == project.id() && !r.deleted => Some(parse_stored(&r)?),
                _ => return Err(AuthFailure::NotFound),
            },
        };
        Ok(match self.access_control(&membership, &project).await? {
            Ok(access) => access.explain(resource_type, resource.as_ref(), interaction),
            Err(e) => oxmed_access::explain::Explanation::denied(format!(
                "the membership's policy cannot be built: {e}"
            )),
        })
    }
}
