//! FHIR JSON on the wire: content types, `_pretty`, `_summary`, `_elements`, `Prefer`, and the
//! headers that go with a resource (`ETag`, `Last-Modified`, `Location`).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxmed_store::StoredResource;
use serde_json::Value;

use crate::error::ApiError;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    False,
    True,
    Text,
    Data,
    Count,
}

/// How a client asked for resources to be shaped.
#[derive(Debug, Clone)]
pub struct Format {
    pub pretty: bool,
    pub summary: Summary,
    pub elements: Option<Vec<String>>,
}

impl Format {
    /// Reads `_pretty`, `_summary`, `_elements` and `_format` from the query parameters.
    pub fn from_params(params: &[(String, String)]) -> Result<Format, ApiError> {
        let mut f = Format {
            pretty: false,
            summary: Summary::False,
            elements: None,
        };
        for (k, v) in params {
            match k.as_str() {
                "_pretty" => {
                    f.pretty = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(ApiError::bad_request("_pretty must be true or false")),
                    }
                }
                "_summary" => {
                    f.summary = match v.as_str() {
                        "true" => Summary::True,
                        "false" => Summary::False,
                        "text" => Summary::Text,
                        "data" => Summary::Data,
                        "count" => Summary::Count,
                        _ => {
                            return Err(ApiError::bad_request(
                                "_summary must be one of true, false, text, data, count",
                            ));
                        }
                    }
                }
                "_elements" => {
                    f.elements = Some(
                        v.split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    )
                }
                "_format"
                    if !matches!(
                        v.as_str(),
                        "json" | "application/json" | "application/fhir+json"
                    ) =>
                {
                    return Err(ApiError::Status(
                        StatusCode::NOT_ACCEPTABLE,
                        "Only JSON is supported (_format=json)".into(),
                        "not-supported",
                    ));
                }
                _ => {}
            }
        }
        Ok(f)
    }

    /// Whether a stored resource can be sent exactly as stored.
    pub fn is_raw(&self) -> bool {
        !self.pretty && self.summary == Summary::False && self.elements.is_none()
    }

    /// Applies `_summary` and `_elements` to a resource.
    pub fn shape(&self, resource: &mut Value) {
        crate::summary::apply(resource, self.summary, self.elements.as_deref());
    }

    pub fn to_body(&self, value: &Value) -> String {
        if self.pretty {
            serde_json::to_string_pretty(value).unwrap_or_default()
        } else {
            value.to_string()
        }
    }
}

/// `Prefer: return=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Minimal,
    Representation,
    OperationOutcome,
}

pub fn prefer_return(headers: &HeaderMap) -> Return {
    for v in headers.get_all("prefer") {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split([',', ';']) {
            match part.trim() {
                "return=minimal" => return Return::Minimal,
                "return=OperationOutcome" => return Return::OperationOutcome,
                "return=representation" => return Return::Representation,
                _ => {}
            }
        }
    }
    Return::Representation
}

/// Parses a request body as FHIR JSON, insisting on a JSON content type.
pub fn parse_body(headers: &HeaderMap, body: &[u8], patch: bool) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let accepted = if patch {
        matches!(
            mime.as_str(),
            "application/json-patch+json" | "application/json"
        )
    } else {
        matches!(mime.as_str(), "application/fhir+json" | "application/json")
    };
    if !accepted {
        let expected = if patch {
            "application/json-patch+json"
        } else {
            "application/fhir+json or application/json"
        };
        return Err(ApiError::unsupported_media_type(format!(
            "Unsupported content type: expected {expected}"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid JSON: {e}")))
}

pub fn etag(version_id: &str) -> String {
    format!("W/\"{version_id}\"")
}

pub fn http_date(micros: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros.max(0) as u64);
    httpdate::fmt_http_date(t)
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// A response carrying one resource version, with its `ETag` and `Last-Modified`.
pub fn resource_response(
    status: StatusCode,
    stored: &StoredResource,
    format: &Format,
    location: Option<&str>,
) -> Response {
    let body = if format.is_raw() {
        stored.content.clone()
    } else {
        match serde_json::from_str::<Value>(&stored.content) {
            Ok(mut v) => {
                format.shape(&mut v);
                format.to_body(&v)
            }
            Err(_) => stored.content.clone(),
        }
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    set(h, header::ETAG, &etag(&stored.version_id));
    set(h, header::LAST_MODIFIED, &http_date(stored.last_updated));
    if let Some(l) = location {
        set(h, header::LOCATION, l);
    }
    resp
}

/// A response carrying a JSON value (a Bundle, an OperationOutcome, the CapabilityStatement).
pub fn json_response(status: StatusCode, value: &Value, format: &Format) -> Response {
    json_body_response(status, format.to_body(value))
}

/// A FHIR JSON body already written.
pub fn json_body_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}
