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

use super::interaction::Ctx;
use crate::AppState;
use crate::error::ApiError;
use crate::fhir_json::{Format, json_body_response};
use crate::query;

pub async fn search_get(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref());
    let path = resource_type.clone();
    search(state, Some(resource_type), params, None, ctx, headers, path).await
}

pub async fn search_post(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut params = query::parse(raw.as_deref());
    let form = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("The search form is not UTF-8"))?;
    params.extend(query::parse(Some(form)));
    let path = resource_type.clone();
    search(state, Some(resource_type), params, None, ctx, headers, path).await
}

pub async fn system(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref());
    search(state, None, params, None, ctx, headers, String::new()).await
}

pub async fn compartment(
    State(state): State<AppState>,
    Path((compartment_type, id, resource_type)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref());
    let path = format!("{compartment_type}/{id}/{resource_type}");
    search(
        state,
        Some(resource_type),
        params,
        Some((compartment_type, id)),
        ctx,
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
    ctx: Ctx,
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
            &ctx.0,
            resource_type.as_deref(),
            &params,
            compartment
                .as_ref()
                .map(|(t, id)| (t.as_str(), id.as_str())),
            &options,
        )
        .await?;
    let body = searchset(&base, &path, &params, &request, &result, &fmt);
    Ok(json_body_response(StatusCode::OK, body))
}

fn entry(base: &str, r: &StoredResource, mode: &str, fmt: &Format) -> Option<Value> {
    let mut v = serde_json::from_str::<Value>(&r.content).ok()?;
    fmt.shape(&mut v);
    Some(json!({
        "fullUrl": full_url(base, r),
        "resource": v,
        "search": { "mode": mode },
    }))
}

fn full_url(base: &str, r: &StoredResource) -> String {
    format!("{base}/{}/{}", r.resource_type, r.id)
}

/// The entry as `entry` would make it, written straight from the stored JSON: a search result
/// is mostly resources sent as stored, and parsing them only to print them again was a tenth of
/// a search's time.
fn write_raw_entry(out: &mut String, base: &str, r: &StoredResource, mode: &str) {
    out.push_str("{\"fullUrl\":");
    out.push_str(&Value::String(full_url(base, r)).to_string());
    out.push_str(",\"resource\":");
    out.push_str(&r.content);
    out.push_str(",\"search\":{\"mode\":\"");
    out.push_str(mode);
    out.push_str("\"}}");
}

fn searchset(
    base: &str,
    path: &str,
    params: &[(String, String)],
    request: &SearchRequest,
    result: &SearchResult,
    fmt: &Format,
) -> String {
    let raw = fmt.is_raw();
    let mut entries: Vec<Value> = Vec::new();
    if request.summary != Summary::Count && !raw {
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
    });
    if let Some(total) = result.total {
        bundle["total"] = json!(total);
    }
    if !raw {
        bundle["entry"] = Value::Array(entries);
        return fmt.to_body(&bundle);
    }
    // The bundle without `entry`, then `entry` before its closing `}`: the stored resources as
    // they are, then the other entries (the outcome).
    let mut out = bundle.to_string();
    out.pop();
    out.push_str(",\"entry\":[");
    let stored = result
        .matches
        .iter()
        .map(|r| (r, "match"))
        .chain(result.included.iter().map(|r| (r, "include")))
        .filter(|_| request.summary != Summary::Count);
    let mut first = true;
    for (r, mode) in stored {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        write_raw_entry(&mut out, base, r, mode);
    }
    for e in &entries {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        out.push_str(&e.to_string());
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxmed_fhir::search::parse::{ParseOptions, parse_search};

    fn stored(id: &str, content: Value) -> StoredResource {
        StoredResource {
            resource_type: "Patient".into(),
            id: id.into(),
            project: "p".into(),
            version_id: "1".into(),
            last_updated: 0,
            deleted: false,
            content: content.to_string(),
        }
    }

    /// The bundle spliced from stored JSON is the bundle built as a value, entry for entry.
    #[test]
    fn raw_searchset_is_the_same_bundle() {
        let params: Vec<(String, String)> = vec![
            ("name".into(), "a\"b".into()),
            ("bogus".into(), "1".into()),
            ("_total".into(), "accurate".into()),
        ];
        let opts = ParseOptions {
            default_count: 20,
            max_count: 1000,
            lenient: true,
            base_url: None,
        };
        let request = parse_search(Some("Patient"), &params, &opts).unwrap();
        assert_eq!(request.ignored.len(), 1);
        let result = SearchResult {
            matches: vec![
                stored(
                    "a",
                    json!({"resourceType": "Patient", "id": "a", "name": [{"family": "Ä\"\\n"}]}),
                ),
                stored("b", json!({"resourceType": "Patient", "id": "b"})),
            ],
            included: vec![stored("c", json!({"resourceType": "Patient", "id": "c"}))],
            total: Some(2),
            next_cursor: Some("xyz".into()),
        };
        let base = "http://h/fhir/R4";
        let raw = Format::from_params(&[]).unwrap();
        assert!(raw.is_raw());
        let pretty = Format::from_params(&[("_pretty".into(), "true".into())]).unwrap();
        let a: Value = serde_json::from_str(&searchset(
            base, "Patient", &params, &request, &result, &raw,
        ))
        .unwrap();
        let b: Value = serde_json::from_str(&searchset(
            base, "Patient", &params, &request, &result, &pretty,
        ))
        .unwrap();
        assert_eq!(a, b);
        let entries = a["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0]["resource"]["name"][0]["family"], "Ä\"\\n");
        assert_eq!(entries[2]["search"]["mode"], "include");
        assert_eq!(entries[3]["search"]["mode"], "outcome");
        assert_eq!(a["total"], 2);

        let empty = SearchResult {
            matches: vec![],
            included: vec![],
            total: None,
            next_cursor: None,
        };
        let none = parse_search(Some("Patient"), &[], &opts).unwrap();
        let a: Value =
            serde_json::from_str(&searchset(base, "Patient", &[], &none, &empty, &raw)).unwrap();
        assert_eq!(a["entry"], json!([]));
    }
}
