use oxmed_fhir::operation_outcome::Issue;
use oxmed_store::StoreError;

/// Why an interaction did not happen. Mapped to an HTTP status and an `OperationOutcome` once, in
/// the server.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The request or resource is malformed or invalid (400).
    #[error("invalid: {}", first_detail(.0))]
    Invalid(Vec<Issue>),
    /// The caller's access policy does not allow the interaction (403).
    #[error("forbidden")]
    Forbidden,
    /// No such resource, or one the caller may not know of (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The resource was deleted (410).
    #[error("gone: {0}")]
    Gone(String),
    /// `If-Match` did not hold, or a conditional interaction matched several resources (412).
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The write collides with another (409).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("storage: {0}")]
    Store(StoreError),
    /// A fault of the server itself (stored data it cannot read, a malformed internal query):
    /// 500, with the cause logged and never sent.
    #[error("internal: {0}")]
    Internal(String),
}

fn first_detail(issues: &[Issue]) -> &str {
    issues.first().map(|i| i.details.as_str()).unwrap_or("")
}

impl RepoError {
    pub fn invalid(details: impl Into<String>) -> RepoError {
        RepoError::Invalid(vec![Issue::error("invalid", details)])
    }

    pub fn invalid_at(details: impl Into<String>, expression: impl Into<String>) -> RepoError {
        RepoError::Invalid(vec![Issue::error("invalid", details).at(expression)])
    }
}

impl From<StoreError> for RepoError {
    fn from(e: StoreError) -> Self {
        match e {
            // A `decide` closure refused: its error is ours, boxed through the store.
            StoreError::Rejected(inner) => match inner.downcast::<RepoError>() {
                Ok(repo) => *repo,
                Err(other) => RepoError::Store(StoreError::Rejected(other)),
            },
            StoreError::Conflict(t, id) => RepoError::Conflict(format!(
                "{t}/{id} was written concurrently or belongs elsewhere"
            )),
            // See `write::unique_keys`.
            StoreError::Duplicate(key) if key.starts_with(crate::write::MEMBERSHIP_EXTERNAL_ID) => {
                RepoError::Conflict(
                    "A membership with this externalId already exists in this project".into(),
                )
            }
            StoreError::Duplicate(_) => RepoError::invalid_at("Email already registered", "email"),
            other => RepoError::Store(other),
        }
    }
}

impl RepoError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            RepoError::Invalid(_) => 400,
            RepoError::Forbidden => 403,
            RepoError::NotFound(_) => 404,
            RepoError::Gone(_) => 410,
            RepoError::PreconditionFailed(_) => 412,
            RepoError::Conflict(_) => 409,
            RepoError::Store(StoreError::Closed) => 503,
            RepoError::Store(_) | RepoError::Internal(_) => 500,
        }
    }

    /// The `OperationOutcome` this error answers with. A storage failure says nothing of its
    /// cause to the client; the server logs it.
    pub fn outcome(&self) -> serde_json::Value {
        use oxmed_fhir::operation_outcome::operation_outcome;
        let issue = match self {
            RepoError::Invalid(issues) => return operation_outcome(issues),
            RepoError::Forbidden => Issue::error("forbidden", "Forbidden"),
            RepoError::NotFound(m) => Issue::error("not-found", m.clone()),
            RepoError::Gone(m) => Issue::error("deleted", m.clone()),
            RepoError::PreconditionFailed(m) => Issue::error("conflict", m.clone()),
            RepoError::Conflict(m) => Issue::error("conflict", m.clone()),
            RepoError::Store(StoreError::Closed) => {
                Issue::error("transient", "The server is shutting down")
            }
            RepoError::Store(_) | RepoError::Internal(_) => {
                Issue::error("exception", "Internal server error")
            }
        };
        operation_outcome(&[issue])
    }
}
