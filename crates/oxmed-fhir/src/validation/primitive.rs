//! The JSON representation and lexical rules of the FHIR primitive types
//! (<https://hl7.org/fhir/R4/datatypes.html#primitive>), written by hand rather than as regular
//! expressions: they run for every primitive value of every write, and a byte loop is both faster
//! than a regex engine and able to check what the official regexes cannot (calendar dates).

use serde_json::Value;

use super::IssueCode;
use crate::definitions::PrimitiveKind;

/// `string` and `markdown` are limited to 1 MiB of characters (ElementDefinition.maxLength of
/// `string.value` in the R4 snapshots).
const MAX_STRING_CHARS: usize = 1024 * 1024;

pub(super) struct Violation {
    pub(super) code: IssueCode,
    pub(super) message: String,
}

fn structure(message: String) -> Violation {
    Violation {
        code: IssueCode::Structure,
        message,
    }
}

fn value(message: String) -> Violation {
    Violation {
        code: IssueCode::Value,
        message,
    }
}

pub(super) fn check(kind: PrimitiveKind, v: &Value) -> Result<(), Violation> {
    use PrimitiveKind as P;
    match kind {
        P::Boolean => match v {
            Value::Bool(_) => Ok(()),
            other => Err(structure(format!(
                "expected a JSON boolean, found {}",
                json_kind(other)
            ))),
        },
        P::Integer => integer(v, "integer", i64::from(i32::MIN)),
        P::UnsignedInt => integer(v, "unsignedInt", 0),
        P::PositiveInt => integer(v, "positiveInt", 1),
        P::Decimal => match v {
            Value::Number(_) => Ok(()),
            other => Err(structure(format!(
                "expected a JSON number, found {}",
                json_kind(other)
            ))),
        },
        _ => {
            let Value::String(s) = v else {
                return Err(structure(format!(
                    "expected a JSON string, found {}",
                    json_kind(v)
                )));
            };
            if s.is_empty() {
                return Err(value("must not be an empty string".to_owned()));
            }
            string(kind, s).map_err(value)
        }
    }
}

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn integer(v: &Value, name: &str, min: i64) -> Result<(), Violation> {
    let Value::Number(n) = v else {
        return Err(structure(format!(
            "expected a JSON number, found {}",
            json_kind(v)
        )));
    };
    match n.as_i64() {
        Some(i) if i >= min && i <= i64::from(i32::MAX) => Ok(()),
        Some(i) => Err(value(format!("{i} is out of range for {name}"))),
        None if n.is_u64() => Err(value(format!("{n} is out of range for {name}"))),
        None => Err(value(format!("{n} is not an integer"))),
    }
}

fn string(kind: PrimitiveKind, s: &str) -> Result<(), String> {
    use PrimitiveKind as P;
    let ok = match kind {
        P::String | P::Markdown => {
            return if s.len() > MAX_STRING_CHARS && s.chars().count() > MAX_STRING_CHARS {
                Err(format!("is longer than {MAX_STRING_CHARS} characters"))
            } else {
                Ok(())
            };
        }
        P::Code => is_code(s),
        P::Id => is_id(s),
        P::Uri | P::Url | P::Canonical => !s.chars().any(is_space),
        P::Oid => is_oid(s),
        P::Uuid => is_uuid(s),
        P::Base64Binary => is_base64(s),
        P::Date => date(s.as_bytes()).is_some_and(|rest| rest.is_empty()),
        P::DateTime => is_date_time(s.as_bytes()),
        P::Instant => is_instant(s.as_bytes()),
        P::Time => time(s.as_bytes()).is_some_and(|rest| rest.is_empty()),
        P::Xhtml => s.trim_start().starts_with("<div"),
        P::Integer64 => is_integer64(s),
        P::Boolean | P::Integer | P::UnsignedInt | P::PositiveInt | P::Decimal => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} is not a valid {}", quote(s), name(kind)))
    }
}

fn name(kind: PrimitiveKind) -> &'static str {
    use PrimitiveKind as P;
    match kind {
        P::Base64Binary => "base64Binary",
        P::Boolean => "boolean",
        P::Canonical => "canonical",
        P::Code => "code",
        P::Date => "date",
        P::DateTime => "dateTime",
        P::Decimal => "decimal",
        P::Id => "id",
        P::Instant => "instant",
        P::Integer => "integer",
        P::Integer64 => "integer64",
        P::Markdown => "markdown",
        P::Oid => "oid",
        P::PositiveInt => "positiveInt",
        P::String => "string",
        P::Time => "time",
        P::UnsignedInt => "unsignedInt",
        P::Uri => "uri",
        P::Url => "url",
        P::Uuid => "uuid",
        P::Xhtml => "xhtml (a <div> element)",
    }
}

/// Quotes a value for a message, shortened so that a huge bad value does not bloat the outcome.
pub(super) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("\"{}...\"", &s[..cut]),
        None => format!("\"{s}\""),
    }
}

/// `\s` of the FHIR regexes, which come from XML Schema: space, tab, CR and LF only. Other
/// Unicode spaces (a no-break space, say) are ordinary characters there; the official examples
/// contain codes with them (v2 table 0550).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// `[^\s]+(\s[^\s]+)*`: no leading, trailing or repeated whitespace.
fn is_code(s: &str) -> bool {
    let mut previous_space = true;
    for c in s.chars() {
        let space = is_space(c);
        if space && previous_space {
            return false;
        }
        previous_space = space;
    }
    !previous_space
}

/// `[A-Za-z0-9\-\.]{1,64}`.
pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`.
fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut arcs = rest.split('.');
    if !matches!(arcs.next(), Some("0" | "1" | "2")) {
        return false;
    }
    let mut count = 0;
    for arc in arcs {
        let digits = arc.bytes().all(|b| b.is_ascii_digit());
        if arc.is_empty() || !digits || (arc.len() > 1 && arc.starts_with('0')) {
            return false;
        }
        count += 1;
    }
    count > 0
}

/// `urn:uuid:` followed by a lower-case 8-4-4-4-12 hex UUID.
fn is_uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:uuid:") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// `(\s*([0-9a-zA-Z\+/=]){4}\s*)+`: groups of four base64 characters, whitespace only between
/// groups.
fn is_base64(s: &str) -> bool {
    let mut in_group = 0;
    let mut groups = 0;
    for b in s.bytes() {
        if is_space(char::from(b)) {
            if in_group != 0 {
                return false;
            }
        } else if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=' {
            in_group += 1;
            if in_group == 4 {
                in_group = 0;
                groups += 1;
            }
        } else {
            return false;
        }
    }
    in_group == 0 && groups > 0
}

fn is_integer64(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s.parse::<i64>().is_ok()
}

fn digits<const N: usize>(s: &[u8]) -> Option<(u32, &[u8])> {
    if s.len() < N || !s[..N].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = s[..N]
        .iter()
        .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'));
    Some((n, &s[N..]))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (a real calendar date, year 0001 to 9999). Returns the rest
/// of the input and whether the day was present.
fn date_parts(s: &[u8]) -> Option<(&[u8], bool)> {
    let (year, rest) = digits::<4>(s)?;
    if year == 0 {
        return None;
    }
    let Some(rest) = rest.strip_prefix(b"-") else {
        return Some((rest, false));
    };
    let (month, rest) = digits::<2>(rest)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let Some(rest) = rest.strip_prefix(b"-") else {
        return Some((rest, false));
    };
    let (day, rest) = digits::<2>(rest)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some((rest, true))
}

fn date(s: &[u8]) -> Option<&[u8]> {
    date_parts(s).map(|(rest, _)| rest)
}

/// `hh:mm:ss` with optional fraction; `60` seconds allowed for leap seconds, as in the R4 regex.
fn time(s: &[u8]) -> Option<&[u8]> {
    let (hour, rest) = digits::<2>(s)?;
    let (minute, rest) = digits::<2>(rest.strip_prefix(b":")?)?;
    let (second, mut rest) = digits::<2>(rest.strip_prefix(b":")?)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &fraction[n..];
    }
    Some(rest)
}

/// `Z` or `(+|-)hh:mm` with hours 00 to 13, or exactly `14:00`.
fn zone(s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"Z") {
        return Some(rest);
    }
    let rest = s.strip_prefix(b"+").or_else(|| s.strip_prefix(b"-"))?;
    let (hour, rest) = digits::<2>(rest)?;
    let (minute, rest) = digits::<2>(rest.strip_prefix(b":")?)?;
    let ok = (hour <= 13 && minute <= 59) || (hour == 14 && minute == 0);
    ok.then_some(rest)
}

fn is_date_time(s: &[u8]) -> bool {
    let Some((rest, has_day)) = date_parts(s) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    has_day && is_time_and_zone(rest)
}

fn is_instant(s: &[u8]) -> bool {
    matches!(date_parts(s), Some((rest, true)) if is_time_and_zone(rest))
}

fn is_time_and_zone(s: &[u8]) -> bool {
    s.strip_prefix(b"T")
        .and_then(time)
        .and_then(zone)
        .is_some_and(<[u8]>::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: PrimitiveKind, s: &str) -> bool {
        string(kind, s).is_ok()
    }

    #[test]
    fn dates() {
        use PrimitiveKind::{Date, DateTime, Instant, Time};
        for good in ["2020", "2020-02", "2020-02-29", "0001-01-01"] {
            assert!(ok(Date, good), "{good}");
            assert!(ok(DateTime, good), "{good}");
        }
        for bad in [
            "2020-13-01",
            "2021-02-29",
            "0000",
            "20",
            "2020-1-01",
            "2020-01-01T",
            "2020-00",
        ] {
            assert!(!ok(Date, bad), "{bad}");
        }
        assert!(ok(DateTime, "2015-02-07T13:28:17.239+02:00"));
        assert!(ok(DateTime, "2015-02-07T13:28:17Z"));
        assert!(ok(DateTime, "2015-02-07T13:28:17-14:00"));
        assert!(!ok(DateTime, "2015-02-07T13:28:17+14:30"));
        assert!(!ok(DateTime, "2015-02-07T13:28:17"));
        assert!(!ok(DateTime, "2015-02-07T13:28Z"));
        assert!(!ok(DateTime, "2015-02T13:28:17Z"));
        assert!(ok(Instant, "2015-02-07T13:28:17.239Z"));
        assert!(!ok(Instant, "2015-02-07"));
        assert!(ok(Time, "23:59:60.5"));
        assert!(!ok(Time, "24:00:00"));
        assert!(!ok(Time, "12:00"));
    }

    #[test]
    fn lexical_types() {
        use PrimitiveKind as P;
        assert!(ok(P::Code, "a b"));
        assert!(!ok(P::Code, " a"));
        assert!(!ok(P::Code, "a  b"));
        assert!(!ok(P::Code, "a "));
        assert!(ok(P::Code, "KIDN\u{a0}"));
        assert!(ok(P::Id, "a-B.9"));
        assert!(!ok(P::Id, "a_b"));
        assert!(!ok(P::Id, &"a".repeat(65)));
        assert!(ok(P::Oid, "urn:oid:2.16.840.1.113883"));
        assert!(!ok(P::Oid, "urn:oid:3.1"));
        assert!(!ok(P::Oid, "urn:oid:1.01"));
        assert!(ok(P::Uuid, "urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162"));
        assert!(!ok(
            P::Uuid,
            "urn:uuid:A76D9BBF-F293-4FB7-AD4C-2851CAC77162"
        ));
        assert!(ok(P::Base64Binary, "aGVsbG8="));
        assert!(ok(P::Base64Binary, "aGVs\nbG8="));
        assert!(!ok(P::Base64Binary, "aGVsbG8"));
        assert!(!ok(P::Base64Binary, "aG Vs"));
        assert!(ok(P::Uri, "http://x/y"));
        assert!(!ok(P::Uri, "http://x/ y"));
        assert!(ok(P::Integer64, "-9007199254740993"));
        assert!(!ok(P::Integer64, "01"));
    }

    #[test]
    fn json_kinds() {
        use serde_json::json;
        assert!(check(PrimitiveKind::Boolean, &json!("true")).is_err());
        assert!(check(PrimitiveKind::Integer, &json!(1.5)).is_err());
        assert!(check(PrimitiveKind::Integer, &json!(2_147_483_648_i64)).is_err());
        assert!(check(PrimitiveKind::PositiveInt, &json!(0)).is_err());
        assert!(check(PrimitiveKind::UnsignedInt, &json!(0)).is_ok());
        assert!(check(PrimitiveKind::Decimal, &json!("1.0")).is_err());
        assert!(check(PrimitiveKind::String, &json!("")).is_err());
    }
}
