//! Search through the repository: a query's parameters become a `SearchRequest`, which the store
//! answers with one SQL statement (plus one for the total and one per include level), scoped to
//! the caller's project.

use oxmed_fhir::search::parse::{ParseOptions, parse_search};
use oxmed_fhir::search::{Clause, Condition, SearchRequest};
use oxmed_store::SearchResult;

use oxmed_access::Interaction;

use crate::{RepoError, Repository, RequestContext, access, truncate};

/// How the server wants searches parsed.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// The FHIR base URL, to recognise absolute references to this server.
    pub base_url: String,
    /// `Prefer: handling=lenient`.
    pub lenient: bool,
    pub max_count: usize,
}

impl Repository {
    /// Searches `resource_type` (or, with `None`, the types of `_type`) with the query
    /// parameters. `compartment` restricts to a compartment (`/Patient/123/Observation`).
    pub async fn search(
        &self,
        ctx: &RequestContext,
        resource_type: Option<&str>,
        params: &[(String, String)],
        compartment: Option<(&str, &str)>,
        options: &SearchOptions,
    ) -> Result<(SearchRequest, SearchResult), RepoError> {
        if let Some(t) = resource_type {
            Self::check_type(t)?;
        }
        let mut request = parse_search(
            resource_type,
            params,
            &ParseOptions {
                default_count: 20,
                max_count: options.max_count,
                lenient: options.lenient,
                base_url: Some(options.base_url.clone()),
            },
        )
        .map_err(|e| RepoError::invalid_at(truncate(&e.message), truncate(&e.parameter)))?;
        if let Some((compartment_type, id)) = compartment {
            Self::check_type(compartment_type)?;
            Self::check_id(id)?;
            request.filters.push(Clause {
                any: vec![Condition::Compartment {
                    compartment_type: compartment_type.to_owned(),
                    id: id.to_owned(),
                }],
            });
        }
        let restriction = match &ctx.access {
            Some(access) => {
                // Every type named must be searchable (403 otherwise, spec §1.3); a system
                // search without `_type` covers the types the restriction lists.
                for t in &request.resource_types {
                    access::require_type(ctx, t, Interaction::Search)?;
                }
                access::check_search(ctx, &request)?;
                Some(access.restriction())
            }
            None => None,
        };
        let mut result = self
            .store
            .search_shared(&ctx.project, &ctx.view, &request, restriction)
            .await?;
        if ctx.access.is_some() {
            result.matches = result
                .matches
                .into_iter()
                .map(|r| access::shown(ctx, r))
                .collect();
            result.included = result
                .included
                .into_iter()
                .map(|r| access::shown(ctx, r))
                .collect();
        }
        Ok((request, result))
    }
}
