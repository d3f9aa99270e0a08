//! The sign-in pages of `/oauth2/authorize`: email and password, the project choice, the TOTP
//! code (or enrolling an authenticator), and "continue as" for an existing session. Every form
//! carries the authorization request in hidden fields, so the server keeps no state between the
//! steps, and a CSRF token that must equal the page's cookie.

use axum::http::StatusCode;
use axum::response::Response;
use oxmed_auth::authorize::Authorization;
use serde_json::Value;

use super::{attr, page, text};

/// Where the forms post, and what they carry besides the user's input.
pub struct Form<'a> {
    pub action: &'a str,
    pub auth: &'a Authorization,
    pub csrf: &'a str,
    /// The `Set-Cookie` of the CSRF token (and any other cookie of the answer).
    pub cookies: Vec<String>,
}

impl Form<'_> {
    fn hidden(&self, step: &str, login: Option<&str>) -> String {
        let mut out = String::new();
        for (k, v) in self.auth.request.pairs() {
            out.push_str(&format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                attr(v)
            ));
        }
        out.push_str(&format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<input type=\"hidden\" name=\"step\" value=\"{step}\">",
            attr(self.csrf)
        ));
        if let Some(login) = login {
            out.push_str(&format!(
                "<input type=\"hidden\" name=\"login\" value=\"{}\">",
                attr(login)
            ));
        }
        out
    }

    fn open(&self, step: &str, login: Option<&str>) -> String {
        format!(
            "<form method=\"post\" action=\"{}\">{}",
            attr(self.action),
            self.hidden(step, login)
        )
    }

    fn render(self, status: StatusCode, title: &str, body: &str) -> Response {
        let origin = url_origin(&self.auth.redirect_uri);
        let targets: Vec<&str> = origin.iter().map(String::as_str).collect();
        page(status, title, body, &targets, &self.cookies)
    }

    fn heading(&self, error: Option<&str>) -> String {
        let mut out = format!("<h1>Sign in to {}</h1>", text(self.auth.client_name()));
        if let Some(e) = error {
            out.push_str(&format!(
                "<p class=\"error\" role=\"alert\">{}</p>",
                text(e)
            ));
        }
        out
    }

    pub fn sign_in(self, status: StatusCode, email: &str, error: Option<&str>) -> Response {
        let body = format!(
            "{}{}<label for=\"email\">Email</label>\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{}\">\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button id=\"submit\" type=\"submit\">Sign in</button></form>",
            self.heading(error),
            self.open("password", None),
            attr(email)
        );
        self.render(status, "Sign in", &body)
    }

    pub fn choose_profile(self, login: &str, memberships: &[Value]) -> Response {
        let mut buttons = String::new();
        for m in memberships {
            let id = m["id"].as_str().unwrap_or_default();
            let project = &m["project"];
            let name = project["display"]
                .as_str()
                .or_else(|| project["reference"].as_str())
                .unwrap_or(id);
            let profile = m["profile"]["display"]
                .as_str()
                .or_else(|| m["profile"]["reference"].as_str())
                .unwrap_or_default();
            buttons.push_str(&format!(
                "<button type=\"submit\" name=\"profile\" value=\"{}\">{} <span class=\"muted\">{}</span></button>",
                attr(id),
                text(name),
                text(profile)
            ));
        }
        let body = format!(
            "{}<p>Choose a project</p>{}{buttons}</form>",
            self.heading(None),
            self.open("profile", Some(login))
        );
        self.render(StatusCode::OK, "Choose a project", &body)
    }

    pub fn mfa(self, status: StatusCode, login: &str, error: Option<&str>) -> Response {
        let body = format!(
            "{}{}<label for=\"token\">Code from your authenticator app</label>\
<input id=\"token\" name=\"token\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{6}}\" required>\
<button id=\"submit\" type=\"submit\">Verify</button></form>",
            self.heading(error),
            self.open("mfa", Some(login))
        );
        self.render(status, "Verify", &body)
    }

    pub fn mfa_enroll(
        self,
        status: StatusCode,
        login: &str,
        qr_code: &str,
        error: Option<&str>,
    ) -> Response {
        // Only a `data:` image: the CSP allows no other source.
        let img = if qr_code.starts_with("data:image/") {
            format!(
                "<img alt=\"QR code to scan with an authenticator app\" src=\"{}\">",
                attr(qr_code)
            )
        } else {
            String::new()
        };
        let body = format!(
            "{}<p>Your account needs a second factor. Scan this code with an authenticator app, \
then enter the code it shows.</p>{img}{}<label for=\"token\">Code</label>\
<input id=\"token\" name=\"token\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{6}}\" required>\
<button id=\"submit\" type=\"submit\">Enrol and sign in</button></form>",
            self.heading(error),
            self.open("mfa-enroll", Some(login))
        );
        self.render(status, "Set up your authenticator", &body)
    }

    /// A standalone launch's patient (`launch/patient`): the patients the member may see, with
    /// a search by name.
    pub fn choose_patient(
        self,
        login: &str,
        patients: &[Value],
        name: &str,
        error: Option<&str>,
    ) -> Response {
        let mut buttons = String::new();
        for p in patients {
            let id = p["id"].as_str().unwrap_or_default();
            let born = p["birthDate"]
                .as_str()
                .map(|b| format!(" <span class=\"muted\">born {}</span>", text(b)))
                .unwrap_or_default();
            buttons.push_str(&format!(
                "<button type=\"submit\" name=\"patient\" value=\"{}\">{}{born}</button>",
                attr(id),
                text(p["name"].as_str().unwrap_or(id)),
            ));
        }
        if patients.is_empty() {
            buttons.push_str("<p class=\"muted\" id=\"no-patients\">No patient found.</p>");
        }
        let body = format!(
            "{}<p>{} asks which patient to open.</p>{}<label for=\"name\">Patient name</label>\
<input id=\"name\" name=\"name\" value=\"{}\"><button id=\"search\" type=\"submit\">Search</button></form>\
{}{buttons}</form>",
            self.heading(error),
            text(self.auth.client_name()),
            self.open("patient-search", Some(login)),
            attr(name),
            self.open("patient", Some(login)),
        );
        self.render(StatusCode::OK, "Choose a patient", &body)
    }

    /// What the app asked for, each scope a box the person may clear before the app gets it
    /// (SMART 2.2: the user may narrow the grant; spec §12.4).
    pub fn approve_scopes(self, login: &str) -> Response {
        let mut boxes = String::new();
        for (i, word) in self.auth.scope.split_whitespace().enumerate() {
            boxes.push_str(&format!(
                "<label class=\"check\"><input type=\"checkbox\" name=\"grant\" id=\"grant-{i}\" value=\"{}\" checked> {}</label>",
                attr(word),
                text(word)
            ));
        }
        let body = format!(
            "{}<p>{} asks for:</p>{}{boxes}<button id=\"allow\" type=\"submit\">Allow</button></form>",
            self.heading(None),
            text(self.auth.client_name()),
            self.open("scope", Some(login)),
        );
        self.render(StatusCode::OK, "Allow access", &body)
    }

    /// An existing session: continue as this person, or sign in as someone else.
    pub fn consent(self, who: &str) -> Response {
        let mut other = self.auth.request.clone();
        other.prompt = Some("login".into());
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(other.pairs())
            .finish();
        let body = format!(
            "{}<p>You are signed in as <strong>{}</strong>.</p><p class=\"muted\">{} asks for: {}</p>\
{}<button id=\"continue\" type=\"submit\">Continue</button></form>\
<p><a href=\"{}?{}\">Use another account</a></p>",
            self.heading(None),
            text(who),
            text(self.auth.client_name()),
            text(&self.auth.scope),
            self.open("consent", None),
            attr(self.action),
            attr(&query)
        );
        self.render(StatusCode::OK, "Continue", &body)
    }
}

/// A page without a form: why the sign-in cannot go on.
pub fn message(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!("<h1>{}</h1><p>{}</p>", text(title), text(message)),
        &[],
        &[],
    )
}

/// `scheme://host[:port]` of a URL, or `scheme:` for a native app's private-use scheme
/// (RFC 8252 §7.1).
fn url_origin(uri: &str) -> Option<String> {
    let scheme_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    };
    let Some((scheme, rest)) = uri.split_once("://") else {
        let (scheme, _) = uri.split_once(':')?;
        return scheme_ok(scheme).then(|| format!("{scheme}:"));
    };
    if !scheme_ok(scheme) {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_for_form_action() {
        assert_eq!(
            url_origin("https://app.example.com:8443/cb?x=1").as_deref(),
            Some("https://app.example.com:8443")
        );
        assert_eq!(
            url_origin("http://127.0.0.1:3000/").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        // Nothing that could end the directive or add a source.
        assert_eq!(url_origin("https://a.com;script-src*/x"), None);
        assert_eq!(url_origin("https://a b.com/"), None);
        assert_eq!(url_origin("nope"), None);
        assert_eq!(
            url_origin("com.example.app:/callback").as_deref(),
            Some("com.example.app:")
        );
    }
}
