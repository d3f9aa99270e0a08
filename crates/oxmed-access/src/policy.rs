//! The AccessPolicy resource (spec §0) as typed values. Reading is strict: an entry with an
//! unknown interaction, a write constraint that is not FHIRPath, or a rule without a value is an
//! error, never an entry read more leniently.

use serde_json::Value;

use crate::interaction::Interaction;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessPolicy {
    pub id: Option<String>,
    pub name: Option<String>,
    /// The "account" stamped onto created resources (a Reference).
    pub compartment: Option<Value>,
    pub resource: Vec<ResourceEntry>,
    pub ip_access_rule: Vec<IpAccessRule>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceEntry {
    /// A type name, or `*`.
    pub resource_type: String,
    /// A FHIR search (`Observation?subject=%patient`), parameters already put in.
    pub criteria: Option<String>,
    /// Deprecated: read interactions only (when `interaction` is absent).
    pub readonly: bool,
    pub interaction: Option<Vec<Interaction>>,
    pub hidden_fields: Vec<String>,
    pub readonly_fields: Vec<String>,
    /// FHIRPath expressions that must hold for a write (`%before`, `%after`).
    pub write_constraint: Vec<String>,
    /// Deprecated: a reference the resource's `meta.compartment` must contain.
    pub compartment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpAction {
    Allow,
    Block,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAccessRule {
    pub name: Option<String>,
    pub value: String,
    pub action: IpAction,
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{field} must hold strings"))
            })
            .collect(),
        Some(_) => Err(format!("{field} must be an array")),
    }
}

fn opt_string(v: &Value, field: &str) -> Result<Option<String>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{field} must be a string")),
    }
}

impl ResourceEntry {
    fn from_value(v: &Value) -> Result<ResourceEntry, String> {
        let resource_type = opt_string(v, "resourceType")?
            .filter(|t| !t.is_empty())
            .ok_or("resource.resourceType is required")?;
        let interaction = match v.get("interaction") {
            None | Some(Value::Null) => None,
            Some(_) => Some(
                strings(v, "interaction")?
                    .iter()
                    .map(|c| {
                        Interaction::parse(c).ok_or_else(|| format!("unknown interaction {c:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let readonly = match v.get("readonly") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("readonly must be a boolean".into()),
        };
        let mut write_constraint = Vec::new();
        if let Some(list) = v.get("writeConstraint") {
            let list = list.as_array().ok_or("writeConstraint must be an array")?;
            for c in list {
                // axp-1: FHIRPath, with an expression.
                let expression = c["expression"].as_str().filter(|e| !e.trim().is_empty());
                match (c["language"].as_str(), expression) {
                    (Some("text/fhirpath"), Some(e)) => write_constraint.push(e.to_owned()),
                    _ => {
                        return Err(
                            "writeConstraint needs language text/fhirpath and an expression".into(),
                        );
                    }
                }
            }
        }
        let compartment = match v.get("compartment") {
            None | Some(Value::Null) => None,
            Some(c) => Some(
                c["reference"]
                    .as_str()
                    .ok_or("compartment must be a Reference")?
                    .to_owned(),
            ),
        };
        Ok(ResourceEntry {
            resource_type,
            criteria: opt_string(v, "criteria")?,
            readonly,
            interaction,
            hidden_fields: strings(v, "hiddenFields")?,
            readonly_fields: strings(v, "readonlyFields")?,
            write_constraint,
            compartment,
        })
    }
}

impl AccessPolicy {
    /// Reads a stored AccessPolicy; the reason if it is not one this server can apply.
    pub fn from_value(v: &Value) -> Result<AccessPolicy, String> {
        if v["resourceType"] != "AccessPolicy" {
            return Err("not an AccessPolicy".into());
        }
        let resource = match v.get("resource") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(ResourceEntry::from_value)
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("resource must be an array".into()),
        };
        let mut ip_access_rule = Vec::new();
        if let Some(rules) = v.get("ipAccessRule") {
            for r in rules.as_array().ok_or("ipAccessRule must be an array")? {
                let value = r["value"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or("ipAccessRule.value is required")?;
                let action = match r["action"].as_str() {
                    Some("allow") => IpAction::Allow,
                    Some("block") => IpAction::Block,
                    _ => return Err("ipAccessRule.action must be allow or block".into()),
                };
                if value.contains('/') && value.trim().parse::<ipnet::IpNet>().is_err() {
                    return Err(format!(
                        "ipAccessRule.value {value:?} is neither an address prefix nor a CIDR block"
                    ));
                }
                ip_access_rule.push(IpAccessRule {
                    name: r["name"].as_str().map(str::to_owned),
                    value: value.to_owned(),
                    action,
                });
            }
        }
        Ok(AccessPolicy {
            id: opt_string(v, "id")?,
            name: opt_string(v, "name")?,
            compartment: v.get("compartment").filter(|c| !c.is_null()).cloned(),
            resource,
            ip_access_rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_field() {
        let p = AccessPolicy::from_value(&json!({
            "resourceType": "AccessPolicy", "id": "p1", "name": "Front desk",
            "compartment": {"reference": "Organization/1"},
            "resource": [
                {"resourceType": "Patient", "criteria": "Patient?active=true",
                 "interaction": ["read", "search"], "hiddenFields": ["birthDate"],
                 "readonlyFields": ["identifier"],
                 "writeConstraint": [{"language": "text/fhirpath", "expression": "%after.active"}]},
                {"resourceType": "*", "readonly": true}
            ],
            "ipAccessRule": [{"name": "office", "value": "10.0.0.0/8", "action": "allow"}]
        }))
        .unwrap();
        assert_eq!(p.resource.len(), 2);
        let e = &p.resource[0];
        assert_eq!(
            e.interaction,
            Some(vec![Interaction::Read, Interaction::Search])
        );
        assert_eq!(e.hidden_fields, ["birthDate"]);
        assert_eq!(e.write_constraint, ["%after.active"]);
        assert!(p.resource[1].readonly);
        assert_eq!(p.ip_access_rule[0].action, IpAction::Allow);
    }

    #[test]
    fn refuses_what_it_cannot_apply() {
        for bad in [
            json!({"resourceType": "Patient"}),
            json!({"resourceType": "AccessPolicy", "resource": [{"criteria": "Patient?x=1"}]}),
            json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient", "interaction": ["patch"]}]}),
            json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient", "readonly": "yes"}]}),
            json!({"resourceType": "AccessPolicy", "resource": [{"resourceType": "Patient",
                "writeConstraint": [{"language": "text/cql", "expression": "x"}]}]}),
            json!({"resourceType": "AccessPolicy", "ipAccessRule": [{"value": "1.2.3.4", "action": "maybe"}]}),
            json!({"resourceType": "AccessPolicy", "ipAccessRule": [{"action": "block"}]}),
            json!({"resourceType": "AccessPolicy", "resource": {"resourceType": "Patient"}}),
        ] {
            assert!(AccessPolicy::from_value(&bad).is_err(), "{bad}");
        }
    }
}
