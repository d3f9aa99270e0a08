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

/// The per-type part (the bulk), built once; the server's own URLs go around it per request,
/// since one process may serve under several bases (the test harness does).
static RESOURCES: OnceLock<Value> = OnceLock::new();

pub async fn metadata(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let fmt = Format::from_params(&query::parse(raw.as_deref()))?;
    let auth = state.auth.config();
    let oauth = OAuthUris {
        authorize: auth.url("oauth2/authorize"),
        token: auth.token_url(),
        introspect: auth.url("oauth2/introspect"),
        revoke: auth.url("oauth2/revoke"),
    };
    let statement = build(&state.config.fhir_base(), &oauth);
    Ok(json_response(StatusCode::OK, &statement, &fmt))
}

/// The OAuth endpoints `rest.security` names (SMART App Launch 2.2 §Conformance: the
/// `oauth-uris` extension).
struct OAuthUris {
    authorize: String,
    token: String,
    introspect: String,
    revoke: String,
}

fn security(oauth: &OAuthUris) -> Value {
    json!({
        "cors": true,
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR"}],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"}],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": oauth.authorize},
                {"url": "token", "valueUri": oauth.token},
                {"url": "introspect", "valueUri": oauth.introspect},
                {"url": "revoke", "valueUri": oauth.revoke},
            ]
        }],
    })
}

fn resources() -> Value {
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
    Value::Array(resources)
}

fn build(base: &str, oauth: &OAuthUris) -> Value {
    let resources = RESOURCES.get_or_init(resources).clone();
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
            "security": security(oauth),
            "resource": resources,
            "interaction": [
                { "code": "transaction" }, { "code": "batch" }, { "code": "history-system" }
            ],
        }],
    })
}
