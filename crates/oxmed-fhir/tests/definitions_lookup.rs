//! The public lookups of `Definitions`.

use oxmed_fhir::definitions::{Definitions, PrimitiveKind, TypeKind};

#[test]
fn resource_types_are_fhir_and_medplum_sorted() {
    let defs = Definitions::global();
    let types: Vec<&str> = defs.resource_types().collect();
    for name in [
        "Patient",
        "Observation",
        "Bundle",
        "Parameters",
        "Project",
        "User",
        "ProjectMembership",
        "AccessPolicy",
        "ClientApplication",
        "Login",
        "JsonWebKey",
        "DomainConfiguration",
        "UserSecurityRequest",
        "Bot",
        "SmartAppLaunch",
        "UserConfiguration",
    ] {
        assert!(defs.is_resource_type(name), "{name}");
        assert!(types.contains(&name), "{name}");
    }
    assert!(types.windows(2).all(|w| w[0] < w[1]));
    // 146 concrete R4 resources (+ SubscriptionStatus, which Medplum adds) and Medplum's own.
    assert!(types.len() > 160, "{}", types.len());
    for not_a_resource in [
        "Resource",
        "DomainResource",
        "HumanName",
        "string",
        "patient",
        "",
    ] {
        assert!(!defs.is_resource_type(not_a_resource), "{not_a_resource}");
    }
}

#[test]
fn type_lookup() {
    let defs = Definitions::global();
    let patient = defs.type_def("Patient").expect("Patient");
    assert_eq!(patient.kind(), TypeKind::Resource);
    assert_eq!(patient.base(), Some("DomainResource"));
    assert!(!patient.is_abstract());
    let human_name = defs.type_def("HumanName").expect("HumanName");
    assert_eq!(human_name.kind(), TypeKind::ComplexType);
    let date = defs.type_def("date").expect("date");
    assert_eq!(date.kind(), TypeKind::PrimitiveType);
    assert_eq!(date.primitive(), Some(PrimitiveKind::Date));
    assert!(defs.type_def("Resource").is_some_and(|t| t.is_abstract()));
    let paths: Vec<&str> = defs.elements_of(patient).iter().map(|e| e.path()).collect();
    assert_eq!(
        &paths[..3],
        ["Patient.id", "Patient.meta", "Patient.implicitRules"]
    );
}

#[test]
fn element_lookup() {
    let defs = Definitions::global();
    let gender = defs.element("Patient.gender").expect("Patient.gender");
    assert_eq!(
        (gender.min(), gender.max(), gender.is_array()),
        (0, Some(1), false)
    );
    assert_eq!(gender.type_codes().collect::<Vec<_>>(), ["code"]);
    assert_eq!(
        gender.required_binding(),
        Some("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")
    );

    let status = defs
        .element("Observation.status")
        .expect("Observation.status");
    assert_eq!(status.min(), 1);
    let name = defs.element("Patient.name").expect("Patient.name");
    assert_eq!(name.max(), None);
    assert!(name.is_array());

    let value = defs.element("Observation.value[x]").expect("value[x]");
    assert!(value.is_choice());
    assert!(value.type_codes().any(|t| t == "Quantity"));
    assert_eq!(
        defs.element("Observation.valueQuantity").map(|e| e.path()),
        Some("Observation.value[x]")
    );

    let nested = defs
        .element("Questionnaire.item.item")
        .expect("Questionnaire.item.item");
    assert_eq!(nested.content_reference(), Some("#Questionnaire.item"));
    assert_eq!(
        defs.element("Questionnaire.item.item.item.type")
            .map(|e| e.path()),
        Some("Questionnaire.item.type")
    );
    assert_eq!(
        defs.element("Patient.name.given").map(|e| e.path()),
        Some("HumanName.given")
    );
    assert_eq!(
        defs.element("Patient.meta.project").map(|e| e.path()),
        Some("Meta.project")
    );
    assert!(defs.element("Patient.name.nope").is_none());
    assert!(defs.element("Nope.name").is_none());
}

#[test]
fn value_sets() {
    let defs = Definitions::global();
    let gender = defs
        .value_set("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")
        .expect("administrative-gender");
    assert_eq!(gender.codes(), ["female", "male", "other", "unknown"]);
    assert_eq!(
        gender.contains("http://hl7.org/fhir/administrative-gender", "other"),
        Some(true)
    );
    assert_eq!(gender.contains("http://example.org", "other"), None);
    // Medplum's resource types are members of R4's resource-types.
    let types = defs
        .value_set("http://hl7.org/fhir/ValueSet/resource-types|4.0.1")
        .expect("resource-types");
    assert_eq!(types.contains_code("Project"), Some(true));
    assert_eq!(types.contains_code("Patient"), Some(true));
    let ucum = defs
        .value_set("http://hl7.org/fhir/ValueSet/ucum-units|4.0.1")
        .expect("ucum");
    assert!(!ucum.is_checked());
    assert!(ucum.unchecked_reason().is_some());
    assert_eq!(ucum.contains_code("mg"), None);
}
