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

/// The issues of `resource` under these rules.
pub(crate) fn check(resource: &Value, issues: &mut Vec<ValidationIssue>) {
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
