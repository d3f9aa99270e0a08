//! reCAPTCHA on registration and password reset (spec §4.5), off unless a secret key is
//! configured, for the server or for a project's site. The token is verified with the
//! siteverify endpoint (Google's by default); anything but a clear success refuses.

use std::time::Duration;

use oxmed_repo::Scope;
use serde_json::Value;

use crate::failure::{AuthFailure, Result};
use crate::service::Auth;

pub const GOOGLE_SITEVERIFY: &str = "https://www.google.com/recaptcha/api/siteverify";

/// What a request carried for the check.
#[derive(Default)]
pub struct RecaptchaInput<'a> {
    pub token: Option<&'a str>,
    pub site_key: Option<&'a str>,
    pub project_id: Option<&'a str>,
    /// `/auth/newuser`: a project's site key also needs the project open to registration.
    pub registration: bool,
}

impl Auth {
    pub async fn check_recaptcha(&self, input: &RecaptchaInput<'_>) -> Result<()> {
        let config = self.config();
        let site_key = input.site_key.filter(|k| !k.is_empty());
        let secret = match site_key {
            Some(key) if Some(key) != config.recaptcha_site_key.as_deref() => {
                Some(self.project_recaptcha_secret(key, input).await?)
            }
            _ => config.recaptcha_secret_key.clone(),
        };
        let Some(secret) = secret else {
            return Ok(());
        };
        let Some(token) = input.token.filter(|t| !t.is_empty()) else {
            return Err(AuthFailure::invalid("Recaptcha token is required"));
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AuthFailure::Internal(e.to_string()))?;
        let verified = client
            .post(&config.recaptcha_verify_url)
            .form(&[("secret", secret.as_str()), ("response", token)])
            .send()
            .await;
        let success = match verified {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .is_ok_and(|v| v["success"] == Value::Bool(true)),
            Ok(r) => {
                tracing::warn!(status = %r.status(), "reCAPTCHA verification answered an error");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "reCAPTCHA verification failed");
                false
            }
        };
        if success {
            Ok(())
        } else {
            Err(AuthFailure::invalid("Recaptcha failed"))
        }
    }

    /// The secret of the project site whose `recaptchaSiteKey` is `key`.
    async fn project_recaptcha_secret(
        &self,
        key: &str,
        input: &RecaptchaInput<'_>,
    ) -> Result<String> {
        // A project's site key counts only for that project (named with it): anyone can make
        // a project whose site key and secret they hold, which must not let them pass the
        // server's own check for a server-scoped account.
        let Some(project) = input.project_id.filter(|p| !p.is_empty() && *p != "new") else {
            return Err(AuthFailure::invalid("Invalid recaptchaSiteKey"));
        };
        let query = vec![("recaptcha-site-key", key), ("_id", project)];
        let found = self
            .repo()
            .system_find_one(Scope::AllProjects, "Project", &query)
            .await?;
        let Some((_, project)) = found else {
            return Err(AuthFailure::invalid("Invalid recaptchaSiteKey"));
        };
        let secret = project["site"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["recaptchaSiteKey"] == key)
            .and_then(|s| s["recaptchaSecretKey"].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| AuthFailure::invalid("Invalid recaptchaSecretKey"))?;
        if input.registration && project.get("defaultPatientAccessPolicy").is_none() {
            return Err(AuthFailure::invalid(
                "Project does not allow open registration",
            ));
        }
        Ok(secret)
    }
}
