//! `OperationOutcome`, the FHIR way to say what went wrong (or right).

use serde_json::{Value, json};

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// One `OperationOutcome.issue`. `code` is from the FHIR IssueType value set (`invalid`,
/// `structure`, `required`, `value`, `not-found`, `deleted`, `conflict`, `forbidden`, `processing`,
/// `exception`, `too-costly`, `throttled`, `login`, `security`, `informational`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub code: &'static str,
    pub details: String,
    /// FHIRPath expressions of the elements concerned (e.g. `Patient.gender`).
    pub expression: Vec<String>,
}

impl Issue {
    pub fn error(code: &'static str, details: impl Into<String>) -> Issue {
        Issue {
            severity: Severity::Error,
            code,
            details: details.into(),
            expression: Vec::new(),
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Issue {
        self.expression.push(expression.into());
        self
    }
}

/// Builds the resource. Issues carry `details.text` (what Medplum and most clients display) and,
/// when known, `expression` naming the element.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v = json!({
                "severity": i.severity.as_str(),
                "code": i.code,
                "details": { "text": i.details },
            });
            if !i.expression.is_empty() {
                v["expression"] = json!(i.expression);
            }
            v
        })
        .collect();
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

/// The outcome of a successful interaction, for `Prefer: return=OperationOutcome`.
pub fn all_ok(details: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "id": "allok",
        "issue": [{ "severity": "information", "code": "informational", "details": { "text": details } }]
    })
}
