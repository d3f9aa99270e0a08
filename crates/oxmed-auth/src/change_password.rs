//! `POST /auth/changepassword` (spec §4.4). Beyond Medplum (OWASP ASVS 3.3.3), a new password
//! ends the user's other sessions: whoever else held one may have learnt the old password.

use crate::failure::{AuthFailure, Result};
use crate::identity::{Login, Reference};
use crate::password;
use crate::service::Auth;
use crate::session::Caller;
use oxmed_repo::{SERVER_PROJECT, Scope, parse_stored};

pub const INCORRECT_PASSWORD: &str = "Incorrect password";

/// bcrypt reads 72 bytes; a longer password would be silently cut, so it is refused instead.
const MAX_PASSWORD_BYTES: usize = 72;
const MIN_PASSWORD_CHARS: usize = 8;

/// The length rule of a new password (spec §4.4 `/auth/newuser`, `/auth/changepassword`).
pub fn check_new_password(new_password: &str) -> Result<()> {
    if new_password.chars().count() < MIN_PASSWORD_CHARS || new_password.len() > MAX_PASSWORD_BYTES
    {
        return Err(AuthFailure::invalid(
            "Password must be between 8 and 72 characters",
        ));
    }
    Ok(())
}

impl Auth {
    pub async fn change_password(
        &self,
        caller: &Caller,
        old_password: &str,
        new_password: &str,
    ) -> Result<()> {
        check_new_password(new_password)?;
        let (mut user, version) = self.user_for_update(&caller.user).await?;
        let Some(hash) = user.password_hash.clone() else {
            return Err(AuthFailure::invalid("Existing password not set"));
        };
        let old = old_password.to_owned();
        let new = new_password.to_owned();
        let cost = self.config().bcrypt_cost;
        let new_hash = tokio::task::spawn_blocking(move || {
            if password::verify_password(&old, &hash) {
                password::hash_password(&new, cost).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
        .map_err(|e| AuthFailure::Internal(e.to_string()))??;
        let Some(new_hash) = new_hash else {
            return Err(AuthFailure::invalid(INCORRECT_PASSWORD));
        };
        user.password_hash = Some(new_hash);
        self.write_user(user, &version).await?;
        self.revoke_other_logins(&caller.user, &caller.login_id)
            .await
    }

    /// Revokes every live Login of `user` but `keep`, oldest first, a page at a time.
    pub(crate) async fn revoke_other_logins(&self, user: &Reference, keep: &str) -> Result<()> {
        const PAGE: usize = 500;
        let started = oxmed_repo::meta::now_micros();
        let mut after: Option<i64> = None;
        loop {
            // `ge` at millisecond precision: the page's last instant is read again, not skipped.
            let since = after.map(|t| format!("ge{}", oxmed_repo::meta::instant(t)));
            let mut params = vec![
                ("user", user.text()),
                ("_sort", "_lastUpdated"),
                ("_count", "500"),
            ];
            if let Some(s) = &since {
                params.push(("_lastUpdated", s));
            }
            let found = self
                .repo()
                .system_search(Scope::Project(SERVER_PROJECT), "Login", &params)
                .await?;
            for r in &found {
                // What this loop revoked comes back with a later timestamp: stop there.
                if r.id == keep || r.last_updated >= started {
                    continue;
                }
                self.mark_revoked(Login::from_value(parse_stored(r)?)?)
                    .await?;
            }
            let next = found.last().map(|last| last.last_updated / 1000);
            match next {
                Some(ms) if found.len() == PAGE && after.map(|a| a / 1000) != Some(ms) => {
                    after = Some(ms * 1000)
                }
                _ => return Ok(()),
            }
        }
    }
}
