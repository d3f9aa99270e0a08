//! TOTP (RFC 6238) as otplib's `authenticator` does it: HMAC-SHA-1, 6 digits,
//! 30-second steps, base32 (RFC 4648) secrets without padding.

use aws_lc_rs::hmac;
use data_encoding::BASE32_NOPAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::AuthError;
use crate::secret::{constant_time_eq, fill_random};

pub use crate::qr::qr_data_url;

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Bytes of a generated secret: RFC 4226 recommends 160 bits, the HMAC-SHA-1 size.
pub const SECRET_BYTES: usize = 20;

/// What JavaScript's `encodeURIComponent` leaves alone: otplib builds the
/// `otpauth:` URI with it, and authenticator apps show the label as decoded, so
/// matching it byte for byte keeps what users see identical.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// A new random secret: 20 bytes as uppercase base32 without padding (32 characters).
pub fn generate_secret() -> Result<String, AuthError> {
    let mut key = [0u8; SECRET_BYTES];
    fill_random(&mut key)?;
    Ok(BASE32_NOPAD.encode(&key))
}

/// Decodes a base32 secret, accepting lowercase and trailing `=` padding as otplib does.
fn decode_secret(secret_b32: &str) -> Result<Vec<u8>, AuthError> {
    let normalized = secret_b32.trim().trim_end_matches('=').to_ascii_uppercase();
    if normalized.is_empty() {
        return Err(AuthError::InvalidTotpSecret);
    }
    BASE32_NOPAD
        .decode(normalized.as_bytes())
        .map_err(|_| AuthError::InvalidTotpSecret)
}

/// RFC 4226 HOTP: dynamic truncation of HMAC-SHA-1(key, counter), modulo 10^digits.
fn hotp(key: &hmac::Key, counter: u64, digits: u32) -> String {
    let tag = hmac::sign(key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // A SHA-1 tag is 20 bytes, so the offset (at most 15) plus 4 stays inside it.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let code = u64::from(binary) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

fn hmac_key(secret_b32: &str) -> Result<hmac::Key, AuthError> {
    let key = decode_secret(secret_b32)?;
    Ok(hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key))
}

fn code_with_digits(secret_b32: &str, unix_seconds: u64, digits: u32) -> Result<String, AuthError> {
    Ok(hotp(
        &hmac_key(secret_b32)?,
        unix_seconds / STEP_SECONDS,
        digits,
    ))
}

/// The 6-digit code for `secret_b32` at `unix_seconds`.
pub fn code_at(secret_b32: &str, unix_seconds: u64) -> Result<String, AuthError> {
    code_with_digits(secret_b32, unix_seconds, DIGITS)
}

/// Whether `token` is the code of any step from `window` steps before the one
/// holding `unix_seconds` to `window` steps after it.
///
/// `token` must be exactly six ASCII digits; an unreadable secret never verifies.
pub fn verify(secret_b32: &str, token: &str, unix_seconds: u64, window: u32) -> bool {
    matching_step(secret_b32, token, unix_seconds, window).is_some()
}

/// The step (counter) whose code `token` is, within `window` steps of `unix_seconds`: a caller
/// that remembers the last step it accepted can refuse a code seen before (RFC 6238 §5.2).
pub fn matching_step(secret_b32: &str, token: &str, unix_seconds: u64, window: u32) -> Option<u64> {
    if token.len() != DIGITS as usize || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = hmac_key(secret_b32).ok()?;
    let step = unix_seconds / STEP_SECONDS;
    let window = u64::from(window);
    let first = step.saturating_sub(window);
    let last = step.saturating_add(window);
    // Every step is compared, with no early exit, so timing does not tell which matched.
    let mut matched = None;
    for counter in first..=last {
        if constant_time_eq(&hotp(&key, counter, DIGITS), token) {
            matched = Some(counter);
        }
    }
    matched
}

/// The `otpauth://` URI that authenticator apps read from the QR code, exactly as
/// otplib's `authenticator.keyuri(label, issuer, secret)` writes it, e.g.
/// `otpauth://totp/medplum.com:Medplum%20-%20user%40example.com?secret=…&period=30&digits=6&algorithm=SHA1&issuer=medplum.com`.
///
/// Medplum passes `Medplum - <email>` as the label and `medplum.com` as the issuer.
pub fn otpauth_uri(secret_b32: &str, label: &str, issuer: &str) -> String {
    let issuer_enc = utf8_percent_encode(issuer, URI_COMPONENT);
    let label_enc = utf8_percent_encode(label, URI_COMPONENT);
    // otplib omits the issuer prefix and parameter when the issuer is empty,
    // and then prefixes the label with itself.
    if issuer.is_empty() {
        format!(
            "otpauth://totp/{label_enc}:{label_enc}?secret={secret_b32}&period={STEP_SECONDS}&digits={DIGITS}&algorithm=SHA1"
        )
    } else {
        format!(
            "otpauth://totp/{issuer_enc}:{label_enc}?secret={secret_b32}&period={STEP_SECONDS}&digits={DIGITS}&algorithm=SHA1&issuer={issuer_enc}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 seed, "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc6238_sha1_vectors() {
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, eight) in vectors {
            assert_eq!(code_with_digits(RFC_SECRET, t, 8).unwrap(), eight, "t={t}");
            // code mod 10^6 is the last six digits of code mod 10^8.
            assert_eq!(code_at(RFC_SECRET, t).unwrap(), &eight[2..], "t={t}");
        }
    }

    #[test]
    fn matches_otplib() {
        // otplib 12: authenticator.options = { epoch: t * 1000 }; authenticator.generate(secret).
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        for (t, code) in [
            (59, "503347"),
            (1_111_111_109, "088309"),
            (1_234_567_890, "401544"),
            (2_000_000_000, "978524"),
        ] {
            assert_eq!(code_at(secret, t).unwrap(), code, "t={t}");
            assert!(verify(secret, code, t, 0));
        }
    }

    #[test]
    fn secret_decoding_is_lenient_only_in_case_and_padding() {
        let code = code_at(RFC_SECRET, 59).unwrap();
        assert_eq!(code_at(&RFC_SECRET.to_lowercase(), 59).unwrap(), code);
        // "12345" is 8 base32 characters with padding.
        assert_eq!(
            code_at("GEZDGNBV", 59).unwrap(),
            code_at("GEZDGNBV====", 59).unwrap()
        );
        for bad in ["", "====", "GEZDGNB1", "GEZD GNBV", "not base32!"] {
            assert!(
                matches!(code_at(bad, 59), Err(AuthError::InvalidTotpSecret)),
                "{bad:?}"
            );
            assert!(!verify(bad, "123456", 59, 1));
        }
    }

    #[test]
    fn window_accepts_neighbouring_steps_only() {
        let t = 1_234_567_890;
        let prev = code_at(RFC_SECRET, t - 30).unwrap();
        let next = code_at(RFC_SECRET, t + 30).unwrap();
        let far = code_at(RFC_SECRET, t + 60).unwrap();
        assert!(verify(RFC_SECRET, &prev, t, 1));
        assert!(verify(RFC_SECRET, &next, t, 1));
        assert!(!verify(RFC_SECRET, &prev, t, 0));
        assert!(!verify(RFC_SECRET, &next, t, 0));
        assert!(!verify(RFC_SECRET, &far, t, 1));
        assert!(verify(RFC_SECRET, &far, t, 2));
    }

    #[test]
    fn window_at_epoch_start_does_not_underflow() {
        let code = code_at(RFC_SECRET, 0).unwrap();
        assert!(verify(RFC_SECRET, &code, 10, 5));
        assert!(!verify(RFC_SECRET, &code, 90, 2));
    }

    #[test]
    fn token_must_be_six_digits() {
        let t = 59;
        let code = code_at(RFC_SECRET, t).unwrap();
        assert!(verify(RFC_SECRET, &code, t, 0));
        for bad in [
            "",
            "12345",
            "1234567",
            &format!("{code} "),
            &format!(" {code}"),
            &format!("{code}0"),
            &code[..5],
            "28708a",
            "-28708",
        ] {
            assert!(!verify(RFC_SECRET, bad, t, 1), "{bad:?}");
        }
        // The 8-digit RFC value is not accepted as a 6-digit code.
        assert!(!verify(RFC_SECRET, "94287082", t, 0));
    }

    #[test]
    fn generated_secret_is_usable() {
        let secret = generate_secret().unwrap();
        assert_eq!(secret.len(), 32);
        assert!(
            secret
                .bytes()
                .all(|b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'))
        );
        assert_ne!(secret, generate_secret().unwrap());
        let code = code_at(&secret, 1_700_000_000).unwrap();
        assert_eq!(code.len(), 6);
        assert!(verify(&secret, &code, 1_700_000_000, 0));
    }

    #[test]
    fn otpauth_uri_matches_otplib_keyuri() {
        // otplib 12: authenticator.keyuri('Medplum - user@example.com', 'medplum.com', secret).
        assert_eq!(
            otpauth_uri(
                "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                "Medplum - user@example.com",
                "medplum.com"
            ),
            "otpauth://totp/medplum.com:Medplum%20-%20user%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&period=30&digits=6&algorithm=SHA1&issuer=medplum.com"
        );
    }

    #[test]
    fn otpauth_uri_escapes_like_encode_uri_component() {
        let uri = otpauth_uri("ABC", "a&b=c?d/e:f é", "x y&z");
        assert_eq!(
            uri,
            "otpauth://totp/x%20y%26z:a%26b%3Dc%3Fd%2Fe%3Af%20%C3%A9?secret=ABC&period=30&digits=6&algorithm=SHA1&issuer=x%20y%26z"
        );
        assert_eq!(
            otpauth_uri("ABC", "me", ""),
            "otpauth://totp/me:me?secret=ABC&period=30&digits=6&algorithm=SHA1"
        );
    }
}
