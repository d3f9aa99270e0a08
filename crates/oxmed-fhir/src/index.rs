//! Extraction of search index values from a resource: every search parameter of the resource's
//! type is evaluated and its results are converted to [`IndexValue`]s according to the
//! parameter type and the FHIR data type found (HumanName, CodeableConcept, Period, ...).
//!
//! Data types are recognised from the JSON shape and from choice-element suffixes, without the
//! structure definitions: that is enough to tell apart the types a search parameter can point at,
//! and keeps extraction on the write path cheap. Values that cannot be converted (an invalid
//! date, a Reference holding only an identifier) are skipped, never an error.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::fhirpath::{Expression, Node};
use crate::index_value::{IndexEntry, IndexValue};
use crate::search_parameter::{SearchParamType, SearchParameter, SearchParameters};

const ISO_4217: &str = "urn:iso:std:iso:4217";

/// A composite parameter's combinations per element are the product of its components' values;
/// the cap keeps a pathological resource from producing an unbounded number of rows.
const MAX_COMBINATIONS_PER_ELEMENT: usize = 1024;

/// The index entries of `resource` for every search parameter of its `resourceType`, using the
/// vendored search parameters. A resource of unknown type yields nothing.
pub fn extract(resource: &Value) -> Vec<IndexEntry> {
    extract_with(SearchParameters::global(), resource)
}

/// [`extract`] with a given registry.
pub fn extract_with(registry: &SearchParameters, resource: &Value) -> Vec<IndexEntry> {
    extract_filtered(registry, resource, 64, |_| true)
}

/// The index entries of `resource` for the search parameters named by `codes` only: what
/// deciding a few conditions on one resource needs (an access policy's criteria on a read),
/// without evaluating every other parameter of its type.
pub fn extract_only(resource: &Value, codes: &[&str]) -> Vec<IndexEntry> {
    extract_filtered(SearchParameters::global(), resource, 4, |code| {
        codes.contains(&code)
    })
}

fn extract_filtered(
    registry: &SearchParameters,
    resource: &Value,
    capacity: usize,
    wanted: impl Fn(&str) -> bool,
) -> Vec<IndexEntry> {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return Vec::new();
    };
    let params = registry
        .with_expressions(resource_type)
        .filter(|(param, _)| wanted(&param.code));
    extract_params(resource, params, wanted(ACCOUNT_CODE), capacity)
}

/// The index entries of `resource` for the given parameters (each with its expression for the
/// resource's type, as [`SearchParameters::with_expressions`] gives them), and its accounts when
/// `accounts`: for a caller that chose the parameters once for many resources of one type (an
/// access policy's criteria on reads), so that each decision evaluates those and looks at no
/// other parameter of the type.
pub fn extract_params<'p>(
    resource: &Value,
    params: impl IntoIterator<Item = (&'p SearchParameter, &'p Expression)>,
    accounts_too: bool,
    capacity: usize,
) -> Vec<IndexEntry> {
    let root = [Node::new(resource)];
    let mut entries = Vec::with_capacity(capacity);
    let mut nodes = Vec::new();
    let mut values = Vec::new();
    for (param, expression) in params {
        if param.kind == SearchParamType::Special {
            continue;
        }
        nodes.clear();
        expression.evaluate_into(&root, resource, &mut nodes);
        if nodes.is_empty() {
            continue;
        }
        values.clear();
        if param.kind == SearchParamType::Composite {
            composite_values(param, &nodes, resource, &mut values);
        } else {
            for node in &nodes {
                convert(param.kind, node, &mut values);
            }
        }
        dedup(&mut values);
        for value in values.drain(..) {
            entries.push(IndexEntry {
                code: param.code.clone(),
                value,
            });
        }
    }
    if accounts_too {
        accounts(resource, &mut entries);
    }
    entries
}

/// The code of the index entries of a resource's accounts (`meta.account`, `meta.accounts`):
/// the compartments it belongs to besides the Patient's, which `_compartment` searches. No
/// search parameter has a code starting with `_` that is not a special one.
pub const ACCOUNT_CODE: &str = "_account";

/// The account References of a resource's `meta`: `account`, then each of `accounts`.
pub fn account_references(meta: &Value) -> impl Iterator<Item = &Value> {
    let one = meta.get("account").into_iter();
    let many = meta
        .get("accounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    one.chain(many)
}

fn accounts(resource: &Value, entries: &mut Vec<IndexEntry>) {
    let Some(meta) = resource.get("meta") else {
        return;
    };
    let mut values = Vec::new();
    for r in account_references(meta) {
        convert(SearchParamType::Reference, &Node::new(r), &mut values);
    }
    dedup(&mut values);
    for value in values {
        entries.push(IndexEntry {
            code: ACCOUNT_CODE.to_owned(),
            value,
        });
    }
}

/// The index values of one node for a parameter of type `kind`, appended to `out`.
pub fn convert(kind: SearchParamType, node: &Node<'_>, out: &mut Vec<IndexValue>) {
    let mut push = |v: IndexValue| out.push(v);
    let value = node.value();
    match kind {
        SearchParamType::String => string_values(value, &mut push),
        SearchParamType::Token => token_values(value, &mut push),
        SearchParamType::Reference => reference_values(value, &mut push),
        SearchParamType::Date => date_values(value, &mut push),
        SearchParamType::Number => {
            if let Some(n) = value.as_f64() {
                push(IndexValue::Number { value: n });
            }
        }
        SearchParamType::Quantity => quantity_values(value, &mut push),
        SearchParamType::Uri => {
            if let Some(s) = non_empty_str(value) {
                push(IndexValue::Uri {
                    value: s.to_string(),
                });
            }
        }
        SearchParamType::Composite | SearchParamType::Special => {}
    }
}

fn composite_values<'a>(
    param: &'a SearchParameter,
    nodes: &[Node<'a>],
    resource: &'a Value,
    out: &mut Vec<IndexValue>,
) {
    let mut component_nodes: Vec<Vec<Node<'a>>> = vec![Vec::new(); param.components.len()];
    let mut parts: Vec<Vec<IndexValue>> = Vec::with_capacity(param.components.len());
    'element: for node in nodes {
        // Find every component's nodes before converting any: most elements lack one of them
        // (an Observation with a Quantity value has no CodeableConcept value).
        for (component, found) in param.components.iter().zip(&mut component_nodes) {
            found.clear();
            component
                .expression
                .evaluate_into(std::slice::from_ref(node), resource, found);
            if found.is_empty() {
                continue 'element;
            }
        }
        parts.clear();
        for (component, found) in param.components.iter().zip(&component_nodes) {
            let mut values = Vec::new();
            for n in found {
                convert(component.kind, n, &mut values);
            }
            // Composite search matches components by value (`system|code$value`), never by
            // text, so a CodeableConcept's text-only token would only add useless rows.
            values.retain(|v| !is_text_only_token(v));
            dedup(&mut values);
            if values.is_empty() {
                continue 'element;
            }
            parts.push(values);
        }
        if parts.is_empty() {
            continue;
        }
        let mut combinations: Vec<Vec<IndexValue>> = vec![Vec::new()];
        for values in &parts {
            let mut next = Vec::with_capacity(combinations.len() * values.len());
            'product: for prefix in &combinations {
                for v in values {
                    if next.len() >= MAX_COMBINATIONS_PER_ELEMENT {
                        break 'product;
                    }
                    let mut combination = prefix.clone();
                    combination.push(v.clone());
                    next.push(combination);
                }
            }
            combinations = next;
        }
        out.extend(
            combinations
                .into_iter()
                .map(|components| IndexValue::Composite { components }),
        );
    }
}

/// Removes repeated values (two names with the same given name, the same code in two
/// codings), keeping first occurrences in order. Large arrays (a Group's thousands of members)
/// are common enough that this must not be quadratic, so beyond a few values it compares hashes
/// first.
fn dedup(values: &mut Vec<IndexValue>) {
    const LINEAR: usize = 16;
    if values.len() < 2 {
        return;
    }
    let mut kept = 0;
    if values.len() <= LINEAR {
        for i in 0..values.len() {
            if !values[..kept].contains(&values[i]) {
                values.swap(kept, i);
                kept += 1;
            }
        }
    } else {
        let mut first_with_hash: HashMap<u64, usize> = HashMap::with_capacity(values.len());
        for i in 0..values.len() {
            let hash = fingerprint(&values[i]);
            let duplicate = match first_with_hash.get(&hash) {
                Some(&j) => values[j] == values[i],
                None => false,
            };
            if !duplicate {
                first_with_hash.entry(hash).or_insert(kept);
                values.swap(kept, i);
                kept += 1;
            }
        }
    }
    values.truncate(kept);
}

fn fingerprint(value: &IndexValue) -> u64 {
    let mut hasher = DefaultHasher::new();
    hash_index_value(value, &mut hasher);
    hasher.finish()
}

fn hash_index_value(value: &IndexValue, h: &mut DefaultHasher) {
    std::mem::discriminant(value).hash(h);
    match value {
        IndexValue::String { normalized, exact } => (normalized, exact).hash(h),
        IndexValue::Token {
            system,
            code,
            text,
            type_system,
            type_code,
        } => (system, code, text, type_system, type_code).hash(h),
        IndexValue::Reference {
            reference,
            target_type,
            target_id,
        } => (reference, target_type, target_id).hash(h),
        IndexValue::Date { start, end } => (start, end).hash(h),
        IndexValue::Number { value } => value.to_bits().hash(h),
        IndexValue::Quantity {
            value,
            system,
            code,
            unit,
        } => (value.to_bits(), system, code, unit).hash(h),
        IndexValue::Uri { value } => value.hash(h),
        IndexValue::Composite { components } => {
            for c in components {
                hash_index_value(c, h);
            }
        }
    }
}

fn is_text_only_token(value: &IndexValue) -> bool {
    matches!(
        value,
        IndexValue::Token {
            system: None,
            code: None,
            ..
        }
    )
}

fn non_empty_str(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.trim().is_empty())
}

fn owned(value: Option<&Value>) -> Option<String> {
    value.and_then(non_empty_str).map(str::to_string)
}

/// The fields of a FHIR data type that conversion looks at, read in one pass over the object:
/// these objects have a handful of keys, and matching each key once is cheaper than hashing a
/// dozen candidate names into the map.
#[derive(Default)]
struct Fields<'v> {
    system: Option<&'v Value>,
    code: Option<&'v Value>,
    display: Option<&'v Value>,
    value: Option<&'v Value>,
    coding: Option<&'v Value>,
    text: Option<&'v Value>,
    type_: Option<&'v Value>,
    reference: Option<&'v Value>,
    identifier: Option<&'v Value>,
    currency: Option<&'v Value>,
    unit: Option<&'v Value>,
    low: Option<&'v Value>,
    high: Option<&'v Value>,
    start: Option<&'v Value>,
    end: Option<&'v Value>,
    event: Option<&'v Value>,
    repeat: Option<&'v Value>,
    resource_type: Option<&'v Value>,
    id: Option<&'v Value>,
    /// Annotation's `author[x]`/`time`: a `text` next to them is no CodeableConcept.
    annotation: bool,
}

impl<'v> Fields<'v> {
    fn of(map: &'v Map<String, Value>) -> Self {
        let mut f = Fields::default();
        for (key, value) in map {
            let slot = match key.as_str() {
                "system" => &mut f.system,
                "code" => &mut f.code,
                "display" => &mut f.display,
                "value" => &mut f.value,
                "coding" => &mut f.coding,
                "text" => &mut f.text,
                "type" => &mut f.type_,
                "reference" => &mut f.reference,
                "identifier" => &mut f.identifier,
                "currency" => &mut f.currency,
                "unit" => &mut f.unit,
                "low" => &mut f.low,
                "high" => &mut f.high,
                "start" => &mut f.start,
                "end" => &mut f.end,
                "event" => &mut f.event,
                "repeat" => &mut f.repeat,
                "resourceType" => &mut f.resource_type,
                "id" => &mut f.id,
                "time" | "authorString" | "authorReference" => {
                    f.annotation = true;
                    continue;
                }
                _ => continue,
            };
            if !value.is_null() {
                *slot = Some(value);
            }
        }
        f
    }
}

// ---------------------------------------------------------------------------------------------
// string

fn string_values(value: &Value, push: &mut impl FnMut(IndexValue)) {
    match value {
        Value::String(s) => push_string(s, push),
        Value::Object(map) => {
            // HumanName and Address: string search matches each part on its own.
            for (key, part) in map {
                let is_part = matches!(
                    key.as_str(),
                    "family"
                        | "given"
                        | "prefix"
                        | "suffix"
                        | "text"
                        | "line"
                        | "city"
                        | "district"
                        | "state"
                        | "postalCode"
                        | "country"
                );
                if !is_part {
                    continue;
                }
                match part {
                    Value::String(s) => push_string(s, push),
                    Value::Array(items) => {
                        for s in items.iter().filter_map(Value::as_str) {
                            push_string(s, push);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn push_string(s: &str, push: &mut impl FnMut(IndexValue)) {
    if s.trim().is_empty() {
        return;
    }
    push(IndexValue::String {
        normalized: normalize_string(s),
        exact: s.to_string(),
    });
}

/// The form string search compares against: lower case with accents and other combining marks
/// removed (`Éloïse` → `eloise`). Search parsing must normalise query values the same way.
pub fn normalize_string(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// token

fn token_values(value: &Value, push: &mut impl FnMut(IndexValue)) {
    match value {
        Value::String(s) if !s.trim().is_empty() => push(code_token(s.clone())),
        Value::Bool(b) => push(code_token(b.to_string())),
        Value::Number(n) => push(code_token(n.to_string())),
        Value::Object(map) => object_tokens(&Fields::of(map), push),
        _ => {}
    }
}

fn code_token(code: String) -> IndexValue {
    IndexValue::Token {
        system: None,
        code: Some(code),
        text: None,
        type_system: None,
        type_code: None,
    }
}

fn object_tokens(f: &Fields<'_>, push: &mut impl FnMut(IndexValue)) {
    // A Reference (has `reference`/`identifier`) or a Quantity (numeric `value`) is no token.
    if f.reference.is_some() || f.identifier.is_some() || f.value.is_some_and(Value::is_number) {
        return;
    }
    let text_only = f.text.is_some()
        && f.system.is_none()
        && f.code.is_none()
        && f.value.is_none()
        && f.display.is_none()
        && !f.annotation;
    if f.coding.is_some() || text_only {
        // CodeableConcept
        for coding in f.coding.and_then(Value::as_array).into_iter().flatten() {
            if let Value::Object(coding) = coding {
                coding_token(&Fields::of(coding), push);
            }
        }
        if let Some(text) = owned(f.text) {
            push(IndexValue::Token {
                system: None,
                code: None,
                text: Some(text),
                type_system: None,
                type_code: None,
            });
        }
    } else if f.value.is_some_and(Value::is_string) {
        // Identifier, or ContactPoint: FHIR search matches `system|value` for both (a
        // ContactPoint's system being `phone`, `email`, ...).
        let identifier_type = f.type_.and_then(Value::as_object).map(Fields::of);
        let type_coding = identifier_type
            .as_ref()
            .and_then(|t| t.coding)
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(Value::as_object)
            .map(Fields::of);
        let token = IndexValue::Token {
            system: owned(f.system),
            code: owned(f.value),
            text: identifier_type.as_ref().and_then(|t| owned(t.text)),
            type_system: type_coding.as_ref().and_then(|c| owned(c.system)),
            type_code: type_coding.as_ref().and_then(|c| owned(c.code)),
        };
        if !matches!(
            token,
            IndexValue::Token {
                system: None,
                code: None,
                type_code: None,
                ..
            }
        ) {
            push(token);
        }
    } else {
        coding_token(f, push);
    }
}

fn coding_token(coding: &Fields<'_>, push: &mut impl FnMut(IndexValue)) {
    let system = owned(coding.system);
    let code = owned(coding.code);
    let text = owned(coding.display);
    if system.is_none() && code.is_none() && text.is_none() {
        return;
    }
    push(IndexValue::Token {
        system,
        code,
        text,
        type_system: None,
        type_code: None,
    });
}

// ---------------------------------------------------------------------------------------------
// reference

fn reference_values(value: &Value, push: &mut impl FnMut(IndexValue)) {
    match value {
        Value::Object(map) => {
            let f = Fields::of(map);
            if let Some(reference) = f.reference.and_then(non_empty_str) {
                let (target_type, target_id) = match parse_reference(reference) {
                    Some((t, id)) => (Some(t.to_string()), Some(id.to_string())),
                    None => (None, None),
                };
                push(IndexValue::Reference {
                    reference: reference.to_string(),
                    target_type,
                    target_id,
                });
            } else if let (Some(t), Some(id)) = (
                f.resource_type.and_then(non_empty_str),
                f.id.and_then(non_empty_str),
            ) {
                // An inline resource, such as `Bundle.entry[0].resource`.
                push(IndexValue::Reference {
                    reference: format!("{t}/{id}"),
                    target_type: Some(t.to_string()),
                    target_id: Some(id.to_string()),
                });
            }
            // A Reference with only an identifier (logical reference) is not indexed.
        }
        // canonical or uri
        Value::String(s) if !s.trim().is_empty() => push(IndexValue::Reference {
            reference: s.clone(),
            target_type: None,
            target_id: None,
        }),
        _ => {}
    }
}

/// The type and id of a literal reference: `Type/id`, `Type/id/_history/n`, or an absolute URL
/// ending in one of those. `None` for contained (`#id`), `urn:` and conditional references.
pub fn parse_reference(reference: &str) -> Option<(&str, &str)> {
    let path = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let (prefix, type_and_id) = match path.rfind('/') {
        Some(slash) => {
            let before = &path[..slash];
            match before.rfind('/') {
                Some(second) => (&path[..second], &path[second + 1..]),
                None => ("", path),
            }
        }
        None => return None,
    };
    // A relative reference has nothing before `Type/id`; an absolute one has `scheme://host...`.
    if !prefix.is_empty() && !prefix.contains("://") {
        return None;
    }
    let (type_name, id) = type_and_id.split_once('/')?;
    let type_ok = type_name.starts_with(|c: char| c.is_ascii_uppercase())
        && type_name.bytes().all(|b| b.is_ascii_alphanumeric());
    let id_ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (type_ok && id_ok).then_some((type_name, id))
}

// ---------------------------------------------------------------------------------------------
// date

fn date_values(value: &Value, push: &mut impl FnMut(IndexValue)) {
    match value {
        Value::String(s) => {
            if let Some((start, end)) = parse_date_range(s) {
                push(IndexValue::Date { start, end });
            }
        }
        Value::Object(map) => {
            let f = Fields::of(map);
            if f.start.is_some() || f.end.is_some() {
                period_value(&f, push);
            } else if f.event.is_some() || f.repeat.is_some() {
                // Timing: each event, and the bounds of the repetition.
                for event in f.event.and_then(Value::as_array).into_iter().flatten() {
                    if let Some((start, end)) = event.as_str().and_then(parse_date_range) {
                        push(IndexValue::Date { start, end });
                    }
                }
                if let Some(bounds) = f
                    .repeat
                    .and_then(|r| r.get("boundsPeriod"))
                    .and_then(Value::as_object)
                {
                    period_value(&Fields::of(bounds), push);
                }
            }
        }
        _ => {}
    }
}

fn period_value(period: &Fields<'_>, push: &mut impl FnMut(IndexValue)) {
    let bound = |v: Option<&Value>| match v {
        None => Some(None),
        Some(v) => v.as_str().and_then(parse_date_range).map(Some),
    };
    let (Some(start), Some(end)) = (bound(period.start), bound(period.end)) else {
        return; // a bound that is present but invalid
    };
    if start.is_none() && end.is_none() {
        return;
    }
    push(IndexValue::Date {
        start: start.map_or(i64::MIN, |(s, _)| s),
        end: end.map_or(i64::MAX, |(_, e)| e),
    });
}

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// The instants, in microseconds since the Unix epoch (UTC), that a FHIR date, dateTime or
/// instant covers, as an inclusive range. Reduced precision covers the whole period: `2020` is
/// 2020-01-01T00:00:00.000000Z..2020-12-31T23:59:59.999999Z, `2020-03-04T10:00:00Z` is that
/// second; a value with fractional seconds is exact to the microsecond. A time without a zone is
/// taken as UTC, and `hh:mm` without seconds (allowed in search values) covers the minute.
/// `None` for anything that is not such a value.
pub fn parse_date_range(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    if year == 0 {
        return None;
    }
    let year = i64::from(year);
    if b.len() == 4 {
        let start = days_from_civil(year, 1, 1) * MICROS_PER_DAY;
        return Some((start, days_from_civil(year + 1, 1, 1) * MICROS_PER_DAY - 1));
    }
    require_byte(b, 4, b'-')?;
    let month = digits(b, 5, 2)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    if b.len() == 7 {
        let start = days_from_civil(year, month, 1) * MICROS_PER_DAY;
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end = days_from_civil(next_year, next_month, 1) * MICROS_PER_DAY - 1;
        return Some((start, end));
    }
    require_byte(b, 7, b'-')?;
    let day = digits(b, 8, 2)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let day_start = days_from_civil(year, month, day) * MICROS_PER_DAY;
    if b.len() == 10 {
        return Some((day_start, day_start + MICROS_PER_DAY - 1));
    }
    require_byte(b, 10, b'T')?;
    let hour = digits(b, 11, 2)?;
    require_byte(b, 13, b':')?;
    let minute = digits(b, 14, 2)?;
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut local = day_start + i64::from(hour * 60 + minute) * MICROS_PER_MINUTE;
    let mut pos = 16;
    let mut span = MICROS_PER_MINUTE;
    if b.get(pos) == Some(&b':') {
        // A leap second (60) is folded into the last microseconds of second 59.
        let second = digits(b, pos + 1, 2)?;
        if second > 60 {
            return None;
        }
        local += i64::from(second.min(59)) * MICROS_PER_SECOND;
        pos += 3;
        span = MICROS_PER_SECOND;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let frac_start = pos;
            let mut micros = 0i64;
            while let Some(d) = b.get(pos).filter(|d| d.is_ascii_digit()) {
                if pos - frac_start < 6 {
                    micros = micros * 10 + i64::from(d - b'0');
                }
                pos += 1;
            }
            let count = pos - frac_start;
            if count == 0 {
                return None;
            }
            for _ in count..6 {
                micros *= 10;
            }
            local += if second == 60 { 999_999 } else { micros };
            span = 1;
        }
    }
    let offset = match &b[pos..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == pos + 6 => {
            let hours = digits(b, pos + 1, 2)?;
            require_byte(b, pos + 3, b':')?;
            let minutes = digits(b, pos + 4, 2)?;
            if hours > 14 || minutes > 59 {
                return None;
            }
            let offset = i64::from(hours * 60 + minutes) * MICROS_PER_MINUTE;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let start = local - offset;
    Some((start, start + span - 1))
}

fn digits(b: &[u8], at: usize, count: usize) -> Option<u32> {
    let slice = b.get(at..at + count)?;
    slice.iter().try_fold(0u32, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
    })
}

fn require_byte(b: &[u8], at: usize, byte: u8) -> Option<()> {
    (b.get(at) == Some(&byte)).then_some(())
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ---------------------------------------------------------------------------------------------
// quantity

fn quantity_values(value: &Value, push: &mut impl FnMut(IndexValue)) {
    match value {
        Value::Number(n) => {
            if let Some(value) = n.as_f64() {
                push(IndexValue::Quantity {
                    value,
                    system: None,
                    code: None,
                    unit: None,
                });
            }
        }
        Value::Object(map) => {
            let f = Fields::of(map);
            if f.low.is_some() || f.high.is_some() {
                // Range
                for bound in [f.low, f.high].into_iter().flatten() {
                    if let Value::Object(q) = bound {
                        quantity_value(&Fields::of(q), push);
                    }
                }
            } else {
                quantity_value(&f, push);
            }
        }
        _ => {}
    }
}

fn quantity_value(f: &Fields<'_>, push: &mut impl FnMut(IndexValue)) {
    let Some(value) = f.value.and_then(Value::as_f64) else {
        return;
    };
    if let Some(currency) = owned(f.currency) {
        // Money
        push(IndexValue::Quantity {
            value,
            system: Some(ISO_4217.to_string()),
            code: Some(currency),
            unit: None,
        });
        return;
    }
    push(IndexValue::Quantity {
        value,
        system: owned(f.system),
        code: owned(f.code),
        unit: owned(f.unit),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y2020: i64 = 1_577_836_800_000_000; // 2020-01-01T00:00:00Z

    #[test]
    fn reduced_precision_covers_the_period() {
        assert_eq!(
            parse_date_range("2020"),
            Some((Y2020, 1_609_459_200_000_000 - 1))
        );
        // February of a leap year.
        let feb = Y2020 + 31 * MICROS_PER_DAY;
        assert_eq!(
            parse_date_range("2020-02"),
            Some((feb, feb + 29 * MICROS_PER_DAY - 1))
        );
        let dec = parse_date_range("2020-12").map(|(_, e)| e);
        assert_eq!(dec, Some(1_609_459_200_000_000 - 1));
        assert_eq!(
            parse_date_range("2020-01-02"),
            Some((Y2020 + MICROS_PER_DAY, Y2020 + 2 * MICROS_PER_DAY - 1))
        );
    }

    #[test]
    fn times_and_zones() {
        let t = Y2020 + 10 * 3_600 * MICROS_PER_SECOND;
        assert_eq!(
            parse_date_range("2020-01-01T10:00:00Z"),
            Some((t, t + MICROS_PER_SECOND - 1))
        );
        assert_eq!(
            parse_date_range("2020-01-01T10:00:00"),
            parse_date_range("2020-01-01T10:00:00Z")
        );
        assert_eq!(
            parse_date_range("2020-01-01T12:30:00+02:30"),
            Some((t, t + MICROS_PER_SECOND - 1))
        );
        assert_eq!(
            parse_date_range("2020-01-01T05:00:00-05:00"),
            Some((t, t + MICROS_PER_SECOND - 1))
        );
        assert_eq!(
            parse_date_range("2020-01-01T10:00:00.5Z"),
            Some((t + 500_000, t + 500_000))
        );
        assert_eq!(
            parse_date_range("2020-01-01T10:00:00.1234567Z"),
            Some((t + 123_456, t + 123_456))
        );
        assert_eq!(
            parse_date_range("2020-01-01T10:00Z"),
            Some((t, t + MICROS_PER_MINUTE - 1))
        );
        assert_eq!(
            parse_date_range("1969-12-31T23:59:59.999999Z"),
            Some((-1, -1))
        );
    }

    #[test]
    fn invalid_dates_are_refused() {
        for bad in [
            "",
            "20",
            "0000",
            "2020-13",
            "2020-00",
            "2019-02-29",
            "2020-04-31",
            "2020-01-01T24:00:00Z",
            "2020-01-01T10:60:00Z",
            "2020-01-01T10:00:00.Z",
            "2020-01-01T10:00:00+2:00",
            "2020-01-01T10:00:00+15:00",
            "2020-01-01Z",
            "2020/01/01",
            "2020-01-01T10:00:00Zjunk",
            "２０２０",
        ] {
            assert_eq!(parse_date_range(bad), None, "{bad:?}");
        }
        assert!(parse_date_range("2020-02-29").is_some());
    }

    #[test]
    fn references() {
        assert_eq!(parse_reference("Patient/123"), Some(("Patient", "123")));
        assert_eq!(
            parse_reference("Patient/123/_history/4"),
            Some(("Patient", "123"))
        );
        assert_eq!(
            parse_reference("https://example.org/fhir/Patient/a-b.c"),
            Some(("Patient", "a-b.c"))
        );
        assert_eq!(parse_reference("#contained"), None);
        assert_eq!(parse_reference("urn:uuid:0f3e"), None);
        assert_eq!(parse_reference("Patient?identifier=x|1"), None);
        assert_eq!(parse_reference("foo/Patient/1"), None);
        assert_eq!(parse_reference("patient/1"), None);
    }

    #[test]
    fn normalization_removes_accents_and_case() {
        assert_eq!(normalize_string("Éloïse"), "eloise");
        assert_eq!(normalize_string("MÜLLER"), "muller");
        assert_eq!(normalize_string("Smith"), "smith");
        assert_eq!(normalize_string("İstanbul"), "istanbul");
    }
}
