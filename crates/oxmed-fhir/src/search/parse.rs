//! Query strings and criteria as `SearchRequest`s.
//!
//! Choices beyond FHIR R4 search.html, which the SQL compiler and in-memory matching rely on:
//! - An empty value (`name=`) selects nothing and is skipped in a search; in criteria it is an
//!   error, since a criteria string must never widen silently.
//! - A parameter is looked up for the searched type; at system level for every `_type` (it must
//!   exist on each and mean the same there), or without `_type` among the parameters of
//!   `Resource`.
//! - `:not=a,b` means "neither a nor b": each value becomes its own clause (AND). Every other
//!   comma list is an OR within one clause.
//! - A reference without a type (`subject=123`) keeps `target_type` None (any allowed type); an
//!   absolute URL that starts with the server's base is a local `Type/id`; any other absolute
//!   URL or `urn:` is matched as written; a `/_history/n` version is ignored.
//! - A chain needs `:Type` when the link may refer to more than one type. At most four chain
//!   and `_has` links nest.
//! - Dates are parsed with `index::parse_date_range`: reduced precision covers its whole
//!   period, and a dateTime without a zone is UTC (the server's zone). A `+hh:mm` zone sent
//!   unencoded (decoded as a space) is read as `+`.
//! - Numbers carry their implied precision (`100` is [99.5, 100.5)), see `NumberTest`.
//! - `:of-type` is accepted on token parameters whose expression is on `identifier`.
//! - `_compartment` accepts `Patient/id` only.
//! - Under `lenient`, an unknown parameter, an unknown or unsupported modifier and the
//!   unsupported `_text`, `_content`, `_filter`, `_query`, `_list`, `near` are skipped and listed
//!   in `ignored`; a malformed value of a known parameter is an error in both modes.

use std::collections::HashSet;

#[path = "parse_filter.rs"]
mod filter;
#[path = "parse_value.rs"]
mod value;

use crate::search::{Clause, Include, SearchError, SearchRequest, SortKey, Summary, Total};
use crate::search_parameter::{SearchParamType, SearchParameters};
use filter::{FilterContext, ParamError, filter_clauses, is_resource_type, lookup};

/// Longest parameter value accepted: anything longer is an attack or a mistake, and refusing it
/// keeps it out of the database.
pub const MAX_VALUE_LEN: usize = 4096;
/// Longest parameter name (with its modifiers and chain) accepted.
pub const MAX_KEY_LEN: usize = 256;

/// Parameters that shape the result rather than select resources.
const RESULT_PARAMETERS: &[&str] = &[
    "_count",
    "_offset",
    "_cursor",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_format",
    "_pretty",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// The page size when `_count` is absent.
    pub default_count: usize,
    /// The largest page size; a larger `_count` is lowered to it.
    pub max_count: usize,
    /// `Prefer: handling=lenient`.
    pub lenient: bool,
    /// The server's FHIR base (`http://localhost:8103/fhir/R4`), to recognise absolute
    /// references to this server.
    pub base_url: Option<String>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            default_count: 20,
            max_count: 1000,
            lenient: false,
            base_url: None,
        }
    }
}

/// Parses a search of `resource_type` (None: a system-level search, `GET [base]?_type=...`).
/// `params` are percent-decoded key/value pairs in query order.
pub fn parse_search(
    resource_type: Option<&str>,
    params: &[(String, String)],
    opts: &ParseOptions,
) -> Result<SearchRequest, SearchError> {
    let registry = SearchParameters::global();
    let ctx = FilterContext {
        registry,
        base_url: opts.base_url.as_deref().map(|b| b.trim_end_matches('/')),
    };
    for (key, value) in params {
        check_lengths(key, value)?;
    }
    let resource_types = match resource_type {
        Some(t) if is_resource_type(t) => vec![t.to_string()],
        Some(t) => {
            return Err(SearchError::new(
                "_type",
                format!("Unknown resource type {}", shorten(t)),
            ));
        }
        None => system_types(params)?,
    };
    let mut request = SearchRequest {
        resource_types,
        filters: Vec::new(),
        sort: Vec::new(),
        count: opts.default_count.min(opts.max_count),
        offset: 0,
        cursor: None,
        total: Total::None,
        summary: Summary::False,
        elements: None,
        include: Vec::new(),
        revinclude: Vec::new(),
        ignored: Vec::new(),
    };
    let mut once = HashSet::new();
    for (key, value) in params {
        let (name, modifier) = match key.split_once(':') {
            Some((name, modifier)) => (name, Some(modifier)),
            None => (key.as_str(), None),
        };
        let outcome = if RESULT_PARAMETERS.contains(&name) {
            result_parameter(&mut request, &mut once, name, modifier, key, value, opts)
        } else if name == "_type" {
            match (resource_type, modifier) {
                (None, None) => Ok(()),
                (None, Some(m)) => Err(ParamError::Unknown(SearchError::new(
                    key,
                    format!("modifier :{} is not supported on _type", shorten(m)),
                ))),
                (Some(t), _) => Err(ParamError::Unknown(SearchError::new(
                    key,
                    format!("_type applies to a search across all types, not to a {t} search"),
                ))),
            }
        } else if value.is_empty() {
            Ok(())
        } else {
            scoped_filter(&request.resource_types, key, value, &ctx)
                .map(|clauses| request.filters.extend(clauses))
        };
        match outcome {
            Ok(()) => {}
            Err(ParamError::Unknown(e)) if opts.lenient => {
                request
                    .ignored
                    .push(format!("{}: {}", shorten(key), e.message));
            }
            Err(e) => return Err(e.into_search_error()),
        }
    }
    Ok(request)
}

/// Parses an AccessPolicy criteria or SMART scope query (`Observation?status=final`, with its
/// parameters already substituted) into its type and clauses. Only filters are allowed; every
/// failure is an error (there is no lenient mode), so that a policy cannot silently widen.
/// Values are percent-decoded (`%XX`); `+` stays a plus sign.
pub fn parse_criteria(criteria: &str) -> Result<(String, Vec<Clause>), SearchError> {
    let criteria = criteria.trim();
    let (resource_type, query) = criteria.split_once('?').unwrap_or((criteria, ""));
    if !is_resource_type(resource_type) {
        return Err(SearchError::new(
            "criteria",
            format!(
                "criteria must start with a resource type, not {:?}",
                shorten(resource_type)
            ),
        ));
    }
    let ctx = FilterContext {
        registry: SearchParameters::global(),
        base_url: None,
    };
    let mut clauses = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let Some((key, value)) = piece.split_once('=') else {
            return Err(SearchError::new(
                shorten(piece),
                format!("{:?} has no value", shorten(piece)),
            ));
        };
        let key = percent_decode(key).map_err(|m| SearchError::new(shorten(key), m))?;
        let value = percent_decode(value).map_err(|m| SearchError::new(&key, m))?;
        check_lengths(&key, &value)?;
        let name = key.split([':', '.']).next().unwrap_or_default();
        if RESULT_PARAMETERS.contains(&name) || name == "_type" {
            return Err(SearchError::new(
                &key,
                format!("{name} is not allowed in criteria, which only select resources"),
            ));
        }
        if value.is_empty() {
            return Err(SearchError::new(&key, format!("{key} has an empty value")));
        }
        let parsed = filter_clauses(Some(resource_type), &key, &value, &ctx)
            .map_err(ParamError::into_search_error)?;
        clauses.extend(parsed);
    }
    Ok((resource_type.to_string(), clauses))
}

fn check_lengths(key: &str, value: &str) -> Result<(), SearchError> {
    if key.len() > MAX_KEY_LEN {
        return Err(SearchError::new(
            shorten(key),
            format!("parameter name longer than {MAX_KEY_LEN} bytes"),
        ));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(SearchError::new(
            key,
            format!("the value of {key} is longer than {MAX_VALUE_LEN} bytes"),
        ));
    }
    Ok(())
}

/// The `_type` list of a system-level search; empty means every type.
fn system_types(params: &[(String, String)]) -> Result<Vec<String>, SearchError> {
    let mut types: Vec<String> = Vec::new();
    let mut given = false;
    for (key, value) in params.iter().filter(|(k, _)| k == "_type") {
        if given {
            return Err(SearchError::new(key, "_type given more than once"));
        }
        given = true;
        for t in value.split(',') {
            if !is_resource_type(t) {
                return Err(SearchError::new(
                    key,
                    format!("Unknown resource type {:?} in _type", shorten(t)),
                ));
            }
            if !types.iter().any(|x| x == t) {
                types.push(t.to_string());
            }
        }
    }
    Ok(types)
}

/// A filter over every searched type: it must exist on each and mean the same on each, since
/// the search compiles it once.
fn scoped_filter(
    types: &[String],
    key: &str,
    raw: &str,
    ctx: &FilterContext<'_>,
) -> Result<Vec<Clause>, ParamError> {
    let Some((first, rest)) = types.split_first() else {
        return filter_clauses(None, key, raw, ctx);
    };
    let clauses = filter_clauses(Some(first), key, raw, ctx)?;
    for t in rest {
        if filter_clauses(Some(t), key, raw, ctx)? != clauses {
            return Err(ParamError::Invalid(SearchError::new(
                key,
                format!("{key} means different things for {first} and {t}; search them apart"),
            )));
        }
    }
    Ok(clauses)
}

fn result_parameter(
    request: &mut SearchRequest,
    once: &mut HashSet<String>,
    name: &str,
    modifier: Option<&str>,
    key: &str,
    value: &str,
    opts: &ParseOptions,
) -> Result<(), ParamError> {
    let invalid = |m: String| ParamError::Invalid(SearchError::new(key, m));
    let is_include = matches!(name, "_include" | "_revinclude");
    if let Some(m) = modifier {
        let iterate = matches!(m, "iterate" | "recurse");
        if !(is_include && iterate) {
            return Err(ParamError::Unknown(SearchError::new(
                key,
                format!("modifier :{} is not supported on {name}", shorten(m)),
            )));
        }
    }
    let single = matches!(
        name,
        "_count" | "_offset" | "_cursor" | "_total" | "_summary"
    );
    if single && !once.insert(name.to_string()) {
        return Err(invalid(format!("{name} given more than once")));
    }
    match name {
        "_count" => {
            let n = non_negative(value).ok_or_else(|| {
                invalid(format!(
                    "_count must be a non-negative integer, not {value:?}"
                ))
            })?;
            request.count = n.min(opts.max_count);
        }
        "_offset" => {
            request.offset = non_negative(value).ok_or_else(|| {
                invalid(format!(
                    "_offset must be a non-negative integer, not {value:?}"
                ))
            })?;
        }
        "_cursor" => request.cursor = Some(value.to_string()),
        "_sort" => {
            let keys = sort_keys(&request.resource_types, value).map_err(invalid)?;
            request.sort.extend(keys);
        }
        "_total" => {
            request.total = match value {
                "none" => Total::None,
                "accurate" => Total::Accurate,
                "estimate" => Total::Estimate,
                _ => {
                    return Err(invalid(format!(
                        "_total must be none, accurate or estimate, not {value:?}"
                    )));
                }
            }
        }
        "_summary" => {
            request.summary = match value {
                "true" => Summary::True,
                "false" => Summary::False,
                "text" => Summary::Text,
                "data" => Summary::Data,
                "count" => Summary::Count,
                _ => {
                    return Err(invalid(format!(
                        "_summary must be true, false, text, data or count, not {value:?}"
                    )));
                }
            }
        }
        "_elements" => {
            let elements = request.elements.get_or_insert_with(Vec::new);
            for element in value.split(',').map(str::trim) {
                let valid = !element.is_empty()
                    && element
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !valid {
                    return Err(invalid(format!("{element:?} is not an element name")));
                }
                if !elements.iter().any(|e| e == element) {
                    elements.push(element.to_string());
                }
            }
        }
        "_include" | "_revinclude" => {
            let rev = name == "_revinclude";
            let include = include(&request.resource_types, value, modifier.is_some(), rev)
                .map_err(invalid)?;
            if rev {
                request.revinclude.push(include);
            } else {
                request.include.push(include);
            }
        }
        // `_format` and `_pretty` are the HTTP layer's.
        _ => {}
    }
    Ok(())
}

fn non_negative(value: &str) -> Option<usize> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits beyond usize are still a non-negative integer; they only ask for "as many as
    // possible".
    Some(value.parse().unwrap_or(usize::MAX))
}

fn sort_keys(types: &[String], value: &str) -> Result<Vec<SortKey>, String> {
    let registry = SearchParameters::global();
    let scopes: Vec<Option<&str>> = if types.is_empty() {
        vec![None]
    } else {
        types.iter().map(|t| Some(t.as_str())).collect()
    };
    value
        .split(',')
        .map(|item| {
            let (descending, code) = match item.strip_prefix('-') {
                Some(code) => (true, code),
                None => (false, item),
            };
            if code.is_empty() {
                return Err("_sort has an empty entry".to_string());
            }
            if !matches!(code, "_id" | "_lastUpdated") {
                for scope in &scopes {
                    let Some(param) = lookup(registry, *scope, code) else {
                        return Err(format!(
                            "cannot sort by {}: not a search parameter{}",
                            shorten(code),
                            scope.map(|t| format!(" of {t}")).unwrap_or_default()
                        ));
                    };
                    if matches!(
                        param.kind,
                        SearchParamType::Composite | SearchParamType::Special
                    ) {
                        return Err(format!(
                            "cannot sort by {code}, a {} parameter",
                            param.kind.as_str()
                        ));
                    }
                }
            }
            Ok(SortKey {
                code: code.to_string(),
                descending,
            })
        })
        .collect()
}

/// `Source:param[:Target]`, `Source:*`, or `*` (an `_include` of a search of one type).
fn include(types: &[String], value: &str, iterate: bool, rev: bool) -> Result<Include, String> {
    let name = if rev { "_revinclude" } else { "_include" };
    if value == "*" {
        return match types {
            [only] if !rev => Ok(Include {
                source_type: only.clone(),
                reference_code: None,
                target_type: None,
                iterate,
            }),
            _ => Err(format!(
                "{name}=* needs a source type here; write {name}=Type:*"
            )),
        };
    }
    let parts: Vec<&str> = value.split(':').collect();
    let (source, code, target) = match parts.as_slice() {
        [source, code] => (*source, *code, None),
        [source, code, target] => (*source, *code, Some(*target)),
        _ => return Err(format!("{name} is written Source:parameter[:Target]")),
    };
    if !is_resource_type(source) {
        return Err(format!("{:?} is not a resource type", shorten(source)));
    }
    let mut allowed: &[String] = &[];
    let reference_code = if code == "*" {
        None
    } else {
        let Some(param) = SearchParameters::global().get(source, code) else {
            return Err(format!(
                "{} is not a search parameter of {source}",
                shorten(code)
            ));
        };
        if param.kind != SearchParamType::Reference {
            return Err(format!("{source}:{code} is not a reference parameter"));
        }
        allowed = &param.target;
        Some(code.to_string())
    };
    if let Some(t) = target {
        if !is_resource_type(t) {
            return Err(format!("{:?} is not a resource type", shorten(t)));
        }
        if !allowed.is_empty() && !allowed.iter().any(|a| a == t) {
            return Err(format!("{source}:{code} cannot refer to a {t}"));
        }
    }
    Ok(Include {
        source_type: source.to_string(),
        reference_code,
        target_type: target.map(str::to_string),
        iterate,
    })
}

/// `%XX` decoding; a malformed escape or invalid UTF-8 is an error, never passed through.
fn percent_decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in {:?}", shorten(s)))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{:?} is not UTF-8 once decoded", shorten(s)))
}

/// At most 100 characters of a client-supplied string, for messages.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}
