//! Each validation rule, one resource breaking it, and where and how the issue is reported.

use oxmed_fhir::validation::{IssueCode, MAX_ISSUES, ValidationIssue, validate};
use serde_json::{Value, json};

fn issues(resource: &Value) -> Vec<ValidationIssue> {
    match validate(resource) {
        Ok(()) => panic!("expected issues for {resource}"),
        Err(issues) => issues,
    }
}

/// The resource has exactly one issue, at `path` with `code`.
#[track_caller]
fn assert_single(resource: Value, path: &str, code: IssueCode) {
    let found = issues(&resource);
    assert!(
        found.len() == 1 && found[0].path == path && found[0].code == code,
        "expected one {code} issue at {path}, got {found:#?}"
    );
}

/// Among the issues there is one at `path` with `code`.
#[track_caller]
fn assert_has(found: &[ValidationIssue], path: &str, code: IssueCode) {
    assert!(
        found.iter().any(|i| i.path == path && i.code == code),
        "expected a {code} issue at {path}, got {found:#?}"
    );
}

#[track_caller]
fn assert_valid(resource: Value) {
    if let Err(issues) = validate(&resource) {
        panic!("expected {resource} to be valid, got {issues:#?}");
    }
}

#[test]
fn a_valid_patient_passes() {
    assert_valid(json!({
        "resourceType": "Patient",
        "id": "example-1.a",
        "meta": {"versionId": "1", "lastUpdated": "2024-01-02T03:04:05.678Z",
                 "project": "0f6b2c3e-2a55-4b1d-9c1e-7d7f2b1f0a11", "author": {"reference": "Practitioner/1"}},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jo</div>"},
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
        "active": true,
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
            "valueDateTime": "1974-12-25T14:35:45-05:00"
        }]},
        "deceasedBoolean": false,
        "multipleBirthInteger": 2,
        "contact": [{"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}],
                     "name": {"family": "du Marché"}}]
    }));
}

#[test]
fn not_an_object() {
    assert_single(json!(["Patient"]), "Resource", IssueCode::Structure);
}

#[test]
fn missing_resource_type() {
    assert_single(json!({"id": "1"}), "resourceType", IssueCode::Required);
}

#[test]
fn unknown_resource_type() {
    assert_single(
        json!({"resourceType": "Patiënt"}),
        "resourceType",
        IssueCode::Value,
    );
    // Abstract types and data types are not resources.
    assert_single(
        json!({"resourceType": "DomainResource"}),
        "resourceType",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "HumanName"}),
        "resourceType",
        IssueCode::Value,
    );
}

#[test]
fn bad_id() {
    assert_single(
        json!({"resourceType": "Patient", "id": "a_b"}),
        "Patient.id",
        IssueCode::Value,
    );
    let long = "a".repeat(65);
    assert_single(
        json!({"resourceType": "Patient", "id": long}),
        "Patient.id",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "id": 1}),
        "Patient.id",
        IssueCode::Structure,
    );
}

#[test]
fn unknown_element() {
    assert_single(
        json!({"resourceType": "Patient", "foo": 1}),
        "Patient.foo",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": [{"family": "x", "middle": "y"}]}),
        "Patient.name[0].middle",
        IssueCode::Structure,
    );
    // `resourceType` belongs to resources only.
    assert_single(
        json!({"resourceType": "Patient", "name": [{"resourceType": "HumanName", "family": "x"}]}),
        "Patient.name[0].resourceType",
        IssueCode::Structure,
    );
}

#[test]
fn code_not_in_required_value_set() {
    let found = issues(&json!({"resourceType": "Patient", "gender": "bogus"}));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "Patient.gender");
    assert_eq!(found[0].code, IssueCode::CodeInvalid);
    assert!(
        found[0].message.contains("female, male, other, unknown"),
        "{}",
        found[0].message
    );
    // Codes are case-sensitive.
    assert_single(
        json!({"resourceType": "Patient", "gender": "Male"}),
        "Patient.gender",
        IssueCode::CodeInvalid,
    );
    // A bound code inside a data type.
    assert_single(
        json!({"resourceType": "Patient", "name": [{"use": "nick", "family": "x"}]}),
        "Patient.name[0].use",
        IssueCode::CodeInvalid,
    );
}

#[test]
fn codeable_concept_binding_checks_codings_of_the_bound_system_only() {
    let condition = |system: &str, code: &str| {
        json!({
            "resourceType": "Condition",
            "subject": {"reference": "Patient/1"},
            "clinicalStatus": {"coding": [
                {"system": "http://snomed.info/sct", "code": "55561003"},
                {"system": system, "code": code}
            ]}
        })
    };
    let bound = "http://terminology.hl7.org/CodeSystem/condition-clinical";
    assert_valid(condition(bound, "active"));
    assert_valid(condition("http://example.org/local", "whatever"));
    assert_single(
        condition(bound, "bogus"),
        "Condition.clinicalStatus.coding[1].code",
        IssueCode::CodeInvalid,
    );
}

#[test]
fn unexpandable_value_sets_are_not_checked() {
    // mimetypes (BCP 13) cannot be enumerated offline.
    assert_valid(json!({"resourceType": "Binary", "contentType": "application/x-anything-goes"}));
}

#[test]
fn date_format() {
    assert_single(
        json!({"resourceType": "Patient", "birthDate": "2020-13-01"}),
        "Patient.birthDate",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "birthDate": "2021-02-29"}),
        "Patient.birthDate",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "birthDate": "2020-01-01T00:00:00Z"}),
        "Patient.birthDate",
        IssueCode::Value,
    );
    assert_valid(json!({"resourceType": "Patient", "birthDate": "2020-02"}));
    assert_single(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "effectiveDateTime": "2020-01-01T10:00"}),
        "Observation.effectiveDateTime",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "issued": "2020-01-01"}),
        "Observation.issued",
        IssueCode::Value,
    );
}

#[test]
fn json_kind_of_primitives() {
    assert_single(
        json!({"resourceType": "Patient", "active": "true"}),
        "Patient.active",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "multipleBirthInteger": "2"}),
        "Patient.multipleBirthInteger",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "multipleBirthInteger": 2.5}),
        "Patient.multipleBirthInteger",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "telecom": [{"value": "1", "rank": 0}]}),
        "Patient.telecom[0].rank",
        IssueCode::Value,
    );
    let observation = |value: Value| json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": value}});
    assert_valid(observation(json!(1.5e3)));
    assert_single(
        observation(json!("1.5")),
        "Observation.valueQuantity.value",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": [{"family": 42}]}),
        "Patient.name[0].family",
        IssueCode::Structure,
    );
}

#[test]
fn lexical_rules_of_primitives() {
    let with_meta = |meta: Value| json!({"resourceType": "Patient", "meta": meta});
    assert_single(
        with_meta(json!({"source": "has space"})),
        "Patient.meta.source",
        IssueCode::Value,
    );
    assert_single(
        with_meta(json!({"versionId": "1/2"})),
        "Patient.meta.versionId",
        IssueCode::Value,
    );
    assert_single(
        with_meta(json!({"tag": [{"code": " padded"}]})),
        "Patient.meta.tag[0].code",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "photo": [{"data": "not base64!"}]}),
        "Patient.photo[0].data",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "text": {"status": "generated", "div": "plain text"}}),
        "Patient.text.div",
        IssueCode::Value,
    );
}

#[test]
fn arrays_and_single_values() {
    assert_single(
        json!({"resourceType": "Patient", "gender": ["male"]}),
        "Patient.gender",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": {"family": "x"}}),
        "Patient.name",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": [{"given": "Peter"}]}),
        "Patient.name[0].given",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": [{"given": ["Peter", 3]}]}),
        "Patient.name[0].given[1]",
        IssueCode::Structure,
    );
}

#[test]
fn missing_required_elements() {
    let found = issues(&json!({"resourceType": "Observation"}));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_has(&found, "Observation.status", IssueCode::Required);
    assert_has(&found, "Observation.code", IssueCode::Required);
    // Inside a backbone element.
    assert_single(
        json!({"resourceType": "Patient", "link": [{"type": "seealso"}]}),
        "Patient.link[0].other",
        IssueCode::Required,
    );
    // A primitive present only through its extensions counts as present.
    assert_valid(json!({
        "resourceType": "Observation",
        "_status": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]},
        "code": {"text": "x"}
    }));
}

#[test]
fn choice_types() {
    let base = || json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
    let with = |key: &str, value: Value| {
        let mut o = base();
        o[key] = value;
        o
    };
    assert_valid(with("valueQuantity", json!({"value": 1, "unit": "mg"})));
    assert_valid(with("valueString", json!("x")));

    let mut two = with("valueString", json!("x"));
    two["valueBoolean"] = json!(true);
    assert_single(two, "Observation.valueBoolean", IssueCode::Structure);

    assert_single(
        with("valueFoo", json!("x")),
        "Observation.valueFoo",
        IssueCode::Structure,
    );
    // A real data type, but not one of value[x]'s.
    assert_single(
        with("valueHumanName", json!({"family": "x"})),
        "Observation.valueHumanName",
        IssueCode::Structure,
    );
    // The bare choice name is not a JSON property.
    assert_single(
        with("value", json!("x")),
        "Observation.value",
        IssueCode::Structure,
    );
    // The extensions of one variant next to the value of another.
    let mut mismatched = with("valueString", json!("x"));
    mismatched["_valueBoolean"] = json!({"id": "a"});
    assert_single(mismatched, "Observation.valueBoolean", IssueCode::Structure);
}

#[test]
fn contained_resources() {
    let found = issues(&json!({
        "resourceType": "Patient",
        "contained": [
            {"resourceType": "Organization", "id": "org", "name": "Acme"},
            {"resourceType": "Observation", "id": "obs", "code": {"text": "x"}, "gender": "male"}
        ],
        "managingOrganization": {"reference": "#org"}
    }));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_has(&found, "Patient.contained[1].status", IssueCode::Required);
    assert_has(&found, "Patient.contained[1].gender", IssueCode::Structure);

    assert_single(
        json!({"resourceType": "Patient", "contained": [{"id": "x"}]}),
        "Patient.contained[0].resourceType",
        IssueCode::Required,
    );
    assert_single(
        json!({"resourceType": "Patient", "contained": [{"resourceType": "Nope"}]}),
        "Patient.contained[0].resourceType",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "contained": [{"resourceType": "Patient", "gender": "bogus"}]}),
        "Patient.contained[0].gender",
        IssueCode::CodeInvalid,
    );
    // dom-2
    assert_single(
        json!({"resourceType": "Patient", "contained": [
            {"resourceType": "Patient", "contained": [{"resourceType": "Patient", "active": true}]}
        ]}),
        "Patient.contained[0].contained",
        IssueCode::Invariant,
    );
}

#[test]
fn bundle_and_parameters_resources() {
    assert_single(
        json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162", "resource": {"resourceType": "Patient", "active": true}},
            {"resource": {"resourceType": "Patient", "birthDate": "2020-13-01"}}
        ]}),
        "Bundle.entry[1].resource.birthDate",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"response": {"status": "200", "outcome": {"resourceType": "Patient"}}}
        ]}),
        "Bundle.entry[0].response.outcome.resourceType",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "a", "part": [{"name": "b", "resource": {"resourceType": "Patient", "gender": "x"}}]}
        ]}),
        "Parameters.parameter[0].part[0].resource.gender",
        IssueCode::CodeInvalid,
    );
}

#[test]
fn content_reference_recursion() {
    let item = |inner: Value| json!({"linkId": "1", "type": "group", "item": [inner]});
    let leaf = json!({"linkId": "1.1.1", "type": "not-a-type"});
    assert_single(
        json!({"resourceType": "Questionnaire", "status": "active", "item": [item(item(leaf))]}),
        "Questionnaire.item[0].item[0].item[0].type",
        IssueCode::CodeInvalid,
    );
    assert_single(
        json!({"resourceType": "Questionnaire", "status": "active", "item": [item(json!({"type": "display"}))]}),
        "Questionnaire.item[0].item[0].linkId",
        IssueCode::Required,
    );
}

#[test]
fn extensions() {
    let patient = |ext: Value| json!({"resourceType": "Patient", "extension": [ext]});
    assert_valid(patient(
        json!({"url": "http://example.org/a", "valueString": "x"}),
    ));
    assert_valid(patient(
        json!({"url": "http://example.org/a", "extension": [
            {"url": "b", "valueCodeableConcept": {"text": "nested"}}
        ]}),
    ));
    assert_single(
        patient(json!({"valueString": "x"})),
        "Patient.extension[0].url",
        IssueCode::Required,
    );
    assert_single(
        patient(json!({"url": "http://example.org/a", "valueString": "x", "valueBoolean": true})),
        "Patient.extension[0].valueBoolean",
        IssueCode::Structure,
    );
    assert_single(
        patient(json!({"url": "http://example.org/a"})),
        "Patient.extension[0]",
        IssueCode::Invariant,
    );
    assert_single(
        patient(
            json!({"url": "http://example.org/a", "valueString": "x", "extension": [{"url": "b", "valueString": "y"}]}),
        ),
        "Patient.extension[0]",
        IssueCode::Invariant,
    );
    assert_single(
        patient(
            json!({"url": "http://example.org/a", "extension": [{"url": "b", "valueString": ""}]}),
        ),
        "Patient.extension[0].extension[0].valueString",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "modifierExtension": [{"url": "http://example.org/m"}]}),
        "Patient.modifierExtension[0]",
        IssueCode::Invariant,
    );
    // Extension.url is an XML attribute and has no `_url`.
    assert_single(
        patient(json!({"url": "http://example.org/a", "valueString": "x", "_url": {"id": "u"}})),
        "Patient.extension[0]._url",
        IssueCode::Structure,
    );
}

#[test]
fn primitive_extensions() {
    let ext = json!({"url": "http://example.org/e", "valueString": "x"});
    assert_valid(json!({"resourceType": "Patient", "_gender": {"extension": [ext]}}));
    assert_valid(json!({"resourceType": "Patient", "name": [{
        "given": ["a", null, "c"],
        "_given": [null, {"extension": [ext]}, {"id": "g3"}]
    }]}));
    assert_single(
        json!({"resourceType": "Patient", "name": [{"given": ["a", null]}]}),
        "Patient.name[0].given[1]",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": [{"given": ["a", null], "_given": [{"id": "x"}, null]}]}),
        "Patient.name[0].given[1]",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": [{"given": ["a", "b"], "_given": [{"id": "x"}]}]}),
        "Patient.name[0].given",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "_active": "yes"}),
        "Patient.active",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "_active": {"foo": 1}}),
        "Patient.active.foo",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Patient", "_birthDate": {"extension": [{"url": "http://example.org/e"}]}}),
        "Patient.birthDate.extension[0]",
        IssueCode::Invariant,
    );
    // Nor for xhtml, which cannot have extensions.
    assert_single(
        json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>x</div>", "_div": {"id": "d"}}}),
        "Patient.text._div",
        IssueCode::Structure,
    );
    // No companion for complex types.
    assert_single(
        json!({"resourceType": "Patient", "_name": [{"id": "x"}]}),
        "Patient._name",
        IssueCode::Structure,
    );
}

#[test]
fn null_and_empty_values() {
    assert_single(
        json!({"resourceType": "Patient", "gender": null}),
        "Patient.gender",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "gender": ""}),
        "Patient.gender",
        IssueCode::Value,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": []}),
        "Patient.name",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": [{}]}),
        "Patient.name[0]",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "name": [null]}),
        "Patient.name[0]",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "maritalStatus": {}}),
        "Patient.maritalStatus",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "maritalStatus": null}),
        "Patient.maritalStatus",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "contained": [{}]}),
        "Patient.contained[0]",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "_gender": null}),
        "Patient.gender",
        IssueCode::Invalid,
    );
    assert_single(
        json!({"resourceType": "Patient", "_gender": {}}),
        "Patient.gender",
        IssueCode::Invalid,
    );
}

#[test]
fn all_issues_are_collected_up_to_a_cap() {
    let found = issues(&json!({
        "resourceType": "Patient",
        "id": "bad id",
        "gender": "bogus",
        "birthDate": "2020-13-01",
        "active": "true",
        "foo": 1
    }));
    assert_eq!(found.len(), 5, "{found:#?}");

    let mut patient = serde_json::Map::new();
    patient.insert("resourceType".into(), json!("Patient"));
    for i in 0..500 {
        patient.insert(format!("unknown{i}"), json!(i));
    }
    let found = issues(&Value::Object(patient));
    assert_eq!(found.len(), MAX_ISSUES + 1);
    assert_eq!(found[MAX_ISSUES].code, IssueCode::TooCostly);
}

#[test]
fn issue_codes_map_to_fhir_issue_types() {
    assert_eq!(IssueCode::CodeInvalid.as_str(), "code-invalid");
    assert_eq!(IssueCode::Structure.to_string(), "structure");
}
