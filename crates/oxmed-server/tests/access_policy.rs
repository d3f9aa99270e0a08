//! AccessPolicy enforcement over HTTP (spec §1, §8), on both backends, with real tokens of
//! clients whose memberships carry policies: type and interaction checks (403), criteria on read
//! (404) and search (silently filtered, in SQL), history and vread, writes judged before and
//! after, write constraints, hidden and read-only fields, project isolation, the project-admin
//! rules, and a policy change taking effect on the next request. Every allow has its denial.

mod common;

use common::tenant::{Member, Tenant, id, ids_of, observation, policy, token_of, token_response};
use common::{Resp, TestServer};
use serde_json::{Value, json};

e2e!(types_and_interactions, |srv| async move {
    let t = Tenant::new(&srv).await;
    let patient = t
        .put(json!({"resourceType": "Patient", "active": true}))
        .await;
    let obs = t.put(observation(&id(&patient), "final", "1")).await;
    let enc = t
        .put(json!({"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}}))
        .await;
    let m = t
        .restricted(json!([
            {"resourceType": "Patient"},
            {"resourceType": "Observation", "readonly": true},
        ]))
        .await;
    // Patient: every interaction.
    assert_eq!(
        m.get(&format!("Patient/{}", id(&patient))).await.status,
        200
    );
    let created = m
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "active": false}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        m.delete(&format!("Patient/{}", id(&created.body)))
            .await
            .status,
        200
    );
    // Observation: read, search, history, vread; no writes.
    let path = format!("Observation/{}", id(&obs));
    assert_eq!(m.get(&path).await.status, 200);
    assert_eq!(m.ids("Observation").await, vec![id(&obs)]);
    assert_eq!(m.get(&format!("{path}/_history")).await.status, 200);
    m.post("Observation", &observation(&id(&patient), "final", "2"))
        .await
        .outcome(403);
    let mut changed = obs.clone();
    changed["status"] = json!("amended");
    m.put(&path, &changed).await.outcome(403);
    m.patch(
        &path,
        &json!([{"op": "replace", "path": "/status", "value": "amended"}]),
    )
    .await
    .outcome(403);
    m.delete(&path).await.outcome(403);
    // Encounter: nothing, not even a hint.
    m.get(&format!("Encounter/{}", id(&enc))).await.outcome(403);
    m.get("Encounter").await.outcome(403);
    m.get("Encounter/_history").await.outcome(403);
    // Admin and protected types: never for a non-admin, even under `*`.
    let star = t.restricted(json!([{"resourceType": "*"}])).await;
    assert_eq!(
        star.get(&format!("Encounter/{}", id(&enc))).await.status,
        200
    );
    for denied in [
        "Project",
        "ProjectMembership",
        "User",
        "Login",
        "JsonWebKey",
    ] {
        star.get(denied).await.outcome(403);
        m.get(denied).await.outcome(403);
    }
    star.get(&format!("Project/{}", t.project))
        .await
        .outcome(403);
    // The super admin still sees it all.
    assert_eq!(srv.get("Login").await.status, 200);
});

e2e!(
    criteria_filter_reads_searches_and_history,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let alice = t
            .put(json!({"resourceType": "Patient", "name": [{"family": "Alice"}]}))
            .await;
        let bob = t
            .put(json!({"resourceType": "Patient", "name": [{"family": "Bob"}]}))
            .await;
        let mine = t.put(observation(&id(&alice), "final", "1")).await;
        let theirs = t.put(observation(&id(&bob), "final", "1")).await;
        let m = t
        .member(
            Some(policy(json!([
                {"resourceType": "Observation", "criteria": "Observation?subject=%patient"},
                {"resourceType": "Patient", "criteria": "Patient?_id=%patient.id"},
            ]))),
            json!([{"name": "patient", "valueReference": {"reference": format!("Patient/{}", id(&alice))}}]),
            false,
        )
        .await;
        // Read: the other patient's data is not there (404, not 403).
        assert_eq!(
            m.get(&format!("Observation/{}", id(&mine))).await.status,
            200
        );
        let hidden = m.get(&format!("Observation/{}", id(&theirs))).await;
        assert_eq!(
            hidden.outcome(404),
            format!("Observation/{} not found", id(&theirs))
        );
        m.get(&format!("Patient/{}", id(&bob))).await.outcome(404);
        // Search: silently filtered, whatever the caller asks for.
        assert_eq!(m.ids("Observation").await, vec![id(&mine)]);
        assert_eq!(
            m.ids(&format!("Observation?_id={}", id(&theirs))).await,
            Vec::<String>::new()
        );
        assert_eq!(
            m.ids(&format!("Observation?subject=Patient/{}", id(&bob)))
                .await,
            Vec::<String>::new()
        );
        let count = m.get("Observation?_summary=count").await;
        assert_eq!(count.body["total"], 1, "{}", count.text);
        let total = m.get("Observation?_total=accurate").await;
        assert_eq!(total.body["total"], 1, "{}", total.text);
        assert_eq!(m.ids("Patient").await, vec![id(&alice)]);
        // Includes and reverse includes bring nothing from outside the policy.
        let inc = m.get("Observation?_include=Observation:subject").await;
        assert_eq!(ids_of(&inc.body), {
            let mut v = vec![id(&mine), id(&alice)];
            v.sort();
            v
        });
        let rev = m
            .get(&format!(
                "Patient?_id={}&_revinclude=Observation:subject",
                id(&bob)
            ))
            .await;
        assert_eq!(ids_of(&rev.body), Vec::<String>::new());
        // The super admin in the tenant's own project would see both: the filter is the policy's.
        // History and vread: of the visible resource only.
        assert_eq!(
            m.get(&format!("Observation/{}/_history", id(&mine)))
                .await
                .status,
            200
        );
        m.get(&format!("Observation/{}/_history", id(&theirs)))
            .await
            .outcome(404);
        let version = theirs["meta"]["versionId"].as_str().unwrap();
        m.get(&format!("Observation/{}/_history/{version}", id(&theirs)))
            .await
            .outcome(404);
        let th = m.get("Observation/_history").await;
        assert_eq!(th.status, 200, "{}", th.text);
        assert_eq!(ids_of(&th.body), vec![id(&mine)]);
        let sys = m.get("_history").await;
        assert_eq!(sys.status, 200, "{}", sys.text);
        let mut want = vec![id(&alice), id(&mine)];
        want.sort();
        assert_eq!(ids_of(&sys.body), want);
        // Writes to what the caller cannot see: 404, and nothing changes.
        let mut edit = theirs.clone();
        edit["status"] = json!("amended");
        m.put(&format!("Observation/{}", id(&theirs)), &edit)
            .await
            .outcome(404);
        m.delete(&format!("Observation/{}", id(&theirs)))
            .await
            .outcome(404);
        m.patch(
            &format!("Observation/{}", id(&theirs)),
            &json!([{"op": "replace", "path": "/status", "value": "amended"}]),
        )
        .await
        .outcome(404);
        let stored = srv
            .auth
            .repo()
            .system_read("Observation", &id(&theirs))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.version_id, version, "a refused write wrote nothing");
        // A deleted resource outside the view is not told apart from one never written.
        oxmed_repo::Repository::write(
            srv.auth.repo(),
            &oxmed_repo::RequestContext::system_in(&t.project),
            oxmed_repo::WriteRequest::Delete {
                resource_type: "Observation".into(),
                id: id(&theirs),
            },
        )
        .await
        .unwrap();
        m.get(&format!("Observation/{}", id(&theirs)))
            .await
            .outcome(404);
    }
);

e2e!(writes_are_judged_before_and_after, |srv| async move {
    let t = Tenant::new(&srv).await;
    let p = t.put(json!({"resourceType": "Patient"})).await;
    let draft = t.put(observation(&id(&p), "preliminary", "1")).await;
    let done = t.put(observation(&id(&p), "final", "1")).await;
    let m = t
        .restricted(json!([
                {"resourceType": "Observation", "criteria": "Observation?status=preliminary"},
                {"resourceType": "Observation", "criteria": "Observation?status=final", "readonly": true},
            ]))
        .await;
    // Create: the new content must satisfy an entry that allows create.
    let ok = m
        .post("Observation", &observation(&id(&p), "preliminary", "2"))
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    m.post("Observation", &observation(&id(&p), "final", "2"))
        .await
        .outcome(403);
    // Update: before (readable, updatable) and after (still within an updatable entry).
    let path = format!("Observation/{}", id(&draft));
    let mut edit = draft.clone();
    edit["valueQuantity"]["value"] = json!(8);
    assert_eq!(m.put(&path, &edit).await.status, 200);
    edit["status"] = json!("final");
    m.put(&path, &edit).await.outcome(403);
    m.patch(
        &path,
        &json!([{"op": "replace", "path": "/status", "value": "final"}]),
    )
    .await
    .outcome(403);
    let mut edit = done.clone();
    edit["status"] = json!("preliminary");
    m.put(&format!("Observation/{}", id(&done)), &edit)
        .await
        .outcome(403);
    m.delete(&format!("Observation/{}", id(&done)))
        .await
        .outcome(403);
    assert_eq!(
        m.get(&format!("Observation/{}", id(&done))).await.status,
        200
    );
    assert_eq!(m.delete(&path).await.status, 200);
    // Update as create follows the create rules.
    let new_id = oxmed_repo::meta::new_id();
    let mut fresh = observation(&id(&p), "final", "3");
    fresh["id"] = json!(new_id);
    m.put(&format!("Observation/{new_id}"), &fresh)
        .await
        .outcome(403);
    fresh["status"] = json!("preliminary");
    assert_eq!(
        m.put(&format!("Observation/{new_id}"), &fresh).await.status,
        201
    );
});

e2e!(write_constraints_see_before_and_after, |srv| async move {
    let t = Tenant::new(&srv).await;
    let p = t.put(json!({"resourceType": "Patient"})).await;
    let m = t
        .restricted(json!([
            {"resourceType": "Observation", "writeConstraint": [
                {"language": "text/fhirpath",
                 "expression": "%before.exists() implies %before.status != 'final'"},
                {"language": "text/fhirpath", "expression": "%after.status != 'cancelled'"},
            ]},
        ]))
        .await;
    let created = m
        .post("Observation", &observation(&id(&p), "preliminary", "1"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    m.post("Observation", &observation(&id(&p), "cancelled", "1"))
        .await
        .outcome(403);
    let path = format!("Observation/{}", id(&created.body));
    let mut edit = created.body.clone();
    edit["status"] = json!("final");
    assert_eq!(m.put(&path, &edit).await.status, 200);
    // Once final, no more changes.
    edit["status"] = json!("amended");
    m.put(&path, &edit).await.outcome(403);
    let now = m.get(&path).await;
    assert_eq!(now.body["status"], "final");
});

e2e!(hidden_and_read_only_fields, |srv| async move {
    let t = Tenant::new(&srv).await;
    let patient = t
        .put(
            json!({"resourceType": "Patient", "gender": "female", "birthDate": "1970-01-02",
            "name": [{"family": "Secret", "given": ["Ann"]}]}),
        )
        .await;
    let m = t
        .restricted(json!([
            {"resourceType": "Patient", "hiddenFields": ["birthDate", "name.family"],
             "readonlyFields": ["gender"]},
        ]))
        .await;
    let path = format!("Patient/{}", id(&patient));
    let seen = m.get(&path).await;
    assert_eq!(seen.status, 200);
    assert!(seen.body.get("birthDate").is_none(), "{}", seen.text);
    assert_eq!(seen.body["name"], json!([{"given": ["Ann"]}]));
    assert_eq!(seen.body["gender"], "female");
    let found = m.get("Patient").await;
    assert!(
        !found.text.contains("1970-01-02") && !found.text.contains("Secret"),
        "{}",
        found.text
    );
    let hist = m.get(&format!("{path}/_history")).await;
    assert!(!hist.text.contains("1970-01-02"), "{}", hist.text);
    // An update cannot change a read-only field, and does not lose the hidden ones.
    let mut edit = seen.body.clone();
    edit["gender"] = json!("male");
    edit["active"] = json!(true);
    let r = m.put(&path, &edit).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["gender"], "female");
    assert!(
        r.body.get("birthDate").is_none(),
        "the response hides too: {}",
        r.text
    );
    let stored = srv
        .auth
        .repo()
        .system_read("Patient", &id(&patient))
        .await
        .unwrap()
        .unwrap();
    let stored: Value = serde_json::from_str(&stored.content).unwrap();
    assert_eq!(stored["birthDate"], "1970-01-02");
    assert_eq!(stored["name"][0]["family"], "Secret");
    assert_eq!(stored["gender"], "female");
    assert_eq!(stored["active"], true);
    // A patch cannot test a hidden value (it is not there), nor change a read-only one.
    let probe = m
        .patch(
            &path,
            &json!([{"op": "test", "path": "/birthDate", "value": "1970-01-02"}]),
        )
        .await;
    let probe_wrong = m
        .patch(
            &path,
            &json!([{"op": "test", "path": "/birthDate", "value": "1999-09-09"}]),
        )
        .await;
    assert_eq!(probe.status, 400);
    assert_eq!(probe_wrong.status, 400);
    let r = m
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/gender", "value": "other"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["gender"], "female");
    // A create cannot set them.
    let c = m
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "gender": "male", "birthDate": "2000-01-01"}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let stored = srv
        .auth
        .repo()
        .system_read("Patient", &id(&c.body))
        .await
        .unwrap()
        .unwrap();
    let stored: Value = serde_json::from_str(&stored.content).unwrap();
    assert!(
        stored.get("gender").is_none() && stored.get("birthDate").is_none(),
        "{stored}"
    );
    // Without the policy, the fields are there.
    let full = t.member(None, json!([]), false).await;
    let all = full.get(&path).await;
    assert_eq!(all.body["birthDate"], "1970-01-02");
});

e2e!(project_isolation, |srv| async move {
    let a = Tenant::new(&srv).await;
    let b = Tenant::new(&srv).await;
    let theirs = b
        .put(json!({"resourceType": "Patient", "active": true}))
        .await;
    let mine = a
        .put(json!({"resourceType": "Patient", "active": true}))
        .await;
    let m = a.member(None, json!([]), false).await;
    assert_eq!(m.get(&format!("Patient/{}", id(&mine))).await.status, 200);
    m.get(&format!("Patient/{}", id(&theirs)))
        .await
        .outcome(404);
    assert_eq!(m.ids("Patient").await, vec![id(&mine)]);
    m.get(&format!("Patient/{}/_history", id(&theirs)))
        .await
        .outcome(404);
    let mut edit = theirs.clone();
    edit["active"] = json!(false);
    m.put(&format!("Patient/{}", id(&theirs)), &edit)
        .await
        .outcome(404);
    m.delete(&format!("Patient/{}", id(&theirs)))
        .await
        .outcome(404);
    // Another project's admin types are out of reach, even for a project admin.
    let admin = a.member(None, json!([]), true).await;
    assert_eq!(
        admin.get(&format!("Project/{}", a.project)).await.status,
        200
    );
    admin
        .get(&format!("Project/{}", b.project))
        .await
        .outcome(404);
});

e2e!(legacy_default_and_empty_policy, |srv| async move {
    let t = Tenant::new(&srv).await;
    let p = t.put(json!({"resourceType": "Patient"})).await;
    // No policy at all: everything but the admin types.
    let legacy = t.member(None, json!([]), false).await;
    assert_eq!(legacy.get(&format!("Patient/{}", id(&p))).await.status, 200);
    legacy.get("ProjectMembership").await.outcome(403);
    // A policy with no entries: nothing but the definitions' reads.
    let empty = t.restricted(json!([])).await;
    empty.get(&format!("Patient/{}", id(&p))).await.outcome(403);
    empty.get("Patient").await.outcome(403);
    assert_eq!(empty.get("StructureDefinition").await.status, 200);
    empty
        .post(
            "StructureDefinition",
            &json!({"resourceType": "StructureDefinition"}),
        )
        .await
        .outcome(403);
});

e2e!(project_admin_rules, |srv| async move {
    let t = Tenant::new(&srv).await;
    let admin = t
        .member(
            Some(policy(json!([{"resourceType": "Patient"}]))),
            json!([]),
            true,
        )
        .await;
    let plain = t.member(None, json!([]), false).await;
    // The admin's own project: readable, its protected fields hidden or kept.
    let project = admin.get(&format!("Project/{}", t.project)).await;
    assert_eq!(project.status, 200, "{}", project.text);
    assert!(project.body.get("superAdmin").is_none());
    let mut edit = project.body.clone();
    edit["name"] = json!("Renamed");
    edit["superAdmin"] = json!(true);
    edit["features"] = json!(["bots"]);
    let r = admin.put(&format!("Project/{}", t.project), &edit).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Renamed");
    let stored = srv
        .auth
        .repo()
        .system_read("Project", &t.project)
        .await
        .unwrap()
        .unwrap();
    let stored: Value = serde_json::from_str(&stored.content).unwrap();
    assert!(
        stored.get("superAdmin").is_none() && stored.get("features").is_none(),
        "{stored}"
    );
    // Memberships: the admin sees them, cannot move one to another project.
    let ms = admin.get("ProjectMembership").await;
    assert_eq!(ms.status, 200, "{}", ms.text);
    assert!(ms.body["entry"].as_array().is_some_and(|e| e.len() >= 2));
    let path = format!("ProjectMembership/{}", plain.membership);
    let mut m = admin.get(&path).await.body;
    m["project"] = json!({"reference": "Project/elsewhere"});
    m["user"] = json!({"reference": "User/someone-else"});
    m["active"] = json!(true);
    let r = admin.put(&path, &m).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["project"]["reference"],
        format!("Project/{}", t.project)
    );
    assert_eq!(
        r.body["user"]["reference"],
        format!("ClientApplication/{}", plain.client_id)
    );
    assert_eq!(r.body["active"], true);
    // The admin's own policy still restricts everything else; a Project cannot be created.
    admin.get("Observation").await.outcome(403);
    admin
        .post(
            "Project",
            &json!({"resourceType": "Project", "name": "New"}),
        )
        .await
        .outcome(403);
    // A non-admin reaches none of it.
    plain
        .get(&format!("Project/{}", t.project))
        .await
        .outcome(403);
    plain.get(&path).await.outcome(403);
});

e2e!(
    policy_changes_take_effect_on_the_next_request,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let p = t.put(json!({"resourceType": "Patient"})).await;
        let stored = t.put(policy(json!([{"resourceType": "Patient"}]))).await;
        let ((client_id, secret), membership) =
            t.client_with(Some(&id(&stored)), json!([]), false).await;
        let m = Member {
            srv: &srv,
            token: token_of(&srv, &client_id, &secret).await,
            client_id,
            secret,
            membership,
        };
        let path = format!("Patient/{}", id(&p));
        assert_eq!(m.get(&path).await.status, 200);
        // The policy now covers Observations only.
        let mut changed = stored.clone();
        changed["resource"] = json!([{"resourceType": "Observation"}]);
        oxmed_auth::records::put(srv.auth.repo(), &t.project, changed)
            .await
            .unwrap();
        m.get(&path).await.outcome(403);
        assert_eq!(m.get("Observation").await.status, 200);
        // Deleted: the session may do nothing, and no new token is issued.
        srv.auth
            .repo()
            .write(
                &oxmed_repo::RequestContext::system_in(&t.project),
                oxmed_repo::WriteRequest::Delete {
                    resource_type: "AccessPolicy".into(),
                    id: id(&stored),
                },
            )
            .await
            .unwrap();
        m.get("Observation").await.outcome(403);
        m.get(&path).await.outcome(403);
        let r = token_response(&srv, &m.client_id, &m.secret).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.body["error"], "invalid_request");
        assert!(
            r.body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("Invalid access policy configuration")),
            "{}",
            r.text
        );
    }
);

e2e!(unusable_policies_fail_closed, |srv| async move {
    let t = Tenant::new(&srv).await;
    let p = t.put(json!({"resourceType": "Patient"})).await;
    // A parameter nobody supplies: no token.
    let stored = t
        .put(policy(
            json!([{"resourceType": "Patient", "criteria": "Patient?organization=%org"}]),
        ))
        .await;
    let (client_id, secret) = t.client(Some(&id(&stored))).await;
    let r = token_response(&srv, &client_id, &secret).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Basic authentication with the same client: allowed to authenticate, allowed nothing.
    let basic = srv
        .plain
        .get(srv.url(&format!("Patient/{}", id(&p))))
        .basic_auth(&client_id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 403);
    // A policy of another project does not resolve.
    let other = Tenant::new(&srv).await;
    let foreign = other.put(policy(json!([{"resourceType": "*"}]))).await;
    let (client2, secret2) = t.client(Some(&id(&foreign))).await;
    let r = token_response(&srv, &client2, &secret2).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // A criteria on a parameter the server does not know matches nothing (no 500, no leak).
    let odd = t
        .member(
            Some(policy(
                json!([{"resourceType": "Patient", "criteria": "Patient?nonsense=1"}]),
            )),
            json!([]),
            false,
        )
        .await;
    odd.get(&format!("Patient/{}", id(&p))).await.outcome(404);
    assert_eq!(odd.ids("Patient").await, Vec::<String>::new());
});

e2e!(bundles_and_conditional_writes, |srv| async move {
    let t = Tenant::new(&srv).await;
    let hidden = t
        .put(json!({"resourceType": "Patient", "active": false,
            "identifier": [{"system": "http://x", "value": "1"}]}))
        .await;
    let m = t
        .restricted(json!([
            {"resourceType": "Patient", "criteria": "Patient?active=true"},
        ]))
        .await;
    // A transaction with one forbidden entry writes nothing.
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "active": true, "gender": "male"}},
        {"request": {"method": "POST", "url": "Observation"},
         "resource": observation(&id(&hidden), "final", "1")},
    ]});
    m.post("", &tx).await.outcome(403);
    assert_eq!(m.ids("Patient?gender=male").await, Vec::<String>::new());
    // A batch answers each entry on its own.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{}", id(&hidden))}},
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "active": true}},
        {"request": {"method": "GET", "url": "Encounter"}},
    ]});
    let r = m.post("", &batch).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let statuses: Vec<&str> = r.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap_or(""))
        .collect();
    assert!(statuses[0].starts_with("404"), "{statuses:?}");
    assert!(statuses[1].starts_with("201"), "{statuses:?}");
    assert!(statuses[2].starts_with("403"), "{statuses:?}");
    // Conditions never find what the caller cannot see.
    let r = m
        .call(
            reqwest::Method::DELETE,
            "Patient?identifier=http://x|1",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        srv.auth
            .repo()
            .system_read("Patient", &id(&hidden))
            .await
            .unwrap()
            .is_some_and(|r| !r.deleted)
    );
    let created = m
        .srv
        .plain
        .post(srv.url("Patient"))
        .bearer_auth(&m.token)
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", "identifier=http://x|1")
        .body(
            json!({"resourceType": "Patient", "active": true,
            "identifier": [{"system": "http://x", "value": "1"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "a new resource, not the hidden one");
    let body: Value = created.json().await.unwrap();
    assert_ne!(id(&body), id(&hidden));
});

e2e!(ip_access_rules, |srv| async move {
    let t = Tenant::new(&srv).await;
    let p = t.put(json!({"resourceType": "Patient"})).await;
    let with_rules = |rules: Value| {
        json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient"}],
            "ipAccessRule": rules})
    };
    // The tests connect from 127.0.0.1.
    let allowed = t
        .member(
            Some(with_rules(json!([
                {"value": "127.", "action": "allow"},
                {"value": "*", "action": "block"},
            ]))),
            json!([]),
            false,
        )
        .await;
    let path = format!("Patient/{}", id(&p));
    assert_eq!(allowed.get(&path).await.status, 200);
    // Only 10.0.0.0/8: no token from here, whatever X-Forwarded-For claims (no proxy is
    // trusted by default).
    let stored = t
        .put(with_rules(json!([
            {"value": "10.0.0.0/8", "action": "allow"},
            {"value": "*", "action": "block"},
        ])))
        .await;
    let (client_id, secret) = t.client(Some(&id(&stored))).await;
    let r = srv
        .plain
        .post(format!("{}oauth2/token", srv.base))
        .basic_auth(&client_id, Some(&secret))
        .header("x-forwarded-for", "10.1.2.3")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let r = Resp::from(r).await;
    common::oauth_error(&r, 400, "invalid_request", "IP address not allowed");
    // Basic authentication never gets a token, so the per-request check is what stops it.
    let basic = srv
        .plain
        .get(srv.url(&path))
        .basic_auth(&client_id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 403);
    // A rule added after the token was issued holds from the next request (Medplum checks only
    // at sign-in and token time).
    let mut now_blocked = stored.clone();
    now_blocked["id"] = json!(allowed_policy_id(&srv, &t, &allowed).await);
    now_blocked["ipAccessRule"] = json!([{"value": "127.0.0.1", "action": "block"}]);
    oxmed_auth::records::put(srv.auth.repo(), &t.project, now_blocked)
        .await
        .unwrap();
    allowed.get(&path).await.outcome(403);
});

/// The id of the policy a member's membership names.
async fn allowed_policy_id(srv: &TestServer, t: &Tenant<'_>, m: &Member<'_>) -> String {
    let stored = srv
        .auth
        .repo()
        .system_read("ProjectMembership", &m.membership)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.project, t.project);
    let v: Value = serde_json::from_str(&stored.content).unwrap();
    v["access"][0]["policy"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("AccessPolicy/")
        .to_owned()
}

e2e!(compartment_criteria, |srv| async move {
    let t = Tenant::new(&srv).await;
    let alice = t.put(json!({"resourceType": "Patient"})).await;
    let bob = t.put(json!({"resourceType": "Patient"})).await;
    let carol = t.put(json!({"resourceType": "Patient"})).await;
    let mut mine = Vec::new();
    for p in [&alice, &bob] {
        mine.push(id(&t.put(observation(&id(p), "final", "1")).await));
    }
    let theirs = t.put(observation(&id(&carol), "final", "1")).await;
    let m = t
        .restricted(json!([{"resourceType": "Observation",
                "criteria": format!("Observation?_compartment=Patient/{},Patient/{}", id(&alice), id(&bob))}]))
        .await;
    mine.sort();
    assert_eq!(m.ids("Observation").await, mine);
    let count = m.get("Observation?_summary=count").await;
    assert_eq!(count.body["total"], 2, "{}", count.text);
    assert_eq!(m.get(&format!("Observation/{}", mine[0])).await.status, 200);
    m.get(&format!("Observation/{}", id(&theirs)))
        .await
        .outcome(404);
});

e2e!(on_behalf_of, |srv| async move {
    let t = Tenant::new(&srv).await;
    let female = t
        .put(json!({"resourceType": "Patient", "gender": "female"}))
        .await;
    let male = t
        .put(json!({"resourceType": "Patient", "gender": "male"}))
        .await;
    let target = t
        .restricted(json!([
            {"resourceType": "Patient", "criteria": "Patient?gender=female"},
        ]))
        .await;
    let admin = t.member(None, json!([]), true).await;
    let plain = t.member(None, json!([]), false).await;
    let by_membership = format!("ProjectMembership/{}", target.membership);
    let by_profile = format!("ClientApplication/{}", target.client_id);
    let get = reqwest::Method::GET;
    // Control: the admin alone sees both.
    assert_eq!(
        admin.get(&format!("Patient/{}", id(&male))).await.status,
        200
    );
    let mut females = vec![id(&female)];
    for who in [&by_membership, &by_profile] {
        // The target's policy governs the request.
        let r = admin
            .as_for(get.clone(), &format!("Patient/{}", id(&female)), None, who)
            .await;
        assert_eq!(r.status, 200, "{who}: {}", r.text);
        admin
            .as_for(get.clone(), &format!("Patient/{}", id(&male)), None, who)
            .await
            .outcome(404);
        let r = admin.as_for(get.clone(), "Patient", None, who).await;
        females.sort();
        assert_eq!(ids_of(&r.body), females, "{who}");
        admin
            .as_for(get.clone(), "Observation", None, who)
            .await
            .outcome(403);
        // Writes: judged by the target's policy, authored by the admin, stamped for the target.
        admin
            .as_for(
                reqwest::Method::POST,
                "Patient",
                Some(&json!({"resourceType": "Patient", "gender": "male"})),
                who,
            )
            .await
            .outcome(403);
        let r = admin
            .call_with(
                reqwest::Method::POST,
                "Patient",
                Some(&json!({"resourceType": "Patient", "gender": "female"})),
                &[("x-medplum-on-behalf-of", who), ("x-medplum", "extended")],
            )
            .await;
        assert_eq!(r.status, 201, "{who}: {}", r.text);
        females.push(id(&r.body));
        assert_eq!(
            r.body["meta"]["author"]["reference"],
            format!("ClientApplication/{}", admin.client_id)
        );
        assert_eq!(
            r.body["meta"]["onBehalfOf"]["reference"],
            format!("ClientApplication/{}", target.client_id)
        );
    }
    // Only admins may act for another; unknown or foreign targets are refused.
    let other = Tenant::new(&srv).await;
    let stranger = other.member(None, json!([]), false).await;
    let refused = [
        (&plain, by_membership.clone()),
        (&target, format!("ProjectMembership/{}", admin.membership)),
        (
            &admin,
            "ProjectMembership/00000000-0000-0000-0000-000000000000".to_owned(),
        ),
        (&admin, "Practitioner/nobody".to_owned()),
        (&admin, "not a reference".to_owned()),
        (&admin, format!("ProjectMembership/{}", stranger.membership)),
    ];
    for (who, value) in refused {
        who.as_for(get.clone(), "Patient", None, &value)
            .await
            .outcome(403);
    }
    // A client cannot set meta.onBehalfOf itself.
    let r = admin
        .post(
            "Patient",
            &json!({"resourceType": "Patient",
                "meta": {"onBehalfOf": {"reference": "Practitioner/spoofed"}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["meta"].get("onBehalfOf").is_none(), "{}", r.text);
});

e2e!(explain_tells_which_entry_decided, |srv| async move {
    let t = Tenant::new(&srv).await;
    let p = t.put(json!({"resourceType": "Patient"})).await;
    let fin = t.put(observation(&id(&p), "final", "1")).await;
    let draft = t.put(observation(&id(&p), "preliminary", "1")).await;
    let target = t
        .restricted(json!([
            {"resourceType": "Observation", "criteria": "Observation?status=final",
             "hiddenFields": ["valueQuantity"]},
            {"resourceType": "Observation", "criteria": "Observation?nonsense=1"},
        ]))
        .await;
    let admin = t.member(None, json!([]), true).await;
    let ask = |query: String| {
        format!(
            "AccessPolicy/$explain?membership=ProjectMembership/{}&{query}",
            target.membership
        )
    };
    let param = |body: &Value, name: &str| -> Vec<Value> {
        body["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == name)
            .cloned()
            .collect()
    };
    // Allowed: entry 0 decided, with its hidden field; what the target sees agrees.
    let r = admin
        .get(&ask(format!(
            "interaction=read&resource=Observation/{}",
            id(&fin)
        )))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["resourceType"], "Parameters");
    assert_eq!(
        param(&r.body, "decision")[0]["valueCode"],
        "allow",
        "{}",
        r.text
    );
    assert_eq!(param(&r.body, "decidedBy")[0]["valueInteger"], 0);
    assert_eq!(
        param(&r.body, "hiddenField")[0]["valueString"],
        "valueQuantity"
    );
    let entries = param(&r.body, "entry");
    assert_eq!(entries.len(), 2);
    assert!(
        entries[1].to_string().contains("unusable"),
        "{}",
        entries[1]
    );
    assert_eq!(
        target
            .get(&format!("Observation/{}", id(&fin)))
            .await
            .status,
        200
    );
    // Denied: no entry's criteria match, and the target indeed cannot read it.
    let r = admin
        .get(&ask(format!(
            "interaction=read&resource=Observation/{}",
            id(&draft)
        )))
        .await;
    assert_eq!(
        param(&r.body, "decision")[0]["valueCode"],
        "deny",
        "{}",
        r.text
    );
    assert!(
        param(&r.body, "reason")[0]["valueString"]
            .as_str()
            .unwrap()
            .contains("none of them"),
        "{}",
        r.text
    );
    target
        .get(&format!("Observation/{}", id(&draft)))
        .await
        .outcome(404);
    // Type level.
    for (query, want) in [
        ("interaction=read&resourceType=Patient", "deny"),
        ("interaction=search&resourceType=Observation", "allow"),
    ] {
        let r = admin.get(&ask(query.into())).await;
        assert_eq!(
            param(&r.body, "decision")[0]["valueCode"],
            want,
            "{query}: {}",
            r.text
        );
    }
    // Only admins ask, about their own project; bad questions are 400.
    target
        .get(&ask("interaction=read&resourceType=Patient".into()))
        .await
        .outcome(403);
    let other = Tenant::new(&srv).await;
    let stranger = other.member(None, json!([]), false).await;
    admin
        .get(&format!(
            "AccessPolicy/$explain?membership=ProjectMembership/{}&interaction=read&resourceType=Patient",
            stranger.membership
        ))
        .await
        .outcome(404);
    admin
        .get(&ask("resourceType=Patient".into()))
        .await
        .outcome(400);
    admin
        .get(&ask("interaction=read".into()))
        .await
        .outcome(400);
    admin
        .get(&ask("interaction=read&resource=Observation".into()))
        .await
        .outcome(400);
});

e2e!(password_hashes_are_never_read, |srv| async move {
    // Even the super admin reads no password hash or MFA secret over FHIR, and cannot set one.
    let created = srv
        .create(&json!({"resourceType": "User", "email": "x@example.com",
            "passwordHash": "$2b$04$abcdefghijklmnopqrstuv", "firstName": "X", "lastName": "Y"}))
        .await;
    let stored = srv
        .auth
        .repo()
        .system_read("User", &id(&created))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored.content.contains("passwordHash"),
        "{}",
        stored.content
    );
    oxmed_auth::records::put(
        srv.auth.repo(),
        &stored.project,
        json!({"resourceType": "User", "id": id(&created), "email": "x@example.com",
            "firstName": "X", "lastName": "Y",
            "passwordHash": "$2b$04$abcdefghijklmnopqrstuv", "mfaSecret": "MFASECRET"}),
    )
    .await
    .unwrap();
    let r = srv.get("User?email=x@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids_of(&r.body), vec![id(&created)]);
    assert!(
        !r.text.contains("passwordHash") && !r.text.contains("MFASECRET"),
        "{}",
        r.text
    );
    let one = srv.get(&format!("User/{}", id(&created))).await;
    assert!(one.body.get("passwordHash").is_none(), "{}", one.text);
    // A project admin likewise.
    let t = Tenant::new(&srv).await;
    t.put(
        json!({"resourceType": "User", "email": "y@example.com", "passwordHash": "secret-hash",
        "firstName": "Y", "lastName": "Z", "project": t.reference()}),
    )
    .await;
    let admin = t.member(None, json!([]), true).await;
    let r = admin.get("User").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("y@example.com"), "{}", r.text);
    assert!(!r.text.contains("secret-hash"), "{}", r.text);
});

e2e!(extended_mode_shows_the_server_meta, |srv| async move {
    let t = Tenant::new(&srv).await;
    let m = t.member(None, json!([]), false).await;
    let created = m
        .post(
            "Patient",
            &json!({"resourceType": "Patient",
        "meta": {"tag": [{"code": "kept"}]}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let path = format!("Patient/{}", id(&created.body));
    // Without the header: no project, no author; the rest of meta is there.
    for r in [
        &created,
        &m.get(&path).await,
        &m.get(&format!("{path}/_history")).await,
        &m.get("Patient").await,
    ] {
        assert_eq!(r.status / 100, 2, "{}", r.text);
        assert!(
            !r.text.contains("\"project\"") && !r.text.contains("\"author\""),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("versionId") && r.text.contains("kept"),
            "{}",
            r.text
        );
    }
    // With it: both.
    let r = m
        .call_with(
            reqwest::Method::GET,
            &path,
            None,
            &[("x-medplum", "extended")],
        )
        .await;
    assert_eq!(r.body["meta"]["project"], t.project.as_str(), "{}", r.text);
    assert_eq!(
        r.body["meta"]["author"]["reference"],
        format!("ClientApplication/{}", m.client_id)
    );
    assert_eq!(r.body["meta"]["tag"][0]["code"], "kept");
});
