//! `GET /fhir/R4/AccessPolicy/$explain`: why a membership may or may not do an interaction on
//! a type or a resource (issue 5 point 7), for project admins and super admins.
//!
//! Parameters: `membership` (`ProjectMembership/<id>`), `interaction` (`read`, `vread`,
//! `update`, `delete`, `history`, `create`, `search`), and either `resource` (`Type/id`, a
//! stored resource) or `resourceType`. Answers a `Parameters` resource: `decision` (allow or
//! deny), `reason`, `decidedBy` (the entry's index), one `entry` per policy entry of the type
//! (whether it allows the interaction, its criteria, whether the resource matched them or why
//! they cannot match), and the `hiddenField`s and `readonlyField`s that would apply.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use oxmed_access::Interaction;
use oxmed_auth::Caller;
use oxmed_repo::Repository;

use crate::AppState;
use crate::error::{ApiError, auth_outcome};
use crate::fhir_json::{Format, json_response};
use crate::query;

pub async fn explain(
    State(state): State<AppState>,
    caller: Option<Extension<Arc<Caller>>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let Some(Extension(caller)) = caller else {
        return Err(ApiError::unauthorized());
    };
    let params = query::parse(raw.as_deref());
    let format = Format::from_params(&params)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let membership = get("membership")
        .ok_or_else(|| ApiError::bad_request("membership is required (ProjectMembership/<id>)"))?;
    let interaction = get("interaction")
        .and_then(Interaction::parse)
        .ok_or_else(|| {
            ApiError::bad_request(
                "interaction is required: read, vread, update, delete, history, create or search",
            )
        })?;
    let (resource_type, id) = match (get("resource"), get("resourceType")) {
        (Some(r), _) => {
            let (t, id) = r
                .split_once('/')
                .ok_or_else(|| ApiError::bad_request("resource must be Type/id"))?;
            Repository::check_id(id)?;
            (t.to_owned(), Some(id.to_owned()))
        }
        (None, Some(t)) => (t.to_owned(), None),
        (None, None) => {
            return Err(ApiError::bad_request(
                "resource or resourceType is required",
            ));
        }
    };
    Repository::check_type(&resource_type)?;
    match state
        .auth
        .explain(
            &caller,
            membership,
            &resource_type,
            id.as_deref(),
            interaction,
        )
        .await
    {
        Ok(e) => Ok(json_response(StatusCode::OK, &e.to_parameters(), &format)),
        Err(e) => Ok(auth_outcome(&e)),
    }
}
