//! Writing the server's bookkeeping through the repository, as the system (DESIGN.md: every
//! write goes through `repo`; these are the explicit, greppable system writes of the auth code).

use oxmed_repo::{Repository, RequestContext, WriteRequest, parse_stored};
use serde_json::Value;

use crate::failure::{AuthFailure, Result};

/// Creates `resource` in `project` with a server-assigned id; the stored resource.
pub async fn create(repo: &Repository, project: &str, resource: Value) -> Result<Value> {
    let written = repo
        .write(
            &RequestContext::system_in(project),
            WriteRequest::Create {
                resource,
                if_none_exist: None,
            },
        )
        .await?;
    stored(written.resource)
}

/// Writes `resource` (with its `id`) in `project`, creating it if absent.
pub async fn put(repo: &Repository, project: &str, resource: Value) -> Result<Value> {
    let (resource_type, id) = type_and_id(&resource);
    let written = repo
        .write(
            &RequestContext::system_in(project),
            WriteRequest::Update {
                resource_type,
                id,
                resource,
                if_match: None,
            },
        )
        .await?;
    stored(written.resource)
}

/// Writes `resource` only if its stored version is still `version_id`: two concurrent
/// read-modify-write sequences on one Login (a refresh racing another) cannot both win.
pub async fn put_if(
    repo: &Repository,
    project: &str,
    resource: Value,
    version_id: &str,
) -> Result<Option<Value>> {
    let (resource_type, id) = type_and_id(&resource);
    let result = repo
        .write(
            &RequestContext::system_in(project),
            WriteRequest::Update {
                resource_type,
                id,
                resource,
                if_match: Some(version_id.to_owned()),
            },
        )
        .await;
    match result {
        Ok(written) => stored(written.resource).map(Some),
        Err(oxmed_repo::RepoError::PreconditionFailed(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn type_and_id(resource: &Value) -> (String, String) {
    let text = |k: &str| {
        resource
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("resourceType"), text("id"))
}

fn stored(r: Option<oxmed_store::StoredResource>) -> Result<Value> {
    let r = r.ok_or_else(|| AuthFailure::Internal("a write returned no resource".into()))?;
    Ok(parse_stored(&r)?)
}

/// `meta.versionId` of a stored resource.
pub fn version_of(v: &Value) -> Option<&str> {
    v.get("meta")?.get("versionId")?.as_str()
}
