//! The claims of the three tokens Medplum issues, field for field.
//!
//! Times are NumericDate (seconds since the Unix epoch), signed as in most time
//! libraries. Optional claims are left out of the JSON when `None`, as Medplum leaves
//! them out, so a client that checks for a claim's presence sees the same token from
//! either server.
//!
//! `nbf` is always written but may be absent when read (it then reads as 0): tokens
//! minted elsewhere need not carry it, and the verifier checks the token's own JSON.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An access token. `sub` and `username` are the User or ClientApplication id;
/// `profile` is the membership's profile reference (e.g. `Practitioner/123`).
///
/// Unlike the ID token it carries no `email`, `fhirUser` or `patient`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub sub: String,
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub login_id: String,
    pub scope: String,
    pub profile: String,
    pub iat: i64,
    #[serde(default)]
    pub nbf: i64,
    pub exp: i64,
    /// A random token id, so that two tokens minted in the same second differ and
    /// a token can be looked up by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// An OpenID Connect ID token. `aud` is the client id; `fhirUser` the profile reference.
///
/// `aud` is optional only because a login may have no client; OpenID Connect
/// clients always get one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub login_id: String,
    #[serde(rename = "fhirUser")]
    pub fhir_user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub iat: i64,
    #[serde(default)]
    pub nbf: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// A refresh token. `refresh_secret` must match the one stored on the Login, so
/// a leaked-and-rotated refresh token stops working.
///
/// `Debug` redacts `refresh_secret`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub login_id: String,
    pub refresh_secret: String,
    pub iat: i64,
    #[serde(default)]
    pub nbf: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl fmt::Debug for RefreshClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshClaims")
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("client_id", &self.client_id)
            .field("login_id", &self.login_id)
            .field("refresh_secret", &"[redacted]")
            .field("iat", &self.iat)
            .field("nbf", &self.nbf)
            .field("exp", &self.exp)
            .field("jti", &self.jti)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn keys_of(v: &Value) -> Vec<String> {
        let mut k: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    #[test]
    fn access_claims_omit_absent_optionals() {
        let c = AccessClaims {
            iss: "https://example.com/".into(),
            aud: None,
            sub: "u1".into(),
            username: "u1".into(),
            client_id: None,
            login_id: "l1".into(),
            scope: "openid".into(),
            profile: "Practitioner/123".into(),
            iat: 1,
            nbf: 1,
            exp: 2,
            jti: None,
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            keys_of(&v),
            [
                "exp", "iat", "iss", "login_id", "nbf", "profile", "scope", "sub", "username"
            ]
        );
        assert_eq!(serde_json::from_value::<AccessClaims>(v).unwrap(), c);
    }

    #[test]
    fn access_claims_include_present_optionals() {
        let v = json!({
            "iss": "i", "aud": "c1", "sub": "u1", "username": "u1", "client_id": "c1",
            "login_id": "l1", "scope": "openid", "profile": "Patient/1",
            "iat": 1, "nbf": 1, "exp": 2, "jti": "j"
        });
        let c: AccessClaims = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.client_id.as_deref(), Some("c1"));
        assert_eq!(serde_json::to_value(&c).unwrap(), v);
    }

    #[test]
    fn absent_nbf_reads_as_zero() {
        let v = json!({
            "iss": "i", "sub": "u1", "username": "u1", "login_id": "l1", "scope": "openid",
            "profile": "Patient/1", "iat": 5, "exp": 9
        });
        let c: AccessClaims = serde_json::from_value(v).unwrap();
        assert_eq!(c.nbf, 0);
        assert_eq!(c.iat, 5);
    }

    #[test]
    fn access_claims_require_login_id() {
        let v = json!({
            "iss": "i", "sub": "u1", "username": "u1", "scope": "openid",
            "profile": "Patient/1", "iat": 1, "exp": 2
        });
        assert!(serde_json::from_value::<AccessClaims>(v).is_err());
    }

    #[test]
    fn id_claims_use_fhir_user_name() {
        let c = IdClaims {
            iss: "i".into(),
            aud: Some("c1".into()),
            sub: "u1".into(),
            client_id: Some("c1".into()),
            login_id: "l1".into(),
            fhir_user: "Practitioner/1".into(),
            email: None,
            nonce: Some("n".into()),
            auth_time: 5,
            iat: 5,
            nbf: 5,
            exp: 6,
            jti: None,
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["fhirUser"], "Practitioner/1");
        assert!(v.get("fhir_user").is_none());
        assert!(v.get("email").is_none());
        assert_eq!(v["nonce"], "n");
        assert_eq!(serde_json::from_value::<IdClaims>(v).unwrap(), c);
    }

    #[test]
    fn refresh_debug_hides_secret() {
        let c = RefreshClaims {
            iss: "i".into(),
            aud: None,
            client_id: None,
            login_id: "l1".into(),
            refresh_secret: "0123456789abcdef-secret".into(),
            iat: 1,
            nbf: 1,
            exp: 2,
            jti: None,
        };
        let debug = format!("{c:?}");
        assert!(!debug.contains("0123456789abcdef-secret"), "{debug}");
        assert!(debug.contains("l1"));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["refresh_secret"], "0123456789abcdef-secret");
        assert_eq!(
            keys_of(&v),
            ["exp", "iat", "iss", "login_id", "nbf", "refresh_secret"]
        );
    }
}
