//! `_sort` (several keys, missing values), keyset paging (also while resources are created,
//! updated and deleted), `_offset`, `_count=0` and totals, on both backends.

mod common;

use std::collections::HashSet;

use common::*;
use oxmed_fhir::search::{SearchRequest, Summary, Total};
use oxmed_store::StoreError;
use serde_json::{Value, json};

const P: &str = "project";

async fn seed(db: &Db) {
    let patients = [
        json!({"resourceType": "Patient", "id": "s1", "gender": "male", "birthDate": "1990-02-02", "name": [{"family": "Baker"}]}),
        json!({"resourceType": "Patient", "id": "s2", "gender": "female", "birthDate": "1985", "name": [{"family": "adams"}]}),
        json!({"resourceType": "Patient", "id": "s3", "gender": "male", "birthDate": "1970-01-01"}),
        json!({"resourceType": "Patient", "id": "s4", "gender": "female", "name": [{"family": "Çelik"}]}),
        json!({"resourceType": "Patient", "id": "s5", "gender": "other", "birthDate": "1985-06-01", "name": [{"family": "Zed"}, {"family": "Able"}]}),
        json!({"resourceType": "Patient", "id": "s6", "gender": "male", "birthDate": "1990-02-02", "name": [{"family": "baker"}]}),
    ];
    for p in patients {
        put(&db.store, P, p).await;
    }
}

fn sorted_request(keys: &[&str], count: usize) -> SearchRequest {
    let mut r = request("Patient", vec![]);
    r.sort = sort(keys);
    r.count = count;
    r
}

/// Every page of `request`, following the cursors.
async fn all_pages(db: &Db, mut request: SearchRequest) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let page = db.store.search(P, &request, None).await.unwrap();
        assert!(page.matches.len() <= request.count);
        out.extend(page.matches.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => return out,
        }
    }
    panic!("paging does not end");
}

both!(sort_keys_directions_and_missing_values, |db| async move {
    seed(&db).await;
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["s1", "s2", "s3", "s4", "s5", "s6"]),
        // Ascending by the smallest value (s5: Able), descending by the largest (s5: Zed);
        // without a value last either way; ties by rid in the direction of the last key.
        (&["family"], &["s5", "s2", "s1", "s6", "s4", "s3"]),
        (&["-family"], &["s5", "s4", "s6", "s1", "s2", "s3"]),
        (&["birthdate"], &["s3", "s2", "s5", "s1", "s6", "s4"]),
        (&["-birthdate"], &["s6", "s1", "s2", "s5", "s3", "s4"]),
        (
            &["gender", "-birthdate"],
            &["s2", "s4", "s6", "s1", "s3", "s5"],
        ),
        (
            &["-gender", "family"],
            &["s5", "s1", "s6", "s3", "s2", "s4"],
        ),
        (&["_id"], &["s1", "s2", "s3", "s4", "s5", "s6"]),
        (&["-_id"], &["s6", "s5", "s4", "s3", "s2", "s1"]),
        (&["_lastUpdated"], &["s1", "s2", "s3", "s4", "s5", "s6"]),
        (&["-_lastUpdated"], &["s6", "s5", "s4", "s3", "s2", "s1"]),
    ];
    for (keys, expected) in cases {
        let all = ids(&db, P, &sorted_request(keys, 100)).await;
        assert_eq!(all, *expected, "_sort={keys:?}");
        // The same order page by page, for every page size.
        for count in 1..=4 {
            let paged = all_pages(&db, sorted_request(keys, count)).await;
            assert_eq!(paged, *expected, "_sort={keys:?} _count={count}");
        }
        // _offset pages the same order.
        let mut r = sorted_request(keys, 2);
        r.offset = 3;
        assert_eq!(
            ids(&db, P, &r).await,
            expected[3..5].to_vec(),
            "_sort={keys:?} _offset=3"
        );
    }
    let mut r = sorted_request(&["code-value-quantity"], 10);
    r.resource_types = vec!["Observation".into()];
    let err = db.store.search(P, &r, None).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidSearch(_)), "{err}");
});

both!(cursors_are_checked, |db| async move {
    seed(&db).await;
    let page = db
        .store
        .search(P, &sorted_request(&["family"], 2), None)
        .await
        .unwrap();
    let cursor = page.next_cursor.unwrap();
    for bad in ["", "not base64!", "W10", "WyJmYW1pbHkiLDEsW11d"] {
        let mut r = sorted_request(&["family"], 2);
        r.cursor = Some(bad.to_owned());
        let err = db.store.search(P, &r, None).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidCursor(_)), "{bad}: {err}");
    }
    // A cursor of another sort is refused, not misread.
    let mut r = sorted_request(&["-family"], 2);
    r.cursor = Some(cursor.clone());
    assert!(matches!(
        db.store.search(P, &r, None).await,
        Err(StoreError::InvalidCursor(_))
    ));
    // The last page has no cursor.
    let last = db
        .store
        .search(P, &sorted_request(&["family"], 6), None)
        .await
        .unwrap();
    assert_eq!(last.next_cursor, None);
    assert_eq!(last.matches.len(), 6);
});

both!(totals_and_count_zero, |db| async move {
    seed(&db).await;
    let mut r = sorted_request(&[], 2);
    r.total = Total::Accurate;
    let page = db.store.search(P, &r, None).await.unwrap();
    assert_eq!((page.matches.len(), page.total), (2, Some(6)));
    r.filters = vec![one(param("gender", tok(None, "male")))];
    assert_eq!(db.store.search(P, &r, None).await.unwrap().total, Some(3));
    r.total = Total::Estimate;
    let estimate = db.store.search(P, &r, None).await.unwrap().total;
    match db.backend {
        // SQLite has no estimate: it counts.
        Backend::Sqlite => assert_eq!(estimate, Some(3)),
        Backend::Postgres => assert!(estimate.is_some()),
    }
    r.total = Total::None;
    assert_eq!(db.store.search(P, &r, None).await.unwrap().total, None);
    r.summary = Summary::Count;
    let count = db.store.search(P, &r, None).await.unwrap();
    assert_eq!(
        (count.matches.len(), count.total, count.next_cursor),
        (0, Some(3), None)
    );
    r.summary = Summary::False;
    r.count = 0;
    r.total = Total::Accurate;
    let zero = db.store.search(P, &r, None).await.unwrap();
    assert_eq!(
        (zero.matches.len(), zero.total, zero.next_cursor),
        (0, Some(3), None)
    );
    r.count = 1;
    r.total = Total::Accurate;
    assert_eq!(
        db.store.search("nobody", &r, None).await.unwrap().total,
        Some(0)
    );
});

/// Pages through `keys` while other tasks create, update and delete Patients: every Patient
/// that exists throughout appears exactly once, in order.
async fn page_under_writes(db: &Db, keys: &[&str]) {
    let mut originals = Vec::new();
    for i in 0..150 {
        let id = format!("base{i:03}");
        put(
            &db.store,
            P,
            json!({"resourceType": "Patient", "id": id, "name": [{"family": format!("f{:03}", (i * 37) % 150)}], "birthDate": "1990"}),
        )
        .await;
        originals.push(id);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let store = db.store.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let id = format!("new{w}-{n}");
                put(
                    &store,
                    P,
                    json!({"resourceType": "Patient", "id": id, "name": [{"family": format!("f{:03}", (n * 13) % 160)}]}),
                )
                .await;
                // Updates that leave the sort keys alone, and deletes of what this writer made.
                let target = format!("base{:03}", (n * 7 + w * 50) % 150);
                put(
                    &store,
                    P,
                    json!({"resourceType": "Patient", "id": target, "name": [{"family": format!("f{:03}", (target[4..].parse::<usize>().unwrap() * 37) % 150)}], "birthDate": format!("{}", 1900 + n % 100)}),
                )
                .await;
                if n % 3 == 0 {
                    delete(&store, P, "Patient", &id).await;
                }
                n += 1;
            }
        }));
    }
    let mut request = sorted_request(keys, 7);
    let mut seen = Vec::new();
    loop {
        let page = db.store.search(P, &request, None).await.unwrap();
        seen.extend(page.matches.iter().map(|r| r.id.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => break,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a resource was returned twice");
    let seen_originals: Vec<&String> = seen.iter().filter(|id| id.starts_with("base")).collect();
    let mut expected: Vec<&String> = originals.iter().collect();
    if keys == ["family"] {
        expected.sort_by_key(|id| {
            (
                (id[4..].parse::<usize>().unwrap() * 37) % 150,
                (*id).clone(),
            )
        });
    }
    assert_eq!(
        seen_originals, expected,
        "a resource that existed throughout was skipped or misplaced"
    );
}

both!(
    keyset_paging_is_stable_under_concurrent_writes,
    |db| async move {
        page_under_writes(&db, &[]).await;
    }
);

both!(
    keyset_paging_by_a_parameter_under_concurrent_writes,
    |db| async move {
        page_under_writes(&db, &["family"]).await;
    }
);

both!(paging_through_ties_of_the_sort_key, |db| async move {
    // Two instants for sixty resources: every sort key has ties.
    let patients: Vec<Value> = (0..60)
        .map(|i| json!({"resourceType": "Patient", "id": format!("t{i:02}"), "gender": if i % 3 == 0 { "male" } else { "female" }}))
        .collect();
    let (first, second) = patients.split_at(30);
    let at = 1_700_000_000_000_000;
    put_all_tied(&db.store, P, first.to_vec(), at).await;
    put_all_tied(&db.store, P, second.to_vec(), at + 1_000).await;
    let page = db
        .store
        .search(P, &sorted_request(&[], 100), None)
        .await
        .unwrap();
    let stamps: HashSet<i64> = page.matches.iter().map(|r| r.last_updated).collect();
    assert!(
        stamps.len() < 30,
        "the test needs ties: {} distinct stamps",
        stamps.len()
    );
    for keys in [
        &["-_lastUpdated"][..],
        &["_lastUpdated"],
        &["gender"],
        &["-gender", "_lastUpdated"],
    ] {
        let all = ids(&db, P, &sorted_request(keys, 100)).await;
        assert_eq!(all.len(), 60);
        for count in [1, 3, 7] {
            assert_eq!(
                all_pages(&db, sorted_request(keys, count)).await,
                all,
                "_sort={keys:?} _count={count}"
            );
        }
    }
});

both!(
    paging_by_a_value_with_several_index_rows_per_resource,
    |db| async move {
        // Two identifiers with the same system|value (different types) give a resource two index
        // rows for the value; it is still one match, on one page.
        let patients = (0..40)
        .map(|i| {
            let identifier = |t: &str| json!({"system": "http://mrn", "value": if i % 2 == 0 { "even" } else { "odd" }, "type": {"text": t}});
            json!({"resourceType": "Patient", "id": format!("d{i:02}"), "identifier": [identifier("a"), identifier("b")]})
        })
        .collect();
        put_all(&db.store, P, patients).await;
        let mut r = sorted_request(&[], 100);
        r.filters = vec![one(param("identifier", tok(Some("http://mrn"), "even")))];
        r.total = Total::Accurate;
        let all = db.store.search(P, &r, None).await.unwrap();
        assert_eq!((all.matches.len(), all.total), (20, Some(20)));
        let all: Vec<String> = all.matches.into_iter().map(|r| r.id).collect();
        let expected: Vec<String> = (0..40).step_by(2).map(|i| format!("d{i:02}")).collect();
        assert_eq!(all, expected);
        for count in [1, 3, 7] {
            let mut paged = r.clone();
            paged.count = count;
            paged.total = Total::None;
            assert_eq!(all_pages(&db, paged).await, expected, "_count={count}");
        }
        let mut offset = r.clone();
        offset.count = 5;
        offset.offset = 5;
        assert_eq!(ids(&db, P, &offset).await, expected[5..10].to_vec());
    }
);

// A search driven by one reference and checked by one token (`subject=X&code=S|C`): SQLite
// joins the token check rather than probing it with `EXISTS`, so a resource with two matching
// token rows (the same code twice, with different displays) must still come once, on one page,
// and count once.
both!(a_joined_check_gives_each_resource_once, |db| async move {
    let loinc = "http://loinc.org";
    let observation = |id: &str, codings: Value| {
        json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": {"coding": codings}, "subject": {"reference": "Patient/j"}})
    };
    put(&db.store, P, json!({"resourceType": "Patient", "id": "j"})).await;
    put(
        &db.store,
        P,
        observation(
            "j1",
            json!([{"system": loinc, "code": "X", "display": "one"},
        {"system": loinc, "code": "X", "display": "two"}]),
        ),
    )
    .await;
    put(
        &db.store,
        P,
        observation("j2", json!([{"system": loinc, "code": "Y"}])),
    )
    .await;
    put(
        &db.store,
        P,
        observation("j3", json!([{"system": loinc, "code": "X"}])),
    )
    .await;
    put(
        &db.store,
        P,
        observation(
            "j4",
            json!([{"system": "http://other", "code": "X"},
        {"system": loinc, "code": "X"}, {"code": "X", "display": "bare"}]),
        ),
    )
    .await;
    let subject_and_code = |system: Option<&str>, count: usize| {
        let mut r = request(
            "Observation",
            vec![
                one(param("subject", reference(Some("Patient"), "j"))),
                one(param("code", tok(system, "X"))),
            ],
        );
        r.count = count;
        r
    };
    for (system, expected) in [
        (Some(loinc), ["j1", "j3", "j4"]),
        (None, ["j1", "j3", "j4"]),
    ] {
        assert_eq!(
            ids(&db, P, &subject_and_code(system, 100)).await,
            expected,
            "{system:?}"
        );
        for count in 1..=3 {
            let paged = all_pages(&db, subject_and_code(system, count)).await;
            assert_eq!(paged, expected, "{system:?} _count={count}");
        }
        let mut counted = subject_and_code(system, 0);
        counted.total = Total::Accurate;
        let page = db.store.search(P, &counted, None).await.unwrap();
        assert_eq!(page.total, Some(3), "{system:?}");
    }
});
