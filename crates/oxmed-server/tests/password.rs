//! Links that set a password (spec §6.3, §6.4; issue 6 point 3), over HTTP on both backends:
//! `/auth/setpassword`, `/auth/resetpassword`, `/auth/verifyemail` with Medplum's texts, links
//! that work once and expire, sessions ended by a new password, and the set-password page
//! refusing forged posts. The emails themselves are tested in `email.rs`.

mod common;

use std::time::Duration;

use common::tenant::{Tenant, id};
use common::{Backend, Resp, TestServer, fresh_database, json_post, sign_in};
use serde_json::{Value, json};

/// Invites a Practitioner (no email sent); the User's reference.
async fn invited(srv: &TestServer, t: &Tenant<'_>, email: &str) -> String {
    let admin = t.member(None, json!([]), true).await;
    let r = srv
        .plain
        .post(format!("{}admin/projects/{}/invite", srv.base, t.project))
        .bearer_auth(&admin.token)
        .json(&json!({"resourceType": "Practitioner", "firstName": "Mary",
            "lastName": "Somerville", "email": email, "sendEmail": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    m["user"]["reference"].as_str().unwrap().to_owned()
}

/// The user's security requests of this type, newest last (as the super admin reads them).
async fn requests(srv: &TestServer, user: &str, kind: &str) -> Vec<Value> {
    let r = srv
        .get(&format!(
            "UserSecurityRequest?user={user}&_sort=_lastUpdated&_count=50"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .filter(|r| r["type"] == kind)
        .collect()
}

/// [`requests`] once there are `n`: a reset's request is written after its answer (so that
/// the answer tells nothing), and any more written meanwhile would show too.
async fn requests_written(srv: &TestServer, user: &str, kind: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = requests(srv, user, kind).await;
        if found.len() >= n || std::time::Instant::now() > deadline {
            // Time for a stray one to land before the count is checked.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            return requests(srv, user, kind).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn set(srv: &TestServer, id: &str, secret: &str, password: &str) -> Resp {
    json_post(
        srv,
        "auth/setpassword",
        &json!({"id": id, "secret": secret, "password": password}),
    )
    .await
}

fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.org", &oxmed_repo::meta::new_id()[24..])
}

e2e!(set_password_checks_its_link, |srv| async move {
    let t = Tenant::new(&srv).await;
    let email = unique_email("mary");
    let user = invited(&srv, &t, &email).await;
    let invites = requests(&srv, &user, "invite").await;
    assert_eq!(invites.len(), 1);
    let (rid, secret) = (
        id(&invites[0]),
        invites[0]["secret"].as_str().unwrap().to_owned(),
    );

    assert_eq!(
        set(&srv, "not-a-uuid", &secret, "long-enough-1")
            .await
            .outcome(400),
        "Invalid request ID"
    );
    assert_eq!(
        set(&srv, &rid, "", "long-enough-1").await.outcome(400),
        "Missing secret"
    );
    let unknown = set(
        &srv,
        "00000000-0000-4000-8000-000000000000",
        &secret,
        "long-enough-1",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(
        set(
            &srv,
            &rid,
            "0123456789abcdef0123456789abcdef",
            "long-enough-1"
        )
        .await
        .outcome(400),
        "Incorrect secret"
    );
    assert_eq!(
        set(&srv, &rid, &secret, "short").await.outcome(400),
        "Invalid password, must be at least 8 characters"
    );
    assert_eq!(
        set(&srv, &rid, &secret, &"x".repeat(73)).await.outcome(400),
        "Password must be between 8 and 72 characters"
    );
    let r = json_post(
        &srv,
        "auth/verifyemail",
        &json!({"id": rid, "secret": secret}),
    )
    .await;
    assert_eq!(r.outcome(400), "Invalid user security request type");

    // None of that used the link: the right secret and a good password set it, once.
    let r = set(&srv, &rid, &secret, "long-enough-1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], "ok");
    let token = sign_in(&srv.plain, &srv.base, &email, "long-enough-1").await;
    assert_eq!(
        set(&srv, &rid, &secret, "long-enough-2").await.outcome(400),
        "Already used"
    );
    let u = srv.get(&user).await;
    assert_eq!(u.body["emailVerified"], true);
    assert!(u.body.get("passwordHash").is_none());

    // A reset: the session signed in before the new password ends with it.
    let me = |token: String| {
        let srv = &srv;
        async move {
            srv.plain
                .get(format!("{}auth/me", srv.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(token.clone()).await, 200);
    for _ in 0..2 {
        let r = json_post(
            &srv,
            "auth/resetpassword",
            &json!({"email": email.to_uppercase(), "sendEmail": false}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let resets = requests_written(&srv, &user, "reset", 2).await;
    assert_eq!(resets.len(), 2);
    let r = set(
        &srv,
        &id(&resets[1]),
        resets[1]["secret"].as_str().unwrap(),
        "long-enough-3",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(me(token).await, 401);
    sign_in(&srv.plain, &srv.base, &email, "long-enough-3").await;
    // The older reset email's link died with the newer one: it cannot undo the new password.
    assert_eq!(
        set(
            &srv,
            &id(&resets[0]),
            resets[0]["secret"].as_str().unwrap(),
            "taken-over-5"
        )
        .await
        .outcome(400),
        "Already used"
    );
    sign_in(&srv.plain, &srv.base, &email, "long-enough-3").await;

    // An email-verification request verifies and sets nothing else.
    let verify = srv
        .post(
            "UserSecurityRequest",
            &json!({"resourceType": "UserSecurityRequest", "type": "verify-email",
                "user": {"reference": user}, "secret": "fedcba9876543210fedcba9876543210"}),
        )
        .await;
    assert_eq!(verify.status, 201, "{}", verify.text);
    let vid = id(&verify.body);
    assert_eq!(
        set(
            &srv,
            &vid,
            "fedcba9876543210fedcba9876543210",
            "long-enough-4"
        )
        .await
        .outcome(400),
        "Invalid request type"
    );
    let r = json_post(
        &srv,
        "auth/verifyemail",
        &json!({"id": vid, "secret": "fedcba9876543210fedcba9876543210"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    sign_in(&srv.plain, &srv.base, &email, "long-enough-3").await;
});

e2e!(
    reset_password_tells_nothing_and_checks_its_input,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let email = unique_email("ada");
        let user = invited(&srv, &t, &email).await;
        let r = json_post(&srv, "auth/resetpassword", &json!({"email": "no-at-sign"})).await;
        assert_eq!(r.outcome(400), "Valid email address is required");
        let r = json_post(&srv, "auth/resetpassword", &json!({})).await;
        assert_eq!(r.outcome(400), "Valid email address is required");
        let r = srv
            .plain
            .post(format!("{}auth/resetpassword", srv.base))
            .body("{nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        // An unknown address and a known one answer alike; only the known one gets a request.
        let unknown = json_post(
            &srv,
            "auth/resetpassword",
            &json!({"email": unique_email("nobody")}),
        )
        .await;
        let known = json_post(&srv, "auth/resetpassword", &json!({"email": email})).await;
        assert_eq!((unknown.status, known.status), (200, 200));
        assert_eq!(unknown.body, known.body);
        assert_eq!(requests_written(&srv, &user, "reset", 1).await.len(), 1);
        // A server-scoped user is not found through a project it has no scope in.
        let r = json_post(
            &srv,
            "auth/resetpassword",
            &json!({"email": email, "projectId": t.project}),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(requests_written(&srv, &user, "reset", 1).await.len(), 1);
    }
);

e2e!(
    the_set_password_page_refuses_forged_posts,
    |srv| async move {
        let t = Tenant::new(&srv).await;
        let email = unique_email("forge");
        let user = invited(&srv, &t, &email).await;
        let invite = &requests(&srv, &user, "invite").await[0];
        let link = format!(
            "{}setpassword/{}/{}",
            srv.base,
            id(invite),
            invite["secret"].as_str().unwrap()
        );
        let page = srv.plain.get(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let cookie = page
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_owned();
        let html = page.text().await.unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_owned();
        let fields = [
            ("csrf", csrf.as_str()),
            ("password", "forged-password"),
            ("confirm", "forged-password"),
        ];
        // No cookie, a wrong token, another origin: refused, and the link still works.
        let post = |cookie: Option<&str>, origin: Option<&str>, fields: &[(&str, &str)]| {
            let mut req = srv.plain.post(&link).form(fields);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            if let Some(o) = origin {
                req = req.header("origin", o);
            }
            async move { req.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(post(None, None, &fields).await, 403);
        let wrong = [
            ("csrf", "00000000000000000000000000000000"),
            ("password", "forged-password"),
            ("confirm", "forged-password"),
        ];
        assert_eq!(post(Some(&cookie), None, &wrong).await, 403);
        assert_eq!(
            post(Some(&cookie), Some("https://evil.example"), &fields).await,
            403
        );
        assert_eq!(
            json_post(
                &srv,
                "auth/login",
                &json!({"email": email, "password": "forged-password",
                "codeChallenge": "x".repeat(43), "codeChallengeMethod": "S256"})
            )
            .await
            .status,
            400
        );
        // The genuine post sets it.
        assert_eq!(post(Some(&cookie), None, &fields).await, 200);
        sign_in(&srv.plain, &srv.base, &email, "forged-password").await;
    }
);

/// A link past its lifetime is refused, and stays unused.
async fn expired(backend: Backend) {
    let Some((url, dir)) = fresh_database(backend).await else {
        return;
    };
    let srv = TestServer::start_with(backend, &url, dir, |c| {
        c.invite_link_ttl = Duration::from_millis(300);
    })
    .await;
    let t = Tenant::new(&srv).await;
    let email = unique_email("late");
    let user = invited(&srv, &t, &email).await;
    let invite = &requests(&srv, &user, "invite").await[0];
    tokio::time::sleep(Duration::from_millis(400)).await;
    let secret = invite["secret"].as_str().unwrap();
    let r = set(&srv, &id(invite), secret, "long-enough-1").await;
    assert_eq!(r.outcome(400), "Request expired");
    let again = srv
        .get(&format!("UserSecurityRequest/{}", id(invite)))
        .await;
    assert!(again.body.get("used").is_none(), "{}", again.text);
}

per_backend!(expired_links_are_refused, super::expired);
