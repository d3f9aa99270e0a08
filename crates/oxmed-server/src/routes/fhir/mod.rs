//! The FHIR R4 REST API (hl7.org/fhir/R4/http.html) under `/fhir/R4`.

mod capability;
mod explain;
mod history;
mod interaction;
mod project_operations;
mod search;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use oxmed_fhir::operation_outcome::{Issue, operation_outcome};

use crate::AppState;
use crate::error::outcome_response;

pub fn router(state: &AppState) -> Router<AppState> {
    let open = Router::new()
        .route("/metadata", get(capability::metadata))
        .route(
            "/.well-known/smart-configuration",
            get(super::well_known::smart_configuration),
        )
        .route(
            "/.well-known/smart-styles.json",
            get(super::well_known::smart_styles),
        );
    let authenticated = Router::new()
        .route("/", get(search::system).post(interaction::bundle))
        .route("/_history", get(history::system))
        .route("/AccessPolicy/$explain", get(explain::explain))
        .route(
            "/Project/$init",
            axum::routing::post(project_operations::init),
        )
        .route(
            "/ClientApplication/{id}/$rotate-secret",
            axum::routing::post(project_operations::rotate_secret),
        )
        .route(
            "/{resource_type}",
            get(search::search_get)
                .post(interaction::create)
                .put(interaction::conditional_update)
                .delete(interaction::conditional_delete),
        )
        .route(
            "/{resource_type}/_search",
            axum::routing::post(search::search_post),
        )
        .route("/{resource_type}/_history", get(history::type_history))
        .route(
            "/{resource_type}/{id}",
            get(interaction::read)
                .put(interaction::update)
                .patch(interaction::patch)
                .delete(interaction::delete),
        )
        .route("/{resource_type}/{id}/_history", get(history::instance))
        .route(
            "/{resource_type}/{id}/{target_type}",
            get(search::compartment),
        )
        .route(
            "/{resource_type}/{id}/_history/{version_id}",
            get(interaction::vread),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            super::authenticate,
        ));
    open.merge(authenticated)
        .fallback(unknown_route)
        .layer(middleware::from_fn(outcome_for_plain_errors))
}

async fn unknown_route() -> Response {
    outcome_response(
        StatusCode::NOT_FOUND,
        &operation_outcome(&[Issue::error("not-found", "Not found")]),
    )
}

/// Every error of the FHIR API is an `OperationOutcome`, including those produced by the HTTP
/// machinery itself (a method not allowed, a path that does not decode, a body over the limit).
async fn outcome_for_plain_errors(req: Request<Body>, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_fhir = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/fhir+json"));
    if is_fhir {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let text = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "not-supported",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::PAYLOAD_TOO_LARGE => "too-costly",
        s if s.is_server_error() => "exception",
        _ => "invalid",
    };
    let mut out = outcome_response(status, &operation_outcome(&[Issue::error(code, text)]));
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::fhir_json::FHIR_JSON),
    );
    out
}
