//! Micro benchmark of token signing and verification, ignored by default:
//! `cargo test -p oxmed-auth --test jwt_throughput -- --ignored --nocapture`.
//!
//! The workspace builds dependencies with opt-level 2 even in debug, and the time
//! goes into aws-lc, so a debug run gives representative numbers.

use std::time::{Duration, Instant};

use oxmed_auth::claims::AccessClaims;
use oxmed_auth::jwt::{KeySet, VerifyOptions, unix_now};
use oxmed_auth::keys::SigningKey;

const RUN: Duration = Duration::from_secs(2);

fn claims() -> AccessClaims {
    let now = unix_now();
    AccessClaims {
        iss: "https://oxmed.example/".into(),
        aud: Some("client-1".into()),
        sub: "user-1".into(),
        username: "user-1".into(),
        client_id: Some("client-1".into()),
        login_id: "0190e1c4-1111-7000-8000-000000000000".into(),
        scope: "openid offline".into(),
        profile: "Practitioner/0190e1c4-2222-7000-8000-000000000000".into(),
        iat: now,
        nbf: now,
        exp: now + 3600,
        jti: Some("0123456789abcdef0123456789abcdef".into()),
    }
}

/// Calls `f` for about [`RUN`] and returns calls per second.
fn rate(mut f: impl FnMut()) -> f64 {
    for _ in 0..20 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..50 {
            f();
        }
        n += 50;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn bench(name: &str, key: SigningKey) {
    let ks = KeySet::new(vec![key]).unwrap();
    let c = claims();
    let token = ks.sign(&c).unwrap();
    let opts = VerifyOptions::new("https://oxmed.example/").audience("client-1");
    let sign = rate(|| {
        assert!(!ks.sign(&c).unwrap().is_empty());
    });
    let verify = rate(|| {
        let back: AccessClaims = ks.verify(&token, &opts).unwrap();
        assert_eq!(back.exp, c.exp);
    });
    println!(
        "{name}: sign {sign:.0}/s ({:.1} us), verify {verify:.0}/s ({:.1} us)",
        1e6 / sign,
        1e6 / verify
    );
    assert!(sign > 0.0 && verify > 0.0);
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn es256_throughput() {
    bench("ES256", SigningKey::generate_es256("bench".into()).unwrap());
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn rs256_throughput() {
    bench("RS256", SigningKey::generate_rs256("bench".into()).unwrap());
}
