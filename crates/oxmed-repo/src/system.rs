//! The server's own lookups, made as the system: by id in any project, and searches in one
//! project or across all of them. Nothing here is reachable from a caller's request; the auth
//! code uses it for Users, Logins, memberships, clients and keys, and says so where it does.

use oxmed_fhir::search::SearchRequest;
use oxmed_fhir::search::parse::{ParseOptions, parse_search};
use oxmed_store::StoredResource;
use serde_json::Value;

use crate::write::{self, WriteRequest, Written};
use crate::{RepoError, Repository, RequestContext, truncate};

/// Where a system search looks.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Project(&'a str),
    AllProjects,
}

impl Repository {
    /// Writes as the system, each request in the project paired with it, in one transaction:
    /// all of them or none (an invite's User, profile and membership, which may live in two
    /// projects).
    pub async fn system_transaction(
        &self,
        writes: Vec<(String, WriteRequest)>,
    ) -> Result<Vec<Written>, RepoError> {
        let Some(first) = writes.first().map(|(p, _)| p.clone()) else {
            return Ok(Vec::new());
        };
        let mut ops = Vec::with_capacity(writes.len());
        let mut done = Vec::with_capacity(writes.len());
        for (project, request) in writes {
            let ctx = RequestContext::system_in(&project);
            let prepared = write::prepare(&ctx, request, None, Vec::new())?;
            ops.push(prepared.op.in_project(project));
            done.push((ctx, prepared.kind));
        }
        let outcomes = self.execute(&first, ops).await?;
        Ok(outcomes
            .into_iter()
            .zip(done)
            .map(|(outcome, (ctx, kind))| write::written(&ctx, kind, outcome))
            .collect())
    }

    /// The current version of a resource in whichever project it is; `None` if absent or
    /// deleted.
    pub async fn system_read(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, RepoError> {
        Self::check_type(resource_type)?;
        if Self::check_id(id).is_err() {
            return Ok(None);
        }
        Ok(self
            .store
            .read(resource_type, id)
            .await?
            .filter(|r| !r.deleted))
    }

    /// The resources of `resource_type` matching a query string (`email=a@b.c&_count=2`), as
    /// stored, in the default order. The query is the server's own, so a parse error is a bug
    /// in the caller and says so.
    pub async fn system_search(
        &self,
        scope: Scope<'_>,
        resource_type: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<StoredResource>, RepoError> {
        let request = system_request(resource_type, query)?;
        let result = match scope {
            Scope::Project(project) => self.store.search(project, &request, None).await?,
            Scope::AllProjects => self.store.search_all_projects(&request, None).await?,
        };
        Ok(result.matches)
    }

    /// [`Repository::system_search`], the first match parsed.
    pub async fn system_find_one(
        &self,
        scope: Scope<'_>,
        resource_type: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<(StoredResource, Value)>, RepoError> {
        let mut query = query.to_vec();
        query.push(("_count", "1"));
        let found = self.system_search(scope, resource_type, &query).await?;
        match found.into_iter().next() {
            Some(r) => {
                let v = parse_stored(&r)?;
                Ok(Some((r, v)))
            }
            None => Ok(None),
        }
    }
}

/// A stored resource's JSON.
pub fn parse_stored(r: &StoredResource) -> Result<Value, RepoError> {
    serde_json::from_str(&r.content).map_err(|e| not_json(r, &e))
}

/// The fault of stored content that does not parse.
pub(crate) fn not_json(r: &StoredResource, e: &serde_json::Error) -> RepoError {
    RepoError::Internal(format!(
        "stored {}/{} is not JSON: {e}",
        r.resource_type, r.id
    ))
}

fn system_request(resource_type: &str, query: &[(&str, &str)]) -> Result<SearchRequest, RepoError> {
    let params: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse_search(
        Some(resource_type),
        &params,
        &ParseOptions {
            default_count: 100,
            max_count: 1000,
            lenient: false,
            base_url: None,
        },
    )
    .map_err(|e| RepoError::Internal(format!("system search: {}", truncate(&e.message))))
}
