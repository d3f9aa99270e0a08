//! `GET /metadata`: a CapabilityStatement that says what this server actually does. Built once.

use std::sync::OnceLock;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use oxmed_fhir::definitions::Definitions;
use oxmed_fhir::search_parameter::SearchParameters;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::fhir_json::{Format, json_response};
use crate::query;

static STATEMENT: OnceLock<Value> = OnceLock::new();

pub async fn metadata(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let fmt = Format::from_params(&query::parse(raw.as_deref()))?;
    let statement = STATEMENT.get_or_init(|| build(&state.config.fhir_base()));
    Ok(json_response(StatusCode::OK, statement, &fmt))
}

fn build(base: &str) -> Value {
    let interactions = json!([
        { "code": "read" }, { "code": "vread" }, { "code": "update" }, { "code": "patch" },
        { "code": "delete" }, { "code": "history-instance" }, { "code": "history-type" },
        { "code": "create" }, { "code": "search-type" }
    ]);
    let params = SearchParameters::global();
    let resources: Vec<Value> = Definitions::global()
        .resource_types()
        .map(|t| {
            let search: Vec<Value> = params
                .for_type(t)
                .iter()
                // Parameters without an expression (`_text`, `_content`, ...) index nothing, and
                // the server refuses them; a truthful statement does not list them.
                .filter(|p| {
                    matches!(p.code.as_str(), "_id" | "_lastUpdated")
                        || (p.expression_for(t).is_some()
                            && p.kind != oxmed_fhir::search_parameter::SearchParamType::Special)
                })
                .map(|p| {
                    json!({
                        "name": p.code,
                        "definition": p.url,
                        "type": p.kind.as_str(),
                    })
                })
                .collect();
            json!({
                "type": t,
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchParam": search,
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-27",
        "kind": "instance",
        "software": { "name": "oxmed", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "oxmed FHIR R4 server", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [
                { "code": "transaction" }, { "code": "batch" }, { "code": "history-system" }
            ],
        }],
    })
}
