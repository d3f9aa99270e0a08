//! Storage of FHIR resources: current rows, every version in history, and search index rows, on
//! SQLite (embedded default) or PostgreSQL. Knows nothing of access policies or HTTP.
//!
//! Writes go through [`Store::execute`]: a list of [`WriteOp`]s run in one database transaction.
//! Each op names its target and carries a `decide` closure that sees the current version (read
//! inside the transaction, locked where the backend needs it) and returns the new version. Keeping
//! the decision inside the transaction is what makes `If-Match`, conditional create/update and
//! transaction bundles free of lost updates on both backends.

mod error;
mod filter;
mod history;
mod index_rows;
mod op;
pub mod postgres;
mod project_key;
mod schema;
pub mod sqlite;

pub use error::{BoxError, StoreError};
pub use filter::Filter;
pub use history::{HistoryCursor, HistoryQuery, HistoryScope};
pub use op::{Decision, Lookup, NewVersion, Target, TxState, WriteOp, WriteOutcome};

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

    /// Live resources of one type in a project that match `filter`, newest first, at most
    /// `limit`. The full search language arrives with the search engine; this serves conditional
    /// interactions and simple searches.
    pub async fn search(
        &self,
        project: &str,
        resource_type: &str,
        filter: &Filter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<StoredResource>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.search(project, resource_type, filter, limit, offset)
                    .await
            }
            Store::Postgres(s) => {
                s.search(project, resource_type, filter, limit, offset)
                    .await
            }
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
