//! The `Repository`: the only door to FHIR data. Every read and write of the server, including
//! its own bookkeeping, goes through it with a [`RequestContext`]. It validates, stamps and indexes
//! resources and turns each FHIR interaction into store operations that run in one transaction.

mod access;
mod accounts;
mod bundle;
mod changes;
mod conditional;
mod error;
mod extended;
pub mod meta;
mod references;
mod search;
mod system;
mod write;

use std::sync::Arc;

use oxmed_access::{AccessControl, Interaction};
use oxmed_fhir::definitions::Definitions;
use oxmed_store::{
    HistoryCursor, HistoryQuery, HistoryScope, Store, StoredResource, WriteOp, WriteOutcome,
};
pub use oxmed_store::{LinkedProject, ProjectView};

pub use bundle::BundleKind;
pub use changes::{Change, Listener};
pub use conditional::is_supported as is_search_supported;
pub use error::RepoError;
pub use search::SearchOptions;
pub use system::{Scope, parse_stored};
pub use write::{WriteRequest, Written};

/// The partition of the server's own, project-less resources: server-scoped Users, Logins,
/// signing keys. It is not a Project resource: no membership can name it, so no caller's request
/// is ever scoped to it; only the system reads and writes there.
pub const SERVER_PROJECT: &str = "00000000-0000-0000-0000-000000000001";

/// Before projects were managed every resource was written here; kept as a name for tests.
pub const DEFAULT_PROJECT: &str = SERVER_PROJECT;

/// Who is asking, and on behalf of which project.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub project: String,
    /// Reference stamped as `meta.author` on writes (e.g. `Practitioner/123`).
    pub author: Option<String>,
    /// The caller's effective AccessPolicy; `None` only for the server's own work, never for a
    /// caller's request.
    pub access: Option<Arc<AccessControl>>,
    /// The profile the request acts for (`X-Medplum-On-Behalf-Of`), stamped as
    /// `meta.onBehalfOf` on writes; `author` stays the real caller.
    pub on_behalf_of: Option<String>,
    /// `X-Medplum: extended`: responses keep `meta.project`, `meta.author`, ... (spec §1.3).
    pub extended: bool,
    /// What reads reach beyond `project`: linked projects (read-only), or every project for a
    /// super admin (spec §8).
    pub view: ProjectView,
    /// `Project.checkReferencesOnWrite`: every reference written must name a resource the
    /// caller can read (spec §8.1).
    pub check_references: bool,
}

impl RequestContext {
    /// The server itself, in its own partition ([`SERVER_PROJECT`]).
    pub fn system() -> RequestContext {
        Self::system_in(SERVER_PROJECT)
    }

    /// The server itself, writing into `project` (its bookkeeping: a membership, a client).
    pub fn system_in(project: &str) -> RequestContext {
        RequestContext {
            project: project.to_owned(),
            author: None,
            access: None,
            on_behalf_of: None,
            extended: false,
            view: ProjectView::Own,
            check_references: false,
        }
    }

    /// Whether a stored resource is in the projects the caller reads.
    pub fn sees(&self, r: &StoredResource) -> bool {
        self.view.sees(&self.project, &r.project, &r.resource_type)
    }
}

#[derive(Clone)]
pub struct Repository {
    store: Store,
    listeners: changes::Listeners,
}

/// A page of history, newest first, and where the next page starts.
pub struct HistoryPage {
    pub entries: Vec<StoredResource>,
    pub next: Option<HistoryCursor>,
}

impl Repository {
    pub fn new(store: Store) -> Repository {
        Repository {
            store,
            listeners: changes::Listeners::default(),
        }
    }

    /// Calls `listener` after every committed write with each version written, before the
    /// write returns.
    pub fn on_change(&self, listener: Listener) {
        self.listeners.add(listener);
    }

    /// Every write goes through here, so that listeners hear of it.
    pub(crate) async fn execute(
        &self,
        project: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, RepoError> {
        let outcomes = self.store.execute(project, ops).await?;
        self.listeners.notify(&outcomes);
        Ok(outcomes)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// 404 for a type name the server does not know.
    pub fn check_type(resource_type: &str) -> Result<(), RepoError> {
        if Definitions::global().is_resource_type(resource_type) {
            Ok(())
        } else {
            Err(RepoError::NotFound(format!(
                "Unknown resource type: {resource_type}"
            )))
        }
    }

    /// 400 for an id that is not a FHIR id.
    pub fn check_id(id: &str) -> Result<(), RepoError> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            Ok(())
        } else {
            Err(RepoError::invalid(format!("Invalid id: {}", truncate(id))))
        }
    }

    /// The current version; 410 if deleted, 404 if absent or of another project.
    pub async fn read(
        &self,
        ctx: &RequestContext,
        resource_type: &str,
        id: &str,
    ) -> Result<StoredResource, RepoError> {
        Self::check_type(resource_type)?;
        Self::check_id(id)?;
        access::require_type(ctx, resource_type, Interaction::Read)?;
        // A policy of compartment lists decides on the compartments the store keeps in the
        // resource's row rather than on its parsed content or its index rows (another B-tree:
        // measured, that descent was most of what such a policy cost a read).
        let (found, compartments) = if access::reads_compartments(ctx, resource_type) {
            match self.store.read_with_compartments(resource_type, id).await? {
                Some((r, compartments)) => (Some(r), compartments),
                None => (None, None),
            }
        } else {
            (self.store.read(resource_type, id).await?, None)
        };
        let r = visible(ctx, found, resource_type, id)?;
        access::view(ctx, r, Interaction::Read, compartments.as_deref())
    }

    pub async fn vread(
        &self,
        ctx: &RequestContext,
        resource_type: &str,
        id: &str,
        version_id: &str,
    ) -> Result<StoredResource, RepoError> {
        Self::check_type(resource_type)?;
        Self::check_id(id)?;
        Self::check_id(version_id)?;
        access::require_type(ctx, resource_type, Interaction::Vread)?;
        if ctx.access.is_some() {
            // The resource as it is now decides first (spec §1.3): an old version that once
            // matched the caller's criteria is not readable when the resource no longer does.
            self.current_for(ctx, resource_type, id, Interaction::Vread)
                .await?;
        }
        let found = self
            .store
            .read_version(resource_type, id, version_id)
            .await?;
        match found {
            Some(r) if ctx.sees(&r) => {
                if r.deleted {
                    match access::gone(ctx.access.as_deref(), resource_type, id) {
                        RepoError::Gone(_) => Err(RepoError::Gone(format!(
                            "{resource_type}/{id}/_history/{version_id} is a deletion"
                        ))),
                        hidden => Err(hidden),
                    }
                } else {
                    access::view(ctx, r, Interaction::Read, None).map_err(|_| {
                        RepoError::NotFound(format!(
                            "{resource_type}/{id}/_history/{version_id} not found"
                        ))
                    })
                }
            }
            _ => Err(RepoError::NotFound(format!(
                "{resource_type}/{id}/_history/{version_id} not found"
            ))),
        }
    }

    /// For vread and instance history: the current version must be of the caller's project and,
    /// under a policy, readable (404 otherwise) and allow `interaction` (403). A deleted
    /// resource's old versions are judged by themselves.
    async fn current_for(
        &self,
        ctx: &RequestContext,
        resource_type: &str,
        id: &str,
        interaction: Interaction,
    ) -> Result<(), RepoError> {
        let not_found = || RepoError::NotFound(format!("{resource_type}/{id} not found"));
        let current = match self.store.read(resource_type, id).await? {
            Some(r) if ctx.sees(&r) => r,
            _ => return Err(not_found()),
        };
        if current.deleted {
            return Ok(());
        }
        if !access::visible(ctx, &current, Interaction::Read)? {
            return Err(not_found());
        }
        if !access::visible(ctx, &current, interaction)? {
            return Err(RepoError::Forbidden);
        }
        Ok(())
    }

    pub async fn history(
        &self,
        ctx: &RequestContext,
        scope: HistoryScope,
        since: Option<i64>,
        after: Option<HistoryCursor>,
        count: usize,
    ) -> Result<HistoryPage, RepoError> {
        match &scope {
            HistoryScope::Instance(t, id) => {
                Self::check_type(t)?;
                Self::check_id(id)?;
                access::require_type(ctx, t, Interaction::History)?;
                // Existence and project come from the current row: a resource of another
                // project has no history for this caller.
                self.current_for(ctx, t, id, Interaction::History).await?;
            }
            HistoryScope::Type(t) => {
                Self::check_type(t)?;
                access::require_type(ctx, t, Interaction::History)?;
            }
            HistoryScope::System => {}
        }
        let instance = matches!(scope, HistoryScope::Instance(..));
        let mut entries = self
            .store
            .history(HistoryQuery {
                project: ctx.project.clone(),
                view: ctx.view.clone(),
                scope,
                since,
                after,
                count: count + 1,
            })
            .await?;
        let next = if entries.len() > count {
            entries.truncate(count);
            entries.last().map(|e| HistoryCursor {
                last_updated: e.last_updated,
                version_id: e.version_id.clone(),
            })
        } else {
            None
        };
        let entries = self.history_view(ctx, entries, instance)?;
        Ok(HistoryPage { entries, next })
    }

    /// The versions of a history page that the caller may see, hidden fields removed: each
    /// version must itself satisfy the caller's criteria (a version written before the resource
    /// came into the caller's view stays out of it). A deletion carries no content to judge; it
    /// is shown in an instance's history, whose resource the caller may read, and elsewhere only
    /// for a type the caller sees whole. The cursor still follows the unfiltered page, so a page
    /// may hold fewer entries than asked.
    fn history_view(
        &self,
        ctx: &RequestContext,
        entries: Vec<StoredResource>,
        instance: bool,
    ) -> Result<Vec<StoredResource>, RepoError> {
        let Some(access) = &ctx.access else {
            return Ok(entries);
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if !access.allows_type(&e.resource_type, Interaction::History) {
                continue;
            }
            if e.deleted {
                if instance || access.unconditional(&e.resource_type, Interaction::History) {
                    out.push(e);
                }
                continue;
            }
            if access::visible(ctx, &e, Interaction::History)? {
                out.push(access::shown(ctx, e));
            }
        }
        Ok(out)
    }

    /// Runs one write interaction in its own transaction.
    pub async fn write(
        &self,
        ctx: &RequestContext,
        request: WriteRequest,
    ) -> Result<Written, RepoError> {
        let routed;
        let ctx = match self.project_of_target(ctx, &request).await? {
            Some(project) => {
                routed = RequestContext {
                    project,
                    ..ctx.clone()
                };
                &routed
            }
            None => ctx,
        };
        self.check_references(ctx, &request, &Default::default())
            .await?;
        let inherited = self
            .inherited_accounts(ctx, &request, &mut Default::default())
            .await?;
        let op = write::prepare(ctx, request, None, inherited)?;
        let mut outcomes = self.execute(&ctx.project, vec![op.op]).await?;
        let outcome = outcomes
            .pop()
            .ok_or_else(|| RepoError::Conflict("the store returned no outcome".into()))?;
        Ok(write::written(ctx, op.kind, outcome))
    }

    /// For a super admin (spec §1.4, §8.3), where a single write goes when not in its own
    /// project: an update, patch or delete of a resource of another project goes to that project
    /// (a resource never changes project); a create, or an update that creates, goes to the
    /// project its `meta.project` names.
    async fn project_of_target(
        &self,
        ctx: &RequestContext,
        request: &WriteRequest,
    ) -> Result<Option<String>, RepoError> {
        if ctx.view != ProjectView::All {
            return Ok(None);
        }
        let (resource_type, id, body) = match request {
            WriteRequest::Create { resource, .. } => {
                return self.named_project(ctx, resource, None).await;
            }
            WriteRequest::Update {
                resource_type,
                id,
                resource,
                ..
            } => (resource_type, id, Some(resource)),
            WriteRequest::Patch {
                resource_type, id, ..
            }
            | WriteRequest::Delete { resource_type, id } => (resource_type, id, None),
            _ => return Ok(None),
        };
        if Self::check_type(resource_type).is_err() || Self::check_id(id).is_err() {
            return Ok(None);
        }
        if let Some(current) = self.store.read(resource_type, id).await? {
            return Ok(Some(current.project).filter(|p| *p != ctx.project));
        }
        match body {
            Some(body) => self.named_project(ctx, body, Some(id)).await,
            None => Ok(None),
        }
    }

    /// The project a super admin's new resource names in `meta.project`, if another than its
    /// own: a Project that exists, or the Project being created itself (`id`).
    async fn named_project(
        &self,
        ctx: &RequestContext,
        body: &serde_json::Value,
        id: Option<&str>,
    ) -> Result<Option<String>, RepoError> {
        let Some(named) = body.pointer("/meta/project").and_then(|p| p.as_str()) else {
            return Ok(None);
        };
        if named == ctx.project {
            return Ok(None);
        }
        let itself = body.get("resourceType").and_then(|t| t.as_str()) == Some("Project")
            && id == Some(named);
        let exists = Self::check_id(named).is_ok()
            && self
                .store
                .read("Project", named)
                .await?
                .is_some_and(|p| !p.deleted);
        if itself || exists {
            Ok(Some(named.to_owned()))
        } else {
            Err(RepoError::invalid_at(
                format!("meta.project names no Project: {}", truncate(named)),
                "meta.project",
            ))
        }
    }

    /// Processes a `batch` or `transaction` Bundle and returns the response Bundle.
    pub async fn bundle(
        &self,
        ctx: &RequestContext,
        bundle: serde_json::Value,
        base_url: &str,
    ) -> Result<serde_json::Value, RepoError> {
        bundle::process(self, ctx, bundle, base_url).await
    }
}

fn visible(
    ctx: &RequestContext,
    found: Option<StoredResource>,
    resource_type: &str,
    id: &str,
) -> Result<StoredResource, RepoError> {
    match found {
        Some(r) if ctx.sees(&r) => {
            if r.deleted {
                Err(access::gone(ctx.access.as_deref(), resource_type, id))
            } else {
                Ok(r)
            }
        }
        _ => Err(RepoError::NotFound(format!(
            "{resource_type}/{id} not found"
        ))),
    }
}

/// Echoing user input in an error message: at most 100 characters of it.
pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() <= 100 {
        s.to_owned()
    } else {
        let t: String = s.chars().take(100).collect();
        format!("{t}...")
    }
}
