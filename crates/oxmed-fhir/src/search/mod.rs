//! The FHIR search language as data: what a search request (`GET [base]/Observation?...`), a
//! `POST .../_search` form, an AccessPolicy `criteria` string or a SMART granular scope means.
//!
//! Parsing (`parse`) turns a query into a [`SearchRequest`]; the store compiles the same structure
//! to one SQL statement; `matching` answers "does this one resource match?" in memory with the same
//! semantics. Both read only the values that `crate::index::extract` produces for a resource, so a
//! condition means the same thing in SQL and in memory by construction.
//!
//! Semantics decided here, once, for both paths (FHIR R4 search.html where it is explicit):
//! - Repeating a parameter is AND; commas inside one value are OR.
//! - A condition on a multi-valued element holds if **any** value matches, except the negations
//!   `:not` (token) and `ne` (date, number, quantity), which hold if **no** value matches the
//!   positive form (so a resource without the element matches `:not` and `ne`).
//! - `:missing=true` holds when the resource has no value at all for the parameter;
//!   `:missing=false` when it has at least one.
//! - Strings: the default is a case- and accent-insensitive prefix match, `:contains` a
//!   case- and accent-insensitive substring match, `:exact` an exact, case-sensitive match.
//! - Dates compare ranges: a stored value covers `[start, end]` (a date of `2020` covers the whole
//!   year), the searched value likewise; prefixes compare the two ranges as FHIR R4 defines.

pub mod matching;
pub mod parse;

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The types searched: one for a type-level search, several for `_type` on a system-level
    /// search (empty = every type).
    pub resource_types: Vec<String>,
    /// AND of the clauses.
    pub filters: Vec<Clause>,
    pub sort: Vec<SortKey>,
    /// `_count`: the page size (already capped by the configured maximum).
    pub count: usize,
    /// `_offset`, for clients that page by offset; keyset paging uses `cursor`.
    pub offset: usize,
    /// An opaque continuation token from a `next` link (`_cursor`), if any.
    pub cursor: Option<String>,
    pub total: Total,
    pub summary: Summary,
    pub elements: Option<Vec<String>>,
    pub include: Vec<Include>,
    pub revinclude: Vec<Include>,
    /// Parameters ignored under `Prefer: handling=lenient`, each with why.
    pub ignored: Vec<String>,
}

/// OR of conditions: one value of a parameter with commas, or (for criteria) alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub any: Vec<Condition>,
}

/// One test on a resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `_id`.
    Id(String),
    /// `_lastUpdated`, on `meta.lastUpdated` (a point in time).
    LastUpdated(DateTest),
    /// A search parameter of the resource's type, by code, with its test.
    Param { code: String, test: Test },
    /// `code:missing=true|false`.
    Missing { code: String, missing: bool },
    /// `reference_code[:Type].inner`: the resource refers, through `reference_code`, to a
    /// resource of `target_type` (of the same project, not deleted) that satisfies `inner`.
    /// `inner` may itself be a chain.
    Chain {
        reference_code: String,
        target_type: String,
        inner: Box<Condition>,
    },
    /// `_has:Type:reference_code:...`: some resource of `source_type` (same project, not deleted)
    /// refers to this one through `reference_code` and satisfies `inner`.
    Has {
        source_type: String,
        reference_code: String,
        inner: Box<Condition>,
    },
    /// Medplum's `_compartment=Patient/123` and the compartment search `/Patient/123/Observation`:
    /// the resource is in the compartment of `compartment_type/id` (it is that resource, or one of
    /// the parameters the CompartmentDefinition lists for its type refers to it).
    Compartment {
        compartment_type: String,
        id: String,
    },
}

/// The test of a `Condition::Param`, by parameter type.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    String(StringTest),
    Token(TokenTest),
    Reference(ReferenceTest),
    Date(DateTest),
    Number(NumberTest),
    Quantity(QuantityTest),
    Uri(UriTest),
    Composite(Vec<Test>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum StringTest {
    /// Default: the normalized value starts with `0` (already normalized by
    /// `index::normalize_string`).
    StartsWith(String),
    /// `:contains`: the normalized value contains `0` (already normalized).
    Contains(String),
    /// `:exact`: the value as written equals `0`.
    Exact(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenTest {
    pub kind: TokenKind,
    /// `None`: any system (`code`); `Some("")`: no system (`|code`); `Some(s)`: that system
    /// (`s|code`, or `s|` with `code` None).
    pub system: Option<String>,
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    Eq,
    /// `:not`: no value matches `system|code`.
    Not,
    /// `:text`: the normalized display / CodeableConcept text starts with `code` (normalized).
    Text,
    /// `:of-type` on identifiers: `system` and `code` are the type's, `value` the identifier's.
    OfType {
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceTest {
    /// `Type/id` or a bare `id` (`target_type` None: any type the parameter allows, or the type
    /// given by a `:Type` modifier). Matches relative references and absolute references to this
    /// server that end in `Type/id`.
    Local {
        target_type: Option<String>,
        id: String,
    },
    /// An absolute URL or canonical not on this server: matches the reference as written.
    Url(String),
}

/// A date comparison: the searched range is `[start, end]` in microseconds since the epoch (UTC),
/// inclusive, from `index::parse_date_range`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DateTest {
    pub prefix: Prefix,
    pub start: i64,
    pub end: i64,
}

/// A number comparison. `low`/`high` is the range implied by the precision of the searched value
/// (`100` is `[99.5, 100.5)`, `1e2` is `[50, 150)`), used by `eq`, `ne` and `ap`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberTest {
    pub prefix: Prefix,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuantityTest {
    pub number: NumberTest,
    /// `None`: any system.
    pub system: Option<String>,
    /// `None`: any unit; otherwise matches the unit code, or the unit text when no system is given.
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UriTest {
    Eq(String),
    /// `:below`: the stored URI starts with the value (path-segment aware).
    Below(String),
    /// `:above`: the value starts with the stored URI.
    Above(String),
}

/// The comparison prefixes of FHIR R4 search.html#prefix. `Eq` is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// A search parameter code of the searched type, or `_id` / `_lastUpdated`.
    pub code: String,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    None,
    Accurate,
    Estimate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    False,
    True,
    Text,
    Data,
    Count,
}

/// `_include=Source:param[:Target]` / `_revinclude=Source:param[:Target]`, or `*`.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    pub source_type: String,
    /// `None` for `*` (every reference parameter of `source_type`).
    pub reference_code: Option<String>,
    pub target_type: Option<String>,
    pub iterate: bool,
}

/// Why a search cannot be parsed. `parameter` names the offending parameter for the
/// OperationOutcome.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SearchError {
    pub parameter: String,
    pub message: String,
}

impl SearchError {
    pub fn new(parameter: impl Into<String>, message: impl Into<String>) -> SearchError {
        SearchError {
            parameter: parameter.into(),
            message: message.into(),
        }
    }
}

/// Which resources of each type a caller may see, as search conditions: for each type, an OR of
/// alternatives, each an AND of clauses (an AccessPolicy's entries for that type, each with its
/// criteria). A type that is not listed is invisible: no rows, in results, includes, chains or
/// `_has`. An alternative with no clauses allows every resource of the type. Searches without a
/// `Restriction` are unrestricted (the server's own work).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restriction {
    pub types: std::collections::HashMap<String, Vec<Vec<Clause>>>,
}
