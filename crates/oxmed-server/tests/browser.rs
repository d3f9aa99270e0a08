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
