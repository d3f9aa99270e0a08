//! Registration (spec §4.4, §13.4; issue 6 point 3), over HTTP on both backends:
//! `/auth/newuser` then `/auth/newproject` (a project of one's own, as its admin) or
//! `/auth/newpatient` (a Patient of a project open to registration, under its default policy),
//! each ending in a code that redeems for tokens. Bad input and refusals have their texts.

mod common;

use common::tenant::{Tenant, id};
use common::{Backend, Resp, TestServer, fhir_post_as, fresh_database, json_post, me, pkce_pair};
use serde_json::{Value, json};

fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.org", &oxmed_repo::meta::new_id()[24..])
}

fn new_user(email: &str, challenge: &str) -> Value {
    json!({"firstName": "Rosalind", "lastName": "Franklin", "email": email,
        "password": "photo-51-helix", "codeChallenge": challenge, "codeChallengeMethod": "S256"})
}

/// Redeems a code for an access token.
async fn token(srv: &TestServer, code: &str, verifier: &str) -> String {
    let r = common::form(
        srv,
        "oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

e2e!(a_new_user_makes_a_project_of_their_own, |srv| async move {
    let email = unique_email("rosalind");
    let (verifier, challenge) = pkce_pair();
    let with = |field: &str, value: Value| {
        let mut b = new_user(&email, &challenge);
        b[field] = value;
        b
    };
    for (body, message) in [
        (with("firstName", json!("")), "First name is required"),
        (
            with("lastName", json!("x".repeat(129))),
            "Last name must be at most 128 characters",
        ),
        (
            with("email", json!("nope")),
            "Valid email address between 3 and 72 characters is required",
        ),
        (
            with("email", json!(format!("{}@example.org", "a".repeat(64)))),
            "Valid email address between 3 and 72 characters is required",
        ),
        (
            with("password", json!("short")),
            "Password must be between 8 and 72 characters",
        ),
    ] {
        let r = json_post(&srv, "auth/newuser", &body).await;
        assert_eq!(r.outcome(400), message, "{body}");
    }

    let r = json_post(&srv, "auth/newuser", &new_user(&email, &challenge)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let login = r.body["login"].as_str().unwrap().to_owned();
    assert!(r.body.get("code").is_none(), "{}", r.text);
    // The same email again.
    let r = json_post(
        &srv,
        "auth/newuser",
        &new_user(&email.to_uppercase(), &challenge),
    )
    .await;
    assert_eq!(r.outcome(400), "Email already registered");

    let r = json_post(
        &srv,
        "auth/newproject",
        &json!({"login": login, "projectName": "abc"}),
    )
    .await;
    assert_eq!(
        r.outcome(400),
        "Project name must be between 4 and 72 characters"
    );
    let r = json_post(&srv, "auth/newproject", &json!({"projectName": "Lab 51"})).await;
    assert_eq!(r.outcome(400), "Missing login");
    let r = json_post(
        &srv,
        "auth/newproject",
        &json!({"login": login, "projectName": "Lab 51"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let code = r.body["code"].as_str().unwrap();
    let access = token(&srv, code, &verifier).await;
    let me = me(&srv, &access).await;
    assert_eq!(me["project"]["name"], "Lab 51");
    assert_eq!(me["membership"]["admin"], true);
    assert_eq!(me["user"]["email"], email.as_str());
    // The owner's project works: they write and read in it.
    let created = fhir_post_as(
        &srv,
        &access,
        "Patient",
        &json!({"resourceType": "Patient", "name": [{"family": "Mine"}]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    // The Login has its membership now.
    let r = json_post(
        &srv,
        "auth/newproject",
        &json!({"login": login, "projectName": "Lab 52"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
});

e2e!(
    patients_register_in_a_project_open_to_them,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let (verifier, challenge) = pkce_pair();
        let register = |email: String, project: Option<String>| {
            let srv = &srv;
            let mut body = new_user(&email, &challenge);
            if let Some(p) = project {
                body["projectId"] = json!(p);
            }
            async move {
                let r = json_post(srv, "auth/newuser", &body).await;
                assert_eq!(r.status, 200, "{}", r.text);
                r.body["login"].as_str().unwrap().to_owned()
            }
        };
        let patient_of = |login: String, project: &str| {
            let srv = &srv;
            let body = json!({"login": login, "projectId": project});
            async move { json_post(srv, "auth/newpatient", &body).await }
        };

        // Not open: no defaultPatientAccessPolicy, no registration into it at all.
        let mut closed = new_user(&unique_email("closed"), &challenge);
        closed["projectId"] = json!(t.project);
        let r = json_post(&srv, "auth/newuser", &closed).await;
        assert_eq!(r.outcome(400), "Project does not allow open registration");
        let login = register(unique_email("server"), None).await;
        let r = json_post(&srv, "auth/newpatient", &json!({"login": login})).await;
        assert_eq!(r.outcome(400), "Project ID is required");
        let r = json_post(&srv, "auth/newpatient", &json!({"projectId": t.project})).await;
        assert_eq!(r.outcome(400), "Missing login");

        // Open it with a policy that shows each patient their own record.
        let policy = t
            .put(
                json!({"resourceType": "AccessPolicy", "name": "Patients", "resource": [
            {"resourceType": "Patient", "criteria": "Patient?_id=%patient.id"},
            {"resourceType": "Observation", "criteria": "Observation?subject=%patient"}]}),
            )
            .await;
        oxmed_auth::records::put(
            srv.auth.repo(),
            &t.project,
            json!({"resourceType": "Project", "id": t.project, "name": "Clinic",
            "defaultPatientAccessPolicy": {"reference": format!("AccessPolicy/{}", id(&policy))}}),
        )
        .await
        .unwrap();
        let someone_else = t.put(json!({"resourceType": "Patient"})).await;
        // A server-scoped user is not the project's to register.
        let server_login = register(unique_email("server"), None).await;
        let r = patient_of(server_login, &t.project).await;
        assert_eq!(r.outcome(400), "User must be scoped to the project");

        let email = unique_email("pat");
        let login = register(email.clone(), Some(t.project.clone())).await;
        let r = patient_of(login.clone(), &t.project).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let access = token(&srv, r.body["code"].as_str().unwrap(), &verifier).await;
        let me = me(&srv, &access).await;
        let profile = me["profile"].clone();
        assert_eq!(profile["resourceType"], "Patient");
        assert_eq!(profile["telecom"][0]["value"], email.as_str());
        assert_eq!(me["project"]["id"], t.project.as_str());
        // Their own record and nobody else's.
        let get = |path: String| {
            let srv = &srv;
            let access = access.clone();
            async move {
                Resp::from(
                    srv.plain
                        .get(srv.url(&path))
                        .bearer_auth(access)
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            }
        };
        let all = get("Patient".into()).await;
        assert_eq!(all.status, 200, "{}", all.text);
        let ids: Vec<&str> = all.body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![profile["id"].as_str().unwrap()]);
        assert_eq!(
            get(format!("Patient/{}", id(&someone_else))).await.status,
            404
        );
        // The Login is done.
        let r = patient_of(login, &t.project).await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
);

async fn disabled(backend: Backend) {
    let Some((url, dir)) = fresh_database(backend).await else {
        return;
    };
    let srv = TestServer::start_with(backend, &url, dir, |c| c.register_enabled = false).await;
    let (_, challenge) = pkce_pair();
    let email = unique_email("nobody");
    let r = json_post(&srv, "auth/newuser", &new_user(&email, &challenge)).await;
    assert_eq!(r.outcome(400), "Registration is disabled");
    let users = srv.get(&format!("User?email={email}")).await;
    assert!(users.body["entry"].as_array().is_none_or(Vec::is_empty));
}

per_backend!(registration_can_be_disabled, super::disabled);

/// A siteverify endpoint on loopback in place of Google's, which tests cannot reach: answers
/// `{"success": true}` for the token `good` only, and keeps the secret keys it was sent.
async fn siteverify() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let secrets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = secrets.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut len = 0;
                // Until the whole form body (Content-Length) is in.
                loop {
                    let n = socket.read(&mut buf[len..]).await.unwrap_or(0);
                    len += n;
                    let text = String::from_utf8_lossy(&buf[..len]).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let want = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= want || n == 0 {
                            let fields: Vec<(String, String)> =
                                url::form_urlencoded::parse(body.as_bytes())
                                    .into_owned()
                                    .collect();
                            let get = |k: &str| {
                                fields
                                    .iter()
                                    .find(|(n, _)| n == k)
                                    .map(|(_, v)| v.clone())
                                    .unwrap_or_default()
                            };
                            seen.lock().unwrap().push(get("secret"));
                            let ok = get("response") == "good";
                            let body = format!("{{\"success\": {ok}}}");
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = socket.write_all(resp.as_bytes()).await;
                            return;
                        }
                    }
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/siteverify"), secrets)
}

async fn recaptcha(backend: Backend) {
    let Some((url, dir)) = fresh_database(backend).await else {
        return;
    };
    let (verify_url, secrets) = siteverify().await;
    let srv = TestServer::start_with(backend, &url, dir, move |c| {
        c.recaptcha_site_key = Some("server-site".into());
        c.recaptcha_secret_key = Some("server-secret".into());
        c.recaptcha_verify_url = verify_url;
    })
    .await;
    let (_, challenge) = pkce_pair();
    let with_token = |email: &str, token: Option<&str>| {
        let mut b = new_user(email, &challenge);
        if let Some(t) = token {
            b["recaptchaToken"] = json!(t);
        }
        b
    };
    let email = unique_email("robot");
    let r = json_post(&srv, "auth/newuser", &with_token(&email, None)).await;
    assert_eq!(r.outcome(400), "Recaptcha token is required");
    let r = json_post(&srv, "auth/newuser", &with_token(&email, Some("bad"))).await;
    assert_eq!(r.outcome(400), "Recaptcha failed");
    let users = srv.get(&format!("User?email={email}")).await;
    assert!(users.body["entry"].as_array().is_none_or(Vec::is_empty));
    let r = json_post(&srv, "auth/newuser", &with_token(&email, Some("good"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(secrets.lock().unwrap().iter().all(|s| s == "server-secret"));
    // Reset asks for a token too.
    let r = json_post(&srv, "auth/resetpassword", &json!({"email": email})).await;
    assert_eq!(r.outcome(400), "Recaptcha token is required");
    let r = json_post(
        &srv,
        "auth/resetpassword",
        &json!({"email": email, "recaptchaToken": "good"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A project's own site key uses that site's secret, for a project open to registration.
    let t = Tenant::new(&srv).await;
    let policy = t
        .put(json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient"}]}))
        .await;
    let set_project = |extra: Value| {
        let srv = &srv;
        let project = t.project.clone();
        async move {
            let mut p = json!({"resourceType": "Project", "id": project, "name": "Clinic",
                "site": [{"name": "portal", "domain": ["portal.example"],
                    "recaptchaSiteKey": "clinic-site", "recaptchaSecretKey": "clinic-secret"}]});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            oxmed_auth::records::put(srv.auth.repo(), &project, p)
                .await
                .unwrap();
        }
    };
    set_project(json!({})).await;
    let site_body = |email: &str, key: &str| {
        let mut b = with_token(email, Some("good"));
        b["recaptchaSiteKey"] = json!(key);
        b["projectId"] = json!(t.project);
        b
    };
    let r = json_post(
        &srv,
        "auth/newuser",
        &site_body(&unique_email("p"), "clinic-site"),
    )
    .await;
    assert_eq!(r.outcome(400), "Project does not allow open registration");
    let r = json_post(
        &srv,
        "auth/newuser",
        &site_body(&unique_email("p"), "unknown-site"),
    )
    .await;
    assert_eq!(r.outcome(400), "Invalid recaptchaSiteKey");
    // A project's site key counts only with that project named.
    let mut unnamed = site_body(&unique_email("p"), "clinic-site");
    unnamed.as_object_mut().unwrap().remove("projectId");
    let r = json_post(&srv, "auth/newuser", &unnamed).await;
    assert_eq!(r.outcome(400), "Invalid recaptchaSiteKey");
    set_project(json!({"defaultPatientAccessPolicy":
        {"reference": format!("AccessPolicy/{}", id(&policy))}}))
    .await;
    secrets.lock().unwrap().clear();
    let r = json_post(
        &srv,
        "auth/newuser",
        &site_body(&unique_email("p"), "clinic-site"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(*secrets.lock().unwrap(), vec!["clinic-secret".to_owned()]);
    set_project(
        json!({"site": [{"name": "portal", "domain": ["portal.example"],
        "recaptchaSiteKey": "clinic-site"}]}),
    )
    .await;
    let r = json_post(
        &srv,
        "auth/newuser",
        &site_body(&unique_email("p"), "clinic-site"),
    )
    .await;
    assert_eq!(r.outcome(400), "Invalid recaptchaSecretKey");
}

per_backend!(
    recaptcha_guards_registration_when_configured,
    super::recaptcha
);

async fn unreachable_recaptcha(backend: Backend) {
    let Some((url, dir)) = fresh_database(backend).await else {
        return;
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let srv = TestServer::start_with(backend, &url, dir, move |c| {
        c.recaptcha_secret_key = Some("server-secret".into());
        c.recaptcha_verify_url = format!("http://127.0.0.1:{closed}/siteverify");
    })
    .await;
    let (_, challenge) = pkce_pair();
    let mut body = new_user(&unique_email("x"), &challenge);
    body["recaptchaToken"] = json!("good");
    // Verification that cannot be done refuses.
    let r = json_post(&srv, "auth/newuser", &body).await;
    assert_eq!(r.outcome(400), "Recaptcha failed");
}

per_backend!(recaptcha_fails_closed, super::unreachable_recaptcha);
