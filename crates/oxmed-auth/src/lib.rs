//! Authentication primitives for oxmed's Medplum-compatible OAuth2 / OpenID Connect
//! server. Everything here is pure computation: no database, network or files.
//!
//! - [`secret`]: random hex secrets (client secrets, refresh secrets, login codes,
//!   cookies) and constant-time comparison.
//! - [`password`]: bcrypt hashing, interchangeable with Node's bcryptjs hashes.
//! - [`pkce`]: RFC 7636 code challenges (`plain`, `S256`) and verifier syntax.
//! - [`duration`]: token lifetimes such as `1h` or `2w` from the configuration.
//! - [`scope`]: OAuth2 scope strings and the checks Medplum makes on them.
//! - [`totp`]: RFC 6238 one-time codes as otplib computes them, and `otpauth://` URIs.
//! - [`qr`]: QR-code `data:` URLs for enrolling an authenticator app.
//! - [`keys`]: ES256 / RS256 signing keys stored as FHIR `JsonWebKey` resources.
//! - [`jwt`]: the key set that signs and verifies tokens, and publishes the JWKS.
//! - [`claims`]: the claims of access, ID and refresh tokens.
//! - [`error`]: [`AuthError`] and [`JwtError`].
//!
//! And the authorization server built on them, which keeps its records through the repository:
//! [`service`] ([`Auth`]), [`config`], [`keystore`] (keys as `JsonWebKey` resources),
//! [`bootstrap`] (first start), [`identity`] (typed views of User, Login, ...), [`session`]
//! (who is calling), [`login`] (the `/auth/*` stages), [`authorize`] (`/oauth2/authorize`), [`grant`] (`/oauth2/token`),
//! [`assertion`] (`private_key_jwt`), [`tokens`] (minting), [`me`] (`/auth/me`, logout), [`mfa`] (TOTP second factor),
//! [`records`] (system writes), [`failure`] (how a step fails).

pub mod access;
pub mod assertion;
pub mod authorize;
pub mod bootstrap;
pub mod change_password;
pub mod claims;
pub mod client_application;
pub mod config;
pub mod duration;
pub mod email;
pub mod error;
pub mod failure;
pub mod grant;
pub mod identity;
pub mod introspect;
pub mod invite;
pub mod jwt;
pub mod keys;
pub mod keystore;
pub mod launch;
pub mod login;
pub mod me;
pub mod mfa;
pub mod password;
pub mod pkce;
pub mod project_admin;
pub mod project_init;
pub mod qr;
pub mod recaptcha;
pub mod records;
pub mod registration;
pub mod scope;
pub mod secret;
pub mod security_request;
pub mod service;
pub mod session;
pub mod tokens;
pub mod totp;

pub use config::AuthConfig;
pub use error::{AuthError, JwtError};
pub use failure::AuthFailure;
pub use grant::TokenRequest;
pub use login::{LoginRequest, LoginResult, VerifiedIdentity, VerifiedMethod};
pub use service::Auth;
pub use session::Caller;

/// SHA-256 of a secret, hex: how codes, cookies and refresh secrets are kept on a Login, so
/// that the stored value cannot be replayed.
pub fn digest(secret: &str) -> String {
    use sha2::Digest;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(secret.as_bytes()))
}
