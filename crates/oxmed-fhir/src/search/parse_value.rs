//! The value side of a search parameter: escapes, lists, prefixes and the value syntax of each
//! parameter type. Every function here sees one parameter's raw (percent-decoded but still
//! backslash-escaped) value and knows nothing of the registry beyond what it is handed.

use crate::index::{normalize_string, parse_date_range, parse_reference};
use crate::search::{
    DateTest, NumberTest, Prefix, QuantityTest, ReferenceTest, StringTest, TokenKind, TokenTest,
    UriTest,
};

/// Splits `raw` on every `sep` that is not escaped by a backslash. The pieces keep their escapes
/// so that a later split on another separator (`|` inside a `,` list, `$` inside a composite)
/// still sees them; [`unescape`] removes them at the leaves.
pub(crate) fn split_unescaped(raw: &str, sep: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in raw.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            pieces.push(&raw[start..i]);
            start = i + c.len_utf8();
        }
    }
    pieces.push(&raw[start..]);
    pieces
}

/// Removes the search escapes `\,` `\|` `\$` `\\`. A backslash before any other character (or at
/// the end) is kept as written: such values (regular expressions, Windows paths) are more likely
/// meant literally than mistakes worth a 400.
pub(crate) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some(&next @ (',' | '|' | '$' | '\\')) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits a leading comparison prefix off an ordered value (date, number, quantity). Two lower
/// case letters followed by a digit or sign that are not a known prefix are an unknown prefix;
/// other leading letters are left for the value parser to refuse as a malformed value.
pub(crate) fn split_prefix(raw: &str) -> Result<(Prefix, &str), String> {
    let b = raw.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_lowercase() && b[1].is_ascii_lowercase() {
        let prefix = match &b[..2] {
            b"eq" => Some(Prefix::Eq),
            b"ne" => Some(Prefix::Ne),
            b"gt" => Some(Prefix::Gt),
            b"lt" => Some(Prefix::Lt),
            b"ge" => Some(Prefix::Ge),
            b"le" => Some(Prefix::Le),
            b"sa" => Some(Prefix::Sa),
            b"eb" => Some(Prefix::Eb),
            b"ap" => Some(Prefix::Ap),
            _ => None,
        };
        match prefix {
            Some(p) => return Ok((p, &raw[2..])),
            None if b.get(2).is_some_and(|c| c.is_ascii_digit() || *c == b'-') => {
                return Err(format!(
                    "unknown prefix {:?} (expected one of eq, ne, gt, lt, ge, le, sa, eb, ap)",
                    &raw[..2]
                ));
            }
            None => {}
        }
    }
    Ok((Prefix::Eq, raw))
}

pub(crate) fn string_test(raw: &str, modifier: Option<&str>) -> Result<StringTest, String> {
    let value = unescape(raw);
    Ok(match modifier {
        None => StringTest::StartsWith(normalize_string(&value)),
        Some("contains") => StringTest::Contains(normalize_string(&value)),
        Some("exact") => StringTest::Exact(value),
        Some(other) => return Err(format!("modifier :{other} is not valid on a string")),
    })
}

/// `code`, `system|code`, `|code` or `system|` as the (system, code) pair of a [`TokenTest`].
pub(crate) fn system_and_code(raw: &str) -> Result<(Option<String>, Option<String>), String> {
    let parts = split_unescaped(raw, '|');
    match parts.as_slice() {
        [code] => Ok((None, Some(unescape(code)))),
        [system, code] => {
            let (system, code) = (unescape(system), unescape(code));
            match (system.is_empty(), code.is_empty()) {
                (true, true) => Err("a token needs a code or a system".to_string()),
                (true, false) => Ok((Some(String::new()), Some(code))),
                (false, true) => Ok((Some(system), None)),
                (false, false) => Ok((Some(system), Some(code))),
            }
        }
        _ => Err("a token has at most one unescaped '|' (system|code)".to_string()),
    }
}

/// A token value under `kind`'s modifier: `None` (eq), `not`, `text`, `of-type`.
pub(crate) fn token_test(raw: &str, kind: TokenModifier) -> Result<TokenTest, String> {
    match kind {
        TokenModifier::Eq | TokenModifier::Not => {
            let (system, code) = system_and_code(raw)?;
            Ok(TokenTest {
                kind: if kind == TokenModifier::Not {
                    TokenKind::Not
                } else {
                    TokenKind::Eq
                },
                system,
                code,
            })
        }
        TokenModifier::Text => Ok(TokenTest {
            kind: TokenKind::Text,
            system: None,
            code: Some(normalize_string(&unescape(raw))),
        }),
        TokenModifier::OfType => {
            let parts: Vec<String> = split_unescaped(raw, '|')
                .into_iter()
                .map(unescape)
                .collect();
            match parts.as_slice() {
                [system, code, value]
                    if !system.is_empty() && !code.is_empty() && !value.is_empty() =>
                {
                    Ok(TokenTest {
                        kind: TokenKind::OfType {
                            value: value.clone(),
                        },
                        system: Some(system.clone()),
                        code: Some(code.clone()),
                    })
                }
                _ => {
                    Err(":of-type takes typeSystem|typeCode|value, all three non-empty".to_string())
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenModifier {
    Eq,
    Not,
    Text,
    OfType,
}

/// What a reference value may be checked against.
pub(crate) struct ReferenceContext<'a> {
    /// The parameter's allowed target types; empty means unconstrained.
    pub targets: &'a [String],
    /// The `:Type` modifier, if any.
    pub modifier_type: Option<&'a str>,
    /// The server's base URL without a trailing slash.
    pub base_url: Option<&'a str>,
    pub is_resource_type: &'a dyn Fn(&str) -> bool,
}

pub(crate) fn reference_test(
    raw: &str,
    ctx: &ReferenceContext<'_>,
) -> Result<ReferenceTest, String> {
    let value = unescape(raw);
    let local_part = ctx
        .base_url
        .and_then(|base| value.strip_prefix(base))
        .and_then(|rest| rest.strip_prefix('/'));
    if let Some(relative) = local_part {
        return local_reference(relative, ctx)
            .ok_or_else(|| format!("{value:?} is not a Type/id reference on this server"))?;
    }
    if value.contains("://") || value.starts_with("urn:") {
        return Ok(ReferenceTest::Url(value));
    }
    if value.contains('/') {
        return local_reference(&value, ctx).ok_or_else(|| {
            format!("{value:?} is not a reference (expected Type/id, an id or an absolute URL)")
        })?;
    }
    if !is_id(&value) {
        return Err(format!("{value:?} is not a valid id"));
    }
    Ok(ReferenceTest::Local {
        target_type: ctx.modifier_type.map(str::to_string),
        id: value,
    })
}

/// `Type/id` (version ignored) checked against the parameter; `None` when it is no `Type/id`.
fn local_reference(
    relative: &str,
    ctx: &ReferenceContext<'_>,
) -> Option<Result<ReferenceTest, String>> {
    let (t, id) = parse_reference(relative)?;
    // An absolute URL passes parse_reference; here only a relative path is a local reference.
    if relative.contains("://") {
        return None;
    }
    Some(check_target(t, ctx).map(|()| ReferenceTest::Local {
        target_type: Some(t.to_string()),
        id: id.to_string(),
    }))
}

fn check_target(t: &str, ctx: &ReferenceContext<'_>) -> Result<(), String> {
    if !(ctx.is_resource_type)(t) {
        return Err(format!("{t} is not a resource type"));
    }
    if let Some(m) = ctx.modifier_type
        && m != t
    {
        return Err(format!(
            "the reference {t}/... contradicts the :{m} modifier"
        ));
    }
    if !ctx.targets.is_empty() && !ctx.targets.iter().any(|x| x == t) {
        return Err(format!(
            "{t} is not a target of this parameter (allowed: {})",
            ctx.targets.join(", ")
        ));
    }
    Ok(())
}

/// The FHIR id syntax, as `index::parse_reference` accepts it.
pub(crate) fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub(crate) fn date_test(raw: &str) -> Result<DateTest, String> {
    let (prefix, rest) = split_prefix(raw)?;
    let value = unescape(rest);
    let (start, end) = parse_date_range(&repair_offset_sign(&value))
        .ok_or_else(|| format!("{value:?} is not a valid date, dateTime or instant"))?;
    Ok(DateTest { prefix, start, end })
}

/// A `+hh:mm` zone sent without percent-encoding arrives decoded as a space; it can mean
/// nothing else in a date, so it is read as the `+` it was.
fn repair_offset_sign(value: &str) -> std::borrow::Cow<'_, str> {
    let b = value.as_bytes();
    if b.len() > 6 && b[b.len() - 6] == b' ' && value.contains('T') {
        let mut repaired = value.to_string();
        repaired.replace_range(b.len() - 6..b.len() - 5, "+");
        return repaired.into();
    }
    value.into()
}

pub(crate) fn number_test(raw: &str) -> Result<NumberTest, String> {
    let (prefix, rest) = split_prefix(raw)?;
    let (value, low, high) =
        parse_decimal(rest).ok_or_else(|| format!("{rest:?} is not a valid number"))?;
    Ok(NumberTest {
        prefix,
        value,
        low,
        high,
    })
}

/// `[prefix]number`, `[prefix]number|system|code` or `[prefix]number||code`.
pub(crate) fn quantity_test(raw: &str) -> Result<QuantityTest, String> {
    let parts = split_unescaped(raw, '|');
    let non_empty = |s: &str| Some(unescape(s)).filter(|s| !s.is_empty());
    let (number, system, code) = match parts.as_slice() {
        [number] => (number_test(number)?, None, None),
        [number, system, code] => (number_test(number)?, non_empty(system), non_empty(code)),
        _ => {
            return Err("a quantity is number, number|system|code or number||code".to_string());
        }
    };
    Ok(QuantityTest {
        number,
        system,
        code,
    })
}

pub(crate) fn uri_test(raw: &str, modifier: Option<&str>) -> Result<UriTest, String> {
    let value = unescape(raw);
    Ok(match modifier {
        None => UriTest::Eq(value),
        Some("below") => UriTest::Below(value),
        Some("above") => UriTest::Above(value),
        Some(other) => return Err(format!("modifier :{other} is not valid on a uri")),
    })
}

/// Longest run of significant digits a searched number may have: enough for any real quantity,
/// and small enough that the precision bounds are computed exactly in integers.
const MAX_DIGITS: usize = 36;

/// A FHIR decimal (`-?digits(.digits)?([eE][+-]?digits)?`) as its value and the half-open
/// range `[low, high)` its significant digits imply: half a unit of the last digit either side,
/// so `100` is [99.5, 100.5), `100.00` is [99.995, 100.005) and `1e2` is [50, 150). The bounds
/// are computed as exact decimals and rounded once to the nearest f64.
pub(crate) fn parse_decimal(s: &str) -> Option<(f64, f64, f64)> {
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !all_digits(digits) || digits.len() > 4 {
                return None;
            }
            e.parse().ok()?
        }
    };
    let frac = frac_part.unwrap_or("");
    let digits = format!("{int_part}{frac}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return None;
    }
    let m: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    // value = m × 10^-scale; the bounds are (10m ∓ 5) × 10^-(scale+1).
    let scale = i64::try_from(frac.len()).ok()? - exponent;
    let sign = if negative { -1 } else { 1 };
    let at = |n: i128, scale: i64| format!("{n}e{}", -scale).parse::<f64>().ok();
    let value = at(sign * m, scale)?;
    let (a, b) = (
        at(sign * (10 * m - 5), scale + 1)?,
        at(sign * (10 * m + 5), scale + 1)?,
    );
    let (low, high) = if negative { (b, a) } else { (a, b) };
    [value, low, high]
        .iter()
        .all(|x| x.is_finite())
        .then_some((value, low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_escapes() {
        assert_eq!(split_unescaped(r"a,b\,c,d", ','), vec!["a", r"b\,c", "d"]);
        assert_eq!(split_unescaped(r"a\\,b", ','), vec![r"a\\", "b"]);
        assert_eq!(split_unescaped("", ','), vec![""]);
        assert_eq!(unescape(r"b\,c\|d\$e\\f\g"), r"b,c|d$e\f\g");
        assert_eq!(unescape("x\\"), "x\\");
    }

    #[test]
    fn decimals_and_their_precision() {
        assert_eq!(parse_decimal("100"), Some((100.0, 99.5, 100.5)));
        assert_eq!(parse_decimal("100.00"), Some((100.0, 99.995, 100.005)));
        assert_eq!(parse_decimal("1e2"), Some((100.0, 50.0, 150.0)));
        assert_eq!(parse_decimal("1.0E2"), Some((100.0, 95.0, 105.0)));
        assert_eq!(parse_decimal("-5.5"), Some((-5.5, -5.55, -5.45)));
        assert_eq!(parse_decimal("0"), Some((0.0, -0.5, 0.5)));
        assert_eq!(parse_decimal("0.001"), Some((0.001, 0.0005, 0.0015)));
        for bad in [
            "", "-", "1.", ".5", "1e", "1e+", "abc", "1,5", "+1", "1e99999", "1e9999", "--1",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(split_prefix("ge2020"), Ok((Prefix::Ge, "2020")));
        assert_eq!(split_prefix("2020"), Ok((Prefix::Eq, "2020")));
        assert!(split_prefix("xx2020").is_err());
        assert_eq!(split_prefix("notadate"), Ok((Prefix::Eq, "notadate")));
    }
}
