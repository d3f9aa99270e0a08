//! The sign-in pages in a real browser: headless Chromium driven through chromedriver, on both
//! backends. A person types an email and a wrong, then the right password, the browser goes back
//! to the app (a small server of the test) with a code that redeems; the page's inline style is
//! allowed by its CSP while nothing else is; then "continue as" with the session cookie.
//!
//! Needs `/usr/bin/chromium` and `chromedriver` (Debian's `chromium` and `chromium-driver`,
//! which `.ci/run` installs). Without them the test is skipped, except under CI, where it fails.

mod common;

use std::time::{Duration, Instant};

use common::browser::browser;
use common::{form, pkce_pair};
use fantoccini::{Client, Locator};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The app the browser is sent back to: answers every request with a small page.
async fn app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = "<!DOCTYPE html><title>App</title><h1 id=\"done\">Back in the app</h1>";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{}/callback", addr.port())
}

/// Waits until the browser is at a URL starting with `prefix`; that URL.
async fn wait_for_url(c: &Client, prefix: &str) -> url::Url {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = c.current_url().await.unwrap();
        if url.as_str().starts_with(prefix) {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "still at {url}: {}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// The code grant for the code the browser came back with.
async fn redeem(
    srv: &common::TestServer,
    client: &str,
    back: &url::Url,
    verifier: &str,
) -> common::Resp {
    let r = form(
        srv,
        "oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", &param(back, "code")),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

fn param(url: &url::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

e2e!(sign_in_in_a_real_browser, |srv| async move {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let callback = app().await;
    let client = srv
        .create(
            &json!({"resourceType": "ClientApplication", "name": "Browser App",
            "redirectUris": [callback]}),
        )
        .await;
    let client_id = client["id"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce_pair();
    let authorize = |challenge: &str| {
        let mut u = url::Url::parse(&format!("{}oauth2/authorize", srv.base)).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &callback)
            .append_pair("scope", "openid profile")
            .append_pair("state", "browser-state")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        u.to_string()
    };
    c.goto(&authorize(&challenge)).await.unwrap();
    let title = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(title, "Sign in to Browser App");
    // The inline stylesheet applies (its hash is in the CSP): the card is white, not the page grey.
    let bg = c
        .execute(
            "return getComputedStyle(document.querySelector('main')).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bg, json!("rgb(255, 255, 255)"));
    // A script injected into the page is not allowed to run.
    let blocked = c
        .execute(
            "const s = document.createElement('script'); s.textContent = 'window.ran = 1'; \
             document.body.appendChild(s); return window.ran === undefined",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(blocked, json!(true));

    type_into(&c, "#email", common::ADMIN_EMAIL).await;
    type_into(&c, "#password", "wrong-password").await;
    click(&c, "#submit").await;
    let alert = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".error"))
        .await
        .unwrap();
    assert_eq!(alert.text().await.unwrap(), "Email or password is invalid");
    // The email stays filled in; the password does not.
    let password = c.find(Locator::Css("#password")).await.unwrap();
    assert_eq!(password.prop("value").await.unwrap().as_deref(), Some(""));
    password.send_keys(common::ADMIN_PASSWORD).await.unwrap();
    click(&c, "#submit").await;
    let back = wait_for_url(&c, &callback).await;
    assert_eq!(param(&back, "state"), "browser-state");
    assert_eq!(param(&back, "iss"), srv.base);
    let r = redeem(&srv, &client_id, &back, &verifier).await;
    assert!(r.body["access_token"].is_string());

    // Again: the browser's session cookie makes it "continue as".
    let (verifier, challenge) = pkce_pair();
    c.goto(&authorize(&challenge)).await.unwrap();
    let body = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("You are signed in as"), "{body}");
    click(&c, "#continue").await;
    let back = wait_for_url(&c, &callback).await;
    redeem(&srv, &client_id, &back, &verifier).await;
    c.close().await.unwrap();
});

/// A project with a Practitioner who signs in with a password, and two patients, Alice Anders
/// (born 1970-01-01) and Bob Brown, each with an Observation: the project, the email and the
/// patients' ids.
async fn chart(srv: &common::TestServer) -> (common::tenant::Tenant<'_>, String, [String; 2]) {
    let t = common::tenant::Tenant::new(srv).await;
    let admin = t.member(None, json!([]), true).await;
    let email = format!("doc-{}@example.org", &oxmed_repo::meta::new_id()[24..]);
    let r = srv
        .plain
        .post(format!("{}admin/projects/{}/invite", srv.base, t.project))
        .bearer_auth(&admin.token)
        .json(
            &json!({"resourceType": "Practitioner", "firstName": "Doc", "lastName": "Tor",
            "email": email, "password": "correct-horse-battery", "sendEmail": false}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut ids = Vec::new();
    for patient in [
        json!({"resourceType": "Patient",
            "name": [{"given": ["Alice"], "family": "Anders"}], "birthDate": "1970-01-01"}),
        json!({"resourceType": "Patient", "name": [{"given": ["Bob"], "family": "Brown"}]}),
    ] {
        let p = common::tenant::id(&t.put(patient).await);
        t.put(json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "glucose"}, "subject": {"reference": format!("Patient/{p}")}}))
            .await;
        ids.push(p);
    }
    let [a, b]: [String; 2] = ids.try_into().unwrap();
    (t, email, [a, b])
}

/// Waits (at most 15 s) until the page has an element matching `css`.
async fn wait_for(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap();
}

/// Signs in on the sign-in page and waits for the patient picker.
async fn sign_in_as(c: &Client, email: &str) {
    wait_for(c, "#email").await;
    type_into(c, "#email", email).await;
    type_into(c, "#password", "correct-horse-battery").await;
    click(c, "#submit").await;
    wait_for(c, "button[name=patient]").await;
}

/// Searches the picker by name and waits for the answer.
async fn search_patients(c: &Client, name: &str) {
    type_into(c, "#name", name).await;
    click(c, "#search").await;
    wait_for(c, &format!("#name[value={name}]")).await;
}

/// The patients the picker shows, sorted.
async fn listed(c: &Client) -> Vec<String> {
    let mut names = Vec::new();
    for b in c
        .find_all(Locator::Css("button[name=patient]"))
        .await
        .unwrap()
    {
        names.push(b.text().await.unwrap());
    }
    names.sort();
    names
}

e2e!(standalone_launch_in_a_real_browser, |srv| async move {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let callback = app().await;
    let (t, email, [alice, bob]) = chart(&srv).await;
    let client_id = common::tenant::id(
        &t.put(
            json!({"resourceType": "ClientApplication", "name": "Chart App",
            "redirectUris": [callback]}),
        )
        .await,
    );
    let (verifier, challenge) = pkce_pair();
    let mut u = url::Url::parse(&format!("{}oauth2/authorize", srv.base)).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &callback)
        .append_pair(
            "scope",
            "openid fhirUser launch/patient patient/Observation.rs patient/Patient.rs",
        )
        .append_pair("state", "standalone")
        .append_pair("aud", &format!("{}fhir/R4", srv.base))
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    c.goto(u.as_str()).await.unwrap();
    sign_in_as(&c, &email).await;
    // The picker lists the patients the user may see; a search narrows it.
    assert_eq!(
        listed(&c).await,
        vec![
            "Alice Anders born 1970-01-01".to_owned(),
            "Bob Brown".to_owned()
        ]
    );
    search_patients(&c, "bro").await;
    assert_eq!(listed(&c).await, vec!["Bob Brown".to_owned()]);
    click(&c, "button[name=patient]").await;

    // The person approves the scopes, clearing one.
    wait_for(&c, "#allow").await;
    click(&c, "input[value='patient/Patient.rs']").await;
    click(&c, "#allow").await;
    let back = wait_for_url(&c, &callback).await;
    assert_eq!(param(&back, "state"), "standalone");
    let r = redeem(&srv, &client_id, &back, &verifier).await;
    assert_eq!(r.body["patient"], bob.as_str());
    assert_eq!(
        r.body["scope"],
        "openid fhirUser launch/patient patient/Observation.rs"
    );
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let app = common::tenant::Member::with_token(&srv, &token);
    assert_eq!(app.ids("Observation").await.len(), 1);
    assert!(
        app.ids(&format!("Observation?subject=Patient/{alice}"))
            .await
            .is_empty()
    );
    // The cleared scope was not granted.
    assert_eq!(app.get(&format!("Patient/{bob}")).await.status, 403);
    c.close().await.unwrap();
});

/// The SMART JavaScript client's browser bundle, as `.ci/install-test-tools` puts it; `None`
/// (a failure under CI) when it is not there.
fn fhirclient_bundle() -> Option<Vec<u8>> {
    let path = std::env::var("OXMED_TEST_FHIRCLIENT").unwrap_or_else(|_| {
        "/usr/local/share/oxmed-test/fhirclient-2.6.3/fhir-client.js".to_owned()
    });
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI needs {path} (.ci/install-test-tools): {e}"
            );
            eprintln!("skipped: no fhirclient bundle at {path}");
            None
        }
    }
}

/// A SMART app on its own origin: `/launch.html` starts a standalone launch with the SMART
/// JavaScript client, `/app.html` finishes it and shows what it read. Its origin.
async fn smart_app(bundle: Vec<u8>, iss: String, client_id: String, scope: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let launch = format!(
        "<!DOCTYPE html><title>Launch</title><script src=\"/fhir-client.js\"></script><script>\
FHIR.oauth2.authorize({{iss: {}, clientId: {}, scope: {}, redirectUri: \"/app.html\", \
pkceMode: \"required\"}}).catch(function (e) {{ document.title = \"error: \" + e; }});</script>",
        json!(iss),
        json!(client_id),
        json!(scope)
    );
    let app = "<!DOCTYPE html><title>App</title><pre id=\"out\">waiting</pre>\
<script src=\"/fhir-client.js\"></script><script>\
function show(v) { var o = document.getElementById('out'); o.textContent = v; o.id = 'done'; }\
FHIR.oauth2.ready().then(function (client) {\
  return Promise.all([client.request('Observation'), client.patient.read()]).then(function (r) {\
    show(JSON.stringify({patient: client.patient.id, family: r[1].name[0].family,\
      subjects: (r[0].entry || []).map(function (e) { return e.resource.subject.reference; }),\
      scope: client.state.tokenResponse.scope}));\
  });\
}).catch(function (e) { show('error: ' + e); });</script>"
        .to_owned();
    let bundle = std::sync::Arc::new(bundle);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (launch, app, bundle) = (launch.clone(), app.clone(), bundle.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or("/");
                let (kind, body): (&str, Vec<u8>) = match path {
                    "/launch.html" => ("text/html", launch.into_bytes()),
                    "/app.html" => ("text/html", app.into_bytes()),
                    "/fhir-client.js" => ("text/javascript", bundle.to_vec()),
                    _ => ("text/plain", b"not here".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    origin
}

e2e!(
    a_smart_app_launches_standalone_with_fhirclient,
    |srv| async move {
        let Some(bundle) = fhirclient_bundle() else {
            return;
        };
        let Some((_driver, c)) = browser().await else {
            return;
        };
        let (t, email, patients) = chart(&srv).await;
        // A public client (no secret: PKCE) of the app's origin. Its id is known before the app
        // serves, and the app's origin before the client is written.
        let client_id = oxmed_repo::meta::new_id();
        let scope = "openid fhirUser launch/patient patient/*.rs";
        let origin = smart_app(
            bundle,
            format!("{}fhir/R4", srv.base),
            client_id.clone(),
            scope,
        )
        .await;
        oxmed_auth::records::put(
            srv.auth.repo(),
            &t.project,
            json!({"resourceType": "ClientApplication", "id": client_id, "name": "Chart App",
            "redirectUris": [format!("{origin}/app.html")], "allowedOrigin": [origin]}),
        )
        .await
        .unwrap();

        c.goto(&format!("{origin}/launch.html")).await.unwrap();
        // The client found the endpoints through discovery and sent the browser to sign in.
        sign_in_as(&c, &email).await;
        search_patients(&c, "Brown").await;
        click(&c, "button[name=patient]").await;
        wait_for(&c, "#allow").await;
        click(&c, "#allow").await;
        // Back in the app: the client redeemed the code and read FHIR data across origins.
        let out = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#done"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let result: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}"));
        assert_eq!(result["patient"], patients[1].as_str(), "{out}");
        assert_eq!(result["family"], "Brown");
        assert_eq!(
            result["subjects"],
            json!([format!("Patient/{}", patients[1])]),
            "only the chosen patient's data: {out}"
        );
        assert_eq!(result["scope"], scope);
        c.close().await.unwrap();
    }
);
