//! ClientApplications made and kept by a project's admins (spec §13.1 `POST
//! /admin/projects/:projectId/client`, §3.9 `$rotate-secret`): a machine member of the project
//! with a 32-byte secret, and the rotation of that secret with an overlap, during which the
//! retiring secret still authenticates.

use oxmed_repo::parse_stored;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::failure::{AuthFailure, Result};
use crate::identity::{ClientApplication, Project};
use crate::records;
use crate::secret::{constant_time_eq, generate_secret};
use crate::security_request::put;
use crate::service::Auth;
use crate::session::Caller;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct NewClient {
    pub name: Option<String>,
    pub description: Option<String>,
    pub redirect_uri: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub access_policy: Option<Value>,
    pub identity_provider: Option<Value>,
    pub access_token_lifetime: Option<String>,
    pub refresh_token_lifetime: Option<String>,
}

const MAX_NAME_CHARS: usize = 128;

/// An absolute URI (`https://app/callback`, or a native app's `com.example.app:/callback`).
fn absolute_url(uri: &str) -> bool {
    url::Url::parse(uri).is_ok()
}

impl Auth {
    /// Makes a ClientApplication of `project` and its membership (user and profile the client,
    /// with the optional AccessPolicy), in one transaction; the client with its secret.
    pub async fn create_client(&self, project: &Project, req: &NewClient) -> Result<Value> {
        let name = req.name.as_deref().map(str::trim).unwrap_or_default();
        if name.is_empty() {
            return Err(AuthFailure::invalid("Client name is required"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(AuthFailure::invalid(format!(
                "Client name must be at most {MAX_NAME_CHARS} characters"
            )));
        }
        for lifetime in [&req.access_token_lifetime, &req.refresh_token_lifetime]
            .into_iter()
            .flatten()
        {
            crate::duration::parse(lifetime)
                .map_err(|_| AuthFailure::invalid("Invalid token lifetime"))?;
        }
        let uris: Vec<&String> = req
            .redirect_uri
            .iter()
            .chain(req.redirect_uris.iter().flatten())
            .collect();
        if let Some(bad) = uris.iter().find(|u| !absolute_url(u)) {
            let shown: String = bad.chars().take(100).collect();
            return Err(AuthFailure::invalid(format!(
                "Invalid redirect URI: {shown}"
            )));
        }
        if let Some(r) = req
            .access_policy
            .as_ref()
            .and_then(|p| p.get("reference"))
            .and_then(Value::as_str)
        {
            self.check_project_policy(project.id(), r).await?;
        }

        let id = oxmed_repo::meta::new_id();
        let mut client = json!({"resourceType": "ClientApplication", "id": id, "name": name,
            "status": "active", "secret": generate_secret(32)?});
        let optional = [
            ("description", req.description.as_ref().map(|v| json!(v))),
            ("redirectUri", req.redirect_uri.as_ref().map(|v| json!(v))),
            ("redirectUris", req.redirect_uris.as_ref().map(|v| json!(v))),
            ("identityProvider", req.identity_provider.clone()),
            (
                "accessTokenLifetime",
                req.access_token_lifetime.as_ref().map(|v| json!(v)),
            ),
            (
                "refreshTokenLifetime",
                req.refresh_token_lifetime.as_ref().map(|v| json!(v)),
            ),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                client[k] = v;
            }
        }
        let client_ref = json!({"reference": format!("ClientApplication/{id}"), "display": name});
        let mut membership = json!({"resourceType": "ProjectMembership",
            "id": oxmed_repo::meta::new_id(),
            "project": {"reference": format!("Project/{}", project.id())},
            "user": client_ref, "profile": client_ref});
        if let Some(p) = &req.access_policy {
            membership["accessPolicy"] = p.clone();
        }
        let p = project.id().to_owned();
        let written = self
            .repo()
            .system_transaction(vec![(p.clone(), put(client)), (p, put(membership))])
            .await?;
        let stored = written
            .first()
            .and_then(|w| w.resource.as_ref())
            .ok_or_else(|| AuthFailure::Internal("a client was not written".into()))?;
        Ok(parse_stored(stored)?)
    }

    /// `POST /fhir/R4/ClientApplication/:id/$rotate-secret` (spec §3.9): `secret`, the current
    /// one, becomes the retiring secret and a new one is made; `retiring_secret`, the current
    /// retiring one, is dropped. For admins of the client's project and super admins.
    pub async fn rotate_client_secret(
        &self,
        caller: &Caller,
        client_id: &str,
        secret: Option<&str>,
        retiring_secret: Option<&str>,
    ) -> Result<Value> {
        if !caller.is_admin() {
            return Err(AuthFailure::Forbidden);
        }
        let stored = self
            .repo()
            .system_read("ClientApplication", client_id)
            .await?
            .filter(|c| caller.is_super_admin() || c.project == caller.project_id())
            .ok_or(AuthFailure::NotFound)?;
        let secret = secret.filter(|s| !s.is_empty());
        let retiring_secret = retiring_secret.filter(|s| !s.is_empty());
        let project = stored.project.clone();
        let version = stored.version_id.clone();
        let mut client = ClientApplication::from_value(parse_stored(&stored)?)?;
        let same = |given: &str, held: &Option<String>| {
            held.as_deref()
                .is_some_and(|h| !h.is_empty() && constant_time_eq(h, given))
        };
        match (secret, retiring_secret) {
            (None, None) => {
                return Err(AuthFailure::invalid("Secret to rotate must be provided"));
            }
            (Some(_), Some(_)) => {
                return Err(AuthFailure::invalid(
                    "Only one secret can be rotated at a time",
                ));
            }
            (Some(s), None) if same(s, &client.secret) => {
                client.retiring_secret = client.secret.take();
                client.secret = Some(generate_secret(32)?);
            }
            (None, Some(r)) if same(r, &client.retiring_secret) => {
                client.retiring_secret = None;
            }
            _ => {
                return Err(AuthFailure::invalid(
                    "Provided secret does not match client",
                ));
            }
        }
        match records::put_if(self.repo(), &project, client.to_value(), &version).await? {
            Some(written) => Ok(written),
            // Rotated by someone else meanwhile: the secret given is no longer current.
            None => Err(AuthFailure::invalid(
                "Provided secret does not match client",
            )),
        }
    }
}

impl Auth {
    /// Whether browser code served from `origin` may read the answers given to `client_id`
    /// (CORS): the client is usable and lists the origin in `allowedOrigin`.
    pub async fn client_allows_origin(&self, client_id: &str, origin: &str) -> bool {
        if let Ok(Some(entry)) = self.client_caller(client_id).await {
            return entry.0.allowed_origin.iter().any(|o| o == origin);
        }
        matches!(
            self.usable_client(client_id).await,
            Ok(Some(client)) if client.allowed_origin.iter().any(|o| o == origin)
        )
    }
}
