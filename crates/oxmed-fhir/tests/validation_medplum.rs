//! Medplum's own resource types validate like FHIR's.

use oxmed_fhir::validation::{IssueCode, ValidationIssue, validate};
use serde_json::{Value, json};

#[track_caller]
fn assert_valid(resource: Value) {
    if let Err(issues) = validate(&resource) {
        panic!("expected {resource} to be valid, got {issues:#?}");
    }
}

#[track_caller]
fn assert_single(resource: Value, path: &str, code: IssueCode) {
    let found: Vec<ValidationIssue> = validate(&resource).err().unwrap_or_default();
    assert!(
        found.len() == 1 && found[0].path == path && found[0].code == code,
        "expected one {code} issue at {path}, got {found:#?}"
    );
}

fn meta() -> Value {
    json!({
        "versionId": "0e6f0a31-6b7e-4c69-9f0e-6a2f1d3c4b5a",
        "lastUpdated": "2024-05-06T07:08:09.123Z",
        "project": "5d2b1f4e-8c3a-4f6b-9a7d-1e2c3b4a5f60",
        "author": {"reference": "system"},
        "compartment": [{"reference": "Project/5d2b1f4e-8c3a-4f6b-9a7d-1e2c3b4a5f60"}]
    })
}

#[test]
fn project() {
    assert_valid(json!({
        "resourceType": "Project",
        "id": "5d2b1f4e-8c3a-4f6b-9a7d-1e2c3b4a5f60",
        "meta": meta(),
        "name": "Super Admin",
        "owner": {"reference": "User/1f1e6c2d-3b4a-4c5d-8e9f-0a1b2c3d4e5f", "display": "admin@example.com"},
        "superAdmin": true,
        "strictMode": true,
        "checkReferencesOnWrite": false,
        "features": ["bots", "cron", "email"],
        "defaultPatientAccessPolicy": {"reference": "AccessPolicy/a1"},
        "setting": [{"name": "theme", "valueString": "dark"}, {"name": "limit", "valueInteger": 5}],
        "secret": [{"name": "API_KEY", "valueString": "s3cret"}],
        "systemSetting": [{"name": "rateLimit", "valueDecimal": 1.5}],
        "site": [{"name": "main", "domain": ["app.example.com", "example.com"]}],
        "link": [{"project": {"reference": "Project/other"}}],
        "defaultProfile": [{"resourceType": "Patient", "profile": ["http://example.org/StructureDefinition/p"]}],
        "exportedResourceType": ["Patient", "Bot"]
    }));
    assert_single(
        json!({"resourceType": "Project", "features": ["teleportation"]}),
        "Project.features[0]",
        IssueCode::CodeInvalid,
    );
    // Project.secret is a content reference to Project.setting.
    assert_single(
        json!({"resourceType": "Project", "secret": [{"name": "A", "valueString": "a", "valueBoolean": true}]}),
        "Project.secret[0].valueBoolean",
        IssueCode::Structure,
    );
    assert_single(
        json!({"resourceType": "Project", "setting": [{"valueString": "a"}]}),
        "Project.setting[0].name",
        IssueCode::Required,
    );
}

#[test]
fn user() {
    assert_valid(json!({
        "resourceType": "User",
        "id": "1f1e6c2d-3b4a-4c5d-8e9f-0a1b2c3d4e5f",
        "meta": meta(),
        "firstName": "Medplum",
        "lastName": "Admin",
        "email": "admin@example.com",
        "emailVerified": true,
        "passwordHash": "$2a$10$abcdefghijklmnopqrstuv",
        "mfaEnrolled": false,
        "mfaMethod": ["totp"],
        "project": {"reference": "Project/5d2b1f4e-8c3a-4f6b-9a7d-1e2c3b4a5f60"}
    }));
    assert_single(
        json!({"resourceType": "User", "firstName": "A", "email": "a@example.com"}),
        "User.lastName",
        IssueCode::Required,
    );
    assert_single(
        json!({"resourceType": "User", "firstName": "A", "lastName": "B", "emailVerified": "yes"}),
        "User.emailVerified",
        IssueCode::Structure,
    );
}

#[test]
fn client_application() {
    assert_valid(json!({
        "resourceType": "ClientApplication",
        "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "meta": meta(),
        "status": "active",
        "name": "Test client",
        "secret": "0123456789abcdef0123456789abcdef",
        "redirectUri": "https://app.example.com/callback",
        "redirectUris": ["https://app.example.com/callback", "https://app.example.com/other"],
        "launchUri": "https://app.example.com/launch",
        "pkceOptional": false,
        "accessTokenLifetime": "1h",
        "jwksUri": "https://app.example.com/.well-known/jwks.json",
        "identityProvider": {
            "authorizeUrl": "https://idp.example.com/authorize",
            "tokenUrl": "https://idp.example.com/token",
            "tokenAuthMethod": "client_secret_post",
            "userInfoUrl": "https://idp.example.com/userinfo",
            "clientId": "abc",
            "clientSecret": "def",
            "usePkce": true
        },
        "signInForm": {"welcomeString": "Hello", "logo": {"url": "https://example.com/logo.png"}}
    }));
    assert_single(
        json!({"resourceType": "ClientApplication", "identityProvider": {"tokenAuthMethod": "private_key_jwt"}}),
        "ClientApplication.identityProvider.tokenAuthMethod",
        IssueCode::CodeInvalid,
    );
    assert_single(
        json!({"resourceType": "ClientApplication", "redirectUris": "https://x"}),
        "ClientApplication.redirectUris",
        IssueCode::Structure,
    );
}

#[test]
fn access_policy() {
    assert_valid(json!({
        "resourceType": "AccessPolicy",
        "id": "a1",
        "meta": meta(),
        "name": "Patient access",
        "compartment": {"reference": "%patient"},
        "resource": [
            {
                "resourceType": "Patient",
                "criteria": "Patient?_id=%patient.id",
                "readonlyFields": ["identifier", "name"],
                "hiddenFields": ["telecom"]
            },
            {"resourceType": "Observation", "criteria": "Observation?subject=%patient", "readonly": true},
            {"resourceType": "Communication", "interaction": ["read", "search", "create"]},
            {"resourceType": "Task", "writeConstraint": [{"language": "text/fhirpath", "expression": "%before.exists() implies %after.status != 'completed'"}]}
        ],
        "ipAccessRule": [{"name": "office", "value": "192.168.0.0/16", "action": "allow"}]
    }));
    assert_single(
        json!({"resourceType": "AccessPolicy", "resource": [{"criteria": "Patient?"}]}),
        "AccessPolicy.resource[0].resourceType",
        IssueCode::Required,
    );
    assert_single(
        json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient", "interaction": ["patch"]}]}),
        "AccessPolicy.resource[0].interaction[0]",
        IssueCode::CodeInvalid,
    );
}

#[test]
fn other_medplum_types() {
    assert_valid(json!({
        "resourceType": "ProjectMembership",
        "project": {"reference": "Project/p"},
        "user": {"reference": "User/u"},
        "profile": {"reference": "Practitioner/pr"},
        "admin": true,
        "access": [{"policy": {"reference": "AccessPolicy/a1"},
                    "parameter": [{"name": "patient", "valueReference": {"reference": "Patient/x"}}]}]
    }));
    assert_valid(json!({
        "resourceType": "Login",
        "user": {"reference": "User/u"},
        "authMethod": "password",
        "authTime": "2024-05-06T07:08:09.123Z",
        "codeChallenge": "abc",
        "codeChallengeMethod": "S256",
        "granted": true
    }));
    assert_valid(json!({
        "resourceType": "Bot",
        "name": "hello",
        "runtimeVersion": "vmcontext",
        "sourceCode": {"contentType": "text/typescript", "url": "Binary/1"},
        "cronString": "*/5 * * * *"
    }));
    assert_valid(
        json!({"resourceType": "JsonWebKey", "active": true, "alg": "ES256", "kid": "k1"}),
    );
    assert_valid(json!({"resourceType": "DomainConfiguration", "domain": "example.com"}));
    assert_valid(
        json!({"resourceType": "UserSecurityRequest", "type": "reset", "user": {"reference": "User/u"}, "secret": "x"}),
    );
    assert_valid(json!({"resourceType": "SmartAppLaunch", "patient": {"reference": "Patient/1"}}));
    assert_valid(
        json!({"resourceType": "UserConfiguration", "name": "default",
                        "menu": [{"title": "Favorites", "link": [{"name": "Patients", "target": "/Patient"}]}]}),
    );
    assert_single(
        json!({"resourceType": "Login", "user": {"reference": "User/u"}, "authMethod": "magic", "authTime": "2024-05-06T07:08:09Z"}),
        "Login.authMethod",
        IssueCode::CodeInvalid,
    );
}
