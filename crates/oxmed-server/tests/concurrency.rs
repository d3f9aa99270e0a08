//! Optimistic locking under contention: many clients updating one resource with `If-Match` at
//! once. Each version is won by exactly one of them, the rest get 412, and the history has no
//! gaps or duplicates. On both backends.

mod common;

use std::collections::HashSet;

use serde_json::{Value, json};

const CLIENTS: usize = 20;

async fn put_if_match(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    version: &str,
) -> (u16, Value) {
    let r = client
        .put(url)
        .header("content-type", "application/fhir+json")
        .header("if-match", format!("W/\"{version}\""))
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

e2e!(one_winner_per_version, |srv| async move {
    let created = srv
        .create(&json!({ "resourceType": "Patient", "birthDate": "2000-01-01" }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let v1 = created["meta"]["versionId"].as_str().unwrap().to_owned();
    let url = srv.url(&format!("Patient/{id}"));

    // Round 1: everyone races for the same version.
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (client, url, v1) = (srv.client.clone(), url.clone(), v1.clone());
        let mut body = created.clone();
        body["multipleBirthInteger"] = json!(i);
        tasks.push(tokio::spawn(async move {
            put_if_match(&client, &url, &body, &v1).await
        }));
    }
    let mut winners = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, body) => winners.push(body),
            (412, body) => {
                assert_eq!(body["resourceType"], "OperationOutcome");
                refused += 1;
            }
            (s, body) => panic!("unexpected {s}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one client wins version {v1}");
    assert_eq!(refused, CLIENTS - 1);

    // Round 2: each client reads and retries a few times; every write must be based on the
    // version it read.
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (client, url) = (srv.client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for attempt in 0..5 {
                let current: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
                let version = current["meta"]["versionId"].as_str().unwrap().to_owned();
                let mut body = current.clone();
                // Distinct from every round-1 value, so that no write is an unchanged update.
                body["multipleBirthInteger"] = json!(1000 + i * 100 + attempt);
                let (status, resp) = put_if_match(&client, &url, &body, &version).await;
                match status {
                    200 => won.push((
                        version,
                        resp["meta"]["versionId"].as_str().unwrap().to_owned(),
                    )),
                    412 => {}
                    s => panic!("unexpected {s}: {resp}"),
                }
            }
            won
        }));
    }
    let mut transitions = Vec::new();
    for t in tasks {
        transitions.extend(t.await.unwrap());
    }
    assert!(!transitions.is_empty());
    // No two clients won from the same base version.
    let bases: HashSet<&String> = transitions.iter().map(|(from, _)| from).collect();
    assert_eq!(
        bases.len(),
        transitions.len(),
        "a version was won twice: {transitions:?}"
    );

    // The history is the chain: v1, round-1 winner, then every round-2 win; no gaps, no
    // duplicates, strictly ordered in time.
    let h = srv.get(&format!("Patient/{id}/_history?_count=1000")).await;
    let entries = h.body["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2 + transitions.len());
    let versions: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    let unique: HashSet<&&str> = versions.iter().collect();
    assert_eq!(unique.len(), versions.len());
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"]["meta"]["lastUpdated"].as_str().unwrap())
        .collect();
    for w in times.windows(2) {
        assert!(w[0] > w[1], "history not strictly ordered: {times:?}");
    }
    // Each transition goes from a version to the very next one in history.
    for (from, to) in &transitions {
        let pos_to = versions.iter().position(|v| v == to).unwrap();
        assert_eq!(versions[pos_to + 1], from.as_str(), "gap before {to}");
    }
});
