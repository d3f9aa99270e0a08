//! Passwords set from a link (spec §6): the JSON endpoints `/auth/setpassword`,
//! `/auth/resetpassword` and `/auth/verifyemail`, and the pages the emailed links open,
//! `/setpassword/:id/:secret` and `/resetpassword`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use oxmed_auth::AuthFailure;
use oxmed_auth::email::Delivery;
use oxmed_auth::recaptcha::RecaptchaInput;
use serde::Deserialize;

use super::auth::{all_ok_or_outcome, json_response, parse};
use super::pages::form::{Pairs, csrf_token, field, genuine_post};
use super::pages::password;
use super::pages::signin::message;
use crate::AppState;
use crate::error::{all_ok, auth_outcome};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SetPasswordBody {
    id: Option<String>,
    secret: Option<String>,
    password: Option<String>,
}

/// `POST /auth/setpassword {id, secret, password}`.
pub async fn set_password(State(state): State<AppState>, body: Bytes) -> Response {
    let result = async {
        let b: SetPasswordBody = parse(&body)?;
        state
            .auth
            .set_password(
                b.id.as_deref().unwrap_or_default(),
                b.secret.as_deref().unwrap_or_default(),
                b.password.as_deref().unwrap_or_default(),
            )
            .await
    }
    .await;
    all_ok_or_outcome(result)
}

/// `POST /auth/verifyemail {id, secret}`.
pub async fn verify_email(State(state): State<AppState>, body: Bytes) -> Response {
    let result = async {
        let b: SetPasswordBody = parse(&body)?;
        state
            .auth
            .verify_email(
                b.id.as_deref().unwrap_or_default(),
                b.secret.as_deref().unwrap_or_default(),
            )
            .await
    }
    .await;
    all_ok_or_outcome(result)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResetBody {
    email: Option<String>,
    project_id: Option<String>,
    send_email: Option<bool>,
    redirect_uri: Option<String>,
    recaptcha_token: Option<String>,
    recaptcha_site_key: Option<String>,
}

/// `POST /auth/resetpassword`: all OK whether or not the account exists.
pub async fn reset_password(State(state): State<AppState>, body: Bytes) -> Response {
    let result = async {
        let b: ResetBody = parse(&body)?;
        state
            .auth
            .reset_password(
                b.email.as_deref().unwrap_or_default(),
                b.project_id.as_deref(),
                b.send_email != Some(false),
                b.redirect_uri.as_deref(),
                &RecaptchaInput {
                    token: b.recaptcha_token.as_deref(),
                    site_key: b.recaptcha_site_key.as_deref(),
                    project_id: b.project_id.as_deref(),
                    registration: false,
                },
            )
            .await
    }
    .await;
    match result {
        Ok(_) => json_response(StatusCode::OK, &all_ok()),
        Err(e) => auth_outcome(&e),
    }
}

/// Medplum's answer when an email could not be sent at once (spec §6.2): 200, all OK, with an
/// error issue; oxmed keeps trying to send it in the background.
pub fn email_not_sent() -> serde_json::Value {
    serde_json::json!({"resourceType": "OperationOutcome", "id": "ok",
        "issue": [{"severity": "error", "code": "exception",
            "details": {"text": "Could not send email. It will be tried again; see the server log."}}]})
}

/// What an invite or reset answers after handing its email over.
pub fn delivered(delivery: Option<Delivery>) -> bool {
    delivery != Some(Delivery::Retrying)
}

/// Where a link page's form posts: the link itself.
fn link_action(state: &AppState, page: &str, id: &str, secret: &str) -> String {
    format!("{}{page}/{id}/{secret}", state.config.base_url)
}

type LinkForm = fn(StatusCode, &str, &str, &[String], Option<&str>) -> Response;

/// The form of a link page (the link is checked when the form is posted).
fn link_form(state: &AppState, headers: &HeaderMap, form: LinkForm, action: &str) -> Response {
    let (csrf, cookie) = csrf_token(state, headers);
    form(StatusCode::OK, action, &csrf, &[cookie], None)
}

/// `GET /setpassword/:id/:secret`.
pub async fn set_password_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, secret)): Path<(String, String)>,
) -> Response {
    let action = link_action(&state, "setpassword", &id, &secret);
    link_form(&state, &headers, password::set_password, &action)
}

/// `POST /setpassword/:id/:secret`.
pub async fn set_password_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, secret)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let page = LinkPage {
        form: password::set_password,
        action: link_action(&state, "setpassword", &id, &secret),
        done: (
            "Password set",
            "Your password is set. You can now sign in with it.",
        ),
    };
    let auth = state.auth.clone();
    link_post(&state, &headers, &body, page, |pairs| async move {
        let new_password = field(&pairs, "password").unwrap_or_default();
        if field(&pairs, "confirm").unwrap_or_default() != new_password {
            return Err(AuthFailure::invalid("The passwords do not match."));
        }
        auth.set_password(&id, &secret, new_password).await
    })
    .await
}

/// A page that redeems a link: its form, where it posts, and what it says once done.
struct LinkPage {
    form: LinkForm,
    action: String,
    done: (&'static str, &'static str),
}

/// A link page's form post: refused without its CSRF token, then `act`; done, or the form
/// again with what went wrong.
async fn link_post<F, Fut>(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    page: LinkPage,
    act: F,
) -> Response
where
    F: FnOnce(Pairs) -> Fut,
    Fut: std::future::Future<Output = Result<(), AuthFailure>>,
{
    let pairs: Pairs = form_urlencoded::parse(body).into_owned().collect();
    let (csrf, cookie) = csrf_token(state, headers);
    let again = |status, error: &str| {
        (page.form)(
            status,
            &page.action,
            &csrf,
            std::slice::from_ref(&cookie),
            Some(error),
        )
    };
    if !genuine_post(state, headers, &pairs) {
        return again(
            StatusCode::FORBIDDEN,
            "This form has expired. Please try again.",
        );
    }
    match act(pairs).await {
        Ok(()) => message(StatusCode::OK, page.done.0, page.done.1),
        Err(AuthFailure::Invalid(text)) => again(StatusCode::BAD_REQUEST, &text),
        Err(AuthFailure::NotFound) => message(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This link is not valid. Ask for a new one.",
        ),
        Err(e) => failed(&e),
    }
}

fn failed(e: &AuthFailure) -> Response {
    match e {
        AuthFailure::TooMany(_) => message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Please wait a minute and try again.",
        ),
        other => {
            if let AuthFailure::Internal(why) = other {
                tracing::error!(error = %why, "password page failure");
            }
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Please try again later.",
            )
        }
    }
}

fn reset_action(state: &AppState) -> String {
    format!("{}resetpassword", state.config.base_url)
}

/// `GET /resetpassword`: the form asking for a reset link.
pub async fn reset_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (csrf, cookie) = csrf_token(&state, &headers);
    password::reset_request(
        StatusCode::OK,
        &reset_action(&state),
        &csrf,
        &[cookie],
        "",
        None,
    )
}

/// `POST /resetpassword`: sends the link if the account exists; the answer is the same either
/// way.
pub async fn reset_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs: Pairs = form_urlencoded::parse(&body).into_owned().collect();
    let (csrf, cookie) = csrf_token(&state, &headers);
    let email = field(&pairs, "email").unwrap_or_default();
    let again = |status, error: &str| {
        password::reset_request(
            status,
            &reset_action(&state),
            &csrf,
            std::slice::from_ref(&cookie),
            email,
            Some(error),
        )
    };
    if !genuine_post(&state, &headers, &pairs) {
        return again(
            StatusCode::FORBIDDEN,
            "This form has expired. Please try again.",
        );
    }
    // The page has no reCAPTCHA widget: with a server secret key configured, its posts are
    // refused like any other request without a token.
    let no_token = RecaptchaInput::default();
    match state
        .auth
        .reset_password(email, None, true, None, &no_token)
        .await
    {
        Ok(_) => message(
            StatusCode::OK,
            "Check your email",
            "If an account exists for this address, we sent it a link to choose a new password.",
        ),
        Err(AuthFailure::Invalid(text)) => again(StatusCode::BAD_REQUEST, &text),
        Err(e) => failed(&e),
    }
}

/// `GET /verifyemail/:id/:secret`: the page with the button.
pub async fn verify_email_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, secret)): Path<(String, String)>,
) -> Response {
    let action = link_action(&state, "verifyemail", &id, &secret);
    link_form(&state, &headers, password::verify_email, &action)
}

/// `POST /verifyemail/:id/:secret`.
pub async fn verify_email_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, secret)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let page = LinkPage {
        form: password::verify_email,
        action: link_action(&state, "verifyemail", &id, &secret),
        done: (
            "Email verified",
            "Thank you: your email address is verified.",
        ),
    };
    let auth = state.auth.clone();
    link_post(&state, &headers, &body, page, |_| async move {
        auth.verify_email(&id, &secret).await
    })
    .await
}
