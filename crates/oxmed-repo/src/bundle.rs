//! `batch` and `transaction` Bundles (FHIR R4 http.html#transaction). A transaction's writes run
//! as one store transaction, in the order FHIR prescribes (DELETE, POST, PUT/PATCH), and its reads
//! (GET) after the commit; any failure leaves nothing behind. A batch runs each entry on its own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use crate::meta::{instant, new_id};
use crate::write::{BundleLinks, Prepared, Written, prepare, written};
use crate::{RepoError, Repository, RequestContext, WriteRequest, truncate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Batch,
    Transaction,
}

/// What one entry asks for.
enum EntryRequest {
    Write(WriteRequest),
    Read {
        resource_type: String,
        id: String,
    },
    VRead {
        resource_type: String,
        id: String,
        version_id: String,
    },
    Search {
        resource_type: String,
        query: String,
    },
}

/// Most entries in one Bundle: bounds the work of one request.
const MAX_ENTRIES: usize = 10_000;

pub(crate) async fn process(
    repo: &Repository,
    ctx: &RequestContext,
    bundle: Value,
    base_url: &str,
) -> Result<Value, RepoError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(RepoError::invalid_at("Expected a Bundle", "resourceType"));
    }
    let kind = match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => BundleKind::Batch,
        Some("transaction") => BundleKind::Transaction,
        _ => {
            return Err(RepoError::invalid_at(
                "Bundle.type must be batch or transaction",
                "Bundle.type",
            ));
        }
    };
    let entries = match bundle.get("entry") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(RepoError::invalid_at(
                "Bundle.entry must be an array",
                "Bundle.entry",
            ));
        }
    };
    if entries.len() > MAX_ENTRIES {
        return Err(RepoError::invalid(format!(
            "A Bundle may have at most {MAX_ENTRIES} entries"
        )));
    }
    match kind {
        BundleKind::Batch => batch(repo, ctx, entries, base_url).await,
        BundleKind::Transaction => transaction(repo, ctx, entries, base_url).await,
    }
}

fn response_bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "id": new_id(),
        "type": kind,
        "entry": entries,
    })
}

async fn batch(
    repo: &Repository,
    ctx: &RequestContext,
    entries: Vec<Value>,
    base_url: &str,
) -> Result<Value, RepoError> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let result = match parse_entry(&entry, base_url, i) {
            Ok(EntryRequest::Write(w)) => repo.write(ctx, w).await.map(|w| write_response(&w)),
            Ok(read) => run_read(repo, ctx, read, base_url).await,
            Err(e) => Err(e),
        };
        out.push(result.unwrap_or_else(|e| error_entry(&e)));
    }
    Ok(response_bundle("batch-response", out))
}

async fn transaction(
    repo: &Repository,
    ctx: &RequestContext,
    entries: Vec<Value>,
    base_url: &str,
) -> Result<Value, RepoError> {
    let mut requests = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let full_url = entry
            .get("fullUrl")
            .and_then(Value::as_str)
            .map(str::to_owned);
        requests.push((i, full_url, parse_entry(entry, base_url, i)?));
    }
    // Plain creates get their ids now, so that entries before them may refer to them.
    let mut assigned = HashMap::new();
    for (_, full_url, r) in &requests {
        if let (
            Some(u),
            EntryRequest::Write(WriteRequest::Create {
                resource,
                if_none_exist: None,
            }),
        ) = (full_url, r)
        {
            let rt = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("");
            assigned.insert(u.clone(), format!("{rt}/{}", new_id()));
        }
    }
    // What the transaction itself writes exists for the reference checks of its entries.
    let mut in_bundle: HashSet<String> = assigned.values().cloned().collect();
    for (_, _, r) in &requests {
        if let EntryRequest::Write(WriteRequest::Update {
            resource_type, id, ..
        }) = r
        {
            in_bundle.insert(format!("{resource_type}/{id}"));
        }
    }
    for (i, _, r) in &requests {
        if let EntryRequest::Write(w) = r {
            repo.check_references(ctx, w, &in_bundle)
                .await
                .map_err(|e| at_entry(e, *i))?;
        }
    }
    let assigned = Arc::new(assigned);
    let mut patient_accounts = HashMap::new();
    let mut writes: Vec<(usize, u8, Prepared)> = Vec::new();
    let mut reads = Vec::new();
    for (i, full_url, r) in requests {
        match r {
            EntryRequest::Write(w) => {
                let order = match &w {
                    WriteRequest::Delete { .. } | WriteRequest::ConditionalDelete { .. } => 0,
                    WriteRequest::Create {
                        if_none_exist: Some(_),
                        ..
                    } => 1,
                    WriteRequest::Create { .. } => 2,
                    _ => 3,
                };
                let links = BundleLinks {
                    full_url,
                    assigned: assigned.clone(),
                };
                let inherited = repo
                    .inherited_accounts(ctx, &w, &mut patient_accounts)
                    .await
                    .map_err(|e| at_entry(e, i))?;
                let prepared =
                    prepare(ctx, w, Some(links), inherited).map_err(|e| at_entry(e, i))?;
                writes.push((i, order, prepared));
            }
            read => reads.push((i, read)),
        }
    }
    writes.sort_by_key(|(i, order, _)| (*order, *i));
    let mut kinds = Vec::with_capacity(writes.len());
    let mut ops = Vec::with_capacity(writes.len());
    for (i, _, p) in writes {
        kinds.push((i, p.kind));
        ops.push(p.op);
    }
    let outcomes = repo.execute(&ctx.project, ops).await?;
    let mut out: Vec<Value> = vec![Value::Null; entries.len()];
    for ((i, kind), outcome) in kinds.into_iter().zip(outcomes) {
        out[i] = write_response(&written(ctx, kind, outcome));
    }
    for (i, read) in reads {
        out[i] = run_read(repo, ctx, read, base_url)
            .await
            .unwrap_or_else(|e| error_entry(&e));
    }
    Ok(response_bundle("transaction-response", out))
}

fn at_entry(e: RepoError, i: usize) -> RepoError {
    match e {
        RepoError::Invalid(mut issues) => {
            for issue in &mut issues {
                issue.details = format!("Bundle.entry[{i}]: {}", issue.details);
            }
            RepoError::Invalid(issues)
        }
        other => other,
    }
}

fn parse_entry(entry: &Value, base_url: &str, i: usize) -> Result<EntryRequest, RepoError> {
    let request = entry.get("request").ok_or_else(|| {
        RepoError::invalid_at("Missing request", format!("Bundle.entry[{i}].request"))
    })?;
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RepoError::invalid_at(
                "Missing request.method",
                format!("Bundle.entry[{i}].request.method"),
            )
        })?;
    let url = request.get("url").and_then(Value::as_str).ok_or_else(|| {
        RepoError::invalid_at(
            "Missing request.url",
            format!("Bundle.entry[{i}].request.url"),
        )
    })?;
    let url = url
        .strip_prefix(base_url)
        .unwrap_or(url)
        .trim_start_matches('/');
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (url, None),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_owned);
    let resource = || {
        entry.get("resource").cloned().ok_or_else(|| {
            RepoError::invalid_at("Missing resource", format!("Bundle.entry[{i}].resource"))
        })
    };
    let if_match = text("ifMatch").map(|s| unquote_etag(&s));
    let bad = || {
        RepoError::invalid_at(
            format!("Unsupported request: {method} {}", truncate(url)),
            format!("Bundle.entry[{i}].request"),
        )
    };
    let owned = |s: &str| s.to_owned();
    Ok(match (method, segments.as_slice(), query) {
        ("POST", [t], None) => {
            let r = resource()?;
            if r.get("resourceType").and_then(Value::as_str) != Some(*t) {
                return Err(RepoError::invalid_at(
                    "The resource type does not match the request URL",
                    format!("Bundle.entry[{i}].resource.resourceType"),
                ));
            }
            EntryRequest::Write(WriteRequest::Create {
                resource: r,
                if_none_exist: text("ifNoneExist"),
            })
        }
        ("PUT", [t, id], None) => EntryRequest::Write(WriteRequest::Update {
            resource_type: owned(t),
            id: owned(id),
            resource: resource()?,
            if_match,
        }),
        ("PUT", [t], Some(q)) => EntryRequest::Write(WriteRequest::ConditionalUpdate {
            resource_type: owned(t),
            query: q,
            resource: resource()?,
            if_match,
        }),
        ("PATCH", [t, id], None) => EntryRequest::Write(WriteRequest::Patch {
            resource_type: owned(t),
            id: owned(id),
            patch: patch_body(&resource()?, i)?,
            if_match,
        }),
        ("DELETE", [t, id], None) => EntryRequest::Write(WriteRequest::Delete {
            resource_type: owned(t),
            id: owned(id),
        }),
        ("DELETE", [t], Some(q)) => EntryRequest::Write(WriteRequest::ConditionalDelete {
            resource_type: owned(t),
            query: q,
        }),
        ("GET", [t, id], None) => EntryRequest::Read {
            resource_type: owned(t),
            id: owned(id),
        },
        ("GET", [t, id, "_history", v], None) => EntryRequest::VRead {
            resource_type: owned(t),
            id: owned(id),
            version_id: owned(v),
        },
        ("GET", [t], q) => EntryRequest::Search {
            resource_type: owned(t),
            query: q.unwrap_or_default(),
        },
        _ => return Err(bad()),
    })
}

/// A PATCH entry carries its JSON Patch as a Binary resource with base64 data (FHIR's way), or,
/// as some clients send it, as the patch array itself.
fn patch_body(resource: &Value, i: usize) -> Result<Value, RepoError> {
    if resource.is_array() {
        return Ok(resource.clone());
    }
    let data = resource
        .get("data")
        .and_then(Value::as_str)
        .filter(|_| resource.get("resourceType").and_then(Value::as_str) == Some("Binary"))
        .ok_or_else(|| {
            RepoError::invalid_at(
                "A PATCH entry needs a Binary resource holding a JSON Patch",
                format!("Bundle.entry[{i}].resource"),
            )
        })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| RepoError::invalid("The Binary data of a PATCH entry is not base64"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RepoError::invalid(format!("The JSON Patch of a PATCH entry is invalid: {e}")))
}

/// `W/"3"` or `"3"` or `3` → `3`.
pub fn unquote_etag(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').to_owned()
}

async fn run_read(
    repo: &Repository,
    ctx: &RequestContext,
    read: EntryRequest,
    base_url: &str,
) -> Result<Value, RepoError> {
    match read {
        EntryRequest::Read { resource_type, id } => {
            let r = repo.read(ctx, &resource_type, &id).await?;
            Ok(resource_entry(&r, "200 OK"))
        }
        EntryRequest::VRead {
            resource_type,
            id,
            version_id,
        } => {
            let r = repo.vread(ctx, &resource_type, &id, &version_id).await?;
            Ok(resource_entry(&r, "200 OK"))
        }
        EntryRequest::Search {
            resource_type,
            query,
        } => {
            let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let (_, result) = repo
                .search(
                    ctx,
                    Some(&resource_type),
                    &params,
                    None,
                    &crate::SearchOptions {
                        base_url: base_url.to_owned(),
                        lenient: false,
                        max_count: 1000,
                    },
                )
                .await?;
            let found = result.matches;
            let entries: Vec<Value> = found
                .iter()
                .map(|r| {
                    json!({
                        "fullUrl": format!("{}/{}", r.resource_type, r.id),
                        "resource": parse_content(&r.content),
                        "search": { "mode": "match" },
                    })
                })
                .collect();
            Ok(json!({
                "resource": {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": entries,
                },
                "response": { "status": "200 OK" },
            }))
        }
        EntryRequest::Write(_) => Err(RepoError::invalid("Not a read")),
    }
}

fn parse_content(content: &str) -> Value {
    serde_json::from_str(content).unwrap_or(Value::Null)
}

fn resource_entry(r: &oxmed_store::StoredResource, status: &str) -> Value {
    json!({
        "fullUrl": format!("{}/{}", r.resource_type, r.id),
        "resource": parse_content(&r.content),
        "response": {
            "status": status,
            "location": format!("{}/{}/_history/{}", r.resource_type, r.id, r.version_id),
            "etag": format!("W/\"{}\"", r.version_id),
            "lastModified": instant(r.last_updated),
        },
    })
}

fn write_response(w: &Written) -> Value {
    match &w.resource {
        Some(r) if !r.deleted => {
            resource_entry(r, if w.created { "201 Created" } else { "200 OK" })
        }
        _ => json!({ "response": { "status": "200 OK" } }),
    }
}

fn error_entry(e: &RepoError) -> Value {
    json!({
        "response": {
            "status": format!("{}", e.status()),
            "outcome": e.outcome(),
        }
    })
}
