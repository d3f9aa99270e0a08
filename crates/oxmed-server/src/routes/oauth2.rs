//! `/oauth2/*` (spec §3.1): the token endpoint and logout. OAuth endpoints answer with RFC 6749
//! error JSON, never with an OperationOutcome.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxmed_auth::{AuthFailure, Caller, TokenRequest};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::auth_outcome;
use crate::middleware::ClientAddr;

/// JSON that must not be cached (RFC 6749 §5.1).
fn no_store(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// A failure as RFC 6749 error JSON.
pub fn oauth_error(failure: AuthFailure) -> Response {
    match failure.into_oauth() {
        AuthFailure::OAuth {
            status,
            error,
            description,
        } => no_store(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            &json!({"error": error, "error_description": description}),
        ),
        AuthFailure::Internal(why) => {
            tracing::error!(error = %why, "token endpoint failure");
            no_store(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": "server_error", "error_description": "Internal server error"}),
            )
        }
        AuthFailure::TooMany(_) => no_store(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "invalid_request", "error_description": "Too Many Requests"}),
        ),
        AuthFailure::Unauthorized => no_store(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_client", "error_description": "Unauthorized"}),
        ),
        other => no_store(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": other.to_string()}),
        ),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| {
            ct.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

pub fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /oauth2/token`: form-encoded only (spec §3.1: otherwise a plain-text 400).
pub async fn token(
    State(state): State<AppState>,
    client_addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_form(&headers) {
        return (StatusCode::BAD_REQUEST, "Unsupported content type").into_response();
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let request = TokenRequest {
        form: &form,
        authorization: header_text(&headers, header::AUTHORIZATION),
        remote_address: client_addr.map(|Extension(a)| a.0.to_string()),
        user_agent: header_text(&headers, header::USER_AGENT).map(str::to_owned),
    };
    match state.auth.token(&request).await {
        Ok(body) => no_store(StatusCode::OK, &body),
        Err(e) => oauth_error(e),
    }
}

/// `GET|POST /oauth2/logout` (spec §10): revokes the caller's Login and clears its cookie.
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Response {
    if let Err(e) = state.auth.logout(&caller).await {
        return auth_outcome(&e);
    }
    let mut resp = crate::error::outcome_response(StatusCode::OK, &crate::error::all_ok());
    if let Some(client) = &caller.client_id
        && let Ok(v) = HeaderValue::from_str(&format!(
            "medplum-{client}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=None"
        ))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The `token` form field of a form-encoded body; `None` if the body is not a form or has none.
fn token_field(headers: &HeaderMap, body: &Bytes) -> Option<String> {
    if !is_form(headers) {
        return None;
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
}

fn missing_token(headers: &HeaderMap) -> Response {
    if is_form(headers) {
        oauth_error(AuthFailure::invalid_request("Missing token"))
    } else {
        (StatusCode::BAD_REQUEST, "Unsupported content type").into_response()
    }
}

/// `POST /oauth2/introspect` (RFC 7662).
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = token_field(&headers, &body) else {
        return missing_token(&headers);
    };
    match state.auth.introspect(&token).await {
        Ok(body) => no_store(StatusCode::OK, &body),
        Err(e) => oauth_error(e),
    }
}

/// `POST /oauth2/revoke` (RFC 7009): 200 whether or not the token was valid (§2.2).
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = token_field(&headers, &body) else {
        return missing_token(&headers);
    };
    match state.auth.revoke_token(&token).await {
        Ok(()) => no_store(StatusCode::OK, &json!({})),
        Err(e) => oauth_error(e),
    }
}

/// `GET|POST /oauth2/userinfo`.
pub async fn userinfo(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Response {
    match state.auth.userinfo(&caller).await {
        Ok(body) => no_store(StatusCode::OK, &body),
        Err(e) => auth_outcome(&e),
    }
}
