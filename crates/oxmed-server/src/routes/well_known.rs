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

/// `/.well-known/smart-configuration` (SMART App Launch 2.2 §Conformance), also under the FHIR
/// base: only what the server does. Medplum also claims `authorize-post` without a form post
/// and `online_access`, which it does not implement.
pub async fn smart_configuration(State(state): State<AppState>) -> Response {
    let c = state.auth.config();
    json(&json!({
        "issuer": c.issuer(),
        "jwks_uri": c.url(".well-known/jwks.json"),
        "authorization_endpoint": c.url("oauth2/authorize"),
        "token_endpoint": c.token_url(),
        "introspection_endpoint": c.url("oauth2/introspect"),
        "revocation_endpoint": c.url("oauth2/revoke"),
        "userinfo_endpoint": c.url("oauth2/userinfo"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "ES256", "ES384"],
        "scopes_supported": SMART_SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": SMART_CAPABILITIES,
    }))
}

/// What `scopes_supported` says: the context scopes, and the resource scope forms in their
/// widest shape (any type, any letters, granular queries).
const SMART_SCOPES: &[&str] = &[
    "openid",
    "fhirUser",
    "profile",
    "email",
    "launch",
    "launch/patient",
    "offline_access",
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.cruds",
];

/// SMART capabilities, each backed by a test in `tests/smart.rs` or `tests/authorize.rs`.
const SMART_CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "permission-offline",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
];

/// `smart-styles.json`, named by `smart_style_url` in token responses (spec §3.4: a fixed
/// style).
pub async fn smart_styles() -> Response {
    json(&json!({
        "color_background": "#edeae3",
        "color_error": "#9e2d2d",
        "color_highlight": "#69b5ce",
        "color_modal_backdrop": "",
        "color_success": "#498e49",
        "color_text": "#303030",
        "dim_border_radius": "6px",
        "dim_font_size": "13px",
        "dim_spacing_size": "20px",
        "font_family_body": "Georgia, Times, 'Times New Roman', serif",
        "font_family_heading": "'HelveticaNeue-Light', Helvetica, Arial, 'Lucida Grande', sans-serif",
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
