//! Storage of FHIR resources: current rows, every version in history, and search index rows, on
//! SQLite (embedded default) or PostgreSQL. Knows nothing of access policies or HTTP.
//!
//! Writes go through [`Store::execute`]: a list of [`WriteOp`]s run in one database transaction.
//! Each op names its target and carries a `decide` closure that sees the current version (read
//! inside the transaction, locked where the backend needs it) and returns the new version. Keeping
//! the decision inside the transaction is what makes `If-Match`, conditional create/update and
//! transaction bundles free of lost updates on both backends.
//!
//! Reads by search go through [`Store::search`]: the search language of `oxmed_fhir::search`,
//! the project and an optional `Restriction` (an access policy's view) compiled to SQL (see the
//! `search` module); conditional writes find their target with the same SQL.

pub mod compartments;
mod error;
mod history;
mod index_rows;
mod op;
pub mod postgres;
mod project_key;
mod projects;
mod schema;
mod search;
mod sql;
pub mod sqlite;
mod token_signature;

pub use error::{BoxError, StoreError};
pub use history::{HistoryCursor, HistoryQuery, HistoryScope};
pub use op::{Decision, Lookup, NewVersion, Target, TxState, WriteOp, WriteOutcome};
pub use projects::{LinkedProject, ProjectView};
pub use search::SearchResult;

use std::sync::Arc;

use oxmed_fhir::search::{Clause, Restriction, SearchRequest};

/// A live resource as [`Store::read_with_compartments`] answers it: with its `compartments`
/// column, `None` where unknown (see [`compartments`]).
pub type WithCompartments = (StoredResource, Option<String>);

/// One stored version of a resource. `content` is the resource's JSON exactly as it is returned
/// (with `meta.versionId` and `meta.lastUpdated`); empty for a deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub resource_type: String,
    pub id: String,
    pub project: String,
    pub version_id: String,
    /// Microseconds since the Unix epoch.
    pub last_updated: i64,
    pub deleted: bool,
    pub content: String,
}

/// The storage backend. An enum rather than a trait object: two backends, async methods, and no
/// virtual dispatch on the hot read path.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens the store named by `url`: `postgres://...` / `postgresql://...` or `sqlite://PATH`
    /// (or a bare path). Runs migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(postgres::PgStore::open(url).await?))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Ok(Store::Sqlite(sqlite::SqliteStore::open(path)?))
        }
    }

    /// A SQLite store whose reads move off the async worker after `inline_budget` (see
    /// [`sqlite::SqliteStore::open_with_inline_budget`]).
    pub fn open_sqlite_with_inline_budget(
        path: &str,
        inline_budget: std::time::Duration,
    ) -> Result<Store, StoreError> {
        Ok(Store::Sqlite(sqlite::SqliteStore::open_with_inline_budget(
            path,
            inline_budget,
        )?))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The current version of a resource (possibly a deletion marker), whatever its project; the
    /// caller decides what another project's resource means.
    pub async fn read(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        match self {
            Store::Sqlite(s) => s.read(resource_type, id),
            Store::Postgres(s) => s.read(resource_type, id).await,
        }
    }

    /// [`Store::read`] and the live resource's compartments as its row keeps them (see
    /// [`compartments`]): what an access policy whose criteria only list compartments decides
    /// a read on without parsing the content. Read in the same statement, so of the same version.
    pub async fn read_with_compartments(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<WithCompartments>, StoreError> {
        match self {
            Store::Sqlite(s) => s.read_with_compartments(resource_type, id),
            Store::Postgres(s) => s.read_with_compartments(resource_type, id).await,
        }
    }

    pub async fn read_version(
        &self,
        resource_type: &str,
        id: &str,
        version_id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        match self {
            Store::Sqlite(s) => s.read_version(resource_type, id, version_id).await,
            Store::Postgres(s) => s.read_version(resource_type, id, version_id).await,
        }
    }

    /// Runs `ops` in order in one transaction: all of them commit, or none does. The outcome of
    /// each op is returned in order; the first op that fails rolls everything back and its error
    /// is returned.
    pub async fn execute(
        &self,
        project: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        match self {
            Store::Sqlite(s) => s.execute(project, ops).await,
            Store::Postgres(s) => s.execute(project, ops).await,
        }
    }

    pub async fn history(&self, query: HistoryQuery) -> Result<Vec<StoredResource>, StoreError> {
        match self {
            Store::Sqlite(s) => s.history(query).await,
            Store::Postgres(s) => s.history(query).await,
        }
    }

    /// A page of the live resources of `project` that match `request`, and what it includes,
    /// as SQL: one statement for the page, one for the total when asked, one per level of
    /// includes. `restriction` (an access policy's view) limits every resource that takes part:
    /// matches, includes, and the resources that chains and `_has` go through; `None` is
    /// unrestricted.
    pub async fn search(
        &self,
        project: &str,
        request: &SearchRequest,
        restriction: Option<&Restriction>,
    ) -> Result<SearchResult, StoreError> {
        self.search_shared(
            project,
            &ProjectView::Own,
            request,
            restriction.map(|r| Arc::new(r.clone())),
        )
        .await
    }

    /// [`Store::search`] over `project`'s view (its linked projects, or every project), with a
    /// restriction the caller keeps (a session's policy): SQLite's worker thread shares it
    /// instead of copying it for every search.
    pub async fn search_shared(
        &self,
        project: &str,
        view: &ProjectView,
        request: &SearchRequest,
        restriction: Option<Arc<Restriction>>,
    ) -> Result<SearchResult, StoreError> {
        match self {
            Store::Sqlite(s) => s.search(project, view, request, restriction).await,
            Store::Postgres(s) => {
                s.search(project, view, request, restriction.as_deref())
                    .await
            }
        }
    }

    /// [`Store::search`] over every project at once: for the server's own lookups that cross
    /// projects (a server-wide user's memberships), never for a caller's search.
    pub async fn search_all_projects(
        &self,
        request: &SearchRequest,
        restriction: Option<&Restriction>,
    ) -> Result<SearchResult, StoreError> {
        self.search_shared(
            "",
            &ProjectView::All,
            request,
            restriction.map(|r| Arc::new(r.clone())),
        )
        .await
    }

    /// The ids of the live resources of a type in `project` that satisfy every clause (and the
    /// restriction), in creation order: whether resources match, decided by SQL.
    pub async fn matching_ids(
        &self,
        project: &str,
        resource_type: &str,
        clauses: &[Clause],
        restriction: Option<&Restriction>,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.matching_ids(project, resource_type, clauses, restriction)
                    .await
            }
            Store::Postgres(s) => {
                s.matching_ids(project, resource_type, clauses, restriction)
                    .await
            }
        }
    }

    /// The database's plan for the statement that reads the page of `request` (SQLite's
    /// `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN`), one node a line: to check that a search
    /// is answered from indexes.
    pub async fn explain_search(
        &self,
        project: &str,
        view: &ProjectView,
        request: &SearchRequest,
        restriction: Option<&Restriction>,
    ) -> Result<String, StoreError> {
        match self {
            Store::Sqlite(s) => s.explain_search(project, view, request, restriction).await,
            Store::Postgres(s) => s.explain_search(project, view, request, restriction).await,
        }
    }

    /// Flushes and closes: waits for queued writes, checkpoints SQLite's WAL.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close(),
        }
    }
}
