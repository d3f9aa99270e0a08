//! Search query strings as store filters, for conditional interactions (`If-None-Exist`,
//! conditional update and delete) and simple searches: equality on token, string (prefix),
//! reference and uri parameters and `_id`, with `,` for OR and repetition for AND. The search
//! engine replaces this with the whole FHIR search language.

use oxmed_fhir::search_parameter::{SearchParamType, SearchParameters};
use oxmed_store::Filter;

use crate::{RepoError, truncate};

/// Parameters that shape a search result rather than select resources.
const RESULT_PARAMETERS: &[&str] = &[
    "_count",
    "_offset",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_format",
    "_pretty",
];

/// Longest parameter value accepted; longer ones are refused rather than sent to the database.
const MAX_VALUE_LEN: usize = 4096;

pub(crate) fn parse(
    resource_type: &str,
    query: &str,
    for_search: bool,
) -> Result<Filter, RepoError> {
    let registry = SearchParameters::global();
    let mut all = Vec::new();
    for (key, value) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
        if for_search && RESULT_PARAMETERS.contains(&key.as_ref()) {
            continue;
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(RepoError::invalid(format!(
                "The value of parameter {} is too long",
                truncate(&key)
            )));
        }
        if key.contains(':') || key.contains('.') {
            return Err(RepoError::invalid(format!(
                "Unsupported search parameter modifier or chain: {}",
                truncate(&key)
            )));
        }
        let mut alternatives = Vec::new();
        for v in value.split(',') {
            alternatives.push(if key == "_id" {
                Filter::Ids(vec![v.to_owned()])
            } else {
                let Some(param) = registry.get(resource_type, &key) else {
                    return Err(RepoError::invalid(format!(
                        "Unknown search parameter: {}",
                        truncate(&key)
                    )));
                };
                value_filter(&key, &param.kind, v)?
            });
        }
        all.push(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Filter::Or(alternatives)
        });
    }
    if !for_search && all.is_empty() {
        return Err(RepoError::invalid(
            "A conditional interaction needs at least one search parameter",
        ));
    }
    Ok(match all.len() {
        0 => Filter::All,
        1 => all.remove(0),
        _ => Filter::And(all),
    })
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

fn value_filter(code: &str, kind: &SearchParamType, v: &str) -> Result<Filter, RepoError> {
    let code = code.to_owned();
    Ok(match kind {
        SearchParamType::Token => match v.split_once('|') {
            Some((system, value)) => Filter::Token {
                code,
                system: Some(system.to_owned()),
                value: (!value.is_empty()).then(|| value.to_owned()),
            },
            None => Filter::Token {
                code,
                system: None,
                value: Some(v.to_owned()),
            },
        },
        SearchParamType::String => Filter::StringPrefix {
            code,
            prefix: oxmed_fhir::index::normalize_string(v),
        },
        SearchParamType::Reference => Filter::Reference {
            code,
            reference: v.to_owned(),
        },
        SearchParamType::Uri => Filter::Uri {
            code,
            value: v.to_owned(),
        },
        _ => {
            return Err(RepoError::invalid(format!(
                "Search on parameter {} is not supported yet",
                truncate(&code)
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_or_and_systems() {
        let f = parse("Patient", "identifier=http://x|1,2&_id=a", false).unwrap();
        assert_eq!(
            f,
            Filter::And(vec![
                Filter::Or(vec![
                    Filter::Token {
                        code: "identifier".into(),
                        system: Some("http://x".into()),
                        value: Some("1".into())
                    },
                    Filter::Token {
                        code: "identifier".into(),
                        system: None,
                        value: Some("2".into())
                    },
                ]),
                Filter::Ids(vec!["a".into()]),
            ])
        );
    }

    #[test]
    fn refuses_unknown_and_empty() {
        assert!(parse("Patient", "nonsense=1", false).is_err());
        assert!(parse("Patient", "", false).is_err());
        assert_eq!(parse("Patient", "_count=5", true).unwrap(), Filter::All);
    }
}
