//! Search semantics, on both backends: exact result sets per parameter type, modifier and
//! prefix, chains, `_has`, compartments, includes, restrictions and project isolation. Every
//! filter checked here is also run through the in-memory matcher (`search::matching`), which
//! must agree with the SQL on every resource.

mod common;

use common::*;
use oxmed_fhir::search::{
    Clause, Condition, Prefix, Restriction, SearchRequest, TokenKind, UriTest,
};
use serde_json::{Value, json};

const A: &str = "project-a";
const B: &str = "project-b";

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

fn fixture() -> Vec<Value> {
    vec![
        json!({"resourceType": "Patient", "id": "p1", "active": true, "gender": "female",
            "birthDate": "1980-05-12",
            "name": [{"family": "Müller", "given": ["Anna", "Maria"]}],
            "identifier": [{"system": "http://hospital/mrn", "value": "123",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "Medical record"}}],
            "managingOrganization": {"reference": "Organization/org1"},
            "generalPractitioner": [{"reference": "Practitioner/pr1"}]}),
        json!({"resourceType": "Patient", "id": "p2", "active": false, "gender": "male",
            "birthDate": "1975",
            "name": [{"family": "Smith", "given": ["John", "Jacob"]}],
            "identifier": [{"value": "456"}, {"system": "http://other", "value": "123"}]}),
        json!({"resourceType": "Patient", "id": "p3", "gender": "other",
            "name": [{"text": "Éloïse Dupont", "family": "Dupont"}],
            "managingOrganization": {"reference": "Organization/org2"},
            "link": [{"other": {"reference": "Patient/p1"}, "type": "seealso"}]}),
        json!({"resourceType": "Patient", "id": "p4", "birthDate": "2000-01-01"}),
        json!({"resourceType": "Organization", "id": "org1", "name": "Acme Hospital",
            "partOf": {"reference": "Organization/org2"}}),
        json!({"resourceType": "Organization", "id": "org2", "name": "Acme Group",
            "partOf": {"reference": "Organization/org1"}}),
        json!({"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "House"}]}),
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2020-03-04T10:00:00+02:00",
            "valueQuantity": {"value": 72, "unit": "beats/minute", "system": UCUM, "code": "/min"}}),
        json!({"resourceType": "Observation", "id": "o2", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-6", "display": "Blood pressure"}], "text": "BP panel"},
            "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {"start": "2020-03-01", "end": "2020-03-10"},
            "component": [
                {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                 "valueQuantity": {"value": 120, "system": UCUM, "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                 "valueQuantity": {"value": 80, "system": UCUM, "code": "mm[Hg]"}}]}),
        json!({"resourceType": "Observation", "id": "o3", "status": "preliminary",
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
            "subject": {"reference": "Patient/p2"},
            "effectiveDateTime": "2021",
            "valueQuantity": {"value": 100.5, "unit": "/min"}}),
        json!({"resourceType": "Observation", "id": "o4", "status": "amended",
            "code": {"coding": [{"system": LOINC, "code": "1234-5"}, {"system": "http://local", "code": "X1"}]},
            "subject": {"reference": "http://example.org/fhir/Patient/p3"},
            "effectiveDateTime": "2020-03-04",
            "valueString": "Positive result"}),
        json!({"resourceType": "Observation", "id": "o5", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "1234-5"}]},
            "subject": {"reference": "Patient/p2"},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009", "display": "Negative"}]}}),
        json!({"resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
            "code": {"text": "Panel"}, "subject": {"reference": "Patient/p1"},
            "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"}]}),
        json!({"resourceType": "DiagnosticReport", "id": "dr2", "status": "final",
            "code": {"text": "Other"}, "subject": {"reference": "Patient/p2"},
            "result": [{"reference": "Observation/o3"}]}),
        json!({"resourceType": "RiskAssessment", "id": "ra1", "status": "final",
            "subject": {"reference": "Patient/p1"}, "prediction": [{"probabilityDecimal": 0.25}]}),
        json!({"resourceType": "RiskAssessment", "id": "ra2", "status": "final",
            "subject": {"reference": "Patient/p2"},
            "prediction": [{"probabilityDecimal": 0.8}, {"probabilityDecimal": 0.1}]}),
        json!({"resourceType": "RiskAssessment", "id": "ra3", "status": "final",
            "subject": {"reference": "Patient/p3"}}),
        json!({"resourceType": "ValueSet", "id": "vs1", "status": "active", "url": "http://acme.org/fhir/ValueSet/123"}),
        json!({"resourceType": "ValueSet", "id": "vs2", "status": "active", "url": "http://acme.org/fhir/ValueSet/456/x"}),
        json!({"resourceType": "ValueSet", "id": "vs3", "status": "active", "url": "http://acme.org/fhirx"}),
        json!({"resourceType": "ValueSet", "id": "vs4", "status": "active", "url": "http://acme.org/fhir"}),
    ]
}

/// Project B: its own Patient with the same name as p1, and an Observation that refers to
/// project A's Patient p4 by id.
fn other_project() -> Vec<Value> {
    vec![
        json!({"resourceType": "Patient", "id": "pb1", "gender": "female",
            "name": [{"family": "Müller"}], "birthDate": "1980-05-12"}),
        json!({"resourceType": "Observation", "id": "ob1", "status": "final",
            "code": {"coding": [{"system": "http://iso", "code": "ISO-1"}]},
            "subject": {"reference": "Patient/p4"}}),
        json!({"resourceType": "DiagnosticReport", "id": "drb1", "status": "final",
            "code": {"text": "B"}, "subject": {"reference": "Patient/p1"},
            "result": [{"reference": "Observation/o1"}]}),
    ]
}

async fn seed(db: &Db) {
    for r in fixture() {
        put(&db.store, A, r).await;
    }
    for r in other_project() {
        put(&db.store, B, r).await;
    }
}

/// The fixture ids of a type in project A.
fn fixture_ids(resource_type: &str) -> Vec<String> {
    fixture()
        .iter()
        .filter(|r| r["resourceType"] == resource_type)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts the matches of `clauses` in project A, and that the in-memory matcher agrees on
/// every resource of the type.
async fn check(db: &Db, resource_type: &str, clauses: Vec<Clause>, expected: &[&str]) {
    let moved = db.reads_moved();
    let found = find(db, A, resource_type, clauses.clone()).await;
    assert_eq!(found, sorted(expected), "{resource_type} {clauses:?}");
    if db.offloaded {
        assert!(
            db.reads_moved() > moved,
            "the search did not move off the worker"
        );
    }
    let by_sql = db
        .store
        .matching_ids(A, resource_type, &clauses, None)
        .await
        .unwrap();
    let mut by_sql_sorted = by_sql.clone();
    by_sql_sorted.sort();
    assert_eq!(by_sql_sorted, found, "matching_ids differs from search");
    let needs_others = clauses.iter().any(|c| {
        c.any
            .iter()
            .any(|c| matches!(c, Condition::Chain { .. } | Condition::Has { .. }))
    });
    if needs_others {
        return;
    }
    for id in fixture_ids(resource_type) {
        let stored = db.store.read(resource_type, &id).await.unwrap().unwrap();
        let resource: Value = serde_json::from_str(&stored.content).unwrap();
        let in_memory = oxmed_fhir::search::matching::matches(&resource, &clauses).unwrap();
        assert_eq!(
            in_memory,
            found.contains(&id),
            "SQL and in-memory matching disagree on {resource_type}/{id} for {clauses:?}"
        );
    }
}

fn p(code: &str, test: oxmed_fhir::search::Test) -> Clause {
    one(param(code, test))
}

both!(strings_prefix_contains_exact, |db| async move {
    seed(&db).await;
    check(&db, "Patient", vec![p("name", starts("mull"))], &["p1"]).await;
    check(&db, "Patient", vec![p("name", starts("MÜ"))], &["p1"]).await;
    check(&db, "Patient", vec![p("name", starts("el"))], &["p3"]).await;
    check(&db, "Patient", vec![p("name", starts("xyz"))], &[]).await;
    check(&db, "Patient", vec![p("given", starts("ja"))], &["p2"]).await;
    check(&db, "Patient", vec![p("given", starts("ma"))], &["p1"]).await;
    check(&db, "Patient", vec![p("name", contains("LL"))], &["p1"]).await;
    check(&db, "Patient", vec![p("name", contains("on"))], &["p3"]).await;
    check(&db, "Patient", vec![p("name", exact("Müller"))], &["p1"]).await;
    check(&db, "Patient", vec![p("name", exact("müller"))], &[]).await;
    check(&db, "Patient", vec![p("name", exact("Muller"))], &[]).await;
    // OR inside a clause, AND across clauses.
    check(
        &db,
        "Patient",
        vec![any(vec![
            param("name", starts("smi")),
            param("name", starts("dup")),
        ])],
        &["p2", "p3"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("name", starts("smi")), p("given", starts("anna"))],
        &[],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p("value-string", starts("pos"))],
        &["o4"],
    )
    .await;
});

both!(tokens_systems_not_text_of_type, |db| async move {
    seed(&db).await;
    check(
        &db,
        "Patient",
        vec![p("gender", tok(None, "male"))],
        &["p2"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("gender", token(TokenKind::Not, None, Some("male")))],
        &["p1", "p3", "p4"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![
            p("gender", token(TokenKind::Not, None, Some("male"))),
            p("gender", token(TokenKind::Not, None, Some("female"))),
        ],
        &["p3", "p4"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("identifier", tok(Some("http://hospital/mrn"), "123"))],
        &["p1"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("identifier", tok(None, "123"))],
        &["p1", "p2"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("identifier", tok(Some(""), "456"))],
        &["p2"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("identifier", tok(Some(""), "123"))],
        &[],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p(
            "identifier",
            token(TokenKind::Eq, Some("http://other"), None),
        )],
        &["p2"],
    )
    .await;
    // :not on a multi-valued element: no value may match.
    check(
        &db,
        "Patient",
        vec![p("identifier", token(TokenKind::Not, None, Some("123")))],
        &["p3", "p4"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("identifier", token(TokenKind::Not, None, Some("456")))],
        &["p1", "p3", "p4"],
    )
    .await;
    let of_type = |value: &str| {
        token(
            TokenKind::OfType {
                value: value.to_owned(),
            },
            Some("http://terminology.hl7.org/CodeSystem/v2-0203"),
            Some("MR"),
        )
    };
    check(
        &db,
        "Patient",
        vec![p("identifier", of_type("123"))],
        &["p1"],
    )
    .await;
    check(&db, "Patient", vec![p("identifier", of_type("456"))], &[]).await;
    check(
        &db,
        "Patient",
        vec![p("active", tok(None, "true"))],
        &["p1"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("active", token(TokenKind::Not, None, Some("true")))],
        &["p2", "p3", "p4"],
    )
    .await;
    let text = |s: &str| {
        token(
            TokenKind::Text,
            None,
            Some(&oxmed_fhir::index::normalize_string(s)),
        )
    };
    check(&db, "Observation", vec![p("code", text("Heart"))], &["o1"]).await;
    check(&db, "Observation", vec![p("code", text("bp"))], &["o2"]).await;
    check(&db, "Observation", vec![p("code", text("blood"))], &["o2"]).await;
    check(
        &db,
        "Observation",
        vec![p("code", tok(Some(LOINC), "8867-4"))],
        &["o1", "o3"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p("code", tok(None, "X1"))],
        &["o4"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p("code", token(TokenKind::Eq, Some("http://local"), None))],
        &["o4"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p(
            "code",
            token(TokenKind::Not, Some(LOINC), Some("8867-4")),
        )],
        &["o2", "o4", "o5"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p("value-concept", tok(None, "260385009"))],
        &["o5"],
    )
    .await;
});

both!(references_local_bare_and_absolute, |db| async move {
    seed(&db).await;
    check(
        &db,
        "Observation",
        vec![p("subject", reference(Some("Patient"), "p1"))],
        &["o1", "o2"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p("subject", reference(None, "p1"))],
        &["o1", "o2"],
    )
    .await;
    // A local search matches an absolute reference ending in Type/id.
    check(
        &db,
        "Observation",
        vec![p("subject", reference(Some("Patient"), "p3"))],
        &["o4"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p("subject", url("http://example.org/fhir/Patient/p3"))],
        &["o4"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p("subject", url("http://other.org/fhir/Patient/p3"))],
        &[],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p("subject", reference(Some("Group"), "p1"))],
        &[],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![p("link", reference(Some("Patient"), "p1"))],
        &["p3"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![
            p("subject", reference(Some("Patient"), "p1")),
            p("code", tok(Some(LOINC), "8867-4")),
        ],
        &["o1"],
    )
    .await;
});

both!(
    dates_with_precision_timezones_and_prefixes,
    |db| async move {
        seed(&db).await;
        let bd = |prefix, v: &str| vec![p("birthdate", date(prefix, v))];
        check(&db, "Patient", bd(Prefix::Eq, "1980"), &["p1"]).await;
        check(&db, "Patient", bd(Prefix::Eq, "1980-05"), &["p1"]).await;
        check(&db, "Patient", bd(Prefix::Eq, "1980-05-12"), &["p1"]).await;
        // A stored day is not within a searched second.
        check(&db, "Patient", bd(Prefix::Eq, "1980-05-12T10:00:00Z"), &[]).await;
        check(&db, "Patient", bd(Prefix::Eq, "1975"), &["p2"]).await;
        // A stored year is not within a searched month.
        check(&db, "Patient", bd(Prefix::Eq, "1975-06"), &[]).await;
        check(&db, "Patient", bd(Prefix::Gt, "1979"), &["p1", "p4"]).await;
        check(&db, "Patient", bd(Prefix::Ge, "1980"), &["p1", "p4"]).await;
        check(&db, "Patient", bd(Prefix::Lt, "1980"), &["p2"]).await;
        check(&db, "Patient", bd(Prefix::Le, "1980"), &["p1", "p2"]).await;
        check(&db, "Patient", bd(Prefix::Sa, "1980"), &["p4"]).await;
        check(&db, "Patient", bd(Prefix::Eb, "1980"), &["p2"]).await;
        // ne holds for a resource without the element.
        check(&db, "Patient", bd(Prefix::Ne, "1980"), &["p2", "p3", "p4"]).await;
        let ap = find(&db, A, "Patient", bd(Prefix::Ap, "1980-05-12")).await;
        assert!(
            ap.contains(&"p1".to_owned()) && !ap.contains(&"p4".to_owned()),
            "{ap:?}"
        );

        let d = |prefix, v: &str| vec![p("date", date(prefix, v))];
        // 10:00+02:00 is 08:00Z.
        check(
            &db,
            "Observation",
            d(Prefix::Eq, "2020-03-04T08:00:00Z"),
            &["o1"],
        )
        .await;
        check(
            &db,
            "Observation",
            d(Prefix::Eq, "2020-03-04T10:00:00+02:00"),
            &["o1"],
        )
        .await;
        check(
            &db,
            "Observation",
            d(Prefix::Eq, "2020-03-04T10:00:00Z"),
            &[],
        )
        .await;
        check(
            &db,
            "Observation",
            d(Prefix::Eq, "2020-03-04T12:00:00+05:00"),
            &[],
        )
        .await;
        check(
            &db,
            "Observation",
            d(Prefix::Eq, "2020-03-04"),
            &["o1", "o4"],
        )
        .await;
        check(
            &db,
            "Observation",
            d(Prefix::Eq, "2020-03"),
            &["o1", "o2", "o4"],
        )
        .await;
        check(
            &db,
            "Observation",
            d(Prefix::Gt, "2020-03-05"),
            &["o2", "o3"],
        )
        .await;
        check(&db, "Observation", d(Prefix::Lt, "2020-03-02"), &["o2"]).await;
        check(&db, "Observation", d(Prefix::Ne, "2020-03"), &["o3", "o5"]).await;
        check(
            &db,
            "Observation",
            d(Prefix::Le, "2020-03-04"),
            &["o1", "o2", "o4"],
        )
        .await;
        check(
            &db,
            "Observation",
            d(Prefix::Ge, "2020-03-04"),
            &["o1", "o2", "o3", "o4"],
        )
        .await;
    }
);

both!(numbers_and_quantities_with_prefixes, |db| async move {
    seed(&db).await;
    let pr = |prefix, v: &str| vec![p("probability", number(prefix, v))];
    check(&db, "RiskAssessment", pr(Prefix::Eq, "0.25"), &["ra1"]).await;
    check(&db, "RiskAssessment", pr(Prefix::Eq, "0.8"), &["ra2"]).await;
    check(&db, "RiskAssessment", pr(Prefix::Eq, "0.1"), &["ra2"]).await;
    // Precision: 0.3 is [0.25, 0.35).
    check(&db, "RiskAssessment", pr(Prefix::Eq, "0.3"), &["ra1"]).await;
    check(&db, "RiskAssessment", pr(Prefix::Gt, "0.5"), &["ra2"]).await;
    check(&db, "RiskAssessment", pr(Prefix::Lt, "0.2"), &["ra2"]).await;
    check(
        &db,
        "RiskAssessment",
        pr(Prefix::Ge, "0.25"),
        &["ra1", "ra2"],
    )
    .await;
    check(&db, "RiskAssessment", pr(Prefix::Le, "0.1"), &["ra2"]).await;
    check(
        &db,
        "RiskAssessment",
        pr(Prefix::Ne, "0.25"),
        &["ra2", "ra3"],
    )
    .await;
    // ne on a multi-valued element: ra2 has 0.1, so it is out although 0.8 is not 0.1.
    check(
        &db,
        "RiskAssessment",
        pr(Prefix::Ne, "0.1"),
        &["ra1", "ra3"],
    )
    .await;
    check(&db, "RiskAssessment", pr(Prefix::Sa, "0.25"), &["ra2"]).await;
    check(&db, "RiskAssessment", pr(Prefix::Eb, "0.25"), &["ra2"]).await;
    check(&db, "RiskAssessment", pr(Prefix::Ap, "0.26"), &["ra1"]).await;

    let q = |prefix, v: &str, s: Option<&str>, c: Option<&str>| {
        vec![p("value-quantity", quantity(prefix, v, s, c))]
    };
    check(&db, "Observation", q(Prefix::Eq, "72", None, None), &["o1"]).await;
    check(
        &db,
        "Observation",
        q(Prefix::Eq, "72", Some(UCUM), Some("/min")),
        &["o1"],
    )
    .await;
    check(
        &db,
        "Observation",
        q(Prefix::Eq, "72", None, Some("/min")),
        &["o1"],
    )
    .await;
    check(
        &db,
        "Observation",
        q(Prefix::Eq, "72", Some(UCUM), None),
        &["o1"],
    )
    .await;
    // Without a system the unit text matches too.
    check(
        &db,
        "Observation",
        q(Prefix::Eq, "100.5", None, Some("/min")),
        &["o3"],
    )
    .await;
    check(
        &db,
        "Observation",
        q(Prefix::Eq, "100.5", Some(UCUM), Some("/min")),
        &[],
    )
    .await;
    check(
        &db,
        "Observation",
        q(Prefix::Gt, "71", None, None),
        &["o1", "o3"],
    )
    .await;
    check(
        &db,
        "Observation",
        q(Prefix::Lt, "100", None, None),
        &["o1"],
    )
    .await;
    check(
        &db,
        "Observation",
        q(Prefix::Ne, "72", None, None),
        &["o2", "o3", "o4", "o5"],
    )
    .await;
    check(
        &db,
        "Observation",
        q(Prefix::Ne, "72", None, Some("mg")),
        &["o1", "o2", "o3", "o4", "o5"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![p(
            "component-value-quantity",
            quantity(Prefix::Eq, "80", None, None),
        )],
        &["o2"],
    )
    .await;
});

both!(uris_below_and_above, |db| async move {
    seed(&db).await;
    let u = |t| vec![p("url", uri(t))];
    check(
        &db,
        "ValueSet",
        u(UriTest::Eq("http://acme.org/fhir/ValueSet/123".into())),
        &["vs1"],
    )
    .await;
    check(
        &db,
        "ValueSet",
        u(UriTest::Below("http://acme.org/fhir".into())),
        &["vs1", "vs2", "vs4"],
    )
    .await;
    check(
        &db,
        "ValueSet",
        u(UriTest::Below("http://acme.org/fhir/".into())),
        &["vs1", "vs2"],
    )
    .await;
    check(
        &db,
        "ValueSet",
        u(UriTest::Above(
            "http://acme.org/fhir/ValueSet/123/_history/2".into(),
        )),
        &["vs1", "vs4"],
    )
    .await;
    check(
        &db,
        "ValueSet",
        u(UriTest::Above("http://acme.org/fhirx/y".into())),
        &["vs3"],
    )
    .await;
});

both!(
    composites_compare_each_component_in_one_entry,
    |db| async move {
        use oxmed_fhir::search::Test;
        seed(&db).await;
        let cvq = |code: &str, prefix, v: &str| {
            Test::Composite(vec![
                tok(Some(LOINC), code),
                quantity(prefix, v, None, None),
            ])
        };
        check(
            &db,
            "Observation",
            vec![p("code-value-quantity", cvq("8867-4", Prefix::Gt, "70"))],
            &["o1", "o3"],
        )
        .await;
        check(
            &db,
            "Observation",
            vec![p("code-value-quantity", cvq("8867-4", Prefix::Gt, "80"))],
            &["o3"],
        )
        .await;
        check(
            &db,
            "Observation",
            vec![p(
                "component-code-value-quantity",
                cvq("8480-6", Prefix::Eq, "120"),
            )],
            &["o2"],
        )
        .await;
        // 80 is the other component's value: a pair split across entries never matches.
        check(
            &db,
            "Observation",
            vec![p(
                "component-code-value-quantity",
                cvq("8480-6", Prefix::Eq, "80"),
            )],
            &[],
        )
        .await;
        check(
            &db,
            "Observation",
            vec![p(
                "component-code-value-quantity",
                cvq("8462-4", Prefix::Eq, "80"),
            )],
            &["o2"],
        )
        .await;
        check(
            &db,
            "Observation",
            vec![p(
                "combo-code-value-quantity",
                cvq("8867-4", Prefix::Eq, "72"),
            )],
            &["o1"],
        )
        .await;
        check(
            &db,
            "Observation",
            vec![p(
                "combo-code-value-quantity",
                cvq("8462-4", Prefix::Lt, "100"),
            )],
            &["o2"],
        )
        .await;
        // ne inside a component applies to that entry's one value.
        check(
            &db,
            "Observation",
            vec![p(
                "component-code-value-quantity",
                cvq("8480-6", Prefix::Ne, "120"),
            )],
            &[],
        )
        .await;
        check(
            &db,
            "Observation",
            vec![p(
                "component-code-value-quantity",
                cvq("8480-6", Prefix::Ne, "80"),
            )],
            &["o2"],
        )
        .await;
        let concept = Test::Composite(vec![
            tok(Some(LOINC), "1234-5"),
            tok(Some("http://snomed.info/sct"), "260385009"),
        ]);
        check(
            &db,
            "Observation",
            vec![p("code-value-concept", concept)],
            &["o5"],
        )
        .await;
        // Wrong arity or a component of the wrong type match nothing.
        let short = Test::Composite(vec![tok(Some(LOINC), "8867-4")]);
        check(
            &db,
            "Observation",
            vec![p("code-value-quantity", short)],
            &[],
        )
        .await;
        let wrong = Test::Composite(vec![tok(Some(LOINC), "8867-4"), tok(None, "72")]);
        check(
            &db,
            "Observation",
            vec![p("code-value-quantity", wrong)],
            &[],
        )
        .await;
    }
);

both!(missing_id_and_last_updated, |db| async move {
    seed(&db).await;
    let missing = |code: &str, m: bool| {
        one(Condition::Missing {
            code: code.into(),
            missing: m,
        })
    };
    check(&db, "Patient", vec![missing("birthdate", true)], &["p3"]).await;
    check(
        &db,
        "Patient",
        vec![missing("birthdate", false)],
        &["p1", "p2", "p4"],
    )
    .await;
    check(&db, "Patient", vec![missing("given", true)], &["p3", "p4"]).await;
    check(
        &db,
        "Observation",
        vec![missing("value-quantity", true)],
        &["o2", "o4", "o5"],
    )
    .await;
    check(&db, "Patient", vec![missing("_id", true)], &[]).await;
    check(
        &db,
        "Patient",
        vec![missing("_text", true)],
        &["p1", "p2", "p3", "p4"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![one(Condition::Id("p1".into()))],
        &["p1"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![any(vec![
            Condition::Id("p1".into()),
            Condition::Id("p3".into()),
        ])],
        &["p1", "p3"],
    )
    .await;
    // An id of another type is not found.
    check(&db, "Patient", vec![one(Condition::Id("o1".into()))], &[]).await;

    let p1 = db.store.read("Patient", "p1").await.unwrap().unwrap();
    let lu = |prefix, v: &str| vec![one(Condition::LastUpdated(date_test(prefix, v)))];
    let resource: Value = serde_json::from_str(&p1.content).unwrap();
    let stamp = resource["meta"]["lastUpdated"].as_str().unwrap().to_owned();
    // Patients written within the same millisecond as p1 share its stamp.
    let mut same = Vec::new();
    for id in ["p1", "p2", "p3", "p4"] {
        let r = db.store.read("Patient", id).await.unwrap().unwrap();
        let v: Value = serde_json::from_str(&r.content).unwrap();
        if v["meta"]["lastUpdated"] == stamp.as_str() {
            same.push(id);
        }
    }
    check(&db, "Patient", lu(Prefix::Eq, &stamp), &same).await;
    check(
        &db,
        "Patient",
        lu(Prefix::Ge, "2000"),
        &["p1", "p2", "p3", "p4"],
    )
    .await;
    check(&db, "Patient", lu(Prefix::Lt, "2000"), &[]).await;
    let later: Vec<String> = find(&db, A, "Patient", lu(Prefix::Gt, &stamp)).await;
    assert!(!later.contains(&"p1".to_owned()));
    assert!(later.iter().all(|id| !same.contains(&id.as_str())));
    let not_p1 = find(&db, A, "Patient", lu(Prefix::Ne, &stamp)).await;
    let others: Vec<&str> = ["p1", "p2", "p3", "p4"]
        .into_iter()
        .filter(|id| !same.contains(id))
        .collect();
    assert_eq!(not_p1, sorted(&others));
});

both!(chains_two_levels_and_has, |db| async move {
    seed(&db).await;
    let chain = |code: &str, target: &str, inner: Condition| Condition::Chain {
        reference_code: code.into(),
        target_type: target.into(),
        inner: Box::new(inner),
    };
    let has = |source: &str, code: &str, inner: Condition| Condition::Has {
        source_type: source.into(),
        reference_code: code.into(),
        inner: Box::new(inner),
    };
    check(
        &db,
        "Observation",
        vec![one(chain(
            "subject",
            "Patient",
            param("name", starts("mull")),
        ))],
        &["o1", "o2"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![one(chain(
            "subject",
            "Patient",
            param("gender", tok(None, "male")),
        ))],
        &["o3", "o5"],
    )
    .await;
    // Through an absolute reference.
    check(
        &db,
        "Observation",
        vec![one(chain(
            "subject",
            "Patient",
            param("name", starts("dupont")),
        ))],
        &["o4"],
    )
    .await;
    let two = |gender: &str| {
        one(chain(
            "result",
            "Observation",
            chain("subject", "Patient", param("gender", tok(None, gender))),
        ))
    };
    check(&db, "DiagnosticReport", vec![two("female")], &["dr1"]).await;
    check(&db, "DiagnosticReport", vec![two("male")], &["dr2"]).await;
    check(
        &db,
        "Patient",
        vec![one(chain(
            "organization",
            "Organization",
            chain(
                "partof",
                "Organization",
                param("name", starts("acme group")),
            ),
        ))],
        &["p1"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![one(has(
            "Observation",
            "subject",
            param("code", tok(None, "8867-4")),
        ))],
        &["p1", "p2"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![one(has(
            "Observation",
            "subject",
            param("status", tok(None, "amended")),
        ))],
        &["p3"],
    )
    .await;
    check(
        &db,
        "Patient",
        vec![one(has(
            "DiagnosticReport",
            "subject",
            chain("result", "Observation", param("code", tok(None, "85354-6"))),
        ))],
        &["p1"],
    )
    .await;
    // A chain and a plain condition together, and a chain inside an OR.
    check(
        &db,
        "Observation",
        vec![
            one(chain(
                "subject",
                "Patient",
                param("gender", tok(None, "male")),
            )),
            p("code", tok(None, "1234-5")),
        ],
        &["o5"],
    )
    .await;
    check(
        &db,
        "Observation",
        vec![any(vec![
            chain("subject", "Patient", param("gender", tok(None, "male"))),
            param("status", tok(None, "amended")),
        ])],
        &["o3", "o4", "o5"],
    )
    .await;
    // A deleted target no longer satisfies a chain.
    delete(&db.store, A, "Organization", "org2").await;
    check(
        &db,
        "Patient",
        vec![one(chain(
            "organization",
            "Organization",
            param("name", starts("acme")),
        ))],
        &["p1"],
    )
    .await;
});

both!(patient_compartment, |db| async move {
    seed(&db).await;
    let c = |id: &str| {
        vec![one(Condition::Compartment {
            compartment_type: "Patient".into(),
            id: id.into(),
        })]
    };
    check(&db, "Observation", c("p1"), &["o1", "o2"]).await;
    check(&db, "Observation", c("p3"), &["o4"]).await;
    check(&db, "Patient", c("p1"), &["p1", "p3"]).await;
    check(&db, "DiagnosticReport", c("p1"), &["dr1"]).await;
    check(&db, "RiskAssessment", c("p2"), &["ra2"]).await;
    check(&db, "ValueSet", c("p1"), &[]).await;
    // Another type's compartment holds the resources with it among their accounts: none here.
    let other = vec![one(Condition::Compartment {
        compartment_type: "Encounter".into(),
        id: "e1".into(),
    })];
    check(&db, "Observation", other, &[]).await;
});

// Accounts (`meta.account`, `meta.accounts`) are compartments, of any type, on both paths.
both!(account_compartments, |db| async move {
    let account = |r: &str| json!({"reference": r});
    let resources = [
        json!({"resourceType": "Observation", "id": "a1", "status": "final", "code": {"text": "x"},
            "meta": {"accounts": [account("Organization/org1"), account("Organization/org2")]}}),
        json!({"resourceType": "Observation", "id": "a2", "status": "final", "code": {"text": "x"},
            "meta": {"account": account("Organization/org2")}}),
        json!({"resourceType": "Observation", "id": "a3", "status": "final", "code": {"text": "x"},
            "meta": {"accounts": [account("Patient/p9")]}}),
        json!({"resourceType": "Observation", "id": "a4", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Patient/p9"}}),
        json!({"resourceType": "Organization", "id": "a5",
            "meta": {"accounts": [account("Organization/org1")]}}),
    ];
    for r in &resources {
        put(&db.store, A, r.clone()).await;
    }
    let c = |t: &str, id: &str| {
        vec![one(Condition::Compartment {
            compartment_type: t.into(),
            id: id.into(),
        })]
    };
    let cases: [(&str, Vec<Clause>, &[&str]); 6] = [
        ("Observation", c("Organization", "org1"), &["a1"]),
        ("Observation", c("Organization", "org2"), &["a1", "a2"]),
        ("Observation", c("Patient", "p9"), &["a3", "a4"]),
        ("Organization", c("Organization", "org1"), &["a5"]),
        ("Organization", c("Patient", "p9"), &[]),
        ("Observation", c("Organization", "a5"), &[]),
    ];
    for (t, clauses, expected) in cases {
        let found = find(&db, A, t, clauses.clone()).await;
        assert_eq!(found, sorted(expected), "{t} {clauses:?}");
        for r in resources.iter().filter(|r| r["resourceType"] == t) {
            let id = r["id"].as_str().unwrap();
            let stored = db.store.read(t, id).await.unwrap().unwrap();
            let value: Value = serde_json::from_str(&stored.content).unwrap();
            assert_eq!(
                oxmed_fhir::search::matching::matches(&value, &clauses).unwrap(),
                found.iter().any(|f| f == id),
                "SQL and memory disagree on {t}/{id} for {clauses:?}"
            );
        }
    }
    // A system search across types, and nothing of another project.
    let mut all = request("Observation", c("Organization", "org1"));
    all.resource_types.clear();
    let (matches, _) = search_with(&db, A, &all, None).await;
    let mut matches = matches;
    matches.sort();
    assert_eq!(matches, vec!["Observation/a1", "Organization/a5"]);
    assert!(
        find(&db, B, "Observation", c("Organization", "org1"))
            .await
            .is_empty()
    );
});

async fn search_with(
    db: &Db,
    project: &str,
    request: &SearchRequest,
    restriction: Option<&Restriction>,
) -> (Vec<String>, Vec<String>) {
    let result = db
        .store
        .search(project, request, restriction)
        .await
        .unwrap();
    let key = |r: &oxmed_store::StoredResource| format!("{}/{}", r.resource_type, r.id);
    let matches = result.matches.iter().map(key).collect();
    let mut included: Vec<String> = result.included.iter().map(key).collect();
    included.sort();
    (matches, included)
}

fn with_includes(
    resource_type: &str,
    id: &str,
    include: Vec<oxmed_fhir::search::Include>,
    revinclude: Vec<oxmed_fhir::search::Include>,
) -> SearchRequest {
    let mut r = request(resource_type, vec![one(Condition::Id(id.into()))]);
    r.include = include;
    r.revinclude = revinclude;
    r
}

both!(includes_revincludes_and_iterate, |db| async move {
    seed(&db).await;
    let inc = |t, c, target, it| include(t, c, target, it);
    let r = with_includes(
        "Observation",
        "o1",
        vec![inc("Observation", Some("subject"), None, false)],
        vec![],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await,
        (vec!["Observation/o1".into()], vec!["Patient/p1".into()])
    );
    let r = with_includes(
        "Observation",
        "o1",
        vec![inc("Observation", Some("subject"), Some("Group"), false)],
        vec![],
    );
    assert_eq!(search_with(&db, A, &r, None).await.1, Vec::<String>::new());
    let r = with_includes(
        "Observation",
        "o1",
        vec![inc("Observation", None, None, false)],
        vec![],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await.1,
        vec!["Patient/p1".to_owned()]
    );
    // Without :iterate, an include applies to the matches only.
    let r = with_includes(
        "DiagnosticReport",
        "dr1",
        vec![
            inc("DiagnosticReport", Some("result"), None, false),
            inc("Observation", Some("subject"), None, false),
        ],
        vec![],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await.1,
        vec!["Observation/o1".to_owned(), "Observation/o2".to_owned()]
    );
    let r = with_includes(
        "DiagnosticReport",
        "dr1",
        vec![
            inc("DiagnosticReport", Some("result"), None, false),
            inc("Observation", Some("subject"), None, true),
        ],
        vec![],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await.1,
        vec![
            "Observation/o1".to_owned(),
            "Observation/o2".to_owned(),
            "Patient/p1".to_owned()
        ]
    );
    // A reference cycle (org1 -> org2 -> org1) ends, and a match is never included again.
    let r = with_includes(
        "Organization",
        "org1",
        vec![inc("Organization", Some("partof"), None, true)],
        vec![],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await,
        (
            vec!["Organization/org1".into()],
            vec!["Organization/org2".into()]
        )
    );
    let r = with_includes(
        "Patient",
        "p1",
        vec![],
        vec![inc("Observation", Some("subject"), None, false)],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await.1,
        vec!["Observation/o1".to_owned(), "Observation/o2".to_owned()]
    );
    let r = with_includes(
        "Patient",
        "p1",
        vec![],
        vec![
            inc("Observation", Some("subject"), None, false),
            inc("DiagnosticReport", Some("result"), None, true),
            inc("Patient", Some("link"), None, false),
        ],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await.1,
        vec![
            "DiagnosticReport/dr1".to_owned(),
            "Observation/o1".to_owned(),
            "Observation/o2".to_owned(),
            "Patient/p3".to_owned()
        ]
    );
    let r = with_includes(
        "Patient",
        "p1",
        vec![],
        vec![inc("Observation", None, None, false)],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await.1,
        vec!["Observation/o1".to_owned(), "Observation/o2".to_owned()]
    );
    // Deleted resources are never included.
    delete(&db.store, A, "Practitioner", "pr1").await;
    let r = with_includes(
        "Patient",
        "p1",
        vec![inc("Patient", Some("general-practitioner"), None, false)],
        vec![],
    );
    assert_eq!(search_with(&db, A, &r, None).await.1, Vec::<String>::new());
});

both!(projects_are_isolated_everywhere, |db| async move {
    seed(&db).await;
    assert_eq!(
        find(&db, A, "Patient", vec![p("name", starts("mull"))]).await,
        sorted(&["p1"])
    );
    assert_eq!(
        find(&db, B, "Patient", vec![p("name", starts("mull"))]).await,
        sorted(&["pb1"])
    );
    assert_eq!(find(&db, B, "Patient", vec![]).await, sorted(&["pb1"]));
    assert_eq!(
        find(&db, "nobody", "Patient", vec![]).await,
        Vec::<String>::new()
    );
    // Project B's Observation refers to A's Patient p4: A does not see it ...
    assert_eq!(
        find(
            &db,
            A,
            "Observation",
            vec![p("subject", reference(Some("Patient"), "p4"))]
        )
        .await,
        Vec::<String>::new()
    );
    let has = |code: &str| {
        vec![one(Condition::Has {
            source_type: "Observation".into(),
            reference_code: "subject".into(),
            inner: Box::new(param("code", tok(None, code))),
        })]
    };
    assert_eq!(
        find(&db, A, "Patient", has("ISO-1")).await,
        Vec::<String>::new()
    );
    // ... and B cannot reach A's Patient through a chain or _has.
    let chain = vec![one(Condition::Chain {
        reference_code: "subject".into(),
        target_type: "Patient".into(),
        inner: Box::new(param("birthdate", date(Prefix::Eq, "2000"))),
    })];
    assert_eq!(
        find(&db, B, "Observation", chain).await,
        Vec::<String>::new()
    );
    assert_eq!(
        find(&db, B, "Patient", has("8867-4")).await,
        Vec::<String>::new()
    );
    let two_levels = vec![one(Condition::Chain {
        reference_code: "result".into(),
        target_type: "Observation".into(),
        inner: Box::new(param("status", tok(None, "final"))),
    })];
    assert_eq!(
        find(&db, B, "DiagnosticReport", two_levels).await,
        Vec::<String>::new()
    );
    // Includes stay in the project.
    let r = with_includes(
        "Observation",
        "ob1",
        vec![include("Observation", Some("subject"), None, false)],
        vec![],
    );
    assert_eq!(search_with(&db, B, &r, None).await.1, Vec::<String>::new());
    let r = with_includes(
        "Patient",
        "p4",
        vec![],
        vec![include("Observation", Some("subject"), None, false)],
    );
    assert_eq!(search_with(&db, A, &r, None).await.1, Vec::<String>::new());
    let r = with_includes(
        "Patient",
        "p1",
        vec![],
        vec![include("DiagnosticReport", Some("subject"), None, false)],
    );
    assert_eq!(
        search_with(&db, A, &r, None).await.1,
        vec!["DiagnosticReport/dr1".to_owned()]
    );
    // A's compartment of p4 holds nothing; B's Observation is in B's view of it.
    let compartment = |id: &str| {
        vec![one(Condition::Compartment {
            compartment_type: "Patient".into(),
            id: id.into(),
        })]
    };
    assert_eq!(
        find(&db, A, "Observation", compartment("p4")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        find(&db, B, "Observation", compartment("p4")).await,
        sorted(&["ob1"])
    );
    // Totals too.
    let mut r = request("Patient", vec![]);
    r.total = oxmed_fhir::search::Total::Accurate;
    assert_eq!(db.store.search(B, &r, None).await.unwrap().total, Some(1));
    assert_eq!(db.store.search(A, &r, None).await.unwrap().total, Some(4));
});

fn restriction(entries: Vec<(&str, Vec<Vec<Clause>>)>) -> Restriction {
    Restriction {
        types: entries
            .into_iter()
            .map(|(t, alternatives)| (t.to_owned(), alternatives))
            .collect(),
    }
}

async fn restricted(
    db: &Db,
    r: &Restriction,
    resource_type: &str,
    clauses: Vec<Clause>,
) -> Vec<String> {
    let mut found: Vec<String> = db
        .store
        .search(A, &request(resource_type, clauses.clone()), Some(r))
        .await
        .unwrap()
        .matches
        .into_iter()
        .map(|r| r.id)
        .collect();
    found.sort();
    let mut by_matching = db
        .store
        .matching_ids(A, resource_type, &clauses, Some(r))
        .await
        .unwrap();
    by_matching.sort();
    assert_eq!(found, by_matching);
    found
}

both!(
    restriction_hides_types_and_filters_by_criteria,
    |db| async move {
        seed(&db).await;
        let final_only = restriction(vec![(
            "Observation",
            vec![vec![p("status", tok(None, "final"))]],
        )]);
        assert_eq!(
            restricted(&db, &final_only, "Observation", vec![]).await,
            sorted(&["o1", "o2", "o5"])
        );
        assert_eq!(
            restricted(&db, &final_only, "Patient", vec![]).await,
            Vec::<String>::new()
        );
        assert_eq!(
            restricted(
                &db,
                &final_only,
                "Observation",
                vec![p("code", tok(None, "8867-4"))]
            )
            .await,
            sorted(&["o1"])
        );
        // Two alternatives (policy entries): OR.
        let two = restriction(vec![(
            "Observation",
            vec![
                vec![
                    p("status", tok(None, "final")),
                    p("code", tok(None, "8867-4")),
                ],
                vec![p("status", tok(None, "amended"))],
            ],
        )]);
        assert_eq!(
            restricted(&db, &two, "Observation", vec![]).await,
            sorted(&["o1", "o4"])
        );
        // An alternative without criteria allows the whole type.
        let open = restriction(vec![(
            "Observation",
            vec![vec![], vec![p("status", tok(None, "amended"))]],
        )]);
        assert_eq!(restricted(&db, &open, "Observation", vec![]).await.len(), 5);
        // Chains and _has only go through visible resources.
        let females = restriction(vec![
            ("Observation", vec![vec![]]),
            ("Patient", vec![vec![p("gender", tok(None, "female"))]]),
        ]);
        let by_name = |n: &str| {
            vec![one(Condition::Chain {
                reference_code: "subject".into(),
                target_type: "Patient".into(),
                inner: Box::new(param("name", starts(n))),
            })]
        };
        assert_eq!(
            restricted(&db, &females, "Observation", by_name("smith")).await,
            Vec::<String>::new()
        );
        assert_eq!(
            restricted(&db, &females, "Observation", by_name("mull")).await,
            sorted(&["o1", "o2"])
        );
        let observations_hidden = restriction(vec![("Patient", vec![vec![]])]);
        let has = vec![one(Condition::Has {
            source_type: "Observation".into(),
            reference_code: "subject".into(),
            inner: Box::new(param("code", tok(None, "8867-4"))),
        })];
        assert_eq!(
            restricted(&db, &observations_hidden, "Patient", has.clone()).await,
            Vec::<String>::new()
        );
        let final_observations = restriction(vec![
            ("Patient", vec![vec![]]),
            ("Observation", vec![vec![p("status", tok(None, "final"))]]),
        ]);
        assert_eq!(
            restricted(&db, &final_observations, "Patient", has).await,
            sorted(&["p1"])
        );
        // The restriction's own criteria are its definition: their chains are not restricted again.
        let of_males = restriction(vec![(
            "Observation",
            vec![vec![one(Condition::Chain {
                reference_code: "subject".into(),
                target_type: "Patient".into(),
                inner: Box::new(param("gender", tok(None, "male"))),
            })]],
        )]);
        assert_eq!(
            restricted(&db, &of_males, "Observation", vec![]).await,
            sorted(&["o3", "o5"])
        );
        // Includes of a hidden type, or of hidden resources, are left out.
        let r = with_includes(
            "Observation",
            "o1",
            vec![include("Observation", Some("subject"), None, false)],
            vec![],
        );
        assert_eq!(
            search_with(&db, A, &r, Some(&final_only)).await,
            (vec!["Observation/o1".into()], vec![])
        );
        let males = restriction(vec![
            ("Observation", vec![vec![]]),
            ("Patient", vec![vec![p("gender", tok(None, "male"))]]),
        ]);
        assert_eq!(
            search_with(&db, A, &r, Some(&males)).await.1,
            Vec::<String>::new()
        );
        assert_eq!(
            search_with(&db, A, &r, Some(&females)).await.1,
            vec!["Patient/p1".to_owned()]
        );
        let r = with_includes(
            "Patient",
            "p1",
            vec![],
            vec![include("Observation", Some("subject"), None, false)],
        );
        let some = restriction(vec![
            ("Patient", vec![vec![]]),
            ("Observation", vec![vec![p("code", tok(None, "8867-4"))]]),
        ]);
        assert_eq!(
            search_with(&db, A, &r, Some(&some)).await.1,
            vec!["Observation/o1".to_owned()]
        );
    }
);

both!(system_level_search_over_several_types, |db| async move {
    seed(&db).await;
    let mut r = request("Patient", vec![p("_tag", tok(None, "none"))]);
    r.resource_types = vec!["Patient".into(), "Observation".into()];
    assert_eq!(ids(&db, A, &r).await, Vec::<String>::new());
    r.filters = vec![any(vec![
        Condition::Id("p1".into()),
        Condition::Id("o1".into()),
    ])];
    let mut found = ids(&db, A, &r).await;
    found.sort();
    assert_eq!(found, sorted(&["o1", "p1"]));
    r.resource_types = Vec::new();
    r.filters = vec![one(Condition::Compartment {
        compartment_type: "Patient".into(),
        id: "p2".into(),
    })];
    let mut found = ids(&db, A, &r).await;
    found.sort();
    assert_eq!(found, sorted(&["dr2", "o3", "o5", "p2", "ra2"]));
    let only_observations = restriction(vec![("Observation", vec![vec![]])]);
    let found = db
        .store
        .search(A, &r, Some(&only_observations))
        .await
        .unwrap()
        .matches;
    let mut found: Vec<String> = found.into_iter().map(|r| r.id).collect();
    found.sort();
    assert_eq!(found, sorted(&["o3", "o5"]));
});

both!(search_all_projects_crosses_projects, |db| async move {
    seed(&db).await;
    let all = |clauses: Vec<Clause>| {
        let db = &db;
        async move {
            let mut ids: Vec<String> = db
                .store
                .search_all_projects(&request("Patient", clauses), None)
                .await
                .unwrap()
                .matches
                .into_iter()
                .map(|r| format!("{}:{}", r.project, r.id))
                .collect();
            ids.sort();
            ids
        }
    };
    // "mull" is p1 in A and pb1 in B: one project's search sees one, every project's both.
    assert_eq!(
        all(vec![p("name", starts("mull"))]).await,
        vec![format!("{A}:p1"), format!("{B}:pb1")]
    );
    assert_eq!(
        find(&db, A, "Patient", vec![p("name", starts("mull"))]).await,
        sorted(&["p1"])
    );
    // A reference into another project is followed too (B's Observation of A's p4).
    let obs = db
        .store
        .search_all_projects(
            &request(
                "Observation",
                vec![p("subject", reference(Some("Patient"), "p4"))],
            ),
            None,
        )
        .await
        .unwrap();
    assert!(obs.matches.iter().any(|r| r.id == "ob1" && r.project == B));
    assert!(all(vec![p("name", starts("nosuchname"))]).await.is_empty());
});

// A point read with the resource's compartments (what a policy of compartment lists decides a
// read on): on both backends, exactly those the content's index entries give, rewritten by each
// version in its transaction; none for a deletion.
both!(a_read_with_its_compartments, |db| async move {
    let compartments_of = |r: &Value| {
        let index = oxmed_fhir::index::extract(r);
        let mut found: Vec<String> = oxmed_fhir::search::matching::compartments(
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str(),
            &index,
        )
        .into_iter()
        .map(|(t, i)| format!("{t}/{i}"))
        .collect();
        found.sort();
        found
    };
    let read = |id: &'static str| {
        let store = db.store.clone();
        async move {
            let (stored, column) = store
                .read_with_compartments("Observation", id)
                .await
                .unwrap()
                .unwrap();
            let mut listed: Option<Vec<String>> = column.as_deref().map(|c| {
                oxmed_store::compartments::decode(c)
                    .unwrap()
                    .into_iter()
                    .map(|(t, i)| format!("{t}/{i}"))
                    .collect()
            });
            if let Some(l) = &mut listed {
                l.sort();
            }
            (stored, listed)
        }
    };
    let mut observation = json!({"resourceType": "Observation", "id": "wr1", "status": "final",
        "code": {"text": "t"}, "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "Practitioner/pr1"}, {"reference": "Patient/p2"}],
        "meta": {"account": {"reference": "Organization/org1"}}});
    put(&db.store, A, observation.clone()).await;
    let (stored, listed) = read("wr1").await;
    assert_eq!(stored.id, "wr1");
    let expected = compartments_of(&serde_json::from_str(&stored.content).unwrap());
    assert_eq!(
        expected,
        ["Organization/org1", "Patient/p1", "Patient/p2"].map(String::from)
    );
    assert_eq!(listed, Some(expected));
    // A new version's compartments replace the old ones.
    observation["subject"] = json!({"reference": "Patient/p3"});
    observation["performer"] = json!([{"reference": "Practitioner/pr1"}]);
    observation["meta"] = json!({});
    put(&db.store, A, observation).await;
    let (stored, listed) = read("wr1").await;
    assert_eq!(stored.version_id, "2");
    assert_eq!(listed, Some(vec!["Patient/p3".to_owned()]));
    delete(&db.store, A, "Observation", "wr1").await;
    let (gone, listed) = read("wr1").await;
    assert!(gone.deleted);
    assert_eq!(listed, None);
    assert!(
        db.store
            .read_with_compartments("Observation", "nope")
            .await
            .unwrap()
            .is_none()
    );
});

// The token signature on reference rows (`token_signature`): a filter of the rows that drive a
// reference-and-code search, which may only drop rows whose resource lacks the code.
both!(
    a_token_signature_drops_only_what_cannot_match,
    |db| async move {
        const S: &str = "http://loinc.org";
        let observation = |id: &str, patient: &str, codes: &[&str]| {
            let coding: Vec<Value> = codes
                .iter()
                .map(|c| json!({"system": S, "code": c}))
                .collect();
            json!({"resourceType": "Observation", "id": id, "status": "final",
                "code": {"coding": coding}, "subject": {"reference": format!("Patient/{patient}")}})
        };
        for n in 0..30 {
            let id = format!("sg{n}");
            put(&db.store, A, observation(&id, "ps", &[&format!("c{n}")])).await;
        }
        // One with two codes, and one of another patient with the same code.
        put(&db.store, A, observation("sg-two", "ps", &["c3", "c4"])).await;
        put(&db.store, A, observation("sg-other", "pt", &["c3"])).await;
        // The three shapes that read reference rows first: the default order (the reference rows
        // drive in `rid` order), a sort (the reference rows are a set the statement starts from),
        // and a compartment.
        let searches = |code: &str| {
            let subject = param("subject", reference(Some("Patient"), "ps"));
            let code = param("code", tok(Some(S), code));
            let compartment = Condition::Compartment {
                compartment_type: "Patient".into(),
                id: "ps".into(),
            };
            let mut sorted = request("Observation", vec![one(subject.clone()), one(code.clone())]);
            sorted.sort = sort(&["-_lastUpdated"]);
            [
                request("Observation", vec![one(subject), one(code.clone())]),
                sorted,
                request("Observation", vec![one(compartment), one(code)]),
            ]
        };
        let found = |code: &'static str| {
            let db = &db;
            async move {
                let mut all = Vec::new();
                for r in searches(code) {
                    let mut got = ids(db, A, &r).await;
                    got.sort();
                    all.push(got);
                }
                all
            }
        };
        let each = |ids: &[&str]| vec![sorted(ids); 3];
        assert_eq!(found("c7").await, each(&["sg7"]));
        assert_eq!(found("c3").await, each(&["sg-two", "sg3"]));
        assert_eq!(found("c4").await, each(&["sg-two", "sg4"]));
        assert_eq!(found("c99").await, each(&[]));
        // A new version with another code and the same subject: SQLite keeps the unchanged
        // reference row, which must take the new signature.
        put(&db.store, A, observation("sg0", "ps", &["c100"])).await;
        assert_eq!(found("c100").await, each(&["sg0"]));
        assert_eq!(found("c0").await, each(&[]));
        // Rows written before the column existed hold NULL, which passes.
        raw_execute(&db, "UPDATE reference_idx SET token_signature = NULL").await;
        assert_eq!(found("c7").await, each(&["sg7"]));
        assert_eq!(found("c100").await, each(&["sg0"]));
        // A signature without the code's bits drops the row before its token rows are read: the
        // token rows still say c7, so only the filter can have removed it.
        raw_execute(&db, "UPDATE reference_idx SET token_signature = 0").await;
        assert_eq!(found("c7").await, each(&[]));
        // A search without a code is not filtered.
        assert_eq!(
            find(
                &db,
                A,
                "Observation",
                vec![one(param("subject", reference(Some("Patient"), "ps")))]
            )
            .await
            .len(),
            31
        );
    }
);
