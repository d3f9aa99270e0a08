//! Bad input never gives a 500 or a panic: each case with its expected status and an
//! OperationOutcome, on both backends.

mod common;

use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::json;

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// A piece of the first issue's text.
    says: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &str,
    status: u16,
    says: &'static str,
) -> Case {
    Case {
        name,
        method,
        path,
        content_type,
        body: body.as_bytes().to_vec(),
        status,
        says,
    }
}

const FHIR: Option<&str> = Some("application/fhir+json");

fn cases() -> Vec<Case> {
    vec![
        case(
            "malformed JSON",
            Method::POST,
            "Patient",
            FHIR,
            "{\"resourceType\": \"Patient\",",
            400,
            "Invalid JSON",
        ),
        case(
            "not an object",
            Method::POST,
            "Patient",
            FHIR,
            "[1, 2]",
            400,
            "Incorrect resource type",
        ),
        case(
            "type differs from URL",
            Method::POST,
            "Patient",
            FHIR,
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#,
            400,
            "Incorrect resource type",
        ),
        case(
            "unknown type in URL",
            Method::POST,
            "Frobnicator",
            FHIR,
            r#"{"resourceType":"Frobnicator"}"#,
            404,
            "Unknown resource type",
        ),
        case(
            "unknown type read",
            Method::GET,
            "Frobnicator/1",
            None,
            "",
            404,
            "Unknown resource type",
        ),
        case(
            "invalid id",
            Method::GET,
            "Patient/a$b",
            None,
            "",
            400,
            "Invalid id",
        ),
        case(
            "id too long",
            Method::GET,
            "Patient/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            None,
            "",
            400,
            "Invalid id",
        ),
        case(
            "id differs from URL",
            Method::PUT,
            "Patient/abc",
            FHIR,
            r#"{"resourceType":"Patient","id":"xyz"}"#,
            400,
            "Incorrect ID",
        ),
        case(
            "update without id",
            Method::PUT,
            "Patient/abc",
            FHIR,
            r#"{"resourceType":"Patient"}"#,
            400,
            "Missing id",
        ),
        case(
            "wrong content type",
            Method::POST,
            "Patient",
            Some("text/plain"),
            r#"{"resourceType":"Patient"}"#,
            415,
            "content type",
        ),
        case(
            "no content type",
            Method::POST,
            "Patient",
            None,
            r#"{"resourceType":"Patient"}"#,
            415,
            "content type",
        ),
        case(
            "invalid code",
            Method::POST,
            "Patient",
            FHIR,
            r#"{"resourceType":"Patient","gender":"bogus"}"#,
            400,
            "",
        ),
        case(
            "unknown element",
            Method::POST,
            "Patient",
            FHIR,
            r#"{"resourceType":"Patient","colour":"blue"}"#,
            400,
            "",
        ),
        case(
            "broken JSON Patch",
            Method::PATCH,
            "Patient/abc",
            Some("application/json-patch+json"),
            r#"{"op":"replace"}"#,
            400,
            "JSON Patch",
        ),
        case(
            "JSON Patch with unknown op",
            Method::PATCH,
            "Patient/abc",
            Some("application/json-patch+json"),
            r#"[{"op":"frobnicate","path":"/a"}]"#,
            400,
            "JSON Patch",
        ),
        case(
            "method not allowed",
            Method::PATCH,
            "Patient",
            FHIR,
            "[]",
            405,
            "",
        ),
        case(
            "unknown path",
            Method::GET,
            "Patient/1/2/3/4",
            None,
            "",
            404,
            "",
        ),
        case(
            "bad _count",
            Method::GET,
            "Patient/_history?_count=-1",
            None,
            "",
            400,
            "_count",
        ),
        case(
            "bad _summary",
            Method::GET,
            "metadata?_summary=perhaps",
            None,
            "",
            400,
            "_summary",
        ),
        case(
            "unsupported _format",
            Method::GET,
            "metadata?_format=xml",
            None,
            "",
            406,
            "JSON",
        ),
        case(
            "bad history cursor",
            Method::GET,
            "_history?_cursor=zzz",
            None,
            "",
            400,
            "_cursor",
        ),
        case(
            "bundle not a bundle",
            Method::POST,
            "",
            FHIR,
            r#"{"resourceType":"Patient"}"#,
            400,
            "Bundle",
        ),
        case(
            "bundle entry without request",
            Method::POST,
            "",
            FHIR,
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"}}]}"#,
            400,
            "request",
        ),
        case(
            "transaction with missing urn:uuid",
            Method::POST,
            "",
            FHIR,
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0d0d0d0d-0000-0000-0000-000000000000"}},"request":{"method":"POST","url":"Observation"}}]}"#,
            400,
            "urn:uuid",
        ),
    ]
}

async fn run_cases(srv: &TestServer) {
    for c in cases() {
        let mut headers = vec![];
        if let Some(ct) = c.content_type {
            headers.push(("content-type", ct));
        }
        let r = srv
            .send_raw(c.method.clone(), c.path, c.body.clone(), &headers)
            .await;
        eprintln!("case: {} -> {}", c.name, r.status);
        let text = r.outcome(c.status);
        assert!(
            text.contains(c.says),
            "{}: expected the message to mention {:?}, got {:?}",
            c.name,
            c.says,
            text
        );
    }
}

e2e!(
    bad_requests_answer_with_operation_outcomes,
    |srv| async move {
        run_cases(&srv).await;
    }
);

e2e!(validation_errors_name_the_element, |srv| async move {
    let r = srv
        .post(
            "Patient",
            &json!({ "resourceType": "Patient", "gender": "bogus" }),
        )
        .await;
    r.outcome(400);
    let issue = &r.body["issue"][0];
    assert_eq!(issue["expression"][0], "Patient.gender", "{}", r.text);
});

async fn body_over_limit(backend: Backend) {
    let Some((url, dir)) = common::fresh_database(backend).await else {
        return;
    };
    let srv = TestServer::start_with(backend, &url, dir, |c| c.max_body_size = 4096).await;
    let big = json!({
        "resourceType": "Patient",
        "name": [{ "family": "x".repeat(8192) }]
    });
    let r = srv.post("Patient", &big).await;
    let msg = r.outcome(413);
    assert!(msg.contains("larger"), "{msg}");
    // A small one still works.
    assert_eq!(
        srv.post("Patient", &json!({ "resourceType": "Patient" }))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn body_over_the_configured_limit_sqlite() {
    body_over_limit(Backend::Sqlite).await;
}

#[tokio::test]
async fn body_over_the_configured_limit_postgres() {
    body_over_limit(Backend::Postgres).await;
}
