//! Durability: the real `oxmed` process is killed with SIGKILL in the middle of a write load.
//! After a restart on the same database, every resource acknowledged with 201 is readable, and
//! no half-written transaction is visible. On both backends.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Backend;
use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
    /// Signed in as the super admin.
    client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start(database_url: &str, port: u16) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_oxmed"))
        .arg("serve")
        .env("OXMED_LISTEN", format!("127.0.0.1:{port}"))
        .env("OXMED_DATABASE_URL", database_url)
        .env("OXMED_LOG", "warn")
        .env("OXMED_ADMIN_EMAIL", oxmed_server::config::TEST_ADMIN_EMAIL)
        .env(
            "OXMED_ADMIN_PASSWORD",
            oxmed_server::config::TEST_ADMIN_PASSWORD,
        )
        .env("OXMED_BCRYPT_COST", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start oxmed");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthcheck")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "oxmed did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = common::sign_in(
        &client,
        &format!("{base}/"),
        oxmed_server::config::TEST_ADMIN_EMAIL,
        oxmed_server::config::TEST_ADMIN_PASSWORD,
    )
    .await;
    let client = common::bearer_client(&token);
    Server {
        child,
        base,
        client,
    }
}

/// What the load saw acknowledged: single creates, and transactions (a Patient and an
/// Observation about it, linked by urn:uuid).
#[derive(Default)]
struct Acked {
    patients: Vec<String>,
    transactions: Vec<(String, String)>,
}

async fn writer(client: reqwest::Client, base: String, acked: Arc<Mutex<Acked>>, n: usize) {
    for i in 0.. {
        let r = if i % 3 == 0 {
            let tx = json!({
                "resourceType": "Bundle", "type": "transaction",
                "entry": [
                    { "fullUrl": "urn:uuid:6f1c9d3e-0000-4000-8000-000000000001",
                      "resource": { "resourceType": "Patient", "name": [{ "family": format!("Tx{n}-{i}") }] },
                      "request": { "method": "POST", "url": "Patient" } },
                    { "resource": { "resourceType": "Observation", "status": "final", "code": { "text": "bp" },
                                    "subject": { "reference": "urn:uuid:6f1c9d3e-0000-4000-8000-000000000001" } },
                      "request": { "method": "POST", "url": "Observation" } }
                ]
            });
            client
                .post(format!("{base}/fhir/R4"))
                .header("content-type", "application/fhir+json")
                .body(tx.to_string())
                .send()
                .await
        } else {
            client
                .post(format!("{base}/fhir/R4/Patient"))
                .header("content-type", "application/fhir+json")
                .body(json!({ "resourceType": "Patient", "name": [{ "family": format!("P{n}-{i}") }] }).to_string())
                .send()
                .await
        };
        // Connection errors are expected once the server is killed.
        let Ok(r) = r else { return };
        let status = r.status().as_u16();
        let Ok(body) = r.json::<Value>().await else {
            return;
        };
        let mut a = acked.lock().unwrap();
        match (status, i % 3) {
            (201, _) => a.patients.push(body["id"].as_str().unwrap().to_owned()),
            (200, 0) => {
                let e = body["entry"].as_array().unwrap();
                a.transactions.push((
                    e[0]["resource"]["id"].as_str().unwrap().to_owned(),
                    e[1]["resource"]["id"].as_str().unwrap().to_owned(),
                ));
            }
            (s, _) => panic!("unexpected status {s}: {body}"),
        }
    }
}

async fn kill_during_load(backend: Backend) {
    let Some((url, _dir)) = common::fresh_database(backend).await else {
        return;
    };
    let port = free_port();
    let mut server = start(&url, port).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            tokio::spawn(writer(
                server.client.clone(),
                server.base.clone(),
                acked.clone(),
                n,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    for t in tasks {
        t.await.expect("writer task");
    }
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    assert!(
        acked.patients.len() > 50 && !acked.transactions.is_empty(),
        "the load did not get going: {} creates, {} transactions",
        acked.patients.len(),
        acked.transactions.len()
    );

    let mut server = start(&url, port).await;
    let client = server.client.clone();
    let fhir = format!("{}/fhir/R4", server.base);
    for id in &acked.patients {
        let r = client
            .get(format!("{fhir}/Patient/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged Patient/{id} was lost");
    }
    for (patient, observation) in &acked.transactions {
        let p = client
            .get(format!("{fhir}/Patient/{patient}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            p.status(),
            200,
            "acknowledged transaction lost Patient/{patient}"
        );
        let o = client
            .get(format!("{fhir}/Observation/{observation}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            o.status(),
            200,
            "acknowledged transaction lost Observation/{observation}"
        );
    }
    // No half transaction, acknowledged or not: every stored Observation's subject exists.
    let mut offset = 0;
    loop {
        let page: Value = client
            .get(format!("{fhir}/Observation?_count=500&_offset={offset}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = page["entry"].as_array().unwrap();
        for e in entries {
            let subject = e["resource"]["subject"]["reference"].as_str().unwrap();
            let r = client
                .get(format!("{fhir}/{subject}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "half a transaction: {subject} is missing");
        }
        if entries.len() < 500 {
            break;
        }
        offset += 500;
    }
    server.child.kill().expect("stop");
    let _ = server.child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_creates_sqlite() {
    kill_during_load(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_creates_postgres() {
    kill_during_load(Backend::Postgres).await;
}

/// SIGTERM: requests in flight finish, the process exits 0, and SQLite's WAL is checkpointed
/// into the main file (the database is closed cleanly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_closes_cleanly() {
    let dir = common::TempDir::new("oxmed-sigterm");
    let db = dir.0.join("oxmed.db");
    let url = format!("sqlite://{}", db.display());
    let mut server = start(&url, free_port()).await;
    let fhir = format!("{}/fhir/R4", server.base);
    let client = server.client.clone();
    // A transaction large enough to be in flight when the signal arrives.
    let entries: Vec<Value> = (0..2000)
        .map(|i| {
            json!({
                "resource": { "resourceType": "Patient", "name": [{ "family": format!("T{i}") }] },
                "request": { "method": "POST", "url": "Patient" }
            })
        })
        .collect();
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
    let in_flight = tokio::spawn({
        let (client, fhir) = (client.clone(), fhir.clone());
        async move {
            client
                .post(&fhir)
                .header("content-type", "application/fhir+json")
                .body(bundle.to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let pid = server.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || server.child.wait())
        .await
        .unwrap()
        .expect("wait");
    assert!(status.success(), "oxmed exited with {status}");
    assert_eq!(
        in_flight
            .await
            .unwrap()
            .expect("in-flight request answered"),
        200
    );
    let wal = dir.0.join("oxmed.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the WAL was not checkpointed on shutdown");
    // And everything is there after a restart.
    let mut again = start(&url, free_port()).await;
    let h: Value = again
        .client
        .get(format!("{}/fhir/R4/Patient/_history?_count=1", again.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["entry"].as_array().unwrap().len(), 1);
    again.child.kill().unwrap();
    let _ = again.child.wait();
}
