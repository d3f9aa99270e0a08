//! `private_key_jwt` client authentication (RFC 7523 §2.2, spec §3.2): a JWT signed with the
//! client's own key, verified against the JWK Set at the client's `jwksUri`. Beyond Medplum:
//! the assertion must expire within five minutes and its `jti` can be used once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::failure::{AuthFailure, Result};
use crate::service::Auth;
use crate::tokens::now_secs;

/// The longest an assertion may live from now (RFC 7523 leaves it to the server; five minutes
/// is what SMART Backend Services asks of clients).
const MAX_LIFETIME_SECS: i64 = 300;
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

#[derive(Deserialize)]
struct Unverified {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Verified {
    exp: i64,
    #[serde(default)]
    jti: Option<String>,
}

/// `jti`s seen, with the `exp` after which they may be forgotten.
#[derive(Default)]
pub(crate) struct SeenAssertions {
    seen: Mutex<HashMap<String, i64>>,
}

impl SeenAssertions {
    /// Records `jti`; false if it was already there.
    fn first_use(&self, jti: &str, exp: i64) -> bool {
        let now = now_secs();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 100_000 {
            seen.retain(|_, until| *until >= now);
        }
        if seen.get(jti).is_some_and(|until| *until >= now) {
            return false;
        }
        seen.insert(jti.to_owned(), exp);
        true
    }
}

fn invalid(description: &str) -> AuthFailure {
    AuthFailure::invalid_request(description)
}

/// The client id an assertion authenticates.
pub(crate) async fn verify(auth: &Auth, assertion: &str) -> Result<String> {
    let payload = assertion
        .split('.')
        .nth(1)
        .filter(|_| assertion.split('.').count() == 3)
        .ok_or_else(|| invalid("Invalid client assertion"))?;
    let claims: Unverified = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("Invalid client assertion"))?;
    let token_url = auth.config().token_url();
    let audience_ok = match &claims.aud {
        Some(serde_json::Value::String(a)) => *a == token_url,
        Some(serde_json::Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(&token_url)),
        _ => false,
    };
    if !audience_ok {
        return Err(invalid("Invalid client assertion audience"));
    }
    let client_id = match (&claims.iss, &claims.sub) {
        (Some(iss), Some(sub)) if iss == sub && !iss.is_empty() => iss.clone(),
        _ => return Err(invalid("Invalid client assertion issuer")),
    };
    let found = auth
        .client_caller(&client_id)
        .await?
        .ok_or_else(|| invalid("Client not found"))?;
    let jwks_uri = found
        .0
        .jwks_uri
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid("Client must have a JWK Set URL"))?;
    let jwks = fetch_jwks(&jwks_uri).await?;
    let header =
        jsonwebtoken::decode_header(assertion).map_err(|_| invalid("Invalid client assertion"))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(invalid("Invalid client assertion signature"));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&client_id]);
    validation.set_audience(&[&token_url]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = 0;
    let mut verified: Option<Verified> = None;
    for jwk in &jwks.keys {
        if let Some(kid) = &header.kid
            && jwk.common.key_id.as_deref().is_some_and(|k| k != kid)
        {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<Verified>(assertion, &key, &validation) {
            verified = Some(data.claims);
            break;
        }
    }
    let verified = verified.ok_or_else(|| invalid("Invalid client assertion signature"))?;
    if verified.exp - now_secs() > MAX_LIFETIME_SECS {
        return Err(invalid("Invalid client assertion"));
    }
    let jti = verified
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| invalid("Invalid client assertion"))?;
    if !auth
        .assertions()
        .first_use(&format!("{client_id}:{jti}"), verified.exp)
    {
        return Err(invalid("Invalid client assertion"));
    }
    Ok(client_id)
}

async fn fetch_jwks(uri: &str) -> Result<JwkSet> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AuthFailure::Internal(e.to_string()))?;
    let resp = client
        .get(uri)
        .send()
        .await
        .map_err(|_| invalid("Invalid client assertion signature"))?;
    if !resp.status().is_success() {
        return Err(invalid("Invalid client assertion signature"));
    }
    resp.json::<JwkSet>()
        .await
        .map_err(|_| invalid("Invalid client assertion signature"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_until_it_expires() {
        let seen = SeenAssertions::default();
        let later = now_secs() + 60;
        assert!(seen.first_use("c:1", later));
        assert!(!seen.first_use("c:1", later));
        assert!(seen.first_use("c:2", later));
        // Expired entries may be reused (the assertion itself would be refused as expired).
        assert!(seen.first_use("c:old", now_secs() - 10));
        assert!(seen.first_use("c:old", later));
    }
}
