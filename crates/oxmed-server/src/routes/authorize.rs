//! `GET|POST /oauth2/authorize` (spec §3.5): the browser's way in. A request is checked, an
//! existing session is offered ("continue as"), or the sign-in pages take the person through
//! password, project choice and TOTP code; the browser then goes back to the client with a code.
//!
//! Where Medplum redirects to its web app for the sign-in, oxmed renders the pages itself. A POST
//! with a `step` is one of those pages' forms: it must carry the CSRF token of its page's cookie
//! and come from this server's origin.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxmed_auth::authorize::{AuthorizeError, AuthorizeRequest, NextStep};
use oxmed_auth::{AuthFailure, LoginResult};

use super::auth::{limited_mfa_step, limited_password_login, session_cookie};
use super::oauth2::header_text;
use super::pages::form::{Pairs, cookie, csrf_token, field, genuine_post};
use super::pages::signin::{Form, message};
use crate::AppState;
use crate::middleware::ClientAddr;

fn request_of(pairs: &Pairs) -> AuthorizeRequest {
    AuthorizeRequest::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn redirect(to: &str, status: StatusCode, cookies: &[String]) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn refused(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Plain(text) => {
            let mut resp = (StatusCode::BAD_REQUEST, text).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
        AuthorizeError::Redirect(to) => redirect(&to, StatusCode::FOUND, &[]),
        AuthorizeError::Failure(f) => failed(&f),
    }
}

fn failed(f: &AuthFailure) -> Response {
    if let AuthFailure::Internal(why) = f {
        tracing::error!(error = %why, "authorize failure");
    }
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The sign-in could not be completed. Please try again.",
    )
}

fn action(state: &AppState) -> String {
    format!("{}oauth2/authorize", state.config.base_url)
}

/// `GET /oauth2/authorize`.
pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs: Pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    start(&state, &headers, &pairs, StatusCode::FOUND).await
}

/// `POST /oauth2/authorize`: an authorization request in a form, or a sign-in page's step.
pub async fn authorize_post(
    State(state): State<AppState>,
    client_addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs: Pairs = form_urlencoded::parse(&body).into_owned().collect();
    let Some(step) = field(&pairs, "step").map(str::to_owned) else {
        return start(&state, &headers, &pairs, StatusCode::SEE_OTHER).await;
    };
    if !genuine_post(&state, &headers, &pairs) {
        return message(
            StatusCode::FORBIDDEN,
            "Sign-in expired",
            "This sign-in page is no longer valid. Go back to the application and start again.",
        );
    }
    let auth = match state.auth.check_authorize(request_of(&pairs)).await {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    let (csrf, csrf_cookie) = csrf_token(&state, &headers);
    let action = action(&state);
    let form = Form {
        action: &action,
        auth: &auth,
        csrf: &csrf,
        cookies: vec![csrf_cookie],
    };
    let login = field(&pairs, "login").unwrap_or_default().to_owned();
    if matches!(
        step.as_str(),
        "profile" | "mfa" | "mfa-enroll" | "patient" | "patient-search" | "scope"
    ) && !state.auth.login_is_for(&login, auth.client.id()).await
    {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in is no longer valid. Go back to the application and start again.",
        );
    }
    let result = match step.as_str() {
        "password" => {
            let email = field(&pairs, "email").unwrap_or_default();
            let mut request = state.auth.login_request(
                &auth,
                email,
                field(&pairs, "password").unwrap_or_default(),
            );
            request.remote_address = client_addr.map(|Extension(a)| a.0.to_string());
            request.user_agent = header_text(&headers, header::USER_AGENT).map(str::to_owned);
            match limited_password_login(&state, &request).await {
                Ok(r) => r,
                Err(e) => {
                    return match page_error(&e) {
                        Some((status, text)) => form.sign_in(status, email, Some(text)),
                        None => failed(&e),
                    };
                }
            }
        }
        "profile" => {
            let profile = field(&pairs, "profile").unwrap_or_default();
            match state.auth.choose_membership(&login, profile).await {
                Ok(r) => r,
                Err(e) => return step_failed(&e),
            }
        }
        "mfa" | "mfa-enroll" => {
            let token = field(&pairs, "token").unwrap_or_default();
            let enroll = step == "mfa-enroll";
            match limited_mfa_step(&state, &login, token, enroll).await {
                Ok(r) => r,
                Err(e) => {
                    let Some((status, text)) = page_error(&e) else {
                        return failed(&e);
                    };
                    if !enroll {
                        return form.mfa(status, &login, Some(text));
                    }
                    return match state.auth.login_enroll_material(&login).await {
                        Ok((_, qr)) => form.mfa_enroll(status, &login, &qr, Some(text)),
                        Err(e) => step_failed(&e),
                    };
                }
            }
        }
        "patient-search" => {
            let name = field(&pairs, "name").unwrap_or_default().to_owned();
            return patient_page(&state, form, &login, &name, None).await;
        }
        "patient" => {
            let patient = field(&pairs, "patient").unwrap_or_default();
            match state.auth.choose_patient(&login, patient).await {
                Ok(r) => r,
                Err(AuthFailure::Invalid(text)) => {
                    return patient_page(&state, form, &login, "", Some(&text)).await;
                }
                Err(e) => return step_failed(&e),
            }
        }
        "scope" => {
            // Only words the app asked for: a forged form cannot grant more (`narrow_scope`
            // checks the resource scopes; this keeps out `offline_access` and the like).
            let asked: Vec<&str> = auth.scope.split_whitespace().collect();
            let granted: Vec<&str> = pairs
                .iter()
                .filter(|(k, v)| k == "grant" && asked.contains(&v.as_str()))
                .map(|(_, v)| v.as_str())
                .collect();
            // Without any resource scope the token would carry the member's whole access.
            if !asks_for_data(&granted.join(" ")) {
                return state_redirect(
                    &state,
                    &auth,
                    "access_denied",
                    "The user granted no access to data",
                );
            }
            match state.auth.narrow_scope(&login, &granted.join(" ")).await {
                Ok(r) => return next(&state, form, r, StatusCode::SEE_OTHER, true).await,
                Err(e) => return step_failed(&e),
            }
        }
        "consent" => {
            let session_cookie = cookie(&headers, &format!("medplum-{}", auth.client.id()));
            match state.auth.existing_session(&auth, session_cookie).await {
                Ok(Some(session)) => match state.auth.continue_session(&auth, session).await {
                    Ok(r) => r,
                    Err(e) => return step_failed(&e),
                },
                Ok(None) => return form.sign_in(StatusCode::OK, "", None),
                Err(e) => return failed(&e),
            }
        }
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in is no longer valid.",
            );
        }
    };
    next(&state, form, result, StatusCode::SEE_OTHER, false).await
}

/// A checked request with no step yet: the existing session, or the sign-in page.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    pairs: &Pairs,
    redirect_status: StatusCode,
) -> Response {
    let auth = match state.auth.check_authorize(request_of(pairs)).await {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    let (csrf, csrf_cookie) = csrf_token(state, headers);
    let action = action(state);
    let form = Form {
        action: &action,
        auth: &auth,
        csrf: &csrf,
        cookies: vec![csrf_cookie],
    };
    if auth.prompt_is("login") {
        return form.sign_in(StatusCode::OK, "", None);
    }
    let session_cookie = cookie(headers, &format!("medplum-{}", auth.client.id()));
    match state.auth.existing_session(&auth, session_cookie).await {
        Err(e) => failed(&e),
        Ok(None) if auth.prompt_is("none") => redirect(
            &state
                .auth
                .error_redirect(&auth, "login_required", "Login required"),
            redirect_status,
            &[],
        ),
        Ok(None) => form.sign_in(StatusCode::OK, "", None),
        // Without a page, no approval of SMART scopes can be asked (nothing is remembered).
        Ok(Some(_)) if auth.prompt_is("none") && asks_for_data(&auth.scope) => redirect(
            &state
                .auth
                .error_redirect(&auth, "consent_required", "Consent required"),
            redirect_status,
            &[],
        ),
        Ok(Some(session)) if auth.prompt_is("none") => {
            match state.auth.continue_session(&auth, session).await {
                // No page may be shown: a step that needs the person is an error.
                Ok(r) if !matches!(r.next_step(), NextStep::Code(_)) => redirect(
                    &state.auth.error_redirect(
                        &auth,
                        "interaction_required",
                        "Interaction required",
                    ),
                    redirect_status,
                    &[],
                ),
                Ok(r) => next(state, form, r, redirect_status, true).await,
                Err(e) => step_failed(&e),
            }
        }
        Ok(Some(session)) => match state.auth.session_email(&session).await {
            Ok(email) => form.consent(&email),
            Err(e) => failed(&e),
        },
    }
}

/// The page after a login stage, or the redirect back to the client with the code. An app
/// asking for SMART resource scopes gets them only once the person approved them (`approved`).
async fn next(
    state: &AppState,
    form: Form<'_>,
    result: LoginResult,
    status: StatusCode,
    approved: bool,
) -> Response {
    let login = result.login_id().to_owned();
    match result.next_step() {
        NextStep::Code(_) if !approved && asks_for_data(&form.auth.scope) => {
            // The code just made is never sent; approving makes another.
            form.approve_scopes(&login)
        }
        NextStep::Code(code) => {
            let mut cookies = form.cookies.clone();
            if let Some((name, value)) = &result.cookie {
                cookies.push(session_cookie(name, value));
            }
            redirect(&state.auth.code_redirect(form.auth, code), status, &cookies)
        }
        NextStep::ChooseProfile(list) => form.choose_profile(&login, list),
        NextStep::Mfa => form.mfa(StatusCode::OK, &login, None),
        NextStep::MfaEnroll { qr_code, .. } => {
            let qr = qr_code.to_owned();
            form.mfa_enroll(StatusCode::OK, &login, &qr, None)
        }
        NextStep::ChoosePatient => patient_page(state, form, &login, "", None).await,
        NextStep::Other => message(
            StatusCode::BAD_REQUEST,
            "Cannot sign in here",
            "This account has no project to sign in to.",
        ),
    }
}

/// Whether a scope holds SMART resource scopes: data the person is asked to approve.
fn asks_for_data(scope: &str) -> bool {
    scope
        .split_whitespace()
        .any(|w| oxmed_auth::scope::SmartScope::parse(w).is_some())
}

/// The standalone launch's patient picker, listing what the member may see.
async fn patient_page(
    state: &AppState,
    form: Form<'_>,
    login: &str,
    name: &str,
    error: Option<&str>,
) -> Response {
    match state.auth.launch_patients(login, Some(name)).await {
        Ok(list) => form.choose_patient(login, &list, name, error),
        Err(e) => step_failed(&e),
    }
}

/// Back to the client with an error.
fn state_redirect(
    state: &AppState,
    auth: &oxmed_auth::authorize::Authorization,
    error: &str,
    description: &str,
) -> Response {
    redirect(
        &state.auth.error_redirect(auth, error, description),
        StatusCode::SEE_OTHER,
        &[],
    )
}

/// The status and text a page shows for a failed step; `None` for a fault of the server.
fn page_error(e: &AuthFailure) -> Option<(StatusCode, &str)> {
    match e {
        AuthFailure::Invalid(text) => Some((StatusCode::BAD_REQUEST, text.as_str())),
        AuthFailure::TooMany(_) => Some((
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Please wait a few minutes and try again.",
        )),
        AuthFailure::NotFound => {
            Some((StatusCode::BAD_REQUEST, "This sign-in is no longer valid."))
        }
        AuthFailure::OAuth { description, .. } => Some((StatusCode::BAD_REQUEST, description)),
        _ => None,
    }
}

fn step_failed(e: &AuthFailure) -> Response {
    match page_error(e) {
        Some((status, text)) => message(status, "Cannot sign in", text),
        None => failed(e),
    }
}

/// For tests of the pieces that need no server.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_by_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; oxmed-csrf=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("medplum-x=y"));
        assert_eq!(cookie(&h, "oxmed-csrf"), Some("abc"));
        assert_eq!(cookie(&h, "medplum-x"), Some("y"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn fields_ignore_empty_values() {
        let pairs: Pairs = vec![("step".into(), "".into()), ("login".into(), "l".into())];
        assert_eq!(field(&pairs, "step"), None);
        assert_eq!(field(&pairs, "login"), Some("l"));
    }
}
