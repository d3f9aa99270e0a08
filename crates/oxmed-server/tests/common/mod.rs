//! The end-to-end harness: a real oxmed server on a loopback port, on a fresh SQLite file or a
//! fresh PostgreSQL database, driven over HTTP. Every e2e test runs on both backends through
//! `e2e!`; PostgreSQL comes from `OXMED_TEST_POSTGRES_URL` (a server URL whose user may create
//! databases). Under CI, a missing PostgreSQL fails the test instead of skipping it.
#![allow(dead_code)]

pub mod browser;
pub mod smtp;
pub mod tenant;

use std::path::PathBuf;

use serde_json::Value;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub base: String,
    pub fhir: String,
    /// Sends the super admin's bearer token with every request.
    pub client: reqwest::Client,
    /// Sends no credentials.
    pub plain: reqwest::Client,
    /// The super admin's access token.
    pub token: String,
    /// The server's authorization service: its signing keys, for tests that forge tokens.
    pub auth: std::sync::Arc<oxmed_auth::Auth>,
    pub backend: Backend,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<TempDir>,
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn postgres_url() -> Option<String> {
    match std::env::var("OXMED_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("CI").is_ok() {
                panic!(
                    "OXMED_TEST_POSTGRES_URL is not set under CI: the PostgreSQL tests must run"
                );
            }
            eprintln!("skipping the PostgreSQL variant: OXMED_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// Drops a database made by [`fresh_postgres_database`] once its test passed (with the
/// server's connections still open: `FORCE`), so that runs do not fill the disk. A failed
/// test keeps its database to look at.
pub async fn drop_postgres_database(database_url: &str) {
    let name = database_url
        .rsplit('/')
        .next()
        .and_then(|n| n.split('?').next());
    let (Some(server), Some(name)) = (postgres_url(), name) else {
        return;
    };
    if !name.starts_with("oxmed_test_")
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return;
    }
    let Ok((client, conn)) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await else {
        return;
    };
    let task = tokio::spawn(conn);
    let _ = client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    drop(client);
    let _ = task.await;
}

/// A new, empty PostgreSQL database on the test server; returns its URL.
pub async fn fresh_postgres_database(server_url: &str) -> String {
    let name = format!("oxmed_test_{}", uuid::Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the PostgreSQL test server");
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    drop(client);
    let _ = task.await;
    // Replace the database path of the URL.
    let (prefix, rest) = server_url.rsplit_once('/').expect("URL with a database");
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

/// A database URL for a fresh, empty store of the backend, and the temp dir holding it.
pub async fn fresh_database(backend: Backend) -> Option<(String, Option<TempDir>)> {
    match backend {
        Backend::Sqlite => {
            let dir = TempDir::new("oxmed-test");
            let url = format!("sqlite://{}", dir.0.join("oxmed.db").display());
            Some((url, Some(dir)))
        }
        Backend::Postgres => {
            let server = postgres_url()?;
            Some((fresh_postgres_database(&server).await, None))
        }
    }
}

impl TestServer {
    /// Starts a server on a fresh database; `None` if the backend is not available here.
    pub async fn start(backend: Backend) -> Option<TestServer> {
        let (url, dir) = fresh_database(backend).await?;
        Some(Self::start_with(backend, &url, dir, |_| {}).await)
    }

    pub async fn start_with(
        backend: Backend,
        database_url: &str,
        dir: Option<TempDir>,
        adjust: impl FnOnce(&mut oxmed_server::Config),
    ) -> TestServer {
        let mut config = oxmed_server::Config::for_tests("127.0.0.1:0", database_url);
        adjust(&mut config);
        let (state, listener) = oxmed_server::prepare(config).await.expect("server starts");
        let base = state.config.base_url.clone();
        let auth = state.auth.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            oxmed_server::serve(state, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        let plain = reqwest::Client::new();
        let token = sign_in(
            &plain,
            &base,
            oxmed_server::config::TEST_ADMIN_EMAIL,
            oxmed_server::config::TEST_ADMIN_PASSWORD,
        )
        .await;
        TestServer {
            fhir: format!("{base}fhir/R4"),
            base,
            client: bearer_client(&token),
            plain,
            token,
            auth,
            backend,
            database_url: database_url.to_owned(),
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Stops the server gracefully and waits until the store is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.fhir, path.trim_start_matches('/'))
    }

    pub async fn get(&self, path: &str) -> Resp {
        Resp::from(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::POST, path, body, &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::PUT, path, body, &[]).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        Resp::from(
            self.client
                .delete(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    /// Creates a resource and returns it as stored.
    pub async fn create(&self, resource: &Value) -> Value {
        let t = resource["resourceType"].as_str().expect("resourceType");
        let r = self.post(t, resource).await;
        assert_eq!(r.status, 201, "create {t}: {}", r.body);
        r.body
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A response with its body parsed as JSON (`Value::Null` if empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the response is an OperationOutcome with this status, and returns its first
    /// issue's text.
    pub fn outcome(&self, status: u16) -> String {
        assert_eq!(self.status, status, "status of {}", self.text);
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "expected an OperationOutcome: {}",
            self.text
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/fhir+json")),
            "content type {:?}",
            self.header("content-type")
        );
        self.body["issue"][0]["details"]["text"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// Runs `run(backend)`, an async function starting its own server (for tests that configure
/// it), once on SQLite and once on PostgreSQL: `per_backend!(name, run);`.
#[macro_export]
macro_rules! per_backend {
    ($name:ident, $run:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $run($crate::common::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $run($crate::common::Backend::Postgres).await;
            }
        }
    };
}

/// Defines an async test run once on SQLite and once on PostgreSQL:
/// `e2e!(name, |srv| async move { ... });`
#[macro_export]
macro_rules! e2e {
    ($name:ident, |$srv:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($srv: $crate::common::TestServer) {
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s = $crate::common::TestServer::start($crate::common::Backend::Sqlite)
                    .await
                    .expect("sqlite is always available");
                run(s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(s) =
                    $crate::common::TestServer::start($crate::common::Backend::Postgres).await
                {
                    let url = s.database_url.clone();
                    run(s).await;
                    $crate::common::drop_postgres_database(&url).await;
                }
            }
        }
    };
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Signs in with a password through `/auth/login` and the code grant (PKCE S256), as
/// Medplum's own app does; returns the access token.
pub async fn sign_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let (verifier, challenge) = pkce_pair();
    let login: Value = client
        .post(format!("{base}auth/login"))
        .json(&serde_json::json!({"email": email, "password": password,
            "codeChallenge": challenge, "codeChallengeMethod": "S256"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login json");
    let code = login["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {login}"));
    let tokens: Value = client
        .post(format!("{base}oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token in {tokens}"))
        .to_owned()
}

/// `/auth/login` with this body (PKCE S256 added) and then the code grant: the token
/// response, or the answer of `/auth/login` when it gave no code.
pub async fn login_tokens(srv: &TestServer, mut body: Value) -> Result<Value, Resp> {
    let (verifier, challenge) = pkce_pair();
    body["codeChallenge"] = serde_json::json!(challenge);
    body["codeChallengeMethod"] = serde_json::json!("S256");
    let login = json_post(srv, "auth/login", &body).await;
    let Some(code) = login.body["code"].as_str() else {
        return Err(login);
    };
    let r = form(
        srv,
        "oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    Ok(r.body)
}

/// Serves `body` as JSON on every request on a loopback port (a client's JWK Set, an
/// identity provider's document); the URL.
pub async fn serve_json(body: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{}/jwks.json", addr.port())
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

// Requests as an OAuth2 or login client makes them, without the harness's bearer token.

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub async fn form(
    srv: &TestServer,
    path: &str,
    fields: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Resp {
    let mut req = srv.plain.post(format!("{}{path}", srv.base)).form(fields);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    Resp::from(req.send().await.expect("request")).await
}

/// `GET /auth/me` with a bearer token: its JSON.
pub async fn me(srv: &TestServer, token: &str) -> Value {
    srv.plain
        .get(format!("{}auth/me", srv.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// A FHIR `POST` (`application/fhir+json`) to `path` under the FHIR base with a bearer token.
pub async fn fhir_post_as(srv: &TestServer, token: &str, path: &str, body: &Value) -> Resp {
    Resp::from(
        srv.plain
            .post(srv.url(path))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request"),
    )
    .await
}

pub async fn json_post(srv: &TestServer, path: &str, body: &Value) -> Resp {
    Resp::from(
        srv.plain
            .post(format!("{}{path}", srv.base))
            .json(body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

pub async fn get_with(srv: &TestServer, path: &str, authorization: &str) -> Resp {
    Resp::from(
        srv.plain
            .get(format!("{}{path}", srv.base))
            .header("authorization", authorization)
            .send()
            .await
            .expect("request"),
    )
    .await
}

pub fn oauth_error(r: &Resp, status: u16, error: &str, description: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"], error, "{}", r.text);
    assert_eq!(r.body["error_description"], description, "{}", r.text);
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).expect("base64url")).expect("JSON claims")
}

/// The super admin every test server is seeded with.
pub const ADMIN_EMAIL: &str = oxmed_server::config::TEST_ADMIN_EMAIL;
pub const ADMIN_PASSWORD: &str = oxmed_server::config::TEST_ADMIN_PASSWORD;
