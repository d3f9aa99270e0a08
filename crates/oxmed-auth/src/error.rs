//! Typed errors of this crate.
//!
//! Messages never carry secret material: a caller may log or return them as they are.

use thiserror::Error;

/// Failures of the non-JWT primitives (secrets, passwords, PKCE, durations, TOTP, keys).
#[derive(Debug, Error)]
pub enum AuthError {
    /// The operating system could not supply random bytes.
    #[error("the system random number generator failed")]
    Random,

    /// bcrypt refused to hash (for example a cost outside 4..=31).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),

    /// A PKCE `code_challenge_method` other than `plain` or `S256`.
    #[error("Invalid code challenge method")]
    InvalidChallengeMethod,

    /// A token lifetime that does not match `^[0-9]+[smhdwy]$`, or that overflows.
    #[error("Invalid token duration")]
    InvalidDuration,

    /// A TOTP secret that is not base32 (RFC 4648) text.
    #[error("Invalid TOTP secret")]
    InvalidTotpSecret,

    /// The text could not be encoded as a QR code (usually: too long).
    #[error("QR code generation failed: {0}")]
    QrCode(String),

    /// A JSON Web Key that cannot be used as a signing key.
    #[error("Invalid JSON Web Key: {0}")]
    InvalidKey(String),

    /// The crypto library could not generate a key pair.
    #[error("key generation failed")]
    KeyGeneration,
}

/// Failures of signing or verifying a JWT.
///
/// Verification failures have one variant each so that a caller can tell them apart
/// (for example to answer "token expired" rather than "invalid token").
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts, or a header or payload that is not the expected JSON.
    #[error("Malformed token")]
    Malformed,

    /// The signature does not match the header and payload.
    #[error("Invalid signature")]
    BadSignature,

    /// `exp` is in the past.
    #[error("Token expired")]
    Expired,

    /// `nbf` is in the future.
    #[error("Token not yet valid")]
    NotYetValid,

    /// `iss` differs from the configured issuer.
    #[error("Invalid issuer")]
    WrongIssuer,

    /// `aud` does not contain the expected audience.
    #[error("Invalid audience")]
    WrongAudience,

    /// The `kid` header names no key of the key set.
    #[error("Key not found")]
    UnknownKid,

    /// The header has no `kid`.
    #[error("Missing kid header")]
    MissingKid,

    /// The header's `alg` is not ES256 or RS256, or not the algorithm of the key named by `kid`.
    #[error("Invalid algorithm")]
    DisallowedAlgorithm,

    /// A claim that every token must carry (`exp`, `iss`) is absent.
    #[error("Missing required claim: {0}")]
    MissingClaim(String),

    /// A key set needs at least one key.
    #[error("No signing key")]
    NoKeys,

    /// The stored key could not be used by the crypto library.
    #[error("Invalid key")]
    InvalidKey,

    /// Claims could not be serialised, or the crypto library failed to sign.
    #[error("Signing failed: {0}")]
    Signing(String),
}
