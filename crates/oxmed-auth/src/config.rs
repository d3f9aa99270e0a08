//! What the authorization server needs to know about its deployment.

use std::time::Duration;

#[derive(Clone)]
pub struct AuthConfig {
    /// The public base URL, ending in `/` (`http://localhost:8103/`); also the token issuer.
    pub base_url: String,
    /// bcrypt cost of new password hashes (Medplum's `bcryptHashSalt`, 10 by default).
    pub bcrypt_cost: u32,
    /// The super admin created on first start.
    pub admin_email: String,
    /// Its password; `None`: a random one is generated and printed once.
    pub admin_password: Option<String>,
    /// How long a verified access token stays in the verification cache at most (it never
    /// outlives the token's own `exp`).
    pub token_cache_ttl: Duration,
    /// How long a cached Login or client is trusted without reading it again. Writes on this
    /// instance invalidate at once; this bounds how long a revocation made by another instance
    /// on the same database goes unseen here.
    pub session_recheck: Duration,
    /// Steps of 30 seconds a TOTP code may be early or late (Medplum's
    /// `mfaAuthenticatorWindow`, 1 by default).
    pub mfa_window: u32,
    /// The issuer an authenticator app shows beside the account.
    pub mfa_issuer: String,
    /// The algorithm of new signing keys: ES256 (Medplum's default) or RS256.
    pub signing_alg: crate::keys::KeyAlgorithm,
    /// How long a key signs before a new one takes over; `None`: only when asked.
    pub key_rotation: Option<Duration>,
    /// How long a replaced key keeps verifying: at least the longest token lifetime, or tokens
    /// it signed stop working early.
    pub key_overlap: Duration,
    /// How emails leave the server (spec §6).
    pub mailer: crate::email::MailerConfig,
    /// Where the links in emails point (`<app_base_url>setpassword/<id>/<secret>`); this
    /// server's own pages by default.
    pub app_base_url: String,
    /// How long a password-reset link works.
    pub reset_link_ttl: Duration,
    /// How long an invite's set-password link works.
    pub invite_link_ttl: Duration,
    /// Whether `/auth/newuser` registers anyone (Medplum's `registerEnabled`).
    pub register_enabled: bool,
    /// The server's reCAPTCHA keys (spec §4.5); without a secret key there is no check (but a
    /// project's site may have its own).
    pub recaptcha_site_key: Option<String>,
    pub recaptcha_secret_key: Option<String>,
    /// The siteverify endpoint the tokens are checked with.
    pub recaptcha_verify_url: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("base_url", &self.base_url)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("mailer", &self.mailer)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    pub fn new(base_url: &str) -> AuthConfig {
        let base_url = if base_url.ends_with('/') {
            base_url.to_owned()
        } else {
            format!("{base_url}/")
        };
        AuthConfig {
            base_url: base_url.clone(),
            bcrypt_cost: 10,
            admin_email: "admin@example.com".into(),
            admin_password: None,
            token_cache_ttl: Duration::from_secs(300),
            session_recheck: Duration::from_secs(30),
            mfa_window: 1,
            mfa_issuer: "oxmed".into(),
            signing_alg: crate::keys::KeyAlgorithm::Es256,
            key_rotation: None,
            // The default refresh-token lifetime (two weeks), plus a day.
            key_overlap: Duration::from_secs(15 * 24 * 3600),
            mailer: Default::default(),
            app_base_url: base_url.clone(),
            reset_link_ttl: Duration::from_secs(24 * 3600),
            invite_link_ttl: Duration::from_secs(7 * 24 * 3600),
            register_enabled: true,
            recaptcha_site_key: None,
            recaptcha_secret_key: None,
            recaptcha_verify_url: crate::recaptcha::GOOGLE_SITEVERIFY.into(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.base_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn token_url(&self) -> String {
        self.url("oauth2/token")
    }
}
