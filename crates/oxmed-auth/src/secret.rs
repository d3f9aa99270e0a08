//! Random secrets and their comparison.
//!
//! Medplum's secrets are random bytes written as lowercase hex: client secrets and
//! refresh secrets take 32 bytes (64 characters), login codes and cookies 16.

use data_encoding::HEXLOWER;
use subtle::{Choice, ConstantTimeEq};

use crate::error::AuthError;

/// Bytes in a ClientApplication secret.
pub const CLIENT_SECRET_BYTES: usize = 32;
/// Bytes in the secret carried by a refresh token.
pub const REFRESH_SECRET_BYTES: usize = 32;
/// Bytes in an authorization (login) code.
pub const LOGIN_CODE_BYTES: usize = 16;
/// Bytes in a login cookie.
pub const COOKIE_BYTES: usize = 16;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), AuthError> {
    getrandom::fill(buf).map_err(|_| AuthError::Random)
}

/// `bytes` random bytes from the operating system's CSPRNG, as lowercase hex
/// (so the string is `2 * bytes` characters long).
///
/// Fails only when the OS refuses randomness; a server cannot mint secrets then,
/// and should answer with an error rather than crash.
pub fn generate_secret(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf)?;
    Ok(HEXLOWER.encode(&buf))
}

/// Compares two secrets without letting the position of the first difference
/// show in the time taken.
///
/// Strings of different lengths are unequal, but the bytes are still all compared
/// (against zero past the shorter one) so that the time depends on lengths only.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let same_len = (a.len() as u64).ct_eq(&(b.len() as u64));
    let mut same_bytes = Choice::from(1u8);
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        same_bytes &= x.ct_eq(&y);
    }
    bool::from(same_len & same_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_lowercase_hex_of_twice_the_length() {
        for (bytes, chars) in [
            (CLIENT_SECRET_BYTES, 64),
            (REFRESH_SECRET_BYTES, 64),
            (LOGIN_CODE_BYTES, 32),
            (COOKIE_BYTES, 32),
            (0, 0),
        ] {
            let s = generate_secret(bytes).unwrap();
            assert_eq!(s.len(), chars);
            assert!(
                s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{s}"
            );
        }
    }

    #[test]
    fn secrets_differ() {
        let a = generate_secret(32).unwrap();
        let b = generate_secret(32).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn equal_strings_compare_equal() {
        assert!(constant_time_eq("abc123", "abc123"));
        assert!(constant_time_eq("", ""));
    }

    #[test]
    fn different_strings_compare_unequal() {
        assert!(!constant_time_eq("abc123", "abc124"));
        assert!(!constant_time_eq("xbc123", "abc123"));
    }

    #[test]
    fn different_lengths_compare_unequal() {
        assert!(!constant_time_eq("abc", "abc\0"));
        assert!(!constant_time_eq("abc\0", "abc"));
        assert!(!constant_time_eq("", "a"));
        assert!(!constant_time_eq("abcdef", "abc"));
    }
}
