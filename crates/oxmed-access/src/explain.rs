//! Why a caller may or may not do something (issue 5 point 7): the decision of the effective
//! policy for an interaction on a type or on one resource, entry by entry — which entries are of
//! the type, which allow the interaction, whose criteria the resource satisfies or could not be
//! used — so that an administrator can see which entry decided, and why.

use serde_json::{Value, json};

use crate::control::{AccessControl, Criteria};
use crate::interaction::{Interaction, PROTECTED_TYPES};

/// One entry of the policy as it bears on the question.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryExplanation {
    /// Position in the effective policy's `resource` list.
    pub index: usize,
    pub resource_type: String,
    pub criteria: Option<String>,
    /// Whether the entry allows the interaction on the type (the shallow match of spec §1.2).
    pub allows_interaction: bool,
    /// Whether the resource satisfies the criteria; `None` without a resource or criteria.
    pub criteria_matched: Option<bool>,
    /// Why the criteria can never match (does not parse, names another type, ...).
    pub unusable: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub allowed: bool,
    pub reason: String,
    /// The entry that decided (the first satisfied one), if any.
    pub decided_by: Option<usize>,
    pub entries: Vec<EntryExplanation>,
    pub hidden_fields: Vec<String>,
    pub readonly_fields: Vec<String>,
}

impl AccessControl {
    /// The decision for `interaction` on `resource_type`, and on `resource` when one is given.
    pub fn explain(
        &self,
        resource_type: &str,
        resource: Option<&Value>,
        interaction: Interaction,
    ) -> Explanation {
        let rules = self.rules(resource_type);
        let entries: Vec<EntryExplanation> = rules
            .rules
            .iter()
            .map(|r| {
                let allows = r.entry.allows(resource_type, interaction);
                let (matched, unusable) = match (&r.criteria, resource) {
                    (Criteria::Never(why), _) => (resource.map(|_| false), Some(why.clone())),
                    (Criteria::All, _) | (_, None) => (None, None),
                    (Criteria::Clauses(_), Some(v)) => (Some(r.admits(v)), None),
                };
                EntryExplanation {
                    index: r.index,
                    resource_type: r.entry.resource_type.clone(),
                    criteria: r.entry.criteria.clone(),
                    allows_interaction: allows,
                    criteria_matched: matched,
                    unusable,
                }
            })
            .collect();
        let verb = interaction.as_str();
        let mut out = Explanation {
            entries,
            ..Explanation::denied(String::new())
        };
        if PROTECTED_TYPES.contains(&resource_type) && !self.is_super_admin() {
            out.reason = format!("{resource_type} is for super admins only");
            return out;
        }
        if !self.allows_type(resource_type, interaction) {
            out.reason = format!("no entry of the policy allows {verb} on {resource_type}");
            return out;
        }
        let Some(resource) = resource else {
            out.allowed = true;
            out.reason = if interaction == Interaction::Search {
                format!(
                    "{verb} on {resource_type} is allowed; results are limited to what the criteria of the entries allowing it match"
                )
            } else {
                format!(
                    "{verb} on {resource_type} is allowed for resources that an entry's criteria match"
                )
            };
            return out;
        };
        match self.satisfied(resource, interaction) {
            Some((rules, at)) => {
                let e = &rules.rules[at];
                out.allowed = true;
                out.decided_by = Some(e.index);
                out.reason = format!(
                    "entry {} allows {verb} and the resource satisfies it",
                    e.index
                );
                out.hidden_fields = e.entry.hidden_fields.clone();
                out.readonly_fields = e.entry.readonly_fields.clone();
            }
            None => {
                out.reason = format!(
                    "entries allow {verb} on {resource_type}, but the resource satisfies the criteria of none of them"
                );
            }
        }
        out
    }
}

impl Explanation {
    /// A denial for `reason`, no entry looked at.
    pub fn denied(reason: String) -> Explanation {
        Explanation {
            allowed: false,
            reason,
            decided_by: None,
            entries: Vec::new(),
            hidden_fields: Vec::new(),
            readonly_fields: Vec::new(),
        }
    }

    /// As a FHIR `Parameters` resource.
    pub fn to_parameters(&self) -> Value {
        let mut parameter = vec![
            json!({"name": "decision", "valueCode": if self.allowed { "allow" } else { "deny" }}),
            json!({"name": "reason", "valueString": self.reason}),
        ];
        if let Some(i) = self.decided_by {
            parameter.push(json!({"name": "decidedBy", "valueInteger": i}));
        }
        for e in &self.entries {
            let mut part = vec![
                json!({"name": "index", "valueInteger": e.index}),
                json!({"name": "resourceType", "valueString": e.resource_type}),
                json!({"name": "allowsInteraction", "valueBoolean": e.allows_interaction}),
            ];
            if let Some(c) = &e.criteria {
                part.push(json!({"name": "criteria", "valueString": c}));
            }
            if let Some(m) = e.criteria_matched {
                part.push(json!({"name": "criteriaMatched", "valueBoolean": m}));
            }
            if let Some(u) = &e.unusable {
                part.push(json!({"name": "unusable", "valueString": u}));
            }
            parameter.push(json!({"name": "entry", "part": part}));
        }
        for f in &self.hidden_fields {
            parameter.push(json!({"name": "hiddenField", "valueString": f}));
        }
        for f in &self.readonly_fields {
            parameter.push(json!({"name": "readonlyField", "valueString": f}));
        }
        json!({"resourceType": "Parameters", "parameter": parameter})
    }
}

#[cfg(test)]
mod tests {
    use crate::effective::{MembershipAccess, PolicyGrant, ProjectAccess, build};
    use crate::{AccessControl, Interaction};
    use serde_json::json;

    #[test]
    fn says_which_entry_decided_and_why() {
        let membership = MembershipAccess {
            profile: "Practitioner/1".into(),
            admin: false,
            grants: vec![PolicyGrant {
                reference: "AccessPolicy/1".into(),
                parameters: vec![],
                policy: Some(json!({"resourceType": "AccessPolicy", "resource": [
                    {"resourceType": "Observation", "criteria": "Observation?status=final", "hiddenFields": ["note"]},
                    {"resourceType": "Observation", "criteria": "Observation?nonsense=1"},
                    {"resourceType": "Patient", "readonly": true},
                ]})),
            }],
        };
        let c = AccessControl::new(
            build(&membership, &ProjectAccess::default()).unwrap(),
            false,
            false,
        );
        let fin = json!({"resourceType": "Observation", "status": "final", "code": {}});
        let e = c.explain("Observation", Some(&fin), Interaction::Read);
        assert!(e.allowed);
        assert_eq!(e.decided_by, Some(0));
        assert_eq!(e.hidden_fields, vec!["note"]);
        assert!(e.entries[1].unusable.is_some());
        let draft = json!({"resourceType": "Observation", "status": "preliminary", "code": {}});
        let e = c.explain("Observation", Some(&draft), Interaction::Read);
        assert!(!e.allowed);
        assert_eq!(e.entries[0].criteria_matched, Some(false));
        assert!(
            e.reason.contains("satisfies the criteria of none"),
            "{}",
            e.reason
        );
        let e = c.explain("Patient", None, Interaction::Update);
        assert!(!e.allowed);
        assert!(e.reason.contains("no entry"), "{}", e.reason);
        let e = c.explain("Login", None, Interaction::Read);
        assert!(e.reason.contains("super admins"), "{}", e.reason);
        let p = c
            .explain("Observation", Some(&fin), Interaction::Read)
            .to_parameters();
        assert_eq!(p["parameter"][0]["valueCode"], "allow");
    }
}
