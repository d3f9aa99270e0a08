//! In-memory matching: each parameter type, modifier and prefix on real resources, the tricky
//! cases (precision, time zones, negations on multi-valued elements, `:missing`, composites),
//! and the exported predicates at their boundaries.

use oxmed_fhir::index::{extract, parse_date_range};
use oxmed_fhir::index_value::{IndexEntry, IndexValue};
use oxmed_fhir::search::matching::{
    MatchError, date_ap_tolerance, date_matches, is_at_or_below, matches, matches_entries,
    number_matches, patient_compartment_params, quantity_unit_matches, token_code_matches,
};
use oxmed_fhir::search::parse::parse_criteria;
use oxmed_fhir::search::{
    Clause, Condition, DateTest, NumberTest, Prefix, Test, TokenKind, TokenTest,
};
use serde_json::{Value, json};

/// Whether `resource` matches the criteria `query` (`Type?...`).
fn m(resource: &Value, query: &str) -> bool {
    let (_, clauses) = parse_criteria(query).unwrap_or_else(|e| panic!("{query}: {e:?}"));
    matches(resource, &clauses).unwrap_or_else(|e| panic!("{query}: {e:?}"))
}

fn check(resource: &Value, cases: &[(&str, bool)]) {
    let t = resource["resourceType"].as_str().unwrap();
    for (query, expected) in cases {
        assert_eq!(
            m(resource, &format!("{t}?{query}")),
            *expected,
            "{t}?{query}"
        );
    }
}

fn range(s: &str) -> (i64, i64) {
    parse_date_range(s).unwrap_or_else(|| panic!("bad date {s}"))
}

fn entries(code: &str, values: Vec<IndexValue>) -> Vec<IndexEntry> {
    values
        .into_iter()
        .map(|value| IndexEntry {
            code: code.into(),
            value,
        })
        .collect()
}

fn on_entries(resource_type: &str, e: &[IndexEntry], query: &str) -> bool {
    let (_, clauses) = parse_criteria(&format!("{resource_type}?{query}")).unwrap();
    matches_entries(resource_type, "x", 0, e, &clauses).unwrap()
}

// ---------------------------------------------------------------------------------------------
// string

#[test]
fn strings_ignore_case_and_accents_except_exact() {
    let p = json!({"resourceType": "Patient", "id": "p",
        "name": [{"family": "Müller", "given": ["Éloïse", "Anne"]}],
        "address": [{"city": "São Paulo"}]});
    check(
        &p,
        &[
            ("name=muller", true),
            ("name=MUL", true),
            ("name=Mül", true),
            ("name=eloi", true),
            ("name=anne", true),
            ("name=ller", false),
            ("name=muller%20eloise", false),
            ("name:contains=LLER", true),
            ("name:contains=loï", true),
            ("name:contains=xyz", false),
            ("name:exact=Müller", true),
            ("name:exact=müller", false),
            ("name:exact=Muller", false),
            ("name:exact=Mül", false),
            ("address-city=sao", true),
            ("name=zz,mul", true),
            ("name=zz&name=mul", false),
            ("name=mul&name=ann", true),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// token

fn observation() -> Value {
    json!({"resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [
            {"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"},
            {"code": "abc"}
        ], "text": "BP systolic"},
        "subject": {"reference": "Patient/123"},
        "performer": [{"reference": "Practitioner/9"}],
        "effectiveDateTime": "2020-01-01T23:30:00-05:00",
        "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}})
}

#[test]
fn token_system_and_code_forms() {
    check(
        &observation(),
        &[
            ("code=8480-6", true),
            ("code=http://loinc.org|8480-6", true),
            ("code=http://other.org|8480-6", false),
            ("code=|8480-6", false),
            ("code=|abc", true),
            ("code=abc", true),
            ("code=ABC", false),
            ("code=8480", false),
            ("code=http://loinc.org|", true),
            ("code=http://snomed.info/sct|", false),
            ("code=x,8480-6", true),
            ("status=final", true),
            ("status=FINAL", false),
        ],
    );
}

#[test]
fn token_not_holds_when_no_value_matches() {
    check(
        &observation(),
        &[
            // One of the two codings is 8480-6: not "not 8480-6".
            ("code:not=8480-6", false),
            ("code:not=abc", false),
            ("code:not=xyz", true),
            ("code:not=http://other.org|8480-6", true),
            ("code:not=xyz,abc", false),
            ("code:not=xyz,zzz", true),
            ("status:not=final", false),
            ("status:not=preliminary", true),
        ],
    );
    // A resource without the element matches :not.
    let bare = json!({"resourceType": "Observation", "status": "final"});
    check(&bare, &[("code:not=8480-6", true), ("code=8480-6", false)]);
    // Multi-valued identifiers.
    let p = json!({"resourceType": "Patient", "identifier": [
        {"system": "http://a", "value": "1"}, {"system": "http://b", "value": "2"}]});
    check(
        &p,
        &[
            ("identifier:not=1", false),
            ("identifier:not=http://a|2", true),
            ("identifier=http://b|2", true),
            ("identifier=http://a|2", false),
        ],
    );
}

#[test]
fn token_text_and_of_type_and_booleans() {
    check(
        &observation(),
        &[
            ("code:text=systolic", true),
            ("code:text=SYSTOLIC%20BLOOD", true),
            ("code:text=bp", true),
            ("code:text=blood", false),
            ("code:text=8480", false),
        ],
    );
    let p = json!({"resourceType": "Patient", "active": true, "identifier": [{
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "Medical record"},
        "system": "http://hospital", "value": "446053"}]});
    check(
        &p,
        &[
            (
                "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053",
                true,
            ),
            (
                "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|1",
                false,
            ),
            (
                "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|446053",
                false,
            ),
            ("identifier:of-type=http://other|MR|446053", false),
            ("identifier:text=medical", true),
            ("active=true", true),
            ("active=false", false),
            ("active:not=false", true),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// reference

#[test]
fn references() {
    check(
        &observation(),
        &[
            ("subject=Patient/123", true),
            ("subject=123", true),
            ("subject:Patient=123", true),
            ("subject:Group=123", false),
            ("subject=Patient/124", false),
            ("subject=Patient/123/_history/3", true),
            ("performer=Practitioner/9", true),
            ("performer=9", true),
            ("performer=Organization/9", false),
            ("subject=http://elsewhere.org/Patient/123", false),
        ],
    );
    let absolute = json!({"resourceType": "Observation",
        "subject": {"reference": "http://localhost:8103/fhir/R4/Patient/5"}});
    check(
        &absolute,
        &[
            ("subject=Patient/5", true),
            ("subject=http://localhost:8103/fhir/R4/Patient/5", true),
            ("subject=http://localhost:8103/fhir/R4/Patient/6", false),
        ],
    );
    let canonical = json!({"resourceType": "QuestionnaireResponse",
        "questionnaire": "http://acme.org/Questionnaire/q1"});
    check(
        &canonical,
        &[
            ("questionnaire=http://acme.org/Questionnaire/q1", true),
            ("questionnaire=http://acme.org/Questionnaire/q2", false),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// date

#[test]
fn dates_of_day_precision() {
    let p = json!({"resourceType": "Patient", "birthDate": "2020-03-15"});
    check(
        &p,
        &[
            ("birthdate=2020", true),
            ("birthdate=2020-03", true),
            ("birthdate=2020-03-15", true),
            ("birthdate=eq2020-03-15", true),
            ("birthdate=2020-03-16", false),
            // The stored day is not contained in one second.
            ("birthdate=2020-03-15T10:00:00Z", false),
            ("birthdate=gt2020-03-14", true),
            ("birthdate=gt2020-03-15", false),
            ("birthdate=ge2020-03-15", true),
            ("birthdate=ge2020-03-16", false),
            ("birthdate=lt2020-03-16", true),
            ("birthdate=lt2020-03-15", false),
            ("birthdate=le2020-03-15", true),
            ("birthdate=le2020-03-14", false),
            ("birthdate=sa2020-03-14", true),
            ("birthdate=sa2020-03", false),
            ("birthdate=eb2020-04", true),
            ("birthdate=eb2020-03-15", false),
            ("birthdate=ne2020", false),
            ("birthdate=ne2021", true),
            // A search second inside the stored day: the day reaches both above and below it.
            ("birthdate=gt2020-03-15T12:00:00Z", true),
            ("birthdate=lt2020-03-15T12:00:00Z", true),
            ("birthdate=sa2020-03-15T12:00:00Z", false),
        ],
    );
}

#[test]
fn dates_of_year_precision_against_finer_searches() {
    let p = json!({"resourceType": "Patient", "birthDate": "2020"});
    check(
        &p,
        &[
            ("birthdate=2020", true),
            ("birthdate=2020-06", false),
            ("birthdate=gt2020-06", true),
            ("birthdate=lt2020-06", true),
            ("birthdate=ge2020-06", true),
            ("birthdate=sa2019", true),
            ("birthdate=sa2019-12-31T23:59:59Z", true),
            ("birthdate=eb2021", true),
            ("birthdate=eb2020-12-31", false),
            ("birthdate=ne2020-06", true),
        ],
    );
}

#[test]
fn dates_with_time_zones() {
    // 2020-01-01T23:30:00-05:00 is 2020-01-02T04:30:00Z.
    check(
        &observation(),
        &[
            ("date=2020-01-02", true),
            ("date=2020-01-01", false),
            ("date=2020-01-01T23:30:00-05:00", true),
            ("date=2020-01-02T04:30:00Z", true),
            ("date=2020-01-02T04:30:00", true),
            ("date=2020-01-02T05:30:00+01:00", true),
            ("date=2020-01-02T04:30Z", true),
            ("date=gt2020-01-02T04:29:59Z", true),
            ("date=gt2020-01-02T04:30:00Z", false),
            ("date=ge2020-01-02T04:30:00Z", true),
        ],
    );
}

#[test]
fn periods_with_an_open_end() {
    let e = json!({"resourceType": "Encounter", "period": {"start": "2020-01-01"}});
    check(
        &e,
        &[
            ("date=gt2030", true),
            ("date=ge2025", true),
            ("date=lt2019", false),
            ("date=lt2020-01-02", true),
            ("date=2020-01-01", false),
            ("date=ne2020-01-01", true),
            ("date=sa2019", true),
            ("date=eb2100", false),
        ],
    );
    let closed = json!({"resourceType": "Encounter", "period": {"start": "2020-01-01", "end": "2020-01-31"}});
    check(
        &closed,
        &[
            ("date=2020-01", true),
            ("date=2020", true),
            ("date=2020-01-15", false),
            ("date=gt2020-01-15", true),
            ("date=lt2020-01-15", true),
            ("date=sa2020-01-15", false),
        ],
    );
}

#[test]
fn ne_on_multi_valued_dates_means_no_value_is_equal() {
    let dates = entries(
        "date",
        vec![
            IndexValue::Date {
                start: range("2020").0,
                end: range("2020").1,
            },
            IndexValue::Date {
                start: range("2021-05-01").0,
                end: range("2021-05-01").1,
            },
        ],
    );
    assert!(!on_entries("Observation", &dates, "date=ne2020"));
    assert!(!on_entries("Observation", &dates, "date=ne2021"));
    assert!(on_entries("Observation", &dates, "date=ne2022"));
    assert!(on_entries("Observation", &dates, "date=2021"));
    assert!(on_entries("Observation", &[], "date=ne2022"));
    assert!(!on_entries("Observation", &[], "date=2022"));
}

#[test]
fn date_predicate_boundaries() {
    let now = range("2025-01-01").0;
    let s = (100, 200);
    let at = |p, searched| date_matches(p, s, searched, now);
    // eq: the searched range contains the stored one, boundaries inclusive.
    assert!(at(Prefix::Eq, (100, 200)));
    assert!(at(Prefix::Eq, (0, 300)));
    assert!(!at(Prefix::Eq, (101, 300)));
    assert!(!at(Prefix::Eq, (0, 199)));
    assert!(at(Prefix::Ne, (101, 300)));
    // gt / lt: the stored range reaches beyond.
    assert!(at(Prefix::Gt, (0, 199)));
    assert!(!at(Prefix::Gt, (0, 200)));
    assert!(at(Prefix::Lt, (101, 300)));
    assert!(!at(Prefix::Lt, (100, 300)));
    assert!(at(Prefix::Ge, (100, 200)));
    assert!(at(Prefix::Le, (100, 200)));
    assert!(!at(Prefix::Ge, (150, 250)));
    // sa / eb: entirely after / before.
    assert!(at(Prefix::Sa, (0, 99)));
    assert!(!at(Prefix::Sa, (0, 100)));
    assert!(at(Prefix::Eb, (201, 300)));
    assert!(!at(Prefix::Eb, (200, 300)));
    // Unbounded ranges do not overflow.
    let open = (0, i64::MAX);
    assert!(date_matches(Prefix::Gt, open, (0, i64::MAX - 1), now));
    assert!(date_matches(Prefix::Ap, (i64::MIN, i64::MAX), (0, 0), now));
    assert!(!date_matches(
        Prefix::Ap,
        (i64::MIN, 0),
        (i64::MAX - 5, i64::MAX),
        i64::MIN
    ));
    // No prefix overflows on extreme values (tests run with overflow checks).
    let extremes = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
    for prefix in [
        Prefix::Eq,
        Prefix::Ne,
        Prefix::Gt,
        Prefix::Lt,
        Prefix::Ge,
        Prefix::Le,
        Prefix::Sa,
        Prefix::Eb,
        Prefix::Ap,
    ] {
        for a in extremes {
            for b in extremes {
                for now in extremes {
                    let _ =
                        date_matches(prefix, (a.min(b), a.max(b)), (b.min(now), b.max(now)), now);
                    let _ = date_ap_tolerance((a.min(b), a.max(b)), now);
                }
            }
        }
    }
}

#[test]
fn date_ap_widens_by_a_tenth_of_the_distance_to_now() {
    let now = range("2030-01-01").0;
    let searched = range("2020-01-01");
    // Ten years before now: a year either side (to the µs: a tenth of the distance).
    let tolerance = date_ap_tolerance(searched, now);
    assert_eq!(tolerance, (now - searched.1) / 10);
    let near = range("2019-03-01");
    let far = range("2018-06-01");
    assert!(date_matches(Prefix::Ap, near, searched, now));
    assert!(!date_matches(Prefix::Ap, far, searched, now));
    assert!(date_matches(Prefix::Ap, range("2020-06-01"), searched, now));
    // Searching around now: plain overlap.
    assert_eq!(date_ap_tolerance((now - 10, now + 10), now), 0);
    assert!(!date_matches(
        Prefix::Ap,
        (now + 11, now + 20),
        (now - 10, now + 10),
        now
    ));
    assert!(date_matches(
        Prefix::Ap,
        (now + 10, now + 20),
        (now - 10, now + 10),
        now
    ));
    // Through the resource path (the clock is real, so only a wide case).
    let p = json!({"resourceType": "Patient", "birthDate": "1990-06-01"});
    check(
        &p,
        &[
            ("birthdate=ap1990-05-01", true),
            ("birthdate=ap2020", false),
        ],
    );
}

#[test]
fn last_updated_and_id() {
    let p = json!({"resourceType": "Patient", "id": "p1",
        "meta": {"lastUpdated": "2021-05-01T10:00:00.000Z"}});
    check(
        &p,
        &[
            ("_id=p1", true),
            ("_id=p2,p1", true),
            ("_id=P1", false),
            ("_lastUpdated=2021-05-01", true),
            ("_lastUpdated=gt2021-05-01T09:59:59Z", true),
            // A search second covers the whole second: the stored instant is not after it.
            ("_lastUpdated=gt2021-05-01T10:00:00Z", false),
            ("_lastUpdated=ge2021-05-01T10:00:00Z", true),
            ("_lastUpdated=gt2021-05-01T09:59:59.999Z", true),
            ("_lastUpdated=gt2021-05-01T10:00:00.000Z", false),
            ("_lastUpdated=2021-05-01T10:00:00.000Z", true),
            ("_lastUpdated=2021-05-01T10:00:00.001Z", false),
            ("_lastUpdated=lt2021", false),
            ("_lastUpdated=ne2021", false),
            ("_lastUpdated=sa2021-04", true),
        ],
    );
    let lu = range("2021-05-01T10:00:00Z").0;
    let (_, clauses) = parse_criteria("Patient?_lastUpdated=ge2021-05-01&_id=abc").unwrap();
    assert_eq!(
        matches_entries("Patient", "abc", lu, &[], &clauses),
        Ok(true)
    );
    assert_eq!(
        matches_entries("Patient", "abd", lu, &[], &clauses),
        Ok(false)
    );
    assert_eq!(
        matches_entries("Patient", "abc", lu - 86_400_000_000 * 365, &[], &clauses),
        Ok(false)
    );
    // No meta.lastUpdated: only `ne` holds.
    let bare = json!({"resourceType": "Patient"});
    check(
        &bare,
        &[
            ("_lastUpdated=gt2000", false),
            ("_lastUpdated=ne2000", true),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// number and quantity

#[test]
fn numbers_with_implied_precision() {
    let n = |v: f64| entries("probability", vec![IndexValue::Number { value: v }]);
    let cases: &[(&str, f64, bool)] = &[
        ("100", 100.0, true),
        ("100", 99.5, true),
        ("100", 100.4999, true),
        ("100", 100.5, false),
        ("100", 99.49, false),
        ("100.00", 100.004, true),
        ("100.00", 100.006, false),
        ("1e2", 140.0, true),
        ("1e2", 150.0, false),
        ("1e2", 50.0, true),
        ("gt100", 100.1, true),
        ("gt100", 100.0, false),
        ("ge100", 100.0, true),
        ("lt100", 99.9, true),
        ("lt100", 100.0, false),
        ("le100", 100.0, true),
        ("sa100", 100.4, false),
        ("sa100", 100.5, true),
        ("eb100", 99.5, false),
        ("eb100", 99.4, true),
        ("ne100", 100.2, false),
        ("ne100", 101.0, true),
        ("ap100", 109.0, true),
        ("ap100", 110.0, true),
        ("ap100", 111.0, false),
        ("ap100", 90.0, true),
        ("ap0", 0.3, true),
        ("ap0", 0.6, false),
        ("-5", -5.4, true),
        ("-5", -5.5, true),
        ("-5", -4.5, false),
    ];
    for (q, v, expected) in cases {
        assert_eq!(
            on_entries("RiskAssessment", &n(*v), &format!("probability={q}")),
            *expected,
            "probability={q} on {v}"
        );
    }
    // ne across values.
    let two = entries(
        "probability",
        vec![
            IndexValue::Number { value: 0.5 },
            IndexValue::Number { value: 0.9 },
        ],
    );
    assert!(!on_entries("RiskAssessment", &two, "probability=ne0.9"));
    assert!(on_entries("RiskAssessment", &two, "probability=ne0.7"));
    assert!(on_entries("RiskAssessment", &[], "probability=ne0.7"));
    // Through a resource.
    let r = json!({"resourceType": "RiskAssessment", "prediction": [{"probabilityDecimal": 0.8}]});
    check(
        &r,
        &[
            ("probability=0.8", true),
            ("probability=gt0.5", true),
            ("probability=0.9", false),
        ],
    );
}

#[test]
fn number_predicate_directly() {
    let t = |prefix, value: f64, low: f64, high: f64| NumberTest {
        prefix,
        value,
        low,
        high,
    };
    assert!(number_matches(&t(Prefix::Eq, 100.0, 99.5, 100.5), 99.5));
    assert!(!number_matches(&t(Prefix::Eq, 100.0, 99.5, 100.5), 100.5));
    assert!(number_matches(&t(Prefix::Ne, 100.0, 99.5, 100.5), 100.5));
}

#[test]
fn quantities_and_units() {
    check(
        &observation(),
        &[
            ("value-quantity=120", true),
            ("value-quantity=120|http://unitsofmeasure.org|mm[Hg]", true),
            ("value-quantity=120||mm[Hg]", true),
            ("value-quantity=120||mmHg", true),
            ("value-quantity=120||kg", false),
            ("value-quantity=120|http://other|mm[Hg]", false),
            ("value-quantity=120|http://unitsofmeasure.org|", true),
            ("value-quantity=120|http://unitsofmeasure.org|mmHg", false),
            ("value-quantity=gt100", true),
            ("value-quantity=lt100", false),
            ("value-quantity=ge120||mm[Hg]", true),
            ("value-quantity=ne120", false),
            ("value-quantity=ne120||kg", true),
            ("value-quantity=ne130||mm[Hg]", true),
            ("value-quantity=ap110", true),
            ("value-quantity=ap100", false),
            ("value-quantity=1.2e2", true),
        ],
    );
    assert!(quantity_unit_matches(None, None, None, None, None));
    assert!(!quantity_unit_matches(
        Some("s"),
        None,
        None,
        Some("c"),
        None
    ));
    assert!(quantity_unit_matches(
        None,
        Some("mg"),
        Some("s"),
        None,
        Some("mg")
    ));
}

// ---------------------------------------------------------------------------------------------
// uri

#[test]
fn uris_below_and_above_by_segment() {
    let vs = json!({"resourceType": "ValueSet", "url": "http://acme.org/fhir/ValueSet/1"});
    check(
        &vs,
        &[
            ("url=http://acme.org/fhir/ValueSet/1", true),
            ("url=http://acme.org/fhir/ValueSet/1/", false),
            ("url=HTTP://acme.org/fhir/ValueSet/1", false),
            ("url:below=http://acme.org/fhir", true),
            ("url:below=http://acme.org/fhir/", true),
            ("url:below=http://acme.org/fh", false),
            ("url:below=http://acme.org/fhir/ValueSet/1", true),
            ("url:below=http://acme.org/fhir/ValueSet/1/x", false),
            ("url:above=http://acme.org/fhir/ValueSet/1/x/y", true),
            ("url:above=http://acme.org/fhir/ValueSet/1", true),
            ("url:above=http://acme.org/fhir/ValueSet/12", false),
            ("url:above=http://acme.org", false),
        ],
    );
    assert!(is_at_or_below("a/b/c", "a/b"));
    assert!(!is_at_or_below("a/bc", "a/b"));
    assert!(is_at_or_below("a/bc", "a/"));
}

// ---------------------------------------------------------------------------------------------
// composite

#[test]
fn composite_components_come_from_one_element() {
    let bp = json!({"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
    ]});
    check(
        &bp,
        &[
            ("component-code-value-quantity=8480-6$120", true),
            (
                "component-code-value-quantity=http://loinc.org|8480-6$gt100",
                true,
            ),
            ("component-code-value-quantity=8462-4$80||mm[Hg]", true),
            // 8480-6 is one component, 80 the other: no single element has both.
            ("component-code-value-quantity=8480-6$80", false),
            ("component-code-value-quantity=8462-4$120", false),
            ("component-code-value-quantity=8462-4$gt100", false),
            ("component-code-value-quantity=8462-4$ne80", false),
            ("component-code-value-quantity=8462-4$ne90", true),
            ("component-code-value-quantity=8480-6$80,8462-4$80", true),
            ("code-value-quantity=85354-9$120", false),
            ("component-code-value-quantity:missing=false", true),
            ("code-value-quantity:missing=true", true),
        ],
    );
    let o = observation();
    check(
        &o,
        &[
            ("code-value-quantity=8480-6$120", true),
            ("code-value-quantity=abc$120", true),
            ("code-value-quantity=8480-6$lt120", false),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// missing

#[test]
fn missing_is_about_indexed_values() {
    let with_date =
        json!({"resourceType": "Patient", "birthDate": "2000-01-01", "name": [{"family": "X"}]});
    let without = json!({"resourceType": "Patient"});
    // The element is present but has nothing a search could match: no value, so missing.
    let empty_name =
        json!({"resourceType": "Patient", "name": [{"use": "official"}], "birthDate": "garbage"});
    check(
        &with_date,
        &[
            ("birthdate:missing=true", false),
            ("birthdate:missing=false", true),
            ("name:missing=false", true),
        ],
    );
    check(
        &without,
        &[
            ("birthdate:missing=true", true),
            ("birthdate:missing=false", false),
            ("name:missing=true", true),
        ],
    );
    check(
        &empty_name,
        &[
            ("name:missing=true", true),
            ("birthdate:missing=true", true),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// compartment

#[test]
fn patient_compartment() {
    assert_eq!(
        patient_compartment_params("Observation"),
        ["subject", "performer"]
    );
    assert!(patient_compartment_params("Practitioner").is_empty());
    assert!(patient_compartment_params("Nope").is_empty());
    let o = observation();
    check(
        &o,
        &[
            ("_compartment=Patient/123", true),
            ("_compartment=Patient/9", false),
        ],
    );
    let by_performer =
        json!({"resourceType": "Observation", "performer": [{"reference": "Patient/9"}]});
    check(&by_performer, &[("_compartment=Patient/9", true)]);
    // A reference that the compartment definition does not list does not count.
    let focus = json!({"resourceType": "Observation", "focus": [{"reference": "Patient/9"}]});
    check(&focus, &[("_compartment=Patient/9", false)]);
    let p = json!({"resourceType": "Patient", "id": "9", "link": [{"other": {"reference": "Patient/10"}, "type": "seealso"}]});
    check(
        &p,
        &[
            ("_compartment=Patient/9", true),
            ("_compartment=Patient/10", true),
            ("_compartment=Patient/11", false),
        ],
    );
    // Any type's compartment: the resource's accounts (`meta.account`, `meta.accounts`).
    let other = vec![Clause {
        any: vec![Condition::Compartment {
            compartment_type: "Practitioner".into(),
            id: "1".into(),
        }],
    }];
    assert_eq!(matches(&o, &other), Ok(false));
    let in_accounts = json!({"resourceType": "Observation",
        "meta": {"account": {"reference": "Organization/1"},
            "accounts": [{"reference": "Practitioner/1"}, {"reference": "Patient/12"}]}});
    assert_eq!(matches(&in_accounts, &other), Ok(true));
    check(
        &in_accounts,
        &[
            ("_compartment=Organization/1", true),
            ("_compartment=Patient/12", true),
            ("_compartment=Organization/2", false),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// what cannot be decided

#[test]
fn chains_and_has_are_unknown_and_fail_closed() {
    let o = observation();
    let (_, chain) = parse_criteria("Observation?patient.name=smith").unwrap();
    assert!(matches!(
        matches(&o, &chain),
        Err(MatchError::Unsupported(_))
    ));
    let (_, has) = parse_criteria("Patient?_has:Observation:patient:code=1").unwrap();
    let p = json!({"resourceType": "Patient", "id": "1"});
    assert!(matches!(matches(&p, &has), Err(MatchError::Unsupported(_))));
    // false AND unknown is false; true AND unknown is unknown.
    let (_, a) = parse_criteria("Observation?status=preliminary&patient.name=smith").unwrap();
    assert_eq!(matches(&o, &a), Ok(false));
    let (_, b) = parse_criteria("Observation?patient.name=smith&status=preliminary").unwrap();
    assert_eq!(matches(&o, &b), Ok(false));
    let (_, c) = parse_criteria("Observation?status=final&patient.name=smith").unwrap();
    assert!(matches(&o, &c).is_err());
    // true OR unknown is true.
    let chain_condition = chain[0].any[0].clone();
    let or = vec![Clause {
        any: vec![chain_condition.clone(), Condition::Id("o1".into())],
    }];
    assert_eq!(matches(&o, &or), Ok(true));
    let or_false = vec![Clause {
        any: vec![chain_condition, Condition::Id("zz".into())],
    }];
    assert!(matches(&o, &or_false).is_err());
}

#[test]
fn edge_cases() {
    // No clauses: everything matches; an empty clause: nothing.
    let o = observation();
    assert_eq!(matches(&o, &[]), Ok(true));
    assert_eq!(matches(&o, &[Clause { any: vec![] }]), Ok(false));
    assert!(matches!(
        matches(&json!({"id": "x"}), &[]),
        Err(MatchError::NotAResource(_))
    ));
    // A test of another type than the parameter's values never matches.
    let wrong = vec![Clause {
        any: vec![Condition::Param {
            code: "status".into(),
            test: Test::Date(DateTest {
                prefix: Prefix::Eq,
                start: 0,
                end: 1,
            }),
        }],
    }];
    assert_eq!(matches(&o, &wrong), Ok(false));
    // matches and matches_entries agree.
    let (_, clauses) =
        parse_criteria("Observation?code=8480-6&subject=Patient/123&date=2020-01-02").unwrap();
    let extracted = extract(&o);
    assert_eq!(matches(&o, &clauses), Ok(true));
    assert_eq!(
        matches_entries("Observation", "o1", 0, &extracted, &clauses),
        Ok(true)
    );
}

#[test]
fn token_predicate_table() {
    // (searched system, searched code, stored system, stored code) → match
    let cases = [
        (None, Some("a"), None, Some("a"), true),
        (None, Some("a"), Some("s"), Some("a"), true),
        (Some(""), Some("a"), None, Some("a"), true),
        (Some(""), Some("a"), Some("s"), Some("a"), false),
        (Some("s"), Some("a"), Some("s"), Some("a"), true),
        (Some("s"), Some("a"), Some("S"), Some("a"), false),
        (Some("s"), None, Some("s"), None, true),
        (Some("s"), None, Some("s"), Some("b"), true),
        (Some("s"), None, None, Some("b"), false),
        (None, Some("a"), None, Some("A"), false),
        (None, Some("a"), None, None, false),
    ];
    for (ss, sc, ts, tc, expected) in cases {
        assert_eq!(
            token_code_matches(ss, sc, ts, tc),
            expected,
            "{ss:?}|{sc:?} vs {ts:?}|{tc:?}"
        );
    }
    // A hand-built :not on a Param.
    let not = vec![Clause {
        any: vec![Condition::Param {
            code: "code".into(),
            test: Test::Token(TokenTest {
                kind: TokenKind::Not,
                system: None,
                code: Some("abc".into()),
            }),
        }],
    }];
    assert_eq!(matches(&observation(), &not), Ok(false));
}
