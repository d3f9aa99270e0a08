//! `/oauth2/authorize` and its sign-in pages over HTTP (spec §3.5), on both backends: request
//! errors (plain text, or a redirect with `error`, `state` and `iss`), PKCE required, the page
//! forms posted as a browser would (CSRF cookie and field, Origin), MFA and project choice on the
//! pages, existing sessions with `prompt` and `id_token_hint`. The same flow in a real browser is
//! in `browser.rs`.

mod common;

use std::collections::HashMap;

use common::{TestServer, claims, form, get_with, pkce_pair};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const ADMIN: [(&str, &str); 2] = [
    ("email", common::ADMIN_EMAIL),
    ("password", common::ADMIN_PASSWORD),
];

/// A public client (no secret) of the admin's project that may redirect to [`REDIRECT`].
async fn public_client(srv: &TestServer) -> String {
    let c = srv
        .create(
            &json!({"resourceType": "ClientApplication", "name": "Test App",
            "redirectUris": [REDIRECT]}),
        )
        .await;
    c["id"].as_str().unwrap().to_owned()
}

/// A browser without JavaScript: keeps cookies, follows no redirects.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
    base: String,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> String {
        self.headers["location"].to_str().unwrap().to_owned()
    }

    /// The `name`/`value` pairs of the hidden inputs of the page's (first) form.
    fn hidden(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for input in self.text.split("<input type=\"hidden\" ").skip(1) {
            let name = between(input, "name=\"", "\"");
            let value = between(input, "value=\"", "\"");
            out.push((
                name.to_owned(),
                html_escape::decode_html_entities(value).into_owned(),
            ));
        }
        out
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).unwrap() + start.len();
    let to = s[from..].find(end).unwrap() + from;
    &s[from..to]
}

fn query_of(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

impl Browser {
    fn new(srv: &TestServer) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            base: srv.base.clone(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for c in headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (k, v) = c.split(';').next().unwrap().split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
        Page {
            status,
            headers,
            text: r.text().await.unwrap(),
        }
    }

    async fn get_owned(&mut self, query: &[(String, String)]) -> Page {
        let q: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.get(&q).await
    }

    async fn get(&mut self, query: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .get(format!("{}oauth2/authorize", self.base))
            .query(query)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.take(r).await
    }

    /// Posts a page's form: its hidden fields plus `fields`, from this server's origin.
    async fn submit(&mut self, page: &Page, fields: &[(&str, &str)]) -> Page {
        let origin = self.base.trim_end_matches('/').to_owned();
        self.submit_from(page, fields, &origin).await
    }

    async fn submit_from(&mut self, page: &Page, fields: &[(&str, &str)], origin: &str) -> Page {
        let mut body = page.hidden();
        body.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let r = self
            .http
            .post(format!("{}oauth2/authorize", self.base))
            .header("cookie", self.cookie_header())
            .header("origin", origin)
            .form(&body)
            .send()
            .await
            .unwrap();
        self.take(r).await
    }
}

fn request<'a>(client: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

async fn redeem(srv: &TestServer, client: &str, code: &str, verifier: &str) -> Value {
    let r = form(
        srv,
        "oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

e2e!(authorization_request_errors, |srv| async move {
    let client = public_client(&srv).await;
    let (_, challenge) = pkce_pair();
    let mut b = Browser::new(&srv);
    // Without a trustworthy client and redirect URI: plain text, no redirect.
    for (query, text) in [
        (vec![("response_type", "code")], "Client not found"),
        (
            vec![("client_id", "00000000-0000-4000-8000-000000000000")],
            "Client not found",
        ),
        (vec![("client_id", "not-a-uuid")], "Client not found"),
        (vec![("client_id", client.as_str())], "Missing redirect URI"),
        (
            vec![
                ("client_id", client.as_str()),
                ("redirect_uri", "http://127.0.0.1:9/callback/other"),
            ],
            "Invalid redirect URI",
        ),
    ] {
        let p = b.get(&query).await;
        assert_eq!(p.status, 400, "{query:?}");
        assert_eq!(p.text, text);
        assert!(p.headers.get("location").is_none());
    }
    // With them: back to the client with the error, the state and the issuer.
    let base = request(&client, &challenge);
    let with = |changes: &[(&'static str, Option<&'static str>)]| {
        let mut q: Vec<(&str, &str)> = base.clone();
        for (k, v) in changes {
            q.retain(|(name, _)| name != k);
            if let Some(v) = v {
                q.push((k, v));
            }
        }
        q
    };
    for (changes, error, description) in [
        (
            vec![("response_type", Some("token"))],
            "unsupported_response_type",
            "Unsupported response type",
        ),
        (vec![("scope", None)], "invalid_request", "Missing scope"),
        (
            vec![("request", Some("eyJ.x.y"))],
            "request_not_supported",
            "Unsupported request",
        ),
        (
            vec![("aud", Some("x"))],
            "invalid_request",
            "Invalid audience",
        ),
        (
            vec![("code_challenge_method", None)],
            "invalid_request",
            "Missing code challenge method",
        ),
        (
            vec![("code_challenge", None), ("code_challenge_method", None)],
            "invalid_request",
            "Missing code challenge",
        ),
        (
            vec![("code_challenge_method", Some("plain"))],
            "invalid_request",
            "Invalid code challenge method",
        ),
        (
            vec![("launch", Some("00000000-0000-4000-8000-000000000000"))],
            "invalid_request",
            "Invalid launch",
        ),
        (
            vec![("prompt", Some("none"))],
            "login_required",
            "Login required",
        ),
    ] {
        let p = b.get(&with(&changes)).await;
        assert_eq!(p.status, 302, "{changes:?}: {}", p.text);
        let location = p.location();
        assert!(location.starts_with(REDIRECT), "{location}");
        let q = query_of(&location);
        assert_eq!(q["error"], error, "{changes:?}");
        assert_eq!(q["error_description"], description, "{changes:?}");
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["iss"], srv.base);
        assert!(!q.contains_key("code"));
    }
    // The FHIR base is a fine audience.
    let fhir_aud = format!("{}fhir/R4", srv.base);
    let mut q = base.clone();
    q.push(("aud", &fhir_aud));
    assert_eq!(b.get(&q).await.status, 200);
});

e2e!(sign_in_pages_issue_a_code, |srv| async move {
    let client = public_client(&srv).await;
    let (verifier, challenge) = pkce_pair();
    let mut b = Browser::new(&srv);
    let page = b.get(&request(&client, &challenge)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    assert!(!page.text.contains("<script"), "no script on the page");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.text.contains("Sign in to Test App"));
    assert!(b.cookies.contains_key("oxmed-csrf"));

    // A form posted without the page's CSRF token, or from another origin, is refused.
    let mut stranger = Browser::new(&srv);
    let p = stranger.submit(&page, &ADMIN).await;
    assert_eq!(p.status, 403, "{}", p.text);
    let p = b
        .submit_from(&page, &ADMIN, "https://evil.example.com")
        .await;
    assert_eq!(p.status, 403, "{}", p.text);

    let p = b
        .submit(
            &page,
            &[
                ("email", common::ADMIN_EMAIL),
                ("password", "wrong-password"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(
        p.text.contains("Email or password is invalid"),
        "{}",
        p.text
    );
    assert!(
        p.text
            .contains(&format!("value=\"{}\"", common::ADMIN_EMAIL)),
        "the email is kept"
    );
    // Markup in a value is escaped, never echoed.
    let p = b
        .submit(
            &page,
            &[
                ("email", "\"><b>x</b>@x.com"),
                ("password", "wrong-password"),
            ],
        )
        .await;
    assert!(!p.text.contains("<b>x</b>"), "{}", p.text);

    let p = b.submit(&page, &ADMIN).await;
    assert_eq!(p.status, 303, "{}", p.text);
    let q = query_of(&p.location());
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], srv.base);
    assert!(b.cookies.contains_key(&format!("medplum-{client}")));
    let tokens = redeem(&srv, &client, &q["code"], &verifier).await;
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["aud"], client.as_str());
    assert_eq!(id["email"], common::ADMIN_EMAIL);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        get_with(&srv, "fhir/R4/Patient", &format!("Bearer {access}"))
            .await
            .status,
        200
    );

    // The session: "continue as" without a prompt, a code at once with prompt=none, the
    // sign-in page with prompt=login.
    let (verifier2, challenge2) = pkce_pair();
    let page = b.get(&request(&client, &challenge2)).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("You are signed in as"), "{}", page.text);
    assert!(page.text.contains(common::ADMIN_EMAIL));
    let p = b.submit(&page, &[]).await;
    assert_eq!(p.status, 303, "{}", p.text);
    let code = query_of(&p.location())["code"].clone();
    redeem(&srv, &client, &code, &verifier2).await;

    let (verifier3, challenge3) = pkce_pair();
    let mut q = request(&client, &challenge3);
    q.push(("prompt", "none"));
    let p = b.get(&q).await;
    assert_eq!(p.status, 302, "{}", p.text);
    let code = query_of(&p.location())["code"].clone();
    redeem(&srv, &client, &code, &verifier3).await;

    let mut q = request(&client, &challenge3);
    q.push(("prompt", "login"));
    let p = b.get(&q).await;
    assert!(p.text.contains("name=\"password\""), "{}", p.text);

    // id_token_hint is only a hint: without the session cookie there is no session, and a
    // hint that does not name the session's user means none either.
    let hint = tokens["id_token"].as_str().unwrap().to_owned();
    let (verifier4, challenge4) = pkce_pair();
    let with_hint = |hint: &str| {
        let mut q: Vec<(String, String)> = request(&client, &challenge4)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        q.push(("prompt".into(), "none".into()));
        q.push(("id_token_hint".into(), hint.to_owned()));
        q
    };
    let mut fresh = Browser::new(&srv);
    let p = fresh.get_owned(&with_hint(&hint)).await;
    assert_eq!(query_of(&p.location())["error"], "login_required");
    let p = b.get_owned(&with_hint("not-a-token")).await;
    assert_eq!(query_of(&p.location())["error"], "login_required");
    let p = b.get_owned(&with_hint(&hint)).await;
    assert_eq!(p.status, 302, "{}", p.text);
    let code = query_of(&p.location())["code"].clone();
    redeem(&srv, &client, &code, &verifier4).await;

    // After logout the session is gone.
    let out = srv
        .plain
        .post(format!("{}oauth2/logout", srv.base))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let mut q = request(&client, &challenge4);
    q.push(("prompt", "none"));
    let p = b.get(&q).await;
    assert_eq!(query_of(&p.location())["error"], "login_required");
});

e2e!(
    sign_in_pages_with_mfa_and_project_choice,
    |srv| async move {
        let client = public_client(&srv).await;
        // A second profile of the admin in the same project: the pages ask which one.
        let me = get_with(&srv, "auth/me", &format!("Bearer {}", srv.token)).await;
        let project = me.body["project"]["id"].as_str().unwrap().to_owned();
        let user = me.body["user"]["id"].as_str().unwrap().to_owned();
        let practitioner = srv
            .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Deputy"}]}))
            .await;
        let second = srv
        .create(&json!({"resourceType": "ProjectMembership",
            "project": {"reference": format!("Project/{project}"), "display": "Super Admin"},
            "user": {"reference": format!("User/{user}")},
            "profile": {"reference": format!("Practitioner/{}", practitioner["id"].as_str().unwrap()),
                "display": "Deputy profile"}}))
        .await;
        let second_id = second["id"].as_str().unwrap().to_owned();
        // And a second factor.
        let status = get_with(&srv, "auth/mfa/status", &format!("Bearer {}", srv.token)).await;
        let uri = status.body["enrollUri"].as_str().unwrap().to_owned();
        let secret = query_of(&uri)["secret"].clone();
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let enroll = srv
            .plain
            .post(format!("{}auth/mfa/enroll", srv.base))
            .header("authorization", format!("Bearer {}", srv.token))
            .json(&json!({"token": oxmed_auth::totp::code_at(&secret, now()).unwrap()}))
            .send()
            .await
            .unwrap();
        assert_eq!(enroll.status(), 200);

        let (verifier, challenge) = pkce_pair();
        let mut b = Browser::new(&srv);
        let page = b.get(&request(&client, &challenge)).await;
        let p = b.submit(&page, &ADMIN).await;
        assert_eq!(p.status, 200, "{}", p.text);
        assert!(p.text.contains("authenticator app"), "{}", p.text);
        assert!(
            !p.text.contains("code="),
            "no code before the second factor"
        );
        let p2 = b.submit(&p, &[("token", "000000")]).await;
        if oxmed_auth::totp::code_at(&secret, now()).unwrap() != "000000" {
            assert_eq!(p2.status, 400);
            assert!(p2.text.contains("Invalid MFA token"), "{}", p2.text);
        }
        // A step naming a login of another client is refused.
        let mut forged = p.hidden();
        for (k, v) in forged.iter_mut() {
            if k == "login" {
                *v = "00000000-0000-4000-8000-000000000000".into();
            }
        }
        let forged_page = Page {
            status: 200,
            headers: Default::default(),
            text: forged
                .iter()
                .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{v}\">"))
                .collect(),
        };
        let r = b
            .submit(
                &forged_page,
                &[(
                    "token",
                    &oxmed_auth::totp::code_at(&secret, now() + 30).unwrap(),
                )],
            )
            .await;
        assert_eq!(r.status, 400);

        let p = b
            .submit(
                &p,
                &[(
                    "token",
                    &oxmed_auth::totp::code_at(&secret, now() + 30).unwrap(),
                )],
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.text);
        assert!(p.text.contains("Choose a project"), "{}", p.text);
        assert!(p.text.contains("Deputy profile"), "{}", p.text);
        let p = b.submit(&p, &[("profile", &second_id)]).await;
        assert_eq!(p.status, 303, "{}", p.text);
        let code = query_of(&p.location())["code"].clone();
        let tokens = redeem(&srv, &client, &code, &verifier).await;
        let access = claims(tokens["access_token"].as_str().unwrap());
        assert_eq!(
            access["profile"],
            format!("Practitioner/{}", practitioner["id"].as_str().unwrap())
        );
    }
);

e2e!(an_ehr_launch_carries_its_context, |srv| async move {
    let client = public_client(&srv).await;
    let patient = srv
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Launched"}]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = srv
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Other"}]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let encounter = srv
        .create(
            &json!({"resourceType": "Encounter", "status": "in-progress",
            "class": {"code": "AMB"}, "subject": {"reference": format!("Patient/{patient}")}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let launch = srv
        .create(&json!({"resourceType": "SmartAppLaunch",
            "patient": {"reference": format!("Patient/{patient}")},
            "encounter": {"reference": format!("Encounter/{encounter}")}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (verifier, challenge) = pkce_pair();
    let scope = "openid fhirUser launch patient/*.rs";
    let mut q = request(&client, &challenge);
    q.retain(|(k, _)| *k != "scope");
    q.push(("scope", scope));
    q.push(("launch", &launch));
    let mut b = Browser::new(&srv);
    let page = b.get(&q).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let approve = b.submit(&page, &ADMIN).await;
    // The app asks for data: the person approves its scopes first.
    assert_eq!(approve.status, 200, "{}", approve.text);
    assert!(approve.text.contains("asks for:"), "{}", approve.text);
    assert!(approve.text.contains("value=\"patient/*.rs\""));
    let grant: Vec<(&str, &str)> = scope.split(' ').map(|w| ("grant", w)).collect();
    let back = b.submit(&approve, &grant).await;
    assert_eq!(back.status, 303, "{}", back.text);
    let code = query_of(&back.location())["code"].clone();
    let tokens = redeem(&srv, &client, &code, &verifier).await;
    assert_eq!(tokens["patient"], patient.as_str(), "{tokens}");
    assert_eq!(tokens["encounter"], encounter.as_str());
    assert_eq!(
        tokens["fhirContext"],
        json!([{"reference": format!("Encounter/{encounter}")}])
    );
    assert_eq!(tokens["need_patient_banner"], true);
    assert!(
        tokens["smart_style_url"]
            .as_str()
            .unwrap()
            .ends_with("fhir/R4/.well-known/smart-styles.json")
    );
    let id_token = common::claims(tokens["id_token"].as_str().unwrap());
    assert!(
        id_token["fhirUser"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/"),
        "{id_token}"
    );
    // The token reaches the launch's patient, not another.
    let access = tokens["access_token"].as_str().unwrap();
    let read = |path: String| {
        let (srv, access) = (&srv, access.to_owned());
        async move {
            common::get_with(srv, &format!("fhir/R4/{path}"), &format!("Bearer {access}"))
                .await
                .status
        }
    };
    assert_eq!(read(format!("Patient/{patient}")).await, 200);
    assert_eq!(read(format!("Encounter/{encounter}")).await, 200);
    assert_eq!(read(format!("Patient/{other}")).await, 404);
    // A `*` scope covers every type of the policy, each within the patient's compartment.
    let found = common::get_with(&srv, "fhir/R4/Encounter", &format!("Bearer {access}")).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["entry"].as_array().map(Vec::len), Some(1));

    // A launch of another project is refused at the authorization request.
    let foreign = common::tenant::Tenant::new(&srv).await;
    let foreign_launch = foreign
        .put(json!({"resourceType": "SmartAppLaunch",
            "patient": {"reference": format!("Patient/{other}")}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut q = request(&client, &challenge);
    q.push(("launch", &foreign_launch));
    let refused = b.get(&q).await;
    assert_eq!(refused.status, 302, "{}", refused.text);
    let why = query_of(&refused.location());
    assert_eq!(why["error"], "invalid_request");
    assert_eq!(why["error_description"], "Invalid launch");

    // With prompt=none no approval can be asked: consent_required.
    let smart = |extra: (&'static str, &'static str)| {
        let mut q = request(&client, &challenge);
        q.retain(|(k, _)| *k != "scope");
        q.push(("scope", scope));
        q.push(extra);
        q
    };
    let silent = b.get(&smart(("prompt", "none"))).await;
    assert_eq!(silent.status, 302, "{}", silent.text);
    assert_eq!(query_of(&silent.location())["error"], "consent_required");
    // Clearing every resource scope is a refusal, not the member's whole access.
    let page = b.get(&smart(("prompt", "login"))).await;
    let approve = b.submit(&page, &ADMIN).await;
    let back = b
        .submit(&approve, &[("grant", "openid"), ("grant", "launch")])
        .await;
    assert_eq!(back.status, 303, "{}", back.text);
    assert_eq!(query_of(&back.location())["error"], "access_denied");
    // And a forged form cannot grant what the app did not ask for.
    let page = b.get(&smart(("prompt", "login"))).await;
    let approve = b.submit(&page, &ADMIN).await;
    let back = b
        .submit(
            &approve,
            &[
                ("grant", "openid"),
                ("grant", "patient/*.rs"),
                ("grant", "offline_access"),
            ],
        )
        .await;
    let code = query_of(&back.location())["code"].clone();
    let tokens = redeem(&srv, &client, &code, &verifier).await;
    assert_eq!(tokens["scope"], "openid patient/*.rs");
    assert!(tokens.get("refresh_token").is_none());
});
