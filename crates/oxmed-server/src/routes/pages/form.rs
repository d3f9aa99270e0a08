//! What the pages' forms share: the posted fields, cookies, and the CSRF check of a page's own
//! form posts (a token in a `SameSite=Strict` cookie that the form repeats, and this server's
//! origin when the browser names one).

use axum::http::{HeaderMap, header};

use crate::AppState;
use crate::routes::oauth2::header_text;

const CSRF_COOKIE: &str = "oxmed-csrf";

/// A form's fields, in order.
pub type Pairs = Vec<(String, String)>;

/// A non-empty field of a form by name.
pub fn field<'a>(pairs: &'a Pairs, name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A cookie of the request by name.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The page's CSRF token: the cookie's if it has a sane one, else a new one; and its cookie.
pub fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, String) {
    let token = cookie(headers, CSRF_COOKIE)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .or_else(|| oxmed_auth::secret::generate_secret(16).ok())
        .unwrap_or_default();
    let secure = if state.config.base_url.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    let set = format!("{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    (token, set)
}

/// Whether a page's form post is genuine: the CSRF field equals the cookie, and a browser that
/// names the origin names this server's.
pub fn genuine_post(state: &AppState, headers: &HeaderMap, pairs: &Pairs) -> bool {
    let base = state.config.base_url.trim_end_matches('/');
    let base_origin = base
        .split_once("://")
        .map(|(s, rest)| format!("{s}://{}", rest.split('/').next().unwrap_or_default()))
        .unwrap_or_default();
    if let Some(origin) = header_text(headers, header::ORIGIN)
        && origin != base_origin
    {
        return false;
    }
    match (cookie(headers, CSRF_COOKIE), field(pairs, "csrf")) {
        (Some(c), Some(f)) => !c.is_empty() && oxmed_auth::secret::constant_time_eq(c, f),
        _ => false,
    }
}
