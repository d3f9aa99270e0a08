//! Known resources index to known values.

use oxmed_fhir::index::{extract, parse_date_range};
use oxmed_fhir::index_value::{IndexEntry, IndexValue};
use serde_json::{Value, json};

fn of<'e>(entries: &'e [IndexEntry], code: &str) -> Vec<&'e IndexValue> {
    entries
        .iter()
        .filter(|e| e.code == code)
        .map(|e| &e.value)
        .collect()
}

fn owned(v: Vec<&IndexValue>) -> Vec<IndexValue> {
    v.into_iter().cloned().collect()
}

fn string(normalized: &str, exact: &str) -> IndexValue {
    IndexValue::String {
        normalized: normalized.into(),
        exact: exact.into(),
    }
}

fn token(system: Option<&str>, code: Option<&str>, text: Option<&str>) -> IndexValue {
    IndexValue::Token {
        system: system.map(Into::into),
        code: code.map(Into::into),
        text: text.map(Into::into),
        type_system: None,
        type_code: None,
    }
}

fn code(c: &str) -> IndexValue {
    token(None, Some(c), None)
}

fn reference(r: &str, target: Option<(&str, &str)>) -> IndexValue {
    IndexValue::Reference {
        reference: r.into(),
        target_type: target.map(|(t, _)| t.into()),
        target_id: target.map(|(_, id)| id.into()),
    }
}

fn quantity(
    value: f64,
    system: Option<&str>,
    code: Option<&str>,
    unit: Option<&str>,
) -> IndexValue {
    IndexValue::Quantity {
        value,
        system: system.map(Into::into),
        code: code.map(Into::into),
        unit: unit.map(Into::into),
    }
}

fn date(s: &str) -> IndexValue {
    let Some((start, end)) = parse_date_range(s) else {
        panic!("bad test date {s}");
    };
    IndexValue::Date { start, end }
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "meta": {
            "versionId": "1",
            "lastUpdated": "2024-05-06T07:08:09.123Z",
            "tag": [{"system": "http://tags", "code": "x", "display": "Tag X"}],
            "security": [{"system": "http://sec", "code": "R"}],
            "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
            "source": "http://source.example#abc"
        },
        "extension": [{
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [
                {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}},
                {"url": "text", "valueString": "White"}
            ]
        }],
        "identifier": [{
            "system": "http://hospital.example/mrn",
            "value": "12345",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "MRN"}
        }],
        "active": true,
        "name": [{"family": "Müller", "given": ["Zoë", "Anne"], "prefix": ["Dr."], "text": "Dr. Zoë Anne Müller"}],
        "telecom": [
            {"system": "phone", "value": "555-1234", "use": "home"},
            {"system": "email", "value": "zoe@example.org"}
        ],
        "gender": "female",
        "birthDate": "1980-02-29",
        "_birthDate": {"extension": [{"url": "http://ignored", "valueString": "x"}]},
        "deceasedBoolean": false,
        "address": [{
            "use": "home",
            "line": ["1 Main St", "Apt 2"],
            "city": "Springfield",
            "state": "IL",
            "postalCode": "62701",
            "country": "US"
        }],
        "generalPractitioner": [
            {"reference": "Practitioner/d1"},
            {"identifier": {"system": "http://npi", "value": "only-an-identifier"}}
        ],
        "managingOrganization": {"reference": "https://example.org/fhir/Organization/o1/_history/2"},
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}], "text": "English"}}]
    })
}

#[test]
fn patient_values() {
    let e = extract(&patient());

    assert_eq!(owned(of(&e, "_id")), vec![code("p1")]);
    let last_updated = 1_714_979_289_123_000; // 2024-05-06T07:08:09.123Z
    assert_eq!(
        owned(of(&e, "_lastUpdated")),
        vec![IndexValue::Date {
            start: last_updated,
            end: last_updated
        }]
    );
    assert_eq!(
        owned(of(&e, "_tag")),
        vec![token(Some("http://tags"), Some("x"), Some("Tag X"))]
    );
    assert_eq!(
        owned(of(&e, "_security")),
        vec![token(Some("http://sec"), Some("R"), None)]
    );
    assert_eq!(
        owned(of(&e, "_profile")),
        vec![IndexValue::Uri {
            value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient".into()
        }]
    );
    assert_eq!(
        owned(of(&e, "_source")),
        vec![IndexValue::Uri {
            value: "http://source.example#abc".into()
        }]
    );

    assert_eq!(
        owned(of(&e, "identifier")),
        vec![IndexValue::Token {
            system: Some("http://hospital.example/mrn".into()),
            code: Some("12345".into()),
            text: Some("MRN".into()),
            type_system: Some("http://terminology.hl7.org/CodeSystem/v2-0203".into()),
            type_code: Some("MR".into()),
        }]
    );
    assert_eq!(owned(of(&e, "active")), vec![code("true")]);
    assert_eq!(owned(of(&e, "gender")), vec![code("female")]);
    assert_eq!(owned(of(&e, "birthdate")), vec![date("1980-02-29")]);
    assert_eq!(owned(of(&e, "deceased")), vec![code("false")]);
    assert!(of(&e, "death-date").is_empty());

    assert_eq!(
        owned(of(&e, "name")),
        vec![
            string("muller", "Müller"),
            string("zoe", "Zoë"),
            string("anne", "Anne"),
            string("dr.", "Dr."),
            string("dr. zoe anne muller", "Dr. Zoë Anne Müller"),
        ]
    );
    assert_eq!(owned(of(&e, "family")), vec![string("muller", "Müller")]);
    assert_eq!(
        owned(of(&e, "given")),
        vec![string("zoe", "Zoë"), string("anne", "Anne")]
    );
    assert_eq!(
        owned(of(&e, "address")),
        vec![
            string("1 main st", "1 Main St"),
            string("apt 2", "Apt 2"),
            string("springfield", "Springfield"),
            string("il", "IL"),
            string("62701", "62701"),
            string("us", "US"),
        ]
    );
    assert_eq!(
        owned(of(&e, "address-city")),
        vec![string("springfield", "Springfield")]
    );
    assert_eq!(owned(of(&e, "address-use")), vec![code("home")]);

    assert_eq!(
        owned(of(&e, "telecom")),
        vec![
            token(Some("phone"), Some("555-1234"), None),
            token(Some("email"), Some("zoe@example.org"), None),
        ]
    );
    assert_eq!(
        owned(of(&e, "phone")),
        vec![token(Some("phone"), Some("555-1234"), None)]
    );
    assert_eq!(
        owned(of(&e, "email")),
        vec![token(Some("email"), Some("zoe@example.org"), None)]
    );

    // The identifier-only reference is not indexed (yet).
    assert_eq!(
        owned(of(&e, "general-practitioner")),
        vec![reference("Practitioner/d1", Some(("Practitioner", "d1")))]
    );
    assert_eq!(
        owned(of(&e, "organization")),
        vec![reference(
            "https://example.org/fhir/Organization/o1/_history/2",
            Some(("Organization", "o1"))
        )]
    );
    assert_eq!(
        owned(of(&e, "language")),
        vec![
            token(Some("urn:ietf:bcp:47"), Some("en"), None),
            token(None, None, Some("English")),
        ]
    );
    assert_eq!(owned(of(&e, "race")), vec![code("2106-3")]);

    let mut codes: Vec<&str> = e.iter().map(|e| e.code.as_str()).collect();
    codes.dedup();
    assert_eq!(
        codes,
        vec![
            "_id",
            "_lastUpdated",
            "_profile",
            "_security",
            "_source",
            "_tag",
            "active",
            "address",
            "address-city",
            "address-country",
            "address-postalcode",
            "address-state",
            "address-use",
            "birthdate",
            "deceased",
            "email",
            "family",
            "gender",
            "general-practitioner",
            "given",
            "identifier",
            "language",
            "name",
            "organization",
            "phone",
            "phonetic",
            "telecom",
            "race",
        ]
    );
}

fn weight() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "w1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}], "text": "Weight"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2021-03-04T10:00:00+01:00",
        "valueQuantity": {"value": 70.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    })
}

#[test]
fn observation_values() {
    let e = extract(&weight());
    let loinc = token(
        Some("http://loinc.org"),
        Some("29463-7"),
        Some("Body weight"),
    );
    let kg = quantity(
        70.5,
        Some("http://unitsofmeasure.org"),
        Some("kg"),
        Some("kg"),
    );

    assert_eq!(
        owned(of(&e, "code")),
        vec![loinc.clone(), token(None, None, Some("Weight"))]
    );
    assert_eq!(
        owned(of(&e, "subject")),
        vec![reference("Patient/p1", Some(("Patient", "p1")))]
    );
    assert_eq!(
        owned(of(&e, "patient")),
        vec![reference("Patient/p1", Some(("Patient", "p1")))]
    );
    assert_eq!(owned(of(&e, "value-quantity")), vec![kg.clone()]);
    let nine_utc = 1_614_848_400_000_000; // 2021-03-04T09:00:00Z
    assert_eq!(
        owned(of(&e, "date")),
        vec![IndexValue::Date {
            start: nine_utc,
            end: nine_utc + 999_999
        }]
    );
    assert_eq!(owned(of(&e, "status")), vec![code("final")]);
    // A composite pairs the code's codings (not its text) with the value.
    let pair = IndexValue::Composite {
        components: vec![loinc, kg],
    };
    assert_eq!(owned(of(&e, "code-value-quantity")), vec![pair.clone()]);
    assert_eq!(owned(of(&e, "combo-code-value-quantity")), vec![pair]);
    assert!(of(&e, "component-code-value-quantity").is_empty());
    assert!(of(&e, "code-value-concept").is_empty());
    assert!(of(&e, "value-concept").is_empty());
}

#[test]
fn observation_components() {
    let bp = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "no-value"}]}}
        ]
    });
    let e = extract(&bp);
    let pair = |c: &str, v: f64| IndexValue::Composite {
        components: vec![
            token(Some("http://loinc.org"), Some(c), None),
            quantity(v, Some("http://unitsofmeasure.org"), Some("mm[Hg]"), None),
        ],
    };
    let expected = vec![pair("8480-6", 120.0), pair("8462-4", 80.0)];
    assert_eq!(owned(of(&e, "component-code-value-quantity")), expected);
    assert_eq!(owned(of(&e, "combo-code-value-quantity")), expected);
    assert!(of(&e, "code-value-quantity").is_empty());
    assert_eq!(
        owned(of(&e, "component-value-quantity")),
        vec![
            quantity(
                120.0,
                Some("http://unitsofmeasure.org"),
                Some("mm[Hg]"),
                None
            ),
            quantity(
                80.0,
                Some("http://unitsofmeasure.org"),
                Some("mm[Hg]"),
                None
            ),
        ]
    );
    assert_eq!(of(&e, "component-code").len(), 3);
}

#[test]
fn observation_about_a_group_is_not_about_a_patient() {
    let mut o = weight();
    o["subject"] = json!({"reference": "Group/g1"});
    let e = extract(&o);
    assert!(of(&e, "patient").is_empty());
    assert_eq!(
        owned(of(&e, "subject")),
        vec![reference("Group/g1", Some(("Group", "g1")))]
    );
}

#[test]
fn encounter_periods() {
    let open = json!({"resourceType": "Encounter", "status": "in-progress", "class": {"code": "AMB"},
        "period": {"start": "2021-01-01T10:00:00Z"}});
    let e = extract(&open);
    let start = date("2021-01-01T10:00:00Z");
    let IndexValue::Date { start: s, .. } = start else {
        panic!("not a date")
    };
    assert_eq!(
        owned(of(&e, "date")),
        vec![IndexValue::Date {
            start: s,
            end: i64::MAX
        }]
    );
    assert_eq!(owned(of(&e, "class")), vec![token(None, Some("AMB"), None)]);

    let closed = json!({"resourceType": "Encounter", "status": "finished",
        "period": {"start": "2021-01-01", "end": "2021-01-02"}});
    let e = extract(&closed);
    let (day1, _) = parse_date_range("2021-01-01").unwrap_or_default();
    let (_, day2_end) = parse_date_range("2021-01-02").unwrap_or_default();
    assert_eq!(
        owned(of(&e, "date")),
        vec![IndexValue::Date {
            start: day1,
            end: day2_end
        }]
    );

    let bad = json!({"resourceType": "Encounter", "period": {"start": "yesterday"}});
    assert!(of(&extract(&bad), "date").is_empty());
}

#[test]
fn allergy_patient() {
    let a = json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p9"},
        "code": {"text": "Peanuts"}});
    let e = extract(&a);
    assert_eq!(
        owned(of(&e, "patient")),
        vec![reference("Patient/p9", Some(("Patient", "p9")))]
    );
    assert_eq!(
        owned(of(&e, "code")),
        vec![token(None, None, Some("Peanuts"))]
    );
}

#[test]
fn money_range_and_timing() {
    let invoice = json!({"resourceType": "Invoice", "status": "issued",
        "totalNet": {"value": 10.5, "currency": "USD"}});
    assert_eq!(
        owned(of(&extract(&invoice), "totalnet")),
        vec![quantity(
            10.5,
            Some("urn:iso:std:iso:4217"),
            Some("USD"),
            None
        )]
    );

    let vs = json!({"resourceType": "ValueSet", "status": "active", "useContext": [{
        "code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type", "code": "age"},
        "valueRange": {"low": {"value": 18, "unit": "a"}, "high": {"value": 65, "unit": "a"}}
    }]});
    let e = extract(&vs);
    let low = quantity(18.0, None, None, Some("a"));
    let high = quantity(65.0, None, None, Some("a"));
    assert_eq!(
        owned(of(&e, "context-quantity")),
        vec![low.clone(), high.clone()]
    );
    let age = token(
        Some("http://terminology.hl7.org/CodeSystem/usage-context-type"),
        Some("age"),
        None,
    );
    assert_eq!(
        owned(of(&e, "context-type-quantity")),
        vec![
            IndexValue::Composite {
                components: vec![age.clone(), low]
            },
            IndexValue::Composite {
                components: vec![age, high]
            },
        ]
    );

    let plan = json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
        "activity": [{"detail": {"status": "scheduled",
            "scheduledTiming": {"event": ["2021-01-01", "2021-01-03T08:00:00Z"]}}}]});
    assert_eq!(
        owned(of(&extract(&plan), "activity-date")),
        vec![date("2021-01-01"), date("2021-01-03T08:00:00Z")]
    );
}

#[test]
fn iif_number_parameter() {
    let stat = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "priority": "stat"});
    assert_eq!(
        owned(of(&extract(&stat), "priority-order")),
        vec![IndexValue::Number { value: 50.0 }]
    );
}

#[test]
fn canonical_reference_and_inline_resource() {
    let plan = json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
        "instantiatesCanonical": ["http://example.org/PlanDefinition/pd|1.0"]});
    assert_eq!(
        owned(of(&extract(&plan), "instantiates-canonical")),
        vec![reference("http://example.org/PlanDefinition/pd|1.0", None)]
    );
    let bundle = json!({"resourceType": "Bundle", "type": "document", "entry": [
        {"resource": {"resourceType": "Composition", "id": "c1"}}]});
    assert_eq!(
        owned(of(&extract(&bundle), "composition")),
        vec![reference("Composition/c1", Some(("Composition", "c1")))]
    );
}

#[test]
fn unknown_or_missing_type_yields_nothing() {
    assert!(extract(&json!({"resourceType": "NoSuchThing", "id": "x"})).is_empty());
    assert!(extract(&json!({"id": "x"})).is_empty());
    assert!(extract(&json!("Patient")).is_empty());
}

#[test]
fn invalid_values_are_skipped() {
    let p = json!({"resourceType": "Patient", "id": 7, "birthDate": "1980-13-01",
        "meta": {"lastUpdated": 12}, "name": [{"family": ""}, "not-a-name", 3],
        "gender": null, "telecom": [{"system": "phone"}], "address": [{"city": ["x"]}],
        "managingOrganization": {"reference": ""}});
    let e = extract(&p);
    assert!(of(&e, "birthdate").is_empty());
    assert!(of(&e, "_lastUpdated").is_empty());
    assert!(of(&e, "family").is_empty());
    assert!(of(&e, "gender").is_empty());
    assert!(of(&e, "organization").is_empty());
    assert_eq!(owned(of(&e, "_id")), vec![code("7")]);
    assert_eq!(
        owned(of(&e, "name")),
        vec![string("not-a-name", "not-a-name")]
    );
}

/// Every search parameter of every type, evaluated over elements of every wrong shape: nothing
/// panics, and nothing wrong-shaped is indexed as a date.
#[test]
fn odd_shapes_never_panic() {
    use oxmed_fhir::search_parameter::SearchParameters;
    let shapes = [
        json!(null),
        json!(true),
        json!(-1.5),
        json!(""),
        json!("x"),
        json!("2020-01-01"),
        json!([]),
        json!([null, 1, "a", {}]),
        json!({}),
        json!({"reference": 5, "type": 3}),
        json!({"reference": "#missing"}),
        json!({"start": 5, "end": "2020"}),
        json!({"coding": "x", "text": 1}),
        json!({"coding": [1, {"system": 2, "code": []}]}),
        json!({"value": "x", "type": {"coding": {}}}),
        json!({"value": 1e308, "currency": 4}),
        json!({"low": 1, "high": {"value": "x"}}),
        json!({"event": [1, "bad"], "repeat": {"boundsPeriod": []}}),
        json!({"resourceType": 1, "id": {}}),
        json!({"extension": [{"url": 1}, {"url": "u", "valueCoding": 3}]}),
    ];
    let registry = SearchParameters::global();
    let mut types: Vec<&str> = registry.resource_types().collect();
    types.sort_unstable();
    let mut runs = 0;
    for t in types {
        let mut names: Vec<String> = Vec::new();
        for p in registry.for_type(t) {
            let sources = p
                .expression
                .iter()
                .map(|e| e.source())
                .chain(p.components.iter().map(|c| c.expression.source()));
            for source in sources {
                for word in source.split(|c: char| !c.is_ascii_alphanumeric()) {
                    if word.starts_with(|c: char| c.is_ascii_lowercase()) {
                        names.push(word.to_string());
                        // Choice variants too.
                        for suffix in ["Quantity", "Period", "DateTime", "CodeableConcept", "Range"]
                        {
                            names.push(format!("{word}{suffix}"));
                        }
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        for shape in &shapes {
            let mut resource = serde_json::Map::new();
            for name in &names {
                resource.insert(name.clone(), shape.clone());
            }
            resource.insert("resourceType".into(), json!(t));
            let entries = extract(&Value::Object(resource));
            runs += 1;
            for e in &entries {
                if let IndexValue::Date { start, end } = e.value {
                    // The only valid date among the shapes.
                    let day = parse_date_range("2020-01-01").unwrap_or_default();
                    let year = parse_date_range("2020").unwrap_or_default();
                    assert!(
                        (start, end) == day
                            || (start, end) == year
                            || (end == i64::MAX && start == day.0)
                            || (start == i64::MIN && end == year.1),
                        "{t} {}: {:?} from {shape}",
                        e.code,
                        e.value
                    );
                }
            }
        }
    }
    assert!(runs > 3000, "{runs}");
}

#[test]
fn repeated_values_are_indexed_once() {
    let p = json!({"resourceType": "Patient", "name": [
        {"family": "Doe", "given": ["Anne"]},
        {"family": "Doe", "given": ["Anne", "Marie"]}
    ], "identifier": [{"system": "s", "value": "1"}, {"system": "s", "value": "1"}]});
    let e = extract(&p);
    assert_eq!(
        owned(of(&e, "given")),
        vec![string("anne", "Anne"), string("marie", "Marie")]
    );
    assert_eq!(of(&e, "identifier").len(), 1);

    // Large arrays take the hashed path; order of first occurrence is kept.
    let members: Vec<Value> = (0..5000)
        .map(|i| json!({"entity": {"reference": format!("Patient/{}", i % 4000)}}))
        .collect();
    let g = json!({"resourceType": "Group", "type": "person", "actual": true, "member": members});
    let e = extract(&g);
    let refs = of(&e, "member");
    assert_eq!(refs.len(), 4000);
    assert_eq!(refs[0], &reference("Patient/0", Some(("Patient", "0"))));
    assert_eq!(
        refs[3999],
        &reference("Patient/3999", Some(("Patient", "3999")))
    );
}
