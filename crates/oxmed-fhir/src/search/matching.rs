//! In-memory matching of one resource against search conditions, with the semantics of the SQL
//! path: both read only what `index::extract` produces, and both use the predicates exported
//! here (see `matching_predicates.rs` for each comparison).
//!
//! How a condition combines the values of its parameter:
//! - `Param`: holds if any value of the parameter matches ([`value_matches`]); for a negation
//!   ([`is_negation`]: token `:not`, `ne`) it holds if no value matches the positive form
//!   ([`positive_form`]), so a resource without the element satisfies it. Values of another
//!   parameter type than the test are ignored.
//! - `Missing { missing: true }`: the resource has no value at all for the code;
//!   `missing: false`: at least one.
//! - `Id`: the resource id equals the value exactly. `LastUpdated`: [`date_matches`] on the
//!   point `[meta.lastUpdated, meta.lastUpdated]` (a resource without it only satisfies `ne`).
//! - `Compartment { Type, id }`: one of the resource's accounts (`meta.accounts`, indexed as
//!   [`ACCOUNT_CODE`]) is `Type/id`; or, for `Patient`, the resource is `Patient/id` itself, or
//!   one of the reference parameters that the Patient CompartmentDefinition lists for its type
//!   ([`patient_compartment_params`]) has a value whose target is `Patient/id`
//!   (`target_type == "Patient" && target_id == id`).
//! - `Chain` and `Has` depend on other resources and cannot be decided here.
//!
//! Clauses are ANDed and the conditions of a clause ORed, in three-valued logic: a condition
//! that cannot be decided is *unknown*; `false` AND unknown is `false`, `true` OR unknown is
//! `true`, and a result that stays unknown is an error. So the answer never depends on the
//! order of clauses, and an undecidable result is never read as a match (callers deny). A
//! clause with no conditions is `false`.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

#[path = "matching_predicates.rs"]
mod predicates;

pub use predicates::{
    StoredToken, date_ap_tolerance, date_matches, is_at_or_below, is_negation, number_matches,
    positive_form, quantity_matches, quantity_unit_matches, reference_matches, string_matches,
    token_code_matches, token_matches, token_text_matches, uri_matches, value_matches,
};

use crate::index::{ACCOUNT_CODE, extract_only, parse_date_range};
use crate::index_value::{IndexEntry, IndexValue};
use crate::search::{Clause, Condition, Prefix, Test};

const PATIENT_COMPARTMENT_JSON: &str = include_str!("../../data/compartment-patient.json");

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatchError {
    /// A condition needs other resources (chains, `_has`) or something this server does not
    /// implement; the answer is unknown and the caller must not treat it as a match.
    #[error("cannot be decided on the resource alone: {0}")]
    Unsupported(String),
    /// The JSON is not a resource (no `resourceType`).
    #[error("not a resource: {0}")]
    NotAResource(String),
}

/// Whether `resource` satisfies every clause, extracting its index values.
pub fn matches(resource: &Value, clauses: &[Clause]) -> Result<bool, MatchError> {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return Err(MatchError::NotAResource(
            "the JSON has no resourceType".to_string(),
        ));
    };
    let entries = if clauses.iter().any(needs_entries) {
        // Only the parameters the conditions name: the same entries for them as `extract`
        // gives, at a fraction of the cost on a large resource.
        let mut codes = Vec::new();
        codes_needed(resource_type, clauses, &mut codes);
        let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
        extract_only(resource, &codes)
    } else {
        Vec::new()
    };
    matches_with(resource, &entries, clauses)
}

/// Adds to `out` (once each) the search parameter codes whose index values deciding `clauses`
/// on a resource of `resource_type` reads.
pub fn codes_needed(resource_type: &str, clauses: &[Clause], out: &mut Vec<String>) {
    let add = |code: &str, out: &mut Vec<String>| {
        if !out.iter().any(|c| c == code) {
            out.push(code.to_owned());
        }
    };
    for c in clauses.iter().flat_map(|c| c.any.iter()) {
        match c {
            Condition::Param { code, .. } | Condition::Missing { code, .. } => add(code, out),
            Condition::Compartment { .. } => {
                for code in patient_compartment_params(resource_type) {
                    add(code, out);
                }
                add(ACCOUNT_CODE, out);
            }
            _ => {}
        }
    }
}

/// [`matches`] with the resource's index entries already extracted (at least those of
/// [`codes_needed`]), for deciding several criteria on one resource with one extraction.
pub fn matches_with(
    resource: &Value,
    entries: &[IndexEntry],
    clauses: &[Clause],
) -> Result<bool, MatchError> {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return Err(MatchError::NotAResource(
            "the JSON has no resourceType".to_string(),
        ));
    };
    let subject = Subject {
        resource_type,
        id: resource.get("id").and_then(Value::as_str),
        resource: Some(resource),
        last_updated: std::cell::OnceCell::new(),
        entries,
        now: std::cell::OnceCell::new(),
        compartments: std::cell::OnceCell::new(),
    };
    subject.all(clauses)
}

/// Whether a resource satisfies every clause, from its index entries (as `index::extract`
/// gives them) and the identity fields the index keeps apart.
pub fn matches_entries(
    resource_type: &str,
    id: &str,
    last_updated_micros: i64,
    entries: &[IndexEntry],
    clauses: &[Clause],
) -> Result<bool, MatchError> {
    Subject {
        resource_type,
        id: Some(id),
        resource: None,
        last_updated: Some(last_updated_micros).into(),
        entries,
        now: std::cell::OnceCell::new(),
        compartments: std::cell::OnceCell::new(),
    }
    .all(clauses)
}

/// The search parameter codes through which a resource of `resource_type` belongs to a
/// Patient's compartment (FHIR R4 CompartmentDefinition `patient`); empty for types that are
/// never in it. A `Patient` is also in its own compartment, which this list does not say.
pub fn patient_compartment_params(resource_type: &str) -> &'static [String] {
    static COMPARTMENT: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    COMPARTMENT
        .get_or_init(|| serde_json::from_str(PATIENT_COMPARTMENT_JSON).unwrap_or_default())
        .get(resource_type)
        .map_or(&[], Vec::as_slice)
}

/// The compartments `(type, id)` a resource is in, from its index entries (at least those of
/// [`codes_needed`] for a `_compartment` condition): the Patients its Patient-compartment
/// parameters refer to, itself when a Patient, and every account (of any type). What
/// `_compartment` conditions are decided on, here and by callers that decide many of them at
/// once (an access policy's list of Patients).
pub fn compartments<'a>(
    resource_type: &str,
    id: Option<&'a str>,
    entries: &'a [IndexEntry],
) -> Vec<(&'a str, &'a str)> {
    let codes = patient_compartment_params(resource_type);
    let mut found: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|e| match &e.value {
            IndexValue::Reference {
                target_type: Some(t),
                target_id: Some(i),
                ..
            } if e.code == ACCOUNT_CODE || (t == "Patient" && codes.contains(&e.code)) => {
                Some((t.as_str(), i.as_str()))
            }
            _ => None,
        })
        .collect();
    if let (Some(id), "Patient") = (id, resource_type) {
        found.push(("Patient", id));
    }
    found
}

fn needs_entries(clause: &Clause) -> bool {
    clause.any.iter().any(|c| {
        matches!(
            c,
            Condition::Param { .. } | Condition::Missing { .. } | Condition::Compartment { .. }
        )
    })
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Three-valued truth; `Unknown` carries why, for the error.
enum Truth {
    True,
    False,
    Unknown(String),
}

impl From<bool> for Truth {
    fn from(b: bool) -> Self {
        if b { Truth::True } else { Truth::False }
    }
}

struct Subject<'a> {
    resource_type: &'a str,
    id: Option<&'a str>,
    /// What `last_updated` is read from when first needed (few criteria test it).
    resource: Option<&'a Value>,
    last_updated: std::cell::OnceCell<Option<i64>>,
    entries: &'a [IndexEntry],
    now: std::cell::OnceCell<i64>,
    /// The compartments (type, id) the resource is in: the Patients its compartment
    /// parameters refer to, itself when a Patient, and its accounts; found once however many
    /// compartments a clause lists (a policy's list of a hundred Patients is as many
    /// conditions).
    compartments: std::cell::OnceCell<Vec<(&'a str, &'a str)>>,
}

impl<'a> Subject<'a> {
    fn last_updated(&self) -> Option<i64> {
        *self.last_updated.get_or_init(|| {
            self.resource?
                .get("meta")?
                .get("lastUpdated")?
                .as_str()
                .and_then(parse_date_range)
                .map(|(start, _)| start)
        })
    }

    fn now(&self) -> i64 {
        *self.now.get_or_init(now_micros)
    }

    fn all(&self, clauses: &[Clause]) -> Result<bool, MatchError> {
        let mut unknown = None;
        for clause in clauses {
            match self.any(clause) {
                Truth::False => return Ok(false),
                Truth::Unknown(why) => unknown = unknown.or(Some(why)),
                Truth::True => {}
            }
        }
        match unknown {
            Some(why) => Err(MatchError::Unsupported(why)),
            None => Ok(true),
        }
    }

    fn any(&self, clause: &Clause) -> Truth {
        let mut unknown = None;
        for condition in &clause.any {
            match self.condition(condition) {
                Truth::True => return Truth::True,
                Truth::Unknown(why) => unknown = unknown.or(Some(why)),
                Truth::False => {}
            }
        }
        unknown.map_or(Truth::False, Truth::Unknown)
    }

    /// See [`Subject::compartments`]: the Patients the parameters the Patient
    /// CompartmentDefinition lists for the type refer to, the resource itself if a Patient,
    /// and every account (of any type).
    fn compartments(&self) -> &[(&'a str, &'a str)] {
        self.compartments
            .get_or_init(|| compartments(self.resource_type, self.id, self.entries))
    }

    fn values<'s>(&'s self, code: &'s str) -> impl Iterator<Item = &'s IndexValue> + 's {
        self.entries
            .iter()
            .filter(move |e| e.code == code)
            .map(|e| &e.value)
    }

    fn condition(&self, condition: &Condition) -> Truth {
        match condition {
            Condition::Id(id) => (self.id == Some(id.as_str())).into(),
            Condition::LastUpdated(test) => match self.last_updated() {
                Some(t) => date_matches(test.prefix, (t, t), (test.start, test.end), self.now()),
                None => test.prefix == Prefix::Ne,
            }
            .into(),
            Condition::Param { code, test } => self.param(code, test).into(),
            Condition::Missing { code, missing } => {
                (self.values(code).next().is_none() == *missing).into()
            }
            Condition::Compartment {
                compartment_type,
                id,
            } => self
                .compartments()
                .iter()
                .any(|(t, i)| *i == id.as_str() && *t == compartment_type.as_str())
                .into(),
            Condition::Chain { reference_code, .. } => Truth::Unknown(format!(
                "the chained parameter {reference_code}.… needs the referenced resources"
            )),
            Condition::Has {
                source_type,
                reference_code,
                ..
            } => Truth::Unknown(format!(
                "_has:{source_type}:{reference_code} needs the referring resources"
            )),
        }
    }

    fn param(&self, code: &str, test: &Test) -> bool {
        if is_negation(test) {
            let positive = positive_form(test);
            !self
                .values(code)
                .any(|v| value_matches(&positive, v, self.now()))
        } else {
            self.values(code)
                .any(|v| value_matches(test, v, self.now()))
        }
    }
}
