//! The caller's AccessPolicy applied to what the repository reads and returns (spec §1.3): the
//! type check (403), criteria on a resource read by id (404, never a hint that it exists), and
//! hidden fields removed from every resource handed back. Searches carry the policy into SQL as
//! the store's `Restriction`; writes apply it inside their transaction (`write`).

use oxmed_access::{AccessControl, Interaction};
use oxmed_store::StoredResource;
use serde_json::Value;

use crate::{RepoError, RequestContext};

/// 403 unless the policy allows `interaction` on the type at all.
pub(crate) fn require_type(
    ctx: &RequestContext,
    resource_type: &str,
    interaction: Interaction,
) -> Result<(), RepoError> {
    match &ctx.access {
        Some(a) if !a.allows_type(resource_type, interaction) => Err(RepoError::Forbidden),
        _ => Ok(()),
    }
}

pub(crate) fn parse(r: &StoredResource) -> Result<Value, RepoError> {
    serde_json::from_str(&r.content).map_err(|e| {
        RepoError::Internal(format!(
            "stored {}/{} is not JSON: {e}",
            r.resource_type, r.id
        ))
    })
}

/// A deleted resource: 410, unless the caller sees the type only through criteria, which a
/// deletion has no content to satisfy: then it is not there (404), so that the ids of deleted
/// resources outside the caller's view are not told.
pub(crate) fn gone(access: Option<&AccessControl>, resource_type: &str, id: &str) -> RepoError {
    match access {
        Some(a) if !a.unconditional(resource_type, Interaction::Read) => {
            RepoError::NotFound(format!("{resource_type}/{id} not found"))
        }
        _ => RepoError::Gone(format!("{resource_type}/{id} was deleted")),
    }
}

fn not_found(r: &StoredResource) -> RepoError {
    RepoError::NotFound(format!("{}/{} not found", r.resource_type, r.id))
}

/// The live resource as the caller may see it: 404 when its content does not satisfy an entry
/// allowing `interaction`, its hidden fields removed otherwise. A deletion has no content and
/// passes as it is.
pub(crate) fn view(
    ctx: &RequestContext,
    r: StoredResource,
    interaction: Interaction,
) -> Result<StoredResource, RepoError> {
    let Some(access) = &ctx.access else {
        return Ok(r);
    };
    if r.deleted || access.unconditional(&r.resource_type, interaction) {
        return Ok(shown_with(access, r));
    }
    let mut value = parse(&r)?;
    if !access.can(&value, interaction) {
        return Err(not_found(&r));
    }
    if access.hide_fields(&mut value) {
        return reserialized(r, &value);
    }
    Ok(r)
}

/// Whether the caller may see this version under `interaction`.
pub(crate) fn visible(
    ctx: &RequestContext,
    r: &StoredResource,
    interaction: Interaction,
) -> Result<bool, RepoError> {
    match &ctx.access {
        None => Ok(true),
        Some(a) if a.unconditional(&r.resource_type, interaction) => Ok(true),
        Some(_) if r.deleted => Ok(false),
        Some(a) => Ok(a.can(&parse(r)?, interaction)),
    }
}

/// A resource the caller may see, its hidden fields removed.
pub(crate) fn shown(ctx: &RequestContext, r: StoredResource) -> StoredResource {
    match &ctx.access {
        Some(a) => shown_with(a, r),
        None => r,
    }
}

fn shown_with(access: &AccessControl, r: StoredResource) -> StoredResource {
    if r.deleted || !access.hides_fields(&r.resource_type) {
        return r;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&r.content) else {
        // Unreadable stored content is not shown at all rather than shown unfiltered.
        return StoredResource {
            content: String::from("{}"),
            ..r
        };
    };
    if access.hide_fields(&mut value) {
        reserialized(r.clone(), &value).unwrap_or(StoredResource {
            content: String::from("{}"),
            ..r
        })
    } else {
        r
    }
}

fn reserialized(r: StoredResource, value: &Value) -> Result<StoredResource, RepoError> {
    let content = serde_json::to_string(value)
        .map_err(|e| RepoError::Internal(format!("cannot serialise a resource: {e}")))?;
    Ok(StoredResource { content, ..r })
}
