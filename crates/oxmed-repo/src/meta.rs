//! What the server itself writes into a resource: id, `meta.versionId`, `meta.lastUpdated`,
//! `meta.project`, `meta.author`.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A new resource id or version id: a UUIDv7, so that new rows land at the end of the B-trees
/// instead of dirtying random pages.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// `meta.lastUpdated` text for a timestamp in microseconds (always whole milliseconds here).
pub fn instant(micros: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d) = (t.year(), t.month() as u8, t.day());
    let (h, mi, s, ms) = (t.hour(), t.minute(), t.second(), t.millisecond());
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Parses a FHIR instant / dateTime with time zone (as in `_since`) into microseconds.
pub fn parse_instant(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
}

/// The elements of `meta` that the server owns: a client cannot set them, and a change to them
/// alone does not make a new version.
const SERVER_META: &[&str] = &[
    "versionId",
    "lastUpdated",
    "project",
    "author",
    "onBehalfOf",
];

/// Removes the server-owned parts of `meta` (and `meta` itself when that leaves it empty).
pub fn strip_server_meta(resource: &mut Value) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    let empty = match obj.get_mut("meta").and_then(Value::as_object_mut) {
        Some(meta) => {
            for k in SERVER_META {
                meta.remove(*k);
            }
            meta.is_empty()
        }
        None => false,
    };
    if empty {
        obj.remove("meta");
    }
}

pub struct Stamp<'a> {
    pub id: &'a str,
    pub version_id: &'a str,
    pub last_updated: i64,
    pub project: &'a str,
    pub author: Option<&'a str>,
    /// The profile a request acted for (`X-Medplum-On-Behalf-Of`, spec §11).
    pub on_behalf_of: Option<&'a str>,
}

/// Writes id and the server's meta into `resource`, keeping the client's meta elements (profile,
/// tag, security, source, ...). `id` goes right after `resourceType`, `meta` after `id`, as FHIR
/// JSON is conventionally ordered.
pub fn stamp(resource: &mut Value, s: &Stamp<'_>) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    let mut meta = match obj.remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.insert("versionId".into(), Value::String(s.version_id.into()));
    meta.insert("lastUpdated".into(), Value::String(instant(s.last_updated)));
    meta.insert("project".into(), Value::String(s.project.into()));
    if let Some(author) = s.author {
        meta.insert("author".into(), serde_json::json!({ "reference": author }));
    }
    if let Some(target) = s.on_behalf_of {
        meta.insert(
            "onBehalfOf".into(),
            serde_json::json!({ "reference": target }),
        );
    }
    let rest: Vec<(String, Value)> = std::mem::take(obj).into_iter().collect();
    let mut ordered = Map::with_capacity(rest.len() + 2);
    let mut rest_iter = rest.into_iter().peekable();
    if let Some((k, v)) = rest_iter.next_if(|(k, _)| k == "resourceType") {
        ordered.insert(k, v);
    }
    ordered.insert("id".into(), Value::String(s.id.into()));
    ordered.insert("meta".into(), Value::Object(meta));
    for (k, v) in rest_iter {
        if k != "id" {
            ordered.insert(k, v);
        }
    }
    *obj = ordered;
}

/// Whether two versions say the same thing, ignoring what the server stamps.
pub fn same_content(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    strip_server_meta(&mut a);
    strip_server_meta(&mut b);
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instant_formats_milliseconds_in_utc() {
        assert_eq!(instant(1_700_000_000_123_000), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            parse_instant("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123_000)
        );
        assert_eq!(
            parse_instant("2023-11-14T23:13:20.123+01:00"),
            Some(1_700_000_000_123_000)
        );
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn stamp_orders_and_overrides_client_meta() {
        let mut r = json!({"resourceType": "Patient", "active": true, "id": "x", "meta": {"versionId": "evil", "tag": [{"code": "t"}]}});
        stamp(
            &mut r,
            &Stamp {
                id: "abc",
                version_id: "v1",
                last_updated: 1_000,
                project: "p",
                author: None,
                on_behalf_of: None,
            },
        );
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["resourceType", "id", "meta", "active"]);
        assert_eq!(r["meta"]["versionId"], "v1");
        assert_eq!(r["meta"]["tag"][0]["code"], "t");
        assert_eq!(r["meta"]["project"], "p");
    }

    #[test]
    fn same_content_ignores_server_meta_only() {
        let a = json!({"resourceType": "Patient", "meta": {"versionId": "1", "lastUpdated": "x"}, "active": true});
        let b = json!({"resourceType": "Patient", "active": true});
        let c = json!({"resourceType": "Patient", "active": false});
        assert!(same_content(&a, &b));
        assert!(!same_content(&a, &c));
    }
}
