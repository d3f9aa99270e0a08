//! Server-rendered web pages. No script runs on them; the one stylesheet is inline and allowed
//! by its hash, so the Content-Security-Policy can forbid everything else.

pub mod form;
pub mod password;
pub mod signin;

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::Digest;

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f5f6f8;margin:0}\
main{max-width:24rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.3rem;margin:0 0 1rem}\
label{display:block;margin:.8rem 0 .3rem}input{width:100%;box-sizing:border-box;padding:.5rem;\
font-size:1rem}button{margin-top:1rem;width:100%;padding:.6rem;font-size:1rem;cursor:pointer}\
.error{background:#fdecea;color:#8a1c1c;padding:.6rem;border-radius:4px}\
.muted{color:#666;font-size:.9rem}img{display:block;margin:1rem auto;width:200px}";

/// `'sha256-…'` of [`STYLE`], for `style-src`.
static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    let digest = sha2::Sha256::digest(STYLE.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// Text for an HTML element's content.
pub fn text(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

/// Text for a double-quoted attribute value.
pub fn attr(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

/// A whole page. `form_targets` are the origins (besides this server) a form on it may end up
/// at: browsers check the redirect after a form post against `form-action` too.
pub fn page(
    status: StatusCode,
    title: &str,
    body: &str,
    form_targets: &[&str],
    cookies: &[String],
) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        text(title)
    );
    let csp = format!(
        "default-src 'none'; style-src {}; img-src data:; form-action 'self' {}; \
frame-ancestors 'none'; base-uri 'none'",
        *STYLE_HASH,
        form_targets.join(" ")
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it, browsers send `Origin: null` on the page's own form posts,
    // and the origin check of those posts needs the real one.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(text("<b>&"), "&lt;b&gt;&amp;");
        assert_eq!(attr("a\"b<"), "a&quot;b&lt;");
    }

    #[test]
    fn csp_allows_only_the_inline_style() {
        let r = page(StatusCode::OK, "t", "", &["https://app.example.com"], &[]);
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(
            csp.contains("form-action 'self' https://app.example.com;"),
            "{csp}"
        );
        assert!(!csp.contains("script-src"), "{csp}");
    }
}
