//! Minting the access, id and refresh tokens of a Login (spec §3.3) and the token response
//! (spec §3.2).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::claims::{AccessClaims, IdClaims, RefreshClaims};
use crate::failure::{AuthFailure, Result};
use crate::identity::{ClientApplication, Project, ProjectMembership, Reference};
use crate::launch::LaunchContext;
use crate::service::Auth;
use crate::{duration, scope};

const DEFAULT_ACCESS: Duration = Duration::from_secs(3600);
const DEFAULT_REFRESH: Duration = Duration::from_secs(14 * 24 * 3600);
const ID_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Everything a token is minted from.
pub struct Grant<'a> {
    pub login_id: &'a str,
    /// `User/<id>` or `ClientApplication/<id>`.
    pub user: &'a Reference,
    /// The User's email, for the id token's `email` claim.
    pub email: Option<&'a str>,
    pub client: Option<&'a ClientApplication>,
    pub membership: &'a ProjectMembership,
    pub project: &'a Project,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    /// Seconds since the epoch.
    pub auth_time: i64,
    /// The new refresh secret, when the Login may refresh.
    pub refresh_secret: Option<&'a str>,
    /// The patient and encounter of a user's Login (none for a client's own token).
    pub context: Option<&'a LaunchContext>,
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn lifetime(configured: Option<&str>, default: Duration) -> Result<Duration> {
    match configured {
        // A lifetime that slipped past validation is a server fault, not the caller's.
        Some(s) => duration::parse(s).map_err(AuthFailure::from),
        None => Ok(default),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Auth {
    /// The token response JSON of `/oauth2/token`.
    pub fn token_response(&self, g: &Grant<'_>) -> Result<Value> {
        let now = now_secs();
        let issuer = self.config().issuer().to_owned();
        let client_id = g.client.map(|c| c.id().to_owned());
        let access_life = secs(lifetime(
            g.client.and_then(|c| c.access_token_lifetime.as_deref()),
            DEFAULT_ACCESS,
        )?);
        let subject = g
            .user
            .parts()
            .map(|(_, id)| id.to_owned())
            .unwrap_or_default();
        let profile = g.membership.profile.text().to_owned();
        let keys = self.keys();
        let access = keys.sign(&AccessClaims {
            iss: issuer.clone(),
            aud: client_id.clone(),
            sub: subject.clone(),
            username: subject.clone(),
            client_id: client_id.clone(),
            login_id: g.login_id.to_owned(),
            scope: g.scope.to_owned(),
            profile: profile.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(access_life),
            jti: None,
        })?;
        let email = if scope::contains_email(g.scope) && g.user.id_of("User").is_some() {
            g.email.map(str::to_owned)
        } else {
            None
        };
        let id_token = keys.sign(&IdClaims {
            iss: issuer.clone(),
            aud: client_id.clone(),
            sub: subject,
            client_id: client_id.clone(),
            login_id: g.login_id.to_owned(),
            fhir_user: profile.clone(),
            email,
            nonce: g.nonce.map(str::to_owned),
            auth_time: g.auth_time,
            iat: now,
            nbf: now,
            exp: now.saturating_add(secs(ID_TOKEN_LIFETIME)),
            jti: None,
        })?;
        let refresh_token = match g.refresh_secret {
            Some(secret) => {
                let life = secs(lifetime(
                    g.client.and_then(|c| c.refresh_token_lifetime.as_deref()),
                    DEFAULT_REFRESH,
                )?);
                Some(keys.sign(&RefreshClaims {
                    iss: issuer,
                    aud: client_id.clone(),
                    client_id,
                    login_id: g.login_id.to_owned(),
                    refresh_secret: secret.to_owned(),
                    iat: now,
                    nbf: now,
                    exp: now.saturating_add(life),
                    jti: None,
                })?)
            }
            None => None,
        };
        let mut project = json!({"reference": format!("Project/{}", g.project.id())});
        if let Some(name) = &g.project.name {
            project["display"] = json!(name);
        }
        let mut body = json!({
            "token_type": "Bearer",
            "expires_in": access_life,
            "scope": g.scope,
            "id_token": id_token,
            "access_token": access,
            "project": project,
            "profile": g.membership.profile,
            "smart_style_url": self.config().url("fhir/R4/.well-known/smart-styles.json"),
            "need_patient_banner": false,
        });
        if let Some(t) = refresh_token {
            body["refresh_token"] = json!(t);
        }
        if let Some(context) = g.context {
            if let Some(patient) = context.patient_id() {
                body["patient"] = json!(patient);
                body["need_patient_banner"] = json!(true);
            }
            if let Some(encounter) = context.encounter_id() {
                body["encounter"] = json!(encounter);
            }
            // SMART 2.2: the launch's resources beyond the patient, as references.
            if let Some(encounter) = &context.encounter {
                body["fhirContext"] = json!([{"reference": encounter}]);
            }
        }
        Ok(body)
    }
}
