//! `/auth/*` (spec §4): the login stages a sign-in page or a client library drives. Bodies are
//! JSON; failures are `OperationOutcome`s with Medplum's texts.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxmed_auth::change_password::INCORRECT_PASSWORD;
use oxmed_auth::{AuthFailure, Caller, LoginRequest, LoginResult, mfa};
use serde::Deserialize;
use serde_json::Value;

use super::oauth2::header_text;
use crate::AppState;
use crate::error::auth_outcome;
use crate::middleware::ClientAddr;

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// The `Set-Cookie` value of the `medplum-<clientId>` session cookie (spec §3.5).
pub(crate) fn session_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=None")
}

pub(crate) fn login_response(result: Result<LoginResult, AuthFailure>) -> Response {
    match result {
        Ok(r) => {
            let mut resp = json_response(StatusCode::OK, &r.body);
            if let Some((name, value)) = r.cookie
                && let Ok(v) = HeaderValue::from_str(&session_cookie(&name, &value))
            {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => auth_outcome(&e),
    }
}

/// Medplum's all-OK outcome for a success, the failure's outcome otherwise.
pub(crate) fn all_ok_or_outcome(result: Result<(), AuthFailure>) -> Response {
    match result {
        Ok(()) => json_response(StatusCode::OK, &crate::error::all_ok()),
        Err(e) => auth_outcome(&e),
    }
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, AuthFailure> {
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
    launch: Option<String>,
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
    let request = LoginRequest {
        email: body.email.unwrap_or_default(),
        password: body.password.unwrap_or_default(),
        project_id: body.project_id,
        client_id: body.client_id.filter(|c| !c.is_empty()),
        resource_type: body.resource_type.filter(|c| !c.is_empty()),
        scope: body.scope,
        nonce: body.nonce,
        launch: body.launch.filter(|l| !l.is_empty()),
        code_challenge: body.code_challenge.filter(|c| !c.is_empty()),
        code_challenge_method: body.code_challenge_method.filter(|c| !c.is_empty()),
        remember: body.remember.unwrap_or(false),
        origin: header_text(&headers, header::ORIGIN).map(str::to_owned),
        remote_address: client_addr.map(|Extension(a)| a.0.to_string()),
        user_agent: header_text(&headers, header::USER_AGENT).map(str::to_owned),
        allow_no_membership: false,
    };
    login_response(limited_password_login(&state, &request).await)
}

/// A password login, refused while the account is locked; a wrong password counts against it.
pub(crate) async fn limited_password_login(
    state: &AppState,
    request: &LoginRequest,
) -> Result<LoginResult, AuthFailure> {
    let account = request.email.trim().to_lowercase();
    if let Err(retry) = state.failures.check(&account) {
        return Err(AuthFailure::TooMany(retry.as_secs().max(1)));
    }
    let result = state.auth.password_login(request).await;
    counted(
        state,
        &account,
        &result,
        &[oxmed_auth::login::WRONG_CREDENTIALS],
    );
    result
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

/// `GET /auth/login/:login`: resumes a sign-in.
pub async fn resume_login(State(state): State<AppState>, Path(login): Path<String>) -> Response {
    login_response(state.auth.resume_login(&login).await)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScopeBody {
    login: Option<String>,
    scope: Option<String>,
}

/// `POST /auth/scope {login, scope}`: narrows the scope an app asked for.
pub async fn scope(State(state): State<AppState>, body: Bytes) -> Response {
    let body: ScopeBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let Some(login) = body.login.filter(|s| !s.is_empty()) else {
        return auth_outcome(&AuthFailure::invalid("Missing login"));
    };
    let Some(scope) = body.scope.filter(|s| !s.trim().is_empty()) else {
        return auth_outcome(&AuthFailure::invalid("Missing scope"));
    };
    login_response(state.auth.narrow_scope(&login, &scope).await)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PatientBody {
    login: Option<String>,
    patient: Option<String>,
}

/// `POST /auth/patient {login, patient}`: the patient of a standalone launch
/// (`launch/patient`), for a login that answered `patientRequired` (the sign-in page offers
/// the same choice).
pub async fn patient(State(state): State<AppState>, body: Bytes) -> Response {
    let body: PatientBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let Some(login) = body.login.filter(|s| !s.is_empty()) else {
        return auth_outcome(&AuthFailure::invalid("Missing login"));
    };
    let Some(patient) = body.patient.filter(|s| !s.is_empty()) else {
        return auth_outcome(&AuthFailure::invalid("Missing patient"));
    };
    let patient = patient.strip_prefix("Patient/").unwrap_or(&patient);
    login_response(state.auth.choose_patient(&login, patient).await)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ChangePasswordBody {
    old_password: Option<String>,
    new_password: Option<String>,
}

/// `POST /auth/changepassword`. Wrong old passwords count against the account, as at sign-in.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    body: Bytes,
) -> Response {
    let body: ChangePasswordBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let account = format!("password:{}", caller.user.text());
    let result = match state.failures.check(&account) {
        Err(retry) => Err(AuthFailure::TooMany(retry.as_secs().max(1))),
        Ok(()) => {
            state
                .auth
                .change_password(
                    &caller,
                    body.old_password.as_deref().unwrap_or_default(),
                    body.new_password.as_deref().unwrap_or_default(),
                )
                .await
        }
    };
    counted(&state, &account, &result, &[INCORRECT_PASSWORD]);
    ok_outcome(result)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RevokeBody {
    login_id: Option<String>,
}

/// `POST /auth/revoke {loginId}`: ends another session of the caller's.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    body: Bytes,
) -> Response {
    let body: RevokeBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let login = body.login_id.unwrap_or_default();
    ok_outcome(state.auth.revoke_session(&caller, &login).await)
}

/// `GET /auth/mfa/status`.
pub async fn mfa_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Response {
    match state.auth.mfa_status(&caller).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => auth_outcome(&e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenBody {
    login: Option<String>,
    token: Option<String>,
}

/// `POST /auth/mfa/enroll {token}` and `POST /auth/mfa/disable {token}`.
pub async fn mfa_enroll(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    body: Bytes,
) -> Response {
    mfa_change(state, caller, body, true).await
}

pub async fn mfa_disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    body: Bytes,
) -> Response {
    mfa_change(state, caller, body, false).await
}

async fn mfa_change(state: AppState, caller: Arc<Caller>, body: Bytes, enroll: bool) -> Response {
    let body: TokenBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let token = body.token.unwrap_or_default();
    let account = format!("mfa:{}", caller.user.text());
    let result = match state.failures.check(&account) {
        Err(retry) => Err(AuthFailure::TooMany(retry.as_secs().max(1))),
        Ok(()) if enroll => state.auth.mfa_enroll(&caller, &token).await,
        Ok(()) => state.auth.mfa_disable(&caller, &token).await,
    };
    counted(&state, &account, &result, &[mfa::INVALID_TOKEN]);
    ok_outcome(result)
}

/// `POST /auth/mfa/verify {login, token}` and `POST /auth/mfa/login-enroll {login, token}`:
/// wrong codes count against the user, whichever of their logins they come through.
pub async fn mfa_verify(State(state): State<AppState>, body: Bytes) -> Response {
    mfa_login_step(state, body, false).await
}

pub async fn mfa_login_enroll(State(state): State<AppState>, body: Bytes) -> Response {
    mfa_login_step(state, body, true).await
}

async fn mfa_login_step(state: AppState, body: Bytes, enroll: bool) -> Response {
    let body: TokenBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return auth_outcome(&e),
    };
    let Some(login) = body.login.filter(|s| !s.is_empty()) else {
        return auth_outcome(&AuthFailure::invalid("Missing login"));
    };
    let token = body.token.unwrap_or_default();
    login_response(limited_mfa_step(&state, &login, &token, enroll).await)
}

/// `/auth/mfa/verify` or `/auth/mfa/login-enroll`, refused while the user's second factor is
/// locked; a wrong code counts against the user.
pub(crate) async fn limited_mfa_step(
    state: &AppState,
    login: &str,
    token: &str,
    enroll: bool,
) -> Result<LoginResult, AuthFailure> {
    let Some(user) = state.auth.login_account(login).await else {
        return Err(AuthFailure::NotFound);
    };
    let account = format!("mfa:{user}");
    if let Err(retry) = state.failures.check(&account) {
        return Err(AuthFailure::TooMany(retry.as_secs().max(1)));
    }
    let result = if enroll {
        state.auth.mfa_login_enroll(login, token).await
    } else {
        state.auth.mfa_verify(login, token).await
    };
    counted(state, &account, &result, &[mfa::INVALID_MFA_TOKEN]);
    result
}

/// Counts a wrong secret against `account`, and clears the count on success.
fn counted<T>(state: &AppState, account: &str, result: &Result<T, AuthFailure>, wrong: &[&str]) {
    match result {
        Ok(_) => state.failures.record_success(account),
        Err(AuthFailure::Invalid(m)) if wrong.contains(&m.as_str()) => {
            state.failures.record_failure(account)
        }
        Err(_) => {}
    }
}

/// 200 `allOk`, or the failure.
fn ok_outcome(result: Result<(), AuthFailure>) -> Response {
    match result {
        Ok(()) => json_response(StatusCode::OK, &crate::error::all_ok()),
        Err(e) => auth_outcome(&e),
    }
}
