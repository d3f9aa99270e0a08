//! The caller's AccessPolicy applied to what the repository reads and returns (spec §1.3): the
//! type check (403), criteria on a resource read by id (404, never a hint that it exists), and
//! hidden fields removed from every resource handed back. Searches carry the policy into SQL as
//! the store's `Restriction`; writes apply it inside their transaction (`write`).

use oxmed_access::control::reveals;
use oxmed_access::{AccessControl, Interaction};
use oxmed_fhir::search::matching::patient_compartment_params;
use oxmed_fhir::search::{Condition, SearchRequest};
use oxmed_fhir::search_parameter::SearchParameters;
use oxmed_store::StoredResource;
use serde_json::Value;

use crate::system::not_json;
use crate::{RepoError, RequestContext, parse_stored};

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

/// Whether a read by id of `resource_type` is decided on the compartments the store keeps
/// beside the resource ([`AccessControl::can_in_compartments`]), so that the store should read
/// them with it: the caller's criteria only list compartments, and nothing else needs the content
/// parsed.
pub(crate) fn reads_compartments(ctx: &RequestContext, resource_type: &str) -> bool {
    ctx.access.as_deref().is_some_and(|a| {
        !a.unconditional(resource_type, Interaction::Read)
            && !a.hides_fields(resource_type)
            && a.decides_on_compartments(resource_type)
    })
}

/// The live resource as the caller may see it: 404 when its content does not satisfy an entry
/// allowing `interaction`, its hidden fields removed otherwise (and the extended-mode members of
/// `meta`, see [`shown`]). A deletion has no content and passes as it is. With `compartments`
/// (the store's column, when [`reads_compartments`]) the decision is taken on them instead of on
/// the content: the same compartments, since the store writes them from the content's index
/// entries in its transaction; a column the store does not know (`None`, or a value it did not
/// write) leaves the decision to the content.
pub(crate) fn view(
    ctx: &RequestContext,
    r: StoredResource,
    interaction: Interaction,
    compartments: Option<&str>,
) -> Result<StoredResource, RepoError> {
    let Some(access) = &ctx.access else {
        return Ok(r);
    };
    if r.deleted || access.unconditional(&r.resource_type, interaction) {
        return Ok(shown(ctx, r));
    }
    if !access.hides_fields(&r.resource_type) {
        let can = match compartments.and_then(oxmed_store::compartments::decode) {
            Some(found) => access.can_in_compartments(&r.resource_type, &found, interaction),
            None => stored_can(access, &r, interaction)?,
        };
        return if can {
            Ok(shown(ctx, r))
        } else {
            Err(not_found(&r))
        };
    }
    let value = parse_stored(&r)?;
    if !access.can(&value, interaction) {
        return Err(not_found(&r));
    }
    hidden_and_stripped(ctx, access, r, value)
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
        Some(a) => stored_can(a, r, interaction),
    }
}

/// The decision on a stored resource, reading only what its criteria need.
fn stored_can(
    access: &AccessControl,
    r: &StoredResource,
    interaction: Interaction,
) -> Result<bool, RepoError> {
    access
        .can_stored(&r.resource_type, &r.content, interaction)
        .map_err(|e| not_json(r, &e))
}

/// A resource the caller may see, its hidden fields removed, and, unless the request asked
/// for extended mode, the members of `meta` only that mode shows.
pub(crate) fn shown(ctx: &RequestContext, r: StoredResource) -> StoredResource {
    let Some(access) = &ctx.access else {
        return r;
    };
    if r.deleted || !access.hides_fields(&r.resource_type) {
        return without_extended_meta(ctx, r);
    }
    let shown =
        parse_stored(&r).and_then(|value| hidden_and_stripped(ctx, access, r.clone(), value));
    shown.unwrap_or_else(|e| {
        // Unreadable stored content is not shown at all rather than shown unfiltered.
        tracing::error!(error = %e, "a stored resource could not be filtered for its reader");
        StoredResource {
            content: String::from("{}"),
            ..r
        }
    })
}

/// `value` (the parsed `r`) with the reader's hidden fields removed, as the content of `r`,
/// without the extended-mode members of `meta` unless asked for.
fn hidden_and_stripped(
    ctx: &RequestContext,
    access: &AccessControl,
    r: StoredResource,
    mut value: Value,
) -> Result<StoredResource, RepoError> {
    access.hide_fields(&mut value);
    let content = serde_json::to_string(&value)
        .map_err(|e| RepoError::Internal(format!("cannot serialise a resource: {e}")))?;
    Ok(without_extended_meta(ctx, StoredResource { content, ..r }))
}

/// Non-extended mode (spec §1.3): `meta.project`, `meta.author`, ... removed unless the request
/// says `X-Medplum: extended`.
fn without_extended_meta(ctx: &RequestContext, r: StoredResource) -> StoredResource {
    if ctx.extended || r.deleted {
        return r;
    }
    match crate::extended::strip(&r.content) {
        Some(content) => StoredResource { content, ..r },
        None => r,
    }
}

/// 403 when a search would look at a field the caller's policy hides, through a filter, a sort
/// key, a chain, `_has` or an include: the order of results, their number or their presence
/// would tell the hidden value (spec §1.3 hides fields from what is returned; the issue asks
/// that searches be no side door to them).
pub(crate) fn check_search(ctx: &RequestContext, request: &SearchRequest) -> Result<(), RepoError> {
    let Some(access) = &ctx.access else {
        return Ok(());
    };
    let restriction = access.restriction();
    let types: Vec<&str> = if request.resource_types.is_empty() {
        restriction
            .types
            .keys()
            .map(String::as_str)
            .filter(|t| access.hides_fields(t))
            .collect()
    } else {
        request.resource_types.iter().map(String::as_str).collect()
    };
    for t in &types {
        for clause in &request.filters {
            for condition in &clause.any {
                condition_hidden(access, t, condition)?;
            }
        }
        for key in &request.sort {
            param_hidden(access, t, &key.code)?;
        }
    }
    for include in request.include.iter().chain(request.revinclude.iter()) {
        match &include.reference_code {
            Some(code) => param_hidden(access, &include.source_type, code)?,
            None => {
                for p in SearchParameters::global().for_type(&include.source_type) {
                    if p.kind == oxmed_fhir::search_parameter::SearchParamType::Reference {
                        param_hidden(access, &include.source_type, &p.code)?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn condition_hidden(
    access: &AccessControl,
    resource_type: &str,
    condition: &Condition,
) -> Result<(), RepoError> {
    match condition {
        Condition::Param { code, .. } | Condition::Missing { code, .. } => {
            param_hidden(access, resource_type, code)
        }
        Condition::Chain {
            reference_code,
            target_type,
            inner,
        } => {
            param_hidden(access, resource_type, reference_code)?;
            condition_hidden(access, target_type, inner)
        }
        Condition::Has {
            source_type,
            reference_code,
            inner,
        } => {
            param_hidden(access, source_type, reference_code)?;
            condition_hidden(access, source_type, inner)
        }
        Condition::Compartment { .. } => {
            for code in patient_compartment_params(resource_type) {
                param_hidden(access, resource_type, code)?;
            }
            Ok(())
        }
        Condition::Id(_) | Condition::LastUpdated(_) => Ok(()),
    }
}

fn param_hidden(access: &AccessControl, resource_type: &str, code: &str) -> Result<(), RepoError> {
    let hidden = access.hidden_paths(resource_type);
    if hidden.is_empty() || code == "_id" || code == "_lastUpdated" {
        return Ok(());
    }
    let Some(param) = SearchParameters::global().get(resource_type, code) else {
        return Ok(());
    };
    // A parameter without an expression (full text) reads the whole resource.
    let Some(expression) = param.expression_for(resource_type) else {
        return Err(RepoError::Forbidden);
    };
    let paths = expression.element_paths();
    let touches = |read: &str| hidden.iter().any(|h| reveals(read, h));
    if paths.is_empty() || paths.iter().any(|p| touches(p)) {
        return Err(RepoError::Forbidden);
    }
    Ok(())
}
