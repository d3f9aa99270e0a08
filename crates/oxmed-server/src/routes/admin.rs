//! `/admin/projects/:projectId/*` (spec §13.1): a project's admins (and super admins) manage its
//! members. Bodies are JSON; failures are `OperationOutcome`s with Medplum's texts.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use oxmed_auth::client_application::NewClient;
use oxmed_auth::identity::Project;
use oxmed_auth::invite::InviteRequest;
use oxmed_auth::{AuthFailure, Caller};
use serde_json::{Value, json};

use super::auth::{all_ok_or_outcome, json_response, parse};
use crate::AppState;
use crate::error::{all_ok, auth_outcome};

/// Runs `then` on the project the path names if the caller administers it (403 or 404
/// otherwise, see `Auth::administered_project`), and answers with its JSON or its failure.
async fn administered<F, Fut>(
    state: &AppState,
    caller: &Caller,
    project_id: &str,
    then: F,
) -> Response
where
    F: FnOnce(Project) -> Fut,
    Fut: Future<Output = Result<Value, AuthFailure>>,
{
    let result = match state.auth.administered_project(caller, project_id).await {
        Ok(project) => then(project).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => auth_outcome(&e),
    }
}

/// `GET /admin/projects/:projectId`: `{project: {id, name, secret, site}}`.
pub async fn project(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(project_id): Path<String>,
) -> Response {
    administered(&state, &caller, &project_id, |p| async move {
        Ok(json!({"project": {"id": p.id(), "name": p.name,
            "secret": p.rest.get("secret"), "site": p.rest.get("site")}}))
    })
    .await
}

/// `POST /admin/projects/:projectId/invite`: the membership made (or updated with `upsert`).
pub async fn invite(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    let auth = state.auth.clone();
    administered(&state, &caller, &project_id, |project| async move {
        let request: InviteRequest = parse(&body)?;
        let invited = auth.invite(&project, &request).await?;
        Ok(if super::password::delivered(invited.delivery) {
            invited.membership
        } else {
            super::password::email_not_sent()
        })
    })
    .await
}

pub async fn get_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((project_id, membership_id)): Path<(String, String)>,
) -> Response {
    let auth = state.auth.clone();
    administered(&state, &caller, &project_id, |project| async move {
        Ok(auth
            .project_membership(&project, &membership_id)
            .await?
            .to_value())
    })
    .await
}

pub async fn update_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((project_id, membership_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (auth, admin) = (state.auth.clone(), caller.clone());
    administered(&state, &caller, &project_id, |project| async move {
        let body: Value = parse(&body)?;
        auth.update_member(&admin, &project, &membership_id, body)
            .await
    })
    .await
}

pub async fn delete_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((project_id, membership_id)): Path<(String, String)>,
) -> Response {
    let auth = state.auth.clone();
    administered(&state, &caller, &project_id, |project| async move {
        auth.remove_member(&project, &membership_id).await?;
        Ok(all_ok())
    })
    .await
}

/// `POST /admin/projects/:projectId/client`: 201 with the new ClientApplication, its secret
/// included.
pub async fn create_client(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    let auth = state.auth.clone();
    let mut response = administered(&state, &caller, &project_id, |project| async move {
        let request: NewClient = parse(&body)?;
        auth.create_client(&project, &request).await
    })
    .await;
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::CREATED;
    }
    response
}

/// `POST /admin/projects/:projectId/secrets`: the array replaces `Project.secret`.
pub async fn secrets(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    replace_list(state, caller, project_id, "secret", body).await
}

/// `POST /admin/projects/:projectId/sites`: the array replaces `Project.site`.
pub async fn sites(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    replace_list(state, caller, project_id, "site", body).await
}

async fn replace_list(
    state: AppState,
    caller: Arc<Caller>,
    project_id: String,
    field: &'static str,
    body: Bytes,
) -> Response {
    let auth = state.auth.clone();
    administered(&state, &caller, &project_id, |project| async move {
        let list: Value = parse(&body)?;
        auth.replace_project_list(&project, field, list).await
    })
    .await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SetPasswordBody {
    email: Option<String>,
    password: Option<String>,
}

/// `POST /admin/projects/setpassword {email, password}`: all OK.
pub async fn set_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    body: Bytes,
) -> Response {
    let result = async {
        let b: SetPasswordBody = parse(&body)?;
        state
            .auth
            .admin_set_password(
                &caller,
                b.email.as_deref().unwrap_or_default(),
                b.password.as_deref().unwrap_or_default(),
            )
            .await
    }
    .await;
    all_ok_or_outcome(result)
}
