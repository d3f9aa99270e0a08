//! Conditional create, update and delete, and simple search, on both backends.

mod common;

use reqwest::Method;
use serde_json::{Value, json};

fn patient(mrn: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": "http://hospital.example/mrn", "value": mrn }],
        "name": [{ "family": "Müller", "given": ["Anna"] }]
    })
}

e2e!(if_none_exist_creates_once, |srv| async move {
    let cond = "identifier=http://hospital.example/mrn|123";
    let first = srv
        .send(
            Method::POST,
            "Patient",
            &patient("123"),
            &[("if-none-exist", cond)],
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let second = srv
        .send(
            Method::POST,
            "Patient",
            &patient("123"),
            &[("if-none-exist", cond)],
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(
        second.body["meta"]["versionId"],
        first.body["meta"]["versionId"]
    );

    // A different identifier creates another.
    let other = srv
        .send(
            Method::POST,
            "Patient",
            &patient("456"),
            &[(
                "if-none-exist",
                "identifier=http://hospital.example/mrn|456",
            )],
        )
        .await;
    assert_eq!(other.status, 201);
    assert_ne!(other.body["id"], first.body["id"]);

    // Two matches: 412.
    srv.create(&patient("123")).await;
    let many = srv
        .send(
            Method::POST,
            "Patient",
            &patient("123"),
            &[("if-none-exist", cond)],
        )
        .await;
    many.outcome(412);

    // An unknown parameter in the condition is a bad request, not a silent create.
    let bad = srv
        .send(
            Method::POST,
            "Patient",
            &patient("9"),
            &[("if-none-exist", "nonsense=1")],
        )
        .await;
    bad.outcome(400);
});

e2e!(
    concurrent_if_none_exist_creates_exactly_one,
    |srv| async move {
        let cond = "identifier=http://hospital.example/mrn|race";
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let client = srv.client.clone();
            let url = srv.url("Patient");
            let body = patient("race").to_string();
            tasks.push(tokio::spawn(async move {
                client
                    .post(url)
                    .header("content-type", "application/fhir+json")
                    .header("if-none-exist", cond)
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                201 => created += 1,
                200 => {}
                s => panic!("unexpected status {s}"),
            }
        }
        assert_eq!(created, 1);
        let found = srv
            .get("Patient?identifier=http://hospital.example/mrn|race")
            .await;
        assert_eq!(found.body["entry"].as_array().unwrap().len(), 1);
    }
);

e2e!(
    conditional_update_creates_updates_or_refuses,
    |srv| async move {
        let q = "Patient?identifier=http://hospital.example/mrn|777";
        let created = srv.put(q, &patient("777")).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_owned();

        let mut changed = patient("777");
        changed["gender"] = json!("female");
        let updated = srv.put(q, &changed).await;
        assert_eq!(updated.status, 200, "{}", updated.text);
        assert_eq!(updated.body["id"], id.as_str());
        assert_eq!(updated.body["gender"], "female");

        // A body id that is not the match's.
        let mut wrong = changed.clone();
        wrong["id"] = json!("someone-else");
        srv.put(q, &wrong).await.outcome(400);

        srv.create(&patient("777")).await;
        srv.put(q, &changed).await.outcome(412);
    }
);

e2e!(conditional_delete, |srv| async move {
    let p = srv.create(&patient("del")).await;
    let r = srv
        .delete("Patient?identifier=http://hospital.example/mrn|del")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    srv.get(&format!("Patient/{}", p["id"].as_str().unwrap()))
        .await
        .outcome(410);
    // Nothing matches any more: still fine.
    assert_eq!(
        srv.delete("Patient?identifier=http://hospital.example/mrn|del")
            .await
            .status,
        200
    );
    srv.create(&patient("two")).await;
    srv.create(&patient("two")).await;
    srv.delete("Patient?identifier=http://hospital.example/mrn|two")
        .await
        .outcome(412);
});

e2e!(
    simple_search_by_token_string_and_reference,
    |srv| async move {
        let a = srv.create(&patient("s1")).await;
        let b = srv
            .create(&json!({ "resourceType": "Patient", "name": [{ "family": "Smith" }] }))
            .await;
        let a_id = a["id"].as_str().unwrap();
        srv.create(&json!({
            "resourceType": "Observation", "status": "final",
            "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4" }] },
            "subject": { "reference": format!("Patient/{a_id}") }
        }))
        .await;

        // Accent- and case-insensitive prefix.
        let r = srv.get("Patient?name=mull").await;
        assert_eq!(r.body["type"], "searchset");
        let ids: Vec<&str> = r.body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [a_id]);
        let r = srv.get("Patient?name=smi").await;
        assert_eq!(r.body["entry"][0]["resource"]["id"], b["id"]);
        let r = srv
            .get(&format!(
                "Observation?subject=Patient/{a_id}&code=http://loinc.org|8867-4"
            ))
            .await;
        assert_eq!(r.body["entry"].as_array().unwrap().len(), 1);
        let r = srv.get("Observation?code=http://other|8867-4").await;
        assert_eq!(r.body["entry"].as_array().unwrap().len(), 0);
        srv.get("Patient?unknown=1").await.outcome(400);
    }
);

e2e!(index_follows_updates_and_deletes, |srv| async move {
    let p = srv
        .create(&json!({ "resourceType": "Patient", "name": [{ "family": "Oldname", "given": ["Kept"] }], "gender": "male" }))
        .await;
    let id = p["id"].as_str().unwrap();
    let count = |r: &common::Resp| r.body["entry"].as_array().map(|a| a.len()).unwrap_or(0);
    let mut changed = p.clone();
    changed["name"] = json!([{ "family": "Newname", "given": ["Kept"] }]);
    changed["gender"] = json!("female");
    assert_eq!(
        srv.put(&format!("Patient/{id}"), &changed).await.status,
        200
    );
    assert_eq!(
        count(&srv.get("Patient?name=oldname").await),
        0,
        "stale row left behind"
    );
    assert_eq!(count(&srv.get("Patient?name=newname").await), 1);
    assert_eq!(
        count(&srv.get("Patient?given=kept").await),
        1,
        "unchanged row kept"
    );
    assert_eq!(count(&srv.get("Patient?gender=male").await), 0);
    assert_eq!(count(&srv.get("Patient?gender=female").await), 1);
    assert_eq!(srv.delete(&format!("Patient/{id}")).await.status, 200);
    assert_eq!(
        count(&srv.get("Patient?given=kept").await),
        0,
        "a deleted resource is not found"
    );
    // Brought back, it is found again.
    assert_eq!(
        srv.put(&format!("Patient/{id}"), &changed).await.status,
        201
    );
    assert_eq!(count(&srv.get("Patient?given=kept").await), 1);
});
