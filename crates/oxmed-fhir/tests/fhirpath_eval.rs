//! Evaluation of each supported FHIRPath construct.

use oxmed_fhir::fhirpath::{Expression, Narrowed, Node};
use serde_json::{Value, json};

fn eval(expr: &str, resource: &Value) -> Vec<Value> {
    let parsed = Expression::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    parsed
        .evaluate(resource)
        .into_iter()
        .map(|n| n.value().clone())
        .collect()
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [
            {"system": "http://loinc.org", "code": "8480-6", "display": "Systolic"},
            {"system": "http://snomed.info/sct", "code": "271649006"}
        ], "text": "BP"},
        "subject": {"reference": "Patient/p1"},
        "performer": [
            {"reference": "Practitioner/d1"},
            {"reference": "https://other.example/fhir/Patient/p2/_history/3"},
            {"reference": "Group/g1"},
            {"type": "RelatedPerson", "identifier": {"value": "x"}},
            {"reference": "#c1"}
        ],
        "contained": [{"resourceType": "Organization", "id": "c1", "name": "Lab"}],
        "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        "effectiveDateTime": "2021-03-04T10:00:00Z",
        "valueSet": "not-a-choice",
        "component": [
            {"code": {"coding": [{"code": "a"}]}, "valueString": "x"},
            {"code": {"coding": [{"code": "b"}]}, "valueQuantity": {"value": 2}}
        ],
        "extension": [
            {"url": "http://ext/one", "valueString": "first"},
            {"url": "http://ext/two", "extension": [{"url": "inner", "valueCoding": {"code": "in"}}]}
        ]
    })
}

#[test]
fn member_paths_flatten_arrays() {
    let o = observation();
    assert_eq!(
        eval("Observation.code.coding.code", &o),
        vec![json!("8480-6"), json!("271649006")]
    );
    assert_eq!(eval("code.text", &o), vec![json!("BP")]);
    assert!(eval("Observation.nothing.here", &o).is_empty());
}

#[test]
fn leading_type_name_filters_the_resource() {
    let o = observation();
    assert_eq!(eval("Observation.status", &o), vec![json!("final")]);
    assert!(eval("Patient.status", &o).is_empty());
    assert_eq!(eval("Resource.id", &o), vec![json!("o1")]);
    assert_eq!(eval("DomainResource.id", &o), vec![json!("o1")]);
    let bundle = json!({"resourceType": "Bundle", "id": "b"});
    assert!(eval("DomainResource.id", &bundle).is_empty());
}

#[test]
fn choice_elements_are_found_by_suffix_and_know_their_type() {
    let o = observation();
    let parsed = Expression::parse("Observation.value").unwrap_or_else(|e| panic!("{e}"));
    let nodes = parsed.evaluate(&o);
    // `valueSet` is not a choice of `value`: `Set` is no FHIR type.
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].type_hint(), Some("Quantity"));
    assert_eq!(nodes[0].value()["value"], json!(120));

    let effective = Expression::parse("Observation.effective").unwrap_or_else(|e| panic!("{e}"));
    let nodes = effective.evaluate(&o);
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].type_name(), Some("dateTime"));
}

#[test]
fn of_type_and_as_select_choice_types() {
    let o = observation();
    let quantity = vec![o["valueQuantity"].clone()];
    assert_eq!(eval("Observation.value.ofType(Quantity)", &o), quantity);
    assert_eq!(eval("(Observation.value as Quantity)", &o), quantity);
    assert_eq!(eval("Observation.value.as(Quantity)", &o), quantity);
    assert_eq!(
        eval("(Observation.value as Quantity).unit", &o),
        vec![json!("mmHg")]
    );
    assert!(eval("Observation.value.ofType(string)", &o).is_empty());
    assert!(eval("Observation.value as CodeableConcept", &o).is_empty());
    assert_eq!(
        eval("Observation.effective.ofType(dateTime)", &o),
        vec![json!("2021-03-04T10:00:00Z")]
    );
    // The data also spells primitive type names capitalised.
    assert_eq!(
        eval("Observation.effective.ofType(DateTime)", &o),
        vec![json!("2021-03-04T10:00:00Z")]
    );
    assert!(eval("Observation.effective.ofType(Period)", &o).is_empty());
    assert_eq!(
        eval("Observation.component.value.ofType(string)", &o),
        vec![json!("x")]
    );
    // Subtypes: an Age is a Quantity.
    let c = json!({"resourceType": "Condition", "onsetAge": {"value": 3}});
    assert_eq!(eval("Condition.onset.ofType(Quantity)", &c).len(), 1);
    assert!(eval("Condition.onset.ofType(Range)", &c).is_empty());
}

#[test]
fn is_operator_and_function() {
    let o = observation();
    assert_eq!(eval("Observation.value is Quantity", &o), vec![json!(true)]);
    assert_eq!(
        eval("Observation.value.is(Quantity)", &o),
        vec![json!(true)]
    );
    assert_eq!(eval("Observation.value is Period", &o), vec![json!(false)]);
    assert_eq!(eval("Observation is Observation", &o), vec![json!(true)]);
    assert_eq!(eval("%resource is DomainResource", &o), vec![json!(true)]);
    assert_eq!(eval("Observation.status is string", &o), vec![json!(true)]);
    assert!(eval("Observation.missing is string", &o).is_empty());
}

#[test]
fn resolve_decides_by_reference_type() {
    let o = observation();
    assert_eq!(
        eval("Observation.subject.where(resolve() is Patient)", &o),
        vec![json!({"reference": "Patient/p1"})]
    );
    assert!(eval("Observation.subject.where(resolve() is Group)", &o).is_empty());
    // Absolute URLs and `_history` count; `Reference.type` is used when there is no literal
    // reference; contained references resolve to the contained resource.
    assert_eq!(
        eval(
            "Observation.performer.where(resolve() is Patient).reference",
            &o
        ),
        vec![json!("https://other.example/fhir/Patient/p2/_history/3")]
    );
    assert_eq!(
        eval(
            "Observation.performer.where(resolve() is RelatedPerson).type",
            &o
        ),
        vec![json!("RelatedPerson")]
    );
    assert_eq!(
        eval("Observation.performer.resolve().name", &o),
        vec![json!("Lab")]
    );
    assert_eq!(
        eval(
            "Observation.performer.where(resolve() is Organization).reference",
            &o
        ),
        vec![json!("#c1")]
    );
    // An unresolved target has a type but no content.
    assert!(eval("Observation.subject.resolve().id", &o).is_empty());
}

#[test]
fn union_concatenates_and_removes_duplicates() {
    let o = observation();
    assert_eq!(
        eval(
            "Observation.status | Observation.id | Observation.status",
            &o
        ),
        vec![json!("final"), json!("o1")]
    );
    assert_eq!(
        eval("Observation.status | Patient.name", &o),
        vec![json!("final")]
    );
}

#[test]
fn large_unions_keep_first_occurrences() {
    let concepts: Vec<Value> = (0..100).map(|i| json!({"code": format!("c{i}")})).collect();
    let vs = json!({"resourceType": "ValueSet", "compose": {"include": [{"concept": concepts}]}});
    let all = eval(
        "ValueSet.compose.include.concept.code | ValueSet.compose.include.concept.code.first() | ValueSet.compose.include.concept.code",
        &vs,
    );
    assert_eq!(all.len(), 100);
    assert_eq!(all[0], json!("c0"));
    assert_eq!(all[99], json!("c99"));
}

#[test]
fn where_with_equality() {
    let o = observation();
    assert_eq!(
        eval(
            "Observation.code.coding.where(system = 'http://loinc.org').code",
            &o
        ),
        vec![json!("8480-6")]
    );
    assert_eq!(
        eval(
            "Observation.code.coding.where(system != 'http://loinc.org').code",
            &o
        ),
        vec![json!("271649006")]
    );
    assert_eq!(
        eval(
            "Observation.component.where(code.coding.code = 'b').value.value",
            &o
        ),
        vec![json!(2)]
    );
    assert_eq!(
        eval(
            "Observation.code.coding.where($this.code = '8480-6').display",
            &o
        ),
        vec![json!("Systolic")]
    );
}

#[test]
fn existence_and_boolean_logic() {
    let o = observation();
    assert_eq!(eval("Observation.status.exists()", &o), vec![json!(true)]);
    assert_eq!(eval("Observation.missing.exists()", &o), vec![json!(false)]);
    assert_eq!(eval("Observation.missing.empty()", &o), vec![json!(true)]);
    assert_eq!(
        eval("Observation.code.coding.exists(code = '271649006')", &o),
        vec![json!(true)]
    );
    assert_eq!(
        eval(
            "Observation.status.exists() and Observation.status != 'final'",
            &o
        ),
        vec![json!(false)]
    );
    assert_eq!(
        eval(
            "Observation.status.exists() or Observation.missing = 'x'",
            &o
        ),
        vec![json!(true)]
    );
    // and with an unknown side stays unknown (empty).
    assert!(
        eval(
            "Observation.status.exists() and Observation.missing = 'x'",
            &o
        )
        .is_empty()
    );
    assert_eq!(eval("true and false", &o), vec![json!(false)]);
    assert_eq!(eval("false implies false", &o), vec![json!(true)]);
    assert_eq!(eval("true xor false", &o), vec![json!(true)]);
    assert_eq!(
        eval("Observation.status.exists().not()", &o),
        vec![json!(false)]
    );
}

#[test]
fn patient_deceased_expression() {
    let expr = "Patient.deceased.exists() and Patient.deceased != false";
    let dead = json!({"resourceType": "Patient", "deceasedDateTime": "2020-01-01"});
    let alive = json!({"resourceType": "Patient", "deceasedBoolean": false});
    let unknown = json!({"resourceType": "Patient"});
    assert_eq!(eval(expr, &dead), vec![json!(true)]);
    assert_eq!(eval(expr, &alive), vec![json!(false)]);
    assert_eq!(eval(expr, &unknown), vec![json!(false)]);
}

#[test]
fn first_last_indexer_and_friends() {
    let o = observation();
    assert_eq!(
        eval("Observation.code.coding.first().code", &o),
        vec![json!("8480-6")]
    );
    assert_eq!(
        eval("Observation.code.coding.last().code", &o),
        vec![json!("271649006")]
    );
    assert_eq!(
        eval("Observation.code.coding[1].code", &o),
        vec![json!("271649006")]
    );
    assert!(eval("Observation.code.coding[5]", &o).is_empty());
    assert_eq!(
        eval("Observation.code.coding.tail().code", &o),
        vec![json!("271649006")]
    );
    assert_eq!(
        eval("Observation.code.coding.skip(1).code", &o),
        vec![json!("271649006")]
    );
    assert_eq!(
        eval("Observation.code.coding.take(1).code", &o),
        vec![json!("8480-6")]
    );
    assert!(eval("Observation.code.coding.single()", &o).is_empty());
    assert_eq!(eval("Observation.code.coding.select(code)", &o).len(), 2);
    assert_eq!(
        eval("Observation.code.coding.all(code.exists())", &o),
        vec![json!(true)]
    );
    assert_eq!(eval("Observation.status.hasValue()", &o), vec![json!(true)]);
    let bundle = json!({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Composition", "id": "c"}},
        {"resource": {"resourceType": "Patient", "id": "p"}}
    ]});
    assert_eq!(
        eval("Bundle.entry[0].resource.id", &bundle),
        vec![json!("c")]
    );
}

#[test]
fn extensions() {
    let o = observation();
    assert_eq!(
        eval("Observation.extension('http://ext/one').value", &o),
        vec![json!("first")]
    );
    assert_eq!(
        eval(
            "Observation.extension.where(url = 'http://ext/one').valueString",
            &o
        ),
        vec![json!("first")]
    );
    assert_eq!(
        eval(
            "Observation.extension.where(url='http://ext/two').extension.value.code",
            &o
        ),
        vec![json!("in")]
    );
    assert!(eval("Observation.extension('http://ext/none').value", &o).is_empty());
}

#[test]
fn iif_and_literals() {
    let expr = "iif(priority = 'stat', 50, iif(priority = 'asap', 40, iif(priority = 'urgent', 30, iif(priority = 'routine', 20, 10))))";
    let stat = json!({"resourceType": "ServiceRequest", "priority": "stat"});
    let routine = json!({"resourceType": "ServiceRequest", "priority": "routine"});
    let none = json!({"resourceType": "ServiceRequest"});
    assert_eq!(eval(expr, &stat), vec![json!(50)]);
    assert_eq!(eval(expr, &routine), vec![json!(20)]);
    assert_eq!(eval(expr, &none), vec![json!(10)]);
    assert_eq!(eval("iif(false, 'a')", &none), Vec::<Value>::new());
    assert_eq!(eval("'it\\'s'", &none), vec![json!("it's")]);
    assert!(
        Expression::parse("'it''s'").is_err(),
        "adjacent literals are no escape"
    );
}

#[test]
fn comparisons_and_membership() {
    let o = observation();
    assert_eq!(eval("Observation.value.value > 100", &o), vec![json!(true)]);
    assert_eq!(
        eval("Observation.value.value <= 100", &o),
        vec![json!(false)]
    );
    assert_eq!(
        eval("Observation.value.value = 120.0", &o),
        vec![json!(true)]
    );
    assert_eq!(
        eval("Observation.effective > '2021-01-01'", &o),
        vec![json!(true)]
    );
    assert_eq!(eval("'final' in Observation.status", &o), vec![json!(true)]);
    assert_eq!(
        eval("Observation.code.coding.code contains '8480-6'", &o),
        vec![json!(true)]
    );
    assert_eq!(eval("Observation.code.text ~ 'bp'", &o), vec![json!(true)]);
    assert_eq!(eval("{}.exists()", &o), vec![json!(false)]);
    assert_eq!(eval("-1 < 0", &o), vec![json!(true)]);
}

#[test]
fn resource_constant_inside_relative_evaluation() {
    let seq = json!({"resourceType": "MolecularSequence", "referenceSeq": {"chromosome": {"text": "1"}},
        "variant": [{"start": 10, "end": 20}]});
    let variant = Expression::parse("MolecularSequence.variant").unwrap_or_else(|e| panic!("{e}"));
    let chromosome = Expression::parse("%resource.referenceSeq.chromosome.text")
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Expression::parse("start").unwrap_or_else(|e| panic!("{e}"));
    let nodes = variant.evaluate(&seq);
    assert_eq!(nodes.len(), 1);
    let at = |e: &Expression| -> Vec<Value> {
        e.evaluate_at(nodes[0], &seq)
            .into_iter()
            .map(|n: Node<'_>| n.value().clone())
            .collect()
    };
    assert_eq!(at(&chromosome), vec![json!("1")]);
    assert_eq!(at(&start), vec![json!(10)]);
}

#[test]
fn results_point_into_the_resource() {
    let o = observation();
    let expr = Expression::parse("Observation.subject").unwrap_or_else(|e| panic!("{e}"));
    let nodes = expr.evaluate(&o);
    assert!(std::ptr::eq(nodes[0].value(), &o["subject"]));
}

#[test]
fn narrowing_to_a_resource_type() {
    let expr = Expression::parse(
        "AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient) | Resource.id",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let Narrowed::To(care_plan) = expr.for_resource_type("CarePlan") else {
        panic!("expected narrowing");
    };
    let plan = json!({"resourceType": "CarePlan", "id": "cp", "subject": {"reference": "Patient/1"},
        "patient": {"reference": "Patient/ignored"}});
    let values: Vec<Value> = care_plan
        .evaluate(&plan)
        .into_iter()
        .map(|n| n.value().clone())
        .collect();
    assert_eq!(values, vec![json!({"reference": "Patient/1"}), json!("cp")]);
    let only = Expression::parse("Observation.code").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(only.for_resource_type("Observation"), Narrowed::Unchanged);
    assert_eq!(only.for_resource_type("Patient"), Narrowed::Nothing);
}

#[test]
fn parse_errors_say_where() {
    let err = Expression::parse("Patient.name.frobnicate()").err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some("unknown function frobnicate() at 13".to_string())
    );
}
