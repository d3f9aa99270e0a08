//! PKCE (RFC 7636): checking a `code_verifier` against the stored `code_challenge`.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::AuthError;
use crate::secret::constant_time_eq;

/// A `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMethod {
    /// The challenge is the verifier itself.
    Plain,
    /// The challenge is `BASE64URL(SHA256(verifier))` without padding.
    S256,
}

impl ChallengeMethod {
    /// Exactly `plain` or `S256`: RFC 7636 names are case-sensitive, and accepting
    /// variants would let a client downgrade what a stricter server refuses.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        match s {
            "plain" => Ok(Self::Plain),
            "S256" => Ok(Self::S256),
            _ => Err(AuthError::InvalidChallengeMethod),
        }
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::S256 => "S256",
        }
    }
}

impl FromStr for ChallengeMethod {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ChallengeMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The S256 challenge for `verifier`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` answers `challenge` under `method`, compared in constant time.
pub fn verify(method: ChallengeMethod, challenge: &str, verifier: &str) -> bool {
    match method {
        ChallengeMethod::Plain => constant_time_eq(challenge, verifier),
        ChallengeMethod::S256 => constant_time_eq(challenge, &s256_challenge(verifier)),
    }
}

/// Whether `v` is a well-formed RFC 7636 `code_verifier`: 43 to 128 characters
/// of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(s256_challenge(RFC_VERIFIER), RFC_CHALLENGE);
        assert!(verify(ChallengeMethod::S256, RFC_CHALLENGE, RFC_VERIFIER));
    }

    #[test]
    fn s256_rejects_wrong_verifier_and_plain_use() {
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl";
        assert!(!verify(ChallengeMethod::S256, RFC_CHALLENGE, wrong));
        // The challenge itself is not a verifier.
        assert!(!verify(ChallengeMethod::S256, RFC_CHALLENGE, RFC_CHALLENGE));
        // Nor does the verifier pass as its own S256 challenge.
        assert!(!verify(ChallengeMethod::S256, RFC_VERIFIER, RFC_VERIFIER));
    }

    #[test]
    fn plain_compares_strings() {
        assert!(verify(ChallengeMethod::Plain, RFC_VERIFIER, RFC_VERIFIER));
        assert!(!verify(ChallengeMethod::Plain, RFC_CHALLENGE, RFC_VERIFIER));
        assert!(!verify(ChallengeMethod::Plain, "abc", "abcd"));
    }

    #[test]
    fn method_parse_is_exact() {
        assert_eq!(
            "plain".parse::<ChallengeMethod>().unwrap(),
            ChallengeMethod::Plain
        );
        assert_eq!(
            "S256".parse::<ChallengeMethod>().unwrap(),
            ChallengeMethod::S256
        );
        for bad in ["s256", "PLAIN", "Plain", "S512", "", " S256", "S256 "] {
            assert!(bad.parse::<ChallengeMethod>().is_err(), "{bad:?}");
            assert!(ChallengeMethod::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ChallengeMethod::parse("S256").unwrap(),
            ChallengeMethod::S256
        );
        assert_eq!(ChallengeMethod::S256.to_string(), "S256");
    }

    #[test]
    fn verifier_syntax() {
        assert!(valid_verifier(RFC_VERIFIER));
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(valid_verifier(&"~._-".repeat(32)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(42))));
        assert!(!valid_verifier(&format!("{} ", "a".repeat(42))));
        assert!(!valid_verifier(&format!("{}=", "a".repeat(42))));
        // 43 bytes but not 43 ASCII characters.
        assert!(!valid_verifier(&format!("{}é", "a".repeat(41))));
    }
}
