//! Why an authentication step did not succeed, in the three shapes the HTTP layer answers with:
//! RFC 6749 error JSON (`/oauth2/*`), a FHIR `OperationOutcome` (`/auth/*`, `/fhir/*`), and
//! 401 for a request without a valid credential. The texts are Medplum's (spec §3, §4), since
//! clients match on them.

use oxmed_repo::RepoError;

use crate::error::{AuthError, JwtError};

#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// `{"error": error, "error_description": description}` with `status`.
    #[error("{error}: {description}")]
    OAuth {
        status: u16,
        error: &'static str,
        description: String,
    },
    /// 400 `OperationOutcome` whose `details.text` is the message.
    #[error("{0}")]
    Invalid(String),
    /// 404 `OperationOutcome` "Not found".
    #[error("Not found")]
    NotFound,
    /// 401: no valid credential.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403.
    #[error("Forbidden")]
    Forbidden,
    /// 409 `OperationOutcome` whose `details.text` is the message.
    #[error("{0}")]
    Conflict(String),
    /// 429: too many attempts; retry after this many seconds.
    #[error("Too Many Requests")]
    TooMany(u64),
    /// A fault of the server: logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, AuthFailure>;

impl AuthFailure {
    /// `invalid_request` with Medplum's description.
    pub fn invalid_request(description: impl Into<String>) -> AuthFailure {
        AuthFailure::OAuth {
            status: 400,
            error: "invalid_request",
            description: description.into(),
        }
    }

    pub fn invalid_grant(description: impl Into<String>) -> AuthFailure {
        AuthFailure::OAuth {
            status: 400,
            error: "invalid_grant",
            description: description.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> AuthFailure {
        AuthFailure::Invalid(message.into())
    }

    /// The same failure as the token endpoint words it: `/auth/*` messages become
    /// `invalid_request` descriptions.
    pub fn into_oauth(self) -> AuthFailure {
        match self {
            AuthFailure::Invalid(m) => AuthFailure::invalid_request(m),
            AuthFailure::NotFound => AuthFailure::invalid_request("Not found"),
            other => other,
        }
    }
}

impl From<RepoError> for AuthFailure {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Invalid(issues) => AuthFailure::Invalid(
                issues
                    .first()
                    .map(|i| i.details.clone())
                    .unwrap_or_else(|| "Invalid".into()),
            ),
            RepoError::NotFound(_) | RepoError::Gone(_) => AuthFailure::NotFound,
            RepoError::Forbidden => AuthFailure::Forbidden,
            RepoError::Conflict(m) => AuthFailure::Conflict(m),
            other => AuthFailure::Internal(other.to_string()),
        }
    }
}

impl From<AuthError> for AuthFailure {
    fn from(e: AuthError) -> Self {
        AuthFailure::Internal(e.to_string())
    }
}

impl From<JwtError> for AuthFailure {
    fn from(e: JwtError) -> Self {
        AuthFailure::Internal(e.to_string())
    }
}
