//! Typed views of Medplum's identity resources (spec §0): the fields the auth code reads and
//! writes, with every other field kept as it was, so that a resource read, changed and written
//! back loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::failure::AuthFailure;

/// A FHIR Reference: `{"reference": "Type/id", "display": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Reference {
    pub fn to(resource_type: &str, id: &str) -> Reference {
        Reference {
            reference: Some(format!("{resource_type}/{id}")),
            ..Default::default()
        }
    }

    pub fn text(&self) -> &str {
        self.reference.as_deref().unwrap_or("")
    }

    /// `(type, id)` of a relative reference.
    pub fn parts(&self) -> Option<(&str, &str)> {
        let (t, id) = self.reference.as_deref()?.split_once('/')?;
        (!t.is_empty() && !id.is_empty() && !id.contains('/')).then_some((t, id))
    }

    /// The id, if the reference is to a resource of `resource_type`.
    pub fn id_of(&self, resource_type: &str) -> Option<&str> {
        self.parts()
            .filter(|(t, _)| *t == resource_type)
            .map(|(_, id)| id)
    }
}

macro_rules! resource_view {
    ($name:ident, $type_name:literal, { $($body:tt)* }) => {
        #[derive(Clone, Default, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[serde(default = $type_name)]
            pub resource_type: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub id: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub meta: Option<Value>,
            $($body)*
            #[serde(flatten)]
            pub rest: Map<String, Value>,
        }

        /// Only the type and id: these resources carry password hashes, client secrets and
        /// session digests, which must never reach a log through `{:?}`.
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}/{}", Self::TYPE, self.id())
            }
        }

        impl $name {
            pub const TYPE: &'static str = stringify!($name);

            pub fn from_value(v: Value) -> Result<$name, AuthFailure> {
                serde_json::from_value(v).map_err(|e| {
                    AuthFailure::Internal(format!("unreadable {}: {e}", Self::TYPE))
                })
            }

            pub fn to_value(&self) -> Value {
                let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("resourceType".into(), Value::String(Self::TYPE.into()));
                }
                v
            }

            pub fn id(&self) -> &str {
                self.id.as_deref().unwrap_or("")
            }

            /// `Type/id`.
            pub fn reference(&self) -> Reference {
                Reference::to(Self::TYPE, self.id())
            }

            /// The project the resource was stored in (`meta.project`).
            pub fn meta_project(&self) -> Option<&str> {
                self.meta.as_ref()?.get("project")?.as_str()
            }
        }
    };
}

fn login_type() -> String {
    "Login".into()
}
fn user_type() -> String {
    "User".into()
}
fn membership_type() -> String {
    "ProjectMembership".into()
}
fn project_type() -> String {
    "Project".into()
}
fn client_type() -> String {
    "ClientApplication".into()
}

resource_view!(Login, "login_type", {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Reference>,
    #[serde(default)]
    pub user: Reference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default)]
    pub auth_method: String,
    #[serde(default)]
    pub auth_time: String,
    /// SHA-256 of the browser session cookie (see `crate::secret_digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// SHA-256 of the authorization code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    /// SHA-256 of the current refresh secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
});

impl Login {
    pub fn is_revoked(&self) -> bool {
        self.revoked == Some(true)
    }
    pub fn is_granted(&self) -> bool {
        self.granted == Some(true)
    }
    /// `Project/new`: the sign-in of someone about to create a project (spec §4.1).
    pub fn is_new_project(&self) -> bool {
        self.project
            .as_ref()
            .is_some_and(|p| p.id_of("Project") == Some("new"))
    }
    /// The id of the membership chosen, once there is one.
    pub fn membership_id(&self) -> Option<&str> {
        self.membership.as_ref()?.id_of("ProjectMembership")
    }
}

resource_view!(User, "user_type", {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_enrolled: Option<bool>,
    /// Set: the user is project-scoped; unset: server-scoped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Reference>,
});

resource_view!(ProjectMembership, "membership_type", {
    #[serde(default)]
    pub project: Reference,
    #[serde(default)]
    pub user: Reference,
    #[serde(default)]
    pub profile: Reference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_policy: Option<Reference>,
});

impl ProjectMembership {
    pub fn is_active(&self) -> bool {
        self.active != Some(false)
    }
    pub fn is_admin(&self) -> bool {
        self.admin == Some(true)
    }
    pub fn project_id(&self) -> Option<&str> {
        self.project.id_of("Project")
    }
}

resource_view!(Project, "project_type", {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_admin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mode: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Reference>,
});

impl Project {
    pub fn is_super_admin(&self) -> bool {
        self.super_admin == Some(true)
    }

    /// `checkReferencesOnWrite` (spec §8.1).
    pub fn checks_references(&self) -> bool {
        self.rest.get("checkReferencesOnWrite") == Some(&serde_json::Value::Bool(true))
    }
}

resource_view!(ClientApplication, "client_type", {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_optional: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origin: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_scope: Vec<String>,
});

impl ClientApplication {
    /// A client whose `status` is set to anything but `active` cannot authenticate.
    pub fn is_usable(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "active")
    }
    pub fn is_pkce_optional(&self) -> bool {
        self.pkce_optional == Some(true)
    }
    /// Exact match against `redirectUris` and the legacy `redirectUri` (RFC 9700 §4.1).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uri.as_deref() == Some(uri) || self.redirect_uris.iter().any(|u| u == uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let v = json!({"resourceType": "Login", "id": "l1", "user": {"reference": "User/u"},
            "authMethod": "password", "authTime": "2026-01-01T00:00:00Z",
            "pictureUrl": "https://x", "granted": false, "meta": {"project": "p"}});
        let login = Login::from_value(v.clone()).unwrap();
        assert_eq!(login.user.id_of("User"), Some("u"));
        assert_eq!(login.meta_project(), Some("p"));
        assert!(!login.is_granted());
        assert_eq!(login.to_value(), v);
    }

    #[test]
    fn debug_shows_no_secret() {
        let u = User::from_value(json!({"resourceType": "User", "id": "u1",
            "passwordHash": "$2a$10$secret-hash", "mfaSecret": "MFASECRET"}))
        .unwrap();
        let c = ClientApplication::from_value(json!({"resourceType": "ClientApplication",
            "id": "c1", "secret": "client-secret"}))
        .unwrap();
        let shown = format!("{u:?} {c:?}");
        assert_eq!(shown, "User/u1 ClientApplication/c1");
    }

    #[test]
    fn references_split_only_relative_references() {
        assert_eq!(
            Reference::to("Patient", "1").parts(),
            Some(("Patient", "1"))
        );
        let abs = Reference {
            reference: Some("http://x/Patient/1".into()),
            ..Default::default()
        };
        assert_eq!(abs.parts(), None);
        assert_eq!(Reference::to("Patient", "1").id_of("User"), None);
    }

    #[test]
    fn client_rules() {
        let c = ClientApplication::from_value(json!({"resourceType": "ClientApplication",
            "redirectUris": ["https://app/cb"], "status": "off"}))
        .unwrap();
        assert!(!c.is_usable());
        assert!(c.allows_redirect("https://app/cb"));
        assert!(!c.allows_redirect("https://app/cb/"));
        assert!(!c.allows_redirect("https://app/"));
        let c =
            ClientApplication::from_value(json!({"resourceType": "ClientApplication"})).unwrap();
        assert!(c.is_usable());
    }
}
