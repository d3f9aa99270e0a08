//! Emails end to end (issue 6, spec §6), on both backends: a real SMTP server process
//! (`aiosmtpd`) receives the invite and reset emails, a real browser (headless Chromium) follows
//! their links to the set-password page, and the new password then signs in through
//! `/auth/login` and `/oauth2/token`. A link works once.

mod common;

use std::time::Duration;

use common::browser::browser;
use common::smtp::SmtpServer;
use common::tenant::Tenant;
use common::{Backend, TestServer, fresh_database, json_post, sign_in};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

async fn server(backend: Backend, smtp: &SmtpServer) -> Option<TestServer> {
    let (url, dir) = fresh_database(backend).await?;
    let smtp_url = smtp.url();
    Some(
        TestServer::start_with(backend, &url, dir, move |c| {
            c.smtp_url = Some(smtp_url);
            c.email_from = "Clinic Admin <admin@clinic.example>".into();
        })
        .await,
    )
}

/// `POST /admin/projects/<project>/invite` as `token`: the status and the JSON body.
async fn post_invite(srv: &TestServer, token: &str, project: &str, body: &Value) -> (u16, Value) {
    let r = srv
        .plain
        .post(format!("{}admin/projects/{project}/invite", srv.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn submit(c: &Client) {
    c.find(Locator::Css("#submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// The text of the page's `<main>` once it shows one of `expected` (the page may be between
/// two loads while this looks).
async fn main_text_any(c: &Client, expected: &[&str]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = match c.find(Locator::Css("main")).await {
            Ok(m) => m.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if expected.iter().any(|e| text.contains(e)) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "none of {expected:?} on the page: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn main_text(c: &Client, expected: &str) -> String {
    main_text_any(c, &[expected]).await
}

/// Opens a set-password link in the browser and submits `password` twice.
async fn set_password_in_browser(c: &Client, link: &str, password: &str) -> String {
    c.goto(link).await.unwrap();
    main_text(c, "Choose a password").await;
    type_into(c, "#password", password).await;
    type_into(c, "#confirm", password).await;
    submit(c).await;
    main_text_any(c, &["Password set", "Already used"]).await
}

async fn login_status(srv: &TestServer, email: &str, password: &str) -> u16 {
    json_post(
        srv,
        "auth/login",
        &json!({"email": email, "password": password, "codeChallenge": "x".repeat(43),
            "codeChallengeMethod": "S256"}),
    )
    .await
    .status
}

async fn me_project(srv: &TestServer, token: &str) -> Value {
    common::me(srv, token).await["project"]["id"].clone()
}

async fn run(backend: Backend) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let Some(srv) = server(backend, &smtp).await else {
        return;
    };
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let t = Tenant::new(&srv).await;
    let admin = t.member(None, json!([]), true).await;
    let email = format!("grace-{}@example.org", &oxmed_repo::meta::new_id()[24..]);

    // Invite with an email: the message arrives with a link to this server's page.
    let (status, membership) = post_invite(
        &srv,
        &admin.token,
        &t.project,
        &json!({"resourceType": "Practitioner", "firstName": "Grace",
            "lastName": "Hopper", "email": email, "sendEmail": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        membership["resourceType"], "ProjectMembership",
        "{membership}"
    );
    let welcome = smtp.wait_for(0, &email, "Welcome to oxmed").await;
    assert!(
        welcome
            .header("from")
            .is_some_and(|f| f.contains("admin@clinic.example")),
        "{welcome:?}"
    );
    assert!(welcome.body.contains("Hello Grace"), "{}", welcome.body);
    assert!(welcome.body.contains("Clinic"), "{}", welcome.body);
    let link = welcome
        .link(&format!("{}setpassword/", srv.base))
        .unwrap_or_else(|| panic!("no link in {}", welcome.body));
    // Nobody can sign in yet: the invite set a random password.
    assert_eq!(login_status(&srv, &email, "first-password-1").await, 400);

    // The browser follows the link; mismatched passwords are refused on the page.
    c.goto(&link).await.unwrap();
    main_text(&c, "Choose a password").await;
    type_into(&c, "#password", "first-password-1").await;
    type_into(&c, "#confirm", "first-password-2").await;
    submit(&c).await;
    main_text(&c, "The passwords do not match.").await;
    let done = set_password_in_browser(&c, &link, "first-password-1").await;
    assert!(done.contains("Password set"), "{done}");

    // The new password signs in through /auth/login and /oauth2/token, into the project.
    let token = sign_in(&srv.plain, &srv.base, &email, "first-password-1").await;
    assert_eq!(me_project(&srv, &token).await, json!(t.project));
    // The link works once, in the browser and through the API.
    let again = set_password_in_browser(&c, &link, "other-password-1").await;
    assert!(again.contains("Already used"), "{again}");
    let parts: Vec<&str> = link.rsplitn(3, '/').collect();
    let r = json_post(
        &srv,
        "auth/setpassword",
        &json!({"id": parts[1], "secret": parts[0], "password": "other-password-1"}),
    )
    .await;
    assert_eq!(r.outcome(400), "Already used");
    assert_eq!(login_status(&srv, &email, "other-password-1").await, 400);

    // Reset, asked for on the reset page in the browser.
    let seen = smtp.messages().len();
    c.goto(&format!("{}resetpassword", srv.base)).await.unwrap();
    main_text(&c, "Reset your password").await;
    type_into(&c, "#email", &email).await;
    submit(&c).await;
    main_text(&c, "Check your email").await;
    let reset = smtp.wait_for(seen, &email, "oxmed Password Reset").await;
    let reset_link = reset
        .link(&format!("{}setpassword/", srv.base))
        .unwrap_or_else(|| panic!("no link in {}", reset.body));
    assert_ne!(reset_link, link);
    let done = set_password_in_browser(&c, &reset_link, "second-password-2").await;
    assert!(done.contains("Password set"), "{done}");
    let token = sign_in(&srv.plain, &srv.base, &email, "second-password-2").await;
    assert_eq!(me_project(&srv, &token).await, json!(t.project));
    assert_eq!(login_status(&srv, &email, "first-password-1").await, 400);
    let again = set_password_in_browser(&c, &reset_link, "third-password-3").await;
    assert!(again.contains("Already used"), "{again}");

    // The JSON endpoint: an unknown address answers the same and sends nothing.
    let seen = smtp.messages().len();
    let r = json_post(
        &srv,
        "auth/resetpassword",
        &json!({"email": "nobody-here@example.org"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], "ok");
    let r = json_post(&srv, "auth/resetpassword", &json!({"email": email})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    smtp.wait_for(seen, &email, "oxmed Password Reset").await;
    assert_eq!(
        smtp.messages().len(),
        seen + 1,
        "only the known address got a message"
    );

    // Invited into a second project, the person already has an account: a welcome without a
    // link, and no new password to set.
    let seen = smtp.messages().len();
    let second = Tenant::new(&srv).await;
    let second_admin = second.member(None, json!([]), true).await;
    let (status, _) = post_invite(
        &srv,
        &second_admin.token,
        &second.project,
        &json!({"resourceType": "Practitioner", "firstName": "Grace",
            "lastName": "Hopper", "email": email}),
    )
    .await;
    assert_eq!(status, 200);
    let welcome = smtp
        .wait_for(seen, &email, "oxmed: Welcome to Clinic")
        .await;
    assert!(welcome.link("setpassword/").is_none(), "{}", welcome.body);
    assert_eq!(login_status(&srv, &email, "second-password-2").await, 200);
    c.close().await.unwrap();
}

per_backend!(invite_and_reset_emails, super::run);

/// An email the SMTP server does not take at once is tried again until it does; the invite
/// itself succeeds, and says the email is not sent yet (Medplum's shape).
async fn retried(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some((url, dir)) = fresh_database(backend).await else {
        return;
    };
    let srv = TestServer::start_with(backend, &url, dir, move |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    })
    .await;
    let t = Tenant::new(&srv).await;
    let admin = t.member(None, json!([]), true).await;
    let email = format!("late-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    let (status, body) = post_invite(
        &srv,
        &admin.token,
        &t.project,
        &json!({"resourceType": "Practitioner", "firstName": "Late",
            "lastName": "Mail", "email": email}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert_eq!(body["id"], "ok");
    assert_eq!(body["issue"][0]["severity"], "error");
    // The invite was written all the same.
    let users = srv.get(&format!("User?email={email}")).await;
    assert_eq!(users.body["entry"].as_array().map_or(0, Vec::len), 1);
    // The SMTP server comes up; the message gets through on a later attempt.
    let Some(smtp) = SmtpServer::start_on(port).await else {
        return;
    };
    let m = smtp.wait_for(0, &email, "Welcome to oxmed").await;
    assert!(m.link("setpassword/").is_some(), "{}", m.body);
}

per_backend!(undelivered_email_is_retried, super::retried);

/// A password reset answers before its request is written and its email sent: here the SMTP
/// server accepts connections and never speaks, which holds a send for its whole attempt
/// timeout (30 s), and the answers for a known and an unknown address both come at once. Sent
/// inline, the known address's answer came an SMTP exchange after the unknown one's, and the
/// difference told which addresses have accounts.
async fn reset_in_background(backend: Backend) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let Some((url, dir)) = fresh_database(backend).await else {
        return;
    };
    let srv = TestServer::start_with(backend, &url, dir, move |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.email_attempt_timeout = Duration::from_secs(30);
    })
    .await;
    let t = Tenant::new(&srv).await;
    let admin = t.member(None, json!([]), true).await;
    let email = format!("quiet-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    let (status, body) = post_invite(
        &srv,
        &admin.token,
        &t.project,
        &json!({"resourceType": "Practitioner", "firstName": "Quiet",
            "lastName": "Mail", "email": email, "sendEmail": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user = body["user"]["reference"].as_str().unwrap().to_owned();
    let unknown = format!("nobody-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    for address in [&unknown, &email] {
        let started = std::time::Instant::now();
        let r = json_post(&srv, "auth/resetpassword", &json!({"email": address})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["id"], "ok");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{address}: answered after {:?}",
            started.elapsed()
        );
    }
    // The known address's request is written all the same.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = srv.get(&format!("UserSecurityRequest?user={user}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let resets = r.body["entry"].as_array().map_or(0, |e| {
            e.iter()
                .filter(|e| e["resource"]["type"] == "reset")
                .count()
        });
        if resets == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reset request: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

per_backend!(
    a_reset_answers_before_its_email_is_sent,
    super::reset_in_background
);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private CA and a certificate it signed for `localhost`, made with `openssl`: the CA's
/// PEM, and the certificate's and key's paths.
fn certificates(dir: &std::path::Path) -> (Vec<u8>, String, String) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=oxmed test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "smtp.key",
        "-out",
        "smtp.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "smtp.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "smtp.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    let path = |f: &str| dir.join(f).display().to_string();
    (
        std::fs::read(dir.join("ca.pem")).unwrap(),
        path("smtp.pem"),
        path("smtp.key"),
    )
}

/// Invites someone with an email through `srv`: whether the answer says it was sent.
async fn invite_sent(srv: &TestServer, email: &str) -> bool {
    let t = Tenant::new(srv).await;
    let admin = t.member(None, json!([]), true).await;
    let (status, body) = post_invite(
        srv,
        &admin.token,
        &t.project,
        &json!({"resourceType": "Practitioner", "firstName": "Tls",
            "lastName": "Test", "email": email}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["resourceType"] == "ProjectMembership"
}

async fn mail_server(backend: Backend, url: String, ca: Option<Vec<u8>>) -> Option<TestServer> {
    let (db, dir) = fresh_database(backend).await?;
    Some(
        TestServer::start_with(backend, &db, dir, move |c| {
            c.smtp_url = Some(url);
            c.smtp_ca_pem = ca;
        })
        .await,
    )
}

/// STARTTLS and TLS from the start, to a server whose certificate a private CA signed: sent
/// when that CA is trusted (`OXMED_SMTP_CA_FILE`), refused when it is not.
async fn over_tls(backend: Backend) {
    let dir = common::TempDir::new("oxmed_smtp_tls");
    let (ca, cert, key) = certificates(&dir.0);
    let starttls_port = free_port();
    let tls = [
        "--tlscert".to_owned(),
        cert.clone(),
        "--tlskey".to_owned(),
        key.clone(),
    ];
    let Some(starttls) = SmtpServer::start_with(starttls_port, &tls).await else {
        return;
    };
    let url = format!("smtp://localhost:{starttls_port}?tls=required");
    let Some(srv) = mail_server(backend, url.clone(), Some(ca.clone())).await else {
        return;
    };
    let email = format!("tls-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    assert!(invite_sent(&srv, &email).await);
    starttls.wait_for(0, &email, "Welcome to oxmed").await;
    // The same server without the CA: its certificate is not trusted, nothing is sent.
    let untrusting = mail_server(backend, url, None).await.unwrap();
    let other = format!(
        "untrusted-{}@example.org",
        &oxmed_repo::meta::new_id()[24..]
    );
    assert!(!invite_sent(&untrusting, &other).await);

    let wrapped_port = free_port();
    let wrapped_tls = ["--smtpscert".to_owned(), cert, "--smtpskey".to_owned(), key];
    let wrapped = SmtpServer::start_with(wrapped_port, &wrapped_tls)
        .await
        .unwrap();
    let srv = mail_server(
        backend,
        format!("smtps://localhost:{wrapped_port}"),
        Some(ca),
    )
    .await
    .unwrap();
    let email = format!("smtps-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    assert!(invite_sent(&srv, &email).await);
    wrapped.wait_for(0, &email, "Welcome to oxmed").await;
    assert!(
        starttls
            .messages()
            .iter()
            .all(|m| m.header("to").is_none_or(|t| !t.contains("untrusted"))),
        "nothing reached the server through an untrusted connection"
    );
}

per_backend!(emails_go_over_starttls_and_tls, super::over_tls);

/// SMTP AUTH (the account in the URL), over STARTTLS: sent with the right password, refused
/// with a wrong one.
async fn authenticated(backend: Backend) {
    let dir = common::TempDir::new("oxmed_smtp_auth");
    let (ca, cert, key) = certificates(&dir.0);
    let port = free_port();
    let Some(smtp) =
        SmtpServer::start_authenticating(port, &cert, &key, "mailer", "s3cret pass").await
    else {
        return;
    };
    let good = format!("smtp://mailer:s3cret%20pass@localhost:{port}?tls=required");
    let Some(srv) = mail_server(backend, good, Some(ca.clone())).await else {
        return;
    };
    let email = format!("auth-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    assert!(invite_sent(&srv, &email).await);
    smtp.wait_for(0, &email, "Welcome to oxmed").await;
    let bad = format!("smtp://mailer:wrong@localhost:{port}?tls=required");
    let refused = mail_server(backend, bad, Some(ca)).await.unwrap();
    let other = format!("refused-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    // (aiosmtpd leaves a refused login waiting: the attempt's time limit ends it.)
    assert!(!invite_sent(&refused, &other).await);
    assert_eq!(smtp.messages().len(), 1);
}

per_backend!(emails_authenticate_to_the_smtp_server, super::authenticated);

/// A new registration gets an email whose link verifies the address in the browser, once.
async fn verification(backend: Backend) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let Some(srv) = server(backend, &smtp).await else {
        return;
    };
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let email = format!("new-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    let r = json_post(
        &srv,
        "auth/newuser",
        &json!({"firstName": "Ada", "lastName": "Byron", "email": email,
            "password": "analytical-engine"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let user_email_verified = || {
        let srv = &srv;
        let email = email.clone();
        async move {
            srv.get(&format!("User?email={email}")).await.body["entry"][0]["resource"]["emailVerified"].clone()
        }
    };
    assert_ne!(user_email_verified().await, json!(true));
    let m = smtp
        .wait_for(0, &email, "oxmed: Verify your email address")
        .await;
    assert!(m.body.contains("Hello Ada"), "{}", m.body);
    let link = m
        .link(&format!("{}verifyemail/", srv.base))
        .unwrap_or_else(|| panic!("no link in {}", m.body));
    // Opening the link changes nothing; the button does.
    c.goto(&link).await.unwrap();
    main_text(&c, "Verify your email").await;
    assert_ne!(user_email_verified().await, json!(true));
    submit(&c).await;
    main_text(&c, "Email verified").await;
    assert_eq!(user_email_verified().await, json!(true));
    c.goto(&link).await.unwrap();
    main_text(&c, "Verify your email").await;
    submit(&c).await;
    main_text(&c, "Already used").await;
    c.close().await.unwrap();
}

per_backend!(
    registration_email_is_verified_from_the_mailbox,
    super::verification
);
