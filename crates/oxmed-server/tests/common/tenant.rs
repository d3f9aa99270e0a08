//! A tenant of its own for access-control tests: a Project (not the super admin's) set up by
//! the server itself, so that these tests do not depend on the admin API they are partly about,
//! and members that are ClientApplications with memberships and real tokens.

use serde_json::{Value, json};

use super::{Resp, TestServer, form};

/// A project of its own (not the super admin's), set up by the server itself.
pub struct Tenant<'a> {
    pub srv: &'a TestServer,
    pub project: String,
}

/// A member of a tenant: a ClientApplication with a membership, and its bearer token.
pub struct Member<'a> {
    pub srv: &'a TestServer,
    pub token: String,
    pub client_id: String,
    pub secret: String,
    pub membership: String,
}

impl<'a> Tenant<'a> {
    pub async fn new(srv: &'a TestServer) -> Tenant<'a> {
        let project = oxmed_repo::meta::new_id();
        oxmed_auth::records::put(
            srv.auth.repo(),
            &project,
            json!({"resourceType": "Project", "id": project, "name": "Clinic",
                "setting": [{"name": "s", "valueString": "v"}]}),
        )
        .await
        .expect("project");
        Tenant { srv, project }
    }

    /// Writes a resource into the tenant's project as the server.
    pub async fn put(&self, resource: Value) -> Value {
        oxmed_auth::records::create(self.srv.auth.repo(), &self.project, resource)
            .await
            .expect("create")
    }

    pub fn reference(&self) -> Value {
        json!({"reference": format!("Project/{}", self.project)})
    }

    /// A ClientApplication with a membership naming this policy (none: no policy); its id and
    /// secret.
    pub async fn client(&self, policy_id: Option<&str>) -> (String, String) {
        self.client_with(policy_id, json!([]), false).await.0
    }

    /// A client and its membership; the client's id and secret, and the membership's id.
    pub async fn client_with(
        &self,
        policy_id: Option<&str>,
        parameters: Value,
        admin: bool,
    ) -> ((String, String), String) {
        let secret = format!("secret-{}", oxmed_repo::meta::new_id());
        let client = self
            .put(
                json!({"resourceType": "ClientApplication", "name": "member",
                "status": "active", "secret": secret}),
            )
            .await;
        let client_id = id(&client);
        let mut membership = json!({"resourceType": "ProjectMembership",
            "project": self.reference(),
            "user": {"reference": format!("ClientApplication/{client_id}")},
            "profile": {"reference": format!("ClientApplication/{client_id}")},
            "admin": admin});
        if let Some(p) = policy_id {
            let mut access = json!({"policy": {"reference": format!("AccessPolicy/{p}")}});
            if parameters.as_array().is_some_and(|p| !p.is_empty()) {
                access["parameter"] = parameters;
            }
            membership["access"] = json!([access]);
        }
        let m = self.put(membership).await;
        ((client_id, secret), id(&m))
    }

    /// A client member, not an admin, whose policy has these `resource` entries.
    pub async fn restricted(&self, entries: Value) -> Member<'a> {
        self.member(Some(policy(entries)), json!([]), false).await
    }

    /// A client member with this AccessPolicy (none: the membership has no policy) and these
    /// `access[].parameter` values.
    pub async fn member(
        &self,
        policy: Option<Value>,
        parameters: Value,
        admin: bool,
    ) -> Member<'a> {
        let policy_id = match policy {
            Some(p) => Some(id(&self.put(p).await)),
            None => None,
        };
        let ((client_id, secret), membership) = self
            .client_with(policy_id.as_deref(), parameters, admin)
            .await;
        let token = token_of(self.srv, &client_id, &secret).await;
        Member {
            srv: self.srv,
            token,
            client_id,
            secret,
            membership,
        }
    }
}

pub async fn token_of(srv: &TestServer, client_id: &str, secret: &str) -> String {
    let r = token_response(srv, client_id, secret).await;
    assert_eq!(r.status, 200, "client credentials: {}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

pub async fn token_response(srv: &TestServer, client_id: &str, secret: &str) -> Resp {
    form(
        srv,
        "oauth2/token",
        &[("grant_type", "client_credentials")],
        Some((client_id, secret)),
    )
    .await
}

impl<'a> Member<'a> {
    /// A caller holding this access token (of a user's sign-in, or a client's grant).
    pub fn with_token(srv: &'a TestServer, token: &str) -> Member<'a> {
        Member {
            srv,
            token: token.to_owned(),
            client_id: String::new(),
            secret: String::new(),
            membership: String::new(),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Resp {
        self.call_with(method, path, body, &[]).await
    }

    /// On behalf of the membership or profile `target` (`X-Medplum-On-Behalf-Of`).
    pub async fn as_for(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        target: &str,
    ) -> Resp {
        self.call_with(method, path, body, &[("x-medplum-on-behalf-of", target)])
            .await
    }

    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .srv
            .plain
            .request(method.clone(), self.srv.url(path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            let ct = if method == reqwest::Method::PATCH {
                "application/json-patch+json"
            } else {
                "application/fhir+json"
            };
            req = req.header("content-type", ct).body(b.to_string());
        }
        Resp::from(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// The ids of a search's matches.
    pub async fn ids(&self, query: &str) -> Vec<String> {
        let r = self.get(query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        ids_of(&r.body)
    }
}

pub fn ids_of(bundle: &Value) -> Vec<String> {
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

pub fn policy(resource: Value) -> Value {
    if resource.as_array().is_some_and(|r| r.is_empty()) {
        // FHIR JSON has no empty arrays: a policy with no entries has no `resource`.
        return json!({"resourceType": "AccessPolicy", "name": "empty"});
    }
    json!({"resourceType": "AccessPolicy", "name": "test", "resource": resource})
}

pub fn observation(patient: &str, status: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": 7, "unit": "mmol/L"}})
}
