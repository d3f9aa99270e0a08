//! Timing helpers, ignored by default. Run in release mode:
//! `cargo test --release -p oxmed-fhir --test index_timing -- --ignored --nocapture`

use std::hint::black_box;
use std::time::{Duration, Instant};

use oxmed_fhir::index::extract;
use oxmed_fhir::search_parameter::SearchParameters;
use serde_json::{Value, json};

const DATA: &str = include_str!("../data/search-parameters.json");

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "0190a3c2-7d1e-7c3a-9f00-8e5b2c1d4e5f",
        "meta": {"versionId": "1", "lastUpdated": "2024-05-06T07:08:09.123Z",
                 "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "identifier": [
            {"system": "http://hospital.example/mrn", "value": "12345",
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-99-9999"}
        ],
        "active": true,
        "name": [{"use": "official", "family": "Müller", "given": ["Zoë", "Anne"]},
                 {"use": "nickname", "given": ["Zo"]}],
        "telecom": [{"system": "phone", "value": "555-1234", "use": "home"},
                    {"system": "email", "value": "zoe@example.org"}],
        "gender": "female",
        "birthDate": "1980-02-29",
        "address": [{"use": "home", "line": ["1 Main St"], "city": "Springfield",
                     "state": "IL", "postalCode": "62701", "country": "US"}],
        "generalPractitioner": [{"reference": "Practitioner/d1"}],
        "managingOrganization": {"reference": "Organization/o1"}
    })
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "0190a3c2-7d1e-7c3a-9f00-8e5b2c1d4e60",
        "meta": {"versionId": "1", "lastUpdated": "2024-05-06T07:08:09.123Z"},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure"}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2024-05-06T07:00:00Z",
        "performer": [{"reference": "Practitioner/d1"}],
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]
    })
}

fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

#[test]
#[ignore = "timing helper; run with --release --ignored --nocapture"]
fn timings() {
    let start = Instant::now();
    let registry = SearchParameters::global();
    println!(
        "first SearchParameters::global(): {:?} ({} parameters)",
        start.elapsed(),
        registry.all().len()
    );
    let load = per_call(20, || {
        black_box(SearchParameters::load(black_box(DATA), &[]));
    });
    println!(
        "SearchParameters::load (JSON + parse all expressions + per-type narrowing): {load:?}"
    );

    let expressions: Vec<String> = serde_json::from_str::<Vec<Value>>(DATA)
        .unwrap_or_default()
        .iter()
        .flat_map(|p| {
            let own = p
                .get("expression")
                .and_then(Value::as_str)
                .map(str::to_string);
            let components = p
                .get("component")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    c.get("expression")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            own.into_iter().chain(components).collect::<Vec<_>>()
        })
        .collect();
    let parse = per_call(20, || {
        for e in &expressions {
            let _ = black_box(oxmed_fhir::fhirpath::Expression::parse(black_box(e)));
        }
    });
    println!(
        "  of which parsing {} expressions: {parse:?}",
        expressions.len()
    );
    let json = per_call(20, || {
        black_box(serde_json::from_str::<Value>(black_box(DATA)).is_ok());
    });
    println!("  (for scale: the same JSON into a serde_json::Value: {json:?})");

    for (name, resource) in [("Patient", patient()), ("Observation", observation())] {
        let entries = extract(&resource).len();
        let t = per_call(20_000, || {
            black_box(extract(black_box(&resource)));
        });
        println!("extract({name}): {t:?} per call, {entries} entries");
    }
}
