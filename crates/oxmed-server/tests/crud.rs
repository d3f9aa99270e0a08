//! Create, read, vread, update, patch, delete and history over HTTP, on both backends.

mod common;

use reqwest::Method;
use serde_json::{Value, json};

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{ "family": "Chalmers", "given": ["Peter", "James"] }],
        "gender": "male",
        "birthDate": "1974-12-25"
    })
}

e2e!(create_assigns_id_version_and_headers, |srv| async move {
    let r = srv.post("Patient", &patient()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().expect("id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let vid = r.body["meta"]["versionId"].as_str().expect("versionId");
    assert!(
        r.body["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(r.header("etag"), Some(format!("W/\"{vid}\"").as_str()));
    assert_eq!(
        r.header("location"),
        Some(format!("{}/Patient/{id}/_history/{vid}", srv.fhir).as_str())
    );
    assert!(r.header("last-modified").is_some());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/fhir+json")
    );
    assert_eq!(r.body["name"][0]["family"], "Chalmers");

    let read = srv.get(&format!("Patient/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, r.body);
    assert_eq!(read.header("etag"), r.header("etag"));
});

e2e!(create_ignores_client_id_and_server_meta, |srv| async move {
    let mut p = patient();
    p["id"] = json!("client-chosen");
    p["meta"] = json!({ "versionId": "999", "lastUpdated": "2000-01-01T00:00:00Z", "tag": [{ "code": "keep" }] });
    let r = srv.post("Patient", &p).await;
    assert_eq!(r.status, 201);
    assert_ne!(r.body["id"], "client-chosen");
    assert_ne!(r.body["meta"]["versionId"], "999");
    assert_ne!(r.body["meta"]["lastUpdated"], "2000-01-01T00:00:00Z");
    assert_eq!(r.body["meta"]["tag"][0]["code"], "keep");
});

e2e!(
    update_makes_a_new_version_and_vread_reads_old_ones,
    |srv| async move {
        let created = srv.create(&patient()).await;
        let id = created["id"].as_str().unwrap();
        let v1 = created["meta"]["versionId"].as_str().unwrap();
        let mut changed = created.clone();
        changed["gender"] = json!("other");
        let r = srv.put(&format!("Patient/{id}"), &changed).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v2 = r.body["meta"]["versionId"].as_str().unwrap();
        assert_ne!(v1, v2);
        assert_eq!(r.body["gender"], "other");

        let old = srv.get(&format!("Patient/{id}/_history/{v1}")).await;
        assert_eq!(old.status, 200);
        assert_eq!(old.body["gender"], "male");
        assert_eq!(old.header("etag"), Some(format!("W/\"{v1}\"").as_str()));
        let new = srv.get(&format!("Patient/{id}/_history/{v2}")).await;
        assert_eq!(new.body["gender"], "other");
        let missing = srv.get(&format!("Patient/{id}/_history/nope")).await;
        missing.outcome(404);
    }
);

e2e!(unchanged_update_keeps_the_version, |srv| async move {
    let created = srv.create(&patient()).await;
    let id = created["id"].as_str().unwrap();
    let r = srv.put(&format!("Patient/{id}"), &created).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["versionId"], created["meta"]["versionId"]);
    let h = srv.get(&format!("Patient/{id}/_history")).await;
    assert_eq!(h.body["entry"].as_array().unwrap().len(), 1);
});

e2e!(update_as_create_with_client_id, |srv| async move {
    let mut p = patient();
    p["id"] = json!("my-own-id");
    let r = srv.put("Patient/my-own-id", &p).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["id"], "my-own-id");
    assert_eq!(srv.get("Patient/my-own-id").await.status, 200);
});

e2e!(if_match_guards_updates, |srv| async move {
    let created = srv.create(&patient()).await;
    let id = created["id"].as_str().unwrap();
    let v1 = created["meta"]["versionId"].as_str().unwrap().to_owned();
    let mut changed = created.clone();
    changed["gender"] = json!("female");
    let stale = srv
        .send(
            Method::PUT,
            &format!("Patient/{id}"),
            &changed,
            &[("if-match", "W/\"not-the-version\"")],
        )
        .await;
    let msg = stale.outcome(412);
    assert!(msg.contains("Version mismatch"), "{msg}");
    assert_eq!(
        srv.get(&format!("Patient/{id}")).await.body["gender"],
        "male"
    );

    let etag = format!("W/\"{v1}\"");
    let ok = srv
        .send(
            Method::PUT,
            &format!("Patient/{id}"),
            &changed,
            &[("if-match", etag.as_str())],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // The same precondition no longer holds.
    let again = srv
        .send(
            Method::PUT,
            &format!("Patient/{id}"),
            &changed,
            &[("if-match", etag.as_str())],
        )
        .await;
    again.outcome(412);
});

e2e!(patch_applies_json_patch, |srv| async move {
    let created = srv.create(&patient()).await;
    let id = created["id"].as_str().unwrap();
    let patch = json!([
        { "op": "replace", "path": "/gender", "value": "female" },
        { "op": "add", "path": "/active", "value": true }
    ]);
    let r = srv
        .send_raw(
            Method::PATCH,
            &format!("Patient/{id}"),
            patch.to_string().into_bytes(),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["gender"], "female");
    assert_eq!(r.body["active"], true);
    assert_ne!(r.body["meta"]["versionId"], created["meta"]["versionId"]);

    // A patch that makes the resource invalid is refused and changes nothing.
    let bad = json!([{ "op": "replace", "path": "/gender", "value": "bogus" }]);
    let r = srv
        .send_raw(
            Method::PATCH,
            &format!("Patient/{id}"),
            bad.to_string().into_bytes(),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    r.outcome(400);
    assert_eq!(
        srv.get(&format!("Patient/{id}")).await.body["gender"],
        "female"
    );

    // A patch whose test fails.
    let failing = json!([{ "op": "test", "path": "/gender", "value": "male" }]);
    let r = srv
        .send_raw(
            Method::PATCH,
            &format!("Patient/{id}"),
            failing.to_string().into_bytes(),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    r.outcome(400);
});

e2e!(
    delete_then_read_is_gone_and_history_shows_it,
    |srv| async move {
        let created = srv.create(&patient()).await;
        let id = created["id"].as_str().unwrap();
        let d = srv.delete(&format!("Patient/{id}")).await;
        assert_eq!(d.status, 200, "{}", d.text);
        srv.get(&format!("Patient/{id}")).await.outcome(410);
        // Deleting again is harmless.
        assert_eq!(srv.delete(&format!("Patient/{id}")).await.status, 200);
        srv.delete("Patient/never-existed").await.outcome(404);

        let h = srv.get(&format!("Patient/{id}/_history")).await;
        assert_eq!(h.status, 200);
        assert_eq!(h.body["type"], "history");
        let entries = h.body["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["request"]["method"], "DELETE");
        assert!(entries[0].get("resource").is_none());
        assert_eq!(entries[1]["resource"]["id"], id);

        // Updating a deleted resource brings it back.
        let r = srv.put(&format!("Patient/{id}"), &created).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(srv.get(&format!("Patient/{id}")).await.status, 200);
    }
);

e2e!(
    history_pages_with_count_since_and_cursor,
    |srv| async move {
        let created = srv.create(&patient()).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let mut current = created.clone();
        for i in 0..4 {
            current["birthDate"] = json!(format!("197{i}-01-01"));
            let r = srv.put(&format!("Patient/{id}"), &current).await;
            assert_eq!(r.status, 200);
            current = r.body;
        }
        srv.create(
            &json!({ "resourceType": "Observation", "status": "final", "code": { "text": "x" } }),
        )
        .await;

        // Instance history: 5 versions, newest first, in pages of 2.
        let mut seen = Vec::new();
        let mut url = format!("Patient/{id}/_history?_count=2");
        loop {
            let page = srv.get(&url).await;
            assert_eq!(page.status, 200, "{}", page.text);
            for e in page.body["entry"].as_array().unwrap() {
                seen.push(
                    e["resource"]["meta"]["versionId"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            let next = page.body["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .map(|l| l["url"].as_str().unwrap().to_owned());
            match next {
                Some(n) => {
                    url = n
                        .strip_prefix(&format!("{}/", srv.fhir))
                        .unwrap()
                        .to_owned()
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(unique.len(), 5);
        assert_eq!(seen[0], current["meta"]["versionId"].as_str().unwrap());

        // Type and system history.
        let t = srv.get("Patient/_history").await;
        assert_eq!(t.body["entry"].as_array().unwrap().len(), 5);
        let s = srv.get("_history").await;
        // Beside the server's own first-start records of the super-admin project.
        let ours = s.body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                matches!(
                    e["resource"]["resourceType"].as_str(),
                    Some("Patient" | "Observation")
                )
            })
            .count();
        assert_eq!(ours, 6);

        // _since excludes older versions.
        let since = current["meta"]["lastUpdated"].as_str().unwrap();
        let r = srv
            .get(&format!(
                "Patient/{id}/_history?_since={}",
                since.replace('+', "%2B")
            ))
            .await;
        assert_eq!(r.body["entry"].as_array().unwrap().len(), 1, "{}", r.text);
        srv.get("_history?_since=yesterday").await.outcome(400);
        srv.get("_history?_count=abc").await.outcome(400);
    }
);

e2e!(summary_elements_and_pretty, |srv| async move {
    let mut p = patient();
    p["text"] = json!({ "status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter</div>" });
    p["contact"] = json!([{ "name": { "family": "Doe" } }]);
    let created = srv.create(&p).await;
    let id = created["id"].as_str().unwrap();

    let e = srv.get(&format!("Patient/{id}?_elements=gender")).await;
    assert_eq!(e.body["gender"], "male");
    assert!(e.body.get("name").is_none());
    assert_eq!(e.body["id"], id);
    assert!(
        e.body["meta"]["tag"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["code"] == "SUBSETTED")
    );

    let d = srv.get(&format!("Patient/{id}?_summary=data")).await;
    assert!(d.body.get("text").is_none());
    assert_eq!(d.body["gender"], "male");

    let t = srv.get(&format!("Patient/{id}?_summary=text")).await;
    assert!(t.body.get("text").is_some());
    assert!(t.body.get("gender").is_none());

    let s = srv.get(&format!("Patient/{id}?_summary=true")).await;
    assert_eq!(s.body["gender"], "male", "gender is a summary element");
    assert!(
        s.body.get("contact").is_none(),
        "contact is not: {}",
        s.text
    );

    let pretty = srv.get(&format!("Patient/{id}?_pretty=true")).await;
    assert!(pretty.text.contains("\n  \""), "{}", pretty.text);
    srv.get(&format!("Patient/{id}?_summary=maybe"))
        .await
        .outcome(400);
});

e2e!(prefer_return_variants, |srv| async move {
    let minimal = srv
        .send(
            Method::POST,
            "Patient",
            &patient(),
            &[("prefer", "return=minimal")],
        )
        .await;
    assert_eq!(minimal.status, 201);
    assert!(minimal.text.is_empty(), "{}", minimal.text);
    assert!(minimal.header("location").is_some());

    let outcome = srv
        .send(
            Method::POST,
            "Patient",
            &patient(),
            &[("prefer", "return=OperationOutcome")],
        )
        .await;
    assert_eq!(outcome.status, 201);
    assert_eq!(outcome.body["resourceType"], "OperationOutcome");

    let rep = srv
        .send(
            Method::POST,
            "Patient",
            &patient(),
            &[("prefer", "return=representation")],
        )
        .await;
    assert_eq!(rep.body["resourceType"], "Patient");
});

e2e!(application_json_is_accepted, |srv| async move {
    let r = srv
        .send_raw(
            Method::POST,
            "Patient",
            patient().to_string().into_bytes(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
});

e2e!(healthcheck_and_metadata, |srv| async move {
    let h = srv
        .client
        .get(format!("{}healthcheck", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    let body: Value = h.json().await.unwrap();
    assert_eq!(body["ok"], true);

    let m = srv.get("metadata").await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body["resourceType"], "CapabilityStatement");
    assert_eq!(m.body["fhirVersion"], "4.0.1");
    let resources = m.body["rest"][0]["resource"].as_array().unwrap();
    let patient = resources
        .iter()
        .find(|r| r["type"] == "Patient")
        .expect("Patient");
    let params = patient["searchParam"].as_array().unwrap();
    assert!(params.iter().any(|p| p["name"] == "gender"));
    // Truthful: every parameter it lists for Patient can be searched.
    for p in params {
        let name = p["name"].as_str().unwrap();
        let value = match p["type"].as_str().unwrap() {
            "date" => "2020",
            "number" | "quantity" => "1",
            "composite" => continue,
            _ => "x",
        };
        let r = srv.get(&format!("Patient?{name}={value}")).await;
        assert_eq!(
            r.status, 200,
            "listed parameter {name} cannot be searched: {}",
            r.text
        );
    }
    assert!(
        resources.iter().any(|r| r["type"] == "Project"),
        "Medplum types are listed"
    );
    assert!(resources.len() > 140);
});
