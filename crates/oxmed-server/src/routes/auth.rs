//! `/auth/*` (spec §4): the login stages a sign-in page or a client library drives. Bodies are
//! JSON; failures are `OperationOutcome`s with Medplum's texts.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxmed_auth::{AuthFailure, Caller, LoginRequest, LoginResult};
use serde::Deserialize;
use serde_json::Value;

use super::oauth2::header_text;
use crate::AppState;
use crate::error::auth_outcome;
use crate::middleware::ClientAddr;

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn login_response(result: Result<LoginResult, AuthFailure>) -> Response {
    match result {
        Ok(r) => {
            let mut resp = json_response(StatusCode::OK, &r.body);
            if let Some((name, value)) = r.cookie
                && let Ok(v) = HeaderValue::from_str(&format!(
                    "{name}={value}; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=None"
                ))
            {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => auth_outcome(&e),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, AuthFailure> {
    serde_json::from_slice(body).map_err(|_| AuthFailure::invalid("Invalid JSON body"))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LoginBody {
    email: Option<String>,
    password: Option<String>,
    project_id: Option<String>,
    client_id: Option<String>,
    resource_type: Option<String>,
    scope: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    remember: Option<bool>,
}

/// `POST /auth/login`. Repeated wrong passwords for one account lock it with back-off, whatever
/// address they come from (the per-address limit is the rate limiter's).
pub async fn login(
    State(state): State<AppState>,
    client_addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: LoginBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let account = body.email.as_deref().unwrap_or("").trim().to_lowercase();
    if let Err(retry) = state.failures.check(&account) {
        return auth_outcome(&AuthFailure::TooMany(retry.as_secs().max(1)));
    }
    let request = LoginRequest {
        email: body.email.unwrap_or_default(),
        password: body.password.unwrap_or_default(),
        project_id: body.project_id,
        client_id: body.client_id.filter(|c| !c.is_empty()),
        resource_type: body.resource_type.filter(|c| !c.is_empty()),
        scope: body.scope,
        nonce: body.nonce,
        code_challenge: body.code_challenge.filter(|c| !c.is_empty()),
        code_challenge_method: body.code_challenge_method.filter(|c| !c.is_empty()),
        remember: body.remember.unwrap_or(false),
        origin: header_text(&headers, header::ORIGIN).map(str::to_owned),
        remote_address: client_addr.map(|Extension(a)| a.0.to_string()),
        user_agent: header_text(&headers, header::USER_AGENT).map(str::to_owned),
    };
    let result = state.auth.password_login(&request).await;
    match &result {
        Ok(_) => state.failures.record_success(&account),
        Err(AuthFailure::Invalid(m)) if m == oxmed_auth::login::WRONG_CREDENTIALS => {
            state.failures.record_failure(&account)
        }
        Err(_) => {}
    }
    login_response(result)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProfileBody {
    login: Option<String>,
    profile: Option<String>,
}

/// `POST /auth/profile {login, profile}`: the membership to sign in with.
pub async fn profile(State(state): State<AppState>, body: Bytes) -> Response {
    let body: ProfileBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let Some(login) = body.login.filter(|s| !s.is_empty()) else {
        return auth_outcome(&AuthFailure::invalid("Missing login"));
    };
    let Some(profile) = body.profile.filter(|s| !s.is_empty()) else {
        return auth_outcome(&AuthFailure::invalid("Missing profile"));
    };
    login_response(state.auth.choose_membership(&login, &profile).await)
}

/// `GET /auth/me`.
pub async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Response {
    match state.auth.me(&caller).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => auth_outcome(&e),
    }
}
