//! Discovery documents (spec §3.4): OpenID Connect Discovery 1.0, RFC 8414, RFC 9728 and the
//! JWKS.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;

const SCOPES: &[&str] = &["openid", "profile", "email", "phone", "address"];

fn json(body: &Value) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let c = state.auth.config();
    json(&json!({
        "issuer": c.issuer(),
        "authorization_endpoint": c.url("oauth2/authorize"),
        "token_endpoint": c.token_url(),
        "userinfo_endpoint": c.url("oauth2/userinfo"),
        "jwks_uri": c.url(".well-known/jwks.json"),
        "introspection_endpoint": c.url("oauth2/introspect"),
        "revocation_endpoint": c.url("oauth2/revoke"),
        "end_session_endpoint": c.url("oauth2/logout"),
        // Only what the server signs with; Medplum lists HS256 too, which it never uses.
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "ES256", "ES384"],
        "request_object_signing_alg_values_supported": ["none"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "authorization_response_iss_parameter_supported": true,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "email", "fhirUser", "login_id", "client_id", "profile", "scope"],
    }))
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    json(&state.auth.jwks())
}

/// `/.well-known/oauth-protected-resource[?resource=...]` (RFC 9728).
pub async fn protected_resource(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Response {
    let c = state.auth.config();
    let params: Vec<(String, String)> = crate::query::parse(raw.as_deref());
    let resources: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "resource")
        .map(|(_, v)| v.as_str())
        .collect();
    let resource = match resources.as_slice() {
        [] => c.issuer().to_owned(),
        [one] if one.starts_with(c.issuer()) => (*one).to_owned(),
        _ => return (StatusCode::BAD_REQUEST, "Invalid resource URL").into_response(),
    };
    json(&json!({
        "resource": resource,
        "issuer": c.issuer(),
        "authorization_servers": [c.issuer()],
        "scopes_supported": SCOPES,
        "bearer_methods_supported": ["header"],
        "introspection_endpoint": c.url("oauth2/introspect"),
    }))
}
