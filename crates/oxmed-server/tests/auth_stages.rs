//! The login stages after the password (spec §4.4, §4.6, §10) over HTTP, on both backends:
//! MFA with TOTP codes, narrowing the scope, changing the password, ending another session and
//! resuming a login. Every permission is tested with its denial.

mod common;

use common::{Resp, TestServer, form, get_with, json_post, pkce_pair};
use oxmed_auth::totp;
use serde_json::{Value, json};

const ADMIN_EMAIL: &str = oxmed_server::config::TEST_ADMIN_EMAIL;
const ADMIN_PASSWORD: &str = oxmed_server::config::TEST_ADMIN_PASSWORD;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn post_with(srv: &TestServer, path: &str, token: &str, body: &Value) -> Resp {
    Resp::from(
        srv.plain
            .post(format!("{}{path}", srv.base))
            .header("authorization", bearer(token))
            .json(body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

/// `/auth/login` with a PKCE challenge; the answer and the verifier. Project-scoped users
/// (`second@...`) sign in to the admin's project.
async fn login(srv: &TestServer, email: &str, password: &str, scope: &str) -> (Resp, String) {
    let (verifier, challenge) = pkce_pair();
    let mut body = json!({"email": email, "password": password, "scope": scope,
        "codeChallenge": challenge, "codeChallengeMethod": "S256"});
    if email != ADMIN_EMAIL {
        body["projectId"] = json!(admin_project(srv).await);
    }
    let r = json_post(srv, "auth/login", &body).await;
    (r, verifier)
}

async fn admin_project(srv: &TestServer) -> String {
    let me = get_with(srv, "auth/me", &bearer(&srv.token)).await;
    me.body["project"]["id"].as_str().unwrap().to_owned()
}

/// The code grant; the token response.
async fn redeem(srv: &TestServer, code: &str, verifier: &str) -> Resp {
    form(
        srv,
        "oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await
}

/// Signs in fully (no MFA); the access token and the login id.
async fn session(srv: &TestServer, email: &str, password: &str) -> (String, String) {
    let (r, verifier) = login(srv, email, password, "openid").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let login = r.body["login"].as_str().unwrap().to_owned();
    let t = redeem(srv, r.body["code"].as_str().expect("code"), &verifier).await;
    assert_eq!(t.status, 200, "{}", t.text);
    (t.body["access_token"].as_str().unwrap().to_owned(), login)
}

/// A second person in the admin's project: a Practitioner, a User of that project with this
/// password, and a membership. Returns the user id.
async fn add_user(srv: &TestServer, email: &str, password: &str) -> String {
    let project = admin_project(srv).await;
    let hash = oxmed_auth::password::hash_password(password, 4).unwrap();
    let practitioner = srv
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Second"}]}))
        .await;
    // Written by the server: a password hash is a hidden field of User, which no caller's
    // FHIR write may set (issue 6 brings invites and the set-password flow).
    let user = oxmed_auth::records::create(
        srv.auth.repo(),
        &project,
        json!({"resourceType": "User", "email": email, "passwordHash": hash,
            "firstName": "Sam", "lastName": "Second",
            "project": {"reference": format!("Project/{project}")}}),
    )
    .await
    .unwrap();
    let user_id = user["id"].as_str().unwrap().to_owned();
    srv.create(&json!({"resourceType": "ProjectMembership",
        "project": {"reference": format!("Project/{project}")},
        "user": {"reference": format!("User/{user_id}")},
        "profile": {"reference": format!("Practitioner/{}", practitioner["id"].as_str().unwrap())}}))
        .await;
    user_id
}

/// `POST /auth/mfa/<step> {login, token}`.
async fn mfa_post(srv: &TestServer, step: &str, login: &str, token: &str) -> Resp {
    json_post(
        srv,
        &format!("auth/mfa/{step}"),
        &json!({"login": login, "token": token}),
    )
    .await
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code of the step `offset` steps from now.
fn code(secret: &str, offset: i64) -> String {
    let at = now() as i64 + offset * totp::STEP_SECONDS as i64;
    totp::code_at(secret, at as u64).unwrap()
}

/// A six-digit code that is none of the codes in the window around now.
fn wrong_code(secret: &str) -> String {
    let valid: Vec<String> = (-2..=2).map(|o| code(secret, o)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

fn secret_of(enroll_uri: &str) -> String {
    let query = enroll_uri.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap()
        .to_owned()
}

e2e!(mfa_enrolment_and_sign_in, |srv| async move {
    get_with(&srv, "auth/mfa/status", "Bearer nope")
        .await
        .outcome(401);
    let status = get_with(&srv, "auth/mfa/status", &bearer(&srv.token)).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.body["enrolled"], false);
    let uri = status.body["enrollUri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&ADMIN_EMAIL.replace('@', "%40")), "{uri}");
    assert!(
        status.body["enrollQrCode"]
            .as_str()
            .unwrap()
            .starts_with("data:image/")
    );
    // The secret is made once and kept.
    let again = get_with(&srv, "auth/mfa/status", &bearer(&srv.token)).await;
    assert_eq!(again.body["enrollUri"], uri.as_str());
    let secret = secret_of(&uri);

    let wrong = wrong_code(&secret);
    let r = post_with(
        &srv,
        "auth/mfa/enroll",
        &srv.token,
        &json!({"token": wrong}),
    )
    .await;
    assert_eq!(r.outcome(400), "Invalid token");
    post_with(
        &srv,
        "auth/mfa/enroll",
        "nope",
        &json!({"token": code(&secret, 0)}),
    )
    .await
    .outcome(401);
    let r = post_with(
        &srv,
        "auth/mfa/enroll",
        &srv.token,
        &json!({"token": code(&secret, 0)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], "ok");
    let r = post_with(
        &srv,
        "auth/mfa/enroll",
        &srv.token,
        &json!({"token": code(&secret, 1)}),
    )
    .await;
    assert_eq!(r.outcome(400), "Already enrolled");
    let status = get_with(&srv, "auth/mfa/status", &bearer(&srv.token)).await;
    assert_eq!(status.body, json!({"enrolled": true}));
    let me = get_with(&srv, "auth/me", &bearer(&srv.token)).await;
    assert_eq!(me.body["security"]["mfaEnrolled"], true);

    // A password is no longer enough: no code until the TOTP code.
    let (r, verifier) = login(&srv, ADMIN_EMAIL, ADMIN_PASSWORD, "openid").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfaRequired"], true, "{}", r.text);
    assert!(r.body.get("code").is_none(), "{}", r.text);
    let login_id = r.body["login"].as_str().unwrap().to_owned();
    // Neither choosing a profile nor resuming the login skips the second factor.
    let resumed = get_with(&srv, &format!("auth/login/{login_id}"), "").await;
    assert_eq!(resumed.body["mfaRequired"], true, "{}", resumed.text);
    assert!(resumed.body.get("code").is_none());

    let r = json_post(&srv, "auth/mfa/verify", &json!({"login": login_id})).await;
    assert_eq!(r.outcome(400), "Missing token");
    let r = mfa_post(&srv, "verify", &login_id, &wrong_code(&secret)).await;
    assert_eq!(r.outcome(400), "Invalid MFA token");
    // The code used to enrol was used: it does not work twice.
    let r = mfa_post(&srv, "verify", &login_id, &code(&secret, 0)).await;
    assert_eq!(r.outcome(400), "Invalid MFA token");
    let r = mfa_post(&srv, "verify", &login_id, &code(&secret, 1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let code_value = r.body["code"].as_str().expect("a code once verified");
    let r2 = mfa_post(&srv, "verify", &login_id, &code(&secret, 1)).await;
    assert_eq!(r2.outcome(400), "Login already verified");
    let t = redeem(&srv, code_value, &verifier).await;
    assert_eq!(t.status, 200, "{}", t.text);

    // Repeated wrong codes lock the account's second factor, whichever login they come from.
    let (r, _) = login(&srv, ADMIN_EMAIL, ADMIN_PASSWORD, "openid").await;
    let other_login = r.body["login"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let r = mfa_post(&srv, "verify", &other_login, &wrong_code(&secret)).await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
    let (r, _) = login(&srv, ADMIN_EMAIL, ADMIN_PASSWORD, "openid").await;
    let third = r.body["login"].as_str().unwrap().to_owned();
    let locked = mfa_post(&srv, "verify", &third, &code(&secret, 1)).await;
    locked.outcome(429);
});

e2e!(
    mfa_required_enrols_at_sign_in_and_disable,
    |srv| async move {
        // The admin requires MFA of a user who has not enrolled yet.
        let user_id = add_user(&srv, "second@example.com", "second-password").await;
        let mut user = srv.get(&format!("User/{user_id}")).await.body;
        user["mfaRequired"] = json!(true);
        assert_eq!(srv.put(&format!("User/{user_id}"), &user).await.status, 200);

        let (r, verifier) = login(&srv, "second@example.com", "second-password", "openid").await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["mfaEnrollRequired"], true, "{}", r.text);
        assert!(r.body.get("code").is_none());
        let secret = secret_of(r.body["enrollUri"].as_str().unwrap());
        let login_id = r.body["login"].as_str().unwrap().to_owned();
        let r = mfa_post(&srv, "login-enroll", &login_id, &wrong_code(&secret)).await;
        assert_eq!(r.outcome(400), "Invalid MFA token");
        let r = mfa_post(&srv, "login-enroll", &login_id, &code(&secret, 0)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let t = redeem(&srv, r.body["code"].as_str().expect("code"), &verifier).await;
        assert_eq!(t.status, 200, "{}", t.text);
        let token = t.body["access_token"].as_str().unwrap().to_owned();
        let status = get_with(&srv, "auth/mfa/status", &bearer(&token)).await;
        assert_eq!(status.body, json!({"enrolled": true}));

        // Disabling needs a current code, and rotates the secret.
        let r = post_with(
            &srv,
            "auth/mfa/disable",
            &token,
            &json!({"token": wrong_code(&secret)}),
        )
        .await;
        assert_eq!(r.outcome(400), "Invalid token");
        let r = post_with(
            &srv,
            "auth/mfa/disable",
            &token,
            &json!({"token": code(&secret, 1)}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = post_with(
            &srv,
            "auth/mfa/disable",
            &token,
            &json!({"token": code(&secret, 1)}),
        )
        .await;
        assert_eq!(r.outcome(400), "User not enrolled in MFA");
        let status = get_with(&srv, "auth/mfa/status", &bearer(&token)).await;
        assert_eq!(status.body["enrolled"], false);
        let new_secret = secret_of(status.body["enrollUri"].as_str().unwrap());
        assert_ne!(new_secret, secret);
        // A client has no user to enrol.
        let clients = srv.get("ClientApplication").await;
        let c = &clients.body["entry"][0]["resource"];
        let cc = form(
            &srv,
            "oauth2/token",
            &[("grant_type", "client_credentials")],
            Some((c["id"].as_str().unwrap(), c["secret"].as_str().unwrap())),
        )
        .await;
        let cc_token = cc.body["access_token"].as_str().unwrap();
        let r = get_with(&srv, "auth/mfa/status", &bearer(cc_token)).await;
        assert_eq!(r.outcome(400), "User not found");
    }
);

e2e!(scope_narrowing, |srv| async move {
    let granted = "openid patient/Observation.rs user/Patient.cruds";
    let (r, verifier) = login(&srv, ADMIN_EMAIL, ADMIN_PASSWORD, granted).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let login_id = r.body["login"].as_str().unwrap().to_owned();
    let first_code = r.body["code"].as_str().unwrap().to_owned();
    let r = json_post(&srv, "auth/scope", &json!({"scope": "openid"})).await;
    assert_eq!(r.outcome(400), "Missing login");
    let r = json_post(&srv, "auth/scope", &json!({"login": login_id})).await;
    assert_eq!(r.outcome(400), "Missing scope");
    for wider in [
        "openid patient/Observation.c",
        "openid user/Observation.rs",
        "openid patient/*.rs",
    ] {
        let r = json_post(
            &srv,
            "auth/scope",
            &json!({"login": login_id, "scope": wider}),
        )
        .await;
        assert_eq!(r.outcome(400), "Invalid scope", "{wider}");
    }
    let narrowed = "openid patient/Observation.r user/Patient.rs";
    let r = json_post(
        &srv,
        "auth/scope",
        &json!({"login": login_id, "scope": narrowed}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let code = r.body["code"].as_str().unwrap().to_owned();
    assert_ne!(code, first_code);
    // The code issued before the narrowing is void.
    let old = redeem(&srv, &first_code, &verifier).await;
    assert_eq!(old.status, 400, "{}", old.text);
});

e2e!(scope_narrowing_changes_the_token, |srv| async move {
    let granted = "openid patient/Observation.rs user/Patient.cruds";
    let (r, verifier) = login(&srv, ADMIN_EMAIL, ADMIN_PASSWORD, granted).await;
    let login_id = r.body["login"].as_str().unwrap().to_owned();
    let narrowed = "openid patient/Observation.r";
    let r = json_post(
        &srv,
        "auth/scope",
        &json!({"login": login_id, "scope": narrowed}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = redeem(&srv, r.body["code"].as_str().unwrap(), &verifier).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.body["scope"], narrowed);
    // Granted: the scope can no longer change.
    let r = json_post(
        &srv,
        "auth/scope",
        &json!({"login": login_id, "scope": "openid"}),
    )
    .await;
    assert_eq!(r.outcome(400), "Login granted");
    let r = get_with(&srv, &format!("auth/login/{login_id}"), "").await;
    assert_eq!(r.outcome(400), "Login already granted");
});

e2e!(resume_login, |srv| async move {
    let r = get_with(&srv, "auth/login/not-a-uuid", "").await;
    r.outcome(400);
    let r = get_with(&srv, "auth/login/00000000-0000-4000-8000-000000000000", "").await;
    r.outcome(404);
    let (r, verifier) = login(&srv, ADMIN_EMAIL, ADMIN_PASSWORD, "openid").await;
    let login_id = r.body["login"].as_str().unwrap().to_owned();
    let resumed = get_with(&srv, &format!("auth/login/{login_id}"), "").await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    assert_eq!(resumed.body["login"], login_id.as_str());
    let t = redeem(&srv, resumed.body["code"].as_str().unwrap(), &verifier).await;
    assert_eq!(t.status, 200, "{}", t.text);
});

e2e!(change_password_ends_other_sessions, |srv| async move {
    let (other_token, _) = session(&srv, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let change = |token: String, old: &'static str, new: &'static str| {
        let srv = &srv;
        async move {
            post_with(
                srv,
                "auth/changepassword",
                &token,
                &json!({"oldPassword": old, "newPassword": new}),
            )
            .await
        }
    };
    change("nope".into(), ADMIN_PASSWORD, "a-brand-new-password")
        .await
        .outcome(401);
    let r = change(srv.token.clone(), "wrong-password", "a-brand-new-password").await;
    assert_eq!(r.outcome(400), "Incorrect password");
    let r = change(srv.token.clone(), ADMIN_PASSWORD, "short").await;
    assert_eq!(
        r.outcome(400),
        "Password must be between 8 and 72 characters"
    );
    let too_long: &'static str = Box::leak("x".repeat(73).into_boxed_str());
    let r = change(srv.token.clone(), ADMIN_PASSWORD, too_long).await;
    r.outcome(400);
    // The wrong and refused attempts changed nothing.
    assert_eq!(
        get_with(&srv, "fhir/R4/Patient", &bearer(&other_token))
            .await
            .status,
        200
    );
    let r = change(srv.token.clone(), ADMIN_PASSWORD, "a-brand-new-password").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], "ok");
    // This session lives; the other one is over.
    assert_eq!(srv.get("Patient").await.status, 200);
    get_with(&srv, "fhir/R4/Patient", &bearer(&other_token))
        .await
        .outcome(401);
    let (r, _) = login(&srv, ADMIN_EMAIL, ADMIN_PASSWORD, "openid").await;
    assert_eq!(r.outcome(400), "Email or password is invalid");
    let (r, _) = login(&srv, ADMIN_EMAIL, "a-brand-new-password", "openid").await;
    assert_eq!(r.status, 200, "{}", r.text);
});

e2e!(revoke_another_session, |srv| async move {
    let (other_token, other_login) = session(&srv, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let me = get_with(&srv, "auth/me", &bearer(&srv.token)).await;
    let sessions: Vec<&str> = me.body["security"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(sessions.contains(&other_login.as_str()), "{}", me.text);

    let r = post_with(&srv, "auth/revoke", &srv.token, &json!({"loginId": "x"})).await;
    assert_eq!(r.outcome(400), "Login ID is required.");
    let r = post_with(&srv, "auth/revoke", &srv.token, &json!({})).await;
    assert_eq!(r.outcome(400), "Login ID is required.");
    let r = post_with(
        &srv,
        "auth/revoke",
        &srv.token,
        &json!({"loginId": "00000000-0000-4000-8000-000000000000"}),
    )
    .await;
    r.outcome(404);
    post_with(
        &srv,
        "auth/revoke",
        "nope",
        &json!({"loginId": other_login}),
    )
    .await
    .outcome(401);
    // Someone else cannot end the admin's session: 404, as if it did not exist.
    add_user(&srv, "second@example.com", "second-password").await;
    let (second_token, _) = session(&srv, "second@example.com", "second-password").await;
    let r = post_with(
        &srv,
        "auth/revoke",
        &second_token,
        &json!({"loginId": other_login}),
    )
    .await;
    r.outcome(404);
    assert_eq!(
        get_with(&srv, "fhir/R4/Patient", &bearer(&other_token))
            .await
            .status,
        200
    );
    let r = post_with(
        &srv,
        "auth/revoke",
        &srv.token,
        &json!({"loginId": other_login}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    get_with(&srv, "fhir/R4/Patient", &bearer(&other_token))
        .await
        .outcome(401);
    assert_eq!(srv.get("Patient").await.status, 200);
});

e2e!(
    inactive_or_deleted_memberships_end_sessions,
    |srv| async move {
        let user_id = add_user(&srv, "second@example.com", "second-password").await;
        let (token, _) = session(&srv, "second@example.com", "second-password").await;
        assert_eq!(
            get_with(&srv, "fhir/R4/Patient", &bearer(&token))
                .await
                .status,
            200
        );
        let found = srv
            .get(&format!("ProjectMembership?user=User/{user_id}"))
            .await;
        let mut membership = found.body["entry"][0]["resource"].clone();
        let id = membership["id"].as_str().unwrap().to_owned();
        membership["active"] = json!(false);
        assert_eq!(
            srv.put(&format!("ProjectMembership/{id}"), &membership)
                .await
                .status,
            200
        );
        get_with(&srv, "fhir/R4/Patient", &bearer(&token))
            .await
            .outcome(401);
        // Active again: the same token works again; deleted: never.
        membership["active"] = json!(true);
        srv.put(&format!("ProjectMembership/{id}"), &membership)
            .await;
        assert_eq!(
            get_with(&srv, "fhir/R4/Patient", &bearer(&token))
                .await
                .status,
            200
        );
        assert!(srv.delete(&format!("ProjectMembership/{id}")).await.status < 300);
        get_with(&srv, "fhir/R4/Patient", &bearer(&token))
            .await
            .outcome(401);
    }
);

e2e!(user_email_unique_per_scope, |srv| async move {
    let project = admin_project(&srv).await;
    let in_project = |email: &str| {
        json!({"resourceType": "User", "firstName": "A", "lastName": "B", "email": email,
            "project": {"reference": format!("Project/{project}")}})
    };
    let first = srv.create(&in_project("dup@example.com")).await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    // The same email in the same project, whatever its case: refused.
    for email in ["dup@example.com", "DUP@Example.com"] {
        let r = srv.post("User", &in_project(email)).await;
        assert_eq!(r.outcome(400), "Email already registered", "{email}");
        assert_eq!(r.body["issue"][0]["expression"][0], "email");
    }
    // Another scope (server-scoped, no project) may have it.
    let server_scoped = srv
        .post(
            "User",
            &json!({"resourceType": "User", "firstName": "A", "lastName": "B",
                "email": "dup@example.com"}),
        )
        .await;
    assert_eq!(server_scoped.status, 201, "{}", server_scoped.text);
    // Updating the holder keeps its email; another user cannot take it.
    let mut again = first.clone();
    again["firstName"] = json!("Changed");
    assert_eq!(
        srv.put(&format!("User/{first_id}"), &again).await.status,
        200
    );
    let other = srv.create(&in_project("other@example.com")).await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    let mut taken = other.clone();
    taken["email"] = json!("dup@example.com");
    let r = srv.put(&format!("User/{other_id}"), &taken).await;
    assert_eq!(r.outcome(400), "Email already registered");
    // Once the holder is deleted, or has another email, the address is free.
    let mut moved = again.clone();
    moved["email"] = json!("moved@example.com");
    assert_eq!(
        srv.put(&format!("User/{first_id}"), &moved).await.status,
        200
    );
    assert_eq!(
        srv.put(&format!("User/{other_id}"), &taken).await.status,
        200
    );
    assert!(srv.delete(&format!("User/{other_id}")).await.status < 300);
    assert_eq!(
        srv.post("User", &in_project("dup@example.com"))
            .await
            .status,
        201
    );
});

e2e!(concurrent_users_with_one_email_one_wins, |srv| async move {
    let project = admin_project(&srv).await;
    let body = json!({"resourceType": "User", "firstName": "A", "lastName": "B",
        "email": "race@example.com", "project": {"reference": format!("Project/{project}")}});
    let attempts = (0..8).map(|_| srv.post("User", &body));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 400),
        "{statuses:?}"
    );
});

e2e!(access_policies_are_checked_on_write, |srv| async move {
    let r = srv
        .post(
            "AccessPolicy",
            &json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Observation", "criteria": "Patient?_id=%patient.id"}]}),
        )
        .await;
    let msg = r.outcome(400);
    assert!(msg.contains("axp-3"), "{msg}");
    assert_eq!(
        r.body["issue"][0]["expression"][0],
        "AccessPolicy.resource[0].criteria"
    );
    let r = srv
        .post(
            "AccessPolicy",
            &json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Task", "writeConstraint": [{"language": "text/fhirpath"}]}]}),
        )
        .await;
    assert!(r.outcome(400).contains("axp-1"));
    let ok = srv
        .post(
            "AccessPolicy",
            &json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Observation", "criteria": "Observation?subject=%patient"},
                {"resourceType": "Task", "writeConstraint": [
                    {"language": "text/fhirpath", "expression": "%after.status = 'ready'"}]}]}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
});
