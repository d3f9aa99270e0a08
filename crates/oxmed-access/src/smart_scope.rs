//! SMART on FHIR resource scopes (spec §12; SMART App Launch 2.2 "Scopes and Launch Context"):
//! `patient/Observation.rs?category=laboratory`, read, and applied to an effective policy.
//!
//! Medplum intersects scopes with the policy but enforces only "read-only or not" and ignores
//! the context prefix (spec §12.2). Here a scope means what SMART says it means:
//! - the letters are interactions: `c` create, `r` read/vread/history, `u` update/patch,
//!   `d` delete, `s` search (a `.r` scope reads by id and cannot search);
//! - `patient/` scopes see only the patient compartment of the patient in context, and grant
//!   nothing without one;
//! - `user/` scopes see what the user's policy allows;
//! - `system/` scopes are for clients signed in as themselves (client credentials), and the
//!   user-facing prefixes are not.
//!
//! Scopes are additive (SMART: each grants on its own), so an entry covered by several scopes
//! becomes one entry per scope, and the policy's alternatives OR them.

use oxmed_fhir::definitions::Definitions;

use crate::effective::EffectivePolicy;
use crate::interaction::{Interaction, PROJECT_ADMIN_TYPES};
use crate::policy::ResourceEntry;

/// A SMART resource scope (`patient/Observation.rs?category=laboratory`), v1 (`.read`,
/// `.write`, `.*`) read as the v2 letters they stand for (spec §12.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartScope<'a> {
    /// `patient`, `user` or `system`.
    pub context: &'a str,
    /// A resource type or `*`.
    pub resource_type: &'a str,
    /// A subset of `cruds`, in that order.
    pub letters: String,
    pub query: Option<&'a str>,
}

impl<'a> SmartScope<'a> {
    /// `None` for a word that is not a SMART resource scope (`openid`, `launch/patient`, ...).
    pub fn parse(word: &'a str) -> Option<SmartScope<'a>> {
        let (context, rest) = word.split_once('/')?;
        if !matches!(context, "patient" | "user" | "system") {
            return None;
        }
        let (base, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (resource_type, access) = base.rsplit_once('.')?;
        if resource_type.is_empty()
            || !(resource_type == "*" || resource_type.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return None;
        }
        let letters = match access {
            "read" => "rs".to_owned(),
            "write" => "cud".to_owned(),
            "*" => "cruds".to_owned(),
            v2 => {
                // v2 letters are in `cruds` order, each at most once.
                let mut order = "cruds".chars();
                if v2.is_empty() || !v2.chars().all(|c| order.any(|o| o == c)) {
                    return None;
                }
                v2.to_owned()
            }
        };
        Some(SmartScope {
            context,
            resource_type,
            letters,
            query: query.filter(|q| !q.is_empty()),
        })
    }

    /// Whether this scope asks for nothing `granted` does not give (spec §4.4 `/auth/scope`).
    pub fn within(&self, granted: &SmartScope<'_>) -> bool {
        self.context == granted.context
            && self.resource_type == granted.resource_type
            && self.letters.chars().all(|c| granted.letters.contains(c))
            && (granted.query.is_none() || granted.query == self.query)
    }

    /// The interactions the letters stand for.
    pub fn interactions(&self) -> Vec<Interaction> {
        let mut out = Vec::new();
        for letter in self.letters.chars() {
            match letter {
                'c' => out.push(Interaction::Create),
                'r' => out.extend([Interaction::Read, Interaction::Vread, Interaction::History]),
                'u' => out.push(Interaction::Update),
                'd' => out.push(Interaction::Delete),
                's' => out.push(Interaction::Search),
                _ => {}
            }
        }
        out
    }
}

/// The SMART resource scopes among the words of a scope string.
pub fn smart_scopes(scope: &str) -> Vec<SmartScope<'_>> {
    scope
        .split_whitespace()
        .filter_map(SmartScope::parse)
        .collect()
}

/// Who a session's scopes were granted to: a user (authorization code, refresh) or a client
/// signed in as itself (client credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grantee {
    User,
    Client,
}

/// Why a requested scope cannot be granted to `grantee`, or `None`: a word shaped like a
/// resource scope that does not parse (RFC 6749 `invalid_scope`; Medplum ignores it, which
/// leaves a scope without resource scopes: the member's whole access), or a prefix of the
/// other grantee (SMART 2.2: `system/` scopes belong to backend services, `patient/` and
/// `user/` scopes to a user's authorization).
pub fn scope_error(scope: &str, grantee: Grantee) -> Option<String> {
    for word in scope.split_whitespace() {
        // `User/*.rs` too: a prefix in another case is a resource scope gone wrong.
        let prefixed = word.split_once('/').is_some_and(|(c, _)| {
            matches!(
                c.to_ascii_lowercase().as_str(),
                "patient" | "user" | "system"
            )
        });
        if prefixed && SmartScope::parse(word).is_none() {
            return Some(format!("Invalid scope: {word}"));
        }
    }
    for s in smart_scopes(scope) {
        let fits = match grantee {
            Grantee::User => s.context != "system",
            Grantee::Client => s.context == "system",
        };
        if !fits {
            return Some(match grantee {
                Grantee::User => {
                    "system/ scopes are for clients signed in with client credentials".into()
                }
                Grantee::Client => {
                    "patient/ and user/ scopes need a signed-in user; clients use system/ scopes"
                        .into()
                }
            });
        }
    }
    None
}

/// What a session's scopes are applied with.
#[derive(Debug, Clone, Copy)]
pub struct ScopeGrant<'a> {
    /// The granted scope string (all words; only SMART resource scopes matter here).
    pub scope: &'a str,
    pub grantee: Grantee,
    /// The patient in context, `Patient/<id>`: the launch's, or the user's own Patient profile.
    pub patient: Option<&'a str>,
}

/// The policy a session of these scopes has (spec §12.2, enforced as described above). A scope
/// string without SMART resource scopes leaves the policy as it is (Medplum: `openid` alone is
/// the membership's whole access).
pub fn restrict(policy: EffectivePolicy, grant: &ScopeGrant<'_>) -> EffectivePolicy {
    let all = smart_scopes(grant.scope);
    if all.is_empty() {
        return policy;
    }
    // Scopes of the wrong prefix for the grantee, and patient scopes without a patient, grant
    // nothing (the token endpoint refuses the first; this is the second line).
    let usable: Vec<&SmartScope<'_>> = all
        .iter()
        .filter(|s| match (grant.grantee, s.context) {
            (Grantee::Client, "system") => true,
            (Grantee::User, "user") => true,
            (Grantee::User, "patient") => grant.patient.is_some(),
            _ => false,
        })
        .collect();
    let mut resource = Vec::new();
    for entry in &policy.resource {
        for scope in &usable {
            let resource_type =
                if scope.resource_type == "*" || scope.resource_type == entry.resource_type {
                    entry.resource_type.as_str()
                } else if entry.resource_type == "*"
                    && !PROJECT_ADMIN_TYPES.contains(&scope.resource_type)
                {
                    scope.resource_type
                } else {
                    continue;
                };
            // Binary is never filtered by criteria (spec §1.2), so a scope that narrows by
            // criteria (a patient's compartment, a granular query) cannot grant it; a `*`
            // entry under such a scope becomes one entry per type, Binary left out.
            let types: Vec<&str> = if !adds_criteria(scope) {
                vec![resource_type]
            } else if resource_type == "*" {
                Definitions::global()
                    .resource_types()
                    .filter(|t| *t != "Binary" && !PROJECT_ADMIN_TYPES.contains(t))
                    .collect()
            } else if resource_type == "Binary" {
                Vec::new()
            } else {
                vec![resource_type]
            };
            for t in types {
                match merged(entry, scope, t, grant.patient) {
                    Some(e) => resource.push(e),
                    // An entry left with no interaction still hides its fields: which entry a
                    // resource satisfies may change under scopes, what it hides may not.
                    None if !entry.hidden_fields.is_empty() => resource.push(ResourceEntry {
                        resource_type: t.to_owned(),
                        interaction: Some(Vec::new()),
                        hidden_fields: entry.hidden_fields.clone(),
                        ..Default::default()
                    }),
                    None => {}
                }
            }
        }
    }
    EffectivePolicy { resource, ..policy }
}

/// Whether a scope narrows what it grants by criteria.
fn adds_criteria(scope: &SmartScope<'_>) -> bool {
    scope.query.is_some() || scope.context == "patient"
}

/// `entry` narrowed to what `scope` allows on `resource_type` (the entry's type, or the
/// scope's when the entry is `*`); `None` when nothing is left.
fn merged(
    entry: &ResourceEntry,
    scope: &SmartScope<'_>,
    resource_type: &str,
    patient: Option<&str>,
) -> Option<ResourceEntry> {
    let allowed = scope.interactions();
    let interactions: Vec<Interaction> = Interaction::ALL
        .into_iter()
        .filter(|i| allowed.contains(i) && entry.allows(resource_type, *i))
        .collect();
    if interactions.is_empty() {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    if let Some(c) = &entry.criteria {
        // A criteria that is not a search of the entry's type matches nothing
        // (`control::criteria_of`); renamed to a concrete type it might match, so it goes.
        let query = c.strip_prefix(&format!("{}?", entry.resource_type))?;
        // A `*?...` criteria applies to the concrete type the entry now has.
        if !query.is_empty() {
            parts.push(query.to_owned());
        }
    }
    if let Some(q) = scope.query {
        parts.push(q.to_owned());
    }
    if scope.context == "patient" {
        let patient = patient?;
        let encoded: String = form_urlencoded::byte_serialize(patient.as_bytes()).collect();
        parts.push(format!("_compartment={encoded}"));
    }
    let criteria = (!parts.is_empty()).then(|| {
        let prefix = if resource_type == "*" {
            "*"
        } else {
            resource_type
        };
        format!("{prefix}?{}", parts.join("&"))
    });
    Some(ResourceEntry {
        resource_type: resource_type.to_owned(),
        criteria,
        interaction: Some(interactions),
        readonly: false,
        ..entry.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(resource_type: &str, criteria: Option<&str>) -> ResourceEntry {
        ResourceEntry {
            resource_type: resource_type.into(),
            criteria: criteria.map(str::to_owned),
            ..Default::default()
        }
    }

    fn policy(entries: Vec<ResourceEntry>) -> EffectivePolicy {
        EffectivePolicy {
            resource: entries,
            ..Default::default()
        }
    }

    fn user(scope: &str) -> ScopeGrant<'_> {
        ScopeGrant {
            scope,
            grantee: Grantee::User,
            patient: None,
        }
    }

    fn summary(p: &EffectivePolicy) -> Vec<(String, Option<String>, Vec<&'static str>)> {
        p.resource
            .iter()
            .map(|e| {
                (
                    e.resource_type.clone(),
                    e.criteria.clone(),
                    e.interaction
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .map(|i| i.as_str())
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn smart_scopes_parse_v1_and_v2() {
        let s = SmartScope::parse("patient/Observation.read").unwrap();
        assert_eq!(
            (s.context, s.resource_type, s.letters.as_str()),
            ("patient", "Observation", "rs")
        );
        let s = SmartScope::parse("user/*.cruds?x=1").unwrap();
        assert_eq!(
            (s.resource_type, s.letters.as_str(), s.query),
            ("*", "cruds", Some("x=1"))
        );
        assert_eq!(
            SmartScope::parse("system/Patient.*").unwrap().letters,
            "cruds"
        );
        assert_eq!(
            SmartScope::parse("user/Patient.write").unwrap().letters,
            "cud"
        );
        for bad in [
            "openid",
            "launch/patient",
            "other/Patient.rs",
            "user/Patient.sr",
            "user/Patient.rr",
            "user/Patient.sdurc",
            "user/Patient.chum",
            "user/Patient.c*",
            "user/Patient.*c",
            "user/.rs",
            "user/Patient.x",
            "user/Pa-tient.rs",
        ] {
            assert_eq!(SmartScope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn letters_are_interactions() {
        let names = |w: &str| -> Vec<&str> {
            SmartScope::parse(w)
                .unwrap()
                .interactions()
                .iter()
                .map(|i| i.as_str())
                .collect()
        };
        assert_eq!(names("user/Patient.c"), ["create"]);
        assert_eq!(names("user/Patient.r"), ["read", "vread", "history"]);
        assert_eq!(names("user/Patient.s"), ["search"]);
        assert_eq!(names("user/Patient.ud"), ["update", "delete"]);
        assert_eq!(names("user/Patient.read").len(), 4);
        assert_eq!(names("user/Patient.*").len(), 7);
    }

    #[test]
    fn no_smart_scope_leaves_the_policy_alone() {
        let p = policy(vec![entry("*", None)]);
        assert_eq!(
            restrict(p.clone(), &user("openid offline_access launch")),
            p
        );
    }

    #[test]
    fn intersection_cases_of_the_spec() {
        // Same type first; a `*` scope covers the others; uncovered concrete entries go.
        let p = policy(vec![
            entry("Observation", Some("Observation?status=final")),
            entry("Patient", None),
            entry("Encounter", None),
        ]);
        let r = restrict(p, &user("user/Observation.rs user/Patient.cruds"));
        assert_eq!(
            summary(&r),
            [
                (
                    "Observation".into(),
                    Some("Observation?status=final".into()),
                    vec!["read", "vread", "history", "search"]
                ),
                (
                    "Patient".into(),
                    None,
                    Interaction::ALL.map(|i| i.as_str()).to_vec()
                ),
            ]
        );
        // A `*` entry expands into one entry per scope type; a query becomes criteria.
        let p = policy(vec![entry("*", None)]);
        let r = restrict(
            p,
            &user("user/Observation.rs?category=laboratory user/Patient.r"),
        );
        assert_eq!(
            summary(&r),
            [
                (
                    "Observation".into(),
                    Some("Observation?category=laboratory".into()),
                    vec!["read", "vread", "history", "search"]
                ),
                ("Patient".into(), None, vec!["read", "vread", "history"]),
            ]
        );
        // A query is appended to existing criteria; `*?` criteria take the concrete type.
        let p = policy(vec![entry("*", Some("*?_compartment=Organization/1"))]);
        let r = restrict(p, &user("user/Condition.rs?category=health-concern"));
        assert_eq!(
            r.resource[0].criteria.as_deref(),
            Some("Condition?_compartment=Organization/1&category=health-concern")
        );
        // A `*` scope over a `*` entry stays `*`.
        let p = policy(vec![entry("*", None)]);
        let r = restrict(p, &user("user/*.rs"));
        assert_eq!(summary(&r)[0].0, "*");
        assert_eq!(summary(&r)[0].2, ["read", "vread", "history", "search"]);
    }

    #[test]
    fn scopes_never_widen_the_policy() {
        let read_only = ResourceEntry {
            interaction: Some(vec![Interaction::Read, Interaction::Search]),
            ..entry("Patient", None)
        };
        let r = restrict(policy(vec![read_only]), &user("user/Patient.cruds"));
        assert_eq!(summary(&r)[0].2, ["read", "search"]);
        // Nothing in common: the entry goes.
        let create_only = ResourceEntry {
            interaction: Some(vec![Interaction::Create]),
            ..entry("Patient", None)
        };
        let r = restrict(policy(vec![create_only]), &user("user/Patient.rs"));
        assert!(r.resource.is_empty());
        // `*` entries never cover the project-admin types, and neither do their expansions.
        let r = restrict(policy(vec![entry("*", None)]), &user("user/User.rs"));
        assert!(r.resource.is_empty());
    }

    #[test]
    fn hidden_fields_survive_a_dropped_entry() {
        let hiding = ResourceEntry {
            interaction: Some(Interaction::READ_ONLY.to_vec()),
            hidden_fields: vec!["identifier".into()],
            ..entry("Patient", None)
        };
        let writing = ResourceEntry {
            interaction: Some(vec![Interaction::Update]),
            ..entry("Patient", None)
        };
        let r = restrict(policy(vec![hiding, writing]), &user("user/Patient.u"));
        assert_eq!(r.resource.len(), 2);
        assert_eq!(r.resource[0].interaction.as_deref(), Some(&[][..]));
        assert_eq!(r.resource[0].hidden_fields, ["identifier"]);
        assert_eq!(
            r.resource[1].interaction.as_deref(),
            Some(&[Interaction::Update][..])
        );
    }

    #[test]
    fn patient_scopes_see_the_patient_in_context_only() {
        let p = policy(vec![entry("*", None)]);
        let with = ScopeGrant {
            scope: "patient/*.rs",
            grantee: Grantee::User,
            patient: Some("Patient/123"),
        };
        let r = restrict(p.clone(), &with);
        // One entry per type (Binary, which criteria cannot filter, left out), each within
        // the patient's compartment.
        let observation = r
            .resource
            .iter()
            .find(|e| e.resource_type == "Observation")
            .unwrap();
        assert_eq!(
            observation.criteria.as_deref(),
            Some("Observation?_compartment=Patient%2F123")
        );
        assert!(r.resource.len() > 100);
        assert!(
            r.resource
                .iter()
                .all(|e| e.resource_type != "*" && e.resource_type != "Binary")
        );
        assert!(r.resource.iter().all(|e| {
            e.criteria
                .as_deref()
                .is_some_and(|c| c.ends_with("_compartment=Patient%2F123"))
        }));
        let binary = ScopeGrant {
            scope: "patient/Binary.rs user/Binary.r?_id=1",
            ..with
        };
        assert!(restrict(p.clone(), &binary).resource.is_empty());
        let without = ScopeGrant {
            patient: None,
            ..with
        };
        assert!(restrict(p.clone(), &without).resource.is_empty());
        // Scopes add up: the patient's data read, and what the user may see searched.
        let both = ScopeGrant {
            scope: "patient/Observation.r user/Observation.s",
            ..with
        };
        let r = restrict(p, &both);
        assert_eq!(
            summary(&r),
            [
                (
                    "Observation".into(),
                    Some("Observation?_compartment=Patient%2F123".into()),
                    vec!["read", "vread", "history"]
                ),
                ("Observation".into(), None, vec!["search"]),
            ]
        );
    }

    #[test]
    fn malformed_resource_scopes_are_refused() {
        for bad in [
            "user/Patient.sdurc",
            "patient/*.c*",
            "system/Observation",
            "user/.rs",
        ] {
            assert_eq!(
                scope_error(&format!("openid {bad}"), Grantee::User)
                    .or_else(|| scope_error(bad, Grantee::Client)),
                Some(format!("Invalid scope: {bad}")),
                "{bad}"
            );
        }
        assert_eq!(
            scope_error(
                "openid launch/patient fhirUser offline_access",
                Grantee::User
            ),
            None
        );
    }

    #[test]
    fn contexts_belong_to_their_grantee() {
        assert!(scope_error("openid patient/*.rs user/Patient.r", Grantee::User).is_none());
        assert!(scope_error("system/*.rs", Grantee::User).is_some());
        assert!(scope_error("system/Patient.rs openid", Grantee::Client).is_none());
        assert!(scope_error("system/Patient.rs user/Patient.rs", Grantee::Client).is_some());
        // And if a token carries them anyway, they grant nothing.
        let p = policy(vec![entry("*", None)]);
        assert!(
            restrict(p.clone(), &user("system/*.rs"))
                .resource
                .is_empty()
        );
        let client = ScopeGrant {
            scope: "user/*.rs",
            grantee: Grantee::Client,
            patient: None,
        };
        assert!(restrict(p.clone(), &client).resource.is_empty());
        let client = ScopeGrant {
            scope: "system/Observation.rs",
            ..client
        };
        assert_eq!(restrict(p, &client).resource.len(), 1);
    }
}
