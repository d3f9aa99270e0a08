//! Hidden and read-only fields (spec §1.3): dotted element paths (`name.family`,
//! `subject.display`, `meta`) applied to a resource's JSON, descending into arrays and skipping
//! what is absent.

use serde_json::Value;

/// Removes every element at `path` (dotted, relative to the resource). Returns whether anything
/// was removed.
pub fn remove_path(resource: &mut Value, path: &str) -> bool {
    let steps: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    if steps.is_empty() {
        return false;
    }
    remove_steps(resource, &steps)
}

fn remove_steps(value: &mut Value, steps: &[&str]) -> bool {
    match value {
        Value::Array(items) => {
            let mut removed = false;
            for item in items {
                removed |= remove_steps(item, steps);
            }
            removed
        }
        Value::Object(map) => match steps {
            [] => false,
            [last] => {
                // A primitive's extensions live beside it as `_name`.
                let a = map.remove(*last).is_some();
                let b = map.remove(&format!("_{last}")).is_some();
                a || b
            }
            [first, rest @ ..] => map
                .get_mut(*first)
                .is_some_and(|child| remove_steps(child, rest)),
        },
        _ => false,
    }
}

/// Makes the elements at `path` in `input` what they are in `original` (absent where they are
/// absent there): a read-only or hidden field cannot be changed by a write, nor lost because the
/// writer never saw it. Arrays on the way are followed element by element when both sides have
/// the same length; when they do not, the elements cannot be paired, so the caller's values at
/// the path are removed and the original ones are not restored (Medplum restores top-level
/// fields only and removes nested ones).
pub fn restore_path(original: &Value, input: &mut Value, path: &str) {
    let steps: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    if !steps.is_empty() {
        restore_steps(Some(original), input, &steps);
    }
}

fn restore_steps(original: Option<&Value>, input: &mut Value, steps: &[&str]) {
    match (original, input) {
        (Some(Value::Array(o)), Value::Array(i)) if o.len() == i.len() => {
            for (o, i) in o.iter().zip(i.iter_mut()) {
                restore_steps(Some(o), i, steps);
            }
        }
        (_, input @ Value::Array(_)) => {
            remove_steps(input, steps);
        }
        (original, Value::Object(map)) => {
            let o_map = original.and_then(Value::as_object);
            let [first, rest @ ..] = steps else {
                return;
            };
            if rest.is_empty() {
                for key in [(*first).to_owned(), format!("_{first}")] {
                    match o_map.and_then(|o| o.get(&key)) {
                        Some(v) => {
                            map.insert(key, v.clone());
                        }
                        None => {
                            map.remove(&key);
                        }
                    }
                }
                return;
            }
            let o_child = o_map.and_then(|o| o.get(*first));
            match (o_child, map.get_mut(*first)) {
                (_, Some(child)) => restore_steps(o_child, child, rest),
                // The caller left out the parent of a field it may not change: the field is
                // put back in a parent of its own, when no array is on the way.
                (Some(o @ Value::Object(_)), None) => {
                    let mut child = Value::Object(serde_json::Map::new());
                    restore_steps(Some(o), &mut child, rest);
                    if child.as_object().is_some_and(|c| !c.is_empty()) {
                        map.insert((*first).to_owned(), child);
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn removes_into_arrays_and_skips_absent() {
        let mut p = json!({
            "resourceType": "Patient",
            "name": [{"family": "A", "given": ["x"]}, {"family": "B"}],
            "birthDate": "1990-01-01", "_birthDate": {"extension": []},
        });
        assert!(remove_path(&mut p, "name.family"));
        assert_eq!(p["name"], json!([{"given": ["x"]}, {}]));
        assert!(remove_path(&mut p, "birthDate"));
        assert!(p.get("_birthDate").is_none());
        assert!(!remove_path(&mut p, "telecom.value"));
        assert!(!remove_path(&mut p, ""));
    }

    #[test]
    fn restores_from_the_original() {
        let original = json!({"resourceType": "Patient", "gender": "male",
            "managingOrganization": {"reference": "Organization/1", "display": "One"}});
        let mut input = json!({"resourceType": "Patient", "gender": "female",
            "managingOrganization": {"reference": "Organization/2", "display": "Two"}});
        restore_path(&original, &mut input, "gender");
        restore_path(&original, &mut input, "managingOrganization.display");
        assert_eq!(input["gender"], "male");
        assert_eq!(
            input["managingOrganization"],
            json!({"reference": "Organization/2", "display": "One"})
        );
        // Absent in the original: the caller's value goes.
        let mut input = json!({"resourceType": "Patient", "active": true});
        restore_path(&original, &mut input, "active");
        assert!(input.get("active").is_none());
        // Through arrays of the same length: element by element.
        let original = json!({"name": [{"family": "A"}, {"given": ["g"]}]});
        let mut input = json!({"name": [{"family": "B", "use": "official"}, {"family": "C"}]});
        restore_path(&original, &mut input, "name.family");
        assert_eq!(
            input["name"],
            json!([{"family": "A", "use": "official"}, {}])
        );
        // Of different lengths: removed, not restored.
        let mut input = json!({"name": [{"family": "B"}]});
        restore_path(&original, &mut input, "name.family");
        assert_eq!(input["name"], json!([{}]));
        // A parent left out comes back with the field alone.
        let original = json!({"subject": {"reference": "Patient/1", "display": "x"}});
        let mut input = json!({});
        restore_path(&original, &mut input, "subject.reference");
        assert_eq!(input, json!({"subject": {"reference": "Patient/1"}}));
    }
}
