//! Projects as tenants (spec §8, issue 5 point 3), over HTTP on both backends: linked projects
//! read-only and limited to the types they export, super admins reading and writing across
//! projects, and `checkReferencesOnWrite`. Every allow has its denial.

mod common;

use common::tenant::{Member, Tenant, id, ids_of, observation, policy};
use serde_json::{Value, json};

/// Rewrites a tenant's Project resource with these fields added (as the server).
async fn set_project(t: &Tenant<'_>, fields: Value) {
    let mut project = json!({"resourceType": "Project", "id": t.project, "name": "Clinic"});
    for (k, v) in fields.as_object().expect("fields") {
        project[k] = v.clone();
    }
    oxmed_auth::records::put(t.srv.auth.repo(), &t.project, project)
        .await
        .expect("project");
}

/// The status of a read of `resource` (by its type and id) by `m`.
async fn read_status(m: &Member<'_>, resource: &Value) -> u16 {
    let t = resource["resourceType"].as_str().expect("resourceType");
    m.get(&format!("{t}/{}", id(resource))).await.status
}

fn patient(name: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": name}]})
}

e2e!(
    linked_projects_are_read_only_and_limited_to_their_exports,
    |srv| async move {
        let own = Tenant::new(&srv).await;
        let forms = Tenant::new(&srv).await; // exports Questionnaires only
        let shared = Tenant::new(&srv).await; // exports every type
        let stranger = Tenant::new(&srv).await; // not linked
        set_project(&forms, json!({"exportedResourceType": ["Questionnaire"]})).await;
        set_project(
            &own,
            json!({"link": [{"project": forms.reference()}, {"project": shared.reference()}]}),
        )
        .await;
        let mine = own.put(patient("Mine")).await;
        let form = forms
            .put(json!({"resourceType": "Questionnaire", "status": "active"}))
            .await;
        let forms_patient = forms.put(patient("Forms")).await;
        let shared_patient = shared.put(patient("Shared")).await;
        let strange = stranger.put(patient("Stranger")).await;
        let obs = own
            .put(observation(&id(&shared_patient), "final", "x"))
            .await;
        let m = own.member(None, json!([]), false).await;
        let admin = own.member(None, json!([]), true).await;

        // Reads: the exported types of linked projects, nothing of the others.
        assert_eq!(read_status(&m, &form).await, 200);
        assert_eq!(read_status(&m, &shared_patient).await, 200);
        assert_eq!(read_status(&m, &forms_patient).await, 404);
        assert_eq!(read_status(&m, &strange).await, 404);
        let mut expected = vec![id(&mine), id(&shared_patient)];
        expected.sort();
        assert_eq!(m.ids("Patient").await, expected);
        assert_eq!(m.ids("Questionnaire").await, vec![id(&form)]);
        let all = m.get("?_type=Patient,Questionnaire&_count=100").await;
        assert_eq!(all.status, 200, "{}", all.text);
        let mut expected = vec![id(&mine), id(&shared_patient), id(&form)];
        expected.sort();
        assert_eq!(ids_of(&all.body), expected);
        // Includes and chains reach into linked projects the same way.
        let inc = m
            .get(&format!(
                "Observation?_id={}&_include=Observation:subject",
                id(&obs)
            ))
            .await;
        assert_eq!(ids_of(&inc.body), {
            let mut v = vec![id(&obs), id(&shared_patient)];
            v.sort();
            v
        });
        assert_eq!(
            m.ids("Observation?subject:Patient.name=Shared").await,
            vec![id(&obs)]
        );
        // History: the linked resource's own, and in the type's history.
        let h = m
            .get(&format!("Patient/{}/_history", id(&shared_patient)))
            .await;
        assert_eq!(h.status, 200, "{}", h.text);
        let th = m.get("Patient/_history").await;
        let seen: Vec<String> = ids_of(&th.body);
        assert!(
            seen.contains(&id(&shared_patient)) && seen.contains(&id(&mine)),
            "{seen:?}"
        );
        assert!(!seen.contains(&id(&forms_patient)) && !seen.contains(&id(&strange)));
        let qh = m
            .get(&format!("Patient/{}/_history", id(&forms_patient)))
            .await;
        assert_eq!(qh.status, 404);

        // Writes: a linked project is read-only (403); an unlinked one is not there (404).
        let mut changed = shared_patient.clone();
        changed["active"] = json!(true);
        let put = m
            .put(&format!("Patient/{}", id(&shared_patient)), &changed)
            .await;
        assert_eq!(put.status, 403, "{}", put.text);
        let del = m.delete(&format!("Questionnaire/{}", id(&form))).await;
        assert_eq!(del.status, 403, "{}", del.text);
        let patch = m
            .patch(
                &format!("Patient/{}", id(&shared_patient)),
                &json!([{"op": "add", "path": "/active", "value": true}]),
            )
            .await;
        assert_eq!(patch.status, 403, "{}", patch.text);
        let mut strange_changed = strange.clone();
        strange_changed["active"] = json!(true);
        let put = m
            .put(&format!("Patient/{}", id(&strange)), &strange_changed)
            .await;
        assert_eq!(put.status, 404, "{}", put.text);
        let after = srv.get(&format!("Patient/{}", id(&shared_patient))).await;
        assert!(after.body.get("active").is_none(), "{}", after.body);

        // The linked Project resources themselves, for an admin of the project.
        let projects = admin.ids("Project").await;
        let mut expected = vec![
            own.project.clone(),
            forms.project.clone(),
            shared.project.clone(),
        ];
        expected.sort();
        assert_eq!(projects, expected);
        assert_eq!(
            admin
                .get(&format!("Project/{}", stranger.project))
                .await
                .status,
            404
        );

        // The link removed: the linked resources are gone on the next request.
        set_project(&own, json!({})).await;
        assert_eq!(read_status(&m, &shared_patient).await, 404);
        assert_eq!(read_status(&m, &form).await, 404);
        assert_eq!(m.ids("Patient").await, vec![id(&mine)]);
    }
);

e2e!(a_policy_still_governs_what_a_link_shows, |srv| async move {
    let own = Tenant::new(&srv).await;
    let shared = Tenant::new(&srv).await;
    set_project(&own, json!({"link": [{"project": shared.reference()}]})).await;
    let active = shared
        .put(json!({"resourceType": "Patient", "active": true}))
        .await;
    let inactive = shared
        .put(json!({"resourceType": "Patient", "active": false}))
        .await;
    let m = own
        .restricted(json!([{"resourceType": "Patient", "criteria": "Patient?active=true"}]))
        .await;
    assert_eq!(read_status(&m, &active).await, 200);
    assert_eq!(read_status(&m, &inactive).await, 404);
    assert_eq!(m.ids("Patient").await, vec![id(&active)]);
});

e2e!(
    super_admins_read_and_write_across_projects,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let other = Tenant::new(&srv).await;
        let p = t.put(patient("Tenant")).await;
        let path = format!("Patient/{}", id(&p));
        // `srv` signs in as the super admin.
        assert_eq!(srv.get(&path).await.status, 200);
        assert!(
            srv.get(&format!("Patient?_id={}", id(&p))).await.body["entry"]
                .as_array()
                .is_some_and(|e| e.len() == 1)
        );
        assert_eq!(srv.get(&format!("{path}/_history")).await.status, 200);
        // An update keeps the resource in its project, where its members still see it.
        let mut changed = p.clone();
        changed["active"] = json!(true);
        let put = srv.put(&path, &changed).await;
        assert_eq!(put.status, 200, "{}", put.text);
        let extended = srv
            .send(
                reqwest::Method::GET,
                &path,
                &Value::Null,
                &[("x-medplum", "extended")],
            )
            .await;
        assert_eq!(
            extended.body["meta"]["project"].as_str(),
            Some(t.project.as_str()),
            "{}",
            extended.body
        );
        let member = t.member(None, json!([]), false).await;
        let seen = member.get(&path).await;
        assert_eq!(seen.status, 200);
        assert_eq!(seen.body["active"], json!(true));
        // Nobody else crosses: a member of another project, nor a tenant into the admin's own.
        let outsider = other.member(None, json!([]), true).await;
        assert_eq!(outsider.get(&path).await.status, 404);
        assert_eq!(outsider.put(&path, &changed).await.status, 404);
        let admins = srv.create(&patient("Admin's own")).await;
        assert_eq!(read_status(&member, &admins).await, 404);
        // Every project includes the server's own records: its signing keys and sign-in sessions
        // are listed, but never their secrets.
        for (t, secrets) in [
            ("JsonWebKey", &["d", "p", "q", "dp", "dq", "qi"][..]),
            ("Login", &["code", "cookie", "refreshSecret"][..]),
        ] {
            let r = srv.get(&format!("{t}?_count=100")).await;
            assert_eq!(r.status, 200, "{}", r.text);
            let entries = r.body["entry"].as_array().cloned().unwrap_or_default();
            assert!(!entries.is_empty(), "no {t} seen: {}", r.body);
            for e in entries {
                for s in secrets {
                    assert!(
                        e["resource"].get(*s).is_none(),
                        "{t}.{s} shown: {}",
                        e["resource"]
                    );
                }
            }
        }
        // A super admin creates in the project `meta.project` names; anyone else's is ignored.
        let placed = srv
            .create(&json!({"resourceType": "Patient", "meta": {"project": t.project}}))
            .await;
        assert_eq!(read_status(&member, &placed).await, 200);
        let bogus = srv
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "meta": {"project": oxmed_repo::meta::new_id()}}),
        )
        .await;
        assert_eq!(bogus.status, 400, "{}", bogus.text);
        let own_only = outsider
            .post(
                "Patient",
                &json!({"resourceType": "Patient", "meta": {"project": t.project}}),
            )
            .await;
        assert_eq!(own_only.status, 201, "{}", own_only.text);
        assert_eq!(read_status(&member, &own_only.body).await, 404);
        assert_eq!(read_status(&outsider, &own_only.body).await, 200);
        // A new Project in itself, and a member of it, as an operator sets up a tenant.
        let fresh = oxmed_repo::meta::new_id();
        let r = srv
            .put(
                &format!("Project/{fresh}"),
                &json!({"resourceType": "Project", "id": fresh, "name": "New",
                "meta": {"project": fresh}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let inside = srv
            .create(&json!({"resourceType": "Patient", "meta": {"project": fresh}}))
            .await;
        let extended = srv
            .send(
                reqwest::Method::GET,
                &format!("Patient/{}", id(&inside)),
                &Value::Null,
                &[("x-medplum", "extended")],
            )
            .await;
        assert_eq!(extended.body["meta"]["project"], json!(fresh));
        // A delete by the super admin reaches the tenant's resource too.
        assert_eq!(srv.delete(&path).await.status, 200);
        assert_eq!(member.get(&path).await.status, 410);
    }
);

e2e!(check_references_on_write, |srv| async move {
    let t = Tenant::new(&srv).await;
    let other = Tenant::new(&srv).await;
    set_project(&t, json!({"checkReferencesOnWrite": true})).await;
    let p = t.put(patient("Here")).await;
    let elsewhere = other.put(patient("Elsewhere")).await;
    let practitioner = t
        .put(json!({"resourceType": "Practitioner", "active": true}))
        .await;
    let m = t.member(None, json!([]), false).await;
    let ok = m
        .post("Observation", &observation(&id(&p), "final", "1"))
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let bad = m
        .post("Observation", &observation(&id(&elsewhere), "final", "1"))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(
        bad.body["issue"][0]["details"]["text"],
        json!("Invalid reference (Not found)"),
        "{}",
        bad.body
    );
    assert_eq!(
        bad.body["issue"][0]["expression"],
        json!(["Observation.subject"])
    );
    let gp = json!({"resourceType": "Patient", "generalPractitioner": [
        {"reference": format!("Practitioner/{}", id(&practitioner))},
        {"reference": format!("Practitioner/{}", oxmed_repo::meta::new_id())},
    ]});
    let r = m.post("Patient", &gp).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["issue"][0]["expression"],
        json!(["Patient.generalPractitioner[1]"])
    );
    // Update and patch are checked too.
    let created = ok.body.clone();
    let mut moved = created.clone();
    moved["subject"] = json!({"reference": format!("Patient/{}", id(&elsewhere))});
    let put = m
        .put(&format!("Observation/{}", id(&created)), &moved)
        .await;
    assert_eq!(put.status, 400, "{}", put.text);
    let patch = m
        .patch(
            &format!("Observation/{}", id(&created)),
            &json!([{"op": "replace", "path": "/subject/reference",
                "value": format!("Patient/{}", id(&elsewhere))}]),
        )
        .await;
    assert_eq!(patch.status, 400, "{}", patch.text);
    let patch = m
        .patch(
            &format!("Observation/{}", id(&created)),
            &json!([{"op": "replace", "path": "/status", "value": "amended"}]),
        )
        .await;
    assert_eq!(patch.status, 200, "{}", patch.text);
    // What the caller's policy hides is not there either.
    let narrow = t
        .member(
            Some(policy(json!([{"resourceType": "Observation"}]))),
            json!([]),
            false,
        )
        .await;
    let r = narrow
        .post("Observation", &observation(&id(&p), "final", "1"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // A transaction may refer to what it creates.
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5b0a1c8e-0000-4000-8000-000000000001",
         "resource": patient("New"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "urn:uuid:5b0a1c8e-0000-4000-8000-000000000001"}},
         "request": {"method": "POST", "url": "Observation"}},
    ]});
    let r = m.post("", &tx).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bad_tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation(&id(&elsewhere), "final", "1"),
         "request": {"method": "POST", "url": "Observation"}},
    ]});
    let r = m.post("", &bad_tx).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Without the setting, the same write is taken as it is.
    let unchecked = other.member(None, json!([]), false).await;
    let r = unchecked
        .post("Observation", &observation(&id(&p), "final", "1"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
});

// `meta.accounts` as Medplum's multi-tenancy inside a project (spec §1.4).
e2e!(
    accounts_are_stamped_searched_and_cannot_be_spoofed,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let org_a = id(&t
            .put(json!({"resourceType": "Organization", "name": "A"}))
            .await);
        let org_b = id(&t
            .put(json!({"resourceType": "Organization", "name": "B"}))
            .await);
        let account = |org: &str| json!({"reference": format!("Organization/{org}")});
        let member_of = |org: &str| {
            json!({"resourceType": "AccessPolicy", "name": "account",
            "compartment": {"reference": format!("Organization/{org}")},
            "resource": [
                {"resourceType": "Patient", "criteria": format!("Patient?_compartment=Organization/{org}")},
                {"resourceType": "Observation", "criteria": format!("Observation?_compartment=Organization/{org}")},
            ]})
        };
        let a = t.member(Some(member_of(&org_a)), json!([]), false).await;
        let b = t.member(Some(member_of(&org_b)), json!([]), false).await;
        let admin = t.member(None, json!([]), true).await;
        let extended = [("x-medplum", "extended")];
        let accounts_of = |path: String| {
            let admin = &admin;
            async move {
                let r = admin
                    .call_with(reqwest::Method::GET, &path, None, &extended)
                    .await;
                assert_eq!(r.status, 200, "{}", r.text);
                r.body["meta"]["accounts"].clone()
            }
        };

        // A create joins the creator's account; what the creator says of accounts is ignored.
        let spoofed = json!({"resourceType": "Patient", "name": [{"family": "A"}],
        "meta": {"accounts": [account(&org_b)], "account": account(&org_b)}});
        let created = a.post("Patient", &spoofed).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let pa = id(&created.body);
        assert_eq!(
            accounts_of(format!("Patient/{pa}")).await,
            json!([account(&org_a)])
        );
        // The account decides what each member sees, on read (in memory) and search (SQL).
        assert_eq!(a.get(&format!("Patient/{pa}")).await.status, 200);
        assert_eq!(b.get(&format!("Patient/{pa}")).await.status, 404);
        assert_eq!(a.ids("Patient").await, vec![pa.clone()]);
        assert!(b.ids("Patient").await.is_empty());
        // Resources about the Patient inherit its accounts, whoever writes them.
        let obs = admin
            .post("Observation", &observation(&pa, "final", "1"))
            .await;
        assert_eq!(obs.status, 201, "{}", obs.text);
        let obs = id(&obs.body);
        assert_eq!(
            accounts_of(format!("Observation/{obs}")).await,
            json!([account(&org_a)])
        );
        assert_eq!(a.ids("Observation").await, vec![obs.clone()]);
        assert_eq!(b.get(&format!("Observation/{obs}")).await.status, 404);
        // `_compartment` finds an account's resources.
        assert_eq!(
            admin
                .ids(&format!("Patient?_compartment=Organization/{org_a}"))
                .await,
            vec![pa.clone()]
        );
        assert!(
            admin
                .ids(&format!("Patient?_compartment=Organization/{org_b}"))
                .await
                .is_empty()
        );

        // An update keeps the accounts: a member's attempt to move the resource is ignored ...
        let mut moved = a.get(&format!("Patient/{pa}")).await.body;
        moved["meta"] = json!({"accounts": [account(&org_b)]});
        moved["active"] = json!(true);
        let r = a.put(&format!("Patient/{pa}"), &moved).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            accounts_of(format!("Patient/{pa}")).await,
            json!([account(&org_a)])
        );
        // ... and so is an admin's without extended mode ...
        let r = admin.put(&format!("Patient/{pa}"), &moved).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            accounts_of(format!("Patient/{pa}")).await,
            json!([account(&org_a)])
        );
        // ... while an admin in extended mode sets them.
        let put_extended = |body: &Value| {
            let (admin, extended, path) = (&admin, &extended, format!("Patient/{pa}"));
            let body = body.clone();
            async move {
                admin
                    .call_with(reqwest::Method::PUT, &path, Some(&body), extended)
                    .await
            }
        };
        let r = put_extended(&moved).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            accounts_of(format!("Patient/{pa}")).await,
            json!([account(&org_b)])
        );
        assert_eq!(a.get(&format!("Patient/{pa}")).await.status, 404);
        assert_eq!(b.get(&format!("Patient/{pa}")).await.status, 200);
        // Accounts are only shown in extended mode.
        let plain = admin.get(&format!("Patient/{pa}")).await;
        assert!(
            plain.body["meta"].get("accounts").is_none(),
            "{}",
            plain.body
        );
        // An admin's meta without accounts clears them.
        moved["meta"] = json!({"tag": [{"code": "x"}]});
        let r = put_extended(&moved).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(accounts_of(format!("Patient/{pa}")).await, Value::Null);
        assert_eq!(b.get(&format!("Patient/{pa}")).await.status, 404);
    }
);
