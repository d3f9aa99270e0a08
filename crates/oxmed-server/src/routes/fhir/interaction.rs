//! Instance and type interactions: read, vread, create, update, patch, delete, and the
//! conditional forms, plus batch/transaction Bundles.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxmed_fhir::operation_outcome::all_ok;
use oxmed_repo::{Repository, RequestContext, WriteRequest, Written};

use crate::AppState;
use crate::error::ApiError;
use crate::fhir_json::{
    Format, Return, json_response, parse_body, prefer_return, resource_response,
};
use crate::query;

/// The caller's repository context, put there by the authentication middleware. A route that
/// the middleware did not cover has no caller and is refused: access fails closed.
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let mut ctx = parts
            .extensions
            .get::<std::sync::Arc<oxmed_auth::Caller>>()
            .map(|caller| caller.request_context())
            .ok_or_else(ApiError::unauthorized)?;
        // Medplum's header for responses with the server's own meta members (spec §1.3).
        ctx.extended = parts
            .headers
            .get("x-medplum")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("extended"));
        Ok(Ctx(ctx))
    }
}

fn format(raw: &Option<String>) -> Result<Format, ApiError> {
    Format::from_params(&query::parse(raw.as_deref()))
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("The request body is larger than the server accepts")
        } else {
            ApiError::bad_request(format!("Cannot read the request body: {e}"))
        }
    })
}

/// `If-Match: W/"<version>"`, unquoted.
fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| ApiError::bad_request("Invalid If-Match header"))?;
            let s = s.trim();
            let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
            if s.is_empty() {
                return Err(ApiError::bad_request("Invalid If-Match header"));
            }
            Ok(Some(s.to_owned()))
        }
    }
}

pub async fn read(
    State(state): State<AppState>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let fmt = format(&raw)?;
    let r = state.repo.read(&ctx.0, &resource_type, &id).await?;
    Ok(resource_response(StatusCode::OK, &r, &fmt, None))
}

pub async fn vread(
    State(state): State<AppState>,
    Path((resource_type, id, version_id)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let fmt = format(&raw)?;
    let r = state
        .repo
        .vread(&ctx.0, &resource_type, &id, &version_id)
        .await?;
    Ok(resource_response(StatusCode::OK, &r, &fmt, None))
}

pub async fn create(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fmt = format(&raw)?;
    Repository::check_type(&resource_type)?;
    let resource = parse_body(&headers, &body(b)?, false)?;
    if resource.get("resourceType").and_then(|v| v.as_str()) != Some(resource_type.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Incorrect resource type: expected {resource_type}"
        )));
    }
    let if_none_exist = headers
        .get("if-none-exist")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::bad_request("Invalid If-None-Exist header"))
        })
        .transpose()?;
    let w = state
        .repo
        .write(
            &ctx.0,
            WriteRequest::Create {
                resource,
                if_none_exist,
            },
        )
        .await?;
    Ok(write_response(&state, &w, &headers, &fmt))
}

pub async fn update(
    State(state): State<AppState>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fmt = format(&raw)?;
    Repository::check_type(&resource_type)?;
    let resource = parse_body(&headers, &body(b)?, false)?;
    let w = state
        .repo
        .write(
            &ctx.0,
            WriteRequest::Update {
                resource_type,
                id,
                resource,
                if_match: if_match(&headers)?,
            },
        )
        .await?;
    Ok(write_response(&state, &w, &headers, &fmt))
}

pub async fn conditional_update(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fmt = format(&raw)?;
    Repository::check_type(&resource_type)?;
    let resource = parse_body(&headers, &body(b)?, false)?;
    let w = state
        .repo
        .write(
            &ctx.0,
            WriteRequest::ConditionalUpdate {
                resource_type,
                query: raw.unwrap_or_default(),
                resource,
                if_match: if_match(&headers)?,
            },
        )
        .await?;
    Ok(write_response(&state, &w, &headers, &fmt))
}

pub async fn patch(
    State(state): State<AppState>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fmt = format(&raw)?;
    Repository::check_type(&resource_type)?;
    let patch = parse_body(&headers, &body(b)?, true)?;
    let w = state
        .repo
        .write(
            &ctx.0,
            WriteRequest::Patch {
                resource_type,
                id,
                patch,
                if_match: if_match(&headers)?,
            },
        )
        .await?;
    Ok(write_response(&state, &w, &headers, &fmt))
}

pub async fn delete(
    State(state): State<AppState>,
    Path((resource_type, id)): Path<(String, String)>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    state
        .repo
        .write(&ctx.0, WriteRequest::Delete { resource_type, id })
        .await?;
    Ok(deleted_response())
}

pub async fn conditional_delete(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    state
        .repo
        .write(
            &ctx.0,
            WriteRequest::ConditionalDelete {
                resource_type,
                query: raw.unwrap_or_default(),
            },
        )
        .await?;
    Ok(deleted_response())
}

fn deleted_response() -> Response {
    json_response(
        StatusCode::OK,
        &all_ok("Deleted"),
        &Format::from_params(&[]).unwrap_or(Format {
            pretty: false,
            summary: crate::fhir_json::Summary::False,
            elements: None,
        }),
    )
}

pub async fn bundle(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fmt = format(&raw)?;
    let bundle = parse_body(&headers, &body(b)?, false)?;
    let base = state.config.fhir_base();
    let out = state.repo.bundle(&ctx.0, bundle, &base).await?;
    Ok(json_response(StatusCode::OK, &out, &fmt))
}

/// The answer to a write: 201 with `Location` for a new resource, 200 otherwise, and the body
/// the client preferred.
fn write_response(state: &AppState, w: &Written, headers: &HeaderMap, fmt: &Format) -> Response {
    let Some(r) = &w.resource else {
        return deleted_response();
    };
    let status = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!(
        "{}/{}/{}/_history/{}",
        state.config.fhir_base(),
        r.resource_type,
        r.id,
        r.version_id
    );
    let mut resp = resource_response(status, r, fmt, Some(&location));
    match prefer_return(headers) {
        Return::Representation => resp,
        Return::Minimal => {
            let (parts, _) = resp.into_parts();
            let mut out = (parts.status, "").into_response();
            for (k, v) in parts.headers.iter() {
                if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                    out.headers_mut().insert(k.clone(), v.clone());
                }
            }
            out
        }
        Return::OperationOutcome => {
            let (_, body) = json_response(status, &all_ok("OK"), fmt).into_parts();
            *resp.body_mut() = body;
            // resource_response already set the FHIR JSON content type, which fits the outcome.
            resp
        }
    }
}
