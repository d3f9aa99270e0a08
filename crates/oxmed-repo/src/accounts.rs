//! `meta.account` and `meta.accounts` (spec §1.4): the accounts (compartments beyond the
//! Patient's) a resource belongs to, searchable as `_compartment=<Type>/<id>`.
//!
//! A resource created under a policy with a `compartment` joins that account; a resource that
//! is not a Patient also joins the accounts of the Patients it refers to through the Patient
//! compartment; an update keeps the accounts a resource has. Only a super admin or a project
//! admin in extended mode (`X-Medplum: extended`), and the server itself, set them explicitly:
//! what anyone else sends is replaced by what the rules give, so an account cannot be spoofed.

use std::collections::HashMap;

use oxmed_fhir::index::{account_references, extract_only};
use oxmed_fhir::index_value::IndexValue;
use oxmed_fhir::search::matching::patient_compartment_params;
use serde_json::{Value, json};

use crate::{RepoError, Repository, RequestContext, WriteRequest, parse_stored};

/// Most referenced Patients whose accounts one write reads.
const MAX_PATIENTS: usize = 100;

/// How the accounts of a version being written are decided.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounts {
    /// The writer may set them: what the resource's `meta` says is taken as it is.
    explicit: bool,
    /// The account a created resource joins (the policy's `compartment`).
    compartment: Option<String>,
    /// The accounts of the Patients the resource refers to.
    inherited: Vec<String>,
}

impl Accounts {
    pub(crate) fn of(ctx: &RequestContext, inherited: Vec<String>) -> Accounts {
        match &ctx.access {
            None => Accounts {
                explicit: true,
                compartment: None,
                inherited,
            },
            Some(a) => Accounts {
                explicit: (a.is_super_admin() || a.is_project_admin()) && ctx.extended,
                compartment: a
                    .policy()
                    .compartment
                    .as_ref()
                    .and_then(|c| c.get("reference"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                inherited,
            },
        }
    }

    /// Sets `meta.accounts` (and `meta.account`, its first) of `resource`, whose current
    /// version is `before` (`None`: it is being created).
    pub(crate) fn apply(&self, resource: &mut Value, before: Option<&Value>) {
        let given = resource.get("meta").filter(|m| m.is_object()).map(of_meta);
        let mut accounts = match given {
            Some(given) if self.explicit => given,
            _ => {
                let mut kept = before
                    .and_then(|b| b.get("meta"))
                    .map_or_else(Vec::new, of_meta);
                if before.is_none()
                    && let Some(c) = &self.compartment
                {
                    kept.push(c.clone());
                }
                kept.extend(self.inherited.iter().cloned());
                kept
            }
        };
        let mut seen = std::collections::HashSet::new();
        accounts.retain(|a| seen.insert(a.clone()));
        let Some(obj) = resource.as_object_mut() else {
            return;
        };
        if accounts.is_empty() {
            if let Some(meta) = obj.get_mut("meta").and_then(Value::as_object_mut) {
                meta.remove("account");
                meta.remove("accounts");
                if meta.is_empty() {
                    obj.remove("meta");
                }
            }
            return;
        }
        let meta = obj.entry("meta").or_insert_with(|| json!({}));
        if !meta.is_object() {
            *meta = json!({});
        }
        meta["account"] = json!({"reference": accounts[0]});
        meta["accounts"] = Value::Array(accounts.iter().map(|a| json!({"reference": a})).collect());
    }
}

/// The account references of a `meta`: `account` first, then `accounts`, without repeats.
fn of_meta(meta: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in account_references(meta) {
        if let Some(s) = r.get("reference").and_then(Value::as_str)
            && !out.iter().any(|o| o == s)
        {
            out.push(s.to_owned());
        }
    }
    out
}

impl Repository {
    /// The accounts of the Patients that `request`'s resource refers to through the Patient
    /// compartment, among those the caller's projects hold; read before the write's transaction.
    /// `known`: the accounts of Patients already read (by id), shared by a Bundle's entries.
    pub(crate) async fn inherited_accounts(
        &self,
        ctx: &RequestContext,
        request: &WriteRequest,
        known: &mut HashMap<String, Vec<String>>,
    ) -> Result<Vec<String>, RepoError> {
        let Some(resource) = request.resource() else {
            return Ok(Vec::new());
        };
        let rt = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if rt == "Patient" {
            return Ok(Vec::new());
        }
        let codes: Vec<&str> = patient_compartment_params(rt)
            .iter()
            .map(String::as_str)
            .collect();
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let mut patients: Vec<String> = Vec::new();
        for e in extract_only(resource, &codes) {
            if let IndexValue::Reference {
                target_type: Some(t),
                target_id: Some(id),
                reference,
            } = e.value
                && t == "Patient"
                && !reference.contains("://")
                && !patients.contains(&id)
                && patients.len() < MAX_PATIENTS
            {
                patients.push(id);
            }
        }
        let mut accounts = Vec::new();
        for id in patients {
            if let Some(a) = known.get(&id) {
                accounts.extend(a.iter().cloned());
                continue;
            }
            let mut of_patient = Vec::new();
            if Repository::check_id(&id).is_ok()
                && let Some(p) = self.store.read("Patient", &id).await?
                && !p.deleted
                && ctx.sees(&p)
                && let Some(meta) = parse_stored(&p)?.get("meta")
            {
                of_patient = of_meta(meta);
            }
            accounts.extend(of_patient.iter().cloned());
            known.insert(id, of_patient);
        }
        Ok(accounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(explicit: bool, compartment: Option<&str>, inherited: &[&str]) -> Accounts {
        Accounts {
            explicit,
            compartment: compartment.map(str::to_owned),
            inherited: inherited.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_create_joins_the_policy_account_and_the_patients_accounts() {
        let mut r = json!({"resourceType": "Observation",
            "meta": {"accounts": [{"reference": "Organization/spoofed"}]}});
        rule(
            false,
            Some("Organization/a"),
            &["Organization/b", "Organization/a"],
        )
        .apply(&mut r, None);
        assert_eq!(r["meta"]["account"], json!({"reference": "Organization/a"}));
        assert_eq!(
            r["meta"]["accounts"],
            json!([{"reference": "Organization/a"}, {"reference": "Organization/b"}])
        );
    }

    #[test]
    fn an_update_keeps_accounts_unless_an_admin_sets_them() {
        let before = json!({"resourceType": "Observation",
            "meta": {"account": {"reference": "Organization/old"}}});
        let mut r = json!({"resourceType": "Observation", "meta": {}});
        rule(false, Some("Organization/editor"), &[]).apply(&mut r, Some(&before));
        assert_eq!(
            r["meta"]["accounts"],
            json!([{"reference": "Organization/old"}])
        );
        let mut r = json!({"resourceType": "Observation", "meta": {}});
        rule(true, None, &[]).apply(&mut r, Some(&before));
        assert!(
            r.get("meta").is_none(),
            "an admin's meta without accounts clears them: {r}"
        );
        let mut r = json!({"resourceType": "Observation"});
        rule(true, None, &[]).apply(&mut r, Some(&before));
        assert_eq!(
            r["meta"]["account"],
            json!({"reference": "Organization/old"})
        );
    }
}
