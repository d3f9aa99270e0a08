//! Property test: the SQL compilation of a search (`Store::matching_ids`) and the in-memory
//! matcher (`search::matching::matches`) select the same resources, on every backend.
//!
//! From a fixed proptest seed it generates a small population of Patients and Observations over
//! small value domains (so that searches hit), writes it once per backend, then runs a few
//! thousand random criteria strings (`Type?query`) through `parse_criteria` and compares, for
//! each, the ids the SQL returns with the resources for which `matches` answers `Ok(true)`.
//! A resource for which `matches` answers `Err` (undecidable) must not be in the SQL result
//! either: an undecidable condition is never a match (module doc of `search::matching`).

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::*;
use oxmed_fhir::search::matching::matches;
use oxmed_fhir::search::parse::parse_criteria;
use proptest::prelude::Rng;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

const PROJECT: &str = "project-prop";
const SEED: [u8; 32] = *b"oxmed-search-property-seed-0001!";
const PATIENTS: usize = 24;
const OBSERVATIONS: usize = 36;
const QUERIES: usize = 4000;

const LOINC: &str = "http://loinc.org";
const LOCAL: &str = "http://local";
const UCUM: &str = "http://unitsofmeasure.org";

/// Cases known to disagree, skipped so that CI stays green: (query, why). Each names the bug.
const KNOWN_DISAGREEMENTS: &[(&str, &str)] = &[];

// ---------------------------------------------------------------------------------------------
// random choices

struct Gen(TestRng);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

fn runner() -> Gen {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &SEED),
    );
    Gen(runner.new_rng())
}

// ---------------------------------------------------------------------------------------------
// population

const YEARS: &[&str] = &["1979", "1980", "1981"];
const MONTHS: &[&str] = &["01", "05", "12"];
const DAYS: &[&str] = &["01", "15", "31"];
const TIMES: &[&str] = &[
    "T00:30:00+02:00",
    "T23:30:00-05:00",
    "T12:00:00Z",
    "T00:00:00Z",
    "T23:59:59.999Z",
];

/// A date or dateTime at a random precision: year, year-month, date, dateTime with zone.
fn date_value(g: &mut Gen, allow_time: bool) -> String {
    let y = g.pick(YEARS);
    match g.below(if allow_time { 4 } else { 3 }) {
        0 => y.to_owned(),
        1 => format!("{y}-{}", g.pick(MONTHS)),
        2 => format!("{y}-{}-{}", g.pick(MONTHS), g.pick(DAYS)),
        _ => format!("{y}-{}-{}{}", g.pick(MONTHS), g.pick(DAYS), g.pick(TIMES)),
    }
}

const FAMILIES: &[&str] = &["Müller", "muller", "MULLER", "Smith", "smith", "Mullerová"];
const GIVENS: &[&str] = &["Anna", "ann", "Éloïse", "ELOISE", "John"];
const ID_SYSTEMS: &[Option<&str>] = &[Some("http://a/mrn"), Some("http://b"), None];
const ID_VALUES: &[&str] = &["123", "456", "ABC", "abc"];
const GENDERS: &[&str] = &["male", "female", "other", "unknown"];

fn patient(g: &mut Gen, i: usize) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Patient"));
    r.insert("id".into(), json!(format!("p{i}")));
    if g.chance(80) {
        r.insert("gender".into(), json!(g.pick(GENDERS)));
    }
    if g.chance(80) {
        // Mostly dates; sometimes a dateTime with a zone (not valid FHIR for birthDate, but
        // the index takes it, so both paths must agree on it).
        let allow_time = g.chance(30);
        r.insert("birthDate".into(), json!(date_value(g, allow_time)));
    }
    let names: Vec<Value> = (0..g.below(3))
        .map(|_| {
            let mut n = Map::new();
            if g.chance(85) {
                n.insert("family".into(), json!(g.pick(FAMILIES)));
            }
            if g.chance(20) {
                n.insert(
                    "text".into(),
                    json!(g.pick(&["Anna Müller", "Dr. Éloïse SMITH"])),
                );
            }
            if g.chance(60) {
                let given: Vec<&str> = (0..1 + g.below(2)).map(|_| g.pick(GIVENS)).collect();
                n.insert("given".into(), json!(given));
            }
            Value::Object(n)
        })
        .collect();
    if !names.is_empty() {
        r.insert("name".into(), json!(names));
    }
    let identifiers: Vec<Value> = (0..g.below(3))
        .map(|_| match g.pick(ID_SYSTEMS) {
            Some(s) => json!({"system": s, "value": g.pick(ID_VALUES)}),
            None => json!({"value": g.pick(ID_VALUES)}),
        })
        .collect();
    if !identifiers.is_empty() {
        r.insert("identifier".into(), json!(identifiers));
    }
    match g.below(3) {
        0 => {
            r.insert("active".into(), json!(true));
        }
        1 => {
            r.insert("active".into(), json!(false));
        }
        _ => {}
    }
    Value::Object(r)
}

const STATUSES: &[&str] = &["final", "preliminary", "amended"];
const CODE_SYSTEMS: &[Option<&str>] = &[Some(LOINC), Some(LOINC), Some(LOCAL), None];
const CODES: &[&str] = &["8867-4", "85354-6", "8480-6", "X1"];
/// (unit, system, code) of a Quantity; `None` leaves the field out.
type Unit = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);
const UNITS: &[Unit] = &[
    (Some("beats/minute"), Some(UCUM), Some("/min")),
    (None, Some(UCUM), Some("/min")),
    (Some("/min"), None, None),
    (None, Some(UCUM), Some("mm[Hg]")),
    (Some("mmHg"), Some(UCUM), Some("mm[Hg]")),
    (Some("kg"), Some(UCUM), Some("kg")),
    (None, None, None),
];
const VALUES: &[f64] = &[0.0, 72.0, 72.5, 80.25, 100.0, 120.0, 99.5, -1.0, 0.001, 1e6];

fn coding(g: &mut Gen) -> Value {
    match g.pick(CODE_SYSTEMS) {
        Some(s) => json!({"system": s, "code": g.pick(CODES)}),
        None => json!({"code": g.pick(CODES)}),
    }
}

fn codeable(g: &mut Gen) -> Value {
    let codings: Vec<Value> = (0..1 + g.below(2)).map(|_| coding(g)).collect();
    json!({ "coding": codings })
}

fn quantity(g: &mut Gen) -> Value {
    let mut q = Map::new();
    if g.chance(92) {
        q.insert("value".into(), json!(g.pick(VALUES)));
    }
    if g.chance(8) {
        q.insert("comparator".into(), json!(g.pick(&["<", ">="])));
    }
    let (unit, system, code) = g.pick(UNITS);
    if let Some(u) = unit {
        q.insert("unit".into(), json!(u));
    }
    if let Some(s) = system {
        q.insert("system".into(), json!(s));
    }
    if let Some(c) = code {
        q.insert("code".into(), json!(c));
    }
    Value::Object(q)
}

fn observation(g: &mut Gen, i: usize) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Observation"));
    r.insert("id".into(), json!(format!("o{i}")));
    r.insert("status".into(), json!(g.pick(STATUSES)));
    if g.chance(90) {
        r.insert("code".into(), codeable(g));
    }
    if g.chance(70) {
        r.insert("valueQuantity".into(), quantity(g));
    }
    match g.below(4) {
        0 => {}
        1 | 2 => {
            r.insert("effectiveDateTime".into(), json!(date_value(g, true)));
        }
        _ => {
            let mut p = Map::new();
            if g.chance(80) {
                p.insert("start".into(), json!(date_value(g, true)));
            }
            if g.chance(60) {
                p.insert(
                    "end".into(),
                    json!(format!("1982{}", g.pick(&["", "-01-01"]))),
                );
            }
            r.insert("effectivePeriod".into(), Value::Object(p));
        }
    }
    match g.below(6) {
        0 => {}
        1 => {
            r.insert("subject".into(), json!({"reference": "Group/g1"}));
        }
        2 => {
            let k = g.below(5);
            let url = format!("http://other.org/fhir/Patient/p{k}");
            r.insert("subject".into(), json!({ "reference": url }));
        }
        _ => {
            let k = g.below(5);
            r.insert(
                "subject".into(),
                json!({"reference": format!("Patient/p{k}")}),
            );
        }
    }
    let components: Vec<Value> = (0..g.below(3))
        .map(|_| {
            let mut c = Map::new();
            c.insert("code".into(), codeable(g));
            if g.chance(80) {
                c.insert("valueQuantity".into(), quantity(g));
            }
            Value::Object(c)
        })
        .collect();
    if !components.is_empty() {
        r.insert("component".into(), json!(components));
    }
    Value::Object(r)
}

fn population(g: &mut Gen) -> Vec<Value> {
    let mut all: Vec<Value> = (0..PATIENTS).map(|i| patient(g, i)).collect();
    all.extend((0..OBSERVATIONS).map(|i| observation(g, i)));
    all
}

// ---------------------------------------------------------------------------------------------
// queries

/// Percent-encodes what a query value cannot carry as is.
fn enc(s: &str) -> String {
    s.replace('%', "%25")
        .replace('+', "%2B")
        .replace('&', "%26")
        .replace('#', "%23")
}

const DATE_PREFIXES: &[&str] = &["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"];
const NUMBER_PREFIXES: &[&str] = &["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"];
const SEARCH_NUMBERS: &[&str] = &[
    "72", "72.5", "72.50", "80.25", "100", "1e2", "0", "99.5", "120", "7.25e1", "-1", "0.0",
];

fn date_query(g: &mut Gen) -> String {
    let p = g.pick(DATE_PREFIXES);
    format!("{p}{}", date_value(g, true))
}

fn quantity_query(g: &mut Gen) -> String {
    let p = g.pick(NUMBER_PREFIXES);
    let n = g.pick(SEARCH_NUMBERS);
    match g.below(5) {
        0 | 1 => format!("{p}{n}"),
        2 => format!("{p}{n}|{UCUM}|{}", g.pick(&["/min", "mm[Hg]", "kg"])),
        3 => format!(
            "{p}{n}||{}",
            g.pick(&["/min", "mm[Hg]", "beats/minute", "kg"])
        ),
        _ => format!("{p}{n}|http://other|/min"),
    }
}

/// A token value: `code`, `system|code`, `|code` or `system|`.
fn token_query(g: &mut Gen, systems: &[&str], codes: &[&str]) -> String {
    match g.below(5) {
        0 | 1 => g.pick(codes).to_owned(),
        2 => format!("{}|{}", g.pick(systems), g.pick(codes)),
        3 => format!("|{}", g.pick(codes)),
        _ => format!("{}|", g.pick(systems)),
    }
}

/// `values` ORed with commas (1 to 3 of them).
fn or_values(g: &mut Gen, mut one: impl FnMut(&mut Gen) -> String) -> String {
    let n = 1 + usize::from(g.chance(30)) + usize::from(g.chance(10));
    (0..n).map(|_| one(g)).collect::<Vec<_>>().join(",")
}

fn missing(g: &mut Gen, code: &str) -> String {
    format!("{code}:missing={}", g.pick(&["true", "false"]))
}

/// A token parameter with a random modifier (none, `:not`, `:missing`).
fn token_param(g: &mut Gen, code: &str, systems: &[&str], codes: &[&str]) -> String {
    match g.below(8) {
        0 => missing(g, code),
        1 | 2 => format!("{code}:not={}", token_query(g, systems, codes)),
        _ => format!(
            "{code}={}",
            or_values(g, |g| token_query(g, systems, codes))
        ),
    }
}

const SEARCH_STRINGS: &[&str] = &[
    "anna m",
    "Anna Müller",
    "dr",
    "dr. e",
    "mül",
    "mul",
    "MULLER",
    "Müller",
    "muller",
    "müllerová",
    "smi",
    "Smith",
    "ll",
    "ann",
    "Anna",
    "elo",
    "Éloïse",
    "ïs",
    "x",
    "John",
];

fn patient_param(g: &mut Gen) -> String {
    match g.below(10) {
        0 => token_param(
            g,
            "gender",
            &["http://hl7.org/fhir/administrative-gender"],
            GENDERS,
        ),
        1 | 2 => {
            if g.chance(10) {
                return missing(g, "birthdate");
            }
            format!("birthdate={}", or_values(g, date_query))
        }
        3..=5 => {
            let code = g.pick(&["name", "family", "given"]);
            let modifier = g.pick(&["", ":exact", ":contains"]);
            if g.chance(8) {
                return missing(g, code);
            }
            format!(
                "{code}{modifier}={}",
                or_values(g, |g| enc(g.pick(SEARCH_STRINGS)))
            )
        }
        6 | 7 => token_param(g, "identifier", &["http://a/mrn", "http://b"], ID_VALUES),
        8 => token_param(g, "active", &["http://other"], &["true", "false"]),
        _ => format!("_id={}", or_values(g, |g| format!("p{}", g.below(30)))),
    }
}

fn composite_query(g: &mut Gen) -> String {
    let code = token_query(g, &[LOINC, LOCAL], CODES);
    format!("{code}${}", quantity_query(g))
}

fn observation_param(g: &mut Gen) -> String {
    match g.below(10) {
        0 => token_param(
            g,
            "status",
            &["http://hl7.org/fhir/observation-status"],
            STATUSES,
        ),
        1 | 2 => token_param(g, "code", &[LOINC, LOCAL], CODES),
        3 | 4 => {
            if g.chance(10) {
                return missing(g, "value-quantity");
            }
            format!("value-quantity={}", or_values(g, quantity_query))
        }
        5 | 6 => {
            if g.chance(10) {
                return missing(g, "date");
            }
            format!("date={}", or_values(g, date_query))
        }
        7 => {
            let code = g.pick(&["subject", "patient", "subject:Patient"]);
            if g.chance(15) {
                return missing(g, code.split(':').next().unwrap());
            }
            let value = or_values(g, |g| {
                let k = g.below(6);
                g.pick(&[
                    format!("Patient/p{k}"),
                    format!("p{k}"),
                    "Group/g1".to_owned(),
                    format!("http://other.org/fhir/Patient/p{k}"),
                ])
            });
            format!("{code}={value}")
        }
        _ => {
            let code = g.pick(&["code-value-quantity", "component-code-value-quantity"]);
            if g.chance(5) {
                return missing(g, code);
            }
            format!("{code}={}", or_values(g, composite_query))
        }
    }
}

fn query(g: &mut Gen) -> String {
    let observation = g.chance(55);
    let n = 1 + usize::from(g.chance(40)) + usize::from(g.chance(15));
    let params: Vec<String> = (0..n)
        .map(|_| {
            if observation {
                observation_param(g)
            } else {
                patient_param(g)
            }
        })
        .collect();
    let resource_type = if observation {
        "Observation"
    } else {
        "Patient"
    };
    format!("{resource_type}?{}", params.join("&"))
}

// ---------------------------------------------------------------------------------------------
// the property

#[derive(Default, Debug)]
struct Counts {
    queries: usize,
    unparsed: usize,
    checked: usize,
    nonempty: usize,
    /// Of those, how many matched every resource of the type.
    everything: usize,
    undecidable: usize,
    skipped_known: usize,
}

async fn run(db: Db) {
    let started = Instant::now();
    let mut g = runner();
    let resources = population(&mut g);
    put_all(&db.store, PROJECT, resources.clone()).await;

    let mut counts = Counts::default();
    let mut failures = Vec::new();
    for _ in 0..QUERIES {
        let q = query(&mut g);
        counts.queries += 1;
        let (resource_type, clauses) = match parse_criteria(&q) {
            Ok(parsed) => parsed,
            Err(e) => {
                counts.unparsed += 1;
                if counts.unparsed <= 5 {
                    eprintln!("unparsed: {q}: {e}");
                }
                continue;
            }
        };
        let known = KNOWN_DISAGREEMENTS.iter().find(|(k, _)| *k == q);
        let by_sql: Result<BTreeSet<String>, _> = db
            .store
            .matching_ids(PROJECT, &resource_type, &clauses, None)
            .await
            .map(|ids| ids.into_iter().collect());
        let mut expected = BTreeSet::new();
        let mut of_type = 0;
        let mut undecidable = Vec::new();
        for r in resources
            .iter()
            .filter(|r| r["resourceType"] == *resource_type)
        {
            let id = r["id"].as_str().unwrap().to_owned();
            of_type += 1;
            match matches(r, &clauses) {
                Ok(true) => {
                    expected.insert(id);
                }
                Ok(false) => {}
                Err(e) => undecidable.push((id, e)),
            }
        }
        if !undecidable.is_empty() {
            counts.undecidable += 1;
        }
        let agree = match &by_sql {
            Ok(found) => *found == expected,
            Err(_) => false,
        };
        if agree {
            counts.checked += 1;
            if !expected.is_empty() {
                counts.nonempty += 1;
            }
            if expected.len() == of_type {
                counts.everything += 1;
            }
            continue;
        }
        if let Some((_, why)) = known {
            counts.skipped_known += 1;
            eprintln!("skipped known disagreement ({why}): {q}");
            continue;
        }
        failures.push(describe(
            &q,
            &clauses,
            &resources,
            &by_sql,
            &expected,
            &undecidable,
        ));
    }
    eprintln!(
        "{:?}: {counts:?} over {} resources in {:?}",
        db.backend,
        resources.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{:?}: {} of {} searches disagree:\n\n{}",
        db.backend,
        failures.len(),
        counts.queries,
        failures.join("\n\n")
    );
    assert!(
        counts.unparsed * 20 <= counts.queries,
        "too many generated queries did not parse: {counts:?}"
    );
    assert!(
        counts.nonempty * 4 >= counts.checked,
        "too few searches hit anything: {counts:?}"
    );
}

fn describe(
    q: &str,
    clauses: &[oxmed_fhir::search::Clause],
    resources: &[Value],
    by_sql: &Result<BTreeSet<String>, oxmed_store::StoreError>,
    expected: &BTreeSet<String>,
    undecidable: &[(String, oxmed_fhir::search::matching::MatchError)],
) -> String {
    let found = match by_sql {
        Ok(found) => found,
        Err(e) => return format!("query {q}\n  clauses {clauses:?}\n  SQL error: {e}"),
    };
    let differing: Vec<String> = found
        .symmetric_difference(expected)
        .map(|id| {
            let r = resources.iter().find(|r| r["id"] == **id).unwrap();
            let in_memory = undecidable
                .iter()
                .find(|(u, _)| u == id)
                .map(|(_, e)| format!("Err({e})"))
                .unwrap_or_else(|| expected.contains(id).to_string());
            format!(
                "  {id}: sql={} in-memory={in_memory}\n    {r}",
                found.contains(id)
            )
        })
        .collect();
    format!("query {q}\n  clauses {clauses:?}\n{}", differing.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_agrees_with_in_memory_matching_sqlite() {
    run(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_agrees_with_in_memory_matching_postgres() {
    if let Some(db) = postgres().await {
        run(db).await;
    }
}
