//! `/auth/newuser`, `/auth/newproject`, `/auth/newpatient` (spec §4.4, §13.4): registering a
//! user, then giving their Login a project of their own or a Patient membership of a project
//! open to registration.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use oxmed_auth::AuthFailure;
use oxmed_auth::registration::NewUserRequest;
use serde::Deserialize;

use super::auth::{json_response, login_response, parse};
use super::oauth2::header_text;
use crate::AppState;
use crate::error::auth_outcome;
use crate::middleware::ClientAddr;

/// `POST /auth/newuser`: `{login}`.
pub async fn new_user(
    State(state): State<AppState>,
    client_addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let request: NewUserRequest = parse(&body)?;
        state
            .auth
            .register_user(
                &request,
                client_addr.map(|Extension(a)| a.0.to_string()),
                header_text(&headers, header::USER_AGENT).map(str::to_owned),
            )
            .await
    }
    .await;
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => auth_outcome(&e),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct NewProjectBody {
    login: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
}

/// `POST /auth/newproject {login, projectName}`: `{login, code}`.
pub async fn new_project(State(state): State<AppState>, body: Bytes) -> Response {
    let body: NewProjectBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    login_response(
        state
            .auth
            .register_project(
                body.login.as_deref().unwrap_or_default(),
                body.project_name.as_deref().unwrap_or_default(),
            )
            .await,
    )
}

/// `POST /auth/newpatient {login, projectId}`: `{login, code}`.
pub async fn new_patient(State(state): State<AppState>, body: Bytes) -> Response {
    let body: NewProjectBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let Some(login) = body.login.filter(|l| !l.is_empty()) else {
        return auth_outcome(&AuthFailure::invalid("Missing login"));
    };
    login_response(
        state
            .auth
            .register_patient(&login, body.project_id.as_deref().unwrap_or_default())
            .await,
    )
}
