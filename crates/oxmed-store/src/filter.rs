//! A small filter language over the index tables, enough for conditional interactions
//! (`If-None-Exist`, conditional update and delete) and simple searches. The search engine
//! compiles the full FHIR search language to SQL of the same shape.

use crate::schema::Dialect;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every live resource.
    All,
    /// `_id`: any of these ids.
    Ids(Vec<String>),
    /// A token parameter. `system`: `None` matches any system, `Some("")` only values without one.
    Token {
        code: String,
        system: Option<String>,
        value: Option<String>,
    },
    /// A string parameter: the normalized value starts with `prefix` (already normalized).
    StringPrefix {
        code: String,
        prefix: String,
    },
    /// A reference parameter, by the reference as written (`Patient/123`).
    Reference {
        code: String,
        reference: String,
    },
    Uri {
        code: String,
        value: String,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
}

/// Appends a SQL boolean expression for `filter` over the resource row alias `r`, pushing its
/// parameters to `params` (numbered after those already there). Parameters 1 and 2 are the project
/// key and the resource type.
pub fn compile(filter: &Filter, dialect: Dialect, sql: &mut String, params: &mut Vec<SqlValue>) {
    let (pk, rt) = (dialect.param(1), dialect.param(2));
    let push = |params: &mut Vec<SqlValue>, v: &str| {
        params.push(SqlValue::Text(v.to_owned()));
        dialect.param(params.len())
    };
    match filter {
        Filter::All => sql.push_str("1=1"),
        Filter::Ids(ids) => {
            if ids.is_empty() {
                sql.push_str("1=0");
                return;
            }
            sql.push_str("r.id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let p = push(params, id);
                sql.push_str(&p);
            }
            sql.push(')');
        }
        Filter::Token {
            code,
            system,
            value,
        } => {
            let c = push(params, code);
            sql.push_str(&format!(
                "r.rid IN (SELECT t.rid FROM token_idx t WHERE t.project = {pk} AND t.resource_type = {rt} AND t.code = {c}"
            ));
            if let Some(v) = value {
                let p = push(params, v);
                sql.push_str(&format!(" AND t.value = {p}"));
            }
            if let Some(s) = system {
                // An absent system is stored as the empty string.
                let p = push(params, s);
                sql.push_str(&format!(" AND t.system = {p}"));
            }
            sql.push(')');
        }
        Filter::StringPrefix { code, prefix } => {
            let c = push(params, code);
            let lo = push(params, prefix);
            // A range on the index instead of LIKE: LIKE does not use the index on PostgreSQL
            // without a special operator class, and its escaping differs between backends.
            let hi = push(params, &format!("{prefix}\u{10FFFF}"));
            sql.push_str(&format!(
                "r.rid IN (SELECT s.rid FROM string_idx s WHERE s.project = {pk} AND s.resource_type = {rt} AND s.code = {c} AND s.normalized >= {lo} AND s.normalized < {hi})"
            ));
        }
        Filter::Reference { code, reference } => {
            let c = push(params, code);
            let v = push(params, reference);
            sql.push_str(&format!(
                "r.rid IN (SELECT x.rid FROM reference_idx x WHERE x.project = {pk} AND x.resource_type = {rt} AND x.code = {c} AND x.reference = {v})"
            ));
        }
        Filter::Uri { code, value } => {
            let c = push(params, code);
            let v = push(params, value);
            sql.push_str(&format!(
                "r.rid IN (SELECT u.rid FROM uri_idx u WHERE u.project = {pk} AND u.resource_type = {rt} AND u.code = {c} AND u.value = {v})"
            ));
        }
        Filter::And(parts) | Filter::Or(parts) => {
            if parts.is_empty() {
                sql.push_str(if matches!(filter, Filter::And(_)) {
                    "1=1"
                } else {
                    "1=0"
                });
                return;
            }
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push('(');
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    sql.push_str(joiner);
                }
                compile(part, dialect, sql, params);
            }
            sql.push(')');
        }
    }
}

/// The full statement selecting live resources of a type in a project that match `filter`.
pub struct Select<'a> {
    /// The project's integer key (`project_keys`).
    pub project: i64,
    pub resource_type: &'a str,
    pub filter: &'a Filter,
    pub limit: usize,
    pub offset: usize,
    /// Lock the matched rows (PostgreSQL) so a conditional write decides on what it will change.
    pub for_update: bool,
}

pub fn select_matching(select: &Select<'_>, dialect: Dialect) -> (String, Vec<SqlValue>) {
    let Select {
        project,
        resource_type,
        filter,
        limit,
        offset,
        for_update,
    } = *select;
    let mut params = vec![
        SqlValue::Int(project),
        SqlValue::Text(resource_type.to_owned()),
    ];
    let mut sql = format!(
        "SELECT r.rid, {} FROM resources r WHERE r.project_key = {} AND r.resource_type = {} AND r.deleted = FALSE AND ",
        crate::schema::RESOURCE_COLUMNS,
        dialect.param(1),
        dialect.param(2)
    );
    compile(filter, dialect, &mut sql, &mut params);
    sql.push_str(&format!(
        " ORDER BY r.last_updated DESC, r.id LIMIT {limit} OFFSET {offset}"
    ));
    if for_update && dialect == Dialect::Postgres {
        sql.push_str(" FOR UPDATE");
    }
    (sql, params)
}
