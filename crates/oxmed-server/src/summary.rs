//! `_summary` and `_elements` (FHIR R4 search.html#summary, #elements): reduce a resource to a
//! subset of its top-level elements and tag it `SUBSETTED` so that nobody mistakes it for the
//! whole.

use oxmed_fhir::definitions::Definitions;
use serde_json::{Value, json};

use crate::fhir_json::Summary;

const ALWAYS: &[&str] = &["resourceType", "id", "meta"];

pub fn apply(resource: &mut Value, summary: Summary, elements: Option<&[String]>) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    let resource_type = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let defs = Definitions::global();
    let before = obj.len();
    if let Some(elements) = elements {
        obj.retain(|k, _| ALWAYS.contains(&k.as_str()) || elements.iter().any(|e| e == k));
    } else {
        match summary {
            Summary::False | Summary::Count => return,
            Summary::Data => {
                obj.remove("text");
            }
            Summary::Text => obj.retain(|k, _| {
                ALWAYS.contains(&k.as_str())
                    || k == "text"
                    || element(defs, &resource_type, k).is_some_and(|e| e.min() > 0)
            }),
            Summary::True => obj.retain(|k, _| {
                ALWAYS.contains(&k.as_str())
                    || element(defs, &resource_type, k).is_some_and(|e| e.is_summary())
            }),
        }
    }
    if obj.len() != before {
        let meta = obj.entry("meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let tags = meta.entry("tag").or_insert_with(|| json!([]));
            if let Some(tags) = tags.as_array_mut() {
                tags.push(json!({
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                    "code": "SUBSETTED",
                }));
            }
        }
    }
}

/// The definition of a top-level JSON property of a resource, choice properties
/// (`valueQuantity`) included.
fn element<'a>(
    defs: &'a Definitions,
    resource_type: &str,
    property: &str,
) -> Option<&'a oxmed_fhir::definitions::ElementDef> {
    defs.element(&format!("{resource_type}.{property}"))
}
