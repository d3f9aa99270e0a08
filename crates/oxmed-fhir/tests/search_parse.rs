//! Parsing of search query strings and criteria into `SearchRequest`s: every rule of
//! `search::parse`, and each way a query is refused.

use oxmed_fhir::index::parse_date_range;
use oxmed_fhir::search::parse::{ParseOptions, parse_criteria, parse_search};
use oxmed_fhir::search::{
    Clause, Condition, DateTest, Include, Prefix, QuantityTest, ReferenceTest, SearchError,
    SearchRequest, SortKey, StringTest, Summary, Test, TokenKind, TokenTest, Total, UriTest,
};

fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn with(
    t: Option<&str>,
    query: &[(&str, &str)],
    opts: &ParseOptions,
) -> Result<SearchRequest, SearchError> {
    parse_search(t, &pairs(query), opts)
}

fn ok(t: &str, query: &[(&str, &str)]) -> SearchRequest {
    match with(Some(t), query, &ParseOptions::default()) {
        Ok(r) => r,
        Err(e) => panic!("{t}?{query:?}: {e:?}"),
    }
}

fn err(t: &str, query: &[(&str, &str)]) -> SearchError {
    match with(Some(t), query, &ParseOptions::default()) {
        Ok(r) => panic!("{t}?{query:?} parsed: {r:?}"),
        Err(e) => e,
    }
}

fn lenient() -> ParseOptions {
    ParseOptions {
        lenient: true,
        ..ParseOptions::default()
    }
}

/// The single condition of a one-parameter query.
fn one(t: &str, key: &str, value: &str) -> Condition {
    let r = ok(t, &[(key, value)]);
    match r.filters.as_slice() {
        [Clause { any }] if any.len() == 1 => any[0].clone(),
        other => panic!("{key}={value}: expected one condition, got {other:?}"),
    }
}

fn test_of(c: Condition) -> Test {
    match c {
        Condition::Param { test, .. } => test,
        other => panic!("not a Param: {other:?}"),
    }
}

fn param(code: &str, test: Test) -> Condition {
    Condition::Param {
        code: code.into(),
        test,
    }
}

fn token(kind: TokenKind, system: Option<&str>, code: Option<&str>) -> Test {
    Test::Token(TokenTest {
        kind,
        system: system.map(Into::into),
        code: code.map(Into::into),
    })
}

fn range(s: &str) -> (i64, i64) {
    parse_date_range(s).unwrap_or_else(|| panic!("bad date {s}"))
}

fn date(prefix: Prefix, s: &str) -> DateTest {
    let (start, end) = range(s);
    DateTest { prefix, start, end }
}

fn assert_names(e: &SearchError, parameter: &str) {
    assert_eq!(e.parameter, parameter, "{e:?}");
    assert!(!e.message.is_empty());
}

// ---------------------------------------------------------------------------------------------
// defaults and structure

#[test]
fn defaults() {
    let r = ok("Patient", &[]);
    assert_eq!(r.resource_types, vec!["Patient"]);
    assert!(r.filters.is_empty());
    assert_eq!(r.count, 20);
    assert_eq!(r.offset, 0);
    assert_eq!(r.cursor, None);
    assert_eq!(r.total, Total::None);
    assert_eq!(r.summary, Summary::False);
    assert_eq!(r.elements, None);
    assert!(r.sort.is_empty() && r.include.is_empty() && r.revinclude.is_empty());
    assert!(r.ignored.is_empty());
}

#[test]
fn unknown_resource_type_is_refused() {
    let e = with(Some("Patientx"), &[], &ParseOptions::default()).unwrap_err();
    assert!(e.message.contains("Patientx"), "{e:?}");
}

#[test]
fn commas_are_or_and_repetition_is_and() {
    let r = ok("Patient", &[("name", "a,b"), ("name", "c")]);
    assert_eq!(
        r.filters,
        vec![
            Clause {
                any: vec![
                    param("name", Test::String(StringTest::StartsWith("a".into()))),
                    param("name", Test::String(StringTest::StartsWith("b".into()))),
                ]
            },
            Clause {
                any: vec![param(
                    "name",
                    Test::String(StringTest::StartsWith("c".into()))
                )]
            },
        ]
    );
}

#[test]
fn escapes() {
    let r = ok("Patient", &[("name", r"a\,b,c\\")]);
    assert_eq!(
        r.filters[0].any,
        vec![
            param("name", Test::String(StringTest::StartsWith("a,b".into()))),
            param("name", Test::String(StringTest::StartsWith(r"c\".into()))),
        ]
    );
    assert_eq!(
        test_of(one("Observation", "code", r"http://s|a\|b")),
        token(TokenKind::Eq, Some("http://s"), Some("a|b"))
    );
    assert_eq!(
        test_of(one("Patient", "name:exact", r"x\$y")),
        Test::String(StringTest::Exact("x$y".into()))
    );
}

#[test]
fn empty_values_are_skipped_but_empty_list_items_are_not() {
    assert!(ok("Patient", &[("name", "")]).filters.is_empty());
    assert_names(&err("Patient", &[("name", "a,")]), "name");
    assert_names(&err("Patient", &[("name", ",a")]), "name");
}

#[test]
fn overlong_values_and_names_are_refused() {
    let long = "x".repeat(10 * 1024);
    assert_names(&err("Patient", &[("name", &long)]), "name");
    // Even lenient mode does not take it, and even for an unknown parameter.
    assert!(with(Some("Patient"), &[("nope", &long)], &lenient()).is_err());
    assert!(
        err("Patient", &[("name", &"x".repeat(4097))])
            .message
            .contains("4096")
    );
    ok("Patient", &[("name", &"x".repeat(4096))]);
    assert!(with(Some("Patient"), &[(&"n".repeat(300), "x")], &lenient()).is_err());
}

// ---------------------------------------------------------------------------------------------
// string

#[test]
fn strings() {
    assert_eq!(
        test_of(one("Patient", "name", "Éloïse")),
        Test::String(StringTest::StartsWith("eloise".into()))
    );
    assert_eq!(
        test_of(one("Patient", "name:contains", "MÜL")),
        Test::String(StringTest::Contains("mul".into()))
    );
    assert_eq!(
        test_of(one("Patient", "name:exact", "Éloïse")),
        Test::String(StringTest::Exact("Éloïse".into()))
    );
    assert_names(&err("Patient", &[("name:below", "x")]), "name:below");
}

// ---------------------------------------------------------------------------------------------
// token

#[test]
fn token_forms() {
    assert_eq!(
        test_of(one("Observation", "code", "1234-5")),
        token(TokenKind::Eq, None, Some("1234-5"))
    );
    assert_eq!(
        test_of(one("Observation", "code", "http://loinc.org|1234-5")),
        token(TokenKind::Eq, Some("http://loinc.org"), Some("1234-5"))
    );
    assert_eq!(
        test_of(one("Observation", "code", "|1234-5")),
        token(TokenKind::Eq, Some(""), Some("1234-5"))
    );
    assert_eq!(
        test_of(one("Observation", "code", "http://loinc.org|")),
        token(TokenKind::Eq, Some("http://loinc.org"), None)
    );
    assert_eq!(
        test_of(one("Patient", "active", "true")),
        token(TokenKind::Eq, None, Some("true"))
    );
    assert_names(&err("Observation", &[("code", "|")]), "code");
    assert_names(&err("Observation", &[("code", "a|b|c")]), "code");
}

#[test]
fn token_modifiers() {
    assert_eq!(
        test_of(one("Observation", "code:text", "Blood Pressüre")),
        token(TokenKind::Text, None, Some("blood pressure"))
    );
    assert_eq!(
        test_of(one(
            "Patient",
            "identifier:of-type",
            "http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053"
        )),
        Test::Token(TokenTest {
            kind: TokenKind::OfType {
                value: "446053".into()
            },
            system: Some("http://terminology.hl7.org/CodeSystem/v2-0203".into()),
            code: Some("MR".into()),
        })
    );
    assert_names(
        &err("Patient", &[("identifier:of-type", "MR|446053")]),
        "identifier:of-type",
    );
    // Only on identifiers.
    assert_names(
        &err("Observation", &[("code:of-type", "a|b|c")]),
        "code:of-type",
    );
    // Terminology modifiers are not supported.
    assert_names(&err("Observation", &[("code:in", "http://vs")]), "code:in");
    assert_names(&err("Observation", &[("code:bogus", "x")]), "code:bogus");
}

#[test]
fn token_not_with_a_list_means_none_of_them() {
    let r = ok(
        "Observation",
        &[("status:not", "cancelled,entered-in-error")],
    );
    assert_eq!(
        r.filters,
        vec![
            Clause {
                any: vec![param(
                    "status",
                    token(TokenKind::Not, None, Some("cancelled"))
                )]
            },
            Clause {
                any: vec![param(
                    "status",
                    token(TokenKind::Not, None, Some("entered-in-error"))
                )]
            },
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// missing

#[test]
fn missing() {
    assert_eq!(
        one("Patient", "birthdate:missing", "true"),
        Condition::Missing {
            code: "birthdate".into(),
            missing: true
        }
    );
    assert_eq!(
        one("Observation", "subject:missing", "false"),
        Condition::Missing {
            code: "subject".into(),
            missing: false
        }
    );
    for v in ["yes", "TRUE", "true,false", "1"] {
        assert_names(&err("Patient", &[("name:missing", v)]), "name:missing");
    }
    assert_names(&err("Patient", &[("nope:missing", "true")]), "nope:missing");
}

// ---------------------------------------------------------------------------------------------
// reference

fn local(t: Option<&str>, id: &str) -> Test {
    Test::Reference(ReferenceTest::Local {
        target_type: t.map(Into::into),
        id: id.into(),
    })
}

#[test]
fn references() {
    assert_eq!(
        test_of(one("Observation", "subject", "Patient/123")),
        local(Some("Patient"), "123")
    );
    assert_eq!(
        test_of(one("Observation", "subject", "123")),
        local(None, "123")
    );
    assert_eq!(
        test_of(one("Observation", "subject:Patient", "123")),
        local(Some("Patient"), "123")
    );
    assert_eq!(
        test_of(one("Observation", "subject", "Patient/123/_history/4")),
        local(Some("Patient"), "123")
    );
    assert_eq!(
        test_of(one(
            "Observation",
            "subject",
            "http://elsewhere.org/fhir/Patient/123"
        )),
        Test::Reference(ReferenceTest::Url(
            "http://elsewhere.org/fhir/Patient/123".into()
        ))
    );
    assert_eq!(
        test_of(one("Observation", "subject", "urn:uuid:0b1c")),
        Test::Reference(ReferenceTest::Url("urn:uuid:0b1c".into()))
    );
    // Not a target of Observation.subject.
    assert_names(
        &err("Observation", &[("subject", "Practitioner/1")]),
        "subject",
    );
    assert_names(
        &err("Observation", &[("subject:Practitioner", "1")]),
        "subject:Practitioner",
    );
    assert_names(
        &err("Observation", &[("subject:Patient", "Group/1")]),
        "subject:Patient",
    );
    assert_names(&err("Observation", &[("subject", "Nope/1")]), "subject");
    assert_names(&err("Observation", &[("subject", "a b")]), "subject");
    assert_names(&err("Observation", &[("subject", "x/y/z")]), "subject");
    assert_names(
        &err("Observation", &[("subject:identifier", "http://s|1")]),
        "subject:identifier",
    );
    let r = with(
        Some("Observation"),
        &[("subject:identifier", "http://s|1")],
        &lenient(),
    )
    .unwrap();
    assert!(r.filters.is_empty());
    assert_eq!(r.ignored.len(), 1);
}

#[test]
fn absolute_references_to_this_server_are_local() {
    let opts = ParseOptions {
        base_url: Some("http://localhost:8103/fhir/R4/".into()),
        ..ParseOptions::default()
    };
    let r = with(
        Some("Observation"),
        &[(
            "subject",
            "http://localhost:8103/fhir/R4/Patient/9/_history/2",
        )],
        &opts,
    )
    .unwrap();
    assert_eq!(
        r.filters[0].any,
        vec![param("subject", local(Some("Patient"), "9"))]
    );
    // The same URL without base_url is matched as written.
    let r = with(
        Some("Observation"),
        &[("subject", "http://localhost:8103/fhir/R4/Patient/9")],
        &ParseOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        &r.filters[0].any[0],
        Condition::Param {
            test: Test::Reference(ReferenceTest::Url(_)),
            ..
        }
    ));
    // On this server but not Type/id.
    assert!(
        with(
            Some("Observation"),
            &[("subject", "http://localhost:8103/fhir/R4/metadata")],
            &opts
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// chains and _has

fn chain(code: &str, t: &str, inner: Condition) -> Condition {
    Condition::Chain {
        reference_code: code.into(),
        target_type: t.into(),
        inner: Box::new(inner),
    }
}

#[test]
fn chains() {
    let smith = param("name", Test::String(StringTest::StartsWith("smith".into())));
    assert_eq!(
        one("Observation", "subject:Patient.name", "Smith"),
        chain("subject", "Patient", smith.clone())
    );
    // One possible target: inferred.
    assert_eq!(
        one("Observation", "patient.name", "smith"),
        chain("patient", "Patient", smith)
    );
    // Several possible targets: refused, asking for :Type.
    let e = err("Observation", &[("subject.name", "smith")]);
    assert_names(&e, "subject.name");
    assert!(e.message.contains("subject:"), "{e:?}");
    // Two levels, and a modifier at the end.
    assert_eq!(
        one(
            "Observation",
            "subject:Patient.organization.name:exact",
            "Acme"
        ),
        chain(
            "subject",
            "Patient",
            chain(
                "organization",
                "Organization",
                param("name", Test::String(StringTest::Exact("Acme".into())))
            )
        )
    );
    // _id and :missing at the end of a chain.
    assert_eq!(
        one("Observation", "patient._id", "p1"),
        chain("patient", "Patient", Condition::Id("p1".into()))
    );
    assert_eq!(
        one("Observation", "patient.birthdate:missing", "true"),
        chain(
            "patient",
            "Patient",
            Condition::Missing {
                code: "birthdate".into(),
                missing: true
            }
        )
    );
    // An OR list becomes one chain per value.
    let r = ok("Observation", &[("patient.name", "a,b")]);
    assert_eq!(r.filters[0].any.len(), 2);
}

#[test]
fn chain_errors() {
    // Through a token parameter.
    let e = err("Observation", &[("code.name", "x")]);
    assert_names(&e, "code.name");
    assert!(e.message.contains("code"), "{e:?}");
    // Unknown parameter on the target type.
    assert_names(
        &err("Observation", &[("patient.nope", "x")]),
        "patient.nope",
    );
    // A target type the link cannot refer to, and something that is no type.
    assert_names(
        &err("Observation", &[("subject:Practitioner.name", "x")]),
        "subject:Practitioner.name",
    );
    assert_names(
        &err("Observation", &[("subject:exact.name", "x")]),
        "subject:exact.name",
    );
    // Malformed value at the end of a chain.
    assert_names(
        &err("Observation", &[("patient.birthdate", "notadate")]),
        "patient.birthdate",
    );
    // Too deep.
    let deep = "patient.organization.partof.partof.partof.name";
    assert_names(&err("Observation", &[(deep, "x")]), deep);
}

#[test]
fn has() {
    let code = param("code", token(TokenKind::Eq, None, Some("1234")));
    assert_eq!(
        one("Patient", "_has:Observation:patient:code", "1234"),
        Condition::Has {
            source_type: "Observation".into(),
            reference_code: "patient".into(),
            inner: Box::new(code),
        }
    );
    assert_eq!(
        one(
            "Patient",
            "_has:Observation:patient:_has:AuditEvent:entity:agent",
            "Practitioner/1"
        ),
        Condition::Has {
            source_type: "Observation".into(),
            reference_code: "patient".into(),
            inner: Box::new(Condition::Has {
                source_type: "AuditEvent".into(),
                reference_code: "entity".into(),
                inner: Box::new(param("agent", local(Some("Practitioner"), "1"))),
            }),
        }
    );
    // A modifier on the inner parameter.
    assert!(matches!(
        one("Patient", "_has:Observation:patient:code:not", "x"),
        Condition::Has { inner, .. } if matches!(*inner, Condition::Param { test: Test::Token(TokenTest { kind: TokenKind::Not, .. }), .. })
    ));
    for bad in [
        "_has:Observation:patient",
        "_has:Nope:patient:code",
        "_has:Observation:nope:code",
        "_has:Observation:code:code",
        "_has:Observation:patient:nope",
        // Observation.patient cannot refer to an Organization.
        "_has",
    ] {
        assert_names(&err("Patient", &[(bad, "x")]), bad);
    }
    assert_names(
        &err("Organization", &[("_has:Observation:patient:code", "x")]),
        "_has:Observation:patient:code",
    );
}

// ---------------------------------------------------------------------------------------------
// date

#[test]
fn dates() {
    assert_eq!(
        test_of(one("Patient", "birthdate", "2020")),
        Test::Date(date(Prefix::Eq, "2020"))
    );
    for (p, prefix) in [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("gt", Prefix::Gt),
        ("lt", Prefix::Lt),
        ("ge", Prefix::Ge),
        ("le", Prefix::Le),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
        ("ap", Prefix::Ap),
    ] {
        assert_eq!(
            test_of(one("Patient", "birthdate", &format!("{p}2020-03"))),
            Test::Date(date(prefix, "2020-03")),
            "{p}"
        );
    }
    // A time without zone is UTC; an unencoded '+' (decoded as a space) is a '+'.
    assert_eq!(
        test_of(one("Observation", "date", "ge2020-01-01T10:00:00")),
        Test::Date(date(Prefix::Ge, "2020-01-01T10:00:00Z"))
    );
    assert_eq!(
        test_of(one("Observation", "date", "2020-01-01T12:00:00 02:00")),
        Test::Date(date(Prefix::Eq, "2020-01-01T10:00:00Z"))
    );
    assert_eq!(
        one("Patient", "_lastUpdated", "gt2021-05-01T00:00:00.000Z"),
        Condition::LastUpdated(date(Prefix::Gt, "2021-05-01T00:00:00.000Z"))
    );
    let r = ok("Patient", &[("_lastUpdated", "ge2020,lt2019")]);
    assert_eq!(r.filters[0].any.len(), 2);
}

#[test]
fn bad_dates() {
    let e = err("Patient", &[("birthdate", "notadate")]);
    assert_names(&e, "birthdate");
    assert!(e.message.contains("notadate"), "{e:?}");
    let e = err("Patient", &[("birthdate", "xx2020")]);
    assert_names(&e, "birthdate");
    assert!(e.message.contains("prefix"), "{e:?}");
    for bad in ["2020-13", "2020-02-30", "ge", "2020-01-01T25:00", "20"] {
        assert_names(&err("Patient", &[("birthdate", bad)]), "birthdate");
    }
    assert_names(
        &err("Patient", &[("_lastUpdated", "yesterday")]),
        "_lastUpdated",
    );
    assert_names(
        &err("Patient", &[("birthdate:exact", "2020")]),
        "birthdate:exact",
    );
    assert_names(
        &err("Patient", &[("_lastUpdated:missing", "true")]),
        "_lastUpdated:missing",
    );
}

// ---------------------------------------------------------------------------------------------
// number and quantity

#[test]
fn numbers() {
    let Test::Number(n) = test_of(one("RiskAssessment", "probability", "100")) else {
        panic!()
    };
    assert_eq!(
        (n.prefix, n.value, n.low, n.high),
        (Prefix::Eq, 100.0, 99.5, 100.5)
    );
    let Test::Number(n) = test_of(one("RiskAssessment", "probability", "100.00")) else {
        panic!()
    };
    assert_eq!((n.value, n.low, n.high), (100.0, 99.995, 100.005));
    let Test::Number(n) = test_of(one("RiskAssessment", "probability", "1e2")) else {
        panic!()
    };
    assert_eq!((n.value, n.low, n.high), (100.0, 50.0, 150.0));
    let Test::Number(n) = test_of(one("RiskAssessment", "probability", "gt0.8")) else {
        panic!()
    };
    assert_eq!((n.prefix, n.value), (Prefix::Gt, 0.8));
    let Test::Number(n) = test_of(one("RiskAssessment", "probability", "le-3")) else {
        panic!()
    };
    assert_eq!(
        (n.prefix, n.value, n.low, n.high),
        (Prefix::Le, -3.0, -3.5, -2.5)
    );
    for bad in ["abc", "xx5", "1.", "5 mg", "1,", "0x10"] {
        assert_names(
            &err("RiskAssessment", &[("probability", bad)]),
            "probability",
        );
    }
}

#[test]
fn quantities() {
    let q = |v: &str| match test_of(one("Observation", "value-quantity", v)) {
        Test::Quantity(q) => q,
        other => panic!("{other:?}"),
    };
    let QuantityTest {
        number,
        system,
        code,
    } = q("5.4|http://unitsofmeasure.org|mg");
    assert_eq!((number.prefix, number.value), (Prefix::Eq, 5.4));
    assert_eq!(
        (system.as_deref(), code.as_deref()),
        (Some("http://unitsofmeasure.org"), Some("mg"))
    );
    let QuantityTest {
        number,
        system,
        code,
    } = q("gt5.4||mg");
    assert_eq!(
        (number.prefix, system, code.as_deref()),
        (Prefix::Gt, None, Some("mg"))
    );
    let QuantityTest {
        number,
        system,
        code,
    } = q("ap100");
    assert_eq!((number.prefix, system, code), (Prefix::Ap, None, None));
    let QuantityTest { system, code, .. } = q("5|http://unitsofmeasure.org|");
    assert_eq!(
        (system.as_deref(), code),
        (Some("http://unitsofmeasure.org"), None)
    );
    for bad in ["5|mg", "mg", "5|a|b|c", "xx5||mg"] {
        assert_names(
            &err("Observation", &[("value-quantity", bad)]),
            "value-quantity",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// uri

#[test]
fn uris() {
    assert_eq!(
        test_of(one("ValueSet", "url", "http://acme.org/vs")),
        Test::Uri(UriTest::Eq("http://acme.org/vs".into()))
    );
    assert_eq!(
        test_of(one("ValueSet", "url:below", "http://acme.org/fhir")),
        Test::Uri(UriTest::Below("http://acme.org/fhir".into()))
    );
    assert_eq!(
        test_of(one(
            "ValueSet",
            "url:above",
            "http://acme.org/fhir/ValueSet/1"
        )),
        Test::Uri(UriTest::Above("http://acme.org/fhir/ValueSet/1".into()))
    );
    assert_eq!(
        test_of(one("Patient", "_profile", "http://p")),
        Test::Uri(UriTest::Eq("http://p".into()))
    );
    assert_names(&err("ValueSet", &[("url:contains", "x")]), "url:contains");
}

// ---------------------------------------------------------------------------------------------
// composite

#[test]
fn composites() {
    let Test::Composite(parts) = test_of(one(
        "Observation",
        "code-value-quantity",
        "http://loinc.org|8480-6$gt100",
    )) else {
        panic!()
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[0],
        token(TokenKind::Eq, Some("http://loinc.org"), Some("8480-6"))
    );
    let Test::Quantity(q) = &parts[1] else {
        panic!()
    };
    assert_eq!((q.number.prefix, q.number.value), (Prefix::Gt, 100.0));
    let Test::Composite(parts) =
        test_of(one("Observation", "code-value-quantity", r"a\$b$5||mm[Hg]"))
    else {
        panic!()
    };
    assert_eq!(parts[0], token(TokenKind::Eq, None, Some("a$b")));
    let Test::Composite(parts) = test_of(one("Observation", "code-value-date", "x$ge2020")) else {
        panic!()
    };
    assert_eq!(parts[1], Test::Date(date(Prefix::Ge, "2020")));
    let r = ok("Observation", &[("code-value-concept", "a$b,c$d")]);
    assert_eq!(r.filters[0].any.len(), 2);
    for bad in ["http://loinc.org|8480-6", "a$b$c", "a$", "a$xx5", "$5"] {
        assert_names(
            &err("Observation", &[("code-value-quantity", bad)]),
            "code-value-quantity",
        );
    }
    assert_eq!(
        one("Observation", "code-value-quantity:missing", "true"),
        Condition::Missing {
            code: "code-value-quantity".into(),
            missing: true
        }
    );
    assert_names(
        &err("Observation", &[("code-value-quantity:exact", "a$5")]),
        "code-value-quantity:exact",
    );
}

// ---------------------------------------------------------------------------------------------
// special parameters

#[test]
fn ids_and_meta() {
    let r = ok("Patient", &[("_id", "a,b")]);
    assert_eq!(
        r.filters[0].any,
        vec![Condition::Id("a".into()), Condition::Id("b".into())]
    );
    assert_names(&err("Patient", &[("_id:not", "a")]), "_id:not");
    assert_eq!(
        test_of(one("Patient", "_tag", "http://s|t")),
        token(TokenKind::Eq, Some("http://s"), Some("t"))
    );
    assert_eq!(
        test_of(one("Patient", "_security:not", "http://s|R")),
        token(TokenKind::Not, Some("http://s"), Some("R"))
    );
    assert_eq!(
        test_of(one("Patient", "_source", "http://src")),
        Test::Uri(UriTest::Eq("http://src".into()))
    );
}

#[test]
fn compartment() {
    assert_eq!(
        one("Observation", "_compartment", "Patient/123"),
        Condition::Compartment {
            compartment_type: "Patient".into(),
            id: "123".into()
        }
    );
    assert_eq!(
        one("Observation", "_compartment", "Organization/1"),
        Condition::Compartment {
            compartment_type: "Organization".into(),
            id: "1".into()
        }
    );
    for bad in ["123", "http://x/Patient/1", "Patient/"] {
        assert_names(
            &err("Observation", &[("_compartment", bad)]),
            "_compartment",
        );
    }
}

#[test]
fn unsupported_parameters() {
    for key in ["_text", "_content", "_filter", "_query", "_list"] {
        let e = err("Patient", &[(key, "x")]);
        assert_names(&e, key);
        assert!(e.message.contains("not supported"), "{e:?}");
        let r = with(Some("Patient"), &[(key, "x")], &lenient()).unwrap();
        assert!(r.filters.is_empty());
        assert_eq!(r.ignored.len(), 1, "{key}");
    }
    assert_names(&err("Location", &[("near", "1|2|3|km")]), "near");
    assert_names(&err("Patient", &[("_type", "Patient")]), "_type");
}

#[test]
fn unknown_parameters_and_modifiers() {
    let e = err("Patient", &[("nope", "x")]);
    assert_names(&e, "nope");
    assert!(e.message.contains("nope"));
    assert_names(&err("Patient", &[("name:nope", "x")]), "name:nope");
    assert_names(&err("Patient", &[("name:", "x")]), "name:");
    assert_names(&err("Patient", &[("code", "x")]), "code");
}

#[test]
fn lenient_mode_ignores_unknown_but_not_malformed() {
    let r = with(
        Some("Patient"),
        &[
            ("nope", "x"),
            ("name", "smith"),
            ("name:nope", "y"),
            ("_foo", "1"),
            ("gender:in", "http://vs"),
        ],
        &lenient(),
    )
    .unwrap();
    assert_eq!(r.filters.len(), 1);
    assert_eq!(r.ignored.len(), 4, "{:?}", r.ignored);
    assert!(r.ignored.iter().any(|m| m.contains("nope")));
    // Malformed values of known parameters stay errors.
    for (k, v) in [
        ("birthdate", "notadate"),
        ("name:missing", "maybe"),
        ("_count", "abc"),
        ("general-practitioner", "Patient/1"),
        ("_sort", "nope"),
    ] {
        assert!(
            with(Some("Patient"), &[(k, v)], &lenient()).is_err(),
            "{k}={v}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// result parameters

#[test]
fn count_and_offset() {
    assert_eq!(ok("Patient", &[("_count", "50")]).count, 50);
    assert_eq!(ok("Patient", &[("_count", "0")]).count, 0);
    assert_eq!(ok("Patient", &[("_count", "5000")]).count, 1000);
    assert_eq!(
        ok("Patient", &[("_count", "99999999999999999999999")]).count,
        1000
    );
    let opts = ParseOptions {
        max_count: 10,
        default_count: 20,
        ..ParseOptions::default()
    };
    assert_eq!(with(Some("Patient"), &[], &opts).unwrap().count, 10);
    for bad in ["-1", "abc", "", "1.5", "+1", " 1"] {
        assert_names(&err("Patient", &[("_count", bad)]), "_count");
    }
    assert_names(
        &err("Patient", &[("_count", "1"), ("_count", "2")]),
        "_count",
    );
    assert_eq!(ok("Patient", &[("_offset", "40")]).offset, 40);
    assert_names(&err("Patient", &[("_offset", "-1")]), "_offset");
    assert_eq!(
        ok("Patient", &[("_cursor", "abc.def==")]).cursor.as_deref(),
        Some("abc.def==")
    );
    assert_names(&err("Patient", &[("_count:x", "1")]), "_count:x");
}

#[test]
fn sort() {
    let r = ok(
        "Patient",
        &[("_sort", "-birthdate,name"), ("_sort", "_id,-_lastUpdated")],
    );
    let keys: Vec<(String, bool)> = r
        .sort
        .into_iter()
        .map(|SortKey { code, descending }| (code, descending))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("birthdate".to_string(), true),
            ("name".to_string(), false),
            ("_id".to_string(), false),
            ("_lastUpdated".to_string(), true),
        ]
    );
    ok("Observation", &[("_sort", "subject,value-quantity")]);
    for bad in ["unknown", "", "name,", "-", "code-value-quantity"] {
        let t = if bad.starts_with("code") {
            "Observation"
        } else {
            "Patient"
        };
        assert_names(&err(t, &[("_sort", bad)]), "_sort");
    }
    assert_names(&err("Location", &[("_sort", "near")]), "_sort");
}

#[test]
fn total_summary_elements_format() {
    assert_eq!(
        ok("Patient", &[("_total", "accurate")]).total,
        Total::Accurate
    );
    assert_eq!(
        ok("Patient", &[("_total", "estimate")]).total,
        Total::Estimate
    );
    assert_eq!(ok("Patient", &[("_total", "none")]).total, Total::None);
    assert_names(&err("Patient", &[("_total", "all")]), "_total");
    for (v, s) in [
        ("true", Summary::True),
        ("false", Summary::False),
        ("text", Summary::Text),
        ("data", Summary::Data),
        ("count", Summary::Count),
    ] {
        assert_eq!(ok("Patient", &[("_summary", v)]).summary, s);
    }
    assert_names(&err("Patient", &[("_summary", "yes")]), "_summary");
    assert_eq!(
        ok(
            "Patient",
            &[
                ("_elements", "identifier, name"),
                ("_elements", "name,birthDate")
            ]
        )
        .elements,
        Some(vec![
            "identifier".to_string(),
            "name".to_string(),
            "birthDate".to_string()
        ])
    );
    assert_names(&err("Patient", &[("_elements", "a,,b")]), "_elements");
    assert_names(&err("Patient", &[("_elements", "na me")]), "_elements");
    let r = ok("Patient", &[("_format", "json"), ("_pretty", "true")]);
    assert!(r.filters.is_empty() && r.ignored.is_empty());
}

#[test]
fn includes() {
    let inc = |source: &str, code: Option<&str>, target: Option<&str>, iterate: bool| Include {
        source_type: source.into(),
        reference_code: code.map(Into::into),
        target_type: target.map(Into::into),
        iterate,
    };
    let r = ok(
        "Observation",
        &[
            ("_include", "Observation:subject"),
            ("_include", "Observation:subject:Patient"),
            ("_include:iterate", "Patient:general-practitioner"),
            ("_include:recurse", "Patient:organization"),
            ("_include", "Observation:*"),
            ("_include", "*"),
            ("_revinclude", "Provenance:target"),
            ("_revinclude:iterate", "Observation:has-member:Observation"),
        ],
    );
    assert_eq!(
        r.include,
        vec![
            inc("Observation", Some("subject"), None, false),
            inc("Observation", Some("subject"), Some("Patient"), false),
            inc("Patient", Some("general-practitioner"), None, true),
            inc("Patient", Some("organization"), None, true),
            inc("Observation", None, None, false),
            inc("Observation", None, None, false),
        ]
    );
    assert_eq!(
        r.revinclude,
        vec![
            inc("Provenance", Some("target"), None, false),
            inc("Observation", Some("has-member"), Some("Observation"), true),
        ]
    );
    for bad in [
        "Observation",
        "Nope:subject",
        "Observation:nope",
        "Observation:code",
        "Observation:subject:Practitioner",
        "Observation:subject:Nope",
        "a:b:c:d",
    ] {
        assert_names(&err("Observation", &[("_include", bad)]), "_include");
    }
    assert_names(&err("Observation", &[("_revinclude", "*")]), "_revinclude");
    assert_names(
        &err("Observation", &[("_include:deep", "Observation:subject")]),
        "_include:deep",
    );
}

// ---------------------------------------------------------------------------------------------
// system-level search

#[test]
fn system_level() {
    let sys = |q: &[(&str, &str)]| with(None, q, &ParseOptions::default());
    let r = sys(&[("_type", "Patient,Practitioner"), ("name", "smith")]).unwrap();
    assert_eq!(r.resource_types, vec!["Patient", "Practitioner"]);
    assert_eq!(r.filters.len(), 1);
    // `name` is no parameter of Observation.
    assert_names(
        &sys(&[("_type", "Patient,Observation"), ("name", "x")]).unwrap_err(),
        "name",
    );
    // Without _type only the parameters of every resource.
    let r = sys(&[
        ("_id", "1"),
        ("_lastUpdated", "gt2020"),
        ("_tag", "t"),
        ("_sort", "-_lastUpdated"),
    ])
    .unwrap();
    assert!(r.resource_types.is_empty());
    assert_eq!(r.filters.len(), 3);
    assert_names(&sys(&[("name", "x")]).unwrap_err(), "name");
    assert_names(&sys(&[("_sort", "name")]).unwrap_err(), "_sort");
    assert_names(&sys(&[("_type", "Nope")]).unwrap_err(), "_type");
    assert_names(
        &sys(&[("_type", "Patient"), ("_type", "Group")]).unwrap_err(),
        "_type",
    );
    let r = sys(&[("_type", "Patient,Practitioner"), ("_sort", "name")]).unwrap();
    assert_eq!(r.sort.len(), 1);
    let r = with(None, &[("name", "x")], &lenient()).unwrap();
    assert_eq!(r.ignored.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// criteria

#[test]
fn criteria() {
    let (t, clauses) = parse_criteria("Observation?status=final&subject=Patient/1").unwrap();
    assert_eq!(t, "Observation");
    assert_eq!(
        clauses,
        vec![
            Clause {
                any: vec![param("status", token(TokenKind::Eq, None, Some("final")))]
            },
            Clause {
                any: vec![param("subject", local(Some("Patient"), "1"))]
            },
        ]
    );
    assert_eq!(
        parse_criteria("Patient").unwrap(),
        ("Patient".to_string(), vec![])
    );
    assert_eq!(
        parse_criteria("Patient?").unwrap(),
        ("Patient".to_string(), vec![])
    );
    let (_, clauses) =
        parse_criteria("Observation?code=http%3A%2F%2Floinc.org%7C1234&_compartment=Patient/7")
            .unwrap();
    assert_eq!(
        clauses[0].any,
        vec![param(
            "code",
            token(TokenKind::Eq, Some("http://loinc.org"), Some("1234"))
        )]
    );
    assert_eq!(
        clauses[1].any,
        vec![Condition::Compartment {
            compartment_type: "Patient".into(),
            id: "7".into()
        }]
    );
    let (_, clauses) = parse_criteria("Observation?date=ge2020-01-01T00:00:00+02:00").unwrap();
    assert_eq!(
        clauses[0].any,
        vec![param(
            "date",
            Test::Date(date(Prefix::Ge, "2019-12-31T22:00:00Z"))
        )]
    );
}

#[test]
fn criteria_errors() {
    for (bad, parameter) in [
        ("Nope?x=1", "criteria"),
        ("observation?status=final", "criteria"),
        ("Observation?nope=1", "nope"),
        ("Observation?status", "status"),
        ("Observation?status=", "status"),
        ("Observation?status=final&_count=10", "_count"),
        ("Observation?_sort=date", "_sort"),
        ("Observation?_include=Observation:subject", "_include"),
        (
            "Observation?_revinclude:iterate=Provenance:target",
            "_revinclude:iterate",
        ),
        ("Observation?_summary=true", "_summary"),
        ("Observation?_type=Patient", "_type"),
        ("Observation?_format=json", "_format"),
        ("Observation?code:in=http://vs", "code:in"),
        ("Observation?subject=%patient", "subject"),
        ("Observation?subject=%zz", "subject"),
        ("Observation?subject=%FF", "subject"),
        ("Observation?date=notadate", "date"),
        ("Observation?_text=x", "_text"),
    ] {
        match parse_criteria(bad) {
            Ok(r) => panic!("{bad} parsed: {r:?}"),
            Err(e) => assert_eq!(e.parameter, parameter, "{bad}: {e:?}"),
        }
    }
}
