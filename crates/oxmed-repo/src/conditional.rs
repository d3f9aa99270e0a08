//! The conditions of conditional interactions (`If-None-Exist`, conditional update and delete)
//! as search clauses, parsed as criteria so that they mean exactly what a search means: the
//! store runs them through the same SQL compiler.

use oxmed_fhir::search::Clause;
use oxmed_fhir::search::parse::parse_criteria;
use oxmed_fhir::search_parameter::SearchParamType;

use crate::{RepoError, truncate};

/// The clauses of a conditional interaction's query (`identifier=http://x|1&active=true`, with
/// or without a leading `?`). At least one condition is required: an empty one would match
/// every resource of the type.
pub(crate) fn clauses(resource_type: &str, query: &str) -> Result<Vec<Clause>, RepoError> {
    let query = query.trim_start_matches('?');
    let (_, clauses) = parse_criteria(&format!("{resource_type}?{query}")).map_err(|e| {
        RepoError::invalid_at(
            format!("Invalid condition: {}", truncate(&e.message)),
            truncate(&e.parameter),
        )
    })?;
    if clauses.is_empty() {
        return Err(RepoError::invalid(
            "A conditional interaction needs at least one search parameter",
        ));
    }
    Ok(clauses)
}

/// Whether searches on parameters of this type are answered (the CapabilityStatement lists only
/// those).
pub fn is_supported(kind: &SearchParamType) -> bool {
    matches!(
        kind,
        SearchParamType::Token
            | SearchParamType::String
            | SearchParamType::Reference
            | SearchParamType::Uri
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxmed_fhir::search::{Condition, Test, TokenKind, TokenTest};

    #[test]
    fn parses_and_or_and_systems() {
        let c = clauses("Patient", "identifier=http://x|1,2&_id=a").unwrap();
        let token = |system: Option<&str>, code: &str| Condition::Param {
            code: "identifier".into(),
            test: Test::Token(TokenTest {
                kind: TokenKind::Eq,
                system: system.map(str::to_owned),
                code: Some(code.into()),
            }),
        };
        assert_eq!(
            c,
            vec![
                Clause {
                    any: vec![token(Some("http://x"), "1"), token(None, "2")]
                },
                Clause {
                    any: vec![Condition::Id("a".into())]
                },
            ]
        );
    }

    #[test]
    fn refuses_unknown_and_empty() {
        assert!(clauses("Patient", "nonsense=1").is_err());
        assert!(clauses("Patient", "").is_err());
        assert!(clauses("Patient", "?").is_err());
        assert!(clauses("Patient", "_count=5").is_err());
    }
}
