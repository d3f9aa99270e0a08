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
                if let RepoError::Store(inner) = e {
                    // The cause goes to the log only; the client learns that it failed.
                    tracing::error!(error = %inner, "storage failure");
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
