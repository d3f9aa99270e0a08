//! Batch and transaction Bundles, on both backends.

mod common;

use serde_json::{Value, json};

fn entries(bundle: &Value) -> &Vec<Value> {
    bundle["entry"].as_array().expect("entries")
}

e2e!(transaction_rewrites_urn_uuid_references, |srv| async move {
    let tx = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                // Refers to a patient that comes later in the bundle.
                "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
                "resource": {
                    "resourceType": "Observation", "status": "final", "code": { "text": "weight" },
                    "subject": { "reference": "urn:uuid:22222222-2222-2222-2222-222222222222" }
                },
                "request": { "method": "POST", "url": "Observation" }
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
                "resource": { "resourceType": "Patient", "name": [{ "family": "Tx" }] },
                "request": { "method": "POST", "url": "Patient" }
            }
        ]
    });
    let r = srv.post("", &tx).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "transaction-response");
    let e = entries(&r.body);
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["response"]["status"], "201 Created");
    assert_eq!(e[1]["response"]["status"], "201 Created");
    let patient_id = e[1]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        e[0]["resource"]["subject"]["reference"],
        format!("Patient/{patient_id}")
    );
    let obs_id = e[0]["resource"]["id"].as_str().unwrap();
    let stored = srv.get(&format!("Observation/{obs_id}")).await;
    assert_eq!(
        stored.body["subject"]["reference"],
        format!("Patient/{patient_id}")
    );
});

e2e!(transaction_is_atomic, |srv| async move {
    let before = entries(&srv.get("_history").await.body).len();
    let existing = srv
        .create(&json!({ "resourceType": "Patient", "name": [{ "family": "Before" }] }))
        .await;
    let id = existing["id"].as_str().unwrap();
    let mut changed = existing.clone();
    changed["name"] = json!([{ "family": "After" }]);
    let tx = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            { "resource": changed, "request": { "method": "PUT", "url": format!("Patient/{id}") } },
            { "resource": { "resourceType": "Patient", "name": [{ "family": "New" }] },
              "request": { "method": "POST", "url": "Patient" } },
            // Fails inside the transaction: the version does not match.
            { "resource": { "resourceType": "Patient", "id": id, "active": true },
              "request": { "method": "PUT", "url": format!("Patient/{id}"), "ifMatch": "W/\"stale\"" } }
        ]
    });
    let r = srv.post("", &tx).await;
    r.outcome(412);
    let after = srv.get(&format!("Patient/{id}")).await;
    assert_eq!(after.body["name"][0]["family"], "Before");
    let all = srv.get("Patient?name=new").await;
    assert_eq!(
        entries(&all.body).len(),
        0,
        "the created patient was rolled back"
    );
    let history = srv.get("_history").await;
    assert_eq!(
        entries(&history.body).len(),
        before + 1,
        "no version was left behind"
    );
});

e2e!(
    transaction_with_missing_urn_uuid_leaves_nothing,
    |srv| async move {
        let tx = json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                { "fullUrl": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001",
                  "resource": { "resourceType": "Patient", "name": [{ "family": "A" }] },
                  "request": { "method": "POST", "url": "Patient" } },
                { "resource": {
                    "resourceType": "Observation", "status": "final", "code": { "text": "x" },
                    "subject": { "reference": "urn:uuid:bbbbbbbb-0000-0000-0000-000000000404" } },
                  "request": { "method": "POST", "url": "Observation" } }
            ]
        });
        let before = entries(&srv.get("_history").await.body).len();
        let msg = srv.post("", &tx).await.outcome(400);
        assert!(msg.contains("urn:uuid:bbbbbbbb"), "{msg}");
        assert_eq!(entries(&srv.get("_history").await.body).len(), before);
    }
);

e2e!(
    transaction_conditional_create_resolves_to_existing,
    |srv| async move {
        let existing = srv
            .create(&json!({
                "resourceType": "Patient",
                "identifier": [{ "system": "http://mrn", "value": "42" }]
            }))
            .await;
        let tx = json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                { "fullUrl": "urn:uuid:cccccccc-0000-0000-0000-000000000001",
                  "resource": { "resourceType": "Patient", "identifier": [{ "system": "http://mrn", "value": "42" }] },
                  "request": { "method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://mrn|42" } },
                { "resource": {
                    "resourceType": "Observation", "status": "final", "code": { "text": "x" },
                    "subject": { "reference": "urn:uuid:cccccccc-0000-0000-0000-000000000001" } },
                  "request": { "method": "POST", "url": "Observation" } }
            ]
        });
        let r = srv.post("", &tx).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let e = entries(&r.body);
        assert_eq!(e[0]["response"]["status"], "200 OK");
        assert_eq!(
            e[1]["resource"]["subject"]["reference"],
            format!("Patient/{}", existing["id"].as_str().unwrap())
        );
    }
);

e2e!(
    transaction_delete_patch_and_read_entries,
    |srv| async move {
        let a = srv
            .create(&json!({ "resourceType": "Patient", "gender": "male" }))
            .await;
        let b = srv
            .create(&json!({ "resourceType": "Patient", "gender": "male" }))
            .await;
        let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
        use base64::Engine;
        let patch = base64::engine::general_purpose::STANDARD
            .encode(json!([{ "op": "replace", "path": "/gender", "value": "female" }]).to_string());
        let tx = json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                { "request": { "method": "GET", "url": format!("Patient/{b_id}") } },
                { "request": { "method": "DELETE", "url": format!("Patient/{a_id}") } },
                { "resource": { "resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch },
                  "request": { "method": "PATCH", "url": format!("Patient/{b_id}") } }
            ]
        });
        let r = srv.post("", &tx).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let e = entries(&r.body);
        // The read runs after the writes.
        assert_eq!(e[0]["resource"]["gender"], "female");
        assert_eq!(e[1]["response"]["status"], "200 OK");
        assert_eq!(e[2]["resource"]["gender"], "female");
        srv.get(&format!("Patient/{a_id}")).await.outcome(410);
    }
);

e2e!(
    batch_entries_succeed_or_fail_independently,
    |srv| async move {
        let batch = json!({
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                { "resource": { "resourceType": "Patient", "gender": "female" },
                  "request": { "method": "POST", "url": "Patient" } },
                { "resource": { "resourceType": "Patient", "gender": "bogus" },
                  "request": { "method": "POST", "url": "Patient" } },
                { "request": { "method": "GET", "url": "Patient/does-not-exist" } },
                { "request": { "method": "FROB", "url": "Patient" } }
            ]
        });
        let r = srv.post("", &batch).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["type"], "batch-response");
        let e = entries(&r.body);
        assert_eq!(e[0]["response"]["status"], "201 Created");
        assert_eq!(e[1]["response"]["status"], "400");
        assert_eq!(
            e[1]["response"]["outcome"]["resourceType"],
            "OperationOutcome"
        );
        assert_eq!(e[2]["response"]["status"], "404");
        assert_eq!(e[3]["response"]["status"], "400");
        assert_eq!(entries(&srv.get("Patient/_history").await.body).len(), 1);
    }
);

e2e!(bundle_of_wrong_type_is_refused, |srv| async move {
    let r = srv
        .post(
            "",
            &json!({ "resourceType": "Bundle", "type": "collection" }),
        )
        .await;
    r.outcome(400);
    let r = srv.post("", &json!({ "resourceType": "Patient" })).await;
    r.outcome(400);
});
