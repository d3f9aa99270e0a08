//! Searches: a [`SearchRequest`] (filters, sort, paging, total, includes), the project and an
//! optional [`Restriction`] become SQL statements: one for the page, one for the total when
//! asked, one per level of includes. Filtering is all SQL; nothing is fetched to be dropped.
//!
//! - `compile`: conditions as predicates; `render`: predicates as SQL;
//! - `sort`: `_sort` and keyset paging; `cursor`: the continuation token;
//! - `include`: `_include` / `_revinclude` (`:iterate`).
//!
//! Totals: `Total::Accurate` (and `_summary=count`) count with the same filter;
//! `Total::Estimate` is PostgreSQL's planner estimate for it, and on SQLite an accurate count
//! (SQLite has no estimate, and its counts read a covering index).

pub(crate) mod compile;
mod cursor;
pub(crate) mod include;
pub(crate) mod render;
mod sort;

use oxmed_fhir::search::{Clause, Restriction, SearchRequest, SortKey, Summary, Total};

use crate::projects::ProjectFilter;
use crate::schema::{Dialect, RESOURCE_COLUMNS};
use crate::sql::SqlValue;
use crate::{StoreError, StoredResource};
use compile::{Compiler, Scope};
pub(crate) use cursor::{KeyKind, KeyValue};
use render::{Mode, Render};

/// A page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// The matched resources of the page, in the requested order.
    pub matches: Vec<StoredResource>,
    /// Resources added by `_include` / `_revinclude`, none of them also a match.
    pub included: Vec<StoredResource>,
    /// The number of matches (`_total`, `_summary=count`), if asked.
    pub total: Option<u64>,
    /// Where the next page starts (for `SearchRequest::cursor`), if there is one.
    pub next_cursor: Option<String>,
}

/// One SQL statement and its parameters.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub sql: String,
    pub params: Vec<SqlValue>,
    /// A shape whose plan does not depend on the values (see `Render::ordered_driver`): on
    /// PostgreSQL it is prepared once per connection and may run with a generic plan.
    pub prepared: bool,
}

/// How the total is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counting {
    /// `SELECT COUNT(*)`: one row, one integer.
    Count,
    /// PostgreSQL `EXPLAIN (FORMAT JSON)`: the planner's row estimate.
    Explain,
}

/// The statements of a search, before includes.
pub(crate) struct Plan {
    /// Rows `rid, RESOURCE_COLUMNS, key values...`, one more than a page to tell whether a next
    /// page exists. `None` when no rows are asked (`_count=0`, `_summary=count`).
    pub page: Option<Statement>,
    pub count: Option<(Statement, Counting)>,
    /// The types of the key values that follow the resource columns.
    pub kinds: Vec<KeyKind>,
    page_size: usize,
    signature: String,
}

/// A row of the page statement.
pub(crate) struct PageRow {
    pub rid: i64,
    pub resource: StoredResource,
    pub keys: Vec<KeyValue>,
}

impl Plan {
    /// The statement that reads rows: the page, or the count when no rows are asked.
    pub(crate) fn main_statement(&self) -> Option<&Statement> {
        self.page
            .as_ref()
            .or_else(|| self.count.as_ref().map(|(s, _)| s))
    }

    /// The page (at most `count` rows) and the cursor after its last row if more follow.
    pub(crate) fn finish(
        &self,
        mut rows: Vec<PageRow>,
    ) -> (Vec<(i64, StoredResource)>, Option<String>) {
        let next = if rows.len() > self.page_size {
            rows.truncate(self.page_size);
            rows.last().map(|last| {
                cursor::encode(
                    &self.signature,
                    &cursor::Cursor {
                        values: last.keys.clone(),
                        rid: last.rid,
                    },
                )
            })
        } else {
            None
        };
        (
            rows.into_iter().map(|r| (r.rid, r.resource)).collect(),
            next,
        )
    }
}

/// The sort as the cursor names it, so that a cursor of another search is refused.
fn signature(sort: &[SortKey]) -> String {
    let keys: Vec<String> = sort
        .iter()
        .map(|k| format!("{}{}", if k.descending { "-" } else { "" }, k.code))
        .collect();
    keys.join(",")
}

/// `LIMIT`/`OFFSET` literals: both backends take a signed 64-bit count.
fn literal(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn plan(
    dialect: Dialect,
    projects: &ProjectFilter,
    request: &SearchRequest,
    restriction: Option<&Restriction>,
) -> Result<Plan, StoreError> {
    let scope = Scope::of(&request.resource_types);
    let mut compiler = Compiler::new(dialect, projects, restriction);
    let filter = compiler.filter(&scope, &request.filters)?;
    let columns = sort::columns(&request.sort, &scope, &mut compiler.params)?;
    let kinds: Vec<KeyKind> = columns.iter().map(|c| c.kind).collect();
    let signature = signature(&request.sort);
    let cursor = request
        .cursor
        .as_deref()
        .map(|token| cursor::decode(token, &signature, &kinds))
        .transpose()?;
    let mut render = Render::new(dialect, compiler.project());
    // The default order, with a driving set read in that order (see
    // `Render::ordered_driver`).
    let ordered = match columns.is_empty() {
        true => render.ordered_driver(&filter),
        false => None,
    };
    let (filter, _) = render.conjunction(&filter, "r", Mode::Drive);

    let total = match (request.summary, request.total) {
        (Summary::Count, Total::None) => Some(Total::Accurate),
        (_, Total::None) => None,
        (_, t) => Some(t),
    };
    let count = total.map(|t| match (t, dialect) {
        (Total::Estimate, Dialect::Postgres) => (
            format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM resources r WHERE {filter}"),
            Counting::Explain,
        ),
        _ => (
            format!("SELECT COUNT(*) FROM resources r WHERE {filter}"),
            Counting::Count,
        ),
    });

    let page = if request.summary == Summary::Count || request.count == 0 {
        None
    } else {
        let limit = literal(request.count.saturating_add(1));
        // A cursor already says where the page starts.
        let offset = if cursor.is_some() {
            0
        } else {
            literal(request.offset)
        };
        let paging = if offset > 0 {
            format!(" LIMIT {limit} OFFSET {offset}")
        } else {
            format!(" LIMIT {limit}")
        };
        let exprs: Vec<&str> = columns.iter().map(|c| c.expr.as_str()).collect();
        if let (Some(d), Dialect::Postgres) = (&ordered, dialect) {
            // The driving rows in `rid` order, once each, checked by fenced probes, then their
            // resource rows one lookup each (a fenced LATERAL, so never a merge join over the
            // whole table), until the page is full.
            let after = match &cursor {
                Some(c) => format!(" AND d.rid > {}", compiler.params.int(c.rid)),
                None => String::new(),
            };
            Some(format!(
                "SELECT r.* FROM (SELECT DISTINCT d.rid FROM {} d WHERE {} AND {}{after} ORDER BY d.rid) d CROSS JOIN LATERAL (SELECT r.rid, {RESOURCE_COLUMNS} FROM resources r WHERE r.rid = d.rid AND {} OFFSET 0) r ORDER BY d.rid{paging}",
                d.table, d.cond, d.early, d.late
            ))
        } else if let Some(d) = &ordered {
            // `GROUP BY d.rid`: one row per resource (it may have several matching index
            // rows), streamed, since `d` is read in `rid` order.
            let mut sql = format!(
                "SELECT r.rid, {RESOURCE_COLUMNS} FROM {} d{} CROSS JOIN resources r WHERE {} AND {} AND r.rid = d.rid AND {}",
                d.table, d.joins, d.cond, d.early, d.late
            );
            if let Some(c) = &cursor {
                sql.push_str(&format!(" AND d.rid > {}", compiler.params.int(c.rid)));
            }
            sql.push_str(&format!(" GROUP BY d.rid ORDER BY d.rid{paging}"));
            Some(sql)
        } else if columns.iter().any(|c| c.nullable) {
            // Subquery keys are computed once per row, named, and compared by name; plain
            // columns (below) are compared directly, so that an index on them serves the order
            // and the cursor.
            let named: Vec<String> = (0..columns.len()).map(|i| format!("x.s{i}")).collect();
            let selected: Vec<String> = exprs
                .iter()
                .enumerate()
                .map(|(i, e)| format!(", {e} AS s{i}"))
                .collect();
            let mut sql = format!(
                "SELECT x.* FROM (SELECT r.rid, {RESOURCE_COLUMNS}{} FROM resources r WHERE {filter}) x",
                selected.concat()
            );
            if let Some(c) = &cursor {
                let after = sort::after(&columns, &named, "x.rid", c, &mut compiler.params);
                sql.push_str(&format!(" WHERE {after}"));
            }
            sql.push_str(&format!(
                " ORDER BY {}{paging}",
                sort::order_by(&columns, &named, "x.rid")
            ));
            Some(sql)
        } else {
            let named: Vec<String> = exprs.iter().map(|e| (*e).to_owned()).collect();
            let selected: Vec<String> = exprs.iter().map(|e| format!(", {e}")).collect();
            let mut sql = format!(
                "SELECT r.rid, {RESOURCE_COLUMNS}{} FROM resources r WHERE {filter}",
                selected.concat()
            );
            if let Some(c) = &cursor {
                let after = sort::after(&columns, &named, "r.rid", c, &mut compiler.params);
                sql.push_str(&format!(" AND {after}"));
            }
            sql.push_str(&format!(
                " ORDER BY {}{paging}",
                sort::order_by(&columns, &named, "r.rid")
            ));
            Some(sql)
        }
    };
    let params = compiler.params.values;
    let prepared = ordered.is_some() && dialect == Dialect::Postgres;
    Ok(Plan {
        page: page.map(|sql| Statement {
            sql,
            params: params.clone(),
            prepared,
        }),
        count: count.map(|(sql, counting)| {
            (
                Statement {
                    sql,
                    params: params.clone(),
                    prepared: false,
                },
                counting,
            )
        }),
        kinds,
        page_size: request.count,
        signature,
    })
}

/// The answer of a search over projects that have never stored anything: no matches (the
/// request is still compiled, so that a bad cursor fails the same way everywhere).
pub(crate) fn nothing(
    dialect: Dialect,
    request: &SearchRequest,
    restriction: Option<&Restriction>,
) -> Result<SearchResult, StoreError> {
    let plan = plan(dialect, &ProjectFilter::one(0), request, restriction)?;
    Ok(SearchResult {
        matches: Vec::new(),
        included: Vec::new(),
        total: plan.count.map(|_| 0),
        next_cursor: None,
    })
}

/// `SELECT r.id` of every matching row, in `rid` order.
pub(crate) fn matching_ids(
    dialect: Dialect,
    project_key: i64,
    resource_type: &str,
    clauses: &[Clause],
    restriction: Option<&Restriction>,
) -> Result<Statement, StoreError> {
    let mut compiler = Compiler::new(dialect, &ProjectFilter::one(project_key), restriction);
    let filter = compiler.filter(&Scope::One(resource_type.to_owned()), clauses)?;
    let mut render = Render::new(dialect, compiler.project());
    let (filter, _) = render.conjunction(&filter, "r", Mode::Drive);
    Ok(Statement {
        sql: format!("SELECT r.id FROM resources r WHERE {filter} ORDER BY r.rid"),
        params: compiler.params.values,
        prepared: false,
    })
}

/// The target of a conditional write: `rid, RESOURCE_COLUMNS` of at most two matches (one is
/// the answer, two say "several"), locked on PostgreSQL.
pub(crate) fn conditional(
    dialect: Dialect,
    project_key: i64,
    resource_type: &str,
    clauses: &[Clause],
    restriction: Option<&Restriction>,
) -> Result<Statement, StoreError> {
    let mut compiler = Compiler::new(dialect, &ProjectFilter::one(project_key), restriction);
    let filter = compiler.filter(&Scope::One(resource_type.to_owned()), clauses)?;
    let mut render = Render::new(dialect, compiler.project());
    let (filter, _) = render.conjunction(&filter, "r", Mode::Drive);
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE OF r",
        Dialect::Sqlite => "",
    };
    Ok(Statement {
        sql: format!(
            "SELECT r.rid, {RESOURCE_COLUMNS} FROM resources r WHERE {filter} ORDER BY r.rid LIMIT 2{lock}"
        ),
        params: compiler.params.values,
        prepared: false,
    })
}
