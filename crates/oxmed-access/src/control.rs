//! The effective policy ready for requests: criteria parsed once per type, the search
//! restriction built once, and the decisions of spec §1.2–§1.3 — may this caller do this to this
//! type, which entry does a resource satisfy, which fields does it hide or keep read-only, does a
//! write hold under its constraints.
//!
//! Fail closed: a criteria that does not parse, names another type or needs other resources to
//! decide (a chain, `_has`) matches nothing, and a write constraint that does not parse or names
//! a variable other than `%before`, `%after` and `%resource` never holds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use oxmed_fhir::definitions::Definitions;
use oxmed_fhir::fhirpath::{self, Expression};
use oxmed_fhir::index::{ACCOUNT_CODE, extract_params};
use oxmed_fhir::index_value::IndexEntry;
use oxmed_fhir::search::matching::{
    codes_needed, compartments, matches, matches_with, patient_compartment_params,
};
use oxmed_fhir::search::parse::parse_criteria;
use oxmed_fhir::search::{Clause, Condition, Restriction};
use oxmed_fhir::search_parameter::{SearchParameter, SearchParameters};
use serde_json::Value;

use crate::effective::EffectivePolicy;
use crate::fields;
use crate::interaction::{Interaction, PROJECT_ADMIN_TYPES, PROTECTED_TYPES};
use crate::partial;
use crate::policy::ResourceEntry;

/// What an entry's criteria let through.
#[derive(Debug, Clone, PartialEq)]
pub enum Criteria {
    /// No criteria: every resource of the type.
    All,
    /// The resources that satisfy every clause.
    Clauses(Vec<Clause>),
    /// A criteria that cannot be used: nothing.
    Never(String),
}

/// One entry of the policy as it applies to one type.
#[derive(Debug)]
pub struct Rule {
    /// Position in the effective policy's `resource` list.
    pub index: usize,
    pub entry: ResourceEntry,
    pub criteria: Criteria,
    /// Parsed write constraints; `None` when one of them cannot be used (no write holds).
    constraints: Option<Vec<Expression>>,
    /// The criteria as reads decide them, when some clause only lists compartments.
    split: Option<SplitCriteria>,
}

/// An entry's criteria as a read decides them: each clause that only lists compartments (a
/// policy's hundred Patients) as sets, looked up with the resource's one or two compartments,
/// instead of a hundred comparisons that each read a string from another place in memory (a
/// read's decision ran mostly on cache misses); the other clauses as they are. Decides what
/// `matches_with` decides on the whole criteria.
#[derive(Debug)]
struct SplitCriteria {
    /// Per compartment-only clause: per compartment type, the ids it lists.
    sets: Vec<Vec<(String, HashSet<String>)>>,
    rest: Vec<Clause>,
}

impl SplitCriteria {
    fn of(criteria: &Criteria) -> Option<SplitCriteria> {
        let Criteria::Clauses(clauses) = criteria else {
            return None;
        };
        let mut sets = Vec::new();
        let mut rest = Vec::new();
        for clause in clauses {
            let mut by_type: Vec<(String, HashSet<String>)> = Vec::new();
            let only_compartments = clause.any.iter().all(|c| match c {
                Condition::Compartment {
                    compartment_type,
                    id,
                } => {
                    match by_type.iter_mut().find(|(t, _)| t == compartment_type) {
                        Some((_, ids)) => {
                            ids.insert(id.clone());
                        }
                        None => {
                            by_type.push((compartment_type.clone(), HashSet::from([id.clone()])))
                        }
                    }
                    true
                }
                _ => false,
            });
            if only_compartments && !clause.any.is_empty() {
                sets.push(by_type);
            } else {
                rest.push(clause.clone());
            }
        }
        (!sets.is_empty()).then_some(SplitCriteria { sets, rest })
    }

    fn admits(&self, resource: &Value, entries: &[IndexEntry]) -> bool {
        let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
            return false;
        };
        let id = resource.get("id").and_then(Value::as_str);
        let found = compartments(resource_type, id, entries);
        self.listed(&found)
            && (self.rest.is_empty()
                || matches_with(resource, entries, &self.rest).unwrap_or(false))
    }

    /// Whether every compartment-only clause lists one of `found`.
    fn listed(&self, found: &[(&str, &str)]) -> bool {
        self.sets.iter().all(|clause| {
            found.iter().any(|(t, i)| {
                clause
                    .iter()
                    .any(|(listed_type, ids)| listed_type == t && ids.contains(*i))
            })
        })
    }
}

impl Rule {
    /// Whether `resource` satisfies the criteria (Binary: always, spec §1.2).
    pub fn admits(&self, resource: &Value) -> bool {
        self.admits_with(resource, None)
    }

    /// [`Rule::admits`] with the resource's index entries already extracted.
    fn admits_with(&self, resource: &Value, entries: Option<&[IndexEntry]>) -> bool {
        if self.entry.resource_type == "Binary"
            || resource.get("resourceType").and_then(Value::as_str) == Some("Binary")
        {
            return true;
        }
        match &self.criteria {
            Criteria::All => true,
            Criteria::Never(_) => false,
            Criteria::Clauses(clauses) => match (entries, &self.split) {
                (Some(e), Some(split)) => split.admits(resource, e),
                (Some(e), None) => matches_with(resource, e, clauses).unwrap_or(false),
                (None, _) => matches(resource, clauses).unwrap_or(false),
            },
        }
    }

    /// Whether every write constraint evaluates to exactly `true`.
    pub fn constraints_hold(&self, before: Option<&Value>, after: &Value) -> bool {
        let Some(constraints) = &self.constraints else {
            return false;
        };
        constraints.iter().all(|c| {
            let vars = [("before", before), ("after", Some(after))];
            fhirpath::is_true(&c.evaluate_with(after, &vars))
        })
    }
}

/// The entries that apply to one type, in policy order.
#[derive(Debug, Default)]
pub struct TypeRules {
    pub rules: Vec<Rule>,
    /// Every field some entry of the type hides, once each: when empty, results need no look.
    hidden: Vec<String>,
    /// The top-level elements (and members of `meta`, as `meta.account`) that the criteria of
    /// the type's entries look at; `None` when that cannot be told (a parameter without an
    /// element path), so a resource is read whole.
    fields: Option<Vec<String>>,
    /// The search parameters whose values the criteria of the type's entries read, with their
    /// expressions for the type: extracted once per decision, however many entries are tried.
    params: Vec<(&'static SearchParameter, &'static Expression)>,
    /// Whether the criteria read the resource's accounts.
    accounts: bool,
    /// Whether every entry's criteria only list compartments (or there are none, or they are
    /// unusable), so that a resource is decided on its compartments alone.
    compartment_only: bool,
}

/// Adds the first element of each path `code`'s expression reads; `None` when it has none.
fn add_param_fields(resource_type: &str, code: &str, out: &mut Vec<String>) -> Option<()> {
    let param = SearchParameters::global().get(resource_type, code)?;
    let paths = param.expression_for(resource_type)?.element_paths();
    if paths.is_empty() {
        return None;
    }
    for p in paths {
        let mut steps = p.split('.');
        match (steps.next(), steps.next()) {
            // `meta` is read in part: its members are never choice or repeated paths apart.
            (Some("meta"), Some(member)) => add_field(out, &format!("meta.{member}")),
            (Some(first), _) => add_field(out, first),
            (None, _) => {}
        }
    }
    Some(())
}

/// Fields handed to no caller over FHIR, whatever its policy, super admins included: the
/// private members of the server's signing keys, and the secrets of sign-in sessions (stored as
/// digests, still nobody's to read). The server's own reads are not policed and keep them.
fn secret_fields(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "JsonWebKey" => &["d", "p", "q", "dp", "dq", "qi"],
        "Login" => &["code", "cookie", "refreshSecret"],
        _ => &[],
    }
}

fn add_field(out: &mut Vec<String>, field: &str) {
    if !out.iter().any(|f| f == field) {
        out.push(field.to_owned());
    }
}

/// See [`TypeRules::fields`].
fn criteria_fields(resource_type: &str, rules: &[Rule]) -> Option<Vec<String>> {
    let mut out: Vec<String> = vec!["resourceType".to_owned()];
    for rule in rules {
        let Criteria::Clauses(clauses) = &rule.criteria else {
            continue;
        };
        for condition in clauses.iter().flat_map(|c| c.any.iter()) {
            match condition {
                Condition::Id(_) => add_field(&mut out, "id"),
                Condition::LastUpdated(_) => add_field(&mut out, "meta.lastUpdated"),
                Condition::Param { code, .. } | Condition::Missing { code, .. } => {
                    add_param_fields(resource_type, code, &mut out)?;
                }
                Condition::Compartment { .. } => {
                    // The Patient compartment of a Patient is the Patient itself, by id; any
                    // compartment may be one of the resource's accounts, in its meta.
                    add_field(&mut out, "id");
                    add_field(&mut out, "meta.account");
                    add_field(&mut out, "meta.accounts");
                    for code in patient_compartment_params(resource_type) {
                        add_param_fields(resource_type, code, &mut out)?;
                    }
                }
                Condition::Chain { .. } | Condition::Has { .. } => return None,
            }
        }
    }
    Some(out)
}

/// [`TypeRules`] from the cache, or built for a name that has no place in it.
pub enum RulesRef<'a> {
    Cached(&'a Arc<TypeRules>),
    Fresh(Arc<TypeRules>),
}

impl std::ops::Deref for RulesRef<'_> {
    type Target = TypeRules;

    fn deref(&self) -> &TypeRules {
        match self {
            RulesRef::Cached(r) => r,
            RulesRef::Fresh(r) => r,
        }
    }
}

#[derive(Debug)]
pub struct AccessControl {
    policy: EffectivePolicy,
    super_admin: bool,
    project_admin: bool,
    /// The rules of each resource type, built when first asked for, by
    /// `Definitions::resource_type_index`: read on every request, so without a lock.
    rules: Box<[OnceLock<Arc<TypeRules>>]>,
    restriction: OnceLock<Arc<Restriction>>,
}

/// The variables a write constraint may name.
const CONSTRAINT_VARIABLES: [&str; 2] = ["before", "after"];

fn criteria_of(entry: &ResourceEntry, resource_type: &str) -> Criteria {
    let mut parts: Vec<String> = Vec::new();
    if let Some(c) = &entry.criteria {
        let query = if entry.resource_type == "*" {
            c.strip_prefix("*?")
        } else {
            c.strip_prefix(resource_type)
                .and_then(|rest| rest.strip_prefix('?'))
        };
        match query {
            Some(q) if !q.is_empty() => parts.push(q.to_owned()),
            Some(_) => {}
            None => {
                return Criteria::Never(format!(
                    "criteria {c:?} is not a search of {}",
                    entry.resource_type
                ));
            }
        }
    }
    // The deprecated per-entry compartment: the resource's meta.compartment must hold it.
    if let Some(compartment) = &entry.compartment {
        let encoded: String = form_urlencoded::byte_serialize(compartment.as_bytes()).collect();
        parts.push(format!("_compartment={encoded}"));
    }
    if parts.is_empty() {
        return Criteria::All;
    }
    match parse_criteria(&format!("{resource_type}?{}", parts.join("&"))) {
        Ok((_, clauses)) if clauses.is_empty() => Criteria::All,
        Ok((_, clauses)) => {
            // What cannot be decided on the resource alone cannot be a criteria (axp-3 refuses
            // chains and `_has` on write; an older stored policy may still hold one).
            let stub = serde_json::json!({ "resourceType": resource_type });
            match matches(&stub, &clauses) {
                Err(e) => Criteria::Never(e.to_string()),
                Ok(_) => Criteria::Clauses(clauses),
            }
        }
        Err(e) => Criteria::Never(e.message),
    }
}

fn constraints_of(entry: &ResourceEntry) -> Option<Vec<Expression>> {
    entry
        .write_constraint
        .iter()
        .map(|source| {
            let e = Expression::parse(source).ok()?;
            e.variables()
                .iter()
                .all(|v| CONSTRAINT_VARIABLES.contains(&v.as_str()))
                .then_some(e)
        })
        .collect()
}

impl AccessControl {
    pub fn new(policy: EffectivePolicy, super_admin: bool, project_admin: bool) -> AccessControl {
        AccessControl {
            policy,
            super_admin,
            project_admin,
            rules: (0..Definitions::global().resource_type_count())
                .map(|_| OnceLock::new())
                .collect(),
            restriction: OnceLock::new(),
        }
    }

    pub fn policy(&self) -> &EffectivePolicy {
        &self.policy
    }

    pub fn is_super_admin(&self) -> bool {
        self.super_admin
    }

    pub fn is_project_admin(&self) -> bool {
        self.project_admin
    }

    /// The type-level check of spec §1.3 (`supportsInteraction`): protected types are for super
    /// admins only; otherwise some entry must shallow-match.
    pub fn allows_type(&self, resource_type: &str, interaction: Interaction) -> bool {
        if PROTECTED_TYPES.contains(&resource_type) && !self.super_admin {
            return false;
        }
        self.policy
            .resource
            .iter()
            .any(|e| e.allows(resource_type, interaction))
    }

    /// The entries that apply to `resource_type`, criteria parsed (cached).
    pub fn rules(&self, resource_type: &str) -> Arc<TypeRules> {
        match self.rules_ref(resource_type) {
            RulesRef::Cached(r) => r.clone(),
            RulesRef::Fresh(r) => r,
        }
    }

    /// The rules of a type, borrowed when they are cached (every resource type; a name that
    /// is none is built each time: callers pick names).
    fn rules_ref(&self, resource_type: &str) -> RulesRef<'_> {
        match Definitions::global()
            .resource_type_index(resource_type)
            .and_then(|i| self.rules.get(i))
        {
            Some(cell) => RulesRef::Cached(cell.get_or_init(|| self.build_rules(resource_type))),
            None => RulesRef::Fresh(self.build_rules(resource_type)),
        }
    }

    fn build_rules(&self, resource_type: &str) -> Arc<TypeRules> {
        let mut rules = Vec::new();
        for (index, entry) in self.policy.resource.iter().enumerate() {
            let applies = entry.resource_type == resource_type
                || (entry.resource_type == "*" && !PROJECT_ADMIN_TYPES.contains(&resource_type));
            if !applies {
                continue;
            }
            let criteria = criteria_of(entry, resource_type);
            let constraints = constraints_of(entry);
            let mut entry = entry.clone();
            for f in secret_fields(resource_type) {
                if !entry.hidden_fields.iter().any(|h| h == f) {
                    entry.hidden_fields.push((*f).to_owned());
                }
            }
            let split = SplitCriteria::of(&criteria);
            rules.push(Rule {
                index,
                entry,
                criteria,
                constraints,
                split,
            });
        }
        let mut hidden = Vec::new();
        for f in rules.iter().flat_map(|r| r.entry.hidden_fields.iter()) {
            add_field(&mut hidden, f);
        }
        let fields = criteria_fields(resource_type, &rules);
        let mut codes = Vec::new();
        for r in &rules {
            if let Criteria::Clauses(c) = &r.criteria {
                codes_needed(resource_type, c, &mut codes);
            }
        }
        let params = SearchParameters::global()
            .with_expressions(resource_type)
            .filter(|(p, _)| codes.contains(&p.code))
            .collect();
        let accounts = codes.iter().any(|c| c == ACCOUNT_CODE);
        let compartment_only = resource_type != "Binary"
            && !PROTECTED_TYPES.contains(&resource_type)
            && rules.iter().all(|r| match &r.criteria {
                Criteria::All | Criteria::Never(_) => true,
                Criteria::Clauses(_) => r.split.as_ref().is_some_and(|s| s.rest.is_empty()),
            });
        Arc::new(TypeRules {
            rules,
            hidden,
            fields,
            params,
            accounts,
            compartment_only,
        })
    }

    /// What searches may see (spec §1.3 "Search"), for every type: for each type the criteria
    /// of the entries that allow `search` on it, OR-ed; a type no entry allows is absent (nothing
    /// of it is seen, also through includes, chains and `_has`). Beyond Medplum, entries that do
    /// not allow search (a create-only entry) widen nothing.
    pub fn restriction(&self) -> Arc<Restriction> {
        self.restriction
            .get_or_init(|| {
                let mut types = HashMap::new();
                for t in Definitions::global().resource_types() {
                    if let Some(alternatives) = self.alternatives(t, Interaction::Search) {
                        types.insert(t.to_owned(), alternatives);
                    }
                }
                Arc::new(Restriction { types })
            })
            .clone()
    }

    /// The criteria of the entries that allow `interaction` on `resource_type` as alternative
    /// clause lists; `None` when nothing of the type may be seen.
    pub fn alternatives(
        &self,
        resource_type: &str,
        interaction: Interaction,
    ) -> Option<Vec<Vec<Clause>>> {
        if !self.allows_type(resource_type, interaction) {
            return None;
        }
        let rules = self.rules_ref(resource_type);
        let mut any = Vec::new();
        for rule in &rules.rules {
            if !rule.entry.allows(resource_type, interaction) {
                continue;
            }
            match &rule.criteria {
                // Binary is never filtered by criteria (spec §1.3).
                _ if resource_type == "Binary" => return Some(vec![Vec::new()]),
                Criteria::All => return Some(vec![Vec::new()]),
                Criteria::Clauses(c) => any.push(c.clone()),
                Criteria::Never(_) => {}
            }
        }
        (!any.is_empty()).then(|| merge_single_clauses(any))
    }

    /// The first entry that allows `interaction` and whose criteria `resource` satisfies
    /// (`satisfiedAccessPolicy`).
    pub fn satisfied(
        &self,
        resource: &Value,
        interaction: Interaction,
    ) -> Option<(RulesRef<'_>, usize)> {
        let resource_type = resource.get("resourceType").and_then(Value::as_str)?;
        if PROTECTED_TYPES.contains(&resource_type) && !self.super_admin {
            return None;
        }
        let rules = self.rules_ref(resource_type);
        let entries = std::cell::OnceCell::new();
        let at = rules.rules.iter().position(|r| {
            r.entry.allows(resource_type, interaction)
                && r.admits_with(
                    resource,
                    Some(entries.get_or_init(|| {
                        extract_params(resource, rules.params.iter().copied(), rules.accounts, 4)
                    })),
                )
        })?;
        Some((rules, at))
    }

    /// Whether every resource of the type may undergo `interaction`, whatever its content: the
    /// first entry that allows it has no criteria. Lets reads skip parsing the resource.
    pub fn unconditional(&self, resource_type: &str, interaction: Interaction) -> bool {
        if !self.allows_type(resource_type, interaction) {
            return false;
        }
        if resource_type == "Binary" {
            return true;
        }
        self.rules_ref(resource_type)
            .rules
            .iter()
            .find(|r| r.entry.allows(resource_type, interaction))
            .is_some_and(|r| r.criteria == Criteria::All)
    }

    /// Whether [`AccessControl::can_in_compartments`] decides on resources of the type: their
    /// criteria only list compartments. A read can then be decided on the compartments the
    /// store keeps beside the resource, without its content.
    pub fn decides_on_compartments(&self, resource_type: &str) -> bool {
        self.rules_ref(resource_type).compartment_only
    }

    /// [`AccessControl::can`] for a type of which [`AccessControl::decides_on_compartments`],
    /// from the compartments `(type, id)` the resource is in (`search::matching::compartments`
    /// of its index entries: the Patients its Patient-compartment parameters refer to, itself
    /// when a Patient, its accounts). False for any other type.
    pub fn can_in_compartments(
        &self,
        resource_type: &str,
        found: &[(&str, &str)],
        interaction: Interaction,
    ) -> bool {
        let rules = self.rules_ref(resource_type);
        if !rules.compartment_only {
            return false;
        }
        rules.rules.iter().any(|r| {
            r.entry.allows(resource_type, interaction)
                && match &r.criteria {
                    Criteria::All => true,
                    Criteria::Never(_) => false,
                    Criteria::Clauses(_) => r
                        .split
                        .as_ref()
                        .is_some_and(|s| s.rest.is_empty() && s.listed(found)),
                }
        })
    }

    /// [`AccessControl::can`] on a stored resource's JSON, reading only the elements the
    /// type's criteria look at.
    pub fn can_stored(
        &self,
        resource_type: &str,
        content: &str,
        interaction: Interaction,
    ) -> serde_json::Result<bool> {
        let rules = self.rules_ref(resource_type);
        let value = match &rules.fields {
            Some(fields) => partial::parse(content, fields)?,
            None => serde_json::from_str(content)?,
        };
        Ok(self.can(&value, interaction))
    }

    /// Whether `interaction` may be done to this resource (`canPerformInteraction`).
    pub fn can(&self, resource: &Value, interaction: Interaction) -> bool {
        self.satisfied(resource, interaction).is_some()
    }

    /// Whether some entry of the type hides a field, so that read results must be filtered.
    pub fn hides_fields(&self, resource_type: &str) -> bool {
        !self.rules_ref(resource_type).hidden.is_empty()
    }

    /// Every field some entry of the type hides: what searches on the type may not look at.
    pub fn hidden_paths(&self, resource_type: &str) -> Vec<String> {
        self.rules_ref(resource_type).hidden.clone()
    }

    /// Removes the fields hidden from the reader: those of the first entry the resource
    /// satisfies for `read`, or, when it satisfies none (an include that only a search entry
    /// lets through), those of every entry of its type. Returns whether anything was removed.
    pub fn hide_fields(&self, resource: &mut Value) -> bool {
        let Some(resource_type) = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return false;
        };
        let rules = self.rules_ref(&resource_type);
        if rules.hidden.is_empty() {
            return false;
        }
        let paths: Vec<String> = match self.satisfied(resource, Interaction::Read) {
            Some((rules, at)) => rules.rules[at].entry.hidden_fields.clone(),
            None => rules.hidden.clone(),
        };
        let mut removed = false;
        for p in &paths {
            removed |= fields::remove_path(resource, p);
        }
        removed
    }

    /// A write's input with what it may not set put back (spec §1.3): the read-only and hidden
    /// fields of the entry that `original` satisfies for `interaction`, and the fields hidden
    /// from the writer when reading it (it never saw them, so their absence is no wish to
    /// remove them), are restored from it, or, on create (no original), removed.
    pub fn protect_fields(
        &self,
        original: Option<&Value>,
        input: &mut Value,
        interaction: Interaction,
    ) {
        let basis = original.unwrap_or(input);
        let mut paths: Vec<String> = match self.satisfied(basis, interaction) {
            Some((rules, at)) => {
                let e = &rules.rules[at].entry;
                e.readonly_fields
                    .iter()
                    .chain(e.hidden_fields.iter())
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        if let Some(o) = original {
            // As `hide_fields`: a writer who may not read the resource at all never saw what
            // any entry of its type hides.
            match self.satisfied(o, Interaction::Read) {
                Some((rules, at)) => {
                    paths.extend(rules.rules[at].entry.hidden_fields.iter().cloned());
                }
                None => {
                    if let Some(t) = o.get("resourceType").and_then(Value::as_str) {
                        paths.extend(self.rules_ref(t).hidden.iter().cloned());
                    }
                }
            }
        }
        for p in &paths {
            match original {
                Some(o) => fields::restore_path(o, input, p),
                None => {
                    fields::remove_path(input, p);
                }
            }
        }
    }

    /// The after check of a write (`isResourceWriteable`): the first entry the new content
    /// satisfies for `interaction` exists and all its write constraints hold.
    pub fn writable(
        &self,
        before: Option<&Value>,
        after: &Value,
        interaction: Interaction,
    ) -> bool {
        match self.satisfied(after, interaction) {
            Some((rules, at)) => rules.rules[at].constraints_hold(before, after),
            None => false,
        }
    }
}

/// Alternatives that are each one clause are one clause: (a OR b) OR (c OR d) is a OR b OR c OR
/// d. A policy that splits a long list over several entries (the compartments of a hundred
/// Patients, 50 a criteria) then costs the search one check per row, not one per entry.
fn merge_single_clauses(alternatives: Vec<Vec<Clause>>) -> Vec<Vec<Clause>> {
    let (single, other): (Vec<Vec<Clause>>, Vec<Vec<Clause>>) =
        alternatives.into_iter().partition(|a| a.len() == 1);
    if single.len() < 2 {
        return single.into_iter().chain(other).collect();
    }
    let merged = Clause {
        any: single
            .into_iter()
            .flat_map(|mut a| a.remove(0).any)
            .collect(),
    };
    std::iter::once(vec![merged]).chain(other).collect()
}

/// Whether a search reading the element at `read` (a search parameter's path, `name`,
/// `value`) tells anything of the hidden field `hidden` (`name.family`, `valueQuantity`): one
/// path lies within the other, a choice element's name (`value`) standing for each of its typed
/// names (`valueQuantity`).
pub fn reveals(read: &str, hidden: &str) -> bool {
    let read: Vec<&str> = read.split('.').collect();
    let hidden: Vec<&str> = hidden.split('.').filter(|s| !s.is_empty()).collect();
    read.iter().zip(hidden.iter()).all(|(r, h)| {
        r == h
            || h.strip_prefix(r)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
            || r.strip_prefix(h)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effective::{MembershipAccess, PolicyGrant, ProjectAccess, build};
    use serde_json::json;

    fn control(policy: Value, admin: bool) -> AccessControl {
        let membership = MembershipAccess {
            profile: "Practitioner/p1".into(),
            admin,
            grants: vec![PolicyGrant {
                reference: "AccessPolicy/1".into(),
                policy: Some(policy),
                parameters: vec![],
            }],
        };
        let project = ProjectAccess {
            id: "proj".into(),
            ..Default::default()
        };
        AccessControl::new(build(&membership, &project).unwrap(), false, admin)
    }

    /// Criteria on members of `meta` (accounts, `_lastUpdated`, `_tag`) decide the same on
    /// stored JSON read in part (`meta` members only) as on the whole resource.
    #[test]
    fn criteria_on_meta_decide_the_same_read_in_part() {
        let c = control(
            json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Observation", "criteria": "Observation?_compartment=Organization/o1"},
                {"resourceType": "Observation", "criteria": "Observation?_lastUpdated=lt2020-01-01"},
                {"resourceType": "Observation", "criteria": "Observation?_tag=http://t|a"},
                {"resourceType": "Observation", "criteria": "Observation?_compartment=Patient/p1"},
            ]}),
            false,
        );
        let fields = c.rules("Observation").fields.clone().unwrap();
        assert!(fields.contains(&"meta.account".to_owned()));
        assert!(fields.contains(&"meta.lastUpdated".to_owned()));
        assert!(fields.contains(&"meta.tag".to_owned()));
        assert!(!fields.contains(&"meta".to_owned()));
        let meta = |extra: Value| {
            let mut m = json!({"versionId": "1", "lastUpdated": "2024-05-01T00:00:00Z",
                "project": "proj", "author": {"reference": "Practitioner/p1"}});
            for (k, v) in extra.as_object().unwrap() {
                m[k] = v.clone();
            }
            m
        };
        let cases = [
            (json!({}), false),
            (json!({"account": {"reference": "Organization/o1"}}), true),
            (json!({"account": {"reference": "Organization/o2"}}), false),
            (
                json!({"accounts": [{"reference": "Organization/o2"}, {"reference": "Organization/o1"}]}),
                true,
            ),
            (json!({"lastUpdated": "2019-12-31T23:00:00Z"}), true),
            (json!({"tag": [{"system": "http://t", "code": "a"}]}), true),
            (json!({"tag": [{"system": "http://t", "code": "b"}]}), false),
        ];
        for (extra, want) in cases {
            let r = json!({"resourceType": "Observation", "id": "x", "meta": meta(extra.clone()),
                "status": "final", "code": {"text": "t"}, "subject": {"reference": "Patient/p2"}});
            assert_eq!(c.can(&r, Interaction::Read), want, "{extra}");
            assert_eq!(
                c.can_stored("Observation", &r.to_string(), Interaction::Read)
                    .unwrap(),
                want,
                "stored, {extra}"
            );
        }
        let mine = json!({"resourceType": "Observation", "id": "x", "meta": meta(json!({})),
            "status": "final", "code": {"text": "t"}, "subject": {"reference": "Patient/p1"}});
        assert!(
            c.can_stored("Observation", &mine.to_string(), Interaction::Read)
                .unwrap()
        );
    }

    /// Clauses that only list compartments are decided as sets on reads (`SplitCriteria`),
    /// with exactly the outcome of matching the whole criteria: lists of several types, two
    /// such clauses AND-ed, with other conditions beside them, a Patient in its own
    /// compartment, accounts, references of every compartment parameter.
    #[test]
    fn compartment_lists_decide_as_the_whole_criteria() {
        let c = control(
            json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Observation", "criteria": "Observation?_compartment=Patient/a,Patient/b,Organization/o1&status=final"},
                {"resourceType": "Observation", "criteria": "Observation?_compartment=Patient/c&_compartment=Organization/o2,Patient/x"},
                {"resourceType": "Patient", "criteria": "Patient?_compartment=Patient/a,Patient/b"},
            ]}),
            false,
        );
        for t in ["Observation", "Patient"] {
            assert!(c.rules(t).rules.iter().all(|r| r.split.is_some()), "{t}");
        }
        // The reference: some entry's whole criteria match.
        fn matched(c: &AccessControl, r: &Value) -> bool {
            let t = r["resourceType"].as_str().unwrap();
            c.rules(t).rules.iter().any(|rule| match &rule.criteria {
                Criteria::Clauses(clauses) => matches(r, clauses).unwrap(),
                _ => unreachable!(),
            })
        }
        let whole = |r: &Value| matched(&c, r);
        // The same lists without the status: decided on the compartments alone, as a read does
        // it (`can_in_compartments`, on what the store keeps from the entries `extract` gives).
        let lists = control(
            json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Observation", "criteria": "Observation?_compartment=Patient/a,Patient/b,Organization/o1"},
                {"resourceType": "Observation", "criteria": "Observation?_compartment=Patient/c&_compartment=Organization/o2,Patient/x"},
            ]}),
            false,
        );
        assert!(!c.decides_on_compartments("Observation"));
        assert!(c.decides_on_compartments("Patient"));
        assert!(lists.decides_on_compartments("Observation"));
        let lists_whole = |r: &Value| matched(&lists, r);
        let on_index = |c: &AccessControl, r: &Value| {
            let references: Vec<IndexEntry> = oxmed_fhir::index::extract(r)
                .into_iter()
                .filter(|e| {
                    matches!(
                        e.value,
                        oxmed_fhir::index_value::IndexValue::Reference { .. }
                    )
                })
                .collect();
            let t = r["resourceType"].as_str().unwrap();
            let found = compartments(t, r["id"].as_str(), &references);
            c.can_in_compartments(t, &found, Interaction::Read)
        };
        let mut on_lists = [0, 0];
        let refs = [
            "Patient/a",
            "Patient/b",
            "Patient/c",
            "Patient/x",
            "Group/a",
            "Organization/o1",
        ];
        let accounts = [
            None,
            Some("Organization/o1"),
            Some("Organization/o2"),
            Some("Patient/c"),
        ];
        let mut decided = [0, 0];
        for status in ["final", "preliminary"] {
            for subject in refs {
                for performer in [None, Some("Patient/c"), Some("Organization/o2")] {
                    for account in accounts {
                        let mut r = json!({"resourceType": "Observation", "id": "o", "status": status,
                            "code": {"text": "t"}, "subject": {"reference": subject}, "meta": {}});
                        if let Some(p) = performer {
                            r["performer"] =
                                json!([{"reference": "Practitioner/p"}, {"reference": p}]);
                        }
                        if let Some(a) = account {
                            r["meta"]["account"] = json!({"reference": a});
                        }
                        let want = whole(&r);
                        decided[usize::from(want)] += 1;
                        assert_eq!(c.can(&r, Interaction::Read), want, "{r}");
                        assert_eq!(
                            c.can_stored("Observation", &r.to_string(), Interaction::Read)
                                .unwrap(),
                            want,
                            "stored {r}"
                        );
                        assert!(!on_index(&c, &r), "{r}");
                        let listed = lists_whole(&r);
                        on_lists[usize::from(listed)] += 1;
                        assert_eq!(lists.can(&r, Interaction::Read), listed, "{r}");
                        assert_eq!(on_index(&lists, &r), listed, "on the index {r}");
                    }
                }
            }
        }
        assert!(decided[0] > 10 && decided[1] > 10, "{decided:?}");
        assert!(on_lists[0] > 10 && on_lists[1] > 10, "{on_lists:?}");
        for (id, account, want) in [
            ("a", None, true),
            ("c", None, false),
            ("c", Some("Patient/b"), true),
        ] {
            let mut p = json!({"resourceType": "Patient", "id": id, "meta": {}});
            if let Some(a) = account {
                p["meta"]["accounts"] = json!([{"reference": a}]);
            }
            assert_eq!(whole(&p), want, "{p}");
            assert_eq!(c.can(&p, Interaction::Read), want, "{p}");
            assert_eq!(
                c.can_stored("Patient", &p.to_string(), Interaction::Read)
                    .unwrap(),
                want
            );
            assert_eq!(on_index(&c, &p), want, "on the index {p}");
        }
    }

    #[test]
    fn criteria_decide_reads_and_search_alternatives() {
        let c = control(
            json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Observation", "criteria": "Observation?status=final"},
                {"resourceType": "Observation", "criteria": "Observation?status=amended",
                 "readonly": true, "hiddenFields": ["valueQuantity"]},
                {"resourceType": "Patient"},
            ]}),
            false,
        );
        let fin = json!({"resourceType": "Observation", "status": "final", "code": {}});
        let amended = json!({"resourceType": "Observation", "status": "amended",
            "valueQuantity": {"value": 1}, "code": {}});
        let prelim = json!({"resourceType": "Observation", "status": "preliminary", "code": {}});
        assert!(c.can(&fin, Interaction::Update));
        assert!(c.can(&amended, Interaction::Read));
        assert!(!c.can(&amended, Interaction::Update));
        assert!(!c.can(&prelim, Interaction::Read));
        // Two one-clause criteria: one clause of either condition.
        let alternatives = c.alternatives("Observation", Interaction::Search).unwrap();
        assert_eq!(alternatives.len(), 1);
        assert_eq!(alternatives[0].len(), 1);
        assert_eq!(alternatives[0][0].any.len(), 2);
        assert_eq!(
            c.alternatives("Patient", Interaction::Search),
            Some(vec![vec![]])
        );
        assert_eq!(c.alternatives("Encounter", Interaction::Search), None);
        let r = c.restriction();
        assert!(r.types.contains_key("Observation"));
        assert!(r.types.contains_key("SearchParameter"));
        assert!(!r.types.contains_key("Encounter"));
        let mut shown = amended.clone();
        assert!(c.hide_fields(&mut shown));
        assert!(shown.get("valueQuantity").is_none());
        let mut shown = fin.clone();
        assert!(!c.hide_fields(&mut shown));
        // The same decisions from stored JSON read in part.
        assert_eq!(
            c.rules("Observation")
                .fields
                .as_deref()
                .map(|f| f.contains(&"status".to_owned())),
            Some(true)
        );
        for (r, want) in [(&fin, true), (&amended, false), (&prelim, false)] {
            assert_eq!(
                c.can_stored("Observation", &r.to_string(), Interaction::Update)
                    .unwrap(),
                want
            );
        }
        assert!(
            c.can_stored("Observation", "{not json", Interaction::Read)
                .is_err()
        );
    }

    #[test]
    fn unusable_criteria_match_nothing() {
        let c = control(
            json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Observation", "criteria": "Patient?active=true"},
                {"resourceType": "Patient", "criteria": "Patient?nonsense=1"},
            ]}),
            false,
        );
        let p = json!({"resourceType": "Patient", "active": true});
        assert!(!c.can(&p, Interaction::Read));
        assert_eq!(c.alternatives("Patient", Interaction::Search), None);
        assert_eq!(c.alternatives("Observation", Interaction::Search), None);
        // The type check alone still passes: the caller sees an empty result, not a 403.
        assert!(c.allows_type("Patient", Interaction::Search));
    }

    #[test]
    fn star_entries_and_protected_types() {
        let c = control(
            json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "*", "criteria": "*?_compartment=Patient/1"},
            ]}),
            false,
        );
        assert!(c.allows_type("Observation", Interaction::Create));
        assert!(!c.allows_type("Login", Interaction::Read));
        assert!(!c.allows_type("User", Interaction::Read));
        assert!(matches!(
            c.rules("Observation").rules[0].criteria,
            Criteria::Clauses(_)
        ));
    }

    #[test]
    fn read_only_fields_are_restored_and_stripped() {
        let c = control(
            json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Patient", "readonlyFields": ["gender"], "hiddenFields": ["birthDate"]},
            ]}),
            false,
        );
        let original = json!({"resourceType": "Patient", "gender": "male", "birthDate": "1990"});
        let mut input = json!({"resourceType": "Patient", "gender": "female", "birthDate": "2000", "active": true});
        c.protect_fields(Some(&original), &mut input, Interaction::Update);
        assert_eq!(
            input,
            json!({"resourceType": "Patient", "gender": "male", "birthDate": "1990", "active": true})
        );
        let mut input = json!({"resourceType": "Patient", "gender": "female", "active": true});
        c.protect_fields(None, &mut input, Interaction::Create);
        assert_eq!(input, json!({"resourceType": "Patient", "active": true}));
    }

    #[test]
    fn search_paths_that_reveal_hidden_fields() {
        assert!(reveals("name", "name.family"));
        assert!(reveals("name.family", "name"));
        assert!(reveals("value", "valueQuantity"));
        assert!(reveals("valueQuantity", "value"));
        assert!(reveals("birthDate", "birthDate"));
        assert!(!reveals("name.given", "name.family"));
        assert!(!reveals("valueset", "value"));
        assert!(!reveals("gender", "birthDate"));
        assert!(reveals("meta.tag", "meta"));
    }

    #[test]
    fn write_constraints() {
        let c = control(
            json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Observation", "writeConstraint": [
                    {"language": "text/fhirpath", "expression": "%before.exists() implies %before.status != 'final'"},
                ]},
                {"resourceType": "Patient", "writeConstraint": [
                    {"language": "text/fhirpath", "expression": "%secret = 1"},
                ]},
            ]}),
            false,
        );
        let prelim = json!({"resourceType": "Observation", "status": "preliminary", "code": {}});
        let fin = json!({"resourceType": "Observation", "status": "final", "code": {}});
        assert!(c.writable(None, &fin, Interaction::Create));
        assert!(c.writable(Some(&prelim), &fin, Interaction::Update));
        assert!(!c.writable(Some(&fin), &prelim, Interaction::Update));
        let p = json!({"resourceType": "Patient"});
        assert!(!c.writable(None, &p, Interaction::Create));
    }
}
