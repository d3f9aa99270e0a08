//! The effective AccessPolicy of a membership (spec §1.1): its policies in order with their
//! parameters put in, `readonly` entries as interaction lists, the legacy full-access default,
//! the default read entries of SearchParameter and StructureDefinition, and the project-admin
//! and super-admin rules. SMART scopes narrow it afterwards (issue 7).
//!
//! Beyond Medplum (fail closed): a `%name` left in a criteria after substitution — a parameter
//! nobody supplied — is an error, not a criteria that matches nothing or everything.

use serde_json::Value;

use crate::error::AccessError;
use crate::interaction::{Interaction, PROJECT_ADMIN_TYPES};
use crate::policy::{AccessPolicy, IpAccessRule, ResourceEntry};

/// One policy a membership grants: `accessPolicy` or an `access[]` entry.
#[derive(Debug, Clone, Default)]
pub struct PolicyGrant {
    /// `AccessPolicy/<id>`.
    pub reference: String,
    /// The stored policy, or `None` if it could not be read (missing, deleted, elsewhere).
    pub policy: Option<Value>,
    /// The entry's `parameter[]` (`{name, valueString | valueReference}`).
    pub parameters: Vec<Value>,
}

/// What the effective policy depends on of a membership.
#[derive(Debug, Clone, Default)]
pub struct MembershipAccess {
    /// `Practitioner/123`: `%profile`, and `%patient` unless a `patient` parameter is given.
    pub profile: String,
    pub admin: bool,
    /// `accessPolicy` first, then `access[]`, in order.
    pub grants: Vec<PolicyGrant>,
}

/// What the effective policy depends on of the membership's project.
#[derive(Debug, Clone, Default)]
pub struct ProjectAccess {
    pub id: String,
    pub super_admin: bool,
    /// Ids of the projects in `Project.link`.
    pub links: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectivePolicy {
    pub resource: Vec<ResourceEntry>,
    /// The last non-empty `compartment` of the policies.
    pub compartment: Option<Value>,
    pub ip_access_rule: Vec<IpAccessRule>,
    /// The policies it was built from, as references.
    pub based_on: Vec<String>,
}

/// JSON string contents for `s`: a value put into the serialised policy stays one string.
fn json_text(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1)].to_owned()
}

/// The grant's policy with its parameters put in by text replacement, as Medplum does (spec
/// §1.1 step 2), the values escaped so that they cannot leave their JSON string.
fn substituted(grant: &PolicyGrant, profile: &str) -> Result<AccessPolicy, AccessError> {
    let stored = grant
        .policy
        .as_ref()
        .ok_or(AccessError::InvalidConfiguration)?;
    let mut text = serde_json::to_string(stored)
        .map_err(|e| AccessError::Malformed(grant.reference.clone(), e.to_string()))?;
    let mut params: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for p in &grant.parameters {
        let Some(name) = p["name"].as_str().filter(|n| !n.is_empty()) else {
            continue;
        };
        params.push((
            name.to_owned(),
            p["valueString"].as_str().map(str::to_owned),
            p["valueReference"]["reference"].as_str().map(str::to_owned),
        ));
    }
    params.push(("profile".into(), None, Some(profile.to_owned())));
    if !params.iter().any(|(n, ..)| n == "patient") {
        params.push(("patient".into(), None, Some(profile.to_owned())));
    }
    for (name, string, reference) in &params {
        if let Some(s) = string {
            text = text.replace(&format!("%{name}"), &json_text(s));
        } else if let Some(r) = reference {
            let id = r.rsplit('/').next().unwrap_or(r);
            text = text.replace(&format!("%{name}.id"), &json_text(id));
            text = text.replace(&format!("%{name}"), &json_text(r));
        }
    }
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| AccessError::Malformed(grant.reference.clone(), e.to_string()))?;
    let policy = AccessPolicy::from_value(&value)
        .map_err(|why| AccessError::Malformed(grant.reference.clone(), why))?;
    for entry in &policy.resource {
        if let Some(c) = &entry.criteria
            && let Some(left) = unresolved(c)
        {
            return Err(AccessError::UnresolvedParameter(
                grant.reference.clone(),
                left,
            ));
        }
    }
    Ok(policy)
}

/// The first `%name` in a criteria string, if any (`%` followed by a letter; an encoded `%2F`
/// is not one).
fn unresolved(criteria: &str) -> Option<String> {
    let bytes = criteria.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' && bytes.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            let name: String = criteria[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            return Some(format!("%{name}"));
        }
    }
    None
}

fn entry(resource_type: &str) -> ResourceEntry {
    ResourceEntry {
        resource_type: resource_type.to_owned(),
        ..Default::default()
    }
}

fn read_only(resource_type: &str) -> ResourceEntry {
    ResourceEntry {
        interaction: Some(Interaction::READ_ONLY.to_vec()),
        ..entry(resource_type)
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Builds the effective policy (spec §1.1 steps 1–6 and 8).
pub fn build(
    membership: &MembershipAccess,
    project: &ProjectAccess,
) -> Result<EffectivePolicy, AccessError> {
    let mut out = EffectivePolicy::default();
    for grant in &membership.grants {
        let policy = substituted(grant, &membership.profile)?;
        for mut e in policy.resource {
            if e.readonly && e.interaction.is_none() {
                e.interaction = Some(Interaction::READ_ONLY.to_vec());
                e.readonly = false;
            }
            out.resource.push(e);
        }
        if policy.compartment.is_some() {
            out.compartment = policy.compartment;
        }
        out.ip_access_rule.extend(policy.ip_access_rule);
        out.based_on.push(grant.reference.clone());
    }
    if membership.grants.is_empty() {
        // The legacy default: a membership without policies has full access.
        out.resource.push(entry("*"));
    }
    for t in ["SearchParameter", "StructureDefinition"] {
        if !out.resource.iter().any(|e| e.resource_type == t) {
            out.resource.push(read_only(t));
        }
    }
    if project.super_admin {
        for t in PROJECT_ADMIN_TYPES {
            if !out.resource.iter().any(|e| e.resource_type == t) {
                // Beyond Medplum: a password hash or an MFA secret is never handed out, not
                // even to a super admin (what they protect is the user's, not the server's).
                let hidden = if t == "User" {
                    names(&["passwordHash", "mfaSecret"])
                } else {
                    Vec::new()
                };
                out.resource.push(ResourceEntry {
                    hidden_fields: hidden,
                    ..entry(t)
                });
            }
        }
    } else {
        out.resource
            .retain(|e| !PROJECT_ADMIN_TYPES.contains(&e.resource_type.as_str()));
        if membership.admin {
            out.resource.push(ResourceEntry {
                criteria: Some(format!("Project?_id={}", project.id)),
                readonly_fields: names(&["features", "link", "systemSetting"]),
                hidden_fields: names(&["superAdmin", "systemSecret", "strictMode"]),
                ..entry("Project")
            });
            if !project.links.is_empty() {
                out.resource.push(ResourceEntry {
                    criteria: Some(format!("Project?_id={}", project.links.join(","))),
                    hidden_fields: names(&[
                        "superAdmin",
                        "setting",
                        "systemSetting",
                        "secret",
                        "systemSecret",
                        "strictMode",
                    ]),
                    ..read_only("Project")
                });
            }
            out.resource.push(ResourceEntry {
                readonly_fields: names(&["project", "user"]),
                ..entry("ProjectMembership")
            });
            out.resource.push(read_only("UserSecurityRequest"));
            out.resource.push(ResourceEntry {
                hidden_fields: names(&["passwordHash", "mfaSecret"]),
                readonly_fields: names(&["email", "emailVerified", "mfaEnrolled", "project"]),
                ..entry("User")
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grant(policy: Value) -> PolicyGrant {
        PolicyGrant {
            reference: format!("AccessPolicy/{}", policy["id"].as_str().unwrap_or("p")),
            policy: Some(policy),
            parameters: Vec::new(),
        }
    }

    fn member(grants: Vec<PolicyGrant>) -> MembershipAccess {
        MembershipAccess {
            profile: "Patient/123".into(),
            admin: false,
            grants,
        }
    }

    fn project() -> ProjectAccess {
        ProjectAccess {
            id: "proj1".into(),
            ..Default::default()
        }
    }

    fn types(p: &EffectivePolicy) -> Vec<&str> {
        p.resource
            .iter()
            .map(|e| e.resource_type.as_str())
            .collect()
    }

    #[test]
    fn no_policy_is_full_access_with_the_default_read_entries() {
        let p = build(&member(vec![]), &project()).unwrap();
        assert_eq!(types(&p), ["*", "SearchParameter", "StructureDefinition"]);
        let sp = &p.resource[1];
        assert!(sp.allows("SearchParameter", Interaction::Search));
        assert!(!sp.allows("SearchParameter", Interaction::Update));
    }

    #[test]
    fn policies_in_order_with_parameters() {
        let first = grant(json!({"resourceType": "AccessPolicy", "id": "a",
            "compartment": {"reference": "Organization/first"},
            "resource": [{"resourceType": "Observation", "criteria": "Observation?subject=%patient"},
                         {"resourceType": "Patient", "criteria": "Patient?_id=%patient.id", "readonly": true}]}));
        let mut second = grant(json!({"resourceType": "AccessPolicy", "id": "b",
            "compartment": {"reference": "Organization/%org.id"},
            "resource": [{"resourceType": "Encounter", "criteria": "Encounter?service-provider=%org&class=%cls"}],
            "ipAccessRule": [{"value": "10.", "action": "allow"}]}));
        second.parameters = vec![
            json!({"name": "org", "valueReference": {"reference": "Organization/42"}}),
            json!({"name": "cls", "valueString": "AMB"}),
        ];
        let p = build(&member(vec![first, second]), &project()).unwrap();
        assert_eq!(
            types(&p),
            [
                "Observation",
                "Patient",
                "Encounter",
                "SearchParameter",
                "StructureDefinition"
            ]
        );
        assert_eq!(
            p.resource[0].criteria.as_deref(),
            Some("Observation?subject=Patient/123")
        );
        assert_eq!(p.resource[1].criteria.as_deref(), Some("Patient?_id=123"));
        // `readonly` became the read interactions.
        assert_eq!(
            p.resource[1].interaction.as_deref(),
            Some(&Interaction::READ_ONLY[..])
        );
        assert_eq!(
            p.resource[2].criteria.as_deref(),
            Some("Encounter?service-provider=Organization/42&class=AMB")
        );
        assert_eq!(p.compartment, Some(json!({"reference": "Organization/42"})));
        assert_eq!(p.ip_access_rule.len(), 1);
        assert_eq!(p.based_on, ["AccessPolicy/a", "AccessPolicy/b"]);
    }

    #[test]
    fn a_patient_parameter_is_not_overridden() {
        let mut g = grant(json!({"resourceType": "AccessPolicy",
            "resource": [{"resourceType": "Observation", "criteria": "Observation?subject=%patient"}]}));
        g.parameters =
            vec![json!({"name": "patient", "valueReference": {"reference": "Patient/9"}})];
        let mut m = member(vec![g]);
        m.profile = "Practitioner/1".into();
        let p = build(&m, &project()).unwrap();
        assert_eq!(
            p.resource[0].criteria.as_deref(),
            Some("Observation?subject=Patient/9")
        );
    }

    #[test]
    fn values_cannot_break_out_of_their_string() {
        let mut g = grant(json!({"resourceType": "AccessPolicy",
            "resource": [{"resourceType": "Observation", "criteria": "Observation?code=%code"}]}));
        g.parameters = vec![json!({"name": "code",
            "valueString": "x\"}, {\"resourceType\": \"*"})];
        let p = build(&member(vec![g]), &project()).unwrap();
        assert_eq!(types(&p)[0], "Observation");
        assert_eq!(p.resource.len(), 3, "no entry was injected");
        assert_eq!(
            p.resource[0].criteria.as_deref(),
            Some("Observation?code=x\"}, {\"resourceType\": \"*")
        );
    }

    #[test]
    fn fails_closed() {
        let missing = PolicyGrant {
            reference: "AccessPolicy/gone".into(),
            policy: None,
            parameters: vec![],
        };
        assert_eq!(
            build(&member(vec![missing]), &project()),
            Err(AccessError::InvalidConfiguration)
        );
        let unsupplied = grant(json!({"resourceType": "AccessPolicy",
            "resource": [{"resourceType": "Encounter", "criteria": "Encounter?service-provider=%org"}]}));
        assert!(matches!(
            build(&member(vec![unsupplied]), &project()),
            Err(AccessError::UnresolvedParameter(_, p)) if p == "%org"
        ));
        let bad = grant(json!({"resourceType": "AccessPolicy",
            "resource": [{"resourceType": "Patient", "interaction": ["everything"]}]}));
        assert!(matches!(
            build(&member(vec![bad]), &project()),
            Err(AccessError::Malformed(..))
        ));
        // An encoded character is not a parameter.
        let encoded = grant(json!({"resourceType": "AccessPolicy",
            "resource": [{"resourceType": "Patient", "criteria": "Patient?name=a%20b"}]}));
        assert!(build(&member(vec![encoded]), &project()).is_ok());
    }

    #[test]
    fn project_admin_types_by_role() {
        let star = || {
            grant(json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "*"}, {"resourceType": "User"}, {"resourceType": "Project"}]}))
        };
        // An ordinary member: every entry of the four types is removed.
        let p = build(&member(vec![star()]), &project()).unwrap();
        assert_eq!(types(&p), ["*", "SearchParameter", "StructureDefinition"]);

        // A project admin: synthetic entries, with their hidden and read-only fields.
        let mut admin = member(vec![star()]);
        admin.admin = true;
        let linked = ProjectAccess {
            id: "proj1".into(),
            super_admin: false,
            links: vec!["l1".into(), "l2".into()],
        };
        let p = build(&admin, &linked).unwrap();
        assert_eq!(
            types(&p),
            [
                "*",
                "SearchParameter",
                "StructureDefinition",
                "Project",
                "Project",
                "ProjectMembership",
                "UserSecurityRequest",
                "User"
            ]
        );
        assert_eq!(p.resource[3].criteria.as_deref(), Some("Project?_id=proj1"));
        assert_eq!(p.resource[4].criteria.as_deref(), Some("Project?_id=l1,l2"));
        assert!(!p.resource[4].allows("Project", Interaction::Update));
        assert_eq!(p.resource[7].hidden_fields, ["passwordHash", "mfaSecret"]);
        assert!(p.resource[7].readonly_fields.contains(&"email".to_owned()));

        // The super admin's project: the four types are added when absent.
        let sa = ProjectAccess {
            id: "sa".into(),
            super_admin: true,
            links: vec![],
        };
        let p = build(&member(vec![]), &sa).unwrap();
        for t in PROJECT_ADMIN_TYPES {
            assert!(
                p.resource
                    .iter()
                    .any(|e| e.resource_type == t && e.allows(t, Interaction::Update)),
                "{t}"
            );
        }
    }
}
