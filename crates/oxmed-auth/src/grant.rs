//! `POST /oauth2/token` (spec §3.2): client authentication and the grants, each a function of
//! its own. Error texts are Medplum's; where the spec notes Medplum is weaker than RFC 9700 the
//! stronger rule is kept and written down in docs/compatibility.md.

use std::collections::HashMap;

use serde_json::Value;

use crate::claims::RefreshClaims;
use crate::failure::{AuthFailure, Result};
use crate::identity::{ClientApplication, Login, Project, ProjectMembership, Reference, User};
use crate::records;
use crate::secret::{constant_time_eq, generate_secret};
use crate::service::Auth;
use crate::session::{decode_basic, strip_scheme};
use crate::tokens::{Grant, now_secs};
use crate::{digest, pkce, scope};
use oxmed_access::smart_scope::{Grantee, scope_error};
use oxmed_repo::{SERVER_PROJECT, parse_stored};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an authorization code can be redeemed (RFC 9700 §4.5: short-lived).
const CODE_LIFETIME_SECS: i64 = 60;

/// A token request: the form fields and the `Authorization` header.
pub struct TokenRequest<'a> {
    pub form: &'a HashMap<String, String>,
    pub authorization: Option<&'a str>,
    pub remote_address: Option<String>,
    pub user_agent: Option<String>,
}

impl TokenRequest<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Who the client says it is.
struct ClientCredentials {
    id: Option<String>,
    secret: Option<String>,
}

impl Auth {
    pub async fn token(&self, req: &TokenRequest<'_>) -> Result<Value> {
        match req.field("grant_type") {
            None => Err(AuthFailure::invalid_request("Missing grant_type")),
            Some("client_credentials") => self.client_credentials(req).await,
            Some("authorization_code") => self.authorization_code(req).await,
            Some("refresh_token") => self.refresh_token(req).await,
            Some(_) => Err(AuthFailure::invalid_request("Unsupported grant_type")),
        }
    }

    /// `client_assertion`, then `Authorization: Basic`, then the form (spec §3.2).
    async fn client_credentials_of(&self, req: &TokenRequest<'_>) -> Result<ClientCredentials> {
        if let Some(kind) = req.form.get("client_assertion_type") {
            if kind != JWT_BEARER {
                return Err(AuthFailure::invalid_request(
                    "Unsupported client assertion type",
                ));
            }
            let assertion = req.field("client_assertion").unwrap_or("");
            let client_id = self.verify_client_assertion(assertion).await?;
            return Ok(ClientCredentials {
                id: Some(client_id),
                secret: None,
            });
        }
        if let Some(header) = req.authorization {
            let Some(encoded) = strip_scheme(header, "Basic") else {
                return Err(AuthFailure::invalid_request("Invalid authorization header"));
            };
            let (id, secret) = decode_basic(encoded)
                .ok_or_else(|| AuthFailure::invalid_request("Invalid authorization header"))?;
            return Ok(ClientCredentials {
                id: Some(id).filter(|s| !s.is_empty()),
                secret: Some(secret).filter(|s| !s.is_empty()),
            });
        }
        Ok(ClientCredentials {
            id: req.field("client_id").map(str::to_owned),
            secret: req.field("client_secret").map(str::to_owned),
        })
    }

    /// `private_key_jwt` (RFC 7523): the assertion's client, once verified against its JWKS.
    async fn verify_client_assertion(&self, assertion: &str) -> Result<String> {
        crate::assertion::verify(self, assertion).await
    }

    async fn client_credentials(&self, req: &TokenRequest<'_>) -> Result<Value> {
        let asserted = req.form.contains_key("client_assertion_type");
        let creds = self.client_credentials_of(req).await?;
        let id = creds
            .id
            .ok_or_else(|| AuthFailure::invalid_request("Missing client_id"))?;
        if !asserted && creds.secret.is_none() {
            return Err(AuthFailure::invalid_request("Missing client_secret"));
        }
        let found = self
            .client_caller(&id)
            .await?
            .ok_or_else(|| AuthFailure::invalid_request("Invalid client"))?;
        let (client, caller) = &*found;
        if !asserted {
            check_secret(client, creds.secret.as_deref().unwrap_or(""))?;
        }
        self.require_access(
            &caller.membership,
            &caller.project,
            req.remote_address.as_deref(),
        )
        .await
        .map_err(AuthFailure::into_oauth)?;
        let scope = req.field("scope").unwrap_or("openid").to_owned();
        if let Some(why) = scope_error(&scope, Grantee::Client) {
            return Err(AuthFailure::OAuth {
                status: 400,
                error: "invalid_scope",
                description: why,
            });
        }
        // Never stored (spec §0): the token names the client, which `authenticate` resolves.
        let login_id = oxmed_repo::meta::new_id();
        self.token_response(&Grant {
            login_id: &login_id,
            user: &caller.user,
            email: None,
            client: Some(client),
            membership: &caller.membership,
            project: &caller.project,
            scope: &scope,
            nonce: None,
            auth_time: now_secs(),
            refresh_secret: None,
            context: None,
        })
    }

    async fn authorization_code(&self, req: &TokenRequest<'_>) -> Result<Value> {
        let code = req
            .field("code")
            .ok_or_else(|| AuthFailure::invalid_request("Missing code"))?;
        let creds = self.client_credentials_of(req).await?;
        let Some((stored, value)) = self
            .repo()
            .system_find_one(
                oxmed_repo::Scope::Project(SERVER_PROJECT),
                "Login",
                &[("code", &digest(code))],
            )
            .await?
        else {
            return Err(AuthFailure::invalid_request("Invalid code"));
        };
        let mut login = Login::from_value(value.clone())?;
        let version = records::version_of(&value).unwrap_or_default().to_owned();
        if let Some(id) = &creds.id
            && login
                .client
                .as_ref()
                .and_then(|c| c.id_of("ClientApplication"))
                != Some(id)
        {
            return Err(AuthFailure::invalid_request("Invalid client"));
        }
        let Some(membership_id) = login.membership_id().map(str::to_owned) else {
            return Err(AuthFailure::invalid_request("Invalid profile"));
        };
        if login.is_granted() {
            // A code used twice: whoever holds it, the Login's tokens stop working.
            self.revoke_login(&stored.id).await?;
            return Err(AuthFailure::invalid_grant("Token already granted"));
        }
        if login.is_revoked() {
            return Err(AuthFailure::invalid_grant("Token revoked"));
        }
        let issued_at = stored.last_updated / 1_000_000;
        if now_secs() - issued_at > CODE_LIFETIME_SECS {
            return Err(AuthFailure::invalid_grant("Invalid code"));
        }
        let client_id = creds.id.clone().or_else(|| {
            login
                .client
                .as_ref()
                .and_then(|c| c.id_of("ClientApplication"))
                .map(str::to_owned)
        });
        // A login without a client (the first-party sign-in) is a public client: PKCE only.
        let client = match &client_id {
            Some(id) => Some(
                self.usable_client(id)
                    .await?
                    .ok_or_else(|| AuthFailure::invalid_request("Invalid client"))?,
            ),
            None => None,
        };
        match &client {
            Some(client) => self.check_pkce_or_secret(client, &login, &creds, req)?,
            None => verify_pkce(&login, req)?,
        }

        let (membership, project) = self
            .membership_and_project(&membership_id)
            .await?
            .ok_or_else(|| AuthFailure::invalid_request("Invalid profile"))?;
        let scope_text = login.scope.clone().unwrap_or_else(|| "openid".into());
        let refresh_secret = may_refresh(&scope_text, &project)
            .then(|| generate_secret(32))
            .transpose()?;
        // The code's digest stays on the Login: a second use finds it and revokes the Login.
        login.granted = Some(true);
        login.refresh_secret = refresh_secret.as_deref().map(digest);
        let written =
            records::put_if(self.repo(), SERVER_PROJECT, login.to_value(), &version).await?;
        if written.is_none() {
            // Redeemed concurrently: the other redemption won; this one is the replay.
            self.revoke_login(&stored.id).await?;
            return Err(AuthFailure::invalid_grant("Token already granted"));
        }
        let scope = LoginScope {
            client: client.as_ref(),
            membership: &membership,
            project: &project,
            scope: &scope_text,
        };
        self.login_tokens(&stored.id, &login, &scope, refresh_secret.as_deref())
            .await
    }

    /// PKCE unless the client opted out with `pkceOptional`; an opted-out client without PKCE
    /// must authenticate with its secret instead (Medplum would issue tokens to anyone).
    fn check_pkce_or_secret(
        &self,
        client: &ClientApplication,
        login: &Login,
        creds: &ClientCredentials,
        req: &TokenRequest<'_>,
    ) -> Result<()> {
        let challenge = login.code_challenge.as_deref();
        if client.is_pkce_optional() {
            if let Some(secret) = &creds.secret {
                check_secret(client, secret)?;
            }
            return match challenge {
                Some(_) => verify_pkce(login, req),
                None if creds.secret.is_some() => Ok(()),
                None => Err(AuthFailure::invalid_request("Missing client_secret")),
            };
        }
        if challenge.is_none() {
            return Err(AuthFailure::invalid_request("Missing verification context"));
        }
        verify_pkce(login, req)
    }

    async fn refresh_token(&self, req: &TokenRequest<'_>) -> Result<Value> {
        let invalid = || AuthFailure::invalid_request("Invalid refresh token");
        let token = req.field("refresh_token").ok_or_else(invalid)?;
        let claims: RefreshClaims = self
            .keys()
            .verify(
                token,
                &crate::jwt::VerifyOptions::new(self.config().issuer()),
            )
            .map_err(|_| invalid())?;
        if claims.refresh_secret.is_empty() {
            return Err(invalid());
        }
        let stored = self
            .repo()
            .system_read("Login", &claims.login_id)
            .await?
            .ok_or_else(invalid)?;
        let value = parse_stored(&stored)?;
        let version = records::version_of(&value).unwrap_or_default().to_owned();
        let mut login = Login::from_value(value)?;
        let Some(expected) = login.refresh_secret.clone() else {
            return Err(invalid());
        };
        if login.is_revoked() {
            return Err(AuthFailure::invalid_grant("Token revoked"));
        }
        let login_client = login
            .client
            .as_ref()
            .and_then(|c| c.id_of("ClientApplication"))
            .map(str::to_owned);
        if let Some(header) = req.authorization {
            let (id, secret) = strip_scheme(header, "Basic")
                .and_then(decode_basic)
                .ok_or_else(|| AuthFailure::invalid_request("Invalid authorization header"))?;
            if login_client.as_deref() != Some(id.as_str()) {
                return Err(AuthFailure::invalid_grant("Incorrect client"));
            }
            if secret.is_empty() {
                return Err(AuthFailure::invalid_grant("Incorrect client secret"));
            }
            let client = self
                .usable_client(&id)
                .await?
                .ok_or_else(|| AuthFailure::invalid_grant("Incorrect client"))?;
            // Medplum does not compare the secret; a wrong one is refused here.
            if check_secret(&client, &secret).is_err() {
                return Err(AuthFailure::invalid_grant("Incorrect client secret"));
            }
        }
        if !constant_time_eq(&expected, &digest(&claims.refresh_secret)) {
            // A signed refresh token of this Login with an old secret: a rotated-out token used
            // again, so it has leaked (RFC 9700 §4.14.2). The whole Login goes.
            self.revoke_login(&stored.id).await?;
            return Err(AuthFailure::invalid_grant("Invalid token"));
        }
        let membership_id = login
            .membership_id()
            .map(str::to_owned)
            .ok_or_else(invalid)?;
        let (membership, project) = self
            .membership_and_project(&membership_id)
            .await?
            .ok_or_else(invalid)?;
        let client = match &login_client {
            Some(id) => Some(
                self.usable_client(id)
                    .await?
                    .ok_or_else(|| AuthFailure::invalid_grant("Incorrect client"))?,
            ),
            None => None,
        };
        let secret = generate_secret(32)?;
        login.refresh_secret = Some(digest(&secret));
        login.remote_address = req.remote_address.clone();
        login.user_agent = req.user_agent.clone();
        let written =
            records::put_if(self.repo(), SERVER_PROJECT, login.to_value(), &version).await?;
        if written.is_none() {
            // Another refresh with the same token won the race: exactly one new token.
            return Err(AuthFailure::invalid_grant("Invalid token"));
        }
        let scope_text = login.scope.clone().unwrap_or_else(|| "openid".into());
        let scope = LoginScope {
            client: client.as_ref(),
            membership: &membership,
            project: &project,
            scope: &scope_text,
        };
        self.login_tokens(&stored.id, &login, &scope, Some(&secret))
            .await
    }

    /// The token response of a stored Login (code and refresh grants): its user's email for the
    /// ID token, its nonce and authentication time.
    async fn login_tokens(
        &self,
        login_id: &str,
        login: &Login,
        s: &LoginScope<'_>,
        refresh_secret: Option<&str>,
    ) -> Result<Value> {
        let user = self.user_of(&login.user).await?;
        let context = self.launch_context(login, s.membership, s.project).await?;
        self.token_response(&Grant {
            login_id,
            user: &login.user,
            email: user.as_ref().and_then(|u| u.email.as_deref()),
            client: s.client,
            membership: s.membership,
            project: s.project,
            scope: s.scope,
            nonce: login.nonce.as_deref(),
            auth_time: auth_time_secs(login),
            refresh_secret,
            context: Some(&context),
        })
    }

    /// Marks a Login revoked: every token minted from it stops working at once. False when no
    /// such Login is stored.
    pub async fn revoke_login(&self, login_id: &str) -> Result<bool> {
        let Some(stored) = self.repo().system_read("Login", login_id).await? else {
            return Ok(false);
        };
        self.mark_revoked(Login::from_value(parse_stored(&stored)?)?)
            .await?;
        Ok(true)
    }

    /// Writes an already read Login as revoked (a no-op if it is). Without `If-Match`: whatever
    /// else changed on it meanwhile, it is over.
    pub(crate) async fn mark_revoked(&self, mut login: Login) -> Result<()> {
        if !login.is_revoked() {
            login.revoked = Some(true);
            records::put(self.repo(), SERVER_PROJECT, login.to_value()).await?;
        }
        Ok(())
    }

    /// Revokes a Login and every Login continued from the same sign-in (same user, client and
    /// authentication time: see [`Auth::continue_session`]), which is what signing out ends.
    /// False if there is no such Login.
    pub async fn revoke_sign_in(&self, login_id: &str) -> Result<bool> {
        let Some(stored) = self.repo().system_read("Login", login_id).await? else {
            return Ok(false);
        };
        let login = Login::from_value(parse_stored(&stored)?)?;
        self.mark_revoked(login.clone()).await?;
        let siblings = self
            .repo()
            .system_search(
                oxmed_repo::Scope::Project(SERVER_PROJECT),
                "Login",
                &[("user", login.user.text()), ("_count", "1000")],
            )
            .await?;
        for r in &siblings {
            let other = Login::from_value(parse_stored(r)?)?;
            if r.id != login_id
                && !other.is_revoked()
                && other.auth_time == login.auth_time
                && other.client.as_ref().map(Reference::text)
                    == login.client.as_ref().map(Reference::text)
            {
                self.mark_revoked(other).await?;
            }
        }
        Ok(true)
    }

    pub(crate) async fn user_of(&self, user: &Reference) -> Result<Option<User>> {
        match user.id_of("User") {
            Some(id) => match self.repo().system_read("User", id).await? {
                Some(r) => Ok(Some(User::from_value(parse_stored(&r)?)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }
}

/// What a Login's tokens are for: its client, membership, project and scope.
struct LoginScope<'a> {
    client: Option<&'a ClientApplication>,
    membership: &'a ProjectMembership,
    project: &'a Project,
    scope: &'a str,
}

/// The current or the retiring secret, both compared every time (spec §3.2).
fn check_secret(client: &ClientApplication, secret: &str) -> Result<()> {
    let current = client.secret.as_deref().unwrap_or("");
    if current.is_empty() {
        return Err(AuthFailure::invalid_request("Invalid client"));
    }
    let retiring = client.retiring_secret.as_deref().unwrap_or("");
    let a = constant_time_eq(current, secret);
    let b = !retiring.is_empty() & constant_time_eq(retiring, secret);
    if a | b {
        Ok(())
    } else {
        Err(AuthFailure::invalid_request("Invalid secret"))
    }
}

fn verify_pkce(login: &Login, req: &TokenRequest<'_>) -> Result<()> {
    let challenge = login
        .code_challenge
        .as_deref()
        .ok_or_else(|| AuthFailure::invalid_request("Missing verification context"))?;
    let verifier = req
        .field("code_verifier")
        .ok_or_else(|| AuthFailure::invalid_request("Missing code verifier"))?;
    let method = login
        .code_challenge_method
        .as_deref()
        .and_then(|m| pkce::ChallengeMethod::parse(m).ok())
        .ok_or_else(|| AuthFailure::invalid_request("Invalid code verifier"))?;
    if pkce::verify(method, challenge, verifier) {
        Ok(())
    } else {
        Err(AuthFailure::invalid_request("Invalid code verifier"))
    }
}

/// Refresh tokens only for `offline`/`offline_access`, never in the super-admin project.
fn may_refresh(scope_text: &str, project: &Project) -> bool {
    scope::has_offline(scope_text) && !project.is_super_admin()
}

fn auth_time_secs(login: &Login) -> i64 {
    oxmed_repo::meta::parse_instant(&login.auth_time).map_or(0, |micros| micros / 1_000_000)
}
