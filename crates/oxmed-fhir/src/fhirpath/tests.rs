//! AccessPolicy write constraints: `%before` / `%after` bindings, the FHIRPath semantics they
//! rely on, and [`is_true`].

use serde_json::{Value, json};

use super::{Expression, Node, is_true};

const VARIABLES: [&str; 2] = ["before", "after"];

fn parse(expr: &str) -> Expression {
    let e = Expression::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    assert!(
        e.variables()
            .iter()
            .all(|v| VARIABLES.contains(&v.as_str())),
        "{expr} names {:?}",
        e.variables()
    );
    e
}

/// Whether a write from `before` (`None` on create) to `after` satisfies the constraint.
fn holds(expr: &str, before: Option<&Value>, after: &Value) -> bool {
    let e = parse(expr);
    is_true(&e.evaluate_with(after, &[("before", before), ("after", Some(after))]))
}

/// The result as JSON values, for checking unknown (empty) results.
fn values(expr: &str, before: Option<&Value>, after: &Value) -> Vec<Value> {
    let e = parse(expr);
    e.evaluate_with(after, &[("before", before), ("after", Some(after))])
        .iter()
        .map(|n| n.value().clone())
        .collect()
}

fn report(status: &str) -> Value {
    json!({
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": status,
        "subject": {"reference": "Patient/p1", "display": "Alice"},
        "code": {"coding": [
            {"system": "http://snomed.info/sct", "code": "15220000"},
            {"system": "http://loinc.org", "code": "58410-2"}
        ]},
        "identifier": [{"value": "a"}, {"value": "b"}],
        "effectiveDateTime": "2024-05-01T10:00:00Z"
    })
}

fn with(mut resource: Value, key: &str, value: Value) -> Value {
    resource[key] = value;
    resource
}

fn without(mut resource: Value, key: &str) -> Value {
    resource.as_object_mut().map(|o| o.remove(key));
    resource
}

#[test]
fn constraint_final_status_is_frozen() {
    let c = "%before.status != 'final' or %after.status = %before.status";
    // Not final before: any change.
    assert!(holds(c, Some(&report("preliminary")), &report("final")));
    assert!(holds(c, Some(&report("preliminary")), &report("cancelled")));
    // Final before: the status stays.
    assert!(holds(c, Some(&report("final")), &report("final")));
    assert!(!holds(c, Some(&report("final")), &report("amended")));
    // The status removed: `=` is unknown, and so is the `or`.
    let removed = without(report("final"), "status");
    assert!(!holds(c, Some(&report("final")), &removed));
    assert_eq!(
        values(c, Some(&report("final")), &removed),
        Vec::<Value>::new()
    );
    // Create: %before is empty, both sides are unknown, the constraint does not hold.
    assert!(!holds(c, None, &report("final")));
    assert_eq!(values(c, None, &report("final")), Vec::<Value>::new());
}

#[test]
fn constraint_after_status_is_draft() {
    let c = "%after.status = 'draft'";
    assert!(holds(c, None, &report("draft")));
    assert!(holds(c, Some(&report("final")), &report("draft")));
    assert!(!holds(c, None, &report("final")));
    assert_eq!(values(c, None, &report("final")), vec![json!(false)]);
    // No status: unknown, not true.
    assert!(!holds(c, None, &without(report("draft"), "status")));
}

#[test]
fn constraint_subject_is_kept_once_set() {
    let c = "%before.exists() implies %before.subject = %after.subject";
    // Create: nothing before, the implication holds.
    assert!(holds(c, None, &report("final")));
    assert_eq!(values(c, None, &report("final")), vec![json!(true)]);
    // The same Reference, its keys in another order: deep equality.
    let reordered = with(
        report("final"),
        "subject",
        json!({"display": "Alice", "reference": "Patient/p1"}),
    );
    assert!(holds(c, Some(&report("preliminary")), &reordered));
    // Another patient, or the same one with a changed or dropped element.
    for subject in [
        json!({"reference": "Patient/p2", "display": "Alice"}),
        json!({"reference": "Patient/p1"}),
        json!({"reference": "Patient/p1", "display": "Bob"}),
        json!({"reference": "Patient/p1", "display": "Alice", "type": "Patient"}),
    ] {
        let after = with(report("final"), "subject", subject.clone());
        assert!(!holds(c, Some(&report("final")), &after), "{subject}");
    }
    // The subject removed: `=` is unknown, `true implies {}` is unknown.
    let removed = without(report("final"), "subject");
    assert!(!holds(c, Some(&report("final")), &removed));
    assert_eq!(
        values(c, Some(&report("final")), &removed),
        Vec::<Value>::new()
    );
}

#[test]
fn constraint_requires_a_loinc_coding() {
    let c = "%after.code.coding.where(system='http://loinc.org').exists()";
    assert!(holds(c, None, &report("final")));
    let snomed_only = with(
        report("final"),
        "code",
        json!({"coding": [{"system": "http://snomed.info/sct", "code": "15220000"}]}),
    );
    assert!(!holds(c, None, &snomed_only));
    assert!(!holds(c, None, &without(report("final"), "code")));
    assert!(holds(
        "%after.code.coding.exists(system = %loinc)",
        None,
        &report("final")
    ));
    assert!(!holds(
        "%after.code.coding.exists(system = %loinc)",
        None,
        &snomed_only
    ));
}

#[test]
fn variables_are_listed_and_unbound_ones_fail_closed() {
    let e = Expression::parse(
        "%before.exists() implies (%secret = 1 or %`after`.x.where(%secret).exists() or %before.y)",
    )
    .unwrap();
    assert_eq!(e.variables(), ["before", "secret", "after"]);
    // Built-in constants are no variables.
    let builtins = Expression::parse(
        "%resource.id | %rootResource.id | %context.id | %ucum | %sct | %loinc | %`vs-x` | %'ext-y'",
    )
    .unwrap();
    assert!(builtins.variables().is_empty());
    assert_eq!(
        builtins
            .evaluate(&json!({"resourceType": "Basic", "id": "b"}))
            .iter()
            .map(|n| n.value().clone())
            .collect::<Vec<_>>(),
        vec![
            json!("b"),
            json!("http://unitsofmeasure.org"),
            json!("http://snomed.info/sct"),
            json!("http://loinc.org"),
            json!("http://hl7.org/fhir/ValueSet/x"),
            json!("http://hl7.org/fhir/StructureDefinition/y"),
        ]
    );
    // Variables inside function arguments and `iif` are found too.
    let nested = Expression::parse("a.select(b.all(%x)).exists(%y) | iif(%z, %v, %w)").unwrap();
    assert_eq!(nested.variables(), ["x", "y", "z", "v", "w"]);

    // `%secret` unbound: nothing, even where `%before` alone would make it true.
    let after = report("final");
    let vars = [("before", None), ("after", Some(&after))];
    assert!(e.evaluate_with(&after, &vars).is_empty());
    let only_before = Expression::parse("%before.exists() implies %secret").unwrap();
    assert!(only_before.evaluate_with(&after, &vars).is_empty());
    // Bound to nothing, it is the empty collection.
    let vars = [("before", None), ("secret", None)];
    assert!(is_true(&only_before.evaluate_with(&after, &vars)));
    // Without bindings at all, an expression with variables yields nothing.
    assert!(
        Expression::parse("%after.exists().not()")
            .unwrap()
            .evaluate(&after)
            .is_empty()
    );
    assert!(
        Expression::parse("%after.status")
            .unwrap()
            .evaluate(&after)
            .is_empty()
    );
}

#[test]
fn variable_bindings() {
    let after = report("final");
    let list = json!([1, null, 2, 3]);
    let null = Value::Null;
    let e = Expression::parse("%list.count() = 3 and %null.empty() and %after.id = id").unwrap();
    let vars = [
        ("list", Some(&list)),
        ("null", Some(&null)),
        ("after", Some(&after)),
    ];
    assert!(is_true(&e.evaluate_with(&after, &vars)));
    // `%resource` and the input are the resource evaluated against.
    let e = Expression::parse("%resource.id = 'r1' and id = 'r1' and %context.id = 'r1'").unwrap();
    assert!(is_true(&e.evaluate_with(&after, &[])));
}

#[test]
fn is_true_wants_exactly_one_true() {
    let (t, f, s, one) = (json!(true), json!(false), json!("true"), json!(1));
    assert!(is_true(&[Node::new(&t)]));
    assert!(!is_true(&[]));
    assert!(!is_true(&[Node::new(&f)]));
    assert!(!is_true(&[Node::new(&t), Node::new(&t)]));
    assert!(!is_true(&[Node::new(&s)]));
    assert!(!is_true(&[Node::new(&one)]));
    // A computed number is not a boolean either.
    let r = json!({"resourceType": "Basic"});
    assert!(!is_true(
        &Expression::parse("{}.count()").unwrap().evaluate(&r)
    ));
    assert!(!is_true(
        &Expression::parse("(true | false).count()")
            .unwrap()
            .evaluate(&r)
    ));
}

#[test]
fn three_valued_logic() {
    let r = json!({"resourceType": "Basic", "t": true, "f": false});
    let eval = |expr: &str| -> Option<bool> {
        let e = Expression::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        match e.evaluate(&r).as_slice() {
            [] => None,
            [n] => Some(n.value().as_bool().expect("boolean")),
            more => panic!("{expr}: {more:?}"),
        }
    };
    let operand = |v: Option<bool>| match v {
        Some(true) => "t",
        Some(false) => "f",
        None => "{}",
    };
    let values = [Some(true), Some(false), None];
    for l in values {
        for r in values {
            let and = match (l, r) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            let or = match (l, r) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
            let xor = l.zip(r).map(|(l, r)| l != r);
            let implies = match (l, r) {
                (Some(false), _) | (_, Some(true)) => Some(true),
                (Some(true), Some(false)) => Some(false),
                _ => None,
            };
            let (a, b) = (operand(l), operand(r));
            assert_eq!(eval(&format!("{a} and {b}")), and, "{a} and {b}");
            assert_eq!(eval(&format!("{a} or {b}")), or, "{a} or {b}");
            assert_eq!(eval(&format!("{a} xor {b}")), xor, "{a} xor {b}");
            assert_eq!(
                eval(&format!("{a} implies {b}")),
                implies,
                "{a} implies {b}"
            );
        }
        let a = operand(l);
        assert_eq!(eval(&format!("{a}.not()")), l.map(|b| !b), "{a}.not()");
    }
    assert_eq!(eval("true and 'x' = 'x'"), Some(true));
    assert_eq!(eval("false or true"), Some(true));
}

#[test]
fn functions_used_by_constraints() {
    let after = report("final");
    let check = |expr: &str, expected: bool| {
        assert_eq!(holds(expr, Some(&after), &after), expected, "{expr}");
    };
    check("%after.identifier.exists()", true);
    check("%after.note.exists()", false);
    check("%after.note.empty()", true);
    check("%after.identifier.empty()", false);
    check("%after.identifier.exists(value = 'b')", true);
    check("%after.identifier.exists(value = 'c')", false);
    check("%after.identifier.count() = 2", true);
    check("%after.identifier.count() > 1", true);
    check("%after.identifier.count() <= 1", false);
    check("%after.note.count() = 0", true);
    check("%after.identifier.count() = 2.0", true);
    check("%after.identifier.count() in (1 | 2)", true);
    check("%after.identifier.count().hasValue()", true);
    check("%after.identifier.count() is Integer", true);
    check("%after.identifier.first().value = 'a'", true);
    check("%after.identifier.where(value = 'b').value = 'b'", true);
    check("%after.identifier.where(value = 'z').empty()", true);
    check("%after.identifier.value.exists().not()", false);
    check("%after.status in ('draft' | 'final')", true);
    check("%after.status in ('draft' | 'preliminary')", false);
    check("('draft' | 'final') contains %after.status", true);
    check("%after.identifier.value contains 'c'", false);
    check("%after.identifier.value = ('a' | 'b')", true);
    check("%after.identifier.value = ('b' | 'a')", false);
    check("%after.identifier = %before.identifier", true);
    check("%after = %before", true);
    check("%after.subject.reference = 'Patient/p1'", true);
    check("%after.status != 'final'", false);
    check("%after.status = 'Final'", false);
    check("%after.status ~ 'Final'", true);
    let count = Expression::parse("identifier.count()").unwrap();
    let nodes = count.evaluate(&after);
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].value(), &json!(2));
    assert_eq!(nodes[0].type_name(), Some("integer"));
    // Past the table of small numbers, too.
    let many = json!({"resourceType": "Basic", "x": vec![0; 300]});
    assert_eq!(count_of("x.count()", &many), json!(300));
    assert_eq!(count_of("x.count()", &many), json!(300));
}

fn count_of(expr: &str, resource: &Value) -> Value {
    let e = Expression::parse(expr).unwrap();
    e.evaluate(resource)[0].value().clone()
}

#[test]
fn comparisons_of_strings_numbers_and_dates() {
    let before = report("final");
    let after = with(
        report("final"),
        "effectiveDateTime",
        json!("2024-05-01T12:30:00+02:00"),
    );
    let check = |expr: &str, expected: Option<bool>| {
        let got = values(expr, Some(&before), &after);
        let got = match got.as_slice() {
            [] => None,
            [v] => v.as_bool(),
            more => panic!("{expr}: {more:?}"),
        };
        assert_eq!(got, expected, "{expr}");
    };
    check("'abc' < 'abd'", Some(true));
    check("'b' > 'abc'", Some(true));
    check("'a' <= 'a'", Some(true));
    check("2 > 1.5", Some(true));
    check("-1 < 0", Some(true));
    check("1 = 1.0", Some(true));
    check("1 >= 2", Some(false));
    check("'1' < 2", None);
    // 12:30 at +02:00 is 10:30 UTC.
    check(
        "%after.effectiveDateTime > %before.effectiveDateTime",
        Some(true),
    );
    check(
        "%after.effectiveDateTime > '2024-05-01T10:29:59Z'",
        Some(true),
    );
    check(
        "%after.effectiveDateTime < '2024-05-01T10:30:01Z'",
        Some(true),
    );
    check(
        "%after.effectiveDateTime = '2024-05-01T10:30:00Z'",
        Some(true),
    );
    check(
        "%after.effectiveDateTime != '2024-05-01T10:30:00Z'",
        Some(false),
    );
    check(
        "%after.effectiveDateTime = '2024-05-01T10:30:00.000Z'",
        Some(true),
    );
    check("%after.effectiveDateTime >= '2024-04-30'", Some(true));
    check("%after.effectiveDateTime < '2025'", Some(true));
    // Same day, different precision: unknown.
    check("%after.effectiveDateTime >= '2024-05-01'", None);
    check("%after.effectiveDateTime = '2024-05-01'", None);
    check("'2024-05' < '2024-05-02'", None);
    check("'2024-05-02' > '2024-05-01'", Some(true));
    check("'10:30' < '11:00:00'", Some(true));
    check(
        "%after.effectiveDateTime = %before.effectiveDateTime",
        Some(false),
    );
}

#[test]
fn parse_errors_for_constraints() {
    for bad in [
        "%after.status = ",
        "%after.status + 'x' = 'y'",
        "%after.count(1)",
        "%",
        "%after.frobnicate()",
    ] {
        assert!(Expression::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

#[cfg(target_pointer_width = "64")]
#[test]
fn node_stays_four_words() {
    assert_eq!(size_of::<Node<'_>>(), 32);
}

#[test]
fn element_paths_of_search_expressions() {
    let paths = |s: &str| Expression::parse(s).unwrap().element_paths();
    assert_eq!(paths("Patient.name.family"), vec!["name.family"]);
    assert_eq!(
        paths("Patient.birthDate | Person.birthDate"),
        vec!["birthDate"]
    );
    assert_eq!(paths("(Observation.value as Quantity)"), vec!["value"]);
    assert_eq!(
        paths("Observation.subject.where(resolve() is Patient)"),
        vec!["subject"]
    );
    assert_eq!(
        paths("Patient.telecom.where(system='email')"),
        vec!["telecom"]
    );
    assert_eq!(
        paths("Observation.component.value.ofType(Quantity)"),
        vec!["component.value"]
    );
}
