//! Validation cost of typical resources. Run in release:
//!     cargo test --release -p oxmed-fhir --test validation_perf -- --ignored --nocapture

use std::hint::black_box;
use std::time::Instant;

use oxmed_fhir::validation::validate;
use serde_json::{Value, json};

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "0f6b2c3e-2a55-4b1d-9c1e-7d7f2b1f0a11",
        "meta": {"versionId": "1", "lastUpdated": "2024-01-02T03:04:05.678Z",
                 "project": "5d2b1f4e-8c3a-4f6b-9a7d-1e2c3b4a5f60",
                 "author": {"reference": "Practitioner/1"}},
        "identifier": [{"use": "usual", "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345",
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
        "active": true,
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
                 {"use": "usual", "given": ["Jim"]}],
        "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
                    {"system": "email", "value": "jim@example.org"}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille",
                     "state": "Vic", "postalCode": "3999", "period": {"start": "1974-12-25"}}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
        "managingOrganization": {"reference": "Organization/1"}
    })
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "f001",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": "2012-09-17T10:00:00+01:00",
        "performer": [{"reference": "Practitioner/example"}],
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "L"}]}],
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 60, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]
    })
}

fn measure(name: &str, resource: &Value) -> f64 {
    assert!(validate(resource).is_ok(), "{name} must be valid");
    for _ in 0..10_000 {
        black_box(validate(black_box(resource)).is_ok());
    }
    let n = 200_000;
    let start = Instant::now();
    for _ in 0..n {
        black_box(validate(black_box(resource)).is_ok());
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    eprintln!("validate({name}): {per:.2} µs");
    per
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn typical_resources_validate_fast() {
    let p = measure("Patient", &patient());
    let o = measure("Observation", &observation());
    if !cfg!(debug_assertions) {
        assert!(p < 50.0 && o < 50.0);
    }
}
