//! The compartments of a live resource, kept beside its content in `resources.compartments` so
//! that an access policy whose criteria only list compartments decides a read by id on one short
//! column of the row it reads anyway, instead of parsing the content or reading index rows from
//! another B-tree (measured: that second B-tree was most of what such a policy cost a read).
//!
//! Written by the store from the version's index entries (the same `search::matching::compartments`
//! the in-memory matcher and the search decide on), in the transaction of the write. `NULL`
//! means unknown (a row written before the column existed, a deletion, or a compartment this
//! encoding cannot hold): the caller then decides on the content.

use oxmed_fhir::index_value::IndexEntry;

/// The column's value for a version: its compartments as `Type/id` lines; `None` for a deletion
/// or when a type holds a `/` or either part a line break (never for valid FHIR, but references
/// are written by clients).
pub(crate) fn column(
    resource_type: &str,
    id: &str,
    deleted: bool,
    index: &[IndexEntry],
) -> Option<String> {
    if deleted {
        return None;
    }
    let found = oxmed_fhir::search::matching::compartments(resource_type, Some(id), index);
    let mut out = String::new();
    for (i, (t, id)) in found.iter().enumerate() {
        if t.is_empty() || t.contains(['/', '\n']) || id.contains('\n') {
            return None;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(t);
        out.push('/');
        out.push_str(id);
    }
    Some(out)
}

/// The compartments `(type, id)` a column value lists; `None` if it is not one [`column`] writes.
pub fn decode(column: &str) -> Option<Vec<(&str, &str)>> {
    if column.is_empty() {
        return Some(Vec::new());
    }
    column
        .split('\n')
        .map(|line| line.split_once('/').filter(|(t, _)| !t.is_empty()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxmed_fhir::index_value::IndexValue;
    use serde_json::json;

    fn of(r: serde_json::Value) -> Option<String> {
        let index = oxmed_fhir::index::extract(&r);
        column(
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap(),
            false,
            &index,
        )
    }

    #[test]
    fn a_column_lists_what_the_matcher_decides_on() {
        let o = json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"text": "t"}, "subject": {"reference": "Patient/p1"},
            "performer": [{"reference": "Practitioner/x"}, {"reference": "Patient/p2"}],
            "meta": {"accounts": [{"reference": "Organization/a1"}]}});
        let col = of(o.clone()).unwrap();
        let mut listed = decode(&col).unwrap();
        listed.sort();
        let index = oxmed_fhir::index::extract(&o);
        let mut expected =
            oxmed_fhir::search::matching::compartments("Observation", Some("o1"), &index);
        expected.sort();
        assert_eq!(listed, expected);
        assert!(listed.contains(&("Patient", "p1")) && listed.contains(&("Patient", "p2")));
        // A Patient is in its own compartment; no compartment at all is an empty list, not NULL.
        let p = of(json!({"resourceType": "Patient", "id": "p9"})).unwrap();
        assert_eq!(decode(&p).unwrap(), vec![("Patient", "p9")]);
        let none = of(
            json!({"resourceType": "Observation", "id": "o2", "status": "final", "code": {"text": "t"}}),
        );
        assert_eq!(none.as_deref(), Some(""));
        assert_eq!(decode("").unwrap(), Vec::<(&str, &str)>::new());
        assert_eq!(column("Observation", "o3", true, &index), None);
    }

    #[test]
    fn what_the_column_cannot_hold_is_unknown() {
        // References are checked where they are indexed; the column does not rely on it.
        let entry = |t: &str, id: &str| IndexEntry {
            code: "subject".into(),
            value: IndexValue::Reference {
                target_type: Some(t.into()),
                target_id: Some(id.into()),
                reference: format!("{t}/{id}"),
            },
        };
        let column_of = |e: IndexEntry| column("Observation", "o1", false, &[e]);
        assert_eq!(column_of(entry("Patient", "p1\nPatient/p2")), None);
        assert_eq!(
            column_of(entry("Patient", "p1")).as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(decode("Patient"), None);
        assert_eq!(decode("Patient/p1\n/p2"), None);
        assert_eq!(
            decode("Patient/p1\nAccount/a/b").unwrap(),
            vec![("Patient", "p1"), ("Account", "a/b")]
        );
    }
}
