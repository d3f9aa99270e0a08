//! The write interactions (create, update, patch, delete and their conditional forms) as store
//! operations. Everything that does not depend on the current version (validation, parsing of
//! conditions) happens before the transaction; the `decide` closure only does what must see the
//! current version.

use std::collections::HashMap;
use std::sync::Arc;

use oxmed_access::{AccessControl, Interaction};
use oxmed_fhir::definitions::Definitions;
use oxmed_fhir::index::extract;
use oxmed_fhir::operation_outcome::Issue;
use oxmed_fhir::validation::validate;
use oxmed_store::{
    BoxError, Decision, Lookup, NewVersion, StoredResource, Target, TxState, WriteOp, WriteOutcome,
};
use serde_json::Value;

use crate::accounts::Accounts;
use crate::meta::{Stamp, new_id, same_content, stamp, strip_server_meta};
use crate::{ProjectView, RepoError, Repository, RequestContext, access, conditional, truncate};

#[derive(Debug, Clone)]
pub enum WriteRequest {
    Create {
        resource: Value,
        /// `If-None-Exist`: a search query string without the `?`.
        if_none_exist: Option<String>,
    },
    Update {
        resource_type: String,
        id: String,
        resource: Value,
        /// The version id the client expects (from `If-Match`), already unquoted.
        if_match: Option<String>,
    },
    ConditionalUpdate {
        resource_type: String,
        query: String,
        resource: Value,
        if_match: Option<String>,
    },
    Patch {
        resource_type: String,
        id: String,
        /// A JSON Patch document (RFC 6902).
        patch: Value,
        if_match: Option<String>,
    },
    Delete {
        resource_type: String,
        id: String,
    },
    ConditionalDelete {
        resource_type: String,
        query: String,
    },
}

impl WriteRequest {
    /// The resource a create or an update writes whole (a patch's result is known only in its
    /// transaction).
    pub(crate) fn resource(&self) -> Option<&Value> {
        match self {
            WriteRequest::Create { resource, .. }
            | WriteRequest::Update { resource, .. }
            | WriteRequest::ConditionalUpdate { resource, .. } => Some(resource),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Update,
    Delete,
}

/// The result of a write interaction.
#[derive(Debug, Clone)]
pub struct Written {
    /// The version now current; `None` after a delete of nothing.
    pub resource: Option<StoredResource>,
    /// A new resource came to be (201 Created).
    pub created: bool,
    /// A new version was written (an unchanged update or a conditional create that found its
    /// match writes none).
    pub changed: bool,
}

pub(crate) struct Prepared {
    pub op: WriteOp,
    pub kind: Kind,
}

/// How ops of a transaction Bundle find each other: the entry's own `fullUrl`, and the ids given
/// in advance to the plain creates of the bundle, so that any entry may refer to any of them.
#[derive(Clone)]
pub(crate) struct BundleLinks {
    pub full_url: Option<String>,
    pub assigned: Arc<HashMap<String, String>>,
}

/// The result of a write as the caller may see it: hidden fields removed from the version.
pub(crate) fn written(ctx: &RequestContext, kind: Kind, outcome: WriteOutcome) -> Written {
    Written {
        created: outcome.created && outcome.written && kind != Kind::Delete,
        changed: outcome.written,
        resource: outcome.resource.map(|r| access::shown(ctx, r)),
    }
}

fn reject(e: RepoError) -> BoxError {
    Box::new(e)
}

/// The resource body of a create or update: an object with a known `resourceType` that is valid.
fn check_body(resource: &Value, expected_type: Option<&str>) -> Result<String, RepoError> {
    let Some(obj) = resource.as_object() else {
        return Err(RepoError::invalid("The body must be a JSON object"));
    };
    let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
        return Err(RepoError::invalid_at(
            "Missing resourceType",
            "resourceType",
        ));
    };
    if let Some(expected) = expected_type
        && rt != expected
    {
        return Err(RepoError::invalid_at(
            format!(
                "Incorrect resource type: expected {expected}, but found {}",
                truncate(rt)
            ),
            "resourceType",
        ));
    }
    if !Definitions::global().is_resource_type(rt) {
        return Err(RepoError::invalid_at(
            format!("Unknown resource type: {}", truncate(rt)),
            "resourceType",
        ));
    }
    if let Err(issues) = validate(resource) {
        return Err(RepoError::Invalid(
            issues
                .into_iter()
                .map(|i| Issue::error(i.code.as_str(), i.message).at(i.path))
                .collect(),
        ));
    }
    Ok(rt.to_owned())
}

fn body_id(resource: &Value) -> Option<&str> {
    resource.get("id").and_then(Value::as_str)
}

/// `inherited`: the accounts of the Patients the resource refers to (see `accounts`).
pub(crate) fn prepare(
    ctx: &RequestContext,
    request: WriteRequest,
    links: Option<BundleLinks>,
    inherited: Vec<String>,
) -> Result<Prepared, RepoError> {
    let project = ctx.project.clone();
    let view = ctx.view.clone();
    let who = Who {
        author: ctx.author.clone(),
        on_behalf_of: ctx.on_behalf_of.clone(),
        accounts: Accounts::of(ctx, inherited),
    };
    let access = ctx.access.clone();
    let restriction = access.as_ref().map(|a| a.restriction());
    match request {
        WriteRequest::Create {
            mut resource,
            if_none_exist,
        } => {
            // The type check comes first: a caller learns nothing of the validation rules of a
            // type it may not write.
            if let Some(t) = resource.get("resourceType").and_then(Value::as_str)
                && Definitions::global().is_resource_type(t)
            {
                access::require_type(ctx, t, Interaction::Create)?;
            }
            let rt = check_body(&resource, None)?;
            strip_server_meta(&mut resource);
            if let Some(a) = &access {
                a.protect_fields(None, &mut resource, Interaction::Create);
            }
            let id = links
                .as_ref()
                .and_then(|l| l.full_url.as_ref().and_then(|u| l.assigned.get(u)))
                .and_then(|r| r.split_once('/').map(|(_, id)| id.to_owned()))
                .unwrap_or_else(new_id);
            let target = match &if_none_exist {
                Some(q) => Target::Search {
                    resource_type: rt.clone(),
                    clauses: conditional::clauses(&rt, q)?,
                    restriction: restriction.clone(),
                },
                None => Target::New {
                    resource_type: rt.clone(),
                    id: id.clone(),
                },
            };
            let op = WriteOp::new(target, move |lookup, state| {
                match lookup {
                    Lookup::One(existing) => {
                        link(&links, state, existing);
                        return Ok(Decision::Keep);
                    }
                    Lookup::Many(n) => {
                        return Err(reject(RepoError::PreconditionFailed(format!(
                            "If-None-Exist matched {n} resources"
                        ))));
                    }
                    Lookup::None => {}
                }
                let mut resource = resource;
                resolve_links(&mut resource, &rt, &id, state, &links)?;
                who.accounts.apply(&mut resource, None);
                let guard = Guard::new(access.as_deref(), None);
                let v = new_version(resource, &rt, &id, state, &project, &who, &guard)?;
                Ok(Decision::Write(v))
            });
            Ok(Prepared {
                op,
                kind: Kind::Create,
            })
        }
        WriteRequest::Update {
            resource_type,
            id,
            mut resource,
            if_match,
        } => {
            Repository::check_type(&resource_type)?;
            Repository::check_id(&id)?;
            access::require_type(ctx, &resource_type, Interaction::Update)?;
            check_body(&resource, Some(&resource_type))?;
            match body_id(&resource) {
                None => {
                    return Err(RepoError::invalid_at("Missing id", "id"));
                }
                Some(b) if b != id => {
                    return Err(RepoError::invalid_at(
                        format!("Incorrect ID: {} does not match the URL", truncate(b)),
                        "id",
                    ));
                }
                Some(_) => {}
            }
            strip_server_meta(&mut resource);
            let target = Target::Id {
                resource_type: resource_type.clone(),
                id: id.clone(),
            };
            let op = WriteOp::new(target, move |lookup, state| {
                let current = own(lookup, &project, &view, &resource_type, &id)?;
                check_if_match(if_match.as_deref(), current, &resource_type, &id)?;
                let before = before_update(access.as_deref(), current)?;
                update_decision(
                    resource,
                    before,
                    &resource_type,
                    &id,
                    state,
                    &links,
                    &project,
                    &who,
                    access.as_deref(),
                )
            });
            Ok(Prepared {
                op,
                kind: Kind::Update,
            })
        }
        WriteRequest::ConditionalUpdate {
            resource_type,
            query,
            mut resource,
            if_match,
        } => {
            Repository::check_type(&resource_type)?;
            access::require_type(ctx, &resource_type, Interaction::Update)?;
            check_body(&resource, Some(&resource_type))?;
            let clauses = conditional::clauses(&resource_type, &query)?;
            let given_id = body_id(&resource).map(str::to_owned);
            if let Some(g) = &given_id {
                Repository::check_id(g)?;
            }
            strip_server_meta(&mut resource);
            let target = Target::Search {
                resource_type: resource_type.clone(),
                clauses,
                restriction: restriction.clone(),
            };
            let op = WriteOp::new(target, move |lookup, state| {
                let (current, id) = match lookup {
                    Lookup::Many(n) => {
                        return Err(reject(RepoError::PreconditionFailed(format!(
                            "Conditional update matched {n} resources"
                        ))));
                    }
                    Lookup::One(c) => {
                        if given_id.as_deref().is_some_and(|g| g != c.id) {
                            return Err(reject(RepoError::invalid_at(
                                "The resource id does not match the resource found by the condition",
                                "id",
                            )));
                        }
                        (Some(c), c.id.clone())
                    }
                    Lookup::None => (None, given_id.unwrap_or_else(new_id)),
                };
                check_if_match(if_match.as_deref(), current, &resource_type, &id)?;
                let before = before_update(access.as_deref(), current)?;
                update_decision(
                    resource,
                    before,
                    &resource_type,
                    &id,
                    state,
                    &links,
                    &project,
                    &who,
                    access.as_deref(),
                )
            });
            Ok(Prepared {
                op,
                kind: Kind::Update,
            })
        }
        WriteRequest::Patch {
            resource_type,
            id,
            patch,
            if_match,
        } => {
            Repository::check_type(&resource_type)?;
            Repository::check_id(&id)?;
            access::require_type(ctx, &resource_type, Interaction::Update)?;
            let patch: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| RepoError::invalid(format!("Invalid JSON Patch: {e}")))?;
            let target = Target::Id {
                resource_type: resource_type.clone(),
                id: id.clone(),
            };
            let op = WriteOp::new(target, move |lookup, state| {
                let current = own(lookup, &project, &view, &resource_type, &id)?;
                if current.is_none_or(|c| c.deleted) {
                    return Err(reject(match current {
                        Some(_) => access::gone(access.as_deref(), &resource_type, &id),
                        None => RepoError::NotFound(format!("{resource_type}/{id} not found")),
                    }));
                }
                check_if_match(if_match.as_deref(), current, &resource_type, &id)?;
                let before = before_update(access.as_deref(), current)?;
                // The patch applies to the resource as the caller sees it: a `test` of a hidden
                // field must not tell its value (the hidden fields come back below).
                let mut resource = before.clone().unwrap_or(Value::Null);
                if let Some(a) = &access {
                    a.hide_fields(&mut resource);
                }
                json_patch::patch(&mut resource, &patch)
                    .map_err(|e| reject(RepoError::invalid(format!("JSON Patch failed: {e}"))))?;
                if resource.get("resourceType").and_then(Value::as_str)
                    != Some(resource_type.as_str())
                    || body_id(&resource) != Some(id.as_str())
                {
                    return Err(reject(RepoError::invalid(
                        "A patch cannot change the resource type or id",
                    )));
                }
                strip_server_meta(&mut resource);
                check_body(&resource, Some(&resource_type)).map_err(reject)?;
                update_decision(
                    resource,
                    before,
                    &resource_type,
                    &id,
                    state,
                    &links,
                    &project,
                    &who,
                    access.as_deref(),
                )
            });
            Ok(Prepared {
                op,
                kind: Kind::Update,
            })
        }
        WriteRequest::Delete { resource_type, id } => {
            Repository::check_type(&resource_type)?;
            Repository::check_id(&id)?;
            access::require_type(ctx, &resource_type, Interaction::Delete)?;
            let target = Target::Id {
                resource_type: resource_type.clone(),
                id: id.clone(),
            };
            let op = WriteOp::new(target, move |lookup, state| {
                match own(lookup, &project, &view, &resource_type, &id)? {
                    None => Err(reject(RepoError::NotFound(format!(
                        "{resource_type}/{id} not found"
                    )))),
                    Some(c) if c.deleted => Ok(Decision::Keep),
                    Some(c) => {
                        may_delete(access.as_deref(), c)?;
                        Ok(Decision::Write(deletion(&resource_type, &id, state)))
                    }
                }
            });
            Ok(Prepared {
                op,
                kind: Kind::Delete,
            })
        }
        WriteRequest::ConditionalDelete {
            resource_type,
            query,
        } => {
            Repository::check_type(&resource_type)?;
            access::require_type(ctx, &resource_type, Interaction::Delete)?;
            let clauses = conditional::clauses(&resource_type, &query)?;
            let target = Target::Search {
                resource_type: resource_type.clone(),
                clauses,
                restriction,
            };
            let op = WriteOp::new(target, move |lookup, state| match lookup {
                Lookup::None => Ok(Decision::Keep),
                Lookup::Many(n) => Err(reject(RepoError::PreconditionFailed(format!(
                    "Conditional delete matched {n} resources"
                )))),
                Lookup::One(c) => {
                    may_delete(access.as_deref(), c)?;
                    Ok(Decision::Write(deletion(&resource_type, &c.id, state)))
                }
            });
            Ok(Prepared {
                op,
                kind: Kind::Delete,
            })
        }
    }
}

/// The current version as the caller may see it: a resource of another project is not there.
/// Its id is taken, though, so a write to it is refused as not found rather than overwriting it;
/// one the caller reads through a project link is read-only (403, spec §1.3).
fn own<'a>(
    lookup: Lookup<'a>,
    project: &str,
    view: &ProjectView,
    resource_type: &str,
    id: &str,
) -> Result<Option<&'a StoredResource>, BoxError> {
    match lookup {
        Lookup::One(c) if c.project == project => Ok(Some(c)),
        Lookup::One(c) if view.sees(project, &c.project, resource_type) => {
            Err(reject(RepoError::Forbidden))
        }
        Lookup::One(_) => Err(reject(RepoError::NotFound(format!(
            "{resource_type}/{id} not found"
        )))),
        _ => Ok(None),
    }
}

fn check_if_match(
    expected: Option<&str>,
    current: Option<&StoredResource>,
    resource_type: &str,
    id: &str,
) -> Result<(), BoxError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match current {
        Some(c) if !c.deleted && c.version_id == expected => Ok(()),
        Some(c) => Err(reject(RepoError::PreconditionFailed(format!(
            "Version mismatch: {resource_type}/{id} is at version {}, not {}",
            c.version_id,
            truncate(expected)
        )))),
        None => Err(reject(RepoError::PreconditionFailed(format!(
            "{resource_type}/{id} does not exist, so it cannot be at version {}",
            truncate(expected)
        )))),
    }
}

/// The live current version of a resource, parsed, once the caller's policy has judged it for
/// `interaction`: it must be readable (404: the caller does not learn it exists) and allow the
/// interaction (403).
fn judged(
    access: Option<&AccessControl>,
    current: &StoredResource,
    interaction: Interaction,
) -> Result<Value, BoxError> {
    let value: Value =
        serde_json::from_str(&current.content).map_err(|e| reject(RepoError::Store(corrupt(e))))?;
    if let Some(a) = access {
        if !a.can(&value, Interaction::Read) {
            return Err(reject(RepoError::NotFound(format!(
                "{}/{} not found",
                current.resource_type, current.id
            ))));
        }
        if !a.can(&value, interaction) {
            return Err(reject(RepoError::Forbidden));
        }
    }
    Ok(value)
}

/// The current version of a resource being updated, judged for update; `None` when there is
/// none (an update that creates) or it is deleted.
fn before_update(
    access: Option<&AccessControl>,
    current: Option<&StoredResource>,
) -> Result<Option<Value>, BoxError> {
    match current.filter(|c| !c.deleted) {
        Some(c) => judged(access, c, Interaction::Update).map(Some),
        None => Ok(None),
    }
}

/// A delete of a live resource under the caller's policy: readable (404), deletable (403).
fn may_delete(access: Option<&AccessControl>, current: &StoredResource) -> Result<(), BoxError> {
    if access.is_some() {
        judged(access, current, Interaction::Delete)?;
    }
    Ok(())
}

/// Who a version is written by: `meta.author`, and `meta.onBehalfOf` when the request acted
/// for another profile.
pub(crate) struct Who {
    author: Option<String>,
    on_behalf_of: Option<String>,
    accounts: Accounts,
}

/// The after check of a write (spec §1.3 `isResourceWriteable`), run on the stamped version.
pub(crate) struct Guard<'a> {
    access: Option<&'a AccessControl>,
    before: Option<&'a Value>,
}

impl<'a> Guard<'a> {
    pub(crate) fn new(access: Option<&'a AccessControl>, before: Option<&'a Value>) -> Self {
        Guard { access, before }
    }

    fn check(&self, after: &Value) -> Result<(), BoxError> {
        let Some(a) = self.access else {
            return Ok(());
        };
        let interaction = if self.before.is_some() {
            Interaction::Update
        } else {
            Interaction::Create
        };
        if a.writable(self.before, after, interaction) {
            Ok(())
        } else {
            Err(reject(RepoError::Forbidden))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn update_decision(
    resource: Value,
    before: Option<Value>,
    resource_type: &str,
    id: &str,
    state: &mut TxState,
    links: &Option<BundleLinks>,
    project: &str,
    who: &Who,
    access: Option<&AccessControl>,
) -> Result<Decision, BoxError> {
    let mut resource = resource;
    resolve_links(&mut resource, resource_type, id, state, links)?;
    if let Some(a) = access {
        match &before {
            Some(b) => a.protect_fields(Some(b), &mut resource, Interaction::Update),
            // An update that creates is a create (spec §1.3).
            None => {
                if !a.allows_type(resource_type, Interaction::Create) {
                    return Err(reject(RepoError::Forbidden));
                }
                a.protect_fields(None, &mut resource, Interaction::Create);
            }
        }
    }
    who.accounts.apply(&mut resource, before.as_ref());
    if let Some(b) = &before
        && same_content(b, &resource)
    {
        return Ok(Decision::Keep);
    }
    let guard = Guard::new(access, before.as_ref());
    let v = new_version(resource, resource_type, id, state, project, who, &guard)?;
    Ok(Decision::Write(v))
}

/// In a transaction Bundle: points the resource's references to other entries at what they
/// became, and records what this entry becomes.
fn resolve_links(
    resource: &mut Value,
    resource_type: &str,
    id: &str,
    state: &mut TxState,
    links: &Option<BundleLinks>,
) -> Result<(), BoxError> {
    if let Some(l) = links {
        rewrite_references(resource, state, &l.assigned).map_err(reject)?;
        if let Some(u) = &l.full_url {
            state
                .references
                .insert(u.clone(), format!("{resource_type}/{id}"));
        }
    }
    Ok(())
}

fn new_version(
    mut resource: Value,
    resource_type: &str,
    id: &str,
    state: &TxState,
    project: &str,
    who: &Who,
    guard: &Guard<'_>,
) -> Result<NewVersion, BoxError> {
    let version_id = new_id();
    stamp(
        &mut resource,
        &Stamp {
            id,
            version_id: &version_id,
            last_updated: state.now,
            project,
            author: who.author.as_deref(),
            on_behalf_of: who.on_behalf_of.as_deref(),
        },
    );
    guard.check(&resource)?;
    let index = extract(&resource);
    let unique = unique_keys(&resource);
    let content =
        serde_json::to_string(&resource).map_err(|e| reject(RepoError::Store(corrupt(e))))?;
    Ok(NewVersion {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        version_id,
        last_updated: state.now,
        deleted: false,
        content,
        index,
        unique,
    })
}

pub(crate) const MEMBERSHIP_EXTERNAL_ID: &str = "ProjectMembership.externalId";

/// The keys no two live resources may share (spec §0, §7.5): a membership's external id in its
/// project, and a User's email, lower-cased, in its
/// scope (its `project`, or none for a server-scoped user). The store's migration computes the
/// same key for the Users stored before (ASCII lower case, spaces trimmed, as SQL does).
pub(crate) fn unique_keys(resource: &Value) -> Vec<String> {
    if resource["resourceType"] == "ProjectMembership" {
        // An external id names one member of a project (spec §7.5).
        return match (
            resource["project"]["reference"].as_str(),
            resource["externalId"].as_str(),
        ) {
            (Some(project), Some(external)) => {
                vec![format!("{MEMBERSHIP_EXTERNAL_ID}|{project}|{external}")]
            }
            _ => Vec::new(),
        };
    }
    if resource["resourceType"] != "User" {
        return Vec::new();
    }
    let Some(email) = resource["email"].as_str() else {
        return Vec::new();
    };
    let scope = resource["project"]["reference"].as_str().unwrap_or("");
    vec![format!(
        "User.email|{scope}|{}",
        email.trim_matches(' ').to_ascii_lowercase()
    )]
}

fn deletion(resource_type: &str, id: &str, state: &TxState) -> NewVersion {
    NewVersion {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        version_id: new_id(),
        last_updated: state.now,
        deleted: true,
        content: String::new(),
        index: Vec::new(),
        unique: Vec::new(),
    }
}

fn link(links: &Option<BundleLinks>, state: &mut TxState, existing: &StoredResource) {
    if let Some(u) = links.as_ref().and_then(|l| l.full_url.as_ref()) {
        state.references.insert(
            u.clone(),
            format!("{}/{}", existing.resource_type, existing.id),
        );
    }
}

/// Replaces `urn:uuid:` / `urn:oid:` references to entries of the same transaction Bundle by the
/// `Type/id` they became.
fn rewrite_references(
    value: &mut Value,
    state: &TxState,
    assigned: &HashMap<String, String>,
) -> Result<(), RepoError> {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "reference"
                    && let Value::String(s) = v
                    && (s.starts_with("urn:uuid:") || s.starts_with("urn:oid:"))
                {
                    let resolved = state
                        .references
                        .get(s.as_str())
                        .or_else(|| assigned.get(s.as_str()));
                    match resolved {
                        Some(r) => *s = r.clone(),
                        None => {
                            return Err(RepoError::invalid(format!(
                                "Reference {} does not match any entry of the transaction",
                                truncate(s)
                            )));
                        }
                    }
                } else {
                    rewrite_references(v, state, assigned)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for v in items {
                rewrite_references(v, state, assigned)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn corrupt(e: serde_json::Error) -> oxmed_store::StoreError {
    oxmed_store::StoreError::Corrupt(format!("stored JSON: {e}"))
}
