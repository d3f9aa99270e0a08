//! The login stages (spec §4): credentials to a Login, a Login to a membership, and the
//! response shape they share (§4.3). A Login is written in the server's partition; its code,
//! cookie and refresh secret are kept as SHA-256 digests only, so that a copy of the database
//! holds no live credential.

use serde_json::{Value, json};

use oxmed_access::smart_scope::{Grantee, scope_error};

use crate::failure::{AuthFailure, Result};
use crate::identity::{ClientApplication, Login, ProjectMembership, Reference, User};
use crate::records;
use crate::secret::generate_secret;
use crate::service::Auth;
use crate::{digest, password, pkce};
use oxmed_repo::{SERVER_PROJECT, Scope, parse_stored};

/// `POST /auth/login` (and later Google, external): what the caller sent.
#[derive(Default, Clone)]
pub struct LoginRequest {
    pub email: String,
    /// Never shown: `Debug` prints the email only.
    pub password: String,
    pub project_id: Option<String>,
    pub client_id: Option<String>,
    pub resource_type: Option<String>,
    pub scope: Option<String>,
    pub nonce: Option<String>,
    /// A SmartAppLaunch id (EHR launch, or a standalone launch's chosen patient).
    pub launch: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub remember: bool,
    pub origin: Option<String>,
    pub remote_address: Option<String>,
    pub user_agent: Option<String>,
    /// A login that may end without a membership to choose (registration, spec §4.4).
    pub allow_no_membership: bool,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What a login stage answers (spec §4.3), plus the cookie to set when there is a client.
pub struct LoginResult {
    pub body: Value,
    /// `(name, value)` of the `medplum-<clientId>` session cookie.
    pub cookie: Option<(String, String)>,
}

/// The one answer to a wrong email or password.
pub const WRONG_CREDENTIALS: &str = "Email or password is invalid";

/// How a person proved who they are when the proof happened before oxmed saw the login: an
/// external identity provider's callback or an exchanged access token (spec §4.1: these are
/// trusted, the caller verified them). Later federation methods (Google) join here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedMethod {
    External,
    Exchange,
}

impl VerifiedMethod {
    fn as_str(self) -> &'static str {
        match self {
            VerifiedMethod::External => "external",
            VerifiedMethod::Exchange => "exchange",
        }
    }
}

/// Who a verified login is for: an email, or an external id (the provider's subject, spec
/// §7.5) that names a member of the client's project.
#[derive(Debug, Clone, Default)]
pub struct VerifiedIdentity {
    pub email: Option<String>,
    pub external_id: Option<String>,
}

/// What the client named in a login settles: the client, the project and the scope.
struct LoginContext {
    client: Option<ClientApplication>,
    project_id: Option<String>,
    scope: String,
}

impl Auth {
    pub async fn password_login(&self, req: &LoginRequest) -> Result<LoginResult> {
        let email = req.email.trim().to_lowercase();
        if email.is_empty() || !email.contains('@') {
            return Err(AuthFailure::invalid("Valid email address is required"));
        }
        if req.password.chars().count() < 5 {
            return Err(AuthFailure::invalid(
                "Invalid password, must be at least 5 characters",
            ));
        }
        let context = self.login_context(req).await?;

        let user = self
            .find_user(&email, context.project_id.as_deref())
            .await?;
        // An unknown email is checked against a hash of the same cost, so that it takes as long
        // as a wrong password.
        let hash = match user.as_ref().and_then(|(_, u)| u.password_hash.clone()) {
            Some(h) => h,
            None => self.dummy_hash().await?,
        };
        let password = req.password.clone();
        let matches =
            tokio::task::spawn_blocking(move || password::verify_password(&password, &hash))
                .await
                .map_err(|e| AuthFailure::Internal(e.to_string()))?;
        // One answer for an unknown email and a wrong password (OWASP ASVS 2.2: no account
        // enumeration); Medplum says "User not found" for the first.
        let (user_id, _user) = match user {
            Some(found) if matches => found,
            _ => return Err(AuthFailure::invalid(WRONG_CREDENTIALS)),
        };
        self.start_login(req, context, &user_id, "password", None)
            .await
    }

    /// A login whose person an identity provider or an exchanged token already proved (spec
    /// §4.1 "external and exchange logins"): no password, and the user is found by email or,
    /// with `useSubject`, by the external id of a member of the client's project (spec §7.5:
    /// the membership's `externalId` first, then the legacy `User.externalId`). The federation
    /// endpoints call this once they have verified the provider's answer.
    pub async fn verified_login(
        &self,
        req: &LoginRequest,
        method: VerifiedMethod,
        identity: &VerifiedIdentity,
    ) -> Result<LoginResult> {
        let email = identity
            .email
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        let external_id = identity.external_id.as_deref().filter(|x| !x.is_empty());
        if email.is_none() && external_id.is_none() {
            return Err(AuthFailure::invalid("Missing email or externalId"));
        }
        let context = self.login_context(req).await?;
        let (user_id, membership) = match external_id {
            Some(external_id) => {
                // External ids are unique per project only: the project is the client's (spec
                // §7.5), never one the request names.
                let project = context
                    .client
                    .as_ref()
                    .and(context.project_id.as_deref())
                    .filter(|p| *p != "new");
                let Some(project) = project else {
                    return Err(AuthFailure::invalid(
                        "Project ID is required for external ID",
                    ));
                };
                match self.user_by_external_id(external_id, project).await? {
                    Some(found) => found,
                    None => return Err(AuthFailure::invalid("User not found")),
                }
            }
            None => match self
                .find_user(
                    email.as_deref().unwrap_or_default(),
                    context.project_id.as_deref(),
                )
                .await?
            {
                Some((id, _)) => (id, None),
                None => return Err(AuthFailure::invalid("User not found")),
            },
        };
        self.start_login(
            req,
            context,
            &user_id,
            method.as_str(),
            membership.as_deref(),
        )
        .await
    }

    /// The checks every login method shares (spec §4.1 "Client checks"): the client exists,
    /// fixes the project and accepts the origin, and the PKCE parameters are sound.
    async fn login_context(&self, req: &LoginRequest) -> Result<LoginContext> {
        let scope = req
            .scope
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "openid".into());
        if let Some(why) = scope_error(&scope, Grantee::User) {
            return Err(AuthFailure::Invalid(why));
        }

        let client = match &req.client_id {
            Some(id) => Some(self.login_client(id).await?),
            None => None,
        };
        let mut project_id = req.project_id.clone().filter(|p| !p.is_empty());
        if let Some(client) = &client {
            let client_project = client.meta_project().map(str::to_owned);
            if let Some(p) = &project_id
                && Some(p) != client_project.as_ref()
            {
                return Err(AuthFailure::invalid("Invalid projectId"));
            }
            project_id = client_project;
            if !client.allowed_origin.is_empty()
                && let Some(origin) = &req.origin
                && !client.allowed_origin.iter().any(|o| o == origin)
            {
                return Err(AuthFailure::invalid("Invalid origin"));
            }
        }
        let pkce_optional = client.as_ref().is_some_and(|c| c.is_pkce_optional());
        check_challenge(req, pkce_optional)?;
        if let Some(launch) = req.launch.as_deref().filter(|l| !l.is_empty()) {
            self.check_launch(launch, project_id.as_deref()).await?;
        }
        Ok(LoginContext {
            client,
            project_id,
            scope,
        })
    }

    /// Writes the Login of an authenticated user and takes it as far as it goes: straight to a
    /// code when the user has one membership to choose (or the login names the one it is
    /// for: `membership`), else to the choice.
    async fn start_login(
        &self,
        req: &LoginRequest,
        context: LoginContext,
        user_id: &str,
        auth_method: &str,
        membership: Option<&str>,
    ) -> Result<LoginResult> {
        let LoginContext {
            client,
            project_id,
            scope,
        } = context;
        let now = oxmed_repo::meta::instant(oxmed_repo::meta::now_micros());
        let mut login = Login {
            client: client.as_ref().map(ClientApplication::reference),
            project: project_id.as_deref().map(|p| Reference::to("Project", p)),
            profile_type: req.resource_type.clone(),
            user: Reference::to("User", user_id),
            auth_method: auth_method.into(),
            auth_time: now,
            scope: Some(scope),
            nonce: req.nonce.clone(),
            launch: req
                .launch
                .as_deref()
                .filter(|l| !l.is_empty())
                .map(|l| Reference::to("SmartAppLaunch", l)),
            code_challenge: req.code_challenge.clone(),
            code_challenge_method: req.code_challenge_method.clone(),
            remote_address: req.remote_address.clone(),
            user_agent: req.user_agent.clone(),
            ..Default::default()
        };
        login.granted = Some(false);
        let stored = records::create(self.repo(), SERVER_PROJECT, login.to_value()).await?;
        let version = records::version_of(&stored).unwrap_or_default().to_owned();
        let login = Login::from_value(stored)?;
        if let Some(membership) = membership {
            return self.choose_membership(login.id(), membership).await;
        }
        let memberships = self.memberships_of(&login).await?;
        if memberships.is_empty() && !login.is_new_project() && !req.allow_no_membership {
            return Err(AuthFailure::invalid("User not found"));
        }
        if memberships.len() == 1 {
            return self
                .choose_membership(login.id(), memberships[0].id())
                .await;
        }
        self.login_result(login, &version, false).await
    }

    /// `GET /auth/login/:login`: picks up a Login where it stopped (after an external sign-in
    /// or a page reload), with the answer of [`Auth::login_result`].
    pub async fn resume_login(&self, login_id: &str) -> Result<LoginResult> {
        if uuid::Uuid::parse_str(login_id).is_err() {
            return Err(AuthFailure::invalid("Invalid login"));
        }
        let (login, version) = self.login_for_update(login_id).await?;
        if login.is_granted() {
            return Err(AuthFailure::invalid("Login already granted"));
        }
        if login.is_revoked() {
            return Err(AuthFailure::invalid("Login revoked"));
        }
        self.login_result(login, &version, false).await
    }

    /// `POST /auth/scope {login, scope}`: the user narrows what the app asked for (spec §4.4).
    pub async fn narrow_scope(&self, login_id: &str, scope: &str) -> Result<LoginResult> {
        let (mut login, version) = self.login_for_update(login_id).await?;
        if login.is_revoked() {
            return Err(AuthFailure::invalid("Login revoked"));
        }
        if login.is_granted() {
            return Err(AuthFailure::invalid("Login granted"));
        }
        if login.membership.is_none() {
            return Err(AuthFailure::invalid("Login profile not set"));
        }
        let granted = login.scope.as_deref().unwrap_or_default();
        if !crate::scope::narrows(scope, granted) {
            return Err(AuthFailure::invalid("Invalid scope"));
        }
        login.scope = Some(scope.to_owned());
        self.login_result(login, &version, true).await
    }

    /// A stored Login and its version, for a conditional write; 404 if unknown.
    pub(crate) async fn login_for_update(&self, login_id: &str) -> Result<(Login, String)> {
        let stored = self
            .repo()
            .system_read("Login", login_id)
            .await?
            .ok_or(AuthFailure::NotFound)?;
        let value = parse_stored(&stored)?;
        let version = records::version_of(&value).unwrap_or_default().to_owned();
        Ok((Login::from_value(value)?, version))
    }

    /// `sendLoginResult` (spec §4.3): the next step of a sign-in. A password login of a user with
    /// MFA gets no code before its TOTP code is verified; `changed` says the Login must be
    /// written even when no code is issued.
    pub(crate) async fn login_result(
        &self,
        login: Login,
        version: &str,
        changed: bool,
    ) -> Result<LoginResult> {
        if self.mfa_pending(&login).await? {
            let user = self
                .user_of(&login.user)
                .await?
                .ok_or_else(|| AuthFailure::invalid("User not found"))?;
            if user.mfa_required == Some(true) && user.mfa_enrolled != Some(true) {
                let login = self.keep_login(login, version, changed).await?;
                let (enroll_uri, enroll_qr_code) = self.enroll_material(&login.user).await?;
                return Ok(LoginResult {
                    body: json!({"login": login.id(), "mfaEnrollRequired": true,
                        "enrollUri": enroll_uri, "enrollQrCode": enroll_qr_code}),
                    cookie: None,
                });
            }
            if user.mfa_enrolled == Some(true) {
                let login = self.keep_login(login, version, changed).await?;
                return Ok(LoginResult {
                    body: json!({"login": login.id(), "mfaRequired": true}),
                    cookie: None,
                });
            }
        }
        // A new project's Login has the owner's membership once `/auth/newproject` made it.
        if login.membership.is_some() {
            // A standalone launch asking for `launch/patient` stops for the patient's choice
            // (SMART 2.2), unless the member is that patient.
            if self.needs_patient_choice(&login).await? {
                let login = self.keep_login(login, version, changed).await?;
                return Ok(LoginResult {
                    body: json!({"login": login.id(), "patientRequired": true}),
                    cookie: None,
                });
            }
            return self.finish_with_code(login, version).await;
        }
        if login.is_new_project() {
            let login = self.keep_login(login, version, changed).await?;
            return Ok(LoginResult {
                body: json!({"login": login.id()}),
                cookie: None,
            });
        }
        let login = self.keep_login(login, version, changed).await?;
        let list: Vec<Value> = self
            .memberships_of(&login)
            .await?
            .iter()
            .map(|m| {
                json!({"id": m.id(), "project": m.project, "profile": m.profile,
                    "identifier": m.rest.get("identifier")})
            })
            .collect();
        Ok(LoginResult {
            body: json!({"login": login.id(), "memberships": list}),
            cookie: None,
        })
    }

    /// Whether a password Login still owes its TOTP code (or the enrolment of one): until it
    /// is given, the login shows nothing of the member's data and gets no code.
    pub(crate) async fn mfa_pending(&self, login: &Login) -> Result<bool> {
        if login.auth_method != "password" || login.mfa_verified == Some(true) {
            return Ok(false);
        }
        let user = self
            .user_of(&login.user)
            .await?
            .ok_or_else(|| AuthFailure::invalid("User not found"))?;
        Ok(user.mfa_enrolled == Some(true) || user.mfa_required == Some(true))
    }

    /// Writes `login` if `changed`, failing if another step wrote it first.
    async fn keep_login(&self, login: Login, version: &str, changed: bool) -> Result<Login> {
        if !changed {
            return Ok(login);
        }
        let written = records::put_if(self.repo(), SERVER_PROJECT, login.to_value(), version)
            .await?
            .ok_or_else(|| AuthFailure::invalid("Login changed, please try again"))?;
        Login::from_value(written)
    }

    /// A client named in a login: an unknown one is 404 (spec §4.1).
    async fn login_client(&self, id: &str) -> Result<ClientApplication> {
        let stored = self
            .repo()
            .system_read("ClientApplication", id)
            .await?
            .ok_or(AuthFailure::NotFound)?;
        ClientApplication::from_value(parse_stored(&stored)?)
    }

    /// A project-scoped user of `project` first, then the server-scoped one (spec §4.1).
    async fn find_user(
        &self,
        email: &str,
        project: Option<&str>,
    ) -> Result<Option<(String, User)>> {
        let repo = self.repo();
        if let Some(p) = project.filter(|p| *p != "new") {
            let reference = format!("Project/{p}");
            if let Some((r, v)) = repo
                .system_find_one(
                    Scope::Project(p),
                    "User",
                    &[("email:exact", email), ("project", &reference)],
                )
                .await?
            {
                return Ok(Some((r.id, User::from_value(v)?)));
            }
        }
        match repo
            .system_find_one(
                Scope::Project(SERVER_PROJECT),
                "User",
                &[("email:exact", email)],
            )
            .await?
        {
            Some((r, v)) => Ok(Some((r.id, User::from_value(v)?))),
            None => Ok(None),
        }
    }

    /// The user a project knows by `external_id` (spec §7.5): the membership's `externalId`
    /// first (and then that membership), then a project-scoped User's legacy `externalId`.
    /// Matched exactly: an external subject is an opaque identifier.
    async fn user_by_external_id(
        &self,
        external_id: &str,
        project: &str,
    ) -> Result<Option<(String, Option<String>)>> {
        let repo = self.repo();
        let reference = format!("Project/{project}");
        if let Some((_, v)) = repo
            .system_find_one(
                Scope::Project(project),
                "ProjectMembership",
                &[("external-id:exact", external_id), ("project", &reference)],
            )
            .await?
        {
            let membership = ProjectMembership::from_value(v)?;
            return Ok(membership
                .user
                .id_of("User")
                .map(|u| (u.to_owned(), Some(membership.id().to_owned()))));
        }
        Ok(repo
            .system_find_one(
                Scope::Project(project),
                "User",
                &[("external-id:exact", external_id), ("project", &reference)],
            )
            .await?
            .map(|(r, _)| (r.id, None)))
    }

    /// The user's memberships, in the login's project if it has one, of the requested profile
    /// type if any.
    async fn memberships_of(&self, login: &Login) -> Result<Vec<ProjectMembership>> {
        let user_ref = login.user.text().to_owned();
        let project = login.project.as_ref().and_then(|p| p.id_of("Project"));
        if project == Some("new") {
            return Ok(Vec::new());
        }
        let found = match project {
            Some(p) => {
                self.repo()
                    .system_search(
                        Scope::Project(p),
                        "ProjectMembership",
                        &[("user", &user_ref), ("_count", "100")],
                    )
                    .await?
            }
            None => {
                self.repo()
                    .system_search(
                        Scope::AllProjects,
                        "ProjectMembership",
                        &[("user", &user_ref), ("_count", "100")],
                    )
                    .await?
            }
        };
        let mut out = Vec::with_capacity(found.len());
        for r in &found {
            let m = ProjectMembership::from_value(parse_stored(r)?)?;
            if let Some(t) = &login.profile_type
                && !m.profile.text().starts_with(&format!("{t}/"))
            {
                continue;
            }
            out.push(m);
        }
        Ok(out)
    }

    /// `setLoginMembership` (spec §4.2) and the `{login, code}` answer, with a new code.
    pub async fn choose_membership(
        &self,
        login_id: &str,
        membership_id: &str,
    ) -> Result<LoginResult> {
        let (mut login, version) = self.login_for_update(login_id).await?;
        if login.is_revoked() {
            return Err(AuthFailure::invalid("Login revoked"));
        }
        if login.is_granted() {
            return Err(AuthFailure::invalid("Login granted"));
        }
        if login.membership.is_some() {
            return Err(AuthFailure::invalid("Login profile already set"));
        }
        let Some((membership, project)) = self.membership_and_project(membership_id).await? else {
            return Err(AuthFailure::invalid("Profile not found"));
        };
        if membership.user.text() != login.user.text() {
            return Err(AuthFailure::invalid("Invalid profile"));
        }
        if !membership.is_active() {
            return Err(AuthFailure::invalid("Profile not active"));
        }
        // A membership whose policy cannot be built cannot sign in (spec §1.1 step 2).
        self.require_access(&membership, &project, login.remote_address.as_deref())
            .await?;
        login.membership = Some(membership.reference());
        self.login_result(login, &version, true).await
    }

    /// Writes the Login with a fresh code and a fresh cookie and answers `{login, code}`.
    async fn finish_with_code(&self, mut login: Login, version: &str) -> Result<LoginResult> {
        let code = generate_secret(16)?;
        let cookie = generate_secret(16)?;
        login.code = Some(digest(&code));
        login.cookie = Some(digest(&cookie));
        let written = records::put_if(self.repo(), SERVER_PROJECT, login.to_value(), version)
            .await?
            .ok_or_else(|| AuthFailure::invalid("Login granted"))?;
        let login = Login::from_value(written)?;
        let cookie = login
            .client
            .as_ref()
            .and_then(|c| c.id_of("ClientApplication"))
            .map(|client| (format!("medplum-{client}"), cookie));
        Ok(LoginResult {
            body: json!({"login": login.id(), "code": code}),
            cookie,
        })
    }
}

/// PKCE parameters at login (spec §4.1), and beyond Medplum: `plain` only for a client that
/// opted out of PKCE (RFC 9700 §2.1.1: S256 for everyone else).
fn check_challenge(req: &LoginRequest, pkce_optional: bool) -> Result<()> {
    match (&req.code_challenge, &req.code_challenge_method) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(AuthFailure::invalid("Invalid code challenge")),
        (Some(_), None) => Err(AuthFailure::invalid("Invalid code challenge method")),
        (Some(_), Some(method)) => match pkce::ChallengeMethod::parse(method) {
            Ok(pkce::ChallengeMethod::S256) => Ok(()),
            Ok(pkce::ChallengeMethod::Plain) if pkce_optional => Ok(()),
            _ => Err(AuthFailure::invalid("Invalid code challenge method")),
        },
    }
}
