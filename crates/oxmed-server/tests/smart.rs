//! SMART on FHIR scopes enforced (spec §12; issue 7 point 1), over HTTP on both backends: the
//! letters are interactions, `patient/` scopes see the patient in context only, granular
//! `?category=` scopes hide the rest from search and read, scopes never widen a policy, and
//! the context prefixes belong to their grantee. Every allow is tested with its denial.

mod common;

use common::tenant::{Member, Tenant, id, ids_of, policy};
use common::{Resp, TestServer, form, json_post, login_tokens};
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

    /// Invites another Practitioner who signs in with [`PASSWORD`], with these invite fields
    /// besides (`admin`, `mfaRequired`, `membership`); the email.
    async fn practitioner(&self, extra: Value) -> String {
        let email = format!("user-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
        let mut body = json!({"resourceType": "Practitioner", "firstName": "Other",
            "lastName": "Member", "email": email, "password": PASSWORD, "sendEmail": false});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        invite(self.t.srv, &self.admin, &self.t.project, &body).await;
        email
    }

    /// A Practitioner whose membership has this AccessPolicy; the email.
    async fn member_with(&self, access_policy: Value) -> String {
        let p = id(&self.t.put(policy(access_policy)).await);
        self.practitioner(json!({"membership":
            {"accessPolicy": {"reference": format!("AccessPolicy/{p}")}}}))
            .await
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
    // Nor does it reach other types, the server's default SearchParameter and
    // StructureDefinition reads included (spec §12.2).
    assert_eq!(r_only.get(&format!("Patient/{}", c.a)).await.status, 403);
    assert_eq!(r_only.get("SearchParameter").await.status, 403);
    assert_eq!(r_only.get("StructureDefinition").await.status, 403);
    // A word shaped like a resource scope that does not parse is refused, not ignored
    // (ignored, it would leave no resource scope: the whole policy).
    for bad in [
        "user/Observation.sdurc",
        "user/Observation.chum",
        "patient/*.c*",
    ] {
        let r = token_response(&srv, &c.email, &format!("openid {bad}"), None)
            .await
            .expect_err("a malformed scope");
        assert_eq!(r.outcome(400), format!("Invalid scope: {bad}"));
    }

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
    // A user whose policy reads laboratory Observations only.
    let email = c
        .member_with(json!([{"resourceType": "Observation", "readonly": true,
            "criteria": "Observation?category=laboratory"}]))
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

e2e!(
    standalone_launch_picks_a_patient_the_user_may_see,
    |srv| async move {
        let c = Clinic::new(&srv).await;
        let start = |email: &str| {
            let (srv, email) = (&srv, email.to_owned());
            async move {
                let (verifier, challenge) = common::pkce_pair();
                let r = json_post(
                    srv,
                    "auth/login",
                    &json!({"email": email, "password": PASSWORD,
                    "scope": "openid launch/patient patient/*.rs",
                    "codeChallenge": challenge, "codeChallengeMethod": "S256"}),
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.text);
                (r, verifier)
            }
        };
        let choose = |login: &str, patient: &str| {
            let (srv, body) = (&srv, json!({"login": login, "patient": patient}));
            async move { json_post(srv, "auth/patient", &body).await }
        };
        // The login stops for the patient instead of giving a code.
        let (r, verifier) = start(&c.email).await;
        assert_eq!(r.body["patientRequired"], true, "{}", r.text);
        assert!(r.body.get("code").is_none());
        let login = r.body["login"].as_str().unwrap().to_owned();
        // Someone of another project is not to be chosen.
        let other = Tenant::new(&srv).await;
        let stranger = id(&other
            .put(json!({"resourceType": "Patient", "name": [{"family": "Else"}]}))
            .await);
        assert_eq!(
            choose(&login, &stranger).await.outcome(400),
            "Patient not found"
        );
        assert_eq!(
            choose(&login, "not an id").await.outcome(400),
            "Patient not found"
        );
        let r = choose(&login, &format!("Patient/{}", c.b)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let code = r.body["code"].as_str().expect("a code").to_owned();
        assert_eq!(
            choose(&login, &c.a).await.outcome(400),
            "Patient already chosen"
        );
        let tokens = form(
            &srv,
            "oauth2/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await;
        assert_eq!(tokens.status, 200, "{}", tokens.text);
        assert_eq!(tokens.body["patient"], c.b.as_str());
        let app = Member::with_token(&srv, tokens.body["access_token"].as_str().unwrap());
        assert_eq!(
            app.ids("Observation").await,
            sorted(vec![&c.b_lab, &c.b_vital])
        );
        assert_eq!(
            app.get(&format!("Observation/{}", c.a_lab)).await.status,
            404
        );

        // A member whose policy hides patient A cannot pick A.
        let email = c
            .member_with(json!([{"resourceType": "Patient",
                "criteria": format!("Patient?_id={}", c.b)}, {"resourceType": "Observation"}]))
            .await;
        let (r, _) = start(&email).await;
        let login = r.body["login"].as_str().unwrap().to_owned();
        assert_eq!(choose(&login, &c.a).await.outcome(400), "Patient not found");
        assert_eq!(choose(&login, &c.b).await.status, 200);
        // Nor does an EHR launch about A give that member A's context.
        let launch = c.launch_for_a().await;
        let tokens = token_response(&srv, &email, "openid launch patient/*.rs", Some(&launch))
            .await
            .expect("sign-in");
        assert!(tokens.get("patient").is_none(), "{tokens}");
        let app = Member::with_token(&srv, tokens["access_token"].as_str().unwrap());
        assert!(
            app.get("Observation").await.body["entry"]
                .as_array()
                .is_none_or(Vec::is_empty)
        );

        // A Patient's own sign-in needs no choice: they are the context.
        let patient_email = format!("self-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
        invite(
            &srv,
            &c.admin,
            &c.t.project,
            &json!({"resourceType": "Patient", "firstName": "Self", "lastName": "Care",
            "email": patient_email, "password": PASSWORD, "sendEmail": false}),
        )
        .await;
        let tokens = login_tokens(
            &srv,
            json!({"email": patient_email, "password": PASSWORD, "projectId": c.t.project,
            "scope": "openid launch/patient patient/*.rs"}),
        )
        .await
        .expect("a patient's sign-in goes straight to a code");
        assert!(tokens["patient"].is_string());
    }
);

e2e!(narrowing_never_reaches_the_whole_policy, |srv| async move {
    let c = Clinic::new(&srv).await;
    let r = json_post(
        &srv,
        "auth/login",
        &json!({"email": c.email, "password": PASSWORD,
            "scope": "openid user/Observation.rs user/Patient.rs"}),
    )
    .await;
    let login = r.body["login"].as_str().unwrap().to_owned();
    let narrow = |scope: &'static str| {
        let (srv, login) = (&srv, login.clone());
        async move { json_post(srv, "auth/scope", &json!({"login": login, "scope": scope})).await }
    };
    // Dropping every resource scope would leave "openid": the member's whole access.
    assert_eq!(narrow("openid").await.outcome(400), "Invalid scope");
    assert_eq!(
        narrow("openid user/Observation.rs user/Encounter.rs")
            .await
            .outcome(400),
        "Invalid scope"
    );
    let r = narrow("openid user/Observation.r").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["code"].is_string());
});

/// A new private key made by `openssl genpkey` with these options, as PEM.
fn openssl_key(options: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .arg("genpkey")
        .args(options)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

e2e!(
    backend_services_sign_with_rs384_and_es384,
    |srv| async move {
        use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
        let c = Clinic::new(&srv).await;
        let keys = [
            (
                Algorithm::RS384,
                EncodingKey::from_rsa_pem(&openssl_key(&[
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ]))
                .unwrap(),
            ),
            (
                Algorithm::ES384,
                EncodingKey::from_ec_pem(&openssl_key(&[
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-384",
                ]))
                .unwrap(),
            ),
        ];
        let token_url = format!("{}oauth2/token", srv.base);
        for (alg, key) in keys {
            let kid = format!("{alg:?}-key");
            let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
            jwk.common.key_id = Some(kid.clone());
            let jwks_uri = common::serve_json(json!({"keys": [jwk]}).to_string()).await;
            let client = id(&c
                .t
                .put(
                    json!({"resourceType": "ClientApplication", "name": "Backend",
                "jwksUri": jwks_uri}),
                )
                .await);
            c.t.put(
                json!({"resourceType": "ProjectMembership", "project": c.t.reference(),
            "user": {"reference": format!("ClientApplication/{client}")},
            "profile": {"reference": format!("ClientApplication/{client}")}}),
            )
            .await;
            let grant = |scope: &'static str| {
                let mut header = Header::new(alg);
                header.kid = Some(kid.clone());
                let now = oxmed_auth::jwt::unix_now();
                let assertion = jsonwebtoken::encode(
                    &header,
                    &json!({"iss": client, "sub": client, "aud": token_url, "iat": now,
                    "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string()}),
                    &key,
                )
                .unwrap();
                let srv = &srv;
                async move {
                    form(
                        srv,
                        "oauth2/token",
                        &[
                            ("grant_type", "client_credentials"),
                            (
                                "client_assertion_type",
                                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                            ),
                            ("client_assertion", &assertion),
                            ("scope", scope),
                        ],
                        None,
                    )
                    .await
                }
            };
            let r = grant("system/Observation.rs").await;
            assert_eq!(r.status, 200, "{alg:?}: {}", r.text);
            assert_eq!(r.body["scope"], "system/Observation.rs");
            let backend = Member::with_token(&srv, r.body["access_token"].as_str().unwrap());
            assert_eq!(backend.ids("Observation").await.len(), 4, "{alg:?}");
            assert_eq!(
                backend.get(&format!("Patient/{}", c.a)).await.status,
                403,
                "{alg:?}"
            );
            let r = grant("patient/*.rs").await;
            assert_eq!(r.status, 400, "{alg:?}: {}", r.text);
            assert_eq!(r.body["error"], "invalid_scope");
        }
    }
);

e2e!(a_scoped_token_has_no_admin_powers, |srv| async move {
    let c = Clinic::new(&srv).await;
    let admin_call = |token: String, headers: Vec<(&'static str, String)>| {
        let (srv, project) = (&srv, c.t.project.clone());
        async move {
            let mut req = srv
                .plain
                .get(format!("{}admin/projects/{project}", srv.base))
                .bearer_auth(token);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    // The admin client without SMART scopes is an admin; with them it is an app.
    let grant = |scope: &'static str| {
        let (srv, id, secret) = (&srv, c.admin.client_id.clone(), c.admin.secret.clone());
        async move {
            let r = form(
                srv,
                "oauth2/token",
                &[("grant_type", "client_credentials"), ("scope", scope)],
                Some((&id, &secret)),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body["access_token"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(admin_call(grant("openid").await, vec![]).await, 200);
    let scoped = grant("system/*.rs").await;
    assert_eq!(admin_call(scoped.clone(), vec![]).await, 403);
    // Nor can it act for a member whose policy is wider than its scopes.
    let obo = Member::with_token(&srv, &scoped)
        .call_with(
            reqwest::Method::POST,
            "Observation",
            Some(&observation(&c.a, "laboratory")),
            &[(
                "x-medplum-on-behalf-of",
                &format!("ProjectMembership/{}", c.admin.membership),
            )],
        )
        .await;
    assert_eq!(obo.status, 403, "{}", obo.text);
    // It still reads within its scopes.
    assert_eq!(
        Member::with_token(&srv, &scoped)
            .ids("Observation")
            .await
            .len(),
        4
    );

    // A user admin's app likewise.
    let email = c.practitioner(json!({"admin": true})).await;
    let full = token_response(&srv, &email, "openid", None).await.unwrap();
    assert_eq!(
        admin_call(full["access_token"].as_str().unwrap().to_owned(), vec![]).await,
        200
    );
    let app = token_response(&srv, &email, "openid user/*.cruds", None)
        .await
        .unwrap();
    assert_eq!(
        admin_call(app["access_token"].as_str().unwrap().to_owned(), vec![]).await,
        403
    );
});

e2e!(
    the_patient_picker_waits_for_the_second_factor,
    |srv| async move {
        let c = Clinic::new(&srv).await;
        let email = c.practitioner(json!({"mfaRequired": true})).await;
        // Signs in with this scope and tries to pick patient A: the two answers.
        let pick = |email: String, scope: &'static str| {
            let (srv, a) = (&srv, c.a.clone());
            async move {
                let login = json_post(
                    srv,
                    "auth/login",
                    &json!({"email": email, "password": PASSWORD, "scope": scope}),
                )
                .await;
                let id = login.body["login"].as_str().unwrap_or_default().to_owned();
                let pick =
                    json_post(srv, "auth/patient", &json!({"login": id, "patient": a})).await;
                (login, pick)
            }
        };
        let (login, r) = pick(email, "openid launch/patient patient/*.rs").await;
        assert_eq!(login.body["mfaEnrollRequired"], true, "{}", login.text);
        assert_eq!(r.outcome(400), "Login requires MFA");
        // A login that did not ask for a patient cannot pick one.
        let (_, r) = pick(c.email.clone(), "openid patient/*.rs").await;
        assert_eq!(r.outcome(400), "Patient not requested");
    }
);
