//! `Project.checkReferencesOnWrite` (spec §8.1): every reference a write stores must name a
//! resource the caller can read — of its project or a linked one, and within its AccessPolicy —
//! or the write is refused with 400 "Invalid reference (Not found)" at the reference's path.
//!
//! Checked before the write's transaction, like Medplum: a resource deleted in between still
//! leaves a dangling reference, as a later delete always can. Not checked: references into the
//! resource itself (`#`), to bundle entries (`urn:`), variables (`%`), conditional references
//! (`Type?query`), absolute URLs (another server's resources) and `meta`.

use std::collections::HashSet;

use oxmed_fhir::operation_outcome::Issue;
use serde_json::Value;

use crate::{RepoError, Repository, RequestContext, WriteRequest};

/// References the server itself resolves across projects (Medplum's system paths): a project's
/// owner and links, a membership's user. They must exist, in any project.
const SYSTEM_PATHS: &[&str] = &[
    "Project.owner",
    "Project.link.project",
    "ProjectMembership.user",
];

/// Most references one write may ask to check: bounds the reads one request causes.
const MAX_REFERENCES: usize = 1000;

/// A reference found in a resource: its path (`Patient.generalPractitioner[0]`), the path
/// without indexes (`Patient.generalPractitioner`), and the `Type/id` it names.
struct Found {
    path: String,
    element: String,
    resource_type: String,
    id: String,
}

impl Repository {
    /// 400 if the caller's project checks references and `request` writes one that does not
    /// name a resource the caller can read. `written`: `Type/id` of resources the same
    /// transaction writes, taken as existing.
    pub(crate) async fn check_references(
        &self,
        ctx: &RequestContext,
        request: &WriteRequest,
        written: &HashSet<String>,
    ) -> Result<(), RepoError> {
        if !ctx.check_references {
            return Ok(());
        }
        let mut found = Vec::new();
        if let Some(resource) = request.resource() {
            let rt = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("");
            collect(resource, rt, rt, &mut found);
        } else if let WriteRequest::Patch {
            resource_type,
            patch,
            ..
        } = request
        {
            collect_patch(patch, resource_type, &mut found);
        }
        if found.len() > MAX_REFERENCES {
            return Err(RepoError::invalid(format!(
                "At most {MAX_REFERENCES} references can be checked in one resource"
            )));
        }
        let mut issues = Vec::new();
        for f in found {
            if written.contains(&format!("{}/{}", f.resource_type, f.id)) {
                continue;
            }
            let exists = if SYSTEM_PATHS.contains(&f.element.as_str()) {
                Repository::check_type(&f.resource_type).is_ok()
                    && self
                        .system_read(&f.resource_type, &f.id)
                        .await?
                        .is_some_and(|r| !r.deleted)
            } else {
                match self.read(ctx, &f.resource_type, &f.id).await {
                    Ok(_) => true,
                    Err(RepoError::Store(e)) => return Err(RepoError::Store(e)),
                    Err(_) => false,
                }
            };
            if !exists {
                issues.push(
                    Issue::error("structure", "Invalid reference (Not found)").at(f.path.clone()),
                );
            }
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(RepoError::Invalid(issues))
        }
    }
}

/// The checkable references under `value`, whose path is `path` (`element`: without indexes).
fn collect(value: &Value, path: &str, element: &str, out: &mut Vec<Found>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("reference")
                && let Some((resource_type, id)) = checkable(reference)
            {
                out.push(Found {
                    path: path.to_owned(),
                    element: element.to_owned(),
                    resource_type,
                    id,
                });
            }
            for (k, v) in map {
                if k == "meta" || k == "reference" || k == "resourceType" {
                    continue;
                }
                collect(v, &format!("{path}.{k}"), &format!("{element}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &format!("{path}[{i}]"), element, out);
            }
        }
        _ => {}
    }
}

/// The references a JSON Patch writes: in the values it adds or replaces, and a string put at
/// a `.../reference` path.
fn collect_patch(patch: &Value, resource_type: &str, out: &mut Vec<Found>) {
    let Some(ops) = patch.as_array() else { return };
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        if kind != "add" && kind != "replace" {
            continue;
        }
        let Some(target) = op.get("path").and_then(Value::as_str) else {
            continue;
        };
        let (path, element) = patch_path(resource_type, target);
        match op.get("value") {
            Some(Value::String(reference)) if target.ends_with("/reference") => {
                if let Some((rt, id)) = checkable(reference) {
                    let trim = |p: &str| p.trim_end_matches(".reference").to_owned();
                    out.push(Found {
                        path: trim(&path),
                        element: trim(&element),
                        resource_type: rt,
                        id,
                    });
                }
            }
            Some(v) if !target.starts_with("/meta") => collect(v, &path, &element, out),
            _ => {}
        }
    }
}

/// A JSON Pointer as a FHIRPath-like path: `/generalPractitioner/0` →
/// `Patient.generalPractitioner[0]` (and `Patient.generalPractitioner`).
fn patch_path(resource_type: &str, pointer: &str) -> (String, String) {
    let mut path = resource_type.to_owned();
    let mut element = resource_type.to_owned();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.parse::<usize>().is_ok() || token == "-" {
            path.push_str(&format!("[{token}]"));
        } else {
            path.push('.');
            path.push_str(&token);
            element.push('.');
            element.push_str(&token);
        }
    }
    (path, element)
}

/// `Type/id` or `Type/id/_history/v` → (Type, id); `None` for what is not checked.
fn checkable(reference: &str) -> Option<(String, String)> {
    if reference.starts_with('#')
        || reference.starts_with('%')
        || reference.starts_with("urn:")
        || reference.contains("://")
        || reference.contains('?')
    {
        return None;
    }
    // Anything else is checked; what is not `Type/id` then names no resource and is refused.
    let malformed = || Some((reference.to_owned(), String::new()));
    let mut parts = reference.split('/');
    let (Some(resource_type), Some(id)) = (parts.next(), parts.next()) else {
        return malformed();
    };
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) | (Some("_history"), Some(_), None) => {}
        _ => return malformed(),
    }
    Some((resource_type.to_owned(), id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_found_with_their_paths_and_the_rest_is_left_alone() {
        let patient = json!({
            "resourceType": "Patient",
            "meta": {"author": {"reference": "Practitioner/m"}},
            "generalPractitioner": [
                {"reference": "Practitioner/a"},
                {"reference": "#contained"},
                {"reference": "Organization/b/_history/2"},
            ],
            "managingOrganization": {"reference": "https://other.example/Organization/c"},
            "link": [{"other": {"reference": "Patient/d"}, "type": "seealso"}],
        });
        let mut found = Vec::new();
        collect(&patient, "Patient", "Patient", &mut found);
        let got: Vec<(String, String, String)> = found
            .into_iter()
            .map(|f| (f.path, f.resource_type, f.id))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "Patient.generalPractitioner[0]".into(),
                    "Practitioner".into(),
                    "a".into()
                ),
                (
                    "Patient.generalPractitioner[2]".into(),
                    "Organization".into(),
                    "b".into()
                ),
                ("Patient.link[0].other".into(), "Patient".into(), "d".into()),
            ]
        );
    }

    #[test]
    fn a_malformed_reference_is_checked_and_cannot_resolve() {
        assert_eq!(
            checkable("Patient/a/b"),
            Some(("Patient/a/b".into(), String::new()))
        );
        assert_eq!(
            checkable("Patient"),
            Some(("Patient".into(), String::new()))
        );
        assert_eq!(checkable("urn:uuid:1"), None);
        assert_eq!(checkable("Patient?identifier=x"), None);
    }

    #[test]
    fn a_patch_writes_references_in_its_values_and_at_reference_paths() {
        let patch = json!([
            {"op": "add", "path": "/generalPractitioner/0", "value": {"reference": "Practitioner/a"}},
            {"op": "replace", "path": "/managingOrganization/reference", "value": "Organization/b"},
            {"op": "remove", "path": "/link"},
            {"op": "test", "path": "/x", "value": {"reference": "Patient/c"}},
        ]);
        let mut found = Vec::new();
        collect_patch(&patch, "Patient", &mut found);
        let got: Vec<(String, String)> = found.into_iter().map(|f| (f.path, f.id)).collect();
        assert_eq!(
            got,
            vec![
                ("Patient.generalPractitioner[0]".into(), "a".into()),
                ("Patient.managingOrganization".into(), "b".into()),
            ]
        );
    }
}
