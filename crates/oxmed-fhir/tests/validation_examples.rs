//! Every example of the official FHIR R4 examples package (npm `hl7.fhir.r4.examples@4.0.1`)
//! must validate. The package is not vendored: point `OXMED_FHIR_EXAMPLES_DIR` at its unpacked
//! `package/` directory. Without it the test is skipped, unless `CI` is set.

use std::fs;
use std::path::PathBuf;

use oxmed_fhir::validation::{IssueCode, ValidationIssue, validate};

/// Files of the FHIR NPM package format that describe the package rather than being resources.
const PACKAGE_METADATA: [&str; 2] = ["package.json", ".index.json"];

/// Defects of the published examples themselves: each breaks a rule of the R4 specification, so
/// the validator is right to refuse them and the rule stays. They are excused by the rule they
/// break, as (resource type, element, issue code), never by file; an example failing in any
/// other way fails the test, and so does a change in how many examples need excusing.
const ERRATA: &[(&str, &str, IssueCode, &str)] = &[
    (
        "SearchParameter",
        "base",
        IssueCode::Required,
        "the R4 build generated search parameters for some CodeSystem and ValueSet extensions \
         (`*-extensions-*`, with a broken xpath and no expression) without `base`, which is 1..*",
    ),
    (
        "SearchParameter",
        "id",
        IssueCode::Value,
        "one such generated search parameter has a 67-character id; ids are at most 64 characters",
    ),
    (
        "Questionnaire",
        "linkId",
        IssueCode::Required,
        "Questionnaire qs1 (not published on any page of the specification) has display items \
         without `linkId`, which is 1..1",
    ),
    (
        "ImplementationGuide",
        "name",
        IssueCode::Required,
        "the specification's own ImplementationGuide (id `fhir`, twice: ig-r4.json and \
         ImplementationGuide-fhir.json) has no `name`, which is 1..1",
    ),
    (
        "ImplementationGuide",
        "status",
        IssueCode::Required,
        "the same ImplementationGuide has no `status`, which is 1..1",
    ),
];

/// How many examples the errata excuse (10 + 1 search parameters, 1 questionnaire, 2 copies of
/// the ImplementationGuide). Pinned so that a change of definitions or rules that makes more of
/// them fail, or fixes one, is noticed.
const EXCUSED_EXAMPLES: usize = 14;

fn examples_dir() -> Option<PathBuf> {
    match std::env::var_os("OXMED_FHIR_EXAMPLES_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => panic!(
            "OXMED_FHIR_EXAMPLES_DIR must be set in CI (the unpacked package/ directory of npm \
             hl7.fhir.r4.examples@4.0.1)"
        ),
        None => {
            eprintln!(
                "SKIPPED official_examples_validate: set OXMED_FHIR_EXAMPLES_DIR to the unpacked \
                 package/ directory of npm hl7.fhir.r4.examples@4.0.1 to run it"
            );
            None
        }
    }
}

fn is_erratum(resource_type: &str, issue: &ValidationIssue) -> bool {
    let element = issue.path.rsplit('.').next().unwrap_or_default();
    ERRATA.iter().any(|&(rt, name, code, _)| {
        rt == resource_type && issue.path.starts_with(rt) && element == name && code == issue.code
    })
}

#[test]
fn official_examples_validate() {
    let Some(dir) = examples_dir() else {
        return;
    };
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| PACKAGE_METADATA.iter().any(|m| n == *m))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples found in {}", dir.display());

    let mut failures = Vec::new();
    let mut excused = 0;
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let Err(issues) = validate(&value) else {
            continue;
        };
        let resource_type = value["resourceType"].as_str().unwrap_or_default();
        if issues.iter().all(|i| is_erratum(resource_type, i)) {
            excused += 1;
        } else {
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            failures.push((name, issues));
        }
    }
    eprintln!(
        "validated {} official R4 examples: {} valid, {excused} excused by known errata, {} failed",
        files.len(),
        files.len() - excused - failures.len(),
        failures.len()
    );
    for (name, issues) in &failures {
        for issue in issues.iter().take(10) {
            eprintln!("{name}: {issue}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples have issues",
        failures.len(),
        files.len()
    );
    assert_eq!(
        excused, EXCUSED_EXAMPLES,
        "the number of examples excused by errata changed"
    );
}
