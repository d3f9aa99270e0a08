//! Search as `searchset` Bundles: type level (`GET|POST [base]/Type?...`), system level
//! (`GET [base]?_type=...`) and compartment (`GET [base]/Patient/123/Observation`).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use oxmed_fhir::operation_outcome::{Issue, Severity, operation_outcome};
use oxmed_fhir::search::{SearchRequest, Summary};
use oxmed_repo::SearchOptions;
use oxmed_store::{SearchResult, StoredResource};
use serde_json::{Value, json};

use super::interaction::context;
use crate::AppState;
use crate::error::ApiError;
use crate::fhir_json::{Format, json_response};
use crate::query;

pub async fn search_get(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref());
    let path = resource_type.clone();
    search(state, Some(resource_type), params, None, headers, path).await
}

pub async fn search_post(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut params = query::parse(raw.as_deref());
    let form = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("The search form is not UTF-8"))?;
    params.extend(query::parse(Some(form)));
    let path = resource_type.clone();
    search(state, Some(resource_type), params, None, headers, path).await
}

pub async fn system(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref());
    search(state, None, params, None, headers, String::new()).await
}

pub async fn compartment(
    State(state): State<AppState>,
    Path((compartment_type, id, resource_type)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref());
    let path = format!("{compartment_type}/{id}/{resource_type}");
    search(
        state,
        Some(resource_type),
        params,
        Some((compartment_type, id)),
        headers,
        path,
    )
    .await
}

fn lenient(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split([',', ';']).any(|p| p.trim() == "handling=lenient"))
    })
}

async fn search(
    state: AppState,
    resource_type: Option<String>,
    params: Vec<(String, String)>,
    compartment: Option<(String, String)>,
    headers: HeaderMap,
    path: String,
) -> Result<Response, ApiError> {
    let fmt = Format::from_params(&params)?;
    let base = state.config.fhir_base();
    let options = SearchOptions {
        base_url: base.clone(),
        lenient: lenient(&headers),
        max_count: state.config.max_count,
    };
    let (request, result) = state
        .repo
        .search(
            &context(&headers),
            resource_type.as_deref(),
            &params,
            compartment
                .as_ref()
                .map(|(t, id)| (t.as_str(), id.as_str())),
            &options,
        )
        .await?;
    let bundle = searchset(&base, &path, &params, &request, &result, &fmt);
    Ok(json_response(StatusCode::OK, &bundle, &fmt))
}

fn entry(base: &str, r: &StoredResource, mode: &str, fmt: &Format) -> Option<Value> {
    let mut v = serde_json::from_str::<Value>(&r.content).ok()?;
    fmt.shape(&mut v);
    Some(json!({
        "fullUrl": format!("{base}/{}/{}", r.resource_type, r.id),
        "resource": v,
        "search": { "mode": mode },
    }))
}

fn searchset(
    base: &str,
    path: &str,
    params: &[(String, String)],
    request: &SearchRequest,
    result: &SearchResult,
    fmt: &Format,
) -> Value {
    let mut entries: Vec<Value> = Vec::new();
    if request.summary != Summary::Count {
        entries.extend(
            result
                .matches
                .iter()
                .filter_map(|r| entry(base, r, "match", fmt)),
        );
        entries.extend(
            result
                .included
                .iter()
                .filter_map(|r| entry(base, r, "include", fmt)),
        );
    }
    if !request.ignored.is_empty() {
        let issues: Vec<Issue> = request
            .ignored
            .iter()
            .map(|why| Issue {
                severity: Severity::Warning,
                code: "not-supported",
                details: why.clone(),
                expression: Vec::new(),
            })
            .collect();
        entries.push(json!({
            "resource": operation_outcome(&issues),
            "search": { "mode": "outcome" },
        }));
    }
    let url = |extra: Option<(&str, &str)>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            if k != "_cursor" && k != "_offset" {
                s.append_pair(k, v);
            }
        }
        if let Some((k, v)) = extra {
            s.append_pair(k, v);
        }
        let q = s.finish();
        let path = if path.is_empty() {
            String::new()
        } else {
            format!("/{path}")
        };
        if q.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{q}")
        }
    };
    let mut links = vec![json!({ "relation": "self", "url": url(None) })];
    if let Some(next) = &result.next_cursor {
        links.push(json!({ "relation": "next", "url": url(Some(("_cursor", next))) }));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    if let Some(total) = result.total {
        bundle["total"] = json!(total);
    }
    bundle
}
