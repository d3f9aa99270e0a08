//! `/oauth2/introspect` (RFC 7662, spec §3.7), `/oauth2/revoke` (RFC 7009, beyond Medplum) and
//! `/oauth2/userinfo` (spec §3.6).

use serde_json::{Value, json};

use crate::claims::RefreshClaims;
use crate::failure::Result;
use crate::jwt::VerifyOptions;
use crate::service::Auth;
use crate::session::Caller;
use oxmed_repo::parse_stored;

impl Auth {
    /// `{active: true, ...}` for an access token whose Login is live; `{active: false}` for
    /// anything else.
    pub async fn introspect(&self, token: &str) -> Result<Value> {
        let inactive = json!({"active": false});
        let Ok(claims) = self.verify_access_token(token) else {
            return Ok(inactive);
        };
        // The same check as a request with this token: a revoked Login, or a client switched
        // off, is inactive.
        let Ok(caller) = self.authenticate(Some(&format!("Bearer {token}"))).await else {
            return Ok(inactive);
        };
        let mut body = json!({
            "active": true,
            "iat": claims.iat,
            "exp": claims.exp,
            "iss": claims.iss,
            "sub": claims.sub,
            "client_id": claims.client_id,
            "scope": claims.scope,
            "token_type": "Bearer",
        });
        if let Some(patient) = caller
            .patient
            .as_deref()
            .and_then(|p| p.strip_prefix("Patient/"))
        {
            body["patient"] = json!(patient);
        }
        Ok(body)
    }

    /// Revokes the Login of an access or refresh token (RFC 7009 §2.1: revoking either ends
    /// the grant). An invalid or unknown token is not an error (§2.2).
    pub async fn revoke_token(&self, token: &str) -> Result<()> {
        if let Ok(claims) = self.verify_access_token(token) {
            if let Ok(caller) = self.authenticate(Some(&format!("Bearer {token}"))).await {
                return self.logout(&caller).await;
            }
            return self.revoke_login(&claims.login_id).await.map(drop);
        }
        let options = VerifyOptions::new(self.config().issuer());
        if let Ok(claims) = self.keys().verify::<RefreshClaims>(token, &options) {
            return self.revoke_login(&claims.login_id).await.map(drop);
        }
        Ok(())
    }

    /// The OpenID Connect claims of the caller (spec §3.6): `sub` is the profile's id.
    pub async fn userinfo(&self, caller: &Caller) -> Result<Value> {
        let profile_ref = caller.profile();
        // The ID token's `sub` (the user), as OpenID Connect Core §5.3.2 requires; Medplum
        // answers the profile id here. The profile is the `profile` claim.
        let mut body = json!({"sub": caller.user.parts().map(|(_, id)| id).unwrap_or_default()});
        let scope: Vec<&str> = caller.scope.split_whitespace().collect();
        let profile = match profile_ref.parts() {
            Some((t, id)) => match self.repo().system_read(t, id).await? {
                Some(r) => parse_stored(&r)?,
                None => Value::Null,
            },
            None => Value::Null,
        };
        if scope.contains(&"profile") {
            let name = &profile["name"][0];
            let given = name["given"][0].as_str().unwrap_or("");
            let family = name["family"].as_str().unwrap_or("");
            body["profile"] = json!(profile_ref.text());
            body["name"] = json!(format!("{given} {family}").trim());
            body["given_name"] = json!(given);
            body["family_name"] = json!(family);
            body["birthdate"] = profile.get("birthDate").cloned().unwrap_or(json!(""));
            body["locale"] = json!("en-US");
            body["updated_at"] = profile["meta"]["lastUpdated"].clone();
        }
        if scope.contains(&"email") {
            match self.user_of(&caller.user).await? {
                Some(user) if user.email.is_some() => {
                    body["email"] = json!(user.email);
                    body["email_verified"] = json!(user.email_verified == Some(true));
                }
                _ => {
                    let email = profile["telecom"]
                        .as_array()
                        .and_then(|t| t.iter().find(|c| c["system"] == "email"))
                        .and_then(|c| c["value"].as_str());
                    if let Some(email) = email {
                        body["email"] = json!(email);
                        body["email_verified"] = json!(false);
                    }
                }
            }
        }
        if scope.contains(&"phone") {
            let phone = profile["telecom"]
                .as_array()
                .and_then(|t| t.iter().find(|c| c["system"] == "phone"))
                .and_then(|c| c["value"].as_str());
            body["phone_number"] = json!(phone.unwrap_or(""));
            body["phone_number_verified"] = json!(false);
        }
        if scope.contains(&"address") {
            let a = &profile["address"][0];
            body["address"] = json!({"formatted": a["text"].as_str().unwrap_or("")});
        }
        Ok(body)
    }
}
