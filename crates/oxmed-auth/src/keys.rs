//! The server's JWT signing keys, stored as FHIR `JsonWebKey` resources.
//!
//! A key is kept as its JWK members (base64url text), which is also how Medplum
//! stores it, so keys written by either server load in the other. The resource `id`
//! is the JWT `kid`.

use std::fmt;

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use pkcs1::RsaPrivateKeyRef;
use pkcs1::der::asn1::UintRef;
use pkcs1::der::{Decode, Encode};
use serde_json::{Map, Value};

use crate::error::AuthError;

// Callers think of the key set as "the keys"; it lives with the JWT code it runs.
pub use crate::jwt::KeySet;

/// Bytes in a P-256 coordinate or scalar.
const P256_LEN: usize = 32;

/// The signature algorithms a key can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256: what new keys use, as in Medplum.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: Medplum's older keys.
    Rs256,
}

impl KeyAlgorithm {
    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The JWK `kty` that goes with the algorithm.
    pub fn kty(self) -> &'static str {
        match self {
            Self::Es256 => "EC",
            Self::Rs256 => "RSA",
        }
    }

    /// Parses a JOSE `alg` name; only the two algorithms this server signs with.
    pub fn parse(alg: &str) -> Option<Self> {
        match alg {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }

    pub(crate) fn jwt_algorithm(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JWK members of an RSA key, in the order of the PKCS #1 `RSAPrivateKey`.
const RSA_MEMBERS: [&str; 8] = ["n", "e", "d", "p", "q", "dp", "dq", "qi"];

/// The JWK members, base64url without padding as RFC 7518 writes them.
#[derive(Clone)]
enum Material {
    /// P-256 (`crv` is implied).
    Ec { x: String, y: String, d: String },
    /// Values of [`RSA_MEMBERS`], in that order; `n` and `e` are the public ones.
    Rsa([String; 8]),
}

/// One signing key: the public half goes out in the JWKS, the private half stays
/// in the database.
///
/// `Debug` shows the id, algorithm and public members only.
#[derive(Clone)]
pub struct SigningKey {
    id: String,
    alg: KeyAlgorithm,
    material: Material,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("SigningKey");
        s.field("id", &self.id).field("alg", &self.alg);
        for (name, value) in self.public_members() {
            s.field(name, &value);
        }
        s.field("private", &"[redacted]").finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(name: &str, text: &str) -> Result<Vec<u8>, AuthError> {
    // Some JWK writers pad; RFC 7518 says not to, but the value is unambiguous.
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| AuthError::InvalidKey(format!("{name} is not base64url")))
}

/// Reads a required string member of a JWK.
fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, AuthError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::InvalidKey(format!("missing {name}")))
}

/// An `EcdsaKeyPair` from JWK members; aws-lc checks that `d` belongs to `(x, y)`.
fn ec_key_pair(x: &str, y: &str, d: &str) -> Result<EcdsaKeyPair, AuthError> {
    let (x, y, d) = (unb64("x", x)?, unb64("y", y)?, unb64("d", d)?);
    if x.len() != P256_LEN || y.len() != P256_LEN || d.len() != P256_LEN {
        return Err(AuthError::InvalidKey("not a P-256 key".into()));
    }
    let mut point = Vec::with_capacity(1 + 2 * P256_LEN);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P256_SHA256_FIXED_SIGNING, &d, &point)
        .map_err(|_| AuthError::InvalidKey("EC private key does not match x and y".into()))
}

/// A DER `RSAPrivateKey` (PKCS #1) from the JWK members; the form aws-lc signs with.
fn rsa_pkcs1_der(members: &[String; 8]) -> Result<Vec<u8>, AuthError> {
    let mut bytes = Vec::with_capacity(RSA_MEMBERS.len());
    for (name, text) in RSA_MEMBERS.iter().zip(members) {
        bytes.push(unb64(name, text)?);
    }
    let uints = bytes
        .iter()
        .map(|b| UintRef::new(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| AuthError::InvalidKey("RSA member too long".into()))?;
    let [n, e, d, p, q, dp, dq, qi] = uints[..] else {
        return Err(AuthError::InvalidKey("RSA members missing".into()));
    };
    let key = RsaPrivateKeyRef {
        modulus: n,
        public_exponent: e,
        private_exponent: d,
        prime1: p,
        prime2: q,
        exponent1: dp,
        exponent2: dq,
        coefficient: qi,
        other_prime_infos: None,
    };
    let der = key
        .to_der()
        .map_err(|_| AuthError::InvalidKey("RSA key cannot be encoded".into()))?;
    // aws-lc checks the members are consistent, so a bad key fails when loaded
    // rather than at its first signature.
    RsaKeyPair::from_der(&der)
        .map_err(|e| AuthError::InvalidKey(format!("RSA key rejected: {e}")))?;
    Ok(der)
}

impl SigningKey {
    /// A new random P-256 key.
    pub fn generate_es256(id: String) -> Result<Self, AuthError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| AuthError::KeyGeneration)?;
        let d = pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| AuthError::KeyGeneration)?;
        // An uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let (Some(x), Some(y)) = (
            point.get(1..=P256_LEN),
            point.get(1 + P256_LEN..=2 * P256_LEN),
        ) else {
            return Err(AuthError::KeyGeneration);
        };
        Ok(Self {
            id,
            alg: KeyAlgorithm::Es256,
            material: Material::Ec {
                x: b64(x),
                y: b64(y),
                d: b64(d.as_ref()),
            },
        })
    }

    /// A new random 2048-bit RSA key. ES256 is the default; this exists for
    /// deployments whose clients only handle RS256.
    pub fn generate_rs256(id: String) -> Result<Self, AuthError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| AuthError::KeyGeneration)?;
        // aws-lc exports PKCS #8 only; the members are in the PKCS #1 structure inside it.
        let pkcs8 = pair.as_der().map_err(|_| AuthError::KeyGeneration)?;
        let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8.as_ref())
            .map_err(|_| AuthError::KeyGeneration)?;
        let k = RsaPrivateKeyRef::from_der(info.private_key.as_bytes())
            .map_err(|_| AuthError::KeyGeneration)?;
        let members = [
            k.modulus,
            k.public_exponent,
            k.private_exponent,
            k.prime1,
            k.prime2,
            k.exponent1,
            k.exponent2,
            k.coefficient,
        ]
        .map(|u| b64(u.as_bytes()));
        Ok(Self {
            id,
            alg: KeyAlgorithm::Rs256,
            material: Material::Rsa(members),
        })
    }

    /// The resource id, used as the JWT `kid`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signature algorithm.
    pub fn alg(&self) -> KeyAlgorithm {
        self.alg
    }

    /// The JWK `kty`: `EC` or `RSA`.
    pub fn kty(&self) -> &'static str {
        self.alg.kty()
    }

    /// `crv`, `x`, `y` or `n`, `e`.
    fn public_members(&self) -> Vec<(&'static str, &str)> {
        match &self.material {
            Material::Ec { x, y, .. } => vec![("crv", "P-256"), ("x", x), ("y", y)],
            Material::Rsa(m) => vec![("n", &m[0]), ("e", &m[1])],
        }
    }

    /// Every key member, private ones included.
    fn all_members(&self) -> Vec<(&'static str, &str)> {
        match &self.material {
            Material::Ec { x, y, d } => vec![("crv", "P-256"), ("x", x), ("y", y), ("d", d)],
            Material::Rsa(m) => RSA_MEMBERS
                .iter()
                .zip(m)
                .map(|(name, value)| (*name, value.as_str()))
                .collect(),
        }
    }

    /// The FHIR `JsonWebKey` resource to store, private members included.
    pub fn to_json_web_key_resource(&self) -> Value {
        let mut resource = Map::new();
        resource.insert("resourceType".into(), "JsonWebKey".into());
        resource.insert("id".into(), self.id.as_str().into());
        resource.insert("active".into(), true.into());
        resource.insert("alg".into(), self.alg.as_str().into());
        resource.insert("kty".into(), self.kty().into());
        resource.insert("use".into(), "sig".into());
        for (name, value) in self.all_members() {
            resource.insert(name.into(), value.into());
        }
        Value::Object(resource)
    }

    /// Loads a stored `JsonWebKey` resource (as written by this server or by Medplum).
    ///
    /// A resource without `alg` is RS256: Medplum's keys predate the member. The
    /// `active` flag is not looked at; choosing which keys to load is the caller's.
    /// Members are stored re-encoded without padding, whatever the input had.
    pub fn from_json_web_key_resource(resource: &Value) -> Result<Self, AuthError> {
        let jwk = resource
            .as_object()
            .ok_or_else(|| AuthError::InvalidKey("not a JSON object".into()))?;
        if let Some(rt) = jwk.get("resourceType")
            && rt != "JsonWebKey"
        {
            return Err(AuthError::InvalidKey(
                "resourceType is not JsonWebKey".into(),
            ));
        }
        let id = member(jwk, "id")?.to_owned();
        if id.is_empty() {
            return Err(AuthError::InvalidKey("empty id".into()));
        }
        let alg = match jwk.get("alg") {
            None | Some(Value::Null) => KeyAlgorithm::Rs256,
            Some(Value::String(alg)) => KeyAlgorithm::parse(alg)
                .ok_or_else(|| AuthError::InvalidKey(format!("unsupported alg {alg}")))?,
            Some(_) => return Err(AuthError::InvalidKey("alg is not a string".into())),
        };
        if member(jwk, "kty")? != alg.kty() {
            return Err(AuthError::InvalidKey(format!("kty is not {}", alg.kty())));
        }
        let canonical = |name: &str| -> Result<String, AuthError> {
            Ok(b64(&unb64(name, member(jwk, name)?)?))
        };
        let material = match alg {
            KeyAlgorithm::Es256 => {
                if member(jwk, "crv")? != "P-256" {
                    return Err(AuthError::InvalidKey("crv is not P-256".into()));
                }
                let (x, y, d) = (canonical("x")?, canonical("y")?, canonical("d")?);
                ec_key_pair(&x, &y, &d)?;
                Material::Ec { x, y, d }
            }
            KeyAlgorithm::Rs256 => {
                let mut members: [String; 8] = Default::default();
                for (slot, name) in members.iter_mut().zip(RSA_MEMBERS) {
                    *slot = canonical(name)?;
                }
                rsa_pkcs1_der(&members)?;
                Material::Rsa(members)
            }
        };
        Ok(Self { id, alg, material })
    }

    /// The public JWK for the JWKS endpoint: `kid`, `alg`, `kty`, `use` and the
    /// public members only, so nothing private can leak through an extra member.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = Map::new();
        jwk.insert("kid".into(), self.id.as_str().into());
        jwk.insert("alg".into(), self.alg.as_str().into());
        jwk.insert("kty".into(), self.kty().into());
        jwk.insert("use".into(), "sig".into());
        for (name, value) in self.public_members() {
            jwk.insert(name.into(), value.into());
        }
        Value::Object(jwk)
    }

    /// The key in the form `jsonwebtoken` signs with.
    pub(crate) fn encoding_key(&self) -> Result<EncodingKey, AuthError> {
        match &self.material {
            Material::Ec { x, y, d } => {
                let pkcs8 = ec_key_pair(x, y, d)?
                    .to_pkcs8v1()
                    .map_err(|_| AuthError::InvalidKey("EC key cannot be encoded".into()))?;
                Ok(EncodingKey::from_ec_der(pkcs8.as_ref()))
            }
            Material::Rsa(members) => Ok(EncodingKey::from_rsa_der(&rsa_pkcs1_der(members)?)),
        }
    }

    /// The key in the form `jsonwebtoken` verifies with: public members only.
    pub(crate) fn decoding_key(&self) -> Result<DecodingKey, AuthError> {
        let key = match &self.material {
            Material::Ec { x, y, .. } => DecodingKey::from_ec_components(x, y),
            Material::Rsa(m) => DecodingKey::from_rsa_components(&m[0], &m[1]),
        };
        key.map_err(|_| AuthError::InvalidKey("public members are not base64url".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

    fn es256() -> SigningKey {
        SigningKey::generate_es256("key-1".into()).unwrap()
    }

    #[test]
    fn es256_resource_has_all_members() {
        let key = es256();
        let r = key.to_json_web_key_resource();
        assert_eq!(r["resourceType"], "JsonWebKey");
        assert_eq!(r["id"], "key-1");
        assert_eq!(r["active"], true);
        assert_eq!(r["alg"], "ES256");
        assert_eq!(r["kty"], "EC");
        assert_eq!(r["use"], "sig");
        assert_eq!(r["crv"], "P-256");
        for m in ["x", "y", "d"] {
            let bytes = URL_SAFE_NO_PAD.decode(r[m].as_str().unwrap()).unwrap();
            assert_eq!(bytes.len(), 32, "{m}");
        }
    }

    #[test]
    fn public_jwk_has_exactly_the_public_members() {
        let ec = es256().public_jwk();
        let mut names: Vec<_> = ec.as_object().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(ec["kid"], "key-1");
        assert_eq!(ec["use"], "sig");

        let rsa = SigningKey::generate_rs256("key-2".into())
            .unwrap()
            .public_jwk();
        let mut names: Vec<_> = rsa.as_object().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(rsa["alg"], "RS256");
        assert_eq!(rsa["kty"], "RSA");
        for m in PRIVATE_MEMBERS.iter().chain(&["x5c", "x5t"]) {
            assert!(rsa.get(*m).is_none(), "{m}");
            assert!(ec.get(*m).is_none(), "{m}");
        }
    }

    #[test]
    fn rs256_key_is_2048_bits_with_all_members() {
        let key = SigningKey::generate_rs256("rsa".into()).unwrap();
        let r = key.to_json_web_key_resource();
        let n = URL_SAFE_NO_PAD.decode(r["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_eq!(r["e"], "AQAB");
        for m in PRIVATE_MEMBERS {
            assert!(r[m].as_str().is_some_and(|s| !s.is_empty()), "{m}");
        }
    }

    #[test]
    fn resource_round_trip() {
        for key in [es256(), SigningKey::generate_rs256("r".into()).unwrap()] {
            let r = key.to_json_web_key_resource();
            let back = SigningKey::from_json_web_key_resource(&r).unwrap();
            assert_eq!(back.to_json_web_key_resource(), r);
            assert_eq!(back.id(), key.id());
            assert_eq!(back.alg(), key.alg());
        }
    }

    #[test]
    fn resource_without_alg_is_rs256() {
        let mut r = SigningKey::generate_rs256("legacy".into())
            .unwrap()
            .to_json_web_key_resource();
        r.as_object_mut().unwrap().remove("alg");
        let key = SigningKey::from_json_web_key_resource(&r).unwrap();
        assert_eq!(key.alg(), KeyAlgorithm::Rs256);

        // An EC key without alg is not silently taken as RS256.
        let mut ec = es256().to_json_web_key_resource();
        ec.as_object_mut().unwrap().remove("alg");
        assert!(SigningKey::from_json_web_key_resource(&ec).is_err());
    }

    #[test]
    fn bad_resources_are_rejected() {
        let good = es256().to_json_web_key_resource();
        let other = es256().to_json_web_key_resource();
        let with = |name: &str, value: Value| {
            let mut r = good.clone();
            r[name] = value;
            r
        };
        let without = |name: &str| {
            let mut r = good.clone();
            r.as_object_mut().unwrap().remove(name);
            r
        };
        let cases = [
            with("resourceType", "Patient".into()),
            with("alg", "HS256".into()),
            with("alg", "none".into()),
            with("alg", 7.into()),
            with("kty", "RSA".into()),
            with("crv", "P-384".into()),
            with("x", "!!!".into()),
            with("d", "AAAA".into()),
            // A private scalar that does not belong to the public point.
            with("d", other["d"].clone()),
            with("id", "".into()),
            without("id"),
            without("kty"),
            without("d"),
            without("y"),
            Value::String("nope".into()),
        ];
        for (i, r) in cases.iter().enumerate() {
            assert!(
                matches!(
                    SigningKey::from_json_web_key_resource(r),
                    Err(AuthError::InvalidKey(_))
                ),
                "case {i}"
            );
        }
        assert!(SigningKey::from_json_web_key_resource(&good).is_ok());
    }

    #[test]
    fn padded_members_load_and_are_stored_unpadded() {
        let key = es256();
        let plain = key.to_json_web_key_resource();
        let mut padded = plain.clone();
        for m in ["x", "y", "d"] {
            padded[m] = format!("{}=", plain[m].as_str().unwrap()).into();
        }
        let back = SigningKey::from_json_web_key_resource(&padded).unwrap();
        assert_eq!(back.to_json_web_key_resource(), plain);
    }

    #[test]
    fn inconsistent_rsa_key_is_rejected() {
        let a = SigningKey::generate_rs256("a".into())
            .unwrap()
            .to_json_web_key_resource();
        let b = SigningKey::generate_rs256("b".into())
            .unwrap()
            .to_json_web_key_resource();
        let mut mixed = a.clone();
        mixed["d"] = b["d"].clone();
        assert!(SigningKey::from_json_web_key_resource(&mixed).is_err());
        let mut missing = a;
        missing.as_object_mut().unwrap().remove("qi");
        assert!(SigningKey::from_json_web_key_resource(&missing).is_err());
    }

    #[test]
    fn debug_hides_private_members() {
        for key in [es256(), SigningKey::generate_rs256("r".into()).unwrap()] {
            let r = key.to_json_web_key_resource();
            let debug = format!("{key:?}");
            assert!(debug.contains("[redacted]"));
            for m in PRIVATE_MEMBERS {
                if let Some(secret) = r.get(m).and_then(Value::as_str) {
                    assert!(!debug.contains(secret), "{m} leaked: {debug}");
                }
            }
        }
    }
}
