//! The side doors (issue 5): a caller whose policy hides resources and fields tries every other
//! way to learn them — includes, reverse includes, `:iterate`, chains and `_has` as oracles,
//! `_sort` and filters on hidden fields, counts, history at every level, vread of versions that
//! once matched, batch and transaction entries, conditional writes, PATCH, references into
//! other projects, deleted resources — and finds nothing. Each probe has a control that shows
//! the same request does answer for what the caller may see, so a probe cannot pass by being
//! broken. Both backends.

mod common;

use common::TestServer;
use common::tenant::{Member, Tenant, id, ids_of, observation, policy};
use oxmed_repo::{RequestContext, WriteRequest};
use serde_json::{Value, json};

/// Alice is the caller's patient; Bob is not. The caller sees Alice, her final Observations
/// (without their values) and every Encounter (without its subject), nothing else.
struct World<'a> {
    t: Tenant<'a>,
    m: Member<'a>,
    alice: Value,
    bob: Value,
    alice_final: Value,
    alice_draft: Value,
    bob_final: Value,
}

async fn world(srv: &TestServer) -> World<'_> {
    let t = Tenant::new(srv).await;
    let alice = t
        .put(
            json!({"resourceType": "Patient", "name": [{"family": "Alice"}],
            "birthDate": "1970-01-02", "gender": "female"}),
        )
        .await;
    let bob = t
        .put(
            json!({"resourceType": "Patient", "name": [{"family": "Bob"}],
            "birthDate": "1980-03-04", "gender": "male"}),
        )
        .await;
    let alice_final = t
        .put(observation(&id(&alice), "final", "visible-code"))
        .await;
    let alice_draft = t
        .put(observation(&id(&alice), "preliminary", "secret-code"))
        .await;
    let bob_final = t.put(observation(&id(&bob), "final", "bob-code")).await;
    for p in [&alice, &bob] {
        t.put(json!({"resourceType": "Encounter", "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": format!("Patient/{}", id(p))}}))
            .await;
    }
    let m = t
        .member(
            Some(policy(json!([
                {"resourceType": "Patient", "criteria": "Patient?_id=%patient.id",
                 "hiddenFields": ["birthDate"]},
                {"resourceType": "Observation",
                 "criteria": "Observation?subject=%patient&status=final",
                 "hiddenFields": ["valueQuantity"]},
                {"resourceType": "Encounter", "readonly": true, "hiddenFields": ["subject"]},
            ]))),
            json!([{"name": "patient",
                "valueReference": {"reference": format!("Patient/{}", id(&alice))}}]),
            false,
        )
        .await;
    World {
        t,
        m,
        alice,
        bob,
        alice_final,
        alice_draft,
        bob_final,
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Writes as the server, in the tenant's project.
async fn system_write(w: &World<'_>, request: WriteRequest) -> Value {
    let written =
        w.t.srv
            .auth
            .repo()
            .write(&RequestContext::system_in(&w.t.project), request)
            .await
            .unwrap();
    // A deletion has no content.
    written
        .resource
        .and_then(|r| serde_json::from_str(&r.content).ok())
        .unwrap_or(Value::Null)
}

/// Gives an Observation a new status, as the server.
async fn set_status(w: &World<'_>, observation: &Value, status: &str) {
    let mut changed = observation.clone();
    changed["status"] = json!(status);
    system_write(
        w,
        WriteRequest::Update {
            resource_type: "Observation".into(),
            id: id(observation),
            resource: changed,
            if_match: None,
        },
    )
    .await;
}

e2e!(includes_bring_nothing_hidden, |srv| async move {
    let w = world(&srv).await;
    let m = &w.m;
    // Control: what the caller sees comes with its include.
    let r = m.get("Observation?_include=Observation:subject").await;
    assert_eq!(
        ids_of(&r.body),
        sorted(vec![id(&w.alice_final), id(&w.alice)])
    );
    for probe in [
        "Observation?_include=Observation:*",
        "Observation?_include=Observation:subject&_include:iterate=Patient:link",
        "Observation?_include:iterate=Observation:subject",
    ] {
        let r = m.get(probe).await;
        assert_eq!(r.status, 200, "{probe}: {}", r.text);
        assert!(!r.text.contains(&id(&w.bob)), "{probe}: {}", r.text);
        assert!(!r.text.contains("1970-01-02"), "{probe}: {}", r.text);
    }
    // Reverse includes: Alice's draft and Bob's Observations stay out.
    let r = m
        .get(&format!(
            "Patient?_id={},{}&_revinclude=Observation:subject",
            id(&w.alice),
            id(&w.bob)
        ))
        .await;
    assert_eq!(
        ids_of(&r.body),
        sorted(vec![id(&w.alice), id(&w.alice_final)])
    );
    // An include through a hidden reference would tell where it points.
    m.get("Encounter?_include=Encounter:subject")
        .await
        .outcome(403);
    m.get("Patient?_revinclude=Encounter:subject")
        .await
        .outcome(403);
    m.get("Encounter?_include=Encounter:*").await.outcome(403);
    assert_eq!(m.get("Encounter").await.status, 200);
});

e2e!(chains_and_has_are_no_oracle, |srv| async move {
    let w = world(&srv).await;
    let m = &w.m;
    // Control: the same chain answers for what the caller may see.
    assert_eq!(
        m.ids("Observation?subject:Patient.name=Alice").await,
        vec![id(&w.alice_final)]
    );
    assert_eq!(
        m.ids("Patient?_has:Observation:subject:code=visible-code")
            .await,
        vec![id(&w.alice)]
    );
    // A hidden Observation (Alice's draft) does not make her match.
    assert_eq!(
        m.ids("Patient?_has:Observation:subject:code=secret-code")
            .await,
        Vec::<String>::new()
    );
    // Chains through Encounter.subject are through a hidden field.
    m.get("Encounter?subject:Patient.name=Bob")
        .await
        .outcome(403);
    m.get("Encounter?patient.name=Alice").await.outcome(403);
    // A chain whose target is a hidden field of the target type.
    m.get("Observation?subject:Patient.birthdate=1970-01-02")
        .await
        .outcome(403);
    m.get("Patient?_has:Observation:subject:value-quantity=7")
        .await
        .outcome(403);
});

e2e!(
    hidden_fields_cannot_be_searched_or_sorted,
    |srv| async move {
        let w = world(&srv).await;
        let m = &w.m;
        for probe in [
            "Patient?birthdate=1970-01-02",
            "Patient?birthdate:missing=false",
            "Patient?_sort=birthdate",
            "Patient?_sort=-birthdate",
            "Observation?value-quantity=7",
            "Observation?_sort=value-quantity",
            "Observation?code-value-quantity=http://loinc.org|visible-code$7",
            "Encounter?subject=Patient/x",
            "Encounter?_sort=patient",
        ] {
            m.get(probe).await.outcome(403);
        }
        // Controls: fields that are not hidden.
        assert_eq!(m.ids("Patient?gender=female").await, vec![id(&w.alice)]);
        assert_eq!(m.ids("Patient?_sort=name").await, vec![id(&w.alice)]);
        assert_eq!(
            m.ids("Observation?code=visible-code&_sort=-_lastUpdated")
                .await,
            vec![id(&w.alice_final)]
        );
    }
);

e2e!(counts_count_only_the_visible, |srv| async move {
    let w = world(&srv).await;
    let m = &w.m;
    for (query, want) in [
        ("Observation?_summary=count", 1),
        ("Observation?_total=accurate&_count=1", 1),
        ("Patient?_summary=count", 1),
        ("Encounter?_summary=count", 2),
    ] {
        let r = m.get(query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(r.body["total"], want, "{query}: {}", r.text);
    }
});

e2e!(history_and_vread_show_only_what_matches, |srv| async move {
    let w = world(&srv).await;
    let m = &w.m;
    // Alice's draft becomes final: visible now, but its draft version stays out of history.
    set_status(&w, &w.alice_draft, "final").await;
    let h = m
        .get(&format!("Observation/{}/_history", id(&w.alice_draft)))
        .await;
    assert_eq!(h.status, 200, "{}", h.text);
    assert_eq!(
        h.body["entry"].as_array().map(Vec::len),
        Some(1),
        "{}",
        h.text
    );
    assert!(
        !h.text.contains("preliminary") && !h.text.contains("mmol"),
        "{}",
        h.text
    );
    let draft_version = w.alice_draft["meta"]["versionId"].as_str().unwrap();
    m.get(&format!(
        "Observation/{}/_history/{draft_version}",
        id(&w.alice_draft)
    ))
    .await
    .outcome(404);
    // Alice's final Observation is amended out of the view: its old, once visible version is
    // no longer readable either.
    set_status(&w, &w.alice_final, "entered-in-error").await;
    let v1 = w.alice_final["meta"]["versionId"].as_str().unwrap();
    m.get(&format!("Observation/{}/_history/{v1}", id(&w.alice_final)))
        .await
        .outcome(404);
    m.get(&format!("Observation/{}/_history", id(&w.alice_final)))
        .await
        .outcome(404);
    // Bob's: nothing at any level.
    m.get(&format!("Patient/{}/_history", id(&w.bob)))
        .await
        .outcome(404);
    m.get(&format!("Observation/{}/_history", id(&w.bob_final)))
        .await
        .outcome(404);
    for level in ["Observation/_history", "Patient/_history", "_history"] {
        let r = m.get(level).await;
        assert_eq!(r.status, 200, "{level}: {}", r.text);
        for hidden in [id(&w.bob), id(&w.bob_final)] {
            assert!(!r.text.contains(&hidden), "{level}: {}", r.text);
        }
        assert!(!r.text.contains("1970-01-02"), "{level}: {}", r.text);
        assert!(!r.text.contains("preliminary"), "{level}: {}", r.text);
    }
    // Control: the now final draft shows at type level.
    let r = m.get("Observation/_history").await;
    assert!(r.text.contains(&id(&w.alice_draft)), "{}", r.text);
});

e2e!(bundles_are_no_side_door, |srv| async move {
    let w = world(&srv).await;
    let m = &w.m;
    for kind in ["batch", "transaction"] {
        let bundle = json!({"resourceType": "Bundle", "type": kind, "entry": [
            {"request": {"method": "GET", "url": format!("Patient/{}", id(&w.alice))}},
            {"request": {"method": "GET", "url": format!("Patient/{}", id(&w.bob))}},
            {"request": {"method": "GET", "url": "Observation?status=final"}},
            {"request": {"method": "GET", "url": format!("Observation/{}/_history/{}",
                id(&w.bob_final), w.bob_final["meta"]["versionId"].as_str().unwrap())}},
        ]});
        let r = m.post("", &bundle).await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text);
        let e = r.body["entry"].as_array().unwrap();
        assert!(
            e[0]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("200")
        );
        assert!(
            e[0]["resource"].get("birthDate").is_none(),
            "{kind}: {}",
            r.text
        );
        assert!(
            e[1]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("404"),
            "{kind}: {}",
            r.text
        );
        assert_eq!(ids_of(&e[2]["resource"]), vec![id(&w.alice_final)]);
        assert!(
            !r.text.contains("mmol") && !r.text.contains("Bob"),
            "{kind}: {}",
            r.text
        );
        assert!(
            e[3]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("404"),
            "{kind}: {}",
            r.text
        );
    }
});

e2e!(
    conditional_writes_do_not_touch_hidden_resources,
    |srv| async move {
        let w = world(&srv).await;
        let m = &w.m;
        let bob_version = w.bob["meta"]["versionId"].as_str().unwrap().to_owned();
        // Conditional update on a condition only Bob matches: not Bob's resource that changes.
        let r = m
        .call(
            reqwest::Method::PUT,
            "Patient?name=Bob",
            Some(&json!({"resourceType": "Patient", "name": [{"family": "Bob"}], "gender": "other"})),
        )
        .await;
        assert!(r.status == 201 || r.status == 403, "{}", r.text);
        // Conditional delete: nothing of Bob's goes.
        let r = m
            .call(reqwest::Method::DELETE, "Observation?code=bob-code", None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let repo = srv.auth.repo();
        let bob = repo
            .system_read("Patient", &id(&w.bob))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bob.version_id, bob_version);
        let obs = repo
            .system_read("Observation", &id(&w.bob_final))
            .await
            .unwrap()
            .unwrap();
        assert!(!obs.deleted);
        // If-None-Exist matching only a hidden resource: no answer with it.
        let r = m
            .srv
            .plain
            .post(srv.url("Observation"))
            .bearer_auth(&m.token)
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", "code=bob-code")
            .body(observation(&id(&w.alice), "final", "bob-code").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        assert_ne!(id(&body), id(&w.bob_final));
        // Control: a condition on a visible resource finds it.
        let r = m
            .call(
                reqwest::Method::DELETE,
                "Observation?code=visible-code",
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let gone = repo
            .system_read("Observation", &id(&w.alice_final))
            .await
            .unwrap();
        assert!(
            gone.is_none_or(|r| r.deleted),
            "the visible match was deleted"
        );
    }
);

e2e!(patch_and_writes_keep_what_is_hidden, |srv| async move {
    let w = world(&srv).await;
    let m = &w.m;
    let path = format!("Patient/{}", id(&w.alice));
    // A test of the hidden birthDate fails alike for the right and a wrong value.
    for value in ["1970-01-02", "2000-01-01"] {
        let r = m
            .patch(
                &path,
                &json!([{"op": "test", "path": "/birthDate", "value": value}]),
            )
            .await;
        assert_eq!(r.status, 400, "{value}: {}", r.text);
    }
    // Replacing it cannot overwrite the stored value either.
    let r = m
        .patch(
            &path,
            &json!([{"op": "add", "path": "/birthDate", "value": "2001-01-01"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stored = srv
        .auth
        .repo()
        .system_read("Patient", &id(&w.alice))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.content.contains("1970-01-02"), "{}", stored.content);
    // Bob cannot be patched into view or out of it.
    let r = m
        .patch(
            &format!("Patient/{}", id(&w.bob)),
            &json!([{"op": "replace", "path": "/gender", "value": "other"}]),
        )
        .await;
    r.outcome(404);
});

e2e!(
    other_projects_and_deleted_resources_stay_out,
    |srv| async move {
        let w = world(&srv).await;
        let m = &w.m;
        // An Observation of the caller's patient referring to a Patient of another project: the
        // include does not cross the project boundary.
        let other = Tenant::new(&srv).await;
        let foreign = other
            .put(json!({"resourceType": "Patient", "name": [{"family": "Foreign"}]}))
            .await;
        let mut crossing = observation(&id(&w.alice), "final", "cross");
        crossing["performer"] = json!([{"reference": format!("Patient/{}", id(&foreign))}]);
        w.t.put(crossing).await;
        let r = m
            .get("Observation?code=cross&_include=Observation:performer")
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body["entry"].as_array().map(Vec::len),
            Some(1),
            "{}",
            r.text
        );
        m.get(&format!("Patient/{}", id(&foreign)))
            .await
            .outcome(404);
        // A deleted resource of a type seen through criteria: 404 like one never written, whether
        // it was in the view or not (a deletion has no content to judge); of a type seen whole: 410.
        let encounter =
            w.t.put(
                json!({"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}}),
            )
            .await;
        for (resource_type, resource, status) in [
            ("Observation", &w.bob_final, 404),
            ("Observation", &w.alice_final, 404),
            ("Encounter", &encounter, 410),
        ] {
            let path = format!("{resource_type}/{}", id(resource));
            if status == 410 {
                assert_eq!(m.get(&path).await.status, 200);
            }
            system_write(
                &w,
                WriteRequest::Delete {
                    resource_type: resource_type.into(),
                    id: id(resource),
                },
            )
            .await;
            m.get(&path).await.outcome(status);
        }
    }
);
