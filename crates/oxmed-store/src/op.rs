use std::collections::HashMap;

use oxmed_fhir::index_value::IndexEntry;

use std::sync::Arc;

use oxmed_fhir::search::{Clause, Restriction};

use crate::{BoxError, StoredResource};

/// What a write op acts on.
pub enum Target {
    /// A new resource with a server-assigned id: no current version is looked up.
    New { resource_type: String, id: String },
    /// A resource by id (update, patch, delete, update-as-create).
    Id { resource_type: String, id: String },
    /// The live resources of a type in the op's project that satisfy every clause (conditional
    /// create, update and delete), found by the same SQL as a search.
    Search {
        resource_type: String,
        clauses: Vec<Clause>,
        /// The caller's view: a condition never finds what the caller may not see.
        restriction: Option<Arc<Restriction>>,
    },
}

/// What the `decide` closure sees of the target inside the transaction.
pub enum Lookup<'a> {
    /// Nothing there (for `Id`: never existed; a deleted resource is `One` with `deleted`).
    None,
    One(&'a StoredResource),
    /// A search matched this many live resources.
    Many(usize),
}

/// State shared by the ops of one transaction.
#[derive(Default)]
pub struct TxState {
    /// Microseconds since the epoch to stamp on the version being decided: never earlier than
    /// the current version's, so a resource's history is strictly ordered.
    pub now: i64,
    /// Free for the caller: e.g. `urn:uuid:` full URLs of a transaction bundle mapped to the
    /// `Type/id` they resolved to, filled as the ops run.
    pub references: HashMap<String, String>,
}

pub enum Decision {
    Write(NewVersion),
    /// Keep the current version (an update that changes nothing, a conditional create that found
    /// its match, a delete of something already gone).
    Keep,
}

/// A version to store. For a deletion `content` is empty and `index` is empty.
pub struct NewVersion {
    pub resource_type: String,
    pub id: String,
    pub version_id: String,
    pub last_updated: i64,
    pub deleted: bool,
    pub content: String,
    pub index: Vec<IndexEntry>,
    /// Keys no other live resource may hold at the same time (a User's email in its scope):
    /// the write is refused with `StoreError::Duplicate` if one is taken. Empty for a deletion.
    pub unique: Vec<String>,
}

pub type Decide =
    Box<dyn for<'a> FnOnce(Lookup<'a>, &mut TxState) -> Result<Decision, BoxError> + Send>;

pub struct WriteOp {
    pub target: Target,
    pub decide: Decide,
    /// The project this op writes in, when not the one the transaction was submitted for: a
    /// server-scoped User (in the server's project) and its membership of a project are one
    /// transaction, committed together or not at all.
    pub project: Option<String>,
}

impl WriteOp {
    pub fn new(
        target: Target,
        decide: impl for<'a> FnOnce(Lookup<'a>, &mut TxState) -> Result<Decision, BoxError>
        + Send
        + 'static,
    ) -> WriteOp {
        WriteOp {
            target,
            decide: Box::new(decide),
            project: None,
        }
    }

    /// The same op, writing in `project` (see [`WriteOp::project`]).
    pub fn in_project(self, project: impl Into<String>) -> WriteOp {
        WriteOp {
            project: Some(project.into()),
            ..self
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The version now current (new, or kept), if any.
    pub resource: Option<StoredResource>,
    /// Whether a new version was written by this op.
    pub written: bool,
    /// Whether the resource did not exist (or was deleted) before this op.
    pub created: bool,
}

/// The timestamp for a new version: now, truncated to milliseconds (the precision of
/// `meta.lastUpdated`), and at least a millisecond after the current version's so that history
/// order is strict even when the clock steps back.
pub(crate) fn next_timestamp(current: Option<&StoredResource>) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64 * 1000)
        .unwrap_or(0);
    match current {
        Some(c) if c.last_updated >= now => c.last_updated + 1000,
        _ => now,
    }
}

/// The current version found for an op's target, owned, so that `decide` can borrow it.
pub(crate) enum Found {
    None,
    /// The resource and its row key.
    One(i64, StoredResource),
    Many(usize),
}

impl Found {
    pub(crate) fn one(&self) -> Option<&StoredResource> {
        match self {
            Found::One(_, r) => Some(r),
            _ => None,
        }
    }
    pub(crate) fn rid(&self) -> Option<i64> {
        match self {
            Found::One(rid, _) => Some(*rid),
            _ => None,
        }
    }
    pub(crate) fn into_one(self) -> Option<StoredResource> {
        match self {
            Found::One(_, r) => Some(r),
            _ => None,
        }
    }
    pub(crate) fn lookup(&self) -> Lookup<'_> {
        match self {
            Found::None => Lookup::None,
            Found::One(_, r) => Lookup::One(r),
            Found::Many(n) => Lookup::Many(*n),
        }
    }
}
