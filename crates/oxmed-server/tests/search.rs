//! FHIR search over HTTP, on both backends: the searchset Bundle, paging, totals, includes,
//! compartments, lenient handling and the error statuses. The per-type conformance of every
//! parameter type, modifier and prefix is in `oxmed-store/tests/`.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

fn ids(bundle: &Value, mode: &str) -> BTreeSet<String> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

async fn put(srv: &TestServer, resource: Value) {
    let t = resource["resourceType"].as_str().unwrap().to_owned();
    let id = resource["id"].as_str().unwrap().to_owned();
    let r = srv.put(&format!("{t}/{id}"), &resource).await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
}

/// Two patients, an organization, observations about them.
async fn seed(srv: &TestServer) {
    put(
        srv,
        json!({ "resourceType": "Organization", "id": "org1", "name": "Acme Clinic" }),
    )
    .await;
    put(
        srv,
        json!({
            "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-05-17",
            "name": [{ "family": "Müller", "given": ["Anna"] }],
            "managingOrganization": { "reference": "Organization/org1" }
        }),
    )
    .await;
    put(
        srv,
        json!({
            "resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1975",
            "name": [{ "family": "Smith", "given": ["John"] }]
        }),
    )
    .await;
    for (id, patient, code, value, date) in [
        ("o1", "p1", "8867-4", 72.0, "2024-01-10T10:00:00Z"),
        ("o2", "p1", "8867-4", 95.0, "2024-02-10T10:00:00Z"),
        ("o3", "p1", "8480-6", 120.0, "2024-03-10T10:00:00Z"),
        ("o4", "p2", "8867-4", 60.0, "2023-12-31T23:30:00-05:00"),
    ] {
        put(srv, json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "code": { "coding": [{ "system": "http://loinc.org", "code": code }] },
            "subject": { "reference": format!("Patient/{patient}") },
            "effectiveDateTime": date,
            "valueQuantity": { "value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min" }
        }))
        .await;
    }
}

e2e!(searchset_bundle_shape, |srv| async move {
    seed(&srv).await;
    let r = srv
        .get("Observation?subject=Patient/p1&code=http://loinc.org|8867-4&_total=accurate")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["resourceType"], "Bundle");
    assert_eq!(r.body["type"], "searchset");
    assert_eq!(r.body["total"], 2);
    assert_eq!(
        ids(&r.body, "match"),
        set(&["Observation/o1", "Observation/o2"])
    );
    let entry = &r.body["entry"][0];
    assert!(entry["fullUrl"].as_str().unwrap().starts_with(&srv.fhir));
    let links = r.body["link"].as_array().unwrap();
    assert!(links.iter().any(|l| l["relation"] == "self"));
});

e2e!(each_parameter_type_answers, |srv| async move {
    seed(&srv).await;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("Patient?name=mull", vec!["Patient/p1"]),
        ("Patient?name:exact=Smith", vec!["Patient/p2"]),
        ("Patient?name:contains=ITH", vec!["Patient/p2"]),
        ("Patient?gender=female", vec!["Patient/p1"]),
        ("Patient?gender:not=female", vec!["Patient/p2"]),
        ("Patient?birthdate=1980", vec!["Patient/p1"]),
        ("Patient?birthdate=lt1979", vec!["Patient/p2"]),
        ("Patient?organization=Organization/org1", vec!["Patient/p1"]),
        ("Patient?organization:missing=true", vec!["Patient/p2"]),
        (
            "Observation?value-quantity=gt90",
            vec!["Observation/o2", "Observation/o3"],
        ),
        (
            "Observation?value-quantity=72||/min",
            vec!["Observation/o1"],
        ),
        (
            "Observation?date=2024-01",
            vec!["Observation/o1", "Observation/o4"],
        ),
        ("Observation?date=2023", vec![]),
        // 23:30 at -05:00 is 2024-01-01T04:30Z.
        ("Observation?date=2024-01-01", vec!["Observation/o4"]),
        (
            "Observation?code-value-quantity=http://loinc.org|8867-4$gt90",
            vec!["Observation/o2"],
        ),
        (
            "Observation?subject:Patient.name=smith",
            vec!["Observation/o4"],
        ),
        (
            "Observation?subject:Patient.organization.name=acme",
            vec!["Observation/o1", "Observation/o2", "Observation/o3"],
        ),
        (
            "Patient?_has:Observation:subject:code=8480-6",
            vec!["Patient/p1"],
        ),
        (
            "Observation?_id=o1,o4",
            vec!["Observation/o1", "Observation/o4"],
        ),
    ];
    for (query, expected) in cases {
        let r = srv.get(query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(ids(&r.body, "match"), set(&expected), "{query}");
    }
});

e2e!(paging_sort_and_count, |srv| async move {
    for i in 0..7 {
        put(&srv, json!({ "resourceType": "Patient", "id": format!("pg{i}"), "birthDate": format!("200{i}-01-01") })).await;
    }
    let mut seen = Vec::new();
    let mut url = "Patient?_sort=-birthdate&_count=3".to_owned();
    loop {
        let r = srv.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for e in r.body["entry"].as_array().unwrap() {
            seen.push(e["resource"]["id"].as_str().unwrap().to_owned());
        }
        match next_link(&r.body) {
            Some(n) => {
                url = n
                    .strip_prefix(&format!("{}/", srv.fhir))
                    .unwrap()
                    .to_owned()
            }
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("pg{i}")).collect();
    assert_eq!(seen, expected);

    let count = srv.get("Patient?_summary=count").await;
    assert_eq!(count.body["total"], 7);
    assert!(
        count.body["entry"]
            .as_array()
            .map(|a| a.is_empty())
            .unwrap_or(true)
    );
    let zero = srv.get("Patient?_count=0&_total=accurate").await;
    assert_eq!(zero.body["total"], 7);
});

e2e!(include_and_revinclude, |srv| async move {
    seed(&srv).await;
    let r = srv
        .get("Observation?patient=p1&_include=Observation:subject&_count=100")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body, "match").len(), 3);
    assert_eq!(ids(&r.body, "include"), set(&["Patient/p1"]));
    let r = srv
        .get("Patient?_id=p1&_revinclude=Observation:subject")
        .await;
    assert_eq!(ids(&r.body, "include").len(), 3);
    let r = srv
        .get(
            "Observation?_id=o1&_include=Observation:subject&_include:iterate=Patient:organization",
        )
        .await;
    assert_eq!(
        ids(&r.body, "include"),
        set(&["Patient/p1", "Organization/org1"])
    );
});

e2e!(compartment_search, |srv| async move {
    seed(&srv).await;
    let r = srv.get("Patient/p1/Observation").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        ids(&r.body, "match"),
        set(&["Observation/o1", "Observation/o2", "Observation/o3"])
    );
    let r = srv.get("Patient/p1/Observation?code=8480-6").await;
    assert_eq!(ids(&r.body, "match"), set(&["Observation/o3"]));
    let r = srv.get("Observation?_compartment=Patient/p2").await;
    assert_eq!(ids(&r.body, "match"), set(&["Observation/o4"]));
});

e2e!(post_search_and_system_search, |srv| async move {
    seed(&srv).await;
    let r = srv
        .send_raw(
            Method::POST,
            "Patient/_search",
            b"gender=male".to_vec(),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body, "match"), set(&["Patient/p2"]));
    let r = srv.get("?_type=Patient,Organization&_count=100").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body, "match").len(), 3);
});

e2e!(strict_and_lenient_handling, |srv| async move {
    seed(&srv).await;
    let strict = srv.get("Patient?nonsense=1").await;
    let msg = strict.outcome(400);
    assert!(msg.contains("nonsense"), "{msg}");
    let lenient = srv
        .send(
            Method::GET,
            "Patient?nonsense=1&gender=male",
            &Value::Null,
            &[("prefer", "handling=lenient")],
        )
        .await;
    assert_eq!(lenient.status, 200, "{}", lenient.text);
    assert_eq!(ids(&lenient.body, "match"), set(&["Patient/p2"]));
    let outcome = lenient.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("an outcome entry says what was ignored");
    assert!(outcome["resource"].to_string().contains("nonsense"));
});

e2e!(bad_searches_are_400, |srv| async move {
    let long = format!("Patient?name={}", "a".repeat(10_000));
    for query in [
        "Patient?_count=-1",
        "Patient?_count=abc",
        "Patient?birthdate=notadate",
        "Patient?_sort=unknown",
        "Patient?birthdate=xx2020",
        "Observation?code.name=x",
        "Patient?_total=maybe",
        long.as_str(),
    ] {
        let r = srv.get(query).await;
        r.outcome(400);
    }
});
