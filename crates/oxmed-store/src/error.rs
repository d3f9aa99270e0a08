/// An error raised by a `decide` closure; the repository downcasts it back to its own type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `decide` closure of an op refused the write; nothing was committed.
    #[error("{0}")]
    Rejected(BoxError),
    /// A resource with this type and id already exists (a create raced with another).
    #[error("resource {0}/{1} already exists")]
    Conflict(String, String),
    /// A unique key of the version (`NewVersion::unique`) is held by another resource.
    #[error("unique key already held: {0}")]
    Duplicate(String),
    /// The search cannot be run as asked (an unsupported condition, a sort on a parameter
    /// that cannot sort); the client's mistake, not the store's.
    #[error("{0}")]
    InvalidSearch(String),
    /// A paging cursor that this store did not make for this search.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(String),
    #[error("storage is closed")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(e.to_string())
    }
}
