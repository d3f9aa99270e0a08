//! The values a resource contributes to the search index, one enum variant per search parameter
//! type. The store writes them into its index tables; the search engine reads them back. They are
//! plain data so that the store does not need to know FHIRPath or FHIR data types.

/// One value of one search parameter for one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The search parameter's `code` (e.g. `subject`, `_lastUpdated`, `code-value-quantity`).
    pub code: String,
    pub value: IndexValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    /// `string` parameters. `normalized` is lower-cased with accents removed (the default
    /// starts-with and `:contains` searches compare against it); `exact` is the value as written.
    String { normalized: String, exact: String },
    /// `token` parameters: Coding, CodeableConcept (one entry a coding, plus `text`), Identifier,
    /// ContactPoint, code, boolean, string, uri, id. `text` holds the display or CodeableConcept text
    /// for `:text`. For identifiers `type_system`/`type_code` carry `Identifier.type` for `:of-type`.
    Token {
        system: Option<String>,
        code: Option<String>,
        text: Option<String>,
        type_system: Option<String>,
        type_code: Option<String>,
    },
    /// `reference` parameters. `reference` is the reference as written (`Patient/123`, an absolute
    /// URL, or a canonical); `target_type`/`target_id` are filled when it ends in `Type/id` (with
    /// or without `/_history/n`), relative or absolute.
    Reference {
        reference: String,
        target_type: Option<String>,
        target_id: Option<String>,
    },
    /// `date` parameters as an inclusive range of instants in microseconds since the Unix epoch
    /// (UTC). A value with reduced precision (`2020`, `2020-03`) covers its whole period; an open
    /// Period end is `i64::MIN` / `i64::MAX`.
    Date { start: i64, end: i64 },
    /// `number` parameters.
    Number { value: f64 },
    /// `quantity` parameters (Quantity, Money, SimpleQuantity, Duration, Age, ...; a Range
    /// contributes its low and high as two entries).
    Quantity {
        value: f64,
        system: Option<String>,
        code: Option<String>,
        unit: Option<String>,
    },
    /// `uri` parameters (uri, url, canonical, oid).
    Uri { value: String },
    /// `composite` parameters: one entry per combination found in one element of the resource, with
    /// the components in the order of the parameter definition. Each component is itself one of the
    /// variants above (never Composite).
    Composite { components: Vec<IndexValue> },
}

impl IndexValue {
    /// The search parameter type name, as in `SearchParameter.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            IndexValue::String { .. } => "string",
            IndexValue::Token { .. } => "token",
            IndexValue::Reference { .. } => "reference",
            IndexValue::Date { .. } => "date",
            IndexValue::Number { .. } => "number",
            IndexValue::Quantity { .. } => "quantity",
            IndexValue::Uri { .. } => "uri",
            IndexValue::Composite { .. } => "composite",
        }
    }
}
