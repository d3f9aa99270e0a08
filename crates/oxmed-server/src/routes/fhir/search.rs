//! Type-level search as a `searchset` Bundle. The full search language arrives with the search
//! engine; this serves the parameters the repository understands today.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::history::parse_count;
use super::interaction::context;
use crate::AppState;
use crate::error::ApiError;
use crate::fhir_json::{Format, Summary, json_response};
use crate::query;

pub async fn search_get(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    search(state, resource_type, raw.unwrap_or_default(), headers).await
}

pub async fn search_post(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("The search form is not UTF-8"))?;
    let mut q = raw.unwrap_or_default();
    if !form.is_empty() {
        if !q.is_empty() {
            q.push('&');
        }
        q.push_str(form);
    }
    search(state, resource_type, q, headers).await
}

async fn search(
    state: AppState,
    resource_type: String,
    raw: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query::parse(Some(&raw));
    let fmt = Format::from_params(&params)?;
    let count = parse_count(&params, state.config.max_count)?;
    let offset = match query::get(&params, "_offset") {
        None => 0,
        Some(o) => o
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("_offset must be a non-negative integer"))?,
    };
    let found = state
        .repo
        .search(&context(&headers), &resource_type, &raw, count, offset)
        .await?;
    let base = state.config.fhir_base();
    let entries: Vec<Value> = if fmt.summary == Summary::Count {
        Vec::new()
    } else {
        found
            .iter()
            .filter_map(|r| {
                let mut v = serde_json::from_str::<Value>(&r.content).ok()?;
                fmt.shape(&mut v);
                Some(json!({
                    "fullUrl": format!("{base}/{}/{}", r.resource_type, r.id),
                    "resource": v,
                    "search": { "mode": "match" },
                }))
            })
            .collect()
    };
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{ "relation": "self", "url": format!("{base}/{resource_type}?{raw}") }],
        "entry": entries,
    });
    Ok(json_response(StatusCode::OK, &bundle, &fmt))
}
