//! CORS (Fetch standard §3.2) for browser apps such as SMART apps served from their own origin.
//!
//! - Discovery (`/.well-known/*`, the FHIR base's `.well-known/*` and `metadata`): any origin.
//! - The token endpoints and the FHIR API: an answer is readable by an origin only when the
//!   client it is given to lists that origin in `allowedOrigin` (the bearer token's client, or
//!   the client a token request names). Preflights are answered for any origin: they let a
//!   request be sent, which any non-browser client can do anyway, while reading its answer is
//!   what the per-client check guards. No route accepts cookies cross-origin
//!   (`Access-Control-Allow-Credentials` is never sent).
//!
//! Every other path gets no CORS headers: the sign-in pages and `/auth/*` are same-origin.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// What a path's answers may be read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Public documents: everyone.
    Anyone,
    /// The origins of the client the answer is for.
    Client,
    /// Same-origin only.
    Nobody,
}

fn audience(path: &str) -> Audience {
    let path = path.strip_prefix("/api").unwrap_or(path);
    if path.starts_with("/.well-known/")
        || path.starts_with("/fhir/R4/.well-known/")
        || path == "/fhir/R4/metadata"
    {
        return Audience::Anyone;
    }
    if matches!(
        path,
        "/oauth2/token" | "/oauth2/revoke" | "/oauth2/introspect" | "/oauth2/userinfo"
    ) || path == "/fhir/R4"
        || path.starts_with("/fhir/R4/")
    {
        return Audience::Client;
    }
    Audience::Nobody
}

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, If-Match, If-None-Exist, \
    If-None-Match, If-Modified-Since, Prefer, X-Medplum-On-Behalf-Of, X-Request-Id";
const EXPOSE_HEADERS: &str = "Location, Content-Location, ETag, Last-Modified, X-Request-Id";
/// The largest token request body read to find its client (a form of a few fields).
const MAX_TOKEN_FORM: usize = 64 * 1024;

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn allow(headers: &mut HeaderMap, origin: &str) {
    set(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    set(
        headers,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        EXPOSE_HEADERS,
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

pub async fn cors_layer(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(req).await;
    };
    let audience = audience(req.uri().path());
    if audience == Audience::Nobody {
        return next.run(req).await;
    }
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        let allowed = if audience == Audience::Anyone {
            "*"
        } else {
            origin.as_str()
        };
        set(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        set(h, header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
        set(h, header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        set(h, header::ACCESS_CONTROL_MAX_AGE, "600");
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        return resp;
    }
    if audience == Audience::Anyone {
        let mut resp = next.run(req).await;
        set(resp.headers_mut(), header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        return resp;
    }
    // Only a token endpoint's form names its client; a FHIR form search is left unread.
    let token_form = req.uri().path().contains("/oauth2/");
    let (client, req) = match client_of(&state, req, token_form).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let mut resp = next.run(req).await;
    let allowed = match client {
        Some(id) => state.auth.client_allows_origin(&id, &origin).await,
        None => false,
    };
    if allowed {
        allow(resp.headers_mut(), &origin);
    } else {
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// The client a request's answer is for: the bearer token's or Basic credentials' client, or
/// the `client_id` (or assertion issuer) of a token-endpoint form. The request comes back
/// whole (its body re-made when it was read).
async fn client_of(
    state: &AppState,
    req: Request<Body>,
    token_form: bool,
) -> Result<(Option<String>, Request<Body>), Response> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(authorization) = authorization {
        if let Some(credentials) = oxmed_auth::session::strip_basic(&authorization) {
            let id = oxmed_auth::session::decode_basic(credentials).map(|(id, _)| id);
            return Ok((id, req));
        }
        let client = match state.auth.authenticate(Some(&authorization)).await {
            Ok(caller) => caller.client_id.clone(),
            Err(_) => None,
        };
        return Ok((client, req));
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !token_form || req.method() != Method::POST || !form {
        return Ok((None, req));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_TOKEN_FORM)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let mut client = None;
    for (k, v) in form_urlencoded::parse(&bytes) {
        match k.as_ref() {
            "client_id" => client = Some(v.into_owned()),
            "client_assertion" if client.is_none() => {
                client = oxmed_auth::jwt::unverified_issuer(&v);
            }
            _ => {}
        }
    }
    Ok((client, Request::from_parts(parts, Body::from(bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_their_audiences() {
        assert_eq!(
            audience("/.well-known/smart-configuration"),
            Audience::Anyone
        );
        assert_eq!(
            audience("/fhir/R4/.well-known/smart-configuration"),
            Audience::Anyone
        );
        assert_eq!(audience("/fhir/R4/metadata"), Audience::Anyone);
        assert_eq!(audience("/fhir/R4/Patient/1"), Audience::Client);
        assert_eq!(audience("/oauth2/token"), Audience::Client);
        assert_eq!(audience("/api/oauth2/token"), Audience::Client);
        assert_eq!(audience("/auth/login"), Audience::Nobody);
        assert_eq!(audience("/oauth2/authorize"), Audience::Nobody);
        assert_eq!(audience("/fhir/R4x"), Audience::Nobody);
    }
}
