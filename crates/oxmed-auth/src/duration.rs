//! Token lifetimes written the way Medplum's configuration writes them: `1h`, `2w`, `30d`.
//!
//! A year is 365 days here. (Medplum hands these strings to `jose`, whose year is
//! 365.25 days, so a `1y` token lives six hours longer there.)

use std::time::Duration;

use crate::error::AuthError;

/// Parses `^[0-9]+[smhdwy]$` (seconds, minutes, hours, days, weeks, years).
///
/// Anything else, including a value too large for [`Duration`], is
/// [`AuthError::InvalidDuration`] ("Invalid token duration").
pub fn parse(s: &str) -> Result<Duration, AuthError> {
    let (digits, unit) = s
        .char_indices()
        .last()
        .map(|(i, _)| s.split_at(i))
        .ok_or(AuthError::InvalidDuration)?;
    // `u64::from_str` also takes a leading `+`, which the pattern does not.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::InvalidDuration);
    }
    let seconds_per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(AuthError::InvalidDuration),
    };
    let count: u64 = digits.parse().map_err(|_| AuthError::InvalidDuration)?;
    count
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or(AuthError::InvalidDuration)
}

/// Whether [`parse`] accepts `s`.
pub fn is_valid(s: &str) -> bool {
    parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let cases = [
            ("0s", 0),
            ("45s", 45),
            ("1m", 60),
            ("1h", 3_600),
            ("2d", 2 * 86_400),
            ("2w", 14 * 86_400),
            ("1y", 365 * 86_400),
            ("007h", 7 * 3_600),
        ];
        for (text, secs) in cases {
            assert_eq!(parse(text).unwrap(), Duration::from_secs(secs), "{text}");
            assert!(is_valid(text));
        }
    }

    #[test]
    fn rejects_anything_off_the_pattern() {
        for bad in [
            "", "h", "1", "10", "1H", "1ms", "1 h", " 1h", "1h ", "+1h", "-1h", "1.5h", "1x", "h1",
            "1hh", "１h", "1é",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.to_string(), "Invalid token duration", "{bad:?}");
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(parse(&format!("{}s", u64::MAX)).is_ok());
        assert!(parse(&format!("{}m", u64::MAX)).is_err());
        assert!(parse("99999999999999999999999s").is_err());
        assert!(parse(&format!("{}y", u64::MAX / (365 * 86_400) + 1)).is_err());
    }
}
