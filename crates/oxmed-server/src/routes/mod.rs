//! The HTTP routes, grouped by area.

mod admin;
mod auth;
mod authorize;
mod fhir;
mod health;
mod oauth2;
mod pages;
mod password;
mod registration;
mod well_known;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The OAuth2 and login endpoints, mounted at `/` and at `/api/` (spec §3.1).
fn auth_routes(state: &AppState) -> Router<AppState> {
    let authenticated = Router::new()
        .route("/oauth2/logout", get(oauth2::logout).post(oauth2::logout))
        .route(
            "/oauth2/userinfo",
            get(oauth2::userinfo).post(oauth2::userinfo),
        )
        .route("/auth/me", get(auth::me))
        .route("/auth/changepassword", post(auth::change_password))
        .route("/auth/revoke", post(auth::revoke))
        .route("/auth/mfa/status", get(auth::mfa_status))
        .route("/auth/mfa/enroll", post(auth::mfa_enroll))
        .route("/auth/mfa/disable", post(auth::mfa_disable))
        .route("/admin/projects/setpassword", post(admin::set_password))
        .route("/admin/projects/{project}", get(admin::project))
        .route("/admin/projects/{project}/invite", post(admin::invite))
        .route("/admin/projects/{project}/secrets", post(admin::secrets))
        .route("/admin/projects/{project}/sites", post(admin::sites))
        .route(
            "/admin/projects/{project}/client",
            post(admin::create_client),
        )
        .route(
            "/admin/projects/{project}/members/{membership}",
            get(admin::get_member)
                .post(admin::update_member)
                .delete(admin::delete_member),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route(
            "/oauth2/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/oauth2/token", post(oauth2::token))
        .route("/oauth2/introspect", post(oauth2::introspect))
        .route("/oauth2/revoke", post(oauth2::revoke))
        .route("/auth/login", post(auth::login))
        .route("/auth/login/{login}", get(auth::resume_login))
        .route("/auth/profile", post(auth::profile))
        .route("/auth/scope", post(auth::scope))
        .route("/auth/patient", post(auth::patient))
        .route("/auth/mfa/verify", post(auth::mfa_verify))
        .route("/auth/mfa/login-enroll", post(auth::mfa_login_enroll))
        .route("/auth/setpassword", post(password::set_password))
        .route("/auth/resetpassword", post(password::reset_password))
        .route("/auth/verifyemail", post(password::verify_email))
        .route("/auth/newuser", post(registration::new_user))
        .route("/auth/newproject", post(registration::new_project))
        .route("/auth/newpatient", post(registration::new_patient))
        .merge(authenticated)
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_size;
    Router::new()
        .route("/healthcheck", get(health::healthcheck))
        .route(
            "/.well-known/openid-configuration",
            get(well_known::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(well_known::openid_configuration),
        )
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .route(
            "/.well-known/smart-configuration",
            get(well_known::smart_configuration),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(well_known::protected_resource),
        )
        .route(
            "/setpassword/{id}/{secret}",
            get(password::set_password_page).post(password::set_password_submit),
        )
        .route(
            "/resetpassword",
            get(password::reset_page).post(password::reset_submit),
        )
        .route(
            "/verifyemail/{id}/{secret}",
            get(password::verify_email_page).post(password::verify_email_submit),
        )
        .merge(auth_routes(&state))
        .nest("/api", auth_routes(&state))
        .nest("/fhir/R4", fhir::router(&state))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::cors_layer,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // The path only: query strings can hold search values, which are health data.
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Medplum's On-Behalf-Of header (spec §11).
static ON_BEHALF_OF: header::HeaderName = header::HeaderName::from_static("x-medplum-on-behalf-of");

/// Puts the caller into the request's extensions, or answers 401 (spec §2); 403 when its IP
/// rules refuse the address or it may not act for the On-Behalf-Of target it names.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    #[cfg(feature = "bench-anonymous")]
    if !req.headers().contains_key(header::AUTHORIZATION)
        && let Some(caller) = crate::bench_anonymous::caller(&state).await
    {
        req.extensions_mut().insert(caller);
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.auth.authenticate(header).await {
        Ok(caller) => {
            // Beyond Medplum, the IP rules hold on every request (spec §9), so a token taken
            // elsewhere does not work from a blocked address.
            let addr = req
                .extensions()
                .get::<crate::middleware::ClientAddr>()
                .map(|a| a.0)
                .filter(|a| !a.is_unspecified());
            if !oxmed_auth::access::ip_allowed(&caller.access, addr) {
                return crate::error::auth_outcome(&oxmed_auth::AuthFailure::Forbidden);
            }
            let caller = match req.headers().get(&ON_BEHALF_OF) {
                None => caller,
                Some(value) => {
                    let Ok(value) = value.to_str() else {
                        return crate::error::auth_outcome(&oxmed_auth::AuthFailure::Forbidden);
                    };
                    match state.auth.on_behalf_of(&caller, value).await {
                        Ok(acting) => acting,
                        Err(e) => return crate::error::auth_outcome(&e),
                    }
                }
            };
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => crate::error::auth_outcome(&e),
    }
}

/// A request path as logs may show it: the secret of a set-password or verification link
/// (`/setpassword/<id>/<secret>`) is left out.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let secret_link = ["/setpassword/", "/verifyemail/"]
        .iter()
        .any(|p| path.starts_with(p));
    match path.rsplit_once('/') {
        Some((head, _)) if secret_link && head.matches('/').count() == 2 => {
            std::borrow::Cow::Owned(format!("{head}/…"))
        }
        _ => std::borrow::Cow::Borrowed(path),
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn link_secrets_stay_out_of_logs() {
        assert_eq!(
            loggable_path("/setpassword/abc/s3cret"),
            "/setpassword/abc/…"
        );
        assert_eq!(
            loggable_path("/verifyemail/abc/s3cret"),
            "/verifyemail/abc/…"
        );
        assert_eq!(loggable_path("/fhir/R4/Patient/1"), "/fhir/R4/Patient/1");
        assert_eq!(loggable_path("/resetpassword"), "/resetpassword");
    }
}
