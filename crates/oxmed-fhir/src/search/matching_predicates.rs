//! The comparisons of FHIR search, as pure functions of one searched value and one stored value
//! (an [`IndexValue`] as `index::extract` produces it). These are the reference semantics: the
//! SQL compiler implements the same predicates over the index tables, and tests compare the two.
//!
//! Each function answers the question for **one** stored value. How values combine is decided
//! in `matching` (and the module doc of `search`): a condition holds if any value of the
//! parameter matches, except the negations ([`is_negation`]) which hold if no value matches the
//! positive form ([`positive_form`]).

use crate::index::normalize_string;
use crate::index_value::IndexValue;
use crate::search::{
    NumberTest, Prefix, QuantityTest, ReferenceTest, StringTest, Test, TokenKind, TokenTest,
    UriTest,
};

/// `true` for the tests that hold when **no** value of the parameter matches their positive
/// form: token `:not`, and the `ne` prefix of date, number and quantity. A resource without any
/// value for the parameter therefore satisfies them. Composite tests are never negations at
/// the parameter level; an `ne` inside a component applies to that component's single value.
pub fn is_negation(test: &Test) -> bool {
    match test {
        Test::Token(t) => t.kind == TokenKind::Not,
        Test::Date(d) => d.prefix == Prefix::Ne,
        Test::Number(n) => n.prefix == Prefix::Ne,
        Test::Quantity(q) => q.number.prefix == Prefix::Ne,
        Test::String(_) | Test::Reference(_) | Test::Uri(_) | Test::Composite(_) => false,
    }
}

/// The positive form of a negation (`:not` → eq, `ne` → `eq`); any other test unchanged.
pub fn positive_form(test: &Test) -> Test {
    let mut positive = test.clone();
    match &mut positive {
        Test::Token(t) if t.kind == TokenKind::Not => t.kind = TokenKind::Eq,
        Test::Date(d) if d.prefix == Prefix::Ne => d.prefix = Prefix::Eq,
        Test::Number(n) if n.prefix == Prefix::Ne => n.prefix = Prefix::Eq,
        Test::Quantity(q) if q.number.prefix == Prefix::Ne => q.number.prefix = Prefix::Eq,
        _ => {}
    }
    positive
}

/// Whether one stored value satisfies `test`, read on that value alone (so a negation is the
/// plain complement here: `ne` is `!eq`, `:not` is `!eq`). A value of another parameter type
/// never matches. `now` (µs since the epoch) is only read by the date `ap` prefix.
pub fn value_matches(test: &Test, value: &IndexValue, now: i64) -> bool {
    match (test, value) {
        (Test::String(t), IndexValue::String { normalized, exact }) => {
            string_matches(t, normalized, exact)
        }
        (
            Test::Token(t),
            IndexValue::Token {
                system,
                code,
                text,
                type_system,
                type_code,
            },
        ) => {
            let stored = StoredToken {
                system: system.as_deref(),
                code: code.as_deref(),
                text: text.as_deref(),
                type_system: type_system.as_deref(),
                type_code: type_code.as_deref(),
            };
            let positive = token_matches(t, &stored);
            if t.kind == TokenKind::Not {
                !positive
            } else {
                positive
            }
        }
        (
            Test::Reference(t),
            IndexValue::Reference {
                reference,
                target_type,
                target_id,
            },
        ) => reference_matches(t, reference, target_type.as_deref(), target_id.as_deref()),
        (Test::Date(t), IndexValue::Date { start, end }) => {
            date_matches(t.prefix, (*start, *end), (t.start, t.end), now)
        }
        (Test::Number(t), IndexValue::Number { value }) => number_matches(t, *value),
        (
            Test::Quantity(t),
            IndexValue::Quantity {
                value,
                system,
                code,
                unit,
            },
        ) => quantity_matches(
            t,
            *value,
            system.as_deref(),
            code.as_deref(),
            unit.as_deref(),
        ),
        (Test::Uri(t), IndexValue::Uri { value }) => uri_matches(t, value),
        (Test::Composite(tests), IndexValue::Composite { components }) => {
            tests.len() == components.len()
                && tests
                    .iter()
                    .zip(components)
                    .all(|(t, c)| value_matches(t, c, now))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// string

/// - `StartsWith(s)`: the stored normalized value starts with `s` (both normalized by
///   `index::normalize_string`: lower case, accents removed).
/// - `Contains(s)`: the stored normalized value contains `s`.
/// - `Exact(s)`: the stored value as written equals `s`, byte for byte.
///
/// An empty searched string matches every value (the parser never produces one).
pub fn string_matches(test: &StringTest, normalized: &str, exact: &str) -> bool {
    match test {
        StringTest::StartsWith(s) => normalized.starts_with(s.as_str()),
        StringTest::Contains(s) => normalized.contains(s.as_str()),
        StringTest::Exact(s) => exact == s,
    }
}

// ---------------------------------------------------------------------------------------------
// token

/// One stored token, borrowed from an [`IndexValue::Token`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredToken<'a> {
    pub system: Option<&'a str>,
    pub code: Option<&'a str>,
    pub text: Option<&'a str>,
    pub type_system: Option<&'a str>,
    pub type_code: Option<&'a str>,
}

/// The positive reading of a token test on one stored token (`Not` is read as `Eq`: the
/// negation is applied across all values by the caller):
/// - `Eq` / `Not`: [`token_code_matches`].
/// - `Text`: [`token_text_matches`] on the stored `text` (a coding's display, a
///   CodeableConcept's text, an Identifier's type text).
/// - `OfType { value }`: the stored `type_system` equals `system`, `type_code` equals `code` and
///   the stored `code` (the identifier's value) equals `value`, all exactly.
pub fn token_matches(test: &TokenTest, stored: &StoredToken<'_>) -> bool {
    match &test.kind {
        TokenKind::Eq | TokenKind::Not => token_code_matches(
            test.system.as_deref(),
            test.code.as_deref(),
            stored.system,
            stored.code,
        ),
        TokenKind::Text => token_text_matches(test.code.as_deref().unwrap_or(""), stored.text),
        TokenKind::OfType { value } => {
            test.system.is_some()
                && test.code.is_some()
                && stored.type_system == test.system.as_deref()
                && stored.type_code == test.code.as_deref()
                && stored.code == Some(value.as_str())
        }
    }
}

/// `[system|]code` against a stored token. Systems and codes compare exactly (case-sensitive,
/// no normalization):
/// - searched system `None` (`code`): any stored system, or none;
/// - `Some("")` (`|code`): the stored token has no system;
/// - `Some(s)` (`s|code`, `s|`): the stored system is `s`;
/// - searched code `None` (`s|`): any stored code, including a token with a system and no code;
/// - `Some(c)`: the stored code is `c` (a token without a code never matches).
pub fn token_code_matches(
    searched_system: Option<&str>,
    searched_code: Option<&str>,
    stored_system: Option<&str>,
    stored_code: Option<&str>,
) -> bool {
    let system_ok = match searched_system {
        None => true,
        Some("") => stored_system.is_none(),
        Some(s) => stored_system == Some(s),
    };
    let code_ok = match searched_code {
        None => true,
        Some(c) => stored_code == Some(c),
    };
    system_ok && code_ok
}

/// `:text`: the stored text, normalized by `index::normalize_string`, starts with the searched
/// text (already normalized). A token without text never matches.
pub fn token_text_matches(searched_normalized: &str, stored_text: Option<&str>) -> bool {
    stored_text.is_some_and(|t| normalize_string(t).starts_with(searched_normalized))
}

// ---------------------------------------------------------------------------------------------
// reference

/// - `Local { target_type, id }`: the stored reference resolves to `Type/id` (index extraction
///   fills `target_type`/`target_id` for `Type/id`, `Type/id/_history/n` and absolute URLs
///   ending in those) with `target_id == id` and, when `target_type` is given,
///   `target_type == stored target_type`. All exact.
/// - `Url(u)`: the stored reference as written equals `u` exactly.
pub fn reference_matches(
    test: &ReferenceTest,
    reference: &str,
    target_type: Option<&str>,
    target_id: Option<&str>,
) -> bool {
    match test {
        ReferenceTest::Local {
            target_type: searched_type,
            id,
        } => {
            target_id == Some(id.as_str())
                && searched_type
                    .as_deref()
                    .is_none_or(|t| target_type == Some(t))
        }
        ReferenceTest::Url(u) => reference == u,
    }
}

// ---------------------------------------------------------------------------------------------
// date

/// A stored range `[s1, e1]` against a searched range `[s2, e2]`, all inclusive, in µs since the
/// epoch (FHIR R4 search.html#prefix, where "the range above the search value" is `(e2, +∞)`
/// and "below" is `(−∞, s2)`):
///
/// | prefix | holds when | reading |
/// | --- | --- | --- |
/// | `eq` | `s2 <= s1 && e1 <= e2` | the searched range contains the stored range |
/// | `ne` | `!(s2 <= s1 && e1 <= e2)` | not `eq` |
/// | `gt` | `e1 > e2` | the stored range reaches above the searched range |
/// | `lt` | `s1 < s2` | the stored range reaches below the searched range |
/// | `ge` | `gt \|\| eq` | |
/// | `le` | `lt \|\| eq` | |
/// | `sa` | `s1 > e2` | the stored range starts after the searched range |
/// | `eb` | `e1 < s2` | the stored range ends before the searched range |
/// | `ap` | `s1 <= e2 + t && e1 >= s2 - t` | the ranges overlap once the searched one is widened by `t` |
///
/// For `ap`, `t` is 10% of the distance from `now` to the searched range (0 when `now` is
/// inside it), rounded down to whole µs: `ap2020-06-01` searched in 2025 widens by about six
/// months each side. An open Period end is `i64::MIN` / `i64::MAX`, so it compares as
/// unbounded. `_lastUpdated` is the point `[t, t]`.
pub fn date_matches(prefix: Prefix, stored: (i64, i64), searched: (i64, i64), now: i64) -> bool {
    let ((s1, e1), (s2, e2)) = (stored, searched);
    let eq = s2 <= s1 && e1 <= e2;
    match prefix {
        Prefix::Eq => eq,
        Prefix::Ne => !eq,
        Prefix::Gt => e1 > e2,
        Prefix::Lt => s1 < s2,
        Prefix::Ge => e1 > e2 || eq,
        Prefix::Le => s1 < s2 || eq,
        Prefix::Sa => s1 > e2,
        Prefix::Eb => e1 < s2,
        Prefix::Ap => {
            let t = i128::from(date_ap_tolerance(searched, now));
            i128::from(s1) <= i128::from(e2) + t && i128::from(e1) >= i128::from(s2) - t
        }
    }
}

/// The widening of a searched date range under `ap`: 10% of the distance from `now` to the
/// range, 0 when `now` lies within it.
pub fn date_ap_tolerance(searched: (i64, i64), now: i64) -> i64 {
    let (s2, e2) = (i128::from(searched.0), i128::from(searched.1));
    let now = i128::from(now);
    let distance = if now < s2 {
        s2 - now
    } else if now > e2 {
        now - e2
    } else {
        0
    };
    i64::try_from(distance / 10).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// number and quantity

/// A stored number `v` against a searched number whose precision gives `[low, high)`:
///
/// | prefix | holds when |
/// | --- | --- |
/// | `eq` | `low <= v && v < high` |
/// | `ne` | not `eq` |
/// | `gt` | `v > value` |
/// | `lt` | `v < value` |
/// | `ge` | `v >= value` |
/// | `le` | `v <= value` |
/// | `sa` | `v >= high` (after the whole implied range) |
/// | `eb` | `v < low` (before the whole implied range) |
/// | `ap` | `eq`, or `abs(v − value) <= abs(value) / 10` |
pub fn number_matches(test: &NumberTest, v: f64) -> bool {
    let eq = test.low <= v && v < test.high;
    match test.prefix {
        Prefix::Eq => eq,
        Prefix::Ne => !eq,
        Prefix::Gt => v > test.value,
        Prefix::Lt => v < test.value,
        Prefix::Ge => v >= test.value,
        Prefix::Le => v <= test.value,
        Prefix::Sa => v >= test.high,
        Prefix::Eb => v < test.low,
        Prefix::Ap => eq || (v - test.value).abs() <= test.value.abs() / 10.0,
    }
}

/// The unit part of a quantity search, exact strings, no unit conversion:
/// - no searched code: any unit; with a searched system only (`n|s|`), the stored system is `s`;
/// - searched system and code (`n|s|c`): stored system is `s` and stored code is `c`;
/// - searched code without system (`n||c`): stored code is `c`, or stored unit (the human
///   readable `Quantity.unit`) is `c`.
pub fn quantity_unit_matches(
    searched_system: Option<&str>,
    searched_code: Option<&str>,
    stored_system: Option<&str>,
    stored_code: Option<&str>,
    stored_unit: Option<&str>,
) -> bool {
    match (searched_system, searched_code) {
        (None, None) => true,
        (Some(s), None) => stored_system == Some(s),
        (Some(s), Some(c)) => stored_system == Some(s) && stored_code == Some(c),
        (None, Some(c)) => stored_code == Some(c) || stored_unit == Some(c),
    }
}

/// [`quantity_unit_matches`] and [`number_matches`] on the value. Under `ne` the unit still
/// has to match: `ne5||mg` holds for `6 mg` and for `5 g`, taken value by value (across values
/// the caller applies "no value matches `eq5||mg`").
pub fn quantity_matches(
    test: &QuantityTest,
    value: f64,
    system: Option<&str>,
    code: Option<&str>,
    unit: Option<&str>,
) -> bool {
    let unit_ok = quantity_unit_matches(
        test.system.as_deref(),
        test.code.as_deref(),
        system,
        code,
        unit,
    );
    if test.number.prefix == Prefix::Ne {
        let eq = NumberTest {
            prefix: Prefix::Eq,
            ..test.number
        };
        return !(unit_ok && number_matches(&eq, value));
    }
    unit_ok && number_matches(&test.number, value)
}

// ---------------------------------------------------------------------------------------------
// uri

/// Exact comparisons, on path segments for `:below` / `:above`:
/// - `Eq(u)`: stored equals `u`;
/// - `Below(u)`: stored equals `u`, or starts with `u` followed by `/` (or `u` itself ends with
///   `/`): `http://a.org/fhir` is below-matched by `http://a.org/fhir/ValueSet/1` but not by
///   `http://a.org/fhirx`;
/// - `Above(u)`: the same with the roles swapped: `u` is the stored value or below it.
pub fn uri_matches(test: &UriTest, stored: &str) -> bool {
    match test {
        UriTest::Eq(u) => stored == u,
        UriTest::Below(u) => is_at_or_below(stored, u),
        UriTest::Above(u) => is_at_or_below(u, stored),
    }
}

/// Whether `uri` is `base` or lies under it, segment-wise.
pub fn is_at_or_below(uri: &str, base: &str) -> bool {
    match uri.strip_prefix(base) {
        None => false,
        Some(rest) => rest.is_empty() || base.ends_with('/') || rest.starts_with('/'),
    }
}
