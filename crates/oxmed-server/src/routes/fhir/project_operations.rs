//! Medplum's operations on its own types (spec §8.6, §3.9): `POST /fhir/R4/Project/$init`, a
//! new project for a super admin, and `POST /fhir/R4/ClientApplication/:id/$rotate-secret`,
//! for the client's project admins. Both take a `Parameters` body.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use oxmed_auth::Caller;
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, auth_outcome};
use crate::fhir_json::{Format, json_response, parse_body};

/// The `Parameters` body's parameter `name`: its `valueString`, or its `valueReference`'s
/// reference.
fn parameter<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    let p = body["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?;
    p["valueString"]
        .as_str()
        .or_else(|| p["valueReference"]["reference"].as_str())
}

fn parameters(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let body = parse_body(headers, body, false)?;
    if body["resourceType"] != "Parameters" {
        return Err(ApiError::bad_request(
            "The body must be a Parameters resource",
        ));
    }
    Ok(body)
}

/// `POST /fhir/R4/Project/$init`: 201 with the new Project.
pub async fn init(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parameters(&headers, &body)?;
    let result = state
        .auth
        .init_project(
            &caller,
            parameter(&body, "name"),
            parameter(&body, "owner"),
            parameter(&body, "ownerEmail"),
        )
        .await;
    Ok(match result {
        Ok(project) => json_response(StatusCode::CREATED, &project, &Format::from_params(&[])?),
        Err(e) => auth_outcome(&e),
    })
}

/// `POST /fhir/R4/ClientApplication/:id/$rotate-secret`: the client, rotated.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parameters(&headers, &body)?;
    let result = state
        .auth
        .rotate_client_secret(
            &caller,
            &id,
            parameter(&body, "secret"),
            parameter(&body, "retiringSecret"),
        )
        .await;
    Ok(match result {
        Ok(client) => json_response(StatusCode::OK, &client, &Format::from_params(&[])?),
        Err(e) => auth_outcome(&e),
    })
}
