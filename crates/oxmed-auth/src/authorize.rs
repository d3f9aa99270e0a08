//! `/oauth2/authorize` (spec §3.5): checking an authorization request, finding the browser's
//! existing session, and the redirect back to the client with a code or an error. The sign-in
//! page itself is the HTTP layer's; what it posts goes through the login stages of [`crate::login`].
//!
//! Beyond Medplum: PKCE S256 is required of every client that did not opt out with
//! `pkceOptional` (RFC 9700 §2.1.1), and every redirect carries `iss` (RFC 9207).

use serde_json::Value;

use crate::claims::IdClaims;
use crate::failure::{AuthFailure, Result};
use crate::identity::{ClientApplication, Login, Reference};
use crate::login::{LoginRequest, LoginResult};
use crate::service::Auth;
use crate::tokens::now_secs;
use crate::{digest, pkce};
use oxmed_access::smart_scope::{Grantee, scope_error};
use oxmed_repo::{SERVER_PROJECT, Scope, parse_stored};

/// The parameters of an authorization request, from the query string (GET) or the form (POST).
/// `Debug` leaves out `id_token_hint` (a token) and the PKCE challenge.
#[derive(Clone, Default)]
pub struct AuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub id_token_hint: Option<String>,
    pub aud: Option<String>,
    pub launch: Option<String>,
    pub request: Option<String>,
}

impl std::fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeRequest")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("response_type", &self.response_type)
            .field("scope", &self.scope)
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

impl AuthorizeRequest {
    /// The names the request is made of, and the sign-in page carries from step to step.
    pub const FIELDS: [&'static str; 14] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "max_age",
        "id_token_hint",
        "aud",
        "launch",
        "request",
    ];

    /// From `(name, value)` pairs; an empty value counts as absent, a repeated name keeps the first.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> AuthorizeRequest {
        let mut r = AuthorizeRequest::default();
        for (k, v) in pairs {
            if v.is_empty() {
                continue;
            }
            if let Some(slot) = r.slot(k)
                && slot.is_none()
            {
                *slot = Some(v.to_owned());
            }
        }
        r
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "response_type" => &mut self.response_type,
            "client_id" => &mut self.client_id,
            "redirect_uri" => &mut self.redirect_uri,
            "scope" => &mut self.scope,
            "state" => &mut self.state,
            "nonce" => &mut self.nonce,
            "code_challenge" => &mut self.code_challenge,
            "code_challenge_method" => &mut self.code_challenge_method,
            "prompt" => &mut self.prompt,
            "max_age" => &mut self.max_age,
            "id_token_hint" => &mut self.id_token_hint,
            "aud" => &mut self.aud,
            "launch" => &mut self.launch,
            "request" => &mut self.request,
            _ => return None,
        })
    }

    /// The present parameters, in [`Self::FIELDS`] order.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let values = [
            &self.response_type,
            &self.client_id,
            &self.redirect_uri,
            &self.scope,
            &self.state,
            &self.nonce,
            &self.code_challenge,
            &self.code_challenge_method,
            &self.prompt,
            &self.max_age,
            &self.id_token_hint,
            &self.aud,
            &self.launch,
            &self.request,
        ];
        Self::FIELDS
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
            .collect()
    }

    fn prompt_is(&self, value: &str) -> bool {
        self.prompt
            .as_deref()
            .is_some_and(|p| p.split_whitespace().any(|w| w == value))
    }
}

/// Why an authorization request is refused.
#[derive(Debug)]
pub enum AuthorizeError {
    /// 400 with this plain-text body: the client or its redirect URI cannot be trusted, so the
    /// browser is not sent back to it (spec §3.5).
    Plain(&'static str),
    /// Back to the client with `error`, `error_description`, `state` and `iss`: this URL.
    Redirect(String),
    Failure(AuthFailure),
}

impl From<AuthFailure> for AuthorizeError {
    fn from(f: AuthFailure) -> Self {
        AuthorizeError::Failure(f)
    }
}

/// A checked authorization request: its client, and the scope after the client's default.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub client: ClientApplication,
    pub request: AuthorizeRequest,
    pub redirect_uri: String,
    pub scope: String,
}

impl Authorization {
    /// `client.name`, or its id.
    pub fn client_name(&self) -> &str {
        self.client.name.as_deref().unwrap_or(self.client.id())
    }

    pub fn prompt_is(&self, value: &str) -> bool {
        self.request.prompt_is(value)
    }

    /// How old a session may be, in seconds (`max_age`, 3600 by default).
    fn max_age(&self) -> i64 {
        self.request
            .max_age
            .as_deref()
            .and_then(|m| m.parse::<i64>().ok())
            .filter(|m| *m >= 0)
            .unwrap_or(3600)
    }
}

/// An existing session of this browser with this client, good for a new code.
pub struct ExistingSession {
    pub login: Login,
}

impl Auth {
    /// Checks an authorization request in Medplum's order (spec §3.5).
    pub async fn check_authorize(
        &self,
        request: AuthorizeRequest,
    ) -> std::result::Result<Authorization, AuthorizeError> {
        let Some(client_id) = request
            .client_id
            .as_deref()
            .filter(|c| uuid::Uuid::parse_str(c).is_ok())
        else {
            return Err(AuthorizeError::Plain("Client not found"));
        };
        let client = match self.usable_client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) | Err(AuthFailure::NotFound) => {
                return Err(AuthorizeError::Plain("Client not found"));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(redirect_uri) = request.redirect_uri.clone() else {
            return Err(AuthorizeError::Plain("Missing redirect URI"));
        };
        if url::Url::parse(&redirect_uri).is_err() || !client.allows_redirect(&redirect_uri) {
            return Err(AuthorizeError::Plain("Invalid redirect URI"));
        }
        let mut auth = Authorization {
            scope: String::new(),
            client,
            request,
            redirect_uri,
        };
        let refuse = |auth: &Authorization, error: &str, description: &str| {
            Err(AuthorizeError::Redirect(self.error_redirect(
                auth,
                error,
                description,
            )))
        };
        let scope = match auth.request.scope.clone() {
            Some(s) if !s.trim().is_empty() => s,
            _ => auth.client.default_scope.join(" "),
        };
        if scope.trim().is_empty() {
            return refuse(&auth, "invalid_request", "Missing scope");
        }
        if let Some(why) = scope_error(&scope, Grantee::User) {
            return refuse(&auth, "invalid_scope", &why);
        }
        auth.scope = scope;
        if auth.request.response_type.as_deref() != Some("code") {
            return refuse(
                &auth,
                "unsupported_response_type",
                "Unsupported response type",
            );
        }
        if auth.request.request.is_some() {
            return refuse(&auth, "request_not_supported", "Unsupported request");
        }
        if let Some(aud) = &auth.request.aud
            && !same_origin(aud, self.config().issuer())
        {
            return refuse(&auth, "invalid_request", "Invalid audience");
        }
        let pkce_optional = auth.client.is_pkce_optional();
        match (
            &auth.request.code_challenge,
            &auth.request.code_challenge_method,
        ) {
            (Some(_), None) => {
                return refuse(&auth, "invalid_request", "Missing code challenge method");
            }
            (None, _) if !pkce_optional => {
                return refuse(&auth, "invalid_request", "Missing code challenge");
            }
            (Some(_), Some(method)) => match pkce::ChallengeMethod::parse(method) {
                Ok(pkce::ChallengeMethod::S256) => {}
                Ok(pkce::ChallengeMethod::Plain) if pkce_optional => {}
                _ => {
                    return refuse(&auth, "invalid_request", "Invalid code challenge method");
                }
            },
            (None, _) => {}
        }
        if let Some(launch) = &auth.request.launch {
            // Beyond Medplum: the launch must be of the client's project.
            match self.check_launch(launch, auth.client.meta_project()).await {
                Ok(()) => {}
                Err(AuthFailure::NotFound) => {
                    return refuse(&auth, "invalid_request", "Invalid launch");
                }
                Err(e) => return Err(AuthorizeError::Failure(e)),
            }
        }
        Ok(auth)
    }

    /// The browser's session with this client, if it has one young enough: the Login of the
    /// `medplum-<clientId>` cookie (spec §3.5). Beyond Medplum, `id_token_hint` is only a hint
    /// (OpenID Connect Core §3.1.2.1): it never stands in for the cookie, and a hint naming
    /// someone else than the session's user means there is no session for this request.
    pub async fn existing_session(
        &self,
        auth: &Authorization,
        cookie: Option<&str>,
    ) -> Result<Option<ExistingSession>> {
        let Some(cookie) = cookie.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let found = self
            .repo()
            .system_find_one(
                Scope::Project(SERVER_PROJECT),
                "Login",
                &[("cookie", &digest(cookie))],
            )
            .await?
            .map(|(r, _)| r);
        let Some(stored) = found.filter(|r| !r.deleted) else {
            return Ok(None);
        };
        let login = Login::from_value(parse_stored(&stored)?)?;
        if let Some(hint) = &auth.request.id_token_hint {
            let hinted = self
                .keys()
                .verify::<IdClaims>(
                    hint,
                    &crate::jwt::VerifyOptions::new(self.config().issuer()),
                )
                .ok()
                .map(|c| c.sub);
            if hinted.as_deref() != login.user.parts().map(|(_, id)| id) {
                return Ok(None);
            }
        }
        let same_client = login
            .client
            .as_ref()
            .and_then(|c| c.id_of("ClientApplication"))
            == Some(auth.client.id());
        let auth_time = oxmed_repo::meta::parse_instant(&login.auth_time)
            .map_or(0, |micros| micros / 1_000_000);
        if !same_client
            || !login.is_granted()
            || login.is_revoked()
            || login.membership.is_none()
            || now_secs() - auth_time > auth.max_age()
        {
            return Ok(None);
        }
        Ok(Some(ExistingSession { login }))
    }

    /// A code on an existing session, for this request. The session's sign-in is carried into
    /// a Login of its own (same user, membership, method and authentication time) with this
    /// request's scope, nonce and challenge, so that the tokens already issued keep the scope
    /// they were granted; signing out of any of them ends them all ([`Auth::revoke_sign_in`]).
    pub async fn continue_session(
        &self,
        auth: &Authorization,
        session: ExistingSession,
    ) -> Result<LoginResult> {
        let old = session.login;
        let active = match old.membership_id() {
            Some(m) => self
                .membership_and_project(m)
                .await?
                .is_some_and(|(m, _)| m.is_active()),
            None => false,
        };
        if !active {
            return Err(AuthFailure::invalid("Profile not active"));
        }
        let login = Login {
            client: old.client.clone(),
            project: old.project.clone(),
            profile_type: old.profile_type.clone(),
            user: old.user.clone(),
            membership: old.membership.clone(),
            auth_method: old.auth_method.clone(),
            auth_time: old.auth_time.clone(),
            mfa_verified: old.mfa_verified,
            remote_address: old.remote_address.clone(),
            user_agent: old.user_agent.clone(),
            scope: Some(auth.scope.clone()),
            nonce: auth.request.nonce.clone(),
            launch: auth
                .request
                .launch
                .as_deref()
                .map(|l| Reference::to("SmartAppLaunch", l)),
            code_challenge: auth.request.code_challenge.clone(),
            code_challenge_method: auth.request.code_challenge_method.clone(),
            granted: Some(false),
            ..Default::default()
        };
        let stored = crate::records::create(self.repo(), SERVER_PROJECT, login.to_value()).await?;
        let version = crate::records::version_of(&stored)
            .unwrap_or_default()
            .to_owned();
        self.login_result(Login::from_value(stored)?, &version, false)
            .await
    }

    /// The email of the person an existing session is of, to show on "continue as".
    pub async fn session_email(&self, session: &ExistingSession) -> Result<String> {
        Ok(self
            .user_of(&session.login.user)
            .await?
            .and_then(|u| u.email)
            .unwrap_or_default())
    }

    /// Whether a Login in progress was started for this client: a page step names its Login
    /// in a hidden field, which must not carry one client's sign-in to another's redirect.
    pub async fn login_is_for(&self, login_id: &str, client_id: &str) -> bool {
        match self.login_for_update(login_id).await {
            Ok((login, _)) => {
                login
                    .client
                    .as_ref()
                    .and_then(|c| c.id_of("ClientApplication"))
                    == Some(client_id)
            }
            Err(_) => false,
        }
    }

    /// The enrolment URI and QR code of the user of a Login in progress.
    pub async fn login_enroll_material(&self, login_id: &str) -> Result<(String, String)> {
        let (login, _) = self.login_for_update(login_id).await?;
        self.enroll_material(&login.user).await
    }

    /// What the sign-in page posts, as a password login for this request.
    pub fn login_request(&self, auth: &Authorization, email: &str, password: &str) -> LoginRequest {
        LoginRequest {
            email: email.to_owned(),
            password: password.to_owned(),
            client_id: Some(auth.client.id().to_owned()),
            scope: Some(auth.scope.clone()),
            nonce: auth.request.nonce.clone(),
            launch: auth.request.launch.clone(),
            code_challenge: auth.request.code_challenge.clone(),
            code_challenge_method: auth.request.code_challenge_method.clone(),
            ..Default::default()
        }
    }

    /// Back to the client with a code.
    pub fn code_redirect(&self, auth: &Authorization, code: &str) -> String {
        self.redirect(auth, &[("code", code)])
    }

    /// Back to the client with an error (RFC 6749 §4.1.2.1).
    pub fn error_redirect(&self, auth: &Authorization, error: &str, description: &str) -> String {
        self.redirect(
            auth,
            &[("error", error), ("error_description", description)],
        )
    }

    fn redirect(&self, auth: &Authorization, params: &[(&str, &str)]) -> String {
        // The redirect URI parsed when the request was checked.
        let Ok(mut url) = url::Url::parse(&auth.redirect_uri) else {
            return auth.redirect_uri.clone();
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(state) = &auth.request.state {
                q.append_pair("state", state);
            }
            q.append_pair("iss", self.config().issuer());
        }
        url.to_string()
    }
}

/// Whether `aud` has the scheme, host and port of `base` (spec §3.5: both the base URL and the
/// FHIR base are fine audiences).
fn same_origin(aud: &str, base: &str) -> bool {
    match (url::Url::parse(aud), url::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// The `body` of a login stage as the sign-in page needs it.
pub enum NextStep<'a> {
    Code(&'a str),
    ChooseProfile(&'a [Value]),
    Mfa,
    MfaEnroll {
        uri: &'a str,
        qr_code: &'a str,
    },
    /// A standalone launch's patient to pick (`launch/patient`).
    ChoosePatient,
    /// A login that needs a project first (`Project/new`): not a browser flow here.
    Other,
}

impl LoginResult {
    pub fn login_id(&self) -> &str {
        self.body["login"].as_str().unwrap_or_default()
    }

    pub fn next_step(&self) -> NextStep<'_> {
        let b = &self.body;
        if let Some(code) = b["code"].as_str() {
            return NextStep::Code(code);
        }
        if b["mfaRequired"] == Value::Bool(true) {
            return NextStep::Mfa;
        }
        if b["mfaEnrollRequired"] == Value::Bool(true) {
            return NextStep::MfaEnroll {
                uri: b["enrollUri"].as_str().unwrap_or_default(),
                qr_code: b["enrollQrCode"].as_str().unwrap_or_default(),
            };
        }
        if let Some(list) = b["memberships"].as_array() {
            return NextStep::ChooseProfile(list);
        }
        if b["patientRequired"] == Value::Bool(true) {
            return NextStep::ChoosePatient;
        }
        NextStep::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_first_wins() {
        let r = AuthorizeRequest::from_pairs([
            ("client_id", "c"),
            ("scope", "openid"),
            ("scope", "other"),
            ("state", ""),
            ("unknown", "x"),
        ]);
        assert_eq!(r.scope.as_deref(), Some("openid"));
        assert_eq!(r.state, None);
        assert_eq!(r.pairs(), vec![("client_id", "c"), ("scope", "openid")]);
    }

    #[test]
    fn audiences_on_the_base_origin() {
        let base = "http://localhost:8103/";
        assert!(same_origin("http://localhost:8103/fhir/R4", base));
        assert!(same_origin("http://localhost:8103", base));
        assert!(!same_origin("http://localhost:8104/", base));
        assert!(!same_origin("https://localhost:8103/", base));
        assert!(!same_origin("x", base));
    }

    #[test]
    fn debug_prints_no_token() {
        let r = AuthorizeRequest {
            client_id: Some("c".into()),
            id_token_hint: Some("eyJ.secret.sig".into()),
            code_challenge: Some("challenge".into()),
            ..Default::default()
        };
        let printed = format!("{r:?}");
        assert!(printed.contains("\"c\""), "{printed}");
        assert!(
            !printed.contains("eyJ") && !printed.contains("challenge"),
            "{printed}"
        );
    }

    #[test]
    fn prompt_is_a_word_list() {
        let r = AuthorizeRequest {
            prompt: Some("login consent".into()),
            ..Default::default()
        };
        assert!(r.prompt_is("login"));
        assert!(r.prompt_is("consent"));
        assert!(!r.prompt_is("none"));
    }
}
