//! Rules of Medplum's own resource types that their StructureDefinitions do not carry (spec §0,
//! §3.3): checked on every write, so that a bad value is refused when it is written rather
//! than failing whoever uses it later.

use serde_json::Value;

use super::{IssueCode, ValidationIssue};

/// `^[0-9]+[smhdwy]$`: a token lifetime (spec §3.3).
fn is_duration(s: &str) -> bool {
    let Some((digits, unit)) = s.char_indices().last().map(|(i, _)| s.split_at(i)) else {
        return false;
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "s" | "m" | "h" | "d" | "w" | "y")
}

/// Constraint axp-3: `criteria` is a search of the entry's own type,
/// `^<type>\?([a-zA-Z_:-]+=[^&]+&?)+$` (`*?...` for a `*` entry), and never uses `_has:`.
fn criteria_ok(resource_type: &str, criteria: &str) -> bool {
    let Some(query) = criteria
        .strip_prefix(resource_type)
        .and_then(|r| r.strip_prefix('?'))
    else {
        return false;
    };
    if query.is_empty() || criteria.contains("_has:") {
        return false;
    }
    let pieces: Vec<&str> = query.split('&').collect();
    pieces.iter().enumerate().all(|(i, piece)| {
        // One trailing `&` is allowed by the pattern.
        if piece.is_empty() {
            return i == pieces.len() - 1 && i > 0;
        }
        match piece.split_once('=') {
            Some((name, value)) => {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphabetic() || b"_:-".contains(&b))
                    && !value.is_empty()
            }
            None => false,
        }
    })
}

/// An IP rule value: `*`, an address prefix (Medplum), or a CIDR block (`10.0.0.0/8`,
/// `2001:db8::/32`) whose prefix length fits its address family.
fn ip_rule_value_ok(value: &str) -> bool {
    let Some((addr, bits)) = value.split_once('/') else {
        return !value.trim().is_empty();
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

fn access_policy(resource: &Value, issues: &mut Vec<ValidationIssue>) {
    if let Some(rules) = resource["ipAccessRule"].as_array() {
        for (i, rule) in rules.iter().enumerate() {
            if !rule["value"].as_str().is_some_and(ip_rule_value_ok) {
                issues.push(ValidationIssue {
                    path: format!("AccessPolicy.ipAccessRule[{i}].value"),
                    message: "an IP rule value is *, an address prefix such as 10.1. or a CIDR block such as 10.0.0.0/8".into(),
                    code: IssueCode::Value,
                });
            }
        }
    }
    let Some(entries) = resource["resource"].as_array() else {
        return;
    };
    for (i, entry) in entries.iter().enumerate() {
        let resource_type = entry["resourceType"].as_str().unwrap_or_default();
        if let Some(criteria) = entry["criteria"].as_str()
            && !criteria_ok(resource_type, criteria)
        {
            issues.push(ValidationIssue {
                path: format!("AccessPolicy.resource[{i}].criteria"),
                message: format!(
                    "criteria must be a search of {resource_type} such as {resource_type}?name=value, without _has (constraint axp-3)"
                ),
                code: IssueCode::Invariant,
            });
        }
        if let Some(constraints) = entry["writeConstraint"].as_array() {
            for (j, c) in constraints.iter().enumerate() {
                let expression = c["expression"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty());
                if c["language"] != "text/fhirpath" || !expression {
                    issues.push(ValidationIssue {
                        path: format!("AccessPolicy.resource[{i}].writeConstraint[{j}]"),
                        message: "a write constraint needs language text/fhirpath and an expression (constraint axp-1)".into(),
                        code: IssueCode::Invariant,
                    });
                }
            }
        }
    }
}

/// The issues of `resource` under these rules.
pub(crate) fn check(resource: &Value, issues: &mut Vec<ValidationIssue>) {
    if resource["resourceType"] == "AccessPolicy" {
        access_policy(resource, issues);
    }
    if resource["resourceType"] == "ClientApplication" {
        for field in ["accessTokenLifetime", "refreshTokenLifetime"] {
            if let Some(v) = resource.get(field)
                && !v.as_str().is_some_and(is_duration)
            {
                issues.push(ValidationIssue {
                    path: format!("ClientApplication.{field}"),
                    message: "Invalid token duration".into(),
                    code: IssueCode::Value,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ip_rule_values() {
        for ok in ["*", "8.8.", "10.0.0.0/8", "2001:db8::/32", "192.168.1.7"] {
            assert!(ip_rule_value_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/8",
            "2001:db8::/129",
            "10.0.0.0/",
        ] {
            assert!(!ip_rule_value_ok(bad), "{bad}");
        }
    }

    #[test]
    fn access_policy_criteria_axp_3() {
        for ok in [
            ("Patient", "Patient?_id=%patient.id"),
            ("Observation", "Observation?subject=%patient&status=final"),
            ("Observation", "Observation?code:not=x&"),
            ("*", "*?_compartment=%patient"),
        ] {
            assert!(criteria_ok(ok.0, ok.1), "{ok:?}");
        }
        for bad in [
            ("Patient", "Observation?subject=x"),
            ("Patient", "Patient"),
            ("Patient", "Patient?"),
            ("Patient", "Patient?name"),
            ("Patient", "Patient?name="),
            ("Patient", "Patient?=x"),
            ("Patient", "Patient?a=1&&b=2"),
            ("Patient", "Patient?_has:Observation:subject:code=x"),
            ("Patient", "Patient?na.me=x"),
            ("*", "Patient?_id=1"),
        ] {
            assert!(!criteria_ok(bad.0, bad.1), "{bad:?}");
        }
        let mut issues = Vec::new();
        check(
            &json!({"resourceType": "AccessPolicy", "resource": [
                {"resourceType": "Patient", "criteria": "Patient?_id=1"},
                {"resourceType": "Patient", "criteria": "Observation?x=1"},
                {"resourceType": "Task", "writeConstraint": [
                    {"language": "text/fhirpath", "expression": "%after.status = 'ready'"},
                    {"language": "text/cql", "expression": "x"}]}]}),
            &mut issues,
        );
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "AccessPolicy.resource[1].criteria",
                "AccessPolicy.resource[2].writeConstraint[1]"
            ]
        );
    }

    #[test]
    fn token_lifetimes() {
        for ok in ["1h", "30s", "2w", "10y", "0m"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "h", "1", "1x", "1.5h", "-1h", "+1h", " 1h", "1h "] {
            assert!(!is_duration(bad), "{bad:?}");
        }
        let mut issues = Vec::new();
        check(
            &json!({"resourceType": "ClientApplication", "accessTokenLifetime": "1hour",
                "refreshTokenLifetime": "2w"}),
            &mut issues,
        );
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "ClientApplication.accessTokenLifetime");
        assert_eq!(issues[0].message, "Invalid token duration");
    }
}
