//! The project admin API (spec §13.1, §7.5, §8.7; issue 6 point 1), over HTTP on both backends:
//! invites with their upsert and conflict rules, external ids, members read, updated and
//! removed. Every permission is tested with its denial, including attempts on another project.

mod common;

use common::tenant::{Member, Tenant, id};
use common::{Resp, TestServer, fhir_post_as, sign_in};
use oxmed_auth::{LoginRequest, VerifiedIdentity, VerifiedMethod};
use serde_json::{Value, json};

/// A request to `/admin/projects/...` with this bearer token.
async fn admin_call(
    srv: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Resp {
    let mut req = srv
        .plain
        .request(method, format!("{}admin/projects/{path}", srv.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    Resp::from(req.send().await.expect("request")).await
}

async fn get_as(srv: &TestServer, token: &str, path: &str) -> Resp {
    admin_call(srv, token, reqwest::Method::GET, path, None).await
}

async fn delete_as(srv: &TestServer, token: &str, path: &str) -> Resp {
    admin_call(srv, token, reqwest::Method::DELETE, path, None).await
}

async fn post_as(srv: &TestServer, token: &str, path: &str, body: &Value) -> Resp {
    admin_call(srv, token, reqwest::Method::POST, path, Some(body)).await
}

async fn invite(srv: &TestServer, token: &str, project: &str, body: &Value) -> Resp {
    post_as(srv, token, &format!("{project}/invite"), body).await
}

fn practitioner(email: &str) -> Value {
    json!({"resourceType": "Practitioner", "firstName": "Ada", "lastName": "Lovelace",
        "email": email, "password": "correct-horse-battery"})
}

/// Users with this email, in every project (as the super admin sees them).
async fn users_with(srv: &TestServer, email: &str) -> usize {
    let r = srv.get(&format!("User?email={email}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["entry"].as_array().map_or(0, Vec::len)
}

fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.org", &oxmed_repo::meta::new_id()[24..])
}

e2e!(invite_makes_a_member_who_can_sign_in, |srv| async move {
    let t = Tenant::new(&srv).await;
    let admin = t.member(None, json!([]), true).await;
    let plain = t.member(None, json!([]), false).await;
    let email = unique_email("ada");

    // Only an admin of the project may invite or read it.
    let r = invite(&srv, &plain.token, &t.project, &practitioner(&email)).await;
    assert_eq!(r.outcome(403), "Forbidden");
    let r = get_as(&srv, &plain.token, &t.project).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(users_with(&srv, &email).await, 0);

    let r = get_as(&srv, &admin.token, &t.project).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["project"]["id"], t.project.as_str());
    assert_eq!(r.body["project"]["name"], "Clinic");

    let r = invite(
        &srv,
        &admin.token,
        &t.project,
        &practitioner(&email.to_uppercase()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let membership = r.body.clone();
    assert_eq!(membership["resourceType"], "ProjectMembership");
    assert_eq!(
        membership["project"]["reference"],
        format!("Project/{}", t.project)
    );
    assert!(
        membership["user"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("User/")
    );
    let profile = membership["profile"]["reference"].as_str().unwrap();
    assert!(profile.starts_with("Practitioner/"), "{profile}");
    assert_eq!(membership["profile"]["display"], "Ada Lovelace");
    assert_eq!(users_with(&srv, &email).await, 1);
    // The profile is in the project, with the email (lower-cased) as its telecom.
    let p = srv.get(profile).await;
    assert_eq!(p.body["telecom"][0]["value"], email.as_str());
    assert_eq!(p.body["name"][0]["family"], "Lovelace");

    // The invited person signs in with the password and lands in the project.
    let token = sign_in(&srv.plain, &srv.base, &email, "correct-horse-battery").await;
    let me: Value = srv
        .plain
        .get(format!("{}auth/me", srv.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["project"]["id"], t.project.as_str());
    assert_eq!(me["membership"]["id"], membership["id"]);

    // Inviting them again: already a member; with upsert the membership is updated in place.
    let r = invite(&srv, &admin.token, &t.project, &practitioner(&email)).await;
    assert_eq!(r.outcome(409), "User is already a member of this project");
    let mut again = practitioner(&email);
    again["upsert"] = json!(true);
    // Identity and bookkeeping in the body are ignored: the same membership is updated.
    again["membership"] = json!({"admin": true, "id": "00000000-0000-4000-8000-00000000c0de",
        "meta": {"accounts": [{"reference": "Organization/x"}]}});
    let r = invite(&srv, &admin.token, &t.project, &again).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], membership["id"]);
    assert_eq!(r.body["admin"], true);
    assert!(r.body["meta"].get("accounts").is_none(), "{}", r.text);
    assert_eq!(r.body["profile"]["reference"], profile);
    // ...but not to another profile.
    let other = t
        .put(json!({"resourceType": "Practitioner", "name": [{"family": "Other"}]}))
        .await;
    again["membership"] = json!({"profile": {"reference": format!("Practitioner/{}", id(&other))}});
    let r = invite(&srv, &admin.token, &t.project, &again).await;
    assert_eq!(
        r.outcome(409),
        "User is already a member of this project with a different profile"
    );
    assert_eq!(users_with(&srv, &email).await, 1);

    // A Patient invite makes a project-scoped user; the same email already belongs to a
    // server-scoped member of this project.
    let mut patient = practitioner(&email);
    patient["resourceType"] = json!("Patient");
    let r = invite(&srv, &admin.token, &t.project, &patient).await;
    assert_eq!(r.outcome(409), "User is already a member of this project");
    let patient_email = unique_email("pat");
    patient["email"] = json!(patient_email);
    let r = invite(&srv, &admin.token, &t.project, &patient).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let user = srv.get(r.body["user"]["reference"].as_str().unwrap()).await;
    assert_eq!(
        user.body["project"]["reference"],
        format!("Project/{}", t.project)
    );
    assert!(user.body.get("passwordHash").is_none(), "{}", user.text);

    // An invite may require MFA: the person must enrol an authenticator at first sign-in.
    let mfa_email = unique_email("mfa");
    let mut mfa = practitioner(&mfa_email);
    mfa["mfaRequired"] = json!(true);
    let r = invite(&srv, &admin.token, &t.project, &mfa).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let login = common::json_post(
        &srv,
        "auth/login",
        &json!({"email": mfa_email, "password": "correct-horse-battery",
            "codeChallenge": "x".repeat(43), "codeChallengeMethod": "S256"}),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.body["mfaEnrollRequired"], true, "{}", login.text);
    assert!(login.body.get("code").is_none());

    // The super admin invites into any project by its id.
    let r = invite(
        &srv,
        &srv.token,
        &t.project,
        &practitioner(&unique_email("sa")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["project"]["reference"],
        format!("Project/{}", t.project)
    );
});

e2e!(
    invite_refuses_bad_input_and_other_projects,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let other = Tenant::new(&srv).await;
        let admin = t.member(None, json!([]), true).await;
        let email = unique_email("bad");
        let own_policy = t
            .put(json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient"}]}))
            .await;
        let foreign_policy = other
            .put(json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient"}]}))
            .await;
        let with = |field: &str, value: Value| {
            let mut b = practitioner(&email);
            b[field] = value;
            b
        };
        let without = |field: &str| {
            let mut b = practitioner(&email);
            b.as_object_mut().unwrap().remove(field);
            b
        };
        let cases = [
            (without("resourceType"), "Resource type is required"),
            (
                with("resourceType", json!("Observation")),
                "Resource type must be Patient, Practitioner or RelatedPerson",
            ),
            (without("firstName"), "First name is required"),
            (with("lastName", json!("  ")), "Last name is required"),
            (
                with("email", json!("not-an-email")),
                "Valid email address is required",
            ),
            (with("externalId", json!("")), "External ID cannot be empty"),
            (without("email"), "Either email or externalId is required"),
            (
                with("firstName", json!("x".repeat(129))),
                "First name must be at most 128 characters",
            ),
            (
                with("password", json!("short")),
                "Password must be between 8 and 72 characters",
            ),
            (
                with(
                    "membership",
                    json!({"access": [{"policy": {"reference": "AccessPolicy/00000000-0000-0000-0000-00000000dead"}}]}),
                ),
                "Access policy AccessPolicy/00000000-0000-0000-0000-00000000dead does not exist",
            ),
            (
                with(
                    "membership",
                    json!({"accessPolicy": {"reference": format!("AccessPolicy/{}", id(&foreign_policy))}}),
                ),
                &*format!(
                    "Access policy AccessPolicy/{} does not belong to this project",
                    id(&foreign_policy)
                )
                .leak(),
            ),
            (
                with(
                    "membership",
                    json!({"profile": {"reference": format!("Practitioner/{}", id(&other_admin_profile(&other).await))}}),
                ),
                "Profile does not belong to project",
            ),
        ];
        for (body, message) in cases {
            let r = invite(&srv, &admin.token, &t.project, &body).await;
            assert_eq!(r.outcome(400), message, "{body}");
        }
        let patient = t.put(json!({"resourceType": "Patient"})).await;
        let r = invite(
            &srv,
            &admin.token,
            &t.project,
            &with(
                "membership",
                json!({"profile": {"reference": format!("Patient/{}", id(&patient))}}),
            ),
        )
        .await;
        assert_eq!(
            r.outcome(400),
            "Profile resourceType does not match request"
        );
        let r = srv
            .plain
            .post(format!("{}admin/projects/{}/invite", srv.base, t.project))
            .bearer_auth(&admin.token)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        // Nothing of the refused invites was written.
        assert_eq!(users_with(&srv, &email).await, 0);

        // An admin of one project cannot invite into, or read, another.
        let r = invite(&srv, &admin.token, &other.project, &practitioner(&email)).await;
        assert_eq!(r.outcome(404), "Not found");
        let r = get_as(&srv, &admin.token, &other.project).await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = invite(
            &srv,
            &srv.token,
            "00000000-0000-0000-0000-00000000beef",
            &practitioner(&email),
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.text);
        assert_eq!(users_with(&srv, &email).await, 0);

        // With the project's own policy it works, and the membership names it.
        let r = invite(
        &srv,
        &admin.token,
        &t.project,
        &with(
            "membership",
            json!({"access": [{"policy": {"reference": format!("AccessPolicy/{}", id(&own_policy))}}]}),
        ),
    )
    .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body["access"][0]["policy"]["reference"],
            format!("AccessPolicy/{}", id(&own_policy))
        );
    }
);

/// A Practitioner of `t`'s project.
async fn other_admin_profile(t: &Tenant<'_>) -> Value {
    t.put(json!({"resourceType": "Practitioner", "name": [{"family": "Elsewhere"}]}))
        .await
}

e2e!(external_ids_are_unique_per_project, |srv| async move {
    let t = Tenant::new(&srv).await;
    let other = Tenant::new(&srv).await;
    let admin = t.member(None, json!([]), true).await;
    let other_admin = other.member(None, json!([]), true).await;
    let body = json!({"resourceType": "Patient", "firstName": "Ext", "lastName": "Ernal",
        "externalId": "auth0-1234"});
    let r = invite(&srv, &admin.token, &t.project, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["externalId"], "auth0-1234");
    let first = r.body["id"].as_str().unwrap().to_owned();
    // The user is project-scoped even without an email.
    let user = srv.get(r.body["user"]["reference"].as_str().unwrap()).await;
    assert_eq!(
        user.body["project"]["reference"],
        format!("Project/{}", t.project)
    );

    let r = invite(&srv, &admin.token, &t.project, &body).await;
    assert!(r.outcome(409).contains("already exists"), "{}", r.text);
    // Another project has its own external ids.
    let r = invite(&srv, &other_admin.token, &other.project, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let theirs = r.body["id"].as_str().unwrap().to_owned();
    // Each admin looks a member up by external id, and finds only their own project's.
    let found = admin.ids("ProjectMembership?external-id=auth0-1234").await;
    assert_eq!(found, vec![first.clone()]);
    let found = other_admin
        .ids("ProjectMembership?external-id=auth0-1234")
        .await;
    assert_eq!(found, vec![theirs]);
    assert!(
        admin
            .ids("ProjectMembership?external-id=nobody")
            .await
            .is_empty()
    );

    // Once the membership is gone, the external id can be used again.
    let r = delete_as(
        &srv,
        &admin.token,
        &format!("{}/members/{first}", t.project),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = invite(&srv, &admin.token, &t.project, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
});

/// A login the way a federation endpoint makes it once an identity provider vouched for the
/// person (spec §4.1, §7.5): through `Auth::verified_login`, with the client's PKCE.
async fn verified_login(
    srv: &TestServer,
    client: Option<&str>,
    project: Option<&str>,
    email: Option<&str>,
    external_id: Option<&str>,
) -> Result<(String, String), String> {
    let (verifier, challenge) = common::pkce_pair();
    let req = LoginRequest {
        client_id: client.map(str::to_owned),
        project_id: project.map(str::to_owned),
        scope: Some("openid".into()),
        code_challenge: Some(challenge),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    };
    let identity = VerifiedIdentity {
        email: email.map(str::to_owned),
        external_id: external_id.map(str::to_owned),
    };
    match srv
        .auth
        .verified_login(&req, VerifiedMethod::External, &identity)
        .await
    {
        Ok(result) => Ok((
            result.body["code"]
                .as_str()
                .unwrap_or_else(|| panic!("no code in {}", result.body))
                .to_owned(),
            verifier,
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The access token a code is exchanged for by `client` with its PKCE verifier.
async fn redeem(srv: &TestServer, client: &str, (code, verifier): (String, String)) -> String {
    let r = common::form(
        srv,
        "oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", client),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

e2e!(
    verified_logins_find_members_by_external_id,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let other = Tenant::new(&srv).await;
        let admin = t.member(None, json!([]), true).await;
        let other_admin = other.member(None, json!([]), true).await;
        let (client, _) = t.client(None).await;
        let (other_client, _) = other.client(None).await;
        let subject = format!("idp-{}", &oxmed_repo::meta::new_id()[24..]);
        let body = json!({"resourceType": "Patient", "firstName": "Sub", "lastName": "Ject",
        "externalId": subject});
        let r = invite(&srv, &admin.token, &t.project, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let ours = r.body["profile"]["reference"].as_str().unwrap().to_owned();
        let membership = r.body["id"].as_str().unwrap().to_owned();
        // The same subject in another project is another person.
        let r = invite(&srv, &other_admin.token, &other.project, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let theirs = r.body["profile"]["reference"].as_str().unwrap().to_owned();
        assert_ne!(ours, theirs);

        // Through each project's client, the subject signs in as that project's member.
        for (client, profile) in [(&client, &ours), (&other_client, &theirs)] {
            let code = verified_login(&srv, Some(client), None, None, Some(&subject))
                .await
                .expect("external id login");
            let token = redeem(&srv, client, code).await;
            let me = common::me(&srv, &token).await;
            assert_eq!(
                format!("Patient/{}", me["profile"]["id"].as_str().unwrap()),
                *profile,
                "{me}"
            );
            let session = &me["security"]["sessions"][0];
            assert_eq!(session["authMethod"], "external", "{me}");
        }

        // Denials: an unknown subject, a subject another project knows, a login with no project,
        // a project other than the client's, and no identity at all.
        let err = |r: Result<(String, String), String>| r.expect_err("must be refused");
        assert_eq!(
            err(verified_login(&srv, Some(&client), None, None, Some("nobody")).await),
            "User not found"
        );
        let only_theirs = json!({"resourceType": "Patient", "firstName": "Else", "lastName": "Where",
        "externalId": format!("{subject}-b")});
        let r = invite(&srv, &other_admin.token, &other.project, &only_theirs).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let b = format!("{subject}-b");
        assert_eq!(
            err(verified_login(&srv, Some(&client), None, None, Some(&b)).await),
            "User not found"
        );
        assert!(
            verified_login(&srv, Some(&other_client), None, None, Some(&b))
                .await
                .is_ok()
        );
        assert_eq!(
            err(verified_login(&srv, None, None, None, Some(&subject)).await),
            "Project ID is required for external ID"
        );
        // The project is the client's, never one the request names.
        assert_eq!(
            err(verified_login(&srv, None, Some(&t.project), None, Some(&subject)).await),
            "Project ID is required for external ID"
        );
        assert_eq!(
            err(verified_login(
                &srv,
                Some(&client),
                Some(&other.project),
                None,
                Some(&subject)
            )
            .await),
            "Invalid projectId"
        );
        assert_eq!(
            err(verified_login(&srv, Some(&client), None, None, None).await),
            "Missing email or externalId"
        );
        // External ids match exactly: a prefix or another case is someone else.
        assert_eq!(
            err(verified_login(&srv, Some(&client), None, None, Some(&subject[..6])).await),
            "User not found"
        );
        assert_eq!(
            err(verified_login(
                &srv,
                Some(&client),
                None,
                None,
                Some(&subject.to_uppercase())
            )
            .await),
            "User not found"
        );

        // The legacy place for the id, a project-scoped User's `externalId`, is looked at second.
        let legacy = format!("{subject}-legacy");
        let user = t
            .put(
                json!({"resourceType": "User", "firstName": "Old", "lastName": "Style",
            "project": t.reference(), "externalId": legacy}),
            )
            .await;
        let patient = t
            .put(json!({"resourceType": "Patient", "name": [{"family": "Style"}]}))
            .await;
        t.put(
            json!({"resourceType": "ProjectMembership", "project": t.reference(),
        "user": {"reference": format!("User/{}", id(&user))},
        "profile": {"reference": format!("Patient/{}", id(&patient))}}),
        )
        .await;
        let code = verified_login(&srv, Some(&client), None, None, Some(&legacy))
            .await
            .expect("legacy external id login");
        let token = redeem(&srv, &client, code).await;
        assert_eq!(
            common::me(&srv, &token).await["profile"]["id"],
            id(&patient)
        );

        // A verified email finds the user the way a password login does.
        let email = unique_email("verified");
        let r = invite(&srv, &admin.token, &t.project, &practitioner(&email)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let code = verified_login(&srv, Some(&client), None, Some(&email), None)
            .await
            .expect("email login");
        let token = redeem(&srv, &client, code).await;
        assert_eq!(
            common::me(&srv, &token).await["profile"]["id"].as_str(),
            r.body["profile"]["reference"]
                .as_str()
                .and_then(|p| p.strip_prefix("Practitioner/"))
        );

        // Once the membership is removed, the subject no longer signs in.
        let r = delete_as(
            &srv,
            &admin.token,
            &format!("{}/members/{membership}", t.project),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            err(verified_login(&srv, Some(&client), None, None, Some(&subject)).await),
            "User not found"
        );
    }
);

e2e!(
    members_are_read_updated_and_removed_by_admins_only,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let other = Tenant::new(&srv).await;
        let admin = t.member(None, json!([]), true).await;
        let plain: Member = t.member(None, json!([]), false).await;
        let stranger = other.member(None, json!([]), false).await;
        let path = |m: &str| format!("{}/members/{m}", t.project);

        let r = get_as(&srv, &admin.token, &path(&plain.membership)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["id"], plain.membership.as_str());
        let mut membership = r.body.clone();
        // Not for a non-admin; not a membership of another project.
        let r = get_as(&srv, &plain.token, &path(&plain.membership)).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = get_as(&srv, &admin.token, &path(&stranger.membership)).await;
        assert_eq!(r.status, 404, "{}", r.text);

        // An update must carry the membership's own id; project and user stay as they were.
        membership["admin"] = json!(true);
        membership["project"] = json!({"reference": format!("Project/{}", other.project)});
        let r = post_as(&srv, &admin.token, &path(&stranger.membership), &membership).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = post_as(&srv, &admin.token, &path(&plain.membership), &membership).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["admin"], true);
        assert_eq!(
            r.body["project"]["reference"],
            format!("Project/{}", t.project)
        );
        // A member of another project, admin or not, cannot touch this project's members.
        let r = delete_as(&srv, &stranger.token, &path(&plain.membership)).await;
        assert_eq!(r.status, 403, "{}", r.text);

        // The owner's membership cannot be removed.
        let email = unique_email("owner");
        let owner = invite(&srv, &admin.token, &t.project, &practitioner(&email)).await;
        assert_eq!(owner.status, 200, "{}", owner.text);
        oxmed_auth::records::put(
            srv.auth.repo(),
            &t.project,
            json!({"resourceType": "Project", "id": t.project, "name": "Clinic",
            "owner": owner.body["user"]}),
        )
        .await
        .unwrap();
        let owner_membership = owner.body["id"].as_str().unwrap();
        let r = delete_as(&srv, &admin.token, &path(owner_membership)).await;
        assert_eq!(r.outcome(400), "Cannot delete the owner of the project");

        // Removing a member ends its access; an unknown or foreign membership is 404.
        let r = delete_as(&srv, &admin.token, &path(&stranger.membership)).await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = delete_as(&srv, &admin.token, &path(&plain.membership)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["id"], "ok");
        assert_eq!(plain.get("Patient").await.status, 401);
        let r = get_as(&srv, &admin.token, &path(&plain.membership)).await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = delete_as(&srv, &admin.token, &path(&plain.membership)).await;
        assert_eq!(r.status, 404, "{}", r.text);
        // The other project's member still works.
        assert_eq!(stranger.get("Patient").await.status, 200);
    }
);

/// A FHIR `Parameters` body of string parameters.
fn parameters(pairs: &[(&str, &str)]) -> Value {
    json!({"resourceType": "Parameters", "parameter": pairs.iter()
        .map(|(k, v)| json!({"name": k, "valueString": v})).collect::<Vec<_>>()})
}

async fn client_token_status(srv: &TestServer, id: &str, secret: &str) -> u16 {
    common::tenant::token_response(srv, id, secret).await.status
}

e2e!(
    clients_are_made_and_their_secrets_rotated,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let other = Tenant::new(&srv).await;
        let admin = t.member(None, json!([]), true).await;
        let plain = t.member(None, json!([]), false).await;
        let other_admin = other.member(None, json!([]), true).await;
        let patients_only = t
            .put(json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient"}]}))
            .await;
        let foreign = other
            .put(json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient"}]}))
            .await;
        let path = format!("{}/client", t.project);

        let r = post_as(&srv, &plain.token, &path, &json!({"name": "x"})).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = post_as(&srv, &other_admin.token, &path, &json!({"name": "x"})).await;
        assert_eq!(r.status, 404, "{}", r.text);
        for (body, message) in [
            (json!({}), "Client name is required".to_owned()),
            (
                json!({"name": "x", "accessTokenLifetime": "forever"}),
                "Invalid token lifetime".to_owned(),
            ),
            (
                json!({"name": "x", "redirectUris": ["not a url"]}),
                "Invalid redirect URI: not a url".to_owned(),
            ),
            (
                json!({"name": "x", "accessPolicy": {"reference": format!("AccessPolicy/{}", id(&foreign))}}),
                format!(
                    "Access policy AccessPolicy/{} does not belong to this project",
                    id(&foreign)
                ),
            ),
        ] {
            let r = post_as(&srv, &admin.token, &path, &body).await;
            assert_eq!(r.outcome(400), message, "{body}");
        }
        let r = post_as(
            &srv,
            &admin.token,
            &path,
            &json!({"name": "Lab feed", "redirectUris": ["https://lab.example/cb"],
            "accessPolicy": {"reference": format!("AccessPolicy/{}", id(&patients_only))}}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let client_id = id(&r.body);
        let secret = r.body["secret"].as_str().unwrap().to_owned();
        assert_eq!(secret.len(), 64);
        assert_eq!(r.body["redirectUris"][0], "https://lab.example/cb");
        // The client is a member of the project, under its policy.
        let token = common::tenant::token_of(&srv, &client_id, &secret).await;
        let member = Member {
            srv: &srv,
            token,
            client_id: client_id.clone(),
            secret: secret.clone(),
            membership: String::new(),
        };
        assert_eq!(member.get("Patient").await.status, 200);
        assert_eq!(member.get("Observation").await.status, 403);

        // Rotation: admins of the client's project only, with the secret being rotated.
        let rotate_path = format!("ClientApplication/{client_id}/$rotate-secret");
        let rotate = |token: String, body: Value| {
            let (srv, path) = (&srv, rotate_path.clone());
            async move { fhir_post_as(srv, &token, &path, &body).await }
        };
        let r = rotate(plain.token.clone(), parameters(&[("secret", &secret)])).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = rotate(
            other_admin.token.clone(),
            parameters(&[("secret", &secret)]),
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = rotate(admin.token.clone(), parameters(&[])).await;
        assert_eq!(r.outcome(400), "Secret to rotate must be provided");
        let r = rotate(
            admin.token.clone(),
            parameters(&[("secret", &secret), ("retiringSecret", &secret)]),
        )
        .await;
        assert_eq!(r.outcome(400), "Only one secret can be rotated at a time");
        let r = rotate(admin.token.clone(), parameters(&[("secret", "wrong")])).await;
        assert_eq!(r.outcome(400), "Provided secret does not match client");
        let r = rotate(admin.token.clone(), parameters(&[("secret", &secret)])).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let new_secret = r.body["secret"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, secret);
        assert_eq!(r.body["retiringSecret"], secret.as_str());
        // During the overlap both secrets authenticate.
        assert_eq!(
            client_token_status(&srv, &client_id, &new_secret).await,
            200
        );
        assert_eq!(client_token_status(&srv, &client_id, &secret).await, 200);
        let r = rotate(
            admin.token.clone(),
            parameters(&[("retiringSecret", &secret)]),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.body.get("retiringSecret").is_none(), "{}", r.text);
        assert_ne!(client_token_status(&srv, &client_id, &secret).await, 200);
        assert_eq!(
            client_token_status(&srv, &client_id, &new_secret).await,
            200
        );
    }
);

e2e!(
    project_init_makes_a_project_for_its_owner,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let admin = t.member(None, json!([]), true).await;
        let init = |token: String, body: Value| {
            let srv = &srv;
            async move { fhir_post_as(srv, &token, "Project/$init", &body).await }
        };
        // Super admins only; a project admin is refused.
        let r = init(admin.token.clone(), parameters(&[("name", "Mine")])).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = init(srv.token.clone(), parameters(&[])).await;
        assert_eq!(r.outcome(400), "Project name is required");
        let patient = t.put(json!({"resourceType": "Patient"})).await;
        let r = init(
        srv.token.clone(),
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "name", "valueString": "P"},
            {"name": "owner", "valueReference": {"reference": format!("Patient/{}", id(&patient))}}]}),
    )
    .await;
        assert_eq!(
            r.outcome(400),
            "Only Users are permitted to be the owner of a new Project"
        );
        // A project-scoped user cannot own another project.
        let scoped = invite(
            &srv,
            &admin.token,
            &t.project,
            &json!({"resourceType": "Patient", "firstName": "P", "lastName": "S",
            "email": unique_email("scoped")}),
        )
        .await;
        let r = init(
            srv.token.clone(),
            json!({"resourceType": "Parameters", "parameter": [
            {"name": "name", "valueString": "P"},
            {"name": "owner", "valueReference": scoped.body["user"]}]}),
        )
        .await;
        assert_eq!(
            r.outcome(400),
            "Project owner must not belong to another Project"
        );

        // An unknown owner email makes a server-scoped user, owner and admin of the new project.
        let email = unique_email("owner");
        let r = init(
            srv.token.clone(),
            parameters(&[("name", "New Clinic"), ("ownerEmail", &email)]),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["resourceType"], "Project");
        assert_eq!(r.body["name"], "New Clinic");
        let project = id(&r.body);
        let owner = r.body["owner"]["reference"].as_str().unwrap().to_owned();
        let user = srv.get(&owner).await;
        assert_eq!(user.body["email"], email.as_str());
        assert!(user.body.get("project").is_none(), "{}", user.text);
        let members = srv
            .get(&format!("ProjectMembership?project=Project/{project}"))
            .await;
        let members: Vec<Value> = members.body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        assert_eq!(members.len(), 2, "{members:?}");
        let owner_membership = members
            .iter()
            .find(|m| m["user"]["reference"] == owner.as_str())
            .unwrap();
        assert_eq!(owner_membership["admin"], true);
        assert!(members.iter().any(|m| {
            m["user"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("ClientApplication/")
        }));
        // By default the caller owns it.
        let r = init(srv.token.clone(), parameters(&[("name", "Admin's")])).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert!(
            r.body["owner"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("User/")
        );
    }
);

e2e!(
    project_settings_and_secrets_are_seen_by_whom_the_spec_says,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let admin = t.member(None, json!([]), true).await;
        let plain = t.member(None, json!([]), false).await;
        let path = format!("Project/{}", t.project);
        oxmed_auth::records::put(
            srv.auth.repo(),
            &t.project,
            json!({"resourceType": "Project", "id": t.project, "name": "Clinic",
            "setting": [{"name": "theme", "valueString": "blue"}],
            "secret": [{"name": "apiKey", "valueString": "s3cr3t"}],
            "systemSetting": [{"name": "rateLimit", "valueInteger": 100}],
            "systemSecret": [{"name": "vendor", "valueString": "v3nd0r"}]}),
        )
        .await
        .unwrap();
        // A member does not read the Project resource (its own settings come with `/auth/me`'s
        // project); an admin sees the project's secrets; only a super admin the system's.
        assert_eq!(plain.get(&path).await.status, 403);
        let seen = admin.get(&path).await;
        assert_eq!(seen.body["secret"][0]["valueString"], "s3cr3t");
        assert!(seen.body.get("systemSecret").is_none(), "{}", seen.text);
        let seen = srv.get(&path).await;
        assert_eq!(seen.body["systemSecret"][0]["valueString"], "v3nd0r");

        // An admin writes settings and secrets, not the system's (silently kept).
        let mut changed = admin.get(&path).await.body;
        changed["setting"] = json!([{"name": "theme", "valueString": "green"}]);
        changed["systemSetting"] = json!([{"name": "rateLimit", "valueInteger": 999999}]);
        let r = admin.put(&path, &changed).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let stored = srv.get(&path).await.body;
        assert_eq!(stored["setting"][0]["valueString"], "green");
        assert_eq!(stored["systemSetting"][0]["valueInteger"], 100);
        assert_eq!(stored["systemSecret"][0]["valueString"], "v3nd0r");

        // The admin API replaces the secrets and sites lists; not for a plain member.
        let secrets = json!([{"name": "apiKey", "valueString": "rotated"}]);
        let r = post_as(
            &srv,
            &plain.token,
            &format!("{}/secrets", t.project),
            &secrets,
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = post_as(
            &srv,
            &admin.token,
            &format!("{}/secrets", t.project),
            &secrets,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(srv.get(&path).await.body["secret"], secrets);
        let sites = json!([{"name": "portal", "domain": ["portal.clinic.example"]}]);
        let r = post_as(&srv, &admin.token, &format!("{}/sites", t.project), &sites).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = admin_call(&srv, &admin.token, reqwest::Method::GET, &t.project, None).await;
        assert_eq!(r.body["project"]["site"], sites);
        assert_eq!(r.body["project"]["secret"], secrets);
        let r = post_as(
            &srv,
            &admin.token,
            &format!("{}/sites", t.project),
            &json!({"x": 1}),
        )
        .await;
        assert_eq!(r.outcome(400), "The body must be a JSON array");
    }
);

e2e!(
    admins_set_passwords_of_their_project_scoped_users,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let other = Tenant::new(&srv).await;
        let admin = t.member(None, json!([]), true).await;
        let plain = t.member(None, json!([]), false).await;
        let other_admin = other.member(None, json!([]), true).await;
        let scoped = unique_email("scoped");
        let server_scoped = unique_email("server");
        let foreign = unique_email("foreign");
        for (who, project, body) in [
            (
                &admin,
                &t.project,
                json!({"resourceType": "Patient", "email": scoped}),
            ),
            (
                &admin,
                &t.project,
                json!({"resourceType": "Practitioner", "email": server_scoped}),
            ),
            (
                &other_admin,
                &other.project,
                json!({"resourceType": "Patient", "email": foreign}),
            ),
        ] {
            let mut body = body;
            body["firstName"] = json!("F");
            body["lastName"] = json!("L");
            let r = invite(&srv, &who.token, project, &body).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let set = |token: String, email: String, password: &'static str| {
            let srv = &srv;
            async move {
                post_as(
                    srv,
                    &token,
                    "setpassword",
                    &json!({"email": email, "password": password}),
                )
                .await
            }
        };
        let r = set(plain.token.clone(), scoped.clone(), "new-password-1").await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = set(admin.token.clone(), scoped.clone(), "short").await;
        assert_eq!(
            r.outcome(400),
            "Password must be between 8 and 72 characters"
        );
        let r = set(admin.token.clone(), "nope".into(), "new-password-1").await;
        assert_eq!(r.outcome(400), "Valid email address is required");
        // Not a server-scoped user, not another project's.
        let r = set(admin.token.clone(), server_scoped.clone(), "new-password-1").await;
        assert_eq!(r.outcome(400), "User not found");
        let r = set(admin.token.clone(), foreign.clone(), "new-password-1").await;
        assert_eq!(r.outcome(400), "User not found");
        let r = set(admin.token.clone(), scoped.to_uppercase(), "new-password-1").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let login = common::json_post(
            &srv,
            "auth/login",
            &json!({"email": scoped, "password": "new-password-1", "projectId": t.project,
            "codeChallenge": "x".repeat(43), "codeChallengeMethod": "S256"}),
        )
        .await;
        assert_eq!(login.status, 200, "{}", login.text);
        assert!(login.body["code"].is_string(), "{}", login.text);
    }
);

e2e!(
    an_unverified_account_is_reclaimed_by_the_next_invite,
    |srv| async move {
        let a = Tenant::new(&srv).await;
        let b = Tenant::new(&srv).await;
        let admin_a = a.member(None, json!([]), true).await;
        let admin_b = b.member(None, json!([]), true).await;
        let email = unique_email("victim");
        let login = |password: &'static str| {
            let srv = &srv;
            let email = email.clone();
            async move {
                common::json_post(
                    srv,
                    "auth/login",
                    &json!({"email": email, "password": password,
                    "codeChallenge": "x".repeat(43), "codeChallengeMethod": "S256"}),
                )
                .await
                .status
            }
        };
        // Project A's admin makes a server-wide account under someone's address, with a password
        // of their choosing.
        let mut planted = practitioner(&email);
        planted["password"] = json!("planted-password");
        let r = invite(&srv, &admin_a.token, &a.project, &planted).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(login("planted-password").await, 200);
        // Project B invites the same address: B's membership must not go to whoever chose that
        // password. The account's password is replaced and a set-password link is made for it.
        let mut invited = practitioner(&email);
        invited.as_object_mut().unwrap().remove("password");
        let r = invite(&srv, &admin_b.token, &b.project, &invited).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let user = r.body["user"]["reference"].as_str().unwrap().to_owned();
        assert_eq!(login("planted-password").await, 400);
        let requests = srv.get(&format!("UserSecurityRequest?user={user}")).await;
        assert_eq!(
            requests.body["entry"].as_array().map_or(0, Vec::len),
            2,
            "{}",
            requests.text
        );
    }
);
