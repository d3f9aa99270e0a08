//! Multi-factor sign-in with TOTP codes (spec §4.6): enrolment of an authenticator app, the
//! second step of a password login, and turning it off. Beyond Medplum, a code is accepted once:
//! a step already used by that user is refused (RFC 6238 §5.2, OWASP ASVS 2.8.4).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::failure::{AuthFailure, Result};
use crate::identity::{Reference, User};
use crate::login::LoginResult;
use crate::records;
use crate::service::Auth;
use crate::session::Caller;
use crate::tokens::now_secs;
use crate::totp;
use oxmed_repo::{SERVER_PROJECT, parse_stored};

/// Texts clients match on (spec §4.6).
pub const INVALID_TOKEN: &str = "Invalid token";
pub const INVALID_MFA_TOKEN: &str = "Invalid MFA token";

/// The last TOTP step each user had accepted, so that a code works once. Kept in memory: a code
/// lives 30 to 90 seconds, so forgetting after a restart reopens nothing that matters.
#[derive(Default)]
pub(crate) struct UsedSteps(Mutex<HashMap<String, u64>>);

impl UsedSteps {
    /// Records `step` for `user` unless that step or a later one was used already.
    fn accept(&self, user: &str, step: u64) -> bool {
        let mut used = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() > 100_000 {
            let oldest_live = now_secs().max(0) as u64 / totp::STEP_SECONDS;
            used.retain(|_, s| *s + 4 > oldest_live);
        }
        match used.get(user) {
            Some(last) if *last >= step => false,
            _ => {
                used.insert(user.to_owned(), step);
                true
            }
        }
    }
}

impl Auth {
    /// `GET /auth/mfa/status`: enrolled, or the secret to enrol with (made once, then kept).
    pub async fn mfa_status(&self, caller: &Caller) -> Result<Value> {
        let (user, _) = self.user_for_update(&caller.user).await?;
        if user.mfa_enrolled == Some(true) {
            return Ok(json!({"enrolled": true}));
        }
        let (enroll_uri, enroll_qr_code) = self.enroll_material(&caller.user).await?;
        Ok(json!({"enrolled": false, "enrollUri": enroll_uri, "enrollQrCode": enroll_qr_code}))
    }

    /// `POST /auth/mfa/enroll {token}`.
    pub async fn mfa_enroll(&self, caller: &Caller, token: &str) -> Result<()> {
        let (mut user, version) = self.user_for_update(&caller.user).await?;
        if user.mfa_enrolled == Some(true) {
            return Err(AuthFailure::invalid("Already enrolled"));
        }
        let secret = enrolment_secret(&user)?;
        self.check_code(user.id(), &secret, token, INVALID_TOKEN)?;
        user.mfa_enrolled = Some(true);
        self.write_user(user, &version).await
    }

    /// `POST /auth/mfa/disable {token}`: needs a current code, and rotates the secret so that
    /// an old authenticator cannot be re-enrolled silently.
    pub async fn mfa_disable(&self, caller: &Caller, token: &str) -> Result<()> {
        let (mut user, version) = self.user_for_update(&caller.user).await?;
        let secret = enrolment_secret(&user)?;
        if user.mfa_enrolled != Some(true) {
            return Err(AuthFailure::invalid("User not enrolled in MFA"));
        }
        self.check_code(user.id(), &secret, token, INVALID_TOKEN)?;
        user.mfa_enrolled = Some(false);
        user.mfa_secret = Some(totp::generate_secret()?);
        self.write_user(user, &version).await
    }

    /// `POST /auth/mfa/verify {login, token}`: the second step of a password login.
    pub async fn mfa_verify(&self, login_id: &str, token: &str) -> Result<LoginResult> {
        if token.is_empty() {
            return Err(AuthFailure::invalid("Missing token"));
        }
        let (mut login, version) = self.pending_login(login_id).await?;
        let user = self
            .user_of(&login.user)
            .await?
            .ok_or_else(|| AuthFailure::invalid("User not found"))?;
        let secret = match (&user.mfa_secret, user.mfa_enrolled) {
            (Some(s), Some(true)) => s.clone(),
            _ => return Err(AuthFailure::invalid("User not enrolled in MFA")),
        };
        self.check_code(user.id(), &secret, token, INVALID_MFA_TOKEN)?;
        login.mfa_verified = Some(true);
        self.login_result(login, &version, true).await
    }

    /// `POST /auth/mfa/login-enroll {login, token}`: a user invited with `mfaRequired` enrols
    /// during sign-in, which also verifies this login.
    pub async fn mfa_login_enroll(&self, login_id: &str, token: &str) -> Result<LoginResult> {
        if token.is_empty() {
            return Err(AuthFailure::invalid("Missing token"));
        }
        let (mut login, login_version) = self.pending_login(login_id).await?;
        let (mut user, user_version) = self.user_for_update(&login.user).await?;
        if user.mfa_enrolled == Some(true) {
            return Err(AuthFailure::invalid("Already enrolled"));
        }
        let secret = enrolment_secret(&user)?;
        self.check_code(user.id(), &secret, token, INVALID_MFA_TOKEN)?;
        user.mfa_enrolled = Some(true);
        self.write_user(user, &user_version).await?;
        login.mfa_verified = Some(true);
        self.login_result(login, &login_version, true).await
    }

    /// `User/<id>` of a Login, to count failed codes per account whatever login they come from.
    pub async fn login_account(&self, login_id: &str) -> Option<String> {
        let (login, _) = self.login_for_update(login_id).await.ok()?;
        Some(login.user.text().to_owned())
    }

    /// The `otpauth://` URI and its QR code for the user's secret, creating the secret once.
    pub(crate) async fn enroll_material(&self, user_ref: &Reference) -> Result<(String, String)> {
        let (mut user, version) = self.user_for_update(user_ref).await?;
        let secret = match user.mfa_secret.clone() {
            Some(s) => s,
            None => {
                let s = totp::generate_secret()?;
                user.mfa_secret = Some(s.clone());
                self.write_user(user.clone(), &version).await?;
                s
            }
        };
        let issuer = &self.config().mfa_issuer;
        let label = format!("{issuer} - {}", user.email.as_deref().unwrap_or_default());
        let uri = totp::otpauth_uri(&secret, &label, issuer);
        let qr = totp::qr_data_url(&uri)?;
        Ok((uri, qr))
    }

    /// A Login still in its MFA step.
    async fn pending_login(&self, login_id: &str) -> Result<(crate::identity::Login, String)> {
        let (login, version) = self.login_for_update(login_id).await?;
        if login.is_revoked() {
            return Err(AuthFailure::invalid("Login revoked"));
        }
        if login.is_granted() {
            return Err(AuthFailure::invalid("Login granted"));
        }
        if login.mfa_verified == Some(true) {
            return Err(AuthFailure::invalid("Login already verified"));
        }
        Ok((login, version))
    }

    fn check_code(&self, user_id: &str, secret: &str, token: &str, wrong: &str) -> Result<()> {
        let now = now_secs().max(0) as u64;
        match totp::matching_step(secret, token.trim(), now, self.config().mfa_window) {
            Some(step) if self.used_steps().accept(user_id, step) => Ok(()),
            _ => Err(AuthFailure::invalid(wrong)),
        }
    }

    /// A User (a caller that is a client has none: 400) and its version.
    pub(crate) async fn user_for_update(&self, user: &Reference) -> Result<(User, String)> {
        let id = user
            .id_of("User")
            .ok_or_else(|| AuthFailure::invalid("User not found"))?;
        let stored = self
            .repo()
            .system_read("User", id)
            .await?
            .ok_or_else(|| AuthFailure::invalid("User not found"))?;
        let value = parse_stored(&stored)?;
        let version = records::version_of(&value).unwrap_or_default().to_owned();
        Ok((User::from_value(value)?, version))
    }

    /// Writes a User in its own partition (its project, or the server's), unless it changed
    /// since it was read.
    pub(crate) async fn write_user(&self, user: User, version: &str) -> Result<()> {
        let project = user.meta_project().unwrap_or(SERVER_PROJECT).to_owned();
        records::put_if(self.repo(), &project, user.to_value(), version)
            .await?
            .map(|_| ())
            .ok_or_else(|| AuthFailure::invalid("User changed, please try again"))
    }
}

/// The user's TOTP secret, made by `/auth/mfa/status` (spec §4.6: "Secret not found" before).
fn enrolment_secret(user: &User) -> Result<String> {
    user.mfa_secret
        .clone()
        .ok_or_else(|| AuthFailure::invalid("Secret not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_accepted_once_per_user() {
        let used = UsedSteps::default();
        assert!(used.accept("u1", 100));
        assert!(!used.accept("u1", 100), "the same code again");
        assert!(!used.accept("u1", 99), "an older code after a newer one");
        assert!(used.accept("u2", 100), "another user is not affected");
        assert!(used.accept("u1", 101));
    }
}
