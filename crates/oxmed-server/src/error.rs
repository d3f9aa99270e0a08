//! One error type for the HTTP layer, answered as an `OperationOutcome` with its status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxmed_fhir::operation_outcome::{Issue, operation_outcome};
use oxmed_repo::RepoError;

use crate::fhir_json::FHIR_JSON;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{1}")]
    Status(StatusCode, String, &'static str),
    /// A failure of authentication or of an auth endpoint, as an `OperationOutcome`.
    #[error(transparent)]
    Auth(#[from] oxmed_auth::AuthFailure),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError::Status(StatusCode::BAD_REQUEST, msg.into(), "invalid")
    }
    pub fn not_found(msg: impl Into<String>) -> ApiError {
        ApiError::Status(StatusCode::NOT_FOUND, msg.into(), "not-found")
    }
    pub fn unsupported_media_type(msg: impl Into<String>) -> ApiError {
        ApiError::Status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            msg.into(),
            "not-supported",
        )
    }
    pub fn unauthorized() -> ApiError {
        ApiError::Auth(oxmed_auth::AuthFailure::Unauthorized)
    }
    pub fn too_large(msg: impl Into<String>) -> ApiError {
        ApiError::Status(StatusCode::PAYLOAD_TOO_LARGE, msg.into(), "too-costly")
    }
}

impl From<oxmed_store::StoreError> for ApiError {
    fn from(e: oxmed_store::StoreError) -> Self {
        ApiError::Repo(RepoError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Repo(e) => {
                // The cause goes to the log only; the client learns that it failed.
                match e {
                    RepoError::Store(inner) => tracing::error!(error = %inner, "storage failure"),
                    RepoError::Internal(why) => tracing::error!(error = %why, "internal failure"),
                    _ => {}
                }
                (
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    e.outcome(),
                )
            }
            ApiError::Status(status, msg, code) => (
                *status,
                operation_outcome(&[Issue::error(code, msg.clone())]),
            ),
            ApiError::Auth(failure) => return auth_outcome(failure),
        };
        outcome_response(status, &body)
    }
}

pub fn outcome_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// Medplum's canonical outcomes for auth failures (spec conventions): `unauthorized` (401, with
/// `WWW-Authenticate`), `forbidden` (403), `not-found` (404), `too-many-requests` (429), and a
/// plain 400 whose text is the message. OAuth-shaped failures reaching a FHIR-shaped endpoint
/// keep their description.
pub fn auth_outcome(failure: &oxmed_auth::AuthFailure) -> Response {
    use oxmed_auth::AuthFailure as F;
    let canonical = |status: StatusCode, id: &str, code: &str, text: &str| {
        (
            status,
            serde_json::json!({"resourceType": "OperationOutcome", "id": id,
                "issue": [{"severity": "error", "code": code, "details": {"text": text}}]}),
        )
    };
    let (status, body) = match failure {
        F::Unauthorized => {
            let (status, body) = canonical(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "login",
                "Unauthorized",
            );
            let mut resp = outcome_response(status, &body);
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        F::Forbidden => canonical(StatusCode::FORBIDDEN, "forbidden", "forbidden", "Forbidden"),
        F::NotFound => canonical(StatusCode::NOT_FOUND, "not-found", "not-found", "Not found"),
        F::TooMany(retry) => {
            let (status, body) = canonical(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "throttled",
                "Too Many Requests",
            );
            let mut resp = outcome_response(status, &body);
            if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        F::Invalid(text) => (
            StatusCode::BAD_REQUEST,
            operation_outcome(&[Issue::error("invalid", text.clone())]),
        ),
        F::Conflict(text) => (
            StatusCode::CONFLICT,
            operation_outcome(&[Issue::error("conflict", text.clone())]),
        ),
        F::OAuth {
            status,
            description,
            ..
        } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
            operation_outcome(&[Issue::error("invalid", description.clone())]),
        ),
        F::Internal(why) => {
            tracing::error!(error = %why, "internal failure");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                operation_outcome(&[Issue::error("exception", "Internal server error")]),
            )
        }
    };
    outcome_response(status, &body)
}

/// Medplum's `allOk` outcome.
pub fn all_ok() -> serde_json::Value {
    serde_json::json!({"resourceType": "OperationOutcome", "id": "ok",
        "issue": [{"severity": "information", "code": "informational", "details": {"text": "All OK"}}]})
}
