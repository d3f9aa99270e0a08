//! SMART on FHIR scopes enforced (spec §12; issue 7 point 1), over HTTP on both backends: the
//! letters are interactions, `patient/` scopes see the patient in context only, granular
//! `?category=` scopes hide the rest from search and read, scopes never widen a policy, and
//! the context prefixes belong to their grantee. Every allow is tested with its denial.

mod common;

use common::tenant::{Member, Tenant, id, ids_of, policy};
use common::{Resp, TestServer, form, login_tokens};
use serde_json::{Value, json};

/// A tenant with two patients, each with a laboratory and a vital-signs Observation, and a
/// Practitioner user (no policy: full access) who signs in with a password.
struct Clinic<'a> {
    t: Tenant<'a>,
    admin: Member<'a>,
    email: String,
    a: String,
    b: String,
    a_lab: String,
    a_vital: String,
    b_lab: String,
    b_vital: String,
}

const PASSWORD: &str = "correct-horse-battery";

fn observation(patient: &str, category: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system":
            "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": format!("Patient/{patient}")}})
}

async fn invite(srv: &TestServer, admin: &Member<'_>, project: &str, body: &Value) -> Value {
    let r = srv
        .plain
        .post(format!("{}admin/projects/{project}/invite", srv.base))
        .bearer_auth(&admin.token)
        .json(body)
        .send()
        .await
        .expect("invite");
    let r = Resp::from(r).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

impl<'a> Clinic<'a> {
    async fn new(srv: &'a TestServer) -> Clinic<'a> {
        let t = Tenant::new(srv).await;
        let admin = t.member(None, json!([]), true).await;
        let email = format!("doc-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
        invite(
            srv,
            &admin,
            &t.project,
            &json!({"resourceType": "Practitioner", "firstName": "Doc", "lastName": "Tor",
                "email": email, "password": PASSWORD, "sendEmail": false}),
        )
        .await;
        let a = id(&t
            .put(json!({"resourceType": "Patient", "name": [{"family": "A"}]}))
            .await);
        let b = id(&t
            .put(json!({"resourceType": "Patient", "name": [{"family": "B"}]}))
            .await);
        let a_lab = id(&t.put(observation(&a, "laboratory")).await);
        let a_vital = id(&t.put(observation(&a, "vital-signs")).await);
        let b_lab = id(&t.put(observation(&b, "laboratory")).await);
        let b_vital = id(&t.put(observation(&b, "vital-signs")).await);
        Clinic {
            t,
            admin,
            email,
            a,
            b,
            a_lab,
            a_vital,
            b_lab,
            b_vital,
        }
    }

    /// A SmartAppLaunch of the clinic about patient A.
    async fn launch_for_a(&self) -> String {
        id(&self
            .t
            .put(json!({"resourceType": "SmartAppLaunch",
                "patient": {"reference": format!("Patient/{}", self.a)}}))
            .await)
    }
}

/// Signs in through `/auth/login` and the code grant with this scope (and launch); the token
/// response, or the refusal of `/auth/login`.
async fn token_response(
    srv: &TestServer,
    email: &str,
    scope: &str,
    launch: Option<&str>,
) -> Result<Value, Resp> {
    let mut body = json!({"email": email, "password": PASSWORD, "scope": scope});
    if let Some(l) = launch {
        body["launch"] = json!(l);
    }
    login_tokens(srv, body).await
}

/// A caller holding the access token of a sign-in with this scope.
async fn signed_in<'a>(
    srv: &'a TestServer,
    email: &str,
    scope: &str,
    launch: Option<&str>,
) -> Member<'a> {
    let tokens = token_response(srv, email, scope, launch)
        .await
        .unwrap_or_else(|r| panic!("sign-in with {scope}: {}", r.text));
    assert_eq!(tokens["scope"], scope);
    Member::with_token(srv, tokens["access_token"].as_str().unwrap())
}

fn sorted(mut ids: Vec<&String>) -> Vec<String> {
    ids.sort();
    ids.into_iter().cloned().collect()
}

e2e!(
    patient_scopes_see_the_launch_patient_only,
    |srv| async move {
        let c = Clinic::new(&srv).await;
        let launch = c.launch_for_a().await;
        let tokens = token_response(&srv, &c.email, "openid launch patient/*.rs", Some(&launch))
            .await
            .expect("sign-in");
        assert_eq!(tokens["patient"], c.a.as_str(), "{tokens}");
        assert_eq!(tokens["need_patient_banner"], true);
        let app = signed_in(&srv, &c.email, "openid launch patient/*.rs", Some(&launch)).await;

        // The patient's data, by id and by search.
        assert_eq!(
            app.get(&format!("Observation/{}", c.a_lab)).await.status,
            200
        );
        assert_eq!(app.get(&format!("Patient/{}", c.a)).await.status, 200);
        assert_eq!(
            app.ids("Observation").await,
            sorted(vec![&c.a_lab, &c.a_vital])
        );
        assert_eq!(app.ids("Patient").await, vec![c.a.clone()]);
        // Another patient's data is not there at all.
        assert_eq!(
            app.get(&format!("Observation/{}", c.b_lab)).await.status,
            404
        );
        assert_eq!(app.get(&format!("Patient/{}", c.b)).await.status, 404);
        assert!(
            app.ids(&format!("Observation?subject=Patient/{}", c.b))
                .await
                .is_empty()
        );
        // `rs` writes nothing.
        let r = app
            .post("Observation", &observation(&c.a, "laboratory"))
            .await;
        assert_eq!(r.status, 403, "{}", r.text);

        // The same user without SMART scopes has the membership's whole access.
        let full = signed_in(&srv, &c.email, "openid", None).await;
        assert_eq!(
            full.get(&format!("Observation/{}", c.b_lab)).await.status,
            200
        );
        assert_eq!(full.ids("Observation").await.len(), 4);

        // A patient scope with no patient in context (no launch, the user is no Patient) grants
        // nothing.
        let lost = signed_in(&srv, &c.email, "openid patient/*.rs", None).await;
        assert_ne!(
            lost.get(&format!("Observation/{}", c.a_lab)).await.status,
            200
        );
        let r = lost.get("Observation").await;
        assert!(ids_of(&r.body).is_empty(), "{}", r.text);

        // A launch of another project sets no context here.
        let other = Tenant::new(&srv).await;
        let foreign = id(&other
            .put(json!({"resourceType": "SmartAppLaunch",
            "patient": {"reference": format!("Patient/{}", c.b)}}))
            .await);
        let tokens = token_response(&srv, &c.email, "openid patient/*.rs", Some(&foreign))
            .await
            .expect("sign-in");
        assert!(tokens.get("patient").is_none(), "{tokens}");
        let app = Member::with_token(&srv, tokens["access_token"].as_str().unwrap());
        assert_ne!(
            app.get(&format!("Observation/{}", c.b_lab)).await.status,
            200
        );
        // An unknown launch is refused at sign-in.
        let r = token_response(
            &srv,
            &c.email,
            "openid patient/*.rs",
            Some("00000000-0000-4000-8000-000000000000"),
        )
        .await
        .expect_err("unknown launch");
        assert_eq!(r.status, 404, "{}", r.text);
    }
);

e2e!(
    a_patient_user_sees_their_own_compartment,
    |srv| async move {
        let c = Clinic::new(&srv).await;
        let email = format!("pat-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
        let m = invite(
            &srv,
            &c.admin,
            &c.t.project,
            &json!({"resourceType": "Patient", "firstName": "Pat", "lastName": "Ient",
            "email": email, "password": PASSWORD, "sendEmail": false}),
        )
        .await;
        let me = m["profile"]["reference"]
            .as_str()
            .unwrap()
            .strip_prefix("Patient/")
            .unwrap()
            .to_owned();
        let mine = id(&c.t.put(observation(&me, "laboratory")).await);
        // A project-scoped user signs in through the project.
        let tokens = login_tokens(
            &srv,
            json!({"email": email, "password": PASSWORD, "projectId": c.t.project,
            "scope": "openid patient/Observation.rs"}),
        )
        .await
        .expect("sign-in");
        assert_eq!(tokens["patient"], me.as_str());
        let app = Member::with_token(&srv, tokens["access_token"].as_str().unwrap());
        assert_eq!(app.ids("Observation").await, vec![mine.clone()]);
        assert_eq!(app.get(&format!("Observation/{mine}")).await.status, 200);
        assert_eq!(
            app.get(&format!("Observation/{}", c.a_lab)).await.status,
            404
        );
        // Only Observations were granted.
        assert_eq!(app.get(&format!("Patient/{me}")).await.status, 403);
    }
);

e2e!(letters_are_interactions, |srv| async move {
    let c = Clinic::new(&srv).await;
    let obs = |i: &String| format!("Observation/{i}");

    // `r` reads by id, vread and history, and cannot search.
    let r_only = signed_in(&srv, &c.email, "openid user/Observation.r", None).await;
    let read = r_only.get(&obs(&c.a_lab)).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let version = read.body["meta"]["versionId"].as_str().unwrap().to_owned();
    assert_eq!(
        r_only
            .get(&format!("{}/_history/{version}", obs(&c.a_lab)))
            .await
            .status,
        200
    );
    assert_eq!(
        r_only
            .get(&format!("{}/_history", obs(&c.a_lab)))
            .await
            .status,
        200
    );
    let r = r_only.get("Observation").await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = r_only.get(&format!("Observation?_id={}", c.a_lab)).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Nor does it reach other types.
    assert_eq!(r_only.get(&format!("Patient/{}", c.a)).await.status, 403);

    // `s` searches and cannot read by id.
    let s_only = signed_in(&srv, &c.email, "openid user/Observation.s", None).await;
    assert_eq!(s_only.ids("Observation").await.len(), 4);
    assert_eq!(s_only.get(&obs(&c.a_lab)).await.status, 403);

    // `rs` (and v1 `read`) cannot write.
    for scope in ["openid user/Observation.rs", "openid user/Observation.read"] {
        let rs = signed_in(&srv, &c.email, scope, None).await;
        assert_eq!(rs.get(&obs(&c.a_lab)).await.status, 200);
        let r = rs
            .post("Observation", &observation(&c.a, "laboratory"))
            .await;
        assert_eq!(r.status, 403, "{scope}: {}", r.text);
        let mut changed = rs.get(&obs(&c.a_lab)).await.body;
        changed["status"] = json!("amended");
        let r = rs.put(&obs(&c.a_lab), &changed).await;
        assert_eq!(r.status, 403, "{scope}: {}", r.text);
        let r = rs
            .patch(
                &obs(&c.a_lab),
                &json!([{"op": "replace", "path": "/status", "value": "amended"}]),
            )
            .await;
        assert_eq!(r.status, 403, "{scope}: {}", r.text);
        assert_eq!(rs.delete(&obs(&c.a_lab)).await.status, 403);
    }

    // `c` creates and reads nothing; `u` updates and patches; `d` deletes.
    let c_only = signed_in(&srv, &c.email, "openid user/Observation.c", None).await;
    let r = c_only
        .post("Observation", &observation(&c.a, "laboratory"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = id(&r.body);
    assert_eq!(c_only.get(&obs(&created)).await.status, 403);
    let ud = signed_in(&srv, &c.email, "openid user/Observation.rud", None).await;
    let r = ud
        .patch(
            &obs(&created),
            &json!([{"op": "replace", "path": "/status", "value": "amended"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        ud.post("Observation", &observation(&c.a, "laboratory"))
            .await
            .status,
        403
    );
    assert_eq!(ud.delete(&obs(&created)).await.status, 200);

    // v1 `write` is `cud`; `*` is everything.
    let w = signed_in(&srv, &c.email, "openid user/Observation.write", None).await;
    assert_eq!(
        w.post("Observation", &observation(&c.a, "laboratory"))
            .await
            .status,
        201
    );
    assert_eq!(w.get(&obs(&c.a_lab)).await.status, 403);
    let all = signed_in(&srv, &c.email, "openid user/*.*", None).await;
    assert_eq!(all.get(&obs(&c.a_lab)).await.status, 200);
    assert_eq!(all.get(&format!("Patient/{}", c.b)).await.status, 200);
});

e2e!(granular_scopes_hide_other_categories, |srv| async move {
    let c = Clinic::new(&srv).await;
    let lab = signed_in(
        &srv,
        &c.email,
        "openid user/Observation.rs?category=laboratory",
        None,
    )
    .await;
    assert_eq!(
        lab.ids("Observation").await,
        sorted(vec![&c.a_lab, &c.b_lab])
    );
    assert_eq!(
        lab.get(&format!("Observation/{}", c.a_lab)).await.status,
        200
    );
    assert_eq!(
        lab.get(&format!("Observation/{}", c.a_vital)).await.status,
        404
    );
    assert!(lab.ids("Observation?category=vital-signs").await.is_empty());
    // Granular and patient scopes together: this patient's laboratory results only.
    let launch = c.launch_for_a().await;
    let both = signed_in(
        &srv,
        &c.email,
        "openid launch patient/Observation.rs?category=laboratory",
        Some(&launch),
    )
    .await;
    assert_eq!(both.ids("Observation").await, vec![c.a_lab.clone()]);
    assert_eq!(
        both.get(&format!("Observation/{}", c.b_lab)).await.status,
        404
    );
    assert_eq!(
        both.get(&format!("Observation/{}", c.a_vital)).await.status,
        404
    );
    // Scopes add up: the vital signs of everyone the user sees, too.
    let wider = signed_in(
        &srv,
        &c.email,
        "openid launch patient/Observation.rs?category=laboratory user/Observation.rs?category=vital-signs",
        Some(&launch),
    )
    .await;
    assert_eq!(
        wider.ids("Observation").await,
        sorted(vec![&c.a_lab, &c.a_vital, &c.b_vital])
    );
});

e2e!(scopes_never_widen_the_policy, |srv| async move {
    let c = Clinic::new(&srv).await;
    // A user whose policy reads final Observations only.
    let email = format!("ro-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    let p =
        c.t.put(policy(
            json!([{"resourceType": "Observation", "readonly": true,
            "criteria": "Observation?category=laboratory"}]),
        ))
        .await;
    invite(
        &srv,
        &c.admin,
        &c.t.project,
        &json!({"resourceType": "Practitioner", "firstName": "Read", "lastName": "Only",
            "email": email, "password": PASSWORD, "sendEmail": false,
            "membership": {"accessPolicy": {"reference": format!("AccessPolicy/{}", id(&p))}}}),
    )
    .await;
    let app = signed_in(&srv, &email, "openid user/*.cruds", None).await;
    assert_eq!(
        app.ids("Observation").await,
        sorted(vec![&c.a_lab, &c.b_lab])
    );
    let r = app
        .post("Observation", &observation(&c.a, "laboratory"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(app.get(&format!("Patient/{}", c.a)).await.status, 403);
    assert_eq!(
        app.get(&format!("Observation/{}", c.a_vital)).await.status,
        404
    );
});

e2e!(scope_prefixes_belong_to_their_grantee, |srv| async move {
    let c = Clinic::new(&srv).await;
    // A user cannot be granted system/ scopes.
    let r = token_response(&srv, &c.email, "openid system/*.rs", None)
        .await
        .expect_err("system scope for a user");
    assert_eq!(
        r.outcome(400),
        "system/ scopes are for clients signed in with client credentials"
    );
    // A client signed in as itself is granted system/ scopes only.
    let (client, secret) = c.t.client(None).await;
    let grant = |scope: &'static str| {
        let (srv, client, secret) = (&srv, client.clone(), secret.clone());
        async move {
            form(
                srv,
                "oauth2/token",
                &[("grant_type", "client_credentials"), ("scope", scope)],
                Some((&client, &secret)),
            )
            .await
        }
    };
    for scope in [
        "user/*.rs",
        "patient/Observation.rs",
        "system/*.rs user/*.rs",
    ] {
        common::oauth_error(
            &grant(scope).await,
            400,
            "invalid_scope",
            "patient/ and user/ scopes need a signed-in user; clients use system/ scopes",
        );
    }
    let r = grant("system/Observation.rs").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let backend = Member::with_token(&srv, r.body["access_token"].as_str().unwrap());
    assert_eq!(backend.ids("Observation").await.len(), 4);
    assert_eq!(backend.get(&format!("Patient/{}", c.a)).await.status, 403);
    let r = backend
        .post("Observation", &observation(&c.a, "laboratory"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Without SMART scopes the client has its membership's whole access (Medplum).
    let r = grant("openid").await;
    let full = Member::with_token(&srv, r.body["access_token"].as_str().unwrap());
    assert_eq!(full.get(&format!("Patient/{}", c.a)).await.status, 200);
});

e2e!(
    discovery_is_truthful_and_open_to_any_origin,
    |srv| async move {
        let get = |path: &'static str| {
            let srv = &srv;
            async move {
                Resp::from(
                    srv.plain
                        .get(format!("{}{path}", srv.base))
                        .header("origin", "https://anywhere.example")
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            }
        };
        let root = get(".well-known/smart-configuration").await;
        assert_eq!(root.status, 200, "{}", root.text);
        assert_eq!(root.header("access-control-allow-origin"), Some("*"));
        let under_fhir = get("fhir/R4/.well-known/smart-configuration").await;
        assert_eq!(under_fhir.body, root.body);
        let c = &root.body;
        assert_eq!(c["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(c["token_endpoint"], format!("{}oauth2/token", srv.base));
        assert_eq!(
            c["authorization_endpoint"],
            format!("{}oauth2/authorize", srv.base)
        );
        for grant in ["authorization_code", "client_credentials", "refresh_token"] {
            assert!(
                c["grant_types_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(grant))
            );
        }
        for capability in [
            "launch-ehr",
            "launch-standalone",
            "permission-v1",
            "permission-v2",
            "permission-patient",
            "client-confidential-asymmetric",
            "context-ehr-patient",
        ] {
            assert!(
                c["capabilities"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(capability)),
                "{capability}"
            );
        }
        assert!(
            c["token_endpoint_auth_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("ES384"))
        );
        // The CapabilityStatement names the same endpoints.
        let metadata = get("fhir/R4/metadata").await;
        assert_eq!(metadata.header("access-control-allow-origin"), Some("*"));
        let security = &metadata.body["rest"][0]["security"];
        assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
        let uris = &security["extension"][0];
        assert_eq!(
            uris["url"],
            "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
        );
        let uri = |name: &str| {
            uris["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["url"] == name)
                .map(|e| e["valueUri"].clone())
        };
        assert_eq!(uri("token"), Some(c["token_endpoint"].clone()));
        assert_eq!(uri("authorize"), Some(c["authorization_endpoint"].clone()));
        // The style a token response points to is there.
        let styles = get("fhir/R4/.well-known/smart-styles.json").await;
        assert_eq!(styles.status, 200);
        assert!(styles.body["color_background"].is_string());
    }
);

e2e!(cors_follows_the_clients_allowed_origin, |srv| async move {
    let t = Tenant::new(&srv).await;
    let secret = format!("secret-{}", oxmed_repo::meta::new_id());
    let client = id(&t
        .put(
            json!({"resourceType": "ClientApplication", "name": "app", "secret": secret,
            "allowedOrigin": ["https://app.example"]}),
        )
        .await);
    t.put(
        json!({"resourceType": "ProjectMembership", "project": t.reference(),
        "user": {"reference": format!("ClientApplication/{client}")},
        "profile": {"reference": format!("ClientApplication/{client}")}}),
    )
    .await;
    let token_from = |origin: &'static str| {
        let (srv, client, secret) = (&srv, client.clone(), secret.clone());
        async move {
            Resp::from(
                srv.plain
                    .post(format!("{}oauth2/token", srv.base))
                    .header("origin", origin)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", client.as_str()),
                        ("client_secret", secret.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let r = token_from("https://app.example").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let r = token_from("https://evil.example").await;
    assert_eq!(
        r.status, 200,
        "the request itself is not refused: {}",
        r.text
    );
    assert_eq!(r.header("access-control-allow-origin"), None);

    let fhir_from = |origin: &'static str| {
        let (srv, token) = (&srv, token.clone());
        async move {
            Resp::from(
                srv.plain
                    .get(srv.url("Patient"))
                    .bearer_auth(token)
                    .header("origin", origin)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let r = fhir_from("https://app.example").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        r.header("access-control-expose-headers")
            .is_some_and(|h| h.contains("Location"))
    );
    assert_eq!(
        fhir_from("https://evil.example")
            .await
            .header("access-control-allow-origin"),
        None
    );
    // A preflight lets the request be sent; reading its answer is what the client decides.
    let r = Resp::from(
        srv.plain
            .request(reqwest::Method::OPTIONS, srv.url("Patient"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        r.header("access-control-allow-headers")
            .is_some_and(|h| h.contains("Authorization"))
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);
    // The sign-in API is same-origin only.
    let r = Resp::from(
        srv.plain
            .post(format!("{}auth/login", srv.base))
            .header("origin", "https://app.example")
            .json(&json!({"email": "x@example.org", "password": "whatever"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
});
