//! Query plans on a few thousand rows: selective searches must be answered from indexes, on
//! both backends (SQLite `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN` after `ANALYZE`). Run with
//! `--nocapture` to see the plans and timings; `OXMED_PLAN_PATIENTS` sets the size (3000
//! Patients, each with two Observations, by default) to compare timings across sizes.

mod common;

use std::time::Instant;

use common::*;
use oxmed_fhir::search::{Clause, Condition, SearchRequest};
use oxmed_store::ProjectView;
use serde_json::{Value, json};

const P: &str = "plans";
const OTHER: &str = "plans-other";
fn patient_count() -> usize {
    std::env::var("OXMED_PLAN_PATIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 3000)
        .unwrap_or(3000)
}

fn patients(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let family = if i % 300 == 7 {
                "Smith".to_owned()
            } else {
                format!("fam{i:05}")
            };
            json!({"resourceType": "Patient", "id": format!("{prefix}{i}"),
                "gender": if i % 2 == 0 { "female" } else { "male" },
                "birthDate": format!("{}-01-01", 1940 + i % 60),
                "name": [{"family": family, "given": [format!("given{}", i % 97)]}]})
        })
        .collect()
}

fn observations(prefix: &str, patient_prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .flat_map(|i| {
            let subject = json!({"reference": format!("Patient/{patient_prefix}{i}")});
            [
                json!({"resourceType": "Observation", "id": format!("{prefix}a{i}"), "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": subject,
                    "effectiveDateTime": format!("2020-01-{:02}T10:00:00Z", 1 + i % 28),
                    "valueQuantity": {"value": 60 + (i % 40), "system": "http://unitsofmeasure.org", "code": "/min"}}),
                json!({"resourceType": "Observation", "id": format!("{prefix}b{i}"), "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": format!("C{}", i % 300)}]},
                    "subject": subject}),
            ]
        })
        .collect()
}

async fn load(db: &Db) {
    put_all(&db.store, P, patients("p", patient_count())).await;
    put_all(&db.store, P, observations("o", "p", patient_count())).await;
    put_all(&db.store, OTHER, patients("q", 500)).await;
    put_all(&db.store, OTHER, observations("x", "q", 500)).await;
    if db.backend == Backend::Postgres {
        raw_execute(db, "ANALYZE").await;
    }
}

struct Case {
    name: &'static str,
    request: SearchRequest,
    expected: usize,
    /// Substrings the plan must contain (index use).
    must: Vec<&'static str>,
    /// Substrings it must not contain (scans of whole tables or index tables, sorts).
    must_not: Vec<&'static str>,
    restriction: Option<oxmed_fhir::search::Restriction>,
}

/// An access policy's view: the Observations in the compartments of these Patients.
fn observations_of(patients: &[String]) -> oxmed_fhir::search::Restriction {
    let any = patients
        .iter()
        .map(|p| Condition::Compartment {
            compartment_type: "Patient".into(),
            id: p.clone(),
        })
        .collect();
    oxmed_fhir::search::Restriction {
        types: [("Observation".to_owned(), vec![vec![Clause { any }]])]
            .into_iter()
            .collect(),
    }
}

/// `Observation?subject=Patient/p1234&code=http://loinc.org|8867-4`, first page of 20.
fn subject_code() -> SearchRequest {
    let mut r = request(
        "Observation",
        vec![
            one(param("subject", reference(Some("Patient"), "p1234"))),
            one(param("code", tok(Some("http://loinc.org"), "8867-4"))),
        ],
    );
    r.count = 20;
    r
}

fn cases(backend: Backend) -> Vec<Case> {
    let sqlite = backend == Backend::Sqlite;
    // Patients named Smith, and Patients with an Observation of code C17.
    let k = patient_count() / 300;
    let subject_code = subject_code();
    let mut name = request("Patient", vec![one(param("name", starts("smi")))]);
    name.count = 20;
    let mut newest = request("Patient", vec![]);
    newest.sort = sort(&["-_lastUpdated"]);
    newest.count = 20;
    let mut first_page = request("Patient", vec![]);
    first_page.count = 20;
    let mut common_code = request(
        "Observation",
        vec![one(param("code", tok(Some("http://loinc.org"), "8867-4")))],
    );
    common_code.count = 20;
    let mut chain = request(
        "Observation",
        vec![one(Condition::Chain {
            reference_code: "subject".into(),
            target_type: "Patient".into(),
            inner: Box::new(param("name", starts("smi"))),
        })],
    );
    chain.count = 50;
    let mut has = request(
        "Patient",
        vec![one(Condition::Has {
            source_type: "Observation".into(),
            reference_code: "subject".into(),
            inner: Box::new(param("code", tok(Some("http://loinc.org"), "C17"))),
        })],
    );
    has.count = 50;
    let mut compartment = request(
        "Observation",
        vec![one(Condition::Compartment {
            compartment_type: "Patient".into(),
            id: "p42".into(),
        })],
    );
    compartment.count = 50;
    let mut name_sorted = request("Patient", vec![one(param("name", starts("smi")))]);
    name_sorted.sort = sort(&["birthdate"]);
    name_sorted.count = 20;
    // SQLite names tables by their alias in plans, and the WITHOUT ROWID index tables' lookup
    // order is their PRIMARY KEY; "SCAN" is a read of a whole table or index.
    let no_scan = if sqlite {
        vec!["SCAN "]
    } else {
        vec!["Seq Scan"]
    };
    let reference_key = if sqlite {
        "USING PRIMARY KEY (project=? AND resource_type=? AND code=? AND target_id=? AND target_type=?)"
    } else {
        "reference_idx_lookup"
    };
    let name_key = if sqlite {
        "USING PRIMARY KEY (project=? AND resource_type=? AND code=? AND normalized>? AND normalized<?)"
    } else {
        "string_idx_lookup"
    };
    let token_key = if sqlite {
        "USING PRIMARY KEY (project=? AND resource_type=? AND code=? AND value=? AND system=?)"
    } else {
        "token_idx_lookup"
    };
    let mut patient_compartment = request(
        "Patient",
        vec![one(Condition::Compartment {
            compartment_type: "Patient".into(),
            id: "p42".into(),
        })],
    );
    patient_compartment.count = 20;
    vec![
        Case {
            name: "Patient?_compartment=Patient/p42 (the Patient itself, or linked)",
            request: patient_compartment,
            expected: 1,
            must: vec![if sqlite {
                "sqlite_autoindex_resources_1 (resource_type=? AND id=?)"
            } else {
                "resources_resource_type_id_key"
            }],
            must_not: no_scan.clone(),
            restriction: None,
        },
        Case {
            name: "Observation?code=http://loinc.org|8867-4, restricted to _compartment=Patient/p42",
            request: {
                let mut r = request(
                    "Observation",
                    vec![one(param("code", tok(Some("http://loinc.org"), "8867-4")))],
                );
                r.count = 20;
                r
            },
            expected: 1,
            must: vec![reference_key],
            must_not: no_scan.clone(),
            restriction: Some(observations_of(&["p42".to_owned()])),
        },
        Case {
            // An access policy letting the caller see the Observations of 100 Patients (issue
            // 5's benchmark), one of which the search names: every row it finds is in that
            // Patient's compartment, so the policy's list is not checked row by row.
            name: "Observation?subject=Patient/p1234&code=http://loinc.org|8867-4, restricted to the compartments of 100 Patients",
            request: subject_code.clone(),
            expected: 1,
            must: vec![reference_key],
            must_not: [no_scan.clone(), vec!["reference_idx_rid"]].concat(),
            restriction: Some(observations_of(
                &(1200..1300).map(|i| format!("p{i}")).collect::<Vec<_>>(),
            )),
        },
        Case {
            // The same policy, the search naming a Patient outside it: the list is checked for
            // the rows the caller's conditions find (none pass).
            name: "Observation?subject=Patient/p1234&code=http://loinc.org|8867-4, restricted to the compartments of 100 other Patients",
            request: subject_code.clone(),
            expected: 0,
            must: vec![reference_key, "reference_idx_rid"],
            must_not: no_scan.clone(),
            restriction: Some(observations_of(
                &(1300..1400).map(|i| format!("p{i}")).collect::<Vec<_>>(),
            )),
        },
        Case {
            name: "Observation?subject=Patient/p1234&code=http://loinc.org|8867-4",
            request: subject_code,
            expected: 1,
            // PostgreSQL: the reference rows drive in `rid` order and each is checked by one
            // probe (a fenced SubPlan), before its resource row is read.
            must: if sqlite {
                vec![reference_key, "token_idx_rid (rid=?"]
            } else {
                // ... and the reference rows whose resource lacks the code are dropped by
                // their token signature in the index-only scan, before any probe.
                vec![reference_key, "SubPlan", "Unique", "token_signature"]
            },
            must_not: no_scan.clone(),
            restriction: None,
        },
        Case {
            name: "Patient?name=smi",
            request: name,
            expected: k.min(20),
            must: vec![name_key],
            must_not: no_scan.clone(),
            restriction: None,
        },
        Case {
            name: "Patient?_sort=-_lastUpdated&_count=20",
            request: newest,
            expected: 20,
            must: vec![if sqlite {
                "SEARCH r USING INDEX resources_project_type_updated (project_key=? AND resource_type=?)"
            } else {
                "Index Scan Backward using resources_project_type_updated"
            }],
            must_not: vec!["TEMP B-TREE", "Sort", "Seq Scan"],
            restriction: None,
        },
        Case {
            name: "Patient?_count=20",
            request: first_page,
            expected: 20,
            must: vec![if sqlite {
                "SEARCH r USING INDEX resources_project_type (project_key=? AND resource_type=?)"
            } else {
                "Index Scan"
            }],
            must_not: vec!["TEMP B-TREE", "Sort", "Seq Scan"],
            restriction: None,
        },
        Case {
            name: "Observation?code=http://loinc.org|8867-4&_count=20 (half of all rows)",
            request: common_code,
            expected: 20,
            // On SQLite the index rows are read in rid order and the page stops after 20.
            must: vec![if sqlite {
                "SEARCH d USING PRIMARY KEY (project=? AND resource_type=? AND code=? AND value=? AND system=?)"
            } else {
                token_key
            }],
            must_not: vec!["SCAN ", "TEMP B-TREE", "LIST SUBQUERY", "Seq Scan"],
            restriction: None,
        },
        Case {
            name: "Observation?subject:Patient.name=smi",
            request: chain,
            expected: (2 * k).min(50),
            must: vec![name_key, reference_key],
            must_not: no_scan.clone(),
            restriction: None,
        },
        Case {
            name: "Patient?_has:Observation:subject:code=C17",
            request: has,
            expected: k.min(50),
            must: vec![token_key, "reference_idx_rid"],
            must_not: no_scan.clone(),
            restriction: None,
        },
        Case {
            name: "Observation?_compartment=Patient/p42",
            request: compartment,
            expected: 2,
            must: vec![reference_key],
            must_not: no_scan.clone(),
            restriction: None,
        },
        Case {
            name: "Patient?name=smi&_sort=birthdate",
            request: name_sorted,
            expected: k.min(20),
            must: vec![name_key, "date_idx_rid"],
            must_not: no_scan,
            restriction: None,
        },
    ]
}

async fn check_plans(db: Db) {
    let started = Instant::now();
    load(&db).await;
    println!(
        "[{:?}] loaded {} resources in {:?}",
        db.backend,
        (patient_count() + 500) * 3,
        started.elapsed()
    );
    let mut failures = Vec::new();
    for case in cases(db.backend) {
        let restriction = case.restriction.as_ref();
        let plan = db
            .store
            .explain_search(P, &ProjectView::Own, &case.request, restriction)
            .await
            .unwrap();
        let found = db
            .store
            .search(P, &case.request, restriction)
            .await
            .unwrap();
        let runs = 200;
        let t = Instant::now();
        for _ in 0..runs {
            db.store
                .search(P, &case.request, restriction)
                .await
                .unwrap();
        }
        let each = t.elapsed() / runs;
        println!(
            "\n[{:?}] {}  ({} rows, {each:?} per search)\n{plan}",
            db.backend,
            case.name,
            found.matches.len()
        );
        if found.matches.len() != case.expected {
            failures.push(format!("{}: {} rows", case.name, found.matches.len()));
        }
        for m in &case.must {
            if !plan.contains(m) {
                failures.push(format!("{}: the plan does not use {m}", case.name));
            }
        }
        for m in &case.must_not {
            if plan.contains(m) {
                failures.push(format!("{}: the plan has {m:?}", case.name));
            }
        }
    }
    // A later page starts where the cursor says, by the index, without reading what came
    // before.
    for (keys, index) in [
        (&["-_lastUpdated"][..], "resources_project_type_updated"),
        (&[][..], "resources_project_type"),
    ] {
        let mut r = request("Patient", vec![]);
        r.sort = sort(keys);
        r.count = 20;
        let first = db.store.search(P, &r, None).await.unwrap();
        r.cursor = first.next_cursor;
        let plan = db
            .store
            .explain_search(P, &ProjectView::Own, &r, None)
            .await
            .unwrap();
        let second = db.store.search(P, &r, None).await.unwrap();
        println!(
            "\n[{:?}] Patient?_sort={keys:?}, second page by cursor\n{plan}",
            db.backend
        );
        assert_eq!(second.matches.len(), 20);
        let ok = match db.backend {
            Backend::Sqlite => {
                plan.contains(&format!(
                    "SEARCH r USING INDEX {index} (project_key=? AND resource_type=? AND "
                )) && !plan.contains("TEMP B-TREE")
            }
            Backend::Postgres => {
                plan.contains("Index Cond") && !plan.contains("Sort") && !plan.contains("Seq Scan")
            }
        };
        if !ok {
            failures.push(format!("second page of {keys:?} is not an index range"));
        }
    }
    // A super admin sees every project: the same search over each project's key, as cheap.
    let r = subject_code();
    for view in [ProjectView::Own, ProjectView::All] {
        let plan = db.store.explain_search(P, &view, &r, None).await.unwrap();
        let runs = 200;
        let t = Instant::now();
        for _ in 0..runs {
            db.store.search_shared(P, &view, &r, None).await.unwrap();
        }
        println!(
            "\n[{:?}] Observation?subject&code over {view:?} ({:?} per search)\n{plan}",
            db.backend,
            t.elapsed() / runs
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn selective_searches_use_indexes_sqlite() {
    check_plans(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn selective_searches_use_indexes_postgres() {
    if let Some(db) = postgres().await {
        check_plans(db).await;
    }
}
