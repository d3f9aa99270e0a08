//! Every expression in the vendored search parameters must parse with the FHIRPath subset.

use oxmed_fhir::fhirpath::Expression;
use serde_json::Value;

const DATA: &str = include_str!("../data/search-parameters.json");

fn all_expressions() -> Vec<(String, String)> {
    let params: Vec<Value> = serde_json::from_str(DATA).expect("search-parameters.json is JSON");
    let mut out = Vec::new();
    for p in &params {
        let url = p["url"].as_str().unwrap_or_default().to_string();
        if let Some(e) = p.get("expression").and_then(Value::as_str) {
            out.push((url.clone(), e.to_string()));
        }
        for c in p
            .get("component")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let e = c["expression"].as_str().expect("component expression");
            out.push((format!("{url} component {}", c["code"]), e.to_string()));
        }
    }
    out
}

#[test]
fn every_search_parameter_expression_parses() {
    let expressions = all_expressions();
    // 1519 parameters have an expression, and 49 composites add 100 component expressions.
    assert_eq!(expressions.len(), 1622);
    let failures: Vec<String> = expressions
        .iter()
        .filter_map(|(url, e)| {
            Expression::parse(e)
                .err()
                .map(|err| format!("{url}: {err}\n    {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} expressions failed to parse:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn refuses_what_the_evaluator_cannot_do() {
    for bad in [
        "Patient.name.given + 'x'",
        "Observation.value * 2",
        "Patient.birthDate > @2020-01-01",
        "Patient.name.frobnicate()",
        "Patient.name.where()",
        "Patient.name.",
        "Patient.name[",
        "(Patient.name",
        "Patient.name 'x'",
        "'unterminated",
        "",
    ] {
        assert!(Expression::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(matches!(
        Expression::parse(&deep),
        Err(oxmed_fhir::fhirpath::ParseError::TooDeep { .. })
    ));
    let ok = format!("{}1{}", "(".repeat(30), ")".repeat(30));
    assert!(Expression::parse(&ok).is_ok());
}
