//! History (instance, type, system) as `history` Bundles, newest first, paged by a cursor so that
//! pages stay stable while new versions are written.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use oxmed_repo::meta::{instant, parse_instant};
use oxmed_store::{HistoryCursor, HistoryScope};
use serde_json::{Value, json};

use super::interaction::Ctx;
use crate::AppState;
use crate::error::ApiError;
use crate::fhir_json::{Format, etag, json_response};
use crate::query;

const DEFAULT_COUNT: usize = 20;

pub async fn system(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    history(state, HistoryScope::System, raw, ctx, "_history".into()).await
}

pub async fn type_history(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let path = format!("{resource_type}/_history");
    history(state, HistoryScope::Type(resource_type), raw, ctx, path).await
}

pub async fn instance(
    State(state): State<AppState>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let path = format!("{resource_type}/{id}/_history");
    history(
        state,
        HistoryScope::Instance(resource_type, id),
        raw,
        ctx,
        path,
    )
    .await
}

/// `_cursor` is `<lastUpdated micros>_<versionId>` of the last entry of the previous page.
fn parse_cursor(s: &str) -> Result<HistoryCursor, ApiError> {
    let bad = || ApiError::bad_request("Invalid _cursor");
    let (t, v) = s.split_once('_').ok_or_else(bad)?;
    let last_updated = t.parse().map_err(|_| bad())?;
    oxmed_repo::Repository::check_id(v).map_err(|_| bad())?;
    Ok(HistoryCursor {
        last_updated,
        version_id: v.to_owned(),
    })
}

pub fn parse_count(params: &[(String, String)], max: usize) -> Result<usize, ApiError> {
    match query::get(params, "_count") {
        None => Ok(DEFAULT_COUNT),
        Some(c) => c
            .parse::<usize>()
            .map(|n| n.min(max))
            .map_err(|_| ApiError::bad_request("_count must be a non-negative integer")),
    }
}

async fn history(
    state: AppState,
    scope: HistoryScope,
    raw: Option<String>,
    ctx: Ctx,
    path: String,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref());
    let fmt = Format::from_params(&params)?;
    let count = parse_count(&params, state.config.max_count)?;
    let since = match query::get(&params, "_since") {
        Some(s) => Some(parse_instant(s).ok_or_else(|| {
            ApiError::bad_request("_since must be an instant, e.g. 2024-01-01T00:00:00Z")
        })?),
        None => None,
    };
    let after = query::get(&params, "_cursor")
        .map(parse_cursor)
        .transpose()?;
    let page = state
        .repo
        .history(&ctx.0, scope, since, after, count)
        .await?;
    let base = state.config.fhir_base();
    let entries: Vec<Value> = page
        .entries
        .iter()
        .map(|r| {
            let url = format!("{}/{}", r.resource_type, r.id);
            let mut e = json!({
                "fullUrl": format!("{base}/{url}"),
                "request": {
                    "method": if r.deleted { "DELETE" } else { "PUT" },
                    "url": url,
                },
                "response": {
                    "status": if r.deleted { "204" } else { "200" },
                    "etag": etag(&r.version_id),
                    "lastModified": instant(r.last_updated),
                },
            });
            if !r.deleted
                && let Ok(mut v) = serde_json::from_str::<Value>(&r.content)
            {
                fmt.shape(&mut v);
                e["resource"] = v;
            }
            e
        })
        .collect();
    let keep: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "_cursor")
        .cloned()
        .collect();
    let link = |extra: Option<(&str, String)>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &keep {
            s.append_pair(k, v);
        }
        if let Some((k, v)) = extra {
            s.append_pair(k, &v);
        }
        let q = s.finish();
        if q.is_empty() {
            format!("{base}/{path}")
        } else {
            format!("{base}/{path}?{q}")
        }
    };
    let mut links = vec![json!({ "relation": "self", "url": link(None) })];
    if let Some(next) = &page.next {
        links.push(json!({
            "relation": "next",
            "url": link(Some(("_cursor", format!("{}_{}", next.last_updated, next.version_id)))),
        }));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "history",
        "link": links,
        "entry": entries,
    });
    Ok(json_response(StatusCode::OK, &bundle, &fmt))
}
