//! Signing and verifying the server's JWTs with its key set.
//!
//! Verification trusts nothing in the token before the signature is checked: the
//! header only selects one of our own keys by `kid`, and its `alg` must be that
//! key's algorithm. This shuts out `alg: none`, HMAC tokens keyed with a public key,
//! and keys smuggled in through `jwk`/`jku`/`x5u` headers.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::JwtError;
use crate::keys::{KeyAlgorithm, SigningKey};

/// The largest clock leeway [`VerifyOptions`] honours. More would let long-expired
/// tokens in, and the arithmetic in the validator must not wrap.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Seconds since the Unix epoch, the unit of `iat`, `nbf` and `exp`.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What [`KeySet::verify`] checks besides the signature and the `kid`/`alg` pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions<'a> {
    /// `iss` must be present and equal to this.
    pub issuer: &'a str,
    /// When set, `aud` must be present and equal to it (or contain it, if a list).
    pub audience: Option<&'a str>,
    /// Seconds of clock skew tolerated on `exp` and `nbf`, capped at [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

impl<'a> VerifyOptions<'a> {
    /// Checks `iss == issuer`, no audience, no leeway.
    pub fn new(issuer: &'a str) -> Self {
        Self {
            issuer,
            audience: None,
            leeway_secs: 0,
        }
    }

    /// Also requires `aud` to be `audience`.
    pub fn audience(self, audience: &'a str) -> Self {
        Self {
            audience: Some(audience),
            ..self
        }
    }

    /// Tolerates `secs` of clock skew (at most [`MAX_LEEWAY_SECS`]).
    pub fn leeway(self, secs: u64) -> Self {
        Self {
            leeway_secs: secs,
            ..self
        }
    }
}

/// One key ready for use; the jsonwebtoken forms are built once, not per token.
struct Entry {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The keys tokens are signed and verified with.
///
/// The first key signs; every key verifies, so tokens signed before a key
/// rotation stay valid until they expire.
pub struct KeySet {
    entries: Vec<Entry>,
    jwks: Value,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.entries.iter().map(|e| e.kid.as_str()).collect();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

/// The header members verification looks at before trusting anything else.
struct UntrustedHeader {
    alg: String,
    kid: Option<String>,
}

/// The `kid` a compact JWS names, unverified.
pub fn kid_of(token: &str) -> Option<String> {
    read_header(token).ok()?.kid
}

/// The `iss` of a compact JWS, unverified: only for choices that grant nothing (which client a
/// CORS answer is for), never for authentication.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Reads the header of a compact JWS without verifying anything.
fn read_header(token: &str) -> Result<UntrustedHeader, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtError::Malformed)?;
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(JwtError::Malformed);
    };
    // RFC 7515 §4.1.11: extensions marked critical that we do not implement
    // (we implement none) make the token unusable.
    if header.contains_key("crit") {
        return Err(JwtError::Malformed);
    }
    let Some(Value::String(alg)) = header.get("alg") else {
        return Err(JwtError::Malformed);
    };
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        _ => None,
    };
    Ok(UntrustedHeader {
        alg: alg.clone(),
        kid,
    })
}

/// Maps the validator's failure onto ours. A claim that is checked against a
/// configured value and is missing counts as not matching it.
fn map_error(kind: &ErrorKind) -> JwtError {
    match kind {
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => JwtError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => JwtError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => JwtError::MissingClaim(c.clone()),
        ErrorKind::InvalidAlgorithm => JwtError::DisallowedAlgorithm,
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            JwtError::InvalidKey
        }
        ErrorKind::InvalidToken
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => JwtError::Malformed,
        other => {
            tracing::debug!(error = ?other, "unexpected JWT verification failure");
            JwtError::Malformed
        }
    }
}

impl KeySet {
    /// A key set whose first key signs.
    ///
    /// If two keys share an id, the first is used for that `kid`.
    pub fn new(keys: Vec<SigningKey>) -> Result<Self, JwtError> {
        if keys.is_empty() {
            return Err(JwtError::NoKeys);
        }
        let jwks = json!({ "keys": keys.iter().map(SigningKey::public_jwk).collect::<Vec<_>>() });
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            entries.push(Entry {
                kid: key.id().to_owned(),
                alg: key.alg().jwt_algorithm(),
                encoding: key.encoding_key().map_err(|_| JwtError::InvalidKey)?,
                decoding: key.decoding_key().map_err(|_| JwtError::InvalidKey)?,
            });
        }
        Ok(Self { entries, jwks })
    }

    /// The `kid`s of the set.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.kid.as_str())
    }

    /// Whether a key with this `kid` is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.entries.iter().any(|e| e.kid == kid)
    }

    /// The `kid` of the key that signs.
    pub fn signing_kid(&self) -> &str {
        self.entries.first().map_or("", |e| e.kid.as_str())
    }

    /// The JWKS document (`{"keys":[…]}`) of the public keys.
    pub fn jwks(&self) -> Value {
        self.jwks.clone()
    }

    /// Signs `claims` with the first key; the header is `{typ: "JWT", alg, kid}`.
    ///
    /// The claims are signed as given: setting `iss`, `iat` and `exp` is the caller's.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, JwtError> {
        let entry = self.entries.first().ok_or(JwtError::NoKeys)?;
        let mut header = Header::new(entry.alg);
        header.kid = Some(entry.kid.clone());
        jsonwebtoken::encode(&header, claims, &entry.encoding)
            .map_err(|e| JwtError::Signing(e.to_string()))
    }

    /// Verifies `token` and returns its claims.
    ///
    /// Accepted only if: `alg` is ES256 or RS256 and is the algorithm of the key
    /// that `kid` names; the signature is that key's; `iss` is the expected issuer;
    /// `exp` is present and not past; `nbf`, if present, is not in the future; and
    /// `aud` matches when [`VerifyOptions::audience`] is set.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        options: &VerifyOptions<'_>,
    ) -> Result<T, JwtError> {
        let header = read_header(token)?;
        let alg = KeyAlgorithm::parse(&header.alg).ok_or(JwtError::DisallowedAlgorithm)?;
        let kid = header.kid.ok_or(JwtError::MissingKid)?;
        let entry = self
            .entries
            .iter()
            .find(|e| e.kid == kid)
            .ok_or(JwtError::UnknownKid)?;
        if entry.alg != alg.jwt_algorithm() {
            return Err(JwtError::DisallowedAlgorithm);
        }

        let mut validation = Validation::new(entry.alg);
        validation.leeway = options.leeway_secs.min(MAX_LEEWAY_SECS);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[options.issuer]);
        let mut required = vec!["exp", "iss"];
        match options.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);

        jsonwebtoken::decode::<T>(token, &entry.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| map_error(e.kind()))
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::EncodingKey;

    use super::*;
    use crate::claims::{AccessClaims, IdClaims, RefreshClaims};

    const ISS: &str = "https://oxmed.example/";

    fn es_key(id: &str) -> SigningKey {
        SigningKey::generate_es256(id.into()).unwrap()
    }

    fn set(keys: Vec<SigningKey>) -> KeySet {
        KeySet::new(keys).unwrap()
    }

    fn claims(exp_offset: i64) -> Value {
        let now = unix_now();
        json!({ "iss": ISS, "sub": "u1", "iat": now, "exp": now + exp_offset })
    }

    fn access(now: i64) -> AccessClaims {
        AccessClaims {
            iss: ISS.into(),
            aud: Some("client-1".into()),
            sub: "user-1".into(),
            username: "user-1".into(),
            client_id: Some("client-1".into()),
            login_id: "login-1".into(),
            scope: "openid offline".into(),
            profile: "Practitioner/123".into(),
            iat: now,
            nbf: now,
            exp: now + 3600,
            jti: Some("jti-1".into()),
        }
    }

    fn b64json(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn parts(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    fn verify(ks: &KeySet, token: &str) -> Result<Value, JwtError> {
        ks.verify(token, &VerifyOptions::new(ISS))
    }

    #[test]
    fn es256_round_trip_with_access_claims() {
        let ks = set(vec![es_key("k1")]);
        let c = access(unix_now());
        let token = ks.sign(&c).unwrap();
        let back: AccessClaims = ks
            .verify(&token, &VerifyOptions::new(ISS).audience("client-1"))
            .unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn header_is_alg_kid_typ() {
        let ks = set(vec![es_key("k1")]);
        let token = ks.sign(&claims(60)).unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts(&token)[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"typ": "JWT", "alg": "ES256", "kid": "k1"}));
    }

    #[test]
    fn rs256_round_trip() {
        let ks = set(vec![SigningKey::generate_rs256("r1".into()).unwrap()]);
        let now = unix_now();
        let c = RefreshClaims {
            iss: ISS.into(),
            aud: None,
            client_id: None,
            login_id: "l1".into(),
            refresh_secret: "s".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: None,
        };
        let token = ks.sign(&c).unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts(&token)[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let back: RefreshClaims = ks.verify(&token, &VerifyOptions::new(ISS)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn id_token_round_trip() {
        let ks = set(vec![es_key("k1")]);
        let now = unix_now();
        let c = IdClaims {
            iss: ISS.into(),
            aud: Some("client-1".into()),
            sub: "user-1".into(),
            client_id: Some("client-1".into()),
            login_id: "l1".into(),
            fhir_user: "Practitioner/1".into(),
            email: Some("a@example.com".into()),
            nonce: Some("n".into()),
            auth_time: now,
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: None,
        };
        let token = ks.sign(&c).unwrap();
        let back: IdClaims = ks
            .verify(&token, &VerifyOptions::new(ISS).audience("client-1"))
            .unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn jwks_lists_every_key_without_private_members() {
        let ks = set(vec![
            es_key("k1"),
            SigningKey::generate_rs256("r1".into()).unwrap(),
        ]);
        let jwks = ks.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["kid"], "k1");
        assert_eq!(keys[1]["kid"], "r1");
        for k in keys {
            for m in ["d", "p", "q", "dp", "dq", "qi", "x5c", "x5t"] {
                assert!(k.get(m).is_none(), "{m} in {k}");
            }
        }
        assert_eq!(ks.signing_kid(), "k1");
    }

    #[test]
    fn every_key_verifies_but_only_the_first_signs() {
        let old = es_key("old");
        let new = es_key("new");
        let before = set(vec![old.clone()]).sign(&claims(60)).unwrap();
        let ks = set(vec![new, old]);
        let after = ks.sign(&claims(60)).unwrap();
        assert!(verify(&ks, &before).is_ok());
        assert!(verify(&ks, &after).is_ok());
        assert!(after.starts_with(&b64json(&json!({"typ":"JWT","alg":"ES256","kid":"new"}))));
    }

    #[test]
    fn tampered_payload_is_bad_signature() {
        let ks = set(vec![es_key("k1")]);
        let token = ks.sign(&claims(60)).unwrap();
        let p = parts(&token);
        // One byte of the payload changed (the signature is checked before the
        // payload is parsed, so even a payload that no longer reads is a bad signature).
        let mut payload = URL_SAFE_NO_PAD.decode(&p[1]).unwrap();
        payload[10] ^= 1;
        let tampered = format!("{}.{}.{}", p[0], URL_SAFE_NO_PAD.encode(payload), p[2]);
        assert_eq!(verify(&ks, &tampered).unwrap_err(), JwtError::BadSignature);

        // A well-formed but different payload under the old signature.
        let mut other = claims(60);
        other["sub"] = "admin".into();
        let forged = format!("{}.{}.{}", p[0], b64json(&other), p[2]);
        assert_eq!(verify(&ks, &forged).unwrap_err(), JwtError::BadSignature);

        // A flipped signature byte.
        let mut sig = URL_SAFE_NO_PAD.decode(&p[2]).unwrap();
        sig[10] ^= 1;
        let bad_sig = format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(verify(&ks, &bad_sig).unwrap_err(), JwtError::BadSignature);
    }

    #[test]
    fn signature_of_another_key_with_same_kid_is_bad_signature() {
        let ks = set(vec![es_key("k1")]);
        let impostor = set(vec![es_key("k1")]);
        let token = impostor.sign(&claims(60)).unwrap();
        assert_eq!(verify(&ks, &token).unwrap_err(), JwtError::BadSignature);
    }

    #[test]
    fn expired_token() {
        let ks = set(vec![es_key("k1")]);
        let token = ks.sign(&claims(-10)).unwrap();
        assert_eq!(verify(&ks, &token).unwrap_err(), JwtError::Expired);
        // Within the leeway it passes; the leeway is capped.
        let lenient = VerifyOptions::new(ISS).leeway(30);
        assert!(ks.verify::<Value>(&token, &lenient).is_ok());
        let old = ks.sign(&claims(-1000)).unwrap();
        let huge = VerifyOptions::new(ISS).leeway(u64::MAX);
        assert_eq!(
            ks.verify::<Value>(&old, &huge).unwrap_err(),
            JwtError::Expired
        );
    }

    #[test]
    fn missing_exp_is_refused() {
        let ks = set(vec![es_key("k1")]);
        let token = ks.sign(&json!({"iss": ISS, "sub": "u1"})).unwrap();
        assert_eq!(
            verify(&ks, &token).unwrap_err(),
            JwtError::MissingClaim("exp".into())
        );
        // An `exp` that is not a number counts as absent.
        let token = ks.sign(&json!({"iss": ISS, "exp": "tomorrow"})).unwrap();
        assert_eq!(
            verify(&ks, &token).unwrap_err(),
            JwtError::MissingClaim("exp".into())
        );
    }

    #[test]
    fn nbf_in_future_is_not_yet_valid() {
        let ks = set(vec![es_key("k1")]);
        let mut c = claims(600);
        c["nbf"] = (unix_now() + 100).into();
        let token = ks.sign(&c).unwrap();
        assert_eq!(verify(&ks, &token).unwrap_err(), JwtError::NotYetValid);
        c["nbf"] = (unix_now() - 1).into();
        assert!(verify(&ks, &ks.sign(&c).unwrap()).is_ok());
    }

    #[test]
    fn wrong_or_missing_issuer() {
        let ks = set(vec![es_key("k1")]);
        let mut c = claims(60);
        c["iss"] = "https://evil.example/".into();
        assert_eq!(
            verify(&ks, &ks.sign(&c).unwrap()).unwrap_err(),
            JwtError::WrongIssuer
        );
        c.as_object_mut().unwrap().remove("iss");
        assert_eq!(
            verify(&ks, &ks.sign(&c).unwrap()).unwrap_err(),
            JwtError::WrongIssuer
        );
    }

    #[test]
    fn audience_checked_only_when_asked() {
        let ks = set(vec![es_key("k1")]);
        let mut c = claims(60);
        c["aud"] = "client-1".into();
        let token = ks.sign(&c).unwrap();
        let want = |aud| VerifyOptions::new(ISS).audience(aud);
        assert!(ks.verify::<Value>(&token, &want("client-1")).is_ok());
        assert_eq!(
            ks.verify::<Value>(&token, &want("client-2")).unwrap_err(),
            JwtError::WrongAudience
        );
        assert!(verify(&ks, &token).is_ok());

        let no_aud = ks.sign(&claims(60)).unwrap();
        assert_eq!(
            ks.verify::<Value>(&no_aud, &want("client-1")).unwrap_err(),
            JwtError::WrongAudience
        );
    }

    #[test]
    fn unknown_and_missing_kid() {
        let ks = set(vec![es_key("k1")]);
        let other = set(vec![es_key("k2")]);
        assert_eq!(
            verify(&ks, &other.sign(&claims(60)).unwrap()).unwrap_err(),
            JwtError::UnknownKid
        );
        assert_eq!(JwtError::UnknownKid.to_string(), "Key not found");

        // The same key, but a header without kid.
        let key = es_key("k1");
        let ks = set(vec![key.clone()]);
        let header = Header::new(Algorithm::ES256);
        let token =
            jsonwebtoken::encode(&header, &claims(60), &key.encoding_key().unwrap()).unwrap();
        assert_eq!(verify(&ks, &token).unwrap_err(), JwtError::MissingKid);
        assert_eq!(JwtError::MissingKid.to_string(), "Missing kid header");
    }

    #[test]
    fn alg_none_is_refused() {
        let ks = set(vec![es_key("k1")]);
        let payload = b64json(&claims(60));
        for header in [
            json!({"alg": "none", "kid": "k1", "typ": "JWT"}),
            json!({"alg": "None", "kid": "k1"}),
            json!({"alg": "NONE"}),
        ] {
            let unsigned = format!("{}.{}.", b64json(&header), payload);
            assert_eq!(
                verify(&ks, &unsigned).unwrap_err(),
                JwtError::DisallowedAlgorithm,
                "{header}"
            );
        }
    }

    /// HS256 tokens keyed with public material the attacker can read from the JWKS.
    #[test]
    fn hs256_with_public_key_as_secret_is_refused() {
        let key = es_key("k1");
        let ks = set(vec![key.clone()]);
        let jwk = key.public_jwk();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        let xy = [x.as_slice(), y.as_slice()].concat();
        let sec1 = [&[4u8][..], &xy].concat();
        let jwks_text = serde_json::to_vec(&ks.jwks()).unwrap();
        let secrets: [Vec<u8>; 4] = [serde_json::to_vec(&jwk).unwrap(), xy, sec1, jwks_text];
        for secret in secrets {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("k1".into());
            let token =
                jsonwebtoken::encode(&header, &claims(60), &EncodingKey::from_secret(&secret))
                    .unwrap();
            assert_eq!(
                verify(&ks, &token).unwrap_err(),
                JwtError::DisallowedAlgorithm
            );
        }
    }

    #[test]
    fn alg_must_be_the_keys_own() {
        let es = es_key("k1");
        let rs = SigningKey::generate_rs256("r1".into()).unwrap();
        let ks = set(vec![es.clone(), rs.clone()]);
        // An RS256 signature presented under the EC key's kid.
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let token =
            jsonwebtoken::encode(&header, &claims(60), &rs.encoding_key().unwrap()).unwrap();
        assert_eq!(
            verify(&ks, &token).unwrap_err(),
            JwtError::DisallowedAlgorithm
        );
        // ES384 and PS256 are never accepted, whatever the kid.
        for alg in ["ES384", "PS256", "RS512", "EdDSA"] {
            let h = json!({"alg": alg, "kid": "k1", "typ": "JWT"});
            let t = format!("{}.{}.AAAA", b64json(&h), b64json(&claims(60)));
            assert_eq!(
                verify(&ks, &t).unwrap_err(),
                JwtError::DisallowedAlgorithm,
                "{alg}"
            );
        }
    }

    #[test]
    fn malformed_tokens() {
        let ks = set(vec![es_key("k1")]);
        let good = ks.sign(&claims(60)).unwrap();
        let p = parts(&good);
        let with_crit = format!(
            "{}.{}.{}",
            b64json(&json!({"alg":"ES256","kid":"k1","crit":["exp"]})),
            p[1],
            p[2]
        );
        let cases = [
            String::new(),
            "abc".into(),
            "a.b".into(),
            format!("{good}.extra"),
            format!("!!.{}.{}", p[1], p[2]),
            format!("{}.{}.{}", b64json(&json!(["ES256"])), p[1], p[2]),
            format!("{}.{}.{}", b64json(&json!({"kid":"k1"})), p[1], p[2]),
            with_crit,
            // Correctly signed, but the payload is not a claims object.
            ks.sign(&json!([1, 2])).unwrap(),
        ];
        for t in &cases {
            assert_eq!(verify(&ks, t).unwrap_err(), JwtError::Malformed, "{t}");
        }
        // An unreadable payload is caught by the signature check, which comes first.
        assert_eq!(
            verify(&ks, &format!("{}.!!.{}", p[0], p[2])).unwrap_err(),
            JwtError::BadSignature
        );
        assert!(verify(&ks, &good).is_ok());
    }

    #[test]
    fn claims_of_the_wrong_shape_are_malformed() {
        let ks = set(vec![es_key("k1")]);
        // A refresh token presented where an access token is expected.
        let token = ks.sign(&claims(60)).unwrap();
        assert_eq!(
            ks.verify::<AccessClaims>(&token, &VerifyOptions::new(ISS))
                .unwrap_err(),
            JwtError::Malformed
        );
    }

    #[test]
    fn tokens_survive_a_key_storage_round_trip() {
        for key in [
            es_key("k1"),
            SigningKey::generate_rs256("r1".into()).unwrap(),
        ] {
            let token = set(vec![key.clone()]).sign(&claims(60)).unwrap();
            let stored = key.to_json_web_key_resource();
            let loaded = SigningKey::from_json_web_key_resource(&stored).unwrap();
            let ks = set(vec![loaded]);
            assert!(verify(&ks, &token).is_ok());
            // And the reloaded key signs tokens the original verifies.
            let again = ks.sign(&claims(60)).unwrap();
            assert!(verify(&set(vec![key]), &again).is_ok());
        }
    }

    #[test]
    fn empty_key_set_is_an_error() {
        assert_eq!(KeySet::new(vec![]).unwrap_err(), JwtError::NoKeys);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = es_key("k1");
        let d = key.to_json_web_key_resource()["d"]
            .as_str()
            .unwrap()
            .to_owned();
        let debug = format!("{:?}", set(vec![key]));
        assert!(debug.contains("k1"));
        assert!(!debug.contains(&d));
    }
}
