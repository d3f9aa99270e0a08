//! The pages behind the links of invite and reset emails (spec §6): choosing a password, and
//! asking for a reset link. Plain HTML forms that work without JavaScript, CSRF-protected like
//! the sign-in pages.

use axum::http::StatusCode;
use axum::response::Response;

use super::{attr, page, text};

fn alert(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", text(e)))
        .unwrap_or_default()
}

/// The set-password form; it posts to the link it was opened from.
pub fn set_password(
    status: StatusCode,
    action: &str,
    csrf: &str,
    cookies: &[String],
    error: Option<&str>,
) -> Response {
    let body = format!(
        "<h1>Choose a password</h1>{}<form method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<label for=\"password\">New password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" required>\
<label for=\"confirm\">Confirm password</label>\
<input id=\"confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" required>\
<p class=\"muted\">At least 8 characters.</p>\
<button id=\"submit\" type=\"submit\">Set password</button></form>",
        alert(error),
        attr(action),
        attr(csrf)
    );
    page(status, "Choose a password", &body, &[], cookies)
}

/// The form that asks for a reset link.
pub fn reset_request(
    status: StatusCode,
    action: &str,
    csrf: &str,
    cookies: &[String],
    email: &str,
    error: Option<&str>,
) -> Response {
    let body = format!(
        "<h1>Reset your password</h1>{}<form method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<label for=\"email\">Email</label>\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{}\">\
<button id=\"submit\" type=\"submit\">Send me a link</button></form>",
        alert(error),
        attr(action),
        attr(csrf),
        attr(email)
    );
    page(status, "Reset your password", &body, &[], cookies)
}

/// The page of an email-verification link: one button, so that opening the link (which mail
/// scanners do) changes nothing by itself.
pub fn verify_email(
    status: StatusCode,
    action: &str,
    csrf: &str,
    cookies: &[String],
    error: Option<&str>,
) -> Response {
    let body = format!(
        "<h1>Verify your email</h1>{}<form method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button id=\"submit\" type=\"submit\">Verify my email address</button></form>",
        alert(error),
        attr(action),
        attr(csrf)
    );
    page(status, "Verify your email", &body, &[], cookies)
}
