//! Identity and OAuth2 over HTTP (spec §2, §3, §4, §10), on both backends: discovery, password
//! sign-in with PKCE, the code, client-credentials and refresh grants, Basic authentication,
//! token verification failures, logout, code and refresh-token replay, account lockout. Every
//! permission is tested with its denial.

mod common;

use base64::Engine;
use common::{B64, Resp, TestServer, claims, form, get_with, json_post, oauth_error, pkce_pair};
use serde_json::{Value, json};

/// The super admin's ClientApplication (id, secret), read over FHIR as the super admin.
async fn admin_client(srv: &TestServer) -> (String, String) {
    let r = srv.get("ClientApplication").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = &r.body["entry"][0]["resource"];
    (
        c["id"].as_str().expect("client id").to_owned(),
        c["secret"].as_str().expect("client secret").to_owned(),
    )
}

/// `/auth/login` + the code grant, returning the whole token response.
async fn password_tokens(srv: &TestServer, scope: &str) -> Value {
    common::login_tokens(
        srv,
        json!({"email": oxmed_server::config::TEST_ADMIN_EMAIL,
            "password": oxmed_server::config::TEST_ADMIN_PASSWORD, "scope": scope}),
    )
    .await
    .unwrap_or_else(|r| panic!("sign-in: {}", r.text))
}

e2e!(discovery_and_jwks, |srv| async move {
    let oidc: Value = srv
        .plain
        .get(format!("{}.well-known/openid-configuration", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oidc["issuer"], srv.base);
    assert_eq!(oidc["token_endpoint"], format!("{}oauth2/token", srv.base));
    assert_eq!(
        oidc["jwks_uri"],
        format!("{}.well-known/jwks.json", srv.base)
    );
    let as_meta: Value = srv
        .plain
        .get(format!(
            "{}.well-known/oauth-authorization-server",
            srv.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_meta, oidc);
    let jwks: Value = srv
        .plain
        .get(format!("{}.well-known/jwks.json", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "x5c", "x5t"] {
            assert!(k.get(private).is_none(), "{private} exposed in {k}");
        }
    }
    // The token's kid is a published key.
    let header: Value =
        serde_json::from_slice(&B64.decode(srv.token.split('.').next().unwrap()).unwrap()).unwrap();
    assert!(keys.iter().any(|k| k["kid"] == header["kid"]));
    let pr = srv
        .plain
        .get(format!(
            "{}.well-known/oauth-protected-resource?resource=https://elsewhere/",
            srv.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(pr.status(), 400);
    assert_eq!(pr.text().await.unwrap(), "Invalid resource URL");
});

e2e!(fhir_needs_a_valid_bearer_token, |srv| async move {
    // Metadata is public; everything else is not.
    let meta = Resp::from(srv.plain.get(srv.url("metadata")).send().await.unwrap()).await;
    assert_eq!(meta.status, 200);
    let none = Resp::from(srv.plain.get(srv.url("Patient")).send().await.unwrap()).await;
    none.outcome(401);
    assert_eq!(none.body["id"], "unauthorized");
    assert_eq!(none.body["issue"][0]["code"], "login");
    assert!(none.header("www-authenticate").is_some());
    let ok = get_with(&srv, "fhir/R4/Patient", &format!("Bearer {}", srv.token)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    let parts: Vec<&str> = srv.token.split('.').collect();
    let mut payload = claims(&srv.token);
    let reencode = |v: &Value| B64.encode(v.to_string());
    let bad_tokens = {
        let mut out = Vec::new();
        // Tampered payload, original signature.
        payload["sub"] = json!("someone-else");
        out.push(format!("{}.{}.{}", parts[0], reencode(&payload), parts[2]));
        // alg: none.
        let none_header = json!({"alg": "none", "typ": "JWT"});
        out.push(format!("{}.{}.", reencode(&none_header), parts[1]));
        // HS256 with the public key's JSON as the secret.
        let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
        let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
        let signing_input = format!("{}.{}", reencode(&hs_header), parts[1]);
        out.push(format!("{signing_input}.{}", B64.encode("not-a-real-mac")));
        // Unknown kid.
        let unknown = json!({"alg": "ES256", "typ": "JWT", "kid": "nope"});
        out.push(format!("{}.{}.{}", reencode(&unknown), parts[1], parts[2]));
        // Garbage.
        out.push("abc.def".into());
        out
    };
    for t in bad_tokens {
        get_with(&srv, "fhir/R4/Patient", &format!("Bearer {t}"))
            .await
            .outcome(401);
    }
    for header in [
        "Bearer",
        "Token abc",
        "Basic !!!",
        &format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(":")
        ),
    ] {
        get_with(&srv, "fhir/R4/Patient", header).await.outcome(401);
    }
});

e2e!(password_login_errors, |srv| async move {
    let wrong = json_post(
        &srv,
        "auth/login",
        &json!({"email": oxmed_server::config::TEST_ADMIN_EMAIL, "password": "wrong-password"}),
    )
    .await;
    let msg = wrong.outcome(400);
    assert_eq!(msg, "Email or password is invalid");
    // An unknown account gets the very same answer.
    let unknown = json_post(
        &srv,
        "auth/login",
        &json!({"email": "nobody@example.com", "password": "whatever-password"}),
    )
    .await;
    assert_eq!(unknown.outcome(400), "Email or password is invalid");
    let short = json_post(
        &srv,
        "auth/login",
        &json!({"email": "a@b.c", "password": "1234"}),
    )
    .await;
    assert_eq!(
        short.outcome(400),
        "Invalid password, must be at least 5 characters"
    );
    let bad_email = json_post(
        &srv,
        "auth/login",
        &json!({"email": "nope", "password": "12345678"}),
    )
    .await;
    assert_eq!(bad_email.outcome(400), "Valid email address is required");
    let plain_pkce = json_post(
        &srv,
        "auth/login",
        &json!({"email": oxmed_server::config::TEST_ADMIN_EMAIL,
            "password": oxmed_server::config::TEST_ADMIN_PASSWORD,
            "codeChallenge": "x".repeat(43), "codeChallengeMethod": "plain"}),
    )
    .await;
    assert_eq!(plain_pkce.outcome(400), "Invalid code challenge method");
    let unknown_client = json_post(
        &srv,
        "auth/login",
        &json!({"email": oxmed_server::config::TEST_ADMIN_EMAIL,
            "password": oxmed_server::config::TEST_ADMIN_PASSWORD,
            "clientId": "00000000-0000-0000-0000-00000000dead"}),
    )
    .await;
    unknown_client.outcome(404);
});

e2e!(
    account_locks_after_repeated_wrong_passwords,
    |srv| async move {
        let attempt = |password: &'static str| {
            let srv = &srv;
            async move {
                json_post(
                    srv,
                    "auth/login",
                    &json!({"email": oxmed_server::config::TEST_ADMIN_EMAIL, "password": password}),
                )
                .await
            }
        };
        for _ in 0..5 {
            assert_eq!(attempt("wrong-password").await.status, 400);
        }
        // Locked: even the right password is refused, with Retry-After.
        let locked = attempt(oxmed_server::config::TEST_ADMIN_PASSWORD).await;
        locked.outcome(429);
        assert!(locked.header("retry-after").is_some());
        // Another account is not affected.
        assert_eq!(attempt("wrong-password").await.status, 429);
        let other = json_post(
            &srv,
            "auth/login",
            &json!({"email": "someone@example.com", "password": "wrong-password"}),
        )
        .await;
        assert_eq!(other.status, 400);
    }
);

e2e!(authorization_code_grant_with_pkce, |srv| async move {
    let (verifier, challenge) = pkce_pair();
    let login_body = json!({"email": oxmed_server::config::TEST_ADMIN_EMAIL,
        "password": oxmed_server::config::TEST_ADMIN_PASSWORD, "scope": "openid email",
        "nonce": "n-123", "codeChallenge": challenge, "codeChallengeMethod": "S256"});
    let login = json_post(&srv, "auth/login", &login_body).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let code = login.body["code"].as_str().unwrap().to_owned();
    let token = |fields: Vec<(&'static str, String)>| {
        let srv = &srv;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            form(srv, "oauth2/token", &f, None).await
        }
    };
    oauth_error(
        &token(vec![("grant_type", "authorization_code".into())]).await,
        400,
        "invalid_request",
        "Missing code",
    );
    oauth_error(
        &token(vec![
            ("grant_type", "authorization_code".into()),
            ("code", "nope".into()),
        ])
        .await,
        400,
        "invalid_request",
        "Invalid code",
    );
    oauth_error(
        &token(vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
        ])
        .await,
        400,
        "invalid_request",
        "Missing code verifier",
    );
    oauth_error(
        &token(vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("code_verifier", "x".repeat(43)),
        ])
        .await,
        400,
        "invalid_request",
        "Invalid code verifier",
    );
    // A wrong verifier does not burn the code: the right one still works.
    let ok = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("code_verifier", verifier.clone()),
    ])
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    assert_eq!(ok.body["token_type"], "Bearer");
    assert_eq!(ok.body["expires_in"], 3600);
    assert!(
        ok.body.get("refresh_token").is_none(),
        "no offline scope, no refresh token"
    );
    let access = ok.body["access_token"].as_str().unwrap().to_owned();
    let a = claims(&access);
    assert_eq!(a["iss"], srv.base);
    assert!(a.get("email").is_none());
    assert!(a["profile"].as_str().unwrap().starts_with("Practitioner/"));
    let id = claims(ok.body["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-123");
    assert_eq!(id["email"], oxmed_server::config::TEST_ADMIN_EMAIL);
    assert_eq!(id["fhirUser"], a["profile"]);
    let me = get_with(&srv, "auth/me", &format!("Bearer {access}")).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["project"]["superAdmin"], true);
    assert_eq!(
        me.body["user"]["email"],
        oxmed_server::config::TEST_ADMIN_EMAIL
    );
    assert!(
        !me.body["security"]["sessions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The code again: refused, and the Login's tokens stop working.
    oauth_error(
        &token(vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("code_verifier", verifier.clone()),
        ])
        .await,
        400,
        "invalid_grant",
        "Token already granted",
    );
    get_with(&srv, "fhir/R4/Patient", &format!("Bearer {access}"))
        .await
        .outcome(401);
    // Other sessions are untouched.
    let other = get_with(&srv, "fhir/R4/Patient", &format!("Bearer {}", srv.token)).await;
    assert_eq!(other.status, 200);
    oauth_error(
        &token(vec![]).await,
        400,
        "invalid_request",
        "Missing grant_type",
    );
    oauth_error(
        &token(vec![("grant_type", "password".into())]).await,
        400,
        "invalid_request",
        "Unsupported grant_type",
    );
    let json_body = srv
        .plain
        .post(format!("{}oauth2/token", srv.base))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    assert_eq!(json_body.text().await.unwrap(), "Unsupported content type");
});

e2e!(client_credentials_and_basic_auth, |srv| async move {
    let (id, secret) = admin_client(&srv).await;
    let grant = [("grant_type", "client_credentials")];
    oauth_error(
        &form(&srv, "oauth2/token", &grant, None).await,
        400,
        "invalid_request",
        "Missing client_id",
    );
    oauth_error(
        &form(
            &srv,
            "oauth2/token",
            &[("grant_type", "client_credentials"), ("client_id", &id)],
            None,
        )
        .await,
        400,
        "invalid_request",
        "Missing client_secret",
    );
    oauth_error(
        &form(&srv, "oauth2/token", &grant, Some((&id, "wrong"))).await,
        400,
        "invalid_request",
        "Invalid secret",
    );
    oauth_error(
        &form(
            &srv,
            "oauth2/token",
            &grant,
            Some(("00000000-0000-0000-0000-000000000000", "x")),
        )
        .await,
        400,
        "invalid_request",
        "Invalid client",
    );
    let r = Resp::from(
        srv.plain
            .post(format!("{}oauth2/token", srv.base))
            .header("authorization", "Bearer abc")
            .form(&grant)
            .send()
            .await
            .unwrap(),
    )
    .await;
    oauth_error(&r, 400, "invalid_request", "Invalid authorization header");
    // client_secret_basic and client_secret_post.
    let basic = form(&srv, "oauth2/token", &grant, Some((&id, &secret))).await;
    assert_eq!(basic.status, 200, "{}", basic.text);
    let post = form(
        &srv,
        "oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "openid profile"),
        ],
        None,
    )
    .await;
    assert_eq!(post.status, 200, "{}", post.text);
    assert_eq!(post.body["scope"], "openid profile");
    assert!(post.body.get("refresh_token").is_none());
    let access = post.body["access_token"].as_str().unwrap().to_owned();
    let c = claims(&access);
    assert_eq!(c["sub"], id);
    assert_eq!(c["client_id"], id);
    assert_eq!(c["profile"], format!("ClientApplication/{id}"));
    let read = get_with(
        &srv,
        "fhir/R4/ClientApplication",
        &format!("Bearer {access}"),
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.text);
    // Written by the client: it is the author.
    let created = Resp::from(
        srv.plain
            .post(srv.url("Patient"))
            .header("authorization", format!("Bearer {access}"))
            .header("content-type", "application/fhir+json")
            .header("x-medplum", "extended")
            .body(json!({"resourceType": "Patient"}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.body["meta"]["author"]["reference"],
        format!("ClientApplication/{id}")
    );

    // Basic authentication of a FHIR request with the client's id and secret.
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let basic_read = get_with(&srv, "fhir/R4/Patient", &format!("Basic {creds}")).await;
    assert_eq!(basic_read.status, 200, "{}", basic_read.text);
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{id}:wrong"));
    get_with(&srv, "fhir/R4/Patient", &format!("Basic {wrong}"))
        .await
        .outcome(401);

    // Logout revokes the client's token too, though its Login was never stored.
    let out = get_with(&srv, "oauth2/logout", &format!("Bearer {access}")).await;
    assert_eq!(out.status, 200, "{}", out.text);
    get_with(&srv, "fhir/R4/Patient", &format!("Bearer {access}"))
        .await
        .outcome(401);
    get_with(&srv, "oauth2/logout", &format!("Bearer {access}"))
        .await
        .outcome(401);
    // A new grant works.
    let again = form(&srv, "oauth2/token", &grant, Some((&id, &secret))).await;
    let fresh = again.body["access_token"].as_str().unwrap();
    assert_eq!(
        get_with(&srv, "fhir/R4/Patient", &format!("Bearer {fresh}"))
            .await
            .status,
        200
    );

    // A client switched off can no longer get tokens, and its tokens stop working.
    let mut client = srv.get(&format!("ClientApplication/{id}")).await.body;
    client["status"] = json!("off");
    assert_eq!(
        srv.put(&format!("ClientApplication/{id}"), &client)
            .await
            .status,
        200
    );
    oauth_error(
        &form(&srv, "oauth2/token", &grant, Some((&id, &secret))).await,
        400,
        "invalid_request",
        "Invalid client",
    );
    get_with(&srv, "fhir/R4/Patient", &format!("Bearer {fresh}"))
        .await
        .outcome(401);
});

e2e!(refresh_tokens_rotate_and_reuse_revokes, |srv| async move {
    // The super-admin project never gets refresh tokens (spec §3.2).
    let tokens = password_tokens(&srv, "openid offline").await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    oauth_error(
        &form(
            &srv,
            "oauth2/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "x.y.z")],
            None,
        )
        .await,
        400,
        "invalid_request",
        "Invalid refresh token",
    );
    // The access token of that login still works until logout.
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get_with(&srv, "fhir/R4/Patient", &format!("Bearer {access}"))
            .await
            .status,
        200
    );
    let out = Resp::from(
        srv.plain
            .post(format!("{}oauth2/logout", srv.base))
            .header("authorization", format!("Bearer {access}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, 200);
    assert_eq!(out.body["id"], "ok");
    get_with(&srv, "fhir/R4/Patient", &format!("Bearer {access}"))
        .await
        .outcome(401);
    get_with(&srv, "auth/me", &format!("Bearer {access}"))
        .await
        .outcome(401);
});

e2e!(introspection_revocation_and_userinfo, |srv| async move {
    let tokens = password_tokens(&srv, "openid profile email").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    // userinfo: sub is the ID token's (the user's id); scopes add claims.
    let info = get_with(&srv, "oauth2/userinfo", &format!("Bearer {access}")).await;
    assert_eq!(info.status, 200, "{}", info.text);
    let profile = claims(&access)["profile"].as_str().unwrap().to_owned();
    assert_eq!(info.body["sub"], claims(&id_token)["sub"]);
    assert_eq!(info.body["profile"], profile.as_str());
    assert_eq!(info.body["email"], oxmed_server::config::TEST_ADMIN_EMAIL);
    assert_eq!(info.body["family_name"], "Admin");
    get_with(&srv, "oauth2/userinfo", "Bearer nope")
        .await
        .outcome(401);
    // With only openid: just sub.
    let bare = password_tokens(&srv, "openid").await;
    let info = get_with(
        &srv,
        "oauth2/userinfo",
        &format!("Bearer {}", bare["access_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(info.body.as_object().unwrap().len(), 1, "{}", info.text);

    // introspect: active, then inactive after revocation; never for an id token or garbage.
    let r = form(&srv, "oauth2/introspect", &[("token", &access)], None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["scope"], "openid profile email");
    assert_eq!(r.body["iss"], srv.base);
    for t in [id_token.as_str(), "x.y.z"] {
        let r = form(&srv, "oauth2/introspect", &[("token", t)], None).await;
        assert_eq!(r.body, json!({"active": false}), "{t}");
    }
    oauth_error(
        &form(&srv, "oauth2/introspect", &[("nothing", "")], None).await,
        400,
        "invalid_request",
        "Missing token",
    );
    // revoke (RFC 7009): 200 for garbage too; the token stops working.
    let r = form(&srv, "oauth2/revoke", &[("token", "garbage")], None).await;
    assert_eq!(r.status, 200);
    let r = form(&srv, "oauth2/revoke", &[("token", &access)], None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    get_with(&srv, "fhir/R4/Patient", &format!("Bearer {access}"))
        .await
        .outcome(401);
    let r = form(&srv, "oauth2/introspect", &[("token", &access)], None).await;
    assert_eq!(r.body, json!({"active": false}));
    // Other sessions live on.
    assert_eq!(
        get_with(&srv, "fhir/R4/Patient", &format!("Bearer {}", srv.token))
            .await
            .status,
        200
    );
    // A client-credentials token, revoked the same way.
    let (id, secret) = admin_client(&srv).await;
    let cc = form(
        &srv,
        "oauth2/token",
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
    )
    .await;
    let cc_token = cc.body["access_token"].as_str().unwrap().to_owned();
    let r = form(&srv, "oauth2/introspect", &[("token", &cc_token)], None).await;
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["client_id"], id);
    form(&srv, "oauth2/revoke", &[("token", &cc_token)], None).await;
    let r = form(&srv, "oauth2/introspect", &[("token", &cc_token)], None).await;
    assert_eq!(r.body, json!({"active": false}));
});

e2e!(
    tokens_signed_with_the_servers_key_are_still_checked,
    |srv| async move {
        // The test signs with the server's own key, so that only the claims it changes can be
        // why a token is refused.
        let keyset = srv.auth.keys();
        let now = oxmed_auth::jwt::unix_now();
        let base = claims(&srv.token);
        let sign = |change: &dyn Fn(&mut Value)| {
            let mut c = base.clone();
            c["jti"] = json!(uuid::Uuid::new_v4().to_string());
            change(&mut c);
            keyset.sign(&c).unwrap()
        };
        let fhir = |t: String| {
            let srv = &srv;
            async move { get_with(srv, "fhir/R4/Patient", &format!("Bearer {t}")).await }
        };
        // The control: re-signed unchanged claims are accepted.
        assert_eq!(fhir(sign(&|_| {})).await.status, 200);
        type Change<'a> = &'a dyn Fn(&mut Value);
        let refused: [(&str, Change); 6] = [
            ("expired", &|c| {
                c["iat"] = json!(now - 7200);
                c["exp"] = json!(now - 3600);
            }),
            ("not yet valid", &|c| c["nbf"] = json!(now + 3600)),
            ("wrong issuer", &|c| {
                c["iss"] = json!("https://evil.example.com/")
            }),
            ("wrong audience", &|c| c["aud"] = json!("some-other-client")),
            ("no expiry", &|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            ("unknown login", &|c| {
                c["login_id"] = json!(uuid::Uuid::new_v4().to_string())
            }),
        ];
        for (why, change) in refused {
            let r = fhir(sign(change)).await;
            assert_eq!(r.status, 401, "{why}: {}", r.text);
        }
    }
);

e2e!(private_key_jwt_client_assertions, |srv| async move {
    use oxmed_auth::jwt::{KeySet, unix_now};
    use oxmed_auth::keys::SigningKey;
    // The client's own key pair; its public half is served as the client's JWK Set.
    let keys = KeySet::new(vec![
        SigningKey::generate_es256("client-key-1".into()).unwrap(),
    ])
    .unwrap();
    let jwks_uri = common::serve_json(keys.jwks().to_string()).await;
    let client = srv
        .create(
            &json!({"resourceType": "ClientApplication", "name": "Backend service",
            "jwksUri": jwks_uri}),
        )
        .await;
    let id = client["id"].as_str().unwrap().to_owned();
    make_member(&srv, &id).await;
    let token_url = format!("{}oauth2/token", srv.base);
    let now = unix_now();
    let assertion_claims = |change: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": id, "sub": id, "aud": token_url, "iat": now,
            "exp": now + 120, "jti": uuid::Uuid::new_v4().to_string()});
        change(&mut c);
        c
    };
    let grant = |assertion: String| {
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
                ],
                None,
            )
            .await
        }
    };
    let good = keys.sign(&assertion_claims(&|_| {})).unwrap();
    let r = grant(good.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&access)["client_id"], id.as_str());
    assert_eq!(
        get_with(&srv, "fhir/R4/Patient", &format!("Bearer {access}"))
            .await
            .status,
        200
    );
    // The same assertion again: its jti was used.
    let r = grant(good).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Refused: another key, another audience, too long a life, no jti, expired.
    let stranger = KeySet::new(vec![
        SigningKey::generate_es256("client-key-1".into()).unwrap(),
    ])
    .unwrap();
    type Change<'a> = &'a dyn Fn(&mut Value);
    let cases: [(&str, &KeySet, Change); 5] = [
        ("another key", &stranger, &|_| {}),
        ("another audience", &keys, &|c| {
            c["aud"] = json!("https://elsewhere.example/token")
        }),
        ("ten minutes", &keys, &|c| c["exp"] = json!(now + 600)),
        ("no jti", &keys, &|c| {
            c.as_object_mut().unwrap().remove("jti");
        }),
        ("expired", &keys, &|c| c["exp"] = json!(now - 10)),
    ];
    for (why, signer, change) in cases {
        let r = grant(signer.sign(&assertion_claims(change)).unwrap()).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text);
        assert_eq!(r.body["error"], "invalid_request", "{why}");
    }
});

/// The per-address limit of `/auth/*` and `/oauth2/*` (spec §3: 429 with Medplum's
/// OperationOutcome), with a budget small enough to spend in a test.
async fn auth_rate_limit(backend: common::Backend) {
    let Some((url, dir)) = common::fresh_database(backend).await else {
        return;
    };
    let srv = TestServer::start_with(backend, &url, dir, |c| c.auth_rate_limit = 6).await;
    // The harness's own sign-in spent 2 of the 6 (login and token).
    let mut statuses = Vec::new();
    let mut last = None;
    for n in 0..6 {
        // A different account each time: the account lockout is not what is tested.
        let r = json_post(
            &srv,
            "auth/login",
            &json!({"email": format!("user{n}@example.com"), "password": "wrong-password"}),
        )
        .await;
        statuses.push(r.status);
        last = Some(r);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 429, 429]);
    let limited = last.unwrap();
    assert_eq!(
        limited.text,
        r#"{"resourceType":"OperationOutcome","id":"too-many-requests","issue":[{"severity":"error","code":"throttled","details":{"text":"Too Many Requests"}}]}"#
    );
    assert!(limited.header("retry-after").is_some());
    // The token endpoint shares the budget; /auth/me and the FHIR API do not.
    let r = form(
        &srv,
        "oauth2/token",
        &[("grant_type", "client_credentials")],
        None,
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text);
    let me = get_with(&srv, "auth/me", &format!("Bearer {}", srv.token)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(srv.get("Patient").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rate_limit_sqlite() {
    auth_rate_limit(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rate_limit_postgres() {
    auth_rate_limit(common::Backend::Postgres).await;
}

e2e!(
    client_token_lifetimes_are_checked_and_used,
    |srv| async move {
        let r = srv
            .post(
                "ClientApplication",
                &json!({"resourceType": "ClientApplication", "accessTokenLifetime": "1hour"}),
            )
            .await;
        assert_eq!(r.outcome(400), "Invalid token duration");
        assert_eq!(
            r.body["issue"][0]["expression"][0],
            "ClientApplication.accessTokenLifetime"
        );
        let client = srv
            .create(
                &json!({"resourceType": "ClientApplication", "secret": "lifetime-secret-0123456789",
            "accessTokenLifetime": "5m"}),
            )
            .await;
        let id = client["id"].as_str().unwrap().to_owned();
        make_member(&srv, &id).await;
        let r = form(
            &srv,
            "oauth2/token",
            &[("grant_type", "client_credentials")],
            Some((&id, "lifetime-secret-0123456789")),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["expires_in"], 300);
        let c = claims(r.body["access_token"].as_str().unwrap());
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    }
);

/// A membership of the client `id` in the admin's project, so that it can get tokens.
async fn make_member(srv: &TestServer, id: &str) {
    let me = get_with(srv, "auth/me", &format!("Bearer {}", srv.token)).await;
    let project = me.body["project"]["id"].as_str().unwrap().to_owned();
    srv.create(&json!({"resourceType": "ProjectMembership",
        "project": {"reference": format!("Project/{project}")},
        "user": {"reference": format!("ClientApplication/{id}")},
        "profile": {"reference": format!("ClientApplication/{id}")}}))
        .await;
}
