//! Password hashing with bcrypt, interchangeable with Node's `bcryptjs` and `bcrypt`.
//!
//! bcrypt reads at most 72 bytes of a password; longer ones are truncated here, as
//! in Medplum. Callers that need a limit validate the length before hashing.

use bcrypt::Version;

use crate::error::AuthError;

/// The cost Medplum uses (`bcrypt.hash(password, 10)`).
pub const DEFAULT_COST: u32 = 10;

/// Hashes `password` with a fresh random salt, in the `$2a$` form.
///
/// `$2a$` rather than the crate's default `$2b$` because it is what Medplum
/// (bcryptjs) writes, so a database keeps one form whichever server wrote a row,
/// and every Node bcrypt implementation reads it.
pub fn hash_password(password: &str, cost: u32) -> Result<String, AuthError> {
    let parts = bcrypt::hash_with_result(password, cost)
        .map_err(|e| AuthError::PasswordHash(e.to_string()))?;
    Ok(parts.format_for_version(Version::TwoA))
}

/// Whether `password` matches `hash` (`$2a$`, `$2b$`, `$2x$` or `$2y$`).
///
/// A malformed hash is a mismatch, not an error: the caller's answer to the user
/// is the same either way.
pub fn verify_password(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The lowest cost bcrypt allows keeps the tests fast.
    const TEST_COST: u32 = 4;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password("medplum_admin", TEST_COST).unwrap();
        assert!(hash.starts_with("$2a$04$"), "{hash}");
        assert_eq!(hash.len(), 60);
        assert!(verify_password("medplum_admin", &hash));
        assert!(!verify_password("medplum_admin2", &hash));
        assert!(!verify_password("", &hash));
    }

    #[test]
    fn same_password_gets_different_salts() {
        let a = hash_password("pw", TEST_COST).unwrap();
        let b = hash_password("pw", TEST_COST).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn cost_out_of_range_is_an_error() {
        assert!(matches!(
            hash_password("pw", 3),
            Err(AuthError::PasswordHash(_))
        ));
        assert!(matches!(
            hash_password("pw", 32),
            Err(AuthError::PasswordHash(_))
        ));
    }

    #[test]
    fn verifies_bcryptjs_hashes() {
        // Made with bcryptjs 2.4: bcrypt.hashSync('correct horse battery staple', 10).
        let hash = "$2a$10$0DCarBa9k4S6T0rbQsUCUeOJ55.uTvY4XZgY1TrnoahHe0eTiiMFq";
        assert!(verify_password("correct horse battery staple", hash));
        assert!(!verify_password("correct horse battery stapler", hash));
    }

    #[test]
    fn known_salt_gives_known_hash() {
        // bcryptjs 2.4: bcrypt.hashSync('medplum_admin', '$2a$10$abcdefghijklmnopqrstuu').
        let expected = "$2a$10$abcdefghijklmnopqrstuuRPOD5fdsP/.7etFX.hK/XxKhBWCFMrC";
        let salt = expected
            .parse::<bcrypt::HashParts>()
            .unwrap()
            .get_salt_raw();
        let parts = bcrypt::hash_with_salt("medplum_admin", 10, salt).unwrap();
        assert_eq!(parts.format_for_version(Version::TwoA), expected);
        assert!(verify_password("medplum_admin", expected));
    }

    #[test]
    fn verifies_vectors_from_other_implementations() {
        // From the bcrypt crate's own tests: node (2a) and python (2b).
        assert!(verify_password(
            "correctbatteryhorsestapler",
            "$2a$04$n4Uy0eSnMfvnESYL.bLwuuj0U/ETSsoTpRT9GVk5bektyVVa5xnIi"
        ));
        assert!(verify_password(
            "correctbatteryhorsestapler",
            "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie"
        ));
        assert!(!verify_password(
            "correctbatteryhorsestaple",
            "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie"
        ));
    }

    #[test]
    fn only_the_first_72_bytes_count() {
        let long = "x".repeat(100);
        let hash = hash_password(&long, TEST_COST).unwrap();
        assert!(verify_password(&"x".repeat(72), &hash));
        assert!(!verify_password(&"x".repeat(71), &hash));
    }

    #[test]
    fn malformed_hashes_verify_false() {
        for bad in [
            "",
            "not a hash",
            "$2a$10$",
            "$2a$10$short",
            "$2a$ab$n4Uy0eSnMfvnESYL.bLwuuj0U/ETSsoTpRT9GVk5bektyVVa5xnIi",
            "$2a$04$n4Uy0eSnMfvnESYL.bLwuuj0U/ETSsoTpRT9GVk$5bektyVVa5xnIi",
            "$9z$04$n4Uy0eSnMfvnESYL.bLwuuj0U/ETSsoTpRT9GVk5bektyVVa5xnIi",
            "$2a$04$n4Uy0eSnMfvnESYL.bLwuuj0U/ETSsoTpRT9GVk5bektyVVa5xnIi$extra",
        ] {
            assert!(!verify_password("correctbatteryhorsestapler", bad), "{bad}");
        }
    }
}
