//! Keys and tokens made by Node's `jose` (what Medplum uses) load and verify here.

use oxmed_auth::JwtError;
use oxmed_auth::claims::AccessClaims;
use oxmed_auth::jwt::{KeySet, VerifyOptions};
use oxmed_auth::keys::{KeyAlgorithm, SigningKey};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/jose_keys.txt");
const ISS: &str = "https://oxmed.example/";

/// (resource, token) pairs: ES256 first, then the legacy RS256 key without `alg`.
fn fixtures() -> Vec<(Value, String)> {
    let lines: Vec<&str> = FIXTURE.lines().collect();
    lines
        .chunks(2)
        .map(|pair| (serde_json::from_str(pair[0]).unwrap(), pair[1].to_owned()))
        .collect()
}

fn audience(aud: &str) -> VerifyOptions<'_> {
    VerifyOptions::new(ISS).audience(aud)
}

#[test]
fn jose_keys_load_with_the_right_algorithm() {
    let f = fixtures();
    assert_eq!(f.len(), 2);
    let es = SigningKey::from_json_web_key_resource(&f[0].0).unwrap();
    assert_eq!(es.alg(), KeyAlgorithm::Es256);
    assert_eq!(es.id(), "jose-es256");
    assert!(f[1].0.get("alg").is_none());
    let rs = SigningKey::from_json_web_key_resource(&f[1].0).unwrap();
    assert_eq!(rs.alg(), KeyAlgorithm::Rs256);
}

#[test]
fn jose_tokens_verify_into_access_claims() {
    let f = fixtures();
    let keys = f
        .iter()
        .map(|(r, _)| SigningKey::from_json_web_key_resource(r).unwrap())
        .collect();
    let ks = KeySet::new(keys).unwrap();
    for (_, token) in &f {
        let c: AccessClaims = ks.verify(token, &audience("c1")).unwrap();
        assert_eq!(c.sub, "u1");
        assert_eq!(c.login_id, "l1");
        assert_eq!(c.client_id.as_deref(), Some("c1"));
        assert_eq!(c.profile, "Practitioner/1");
        assert_eq!(c.exp, 4_102_444_800);
        assert_eq!(
            ks.verify::<AccessClaims>(token, &audience("c2"))
                .unwrap_err(),
            JwtError::WrongAudience
        );
    }
}

#[test]
fn jose_tokens_fail_under_another_issuer_or_key() {
    let f = fixtures();
    let es = SigningKey::from_json_web_key_resource(&f[0].0).unwrap();
    let ks = KeySet::new(vec![es]).unwrap();
    assert_eq!(
        ks.verify::<Value>(&f[0].1, &VerifyOptions::new("https://medplum.example/"))
            .unwrap_err(),
        JwtError::WrongIssuer
    );
    assert!(
        ks.verify::<Value>(&f[0].1, &VerifyOptions::new(ISS))
            .is_ok()
    );
    // Only the ES256 key is known: the RS256 token's kid is not.
    assert_eq!(
        ks.verify::<Value>(&f[1].1, &VerifyOptions::new(ISS))
            .unwrap_err(),
        JwtError::UnknownKid
    );
}
