//! The registry of search parameters, loaded once from the vendored
//! `data/search-parameters.json` with every expression parsed up front.
//!
//! A parameter shared by many resource types usually has one union branch per type
//! (`AllergyIntolerance.patient | CarePlan.subject.where(...) | ...`). The registry keeps, for
//! each type, only the branches that can match it, so that indexing a resource evaluates no
//! branch written for another type.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::fhirpath::{Expression, Narrowed, ParseError};

const SEARCH_PARAMETERS_JSON: &str = include_str!("../data/search-parameters.json");
/// Its keys name every FHIR R4 resource type, including those without search parameters of
/// their own (such as `Binary`), which still have the `Resource` ones.
const PATIENT_COMPARTMENT_JSON: &str = include_str!("../data/compartment-patient.json");

/// `SearchParameter.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchParamType {
    String,
    Token,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
    Composite,
    Special,
}

impl SearchParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchParamType::String => "string",
            SearchParamType::Token => "token",
            SearchParamType::Reference => "reference",
            SearchParamType::Date => "date",
            SearchParamType::Number => "number",
            SearchParamType::Quantity => "quantity",
            SearchParamType::Uri => "uri",
            SearchParamType::Composite => "composite",
            SearchParamType::Special => "special",
        }
    }
}

#[derive(Debug)]
pub struct SearchParameter {
    pub url: String,
    pub code: String,
    pub base: Vec<String>,
    pub kind: SearchParamType,
    /// `None` for parameters the server implements without an expression (`_content`,
    /// `_text`, `_query`).
    pub expression: Option<Expression>,
    /// Allowed target types of a reference parameter.
    pub target: Vec<String>,
    /// The parts of a composite parameter, in definition order.
    pub components: Vec<Component>,
    /// Resource types for which only some union branches of `expression` apply: the narrowed
    /// expression, or `None` when no branch does. Types not listed use `expression` whole.
    per_type: HashMap<Arc<str>, Option<Expression>>,
}

impl SearchParameter {
    /// The expression to evaluate on a resource of `resource_type`: `expression` without the
    /// union branches written for other types.
    pub fn expression_for(&self, resource_type: &str) -> Option<&Expression> {
        match self.per_type.get(resource_type) {
            Some(narrowed) => narrowed.as_ref(),
            None => self.expression.as_ref(),
        }
    }
}

/// One component of a composite parameter; its expression is evaluated relative to each node
/// the composite's own expression yields.
#[derive(Debug)]
pub struct Component {
    pub code: String,
    /// Canonical URL of the search parameter this component corresponds to.
    pub definition: String,
    pub kind: SearchParamType,
    pub expression: Expression,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("search parameter definitions are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("search parameter {url}: component {definition} has no code or type")]
    UntypedComponent { url: String, definition: String },
    #[error("search parameter {url}: cannot parse {expression:?}: {source}")]
    Expression {
        url: String,
        expression: String,
        source: ParseError,
    },
}

#[derive(Deserialize)]
struct RawParameter {
    url: String,
    code: String,
    base: Vec<String>,
    #[serde(rename = "type")]
    kind: SearchParamType,
    expression: Option<String>,
    #[serde(default)]
    target: Vec<String>,
    #[serde(default)]
    component: Vec<RawComponent>,
}

#[derive(Deserialize)]
struct RawComponent {
    // Null in a few definitions back-ported from R5 (ResearchStudy `progress-status-*`).
    code: Option<String>,
    #[serde(default)]
    definition: String,
    #[serde(rename = "type")]
    kind: Option<SearchParamType>,
    expression: String,
}

#[derive(Debug, Default)]
struct TypeParameters {
    list: Vec<Arc<SearchParameter>>,
    /// `list[i].expression_for(type)`, resolved once so that indexing does no lookup per
    /// parameter.
    expressions: Vec<Option<Expression>>,
    /// Indexes into `list`, sorted by code, for `get`.
    by_code: Vec<usize>,
}

impl TypeParameters {
    fn finish(&mut self) {
        let mut order: Vec<usize> = (0..self.list.len()).collect();
        order.sort_by(|&a, &b| self.list[a].code.cmp(&self.list[b].code).then(a.cmp(&b)));
        // The data lists some parameters twice (e.g. ResearchStudy's); the first wins so that a
        // resource is not indexed twice for one code.
        let mut duplicate = vec![false; self.list.len()];
        for pair in order.windows(2) {
            if self.list[pair[0]].code == self.list[pair[1]].code {
                duplicate[pair[1]] = true;
            }
        }
        if duplicate.contains(&true) {
            let mut keep = duplicate.iter().map(|d| !d);
            self.list.retain(|_| keep.next().unwrap_or(true));
            let mut keep = duplicate.iter().map(|d| !d);
            self.expressions.retain(|_| keep.next().unwrap_or(true));
            return self.finish();
        }
        self.by_code = order;
    }
}

/// All search parameters, by resource type.
#[derive(Debug, Default)]
pub struct SearchParameters {
    all: Vec<Arc<SearchParameter>>,
    by_type: HashMap<Arc<str>, TypeParameters>,
    errors: Vec<LoadError>,
}

impl SearchParameters {
    /// The parameters vendored with the crate, loaded on first use.
    pub fn global() -> &'static SearchParameters {
        static GLOBAL: OnceLock<SearchParameters> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let resource_types = serde_json::from_str::<HashMap<String, serde::de::IgnoredAny>>(
                PATIENT_COMPARTMENT_JSON,
            )
            .map(|m| m.into_keys().collect::<Vec<_>>())
            .unwrap_or_default();
            SearchParameters::load(SEARCH_PARAMETERS_JSON, &resource_types)
        })
    }

    /// Builds a registry from a JSON array of SearchParameter-like objects (`url`, `code`,
    /// `base`, `type`, `expression`, `target`, `component`). `extra_resource_types` names
    /// resource types that have no parameters of their own but still get the `Resource` and
    /// `DomainResource` ones.
    ///
    /// Never fails as a whole: a parameter whose expression does not parse is left out and
    /// reported by [`SearchParameters::errors`], so one bad definition cannot stop indexing.
    pub fn load(json: &str, extra_resource_types: &[String]) -> SearchParameters {
        let raw: Vec<RawParameter> = match serde_json::from_str(json) {
            Ok(raw) => raw,
            Err(e) => {
                return SearchParameters {
                    errors: vec![LoadError::Json(e)],
                    ..SearchParameters::default()
                };
            }
        };
        // Every concrete resource type, interned: per-type tables share these names.
        let mut names: Vec<&str> = extra_resource_types
            .iter()
            .map(String::as_str)
            .chain(raw.iter().flat_map(|p| p.base.iter().map(String::as_str)))
            .chain(["Parameters"])
            .filter(|t| !matches!(*t, "Resource" | "DomainResource"))
            .collect();
        names.sort_unstable();
        names.dedup();
        let types: Vec<Arc<str>> = names.into_iter().map(Arc::from).collect();

        let mut by_type: HashMap<Arc<str>, TypeParameters> = types
            .iter()
            .map(|t| (Arc::clone(t), TypeParameters::default()))
            .collect();
        let mut all = Vec::with_capacity(raw.len());
        let mut errors = Vec::new();
        for p in raw {
            let applicable = applicable_types(&p.base, &types);
            let param = match build_parameter(p, &applicable) {
                Ok(param) => Arc::new(param),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for resource_type in applicable {
                if let Some(entry) = by_type.get_mut(resource_type.as_ref()) {
                    entry.list.push(Arc::clone(&param));
                    entry
                        .expressions
                        .push(param.expression_for(resource_type).cloned());
                }
            }
            all.push(param);
        }
        for entry in by_type.values_mut() {
            entry.finish();
        }
        SearchParameters {
            all,
            by_type,
            errors,
        }
    }

    /// Definitions that could not be loaded. For the vendored data these are only the
    /// `ResearchStudy` `progress-status-*` composites (a test checks it), whose components have
    /// no type and whose element does not exist in R4.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// The parameter `code` of `resource_type`, including the `Resource`/`DomainResource` ones.
    pub fn get(&self, resource_type: &str, code: &str) -> Option<&SearchParameter> {
        let entry = self.by_type.get(resource_type)?;
        let found = entry
            .by_code
            .binary_search_by(|&i| entry.list[i].code.as_str().cmp(code))
            .ok()?;
        Some(entry.list[entry.by_code[found]].as_ref())
    }

    /// Every parameter that applies to `resource_type`; empty for an unknown type.
    pub fn for_type(&self, resource_type: &str) -> &[Arc<SearchParameter>] {
        self.by_type
            .get(resource_type)
            .map_or(&[], |entry| entry.list.as_slice())
    }

    /// The parameters of `resource_type` that have an expression for it, each with that
    /// expression (as [`SearchParameter::expression_for`] gives it), in definition order.
    pub fn with_expressions(
        &self,
        resource_type: &str,
    ) -> impl Iterator<Item = (&SearchParameter, &Expression)> {
        self.by_type
            .get(resource_type)
            .into_iter()
            .flat_map(|entry| entry.list.iter().zip(&entry.expressions))
            .filter_map(|(param, expression)| Some((param.as_ref(), expression.as_ref()?)))
    }

    /// Whether `resource_type` is a resource type this registry knows.
    pub fn is_resource_type(&self, resource_type: &str) -> bool {
        self.by_type.contains_key(resource_type)
    }

    /// Every known resource type, in no particular order.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(AsRef::as_ref)
    }

    /// Every loaded parameter, in definition order.
    pub fn all(&self) -> &[Arc<SearchParameter>] {
        &self.all
    }
}

/// The concrete resource types (from the sorted, interned `types`) a parameter with these bases
/// applies to.
fn applicable_types<'t>(base: &[String], types: &'t [Arc<str>]) -> Vec<&'t Arc<str>> {
    let mut applicable: Vec<&Arc<str>> = Vec::new();
    for b in base {
        match b.as_str() {
            "Resource" => applicable.extend(types),
            "DomainResource" => applicable.extend(
                types
                    .iter()
                    .filter(|t| !matches!(t.as_ref(), "Bundle" | "Binary" | "Parameters")),
            ),
            other => {
                if let Ok(i) = types.binary_search_by(|t| t.as_ref().cmp(other)) {
                    applicable.push(&types[i]);
                }
            }
        }
    }
    applicable.sort_unstable();
    applicable.dedup();
    applicable
}

fn build_parameter(
    raw: RawParameter,
    applicable: &[&Arc<str>],
) -> Result<SearchParameter, LoadError> {
    let parse = |source: &str| {
        let error = |e| LoadError::Expression {
            url: raw.url.clone(),
            expression: source.to_string(),
            source: e,
        };
        let e = Expression::parse(source).map_err(error)?;
        // Nothing binds variables when resources are indexed: such a parameter would index
        // nothing, silently.
        match e.variables().first() {
            Some(v) => Err(error(ParseError::Unsupported {
                what: format!("the variable %{v}"),
                pos: 0,
            })),
            None => Ok(e),
        }
    };
    let expression = raw.expression.as_deref().map(parse).transpose()?;
    let components = raw
        .component
        .iter()
        .map(|c| {
            let (Some(code), Some(kind)) = (&c.code, c.kind) else {
                return Err(LoadError::UntypedComponent {
                    url: raw.url.clone(),
                    definition: c.definition.clone(),
                });
            };
            Ok(Component {
                code: code.clone(),
                definition: c.definition.clone(),
                kind,
                expression: parse(&c.expression)?,
            })
        })
        .collect::<Result<Vec<_>, LoadError>>()?;

    let mut per_type = HashMap::new();
    if let Some(expression) = &expression {
        for &resource_type in applicable {
            match expression.for_resource_type(resource_type) {
                Narrowed::Unchanged => {}
                Narrowed::Nothing => {
                    per_type.insert(Arc::clone(resource_type), None);
                }
                Narrowed::To(narrowed) => {
                    per_type.insert(Arc::clone(resource_type), Some(narrowed));
                }
            }
        }
    }
    Ok(SearchParameter {
        url: raw.url,
        code: raw.code,
        base: raw.base,
        kind: raw.kind,
        expression,
        target: raw.target,
        components,
        per_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_parameters_load() {
        let registry = SearchParameters::global();
        // Only the R5 back-ports whose components lack a type (and which match no R4 element:
        // `ResearchStudy.progressStatus` does not exist in R4) are left out.
        let rejected: Vec<&str> = registry
            .errors()
            .iter()
            .map(|e| match e {
                LoadError::UntypedComponent { url, .. } => url.as_str(),
                other => panic!("unexpected load error {other}"),
            })
            .collect();
        assert_eq!(
            rejected,
            vec![
                "http://hl7.org/fhir/SearchParameter/ResearchStudy-progress-status-state-actual",
                "http://hl7.org/fhir/SearchParameter/ResearchStudy-progress-status-state-period",
                "http://hl7.org/fhir/SearchParameter/ResearchStudy-progress-status-state-period-actual",
            ]
        );
        assert_eq!(registry.all().len(), 1522 - 3);
    }

    #[test]
    fn lookups_include_resource_level_parameters() {
        let registry = SearchParameters::global();
        let id = registry.get("Patient", "_id").map(|p| p.url.as_str());
        assert_eq!(id, Some("http://hl7.org/fhir/SearchParameter/Resource-id"));
        let birthdate = registry.get("Patient", "birthdate").map(|p| p.kind);
        assert_eq!(birthdate, Some(SearchParamType::Date));
        assert!(registry.get("Patient", "code").is_none());
        assert!(registry.get("NoSuchType", "_id").is_none());
        assert!(registry.for_type("NoSuchType").is_empty());
    }

    #[test]
    fn domain_resource_parameters_skip_bundle_binary_parameters() {
        let registry = SearchParameters::global();
        assert!(registry.get("Patient", "_text").is_some());
        for t in ["Bundle", "Binary", "Parameters"] {
            assert!(registry.get(t, "_text").is_none(), "{t}");
            assert!(registry.get(t, "_id").is_some(), "{t}");
        }
    }

    #[test]
    fn duplicate_definitions_are_listed_once() {
        let registry = SearchParameters::global();
        let titles = registry
            .for_type("ResearchStudy")
            .iter()
            .filter(|p| p.code == "title")
            .count();
        assert_eq!(titles, 1);
    }

    #[test]
    fn shared_parameters_are_narrowed_per_type() {
        let registry = SearchParameters::global();
        let Some(patient) = registry.get("AllergyIntolerance", "patient") else {
            panic!("AllergyIntolerance.patient missing");
        };
        let full = patient.expression.as_ref().map(Expression::leading_type);
        // The whole expression spans many types; for one type only its own branch remains.
        assert_eq!(full, Some(None));
        let narrowed = patient.expression_for("AllergyIntolerance");
        assert_eq!(
            narrowed.and_then(Expression::leading_type),
            Some("AllergyIntolerance")
        );
        let care_plan = patient.expression_for("CarePlan");
        assert_eq!(
            care_plan.and_then(Expression::leading_type),
            Some("CarePlan")
        );
    }

    #[test]
    fn composite_components_are_parsed() {
        let registry = SearchParameters::global();
        let Some(p) = registry.get("Observation", "code-value-quantity") else {
            panic!("code-value-quantity missing");
        };
        assert_eq!(p.kind, SearchParamType::Composite);
        let parts: Vec<(&str, SearchParamType)> = p
            .components
            .iter()
            .map(|c| (c.code.as_str(), c.kind))
            .collect();
        assert_eq!(
            parts,
            vec![
                ("code", SearchParamType::Token),
                ("value-quantity", SearchParamType::Quantity)
            ]
        );
    }

    #[test]
    fn a_bad_expression_is_reported_not_fatal() {
        let json = r#"[
            {"url":"u1","code":"a","base":["Patient"],"type":"string","expression":"Patient.name +"},
            {"url":"u2","code":"b","base":["Patient"],"type":"string","expression":"Patient.name"}
        ]"#;
        let registry = SearchParameters::load(json, &[]);
        assert_eq!(registry.errors().len(), 1);
        assert!(registry.get("Patient", "a").is_none());
        assert!(registry.get("Patient", "b").is_some());
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use std::time::Instant;

    /// Where loading time goes. `cargo test --release -p oxmed-fhir --lib load_phases -- --ignored --nocapture`
    #[test]
    #[ignore = "timing helper"]
    fn load_phases() {
        for _ in 0..5 {
            let t = Instant::now();
            let raw: Vec<RawParameter> =
                serde_json::from_str(SEARCH_PARAMETERS_JSON).unwrap_or_default();
            let json = t.elapsed();
            let t = Instant::now();
            let mut n = 0;
            for p in &raw {
                if let Some(e) = &p.expression {
                    n += usize::from(Expression::parse(e).is_ok());
                }
            }
            let parse = t.elapsed();
            let t = Instant::now();
            let registry = SearchParameters::load(SEARCH_PARAMETERS_JSON, &[]);
            let total = t.elapsed();
            let t = Instant::now();
            drop(registry);
            let dropping = t.elapsed();
            println!("json {json:?}, parse {n} {parse:?}, whole load {total:?}, drop {dropping:?}");
        }
    }
}
