//! `_sort` as ORDER BY, and the keyset condition that continues after a cursor.
//!
//! A parameter's sort value is one per resource: the smallest of its values for an ascending
//! key, the largest for a descending one (for a date, the earliest start or the latest end);
//! a resource without a value sorts last either way. `rid` always ends the order, so that it
//! is total and a cursor names one position.

use oxmed_fhir::search::SortKey;
use oxmed_fhir::search_parameter::SearchParamType;

use super::compile::{Params, Scope};
use super::cursor::{Cursor, KeyKind, KeyValue};
use crate::StoreError;
use crate::schema::{self, Dialect, INDEX_TABLES};

/// One ORDER BY key, as an expression on the row `r`.
pub(crate) struct SortColumn {
    pub expr: String,
    pub descending: bool,
    pub kind: KeyKind,
    /// Whether some rows have no value (only parameter keys; `_id` and `_lastUpdated` always
    /// have one).
    pub nullable: bool,
}

pub(crate) fn columns(
    keys: &[SortKey],
    scope: &Scope,
    params: &mut Params,
) -> Result<Vec<SortColumn>, StoreError> {
    keys.iter().map(|k| column(k, scope, params)).collect()
}

fn column(key: &SortKey, scope: &Scope, params: &mut Params) -> Result<SortColumn, StoreError> {
    let descending = key.descending;
    let fixed = |expr: &str, kind| SortColumn {
        expr: expr.to_owned(),
        descending,
        kind,
        nullable: false,
    };
    match key.code.as_str() {
        "_id" => return Ok(fixed("r.id", KeyKind::Text)),
        "_lastUpdated" => return Ok(fixed("r.last_updated", KeyKind::Int)),
        _ => {}
    }
    let Some(param) = scope.param(&key.code) else {
        return Err(StoreError::InvalidSearch(format!(
            "cannot sort by {}: not a search parameter of the searched types",
            key.code
        )));
    };
    // Empty text is how an absent value is stored (a token with a display but no code).
    let (table, column, kind) = match param.kind {
        SearchParamType::String => (schema::STRING, "NULLIF({i}.normalized, '')", KeyKind::Text),
        SearchParamType::Token => (schema::TOKEN, "NULLIF({i}.value, '')", KeyKind::Text),
        SearchParamType::Reference => (schema::REFERENCE, "{i}.reference", KeyKind::Text),
        SearchParamType::Uri => (schema::URI, "{i}.value", KeyKind::Text),
        SearchParamType::Number => (schema::NUMBER, "{i}.value", KeyKind::Real),
        SearchParamType::Quantity => (schema::QUANTITY, "{i}.value", KeyKind::Real),
        SearchParamType::Date if descending => (schema::DATE, "{i}.end_us", KeyKind::Int),
        SearchParamType::Date => (schema::DATE, "{i}.start_us", KeyKind::Int),
        SearchParamType::Composite | SearchParamType::Special => {
            return Err(StoreError::InvalidSearch(format!(
                "cannot sort by {}, a {} parameter",
                key.code,
                param.kind.as_str()
            )));
        }
    };
    let table = INDEX_TABLES[table].name;
    let aggregate = if descending { "MAX" } else { "MIN" };
    // The resource's own rows, found by `rid`: one short index walk per row sorted.
    let hint = match params.dialect() {
        Dialect::Sqlite => format!(" INDEXED BY {table}_rid"),
        Dialect::Postgres => String::new(),
    };
    let code = params.text(&key.code);
    let value = column.replace("{i}", "si");
    Ok(SortColumn {
        expr: format!(
            "(SELECT {aggregate}({value}) FROM {table} si{hint} WHERE si.rid = r.rid AND si.code = {code})"
        ),
        descending,
        kind,
        nullable: true,
    })
}

/// The direction of the final `rid` key: that of the last sort key, so that a one-key sort on
/// an indexed column reads its index in one direction.
pub(crate) fn rid_descending(columns: &[SortColumn]) -> bool {
    columns.last().is_some_and(|c| c.descending)
}

/// `ORDER BY` keys, the sort columns being named `names` (their expressions or aliases).
pub(crate) fn order_by(columns: &[SortColumn], names: &[String], rid: &str) -> String {
    let mut parts: Vec<String> = columns
        .iter()
        .zip(names)
        .map(|(c, name)| {
            let dir = if c.descending { "DESC" } else { "ASC" };
            if c.nullable {
                format!("{name} {dir} NULLS LAST")
            } else {
                format!("{name} {dir}")
            }
        })
        .collect();
    let dir = if rid_descending(columns) {
        "DESC"
    } else {
        "ASC"
    };
    parts.push(format!("{rid} {dir}"));
    parts.join(", ")
}

/// The rows strictly after `cursor` in the order of `columns` then `rid`.
pub(crate) fn after(
    columns: &[SortColumn],
    names: &[String],
    rid: &str,
    cursor: &Cursor,
    params: &mut Params,
) -> String {
    let rid_op = if rid_descending(columns) { "<" } else { ">" };
    let rid_value = params.int(cursor.rid);
    // One row comparison when it means the same: the index range it reads is then exact.
    let simple = columns.iter().all(|c| !c.nullable)
        && columns
            .iter()
            .all(|c| c.descending == rid_descending(columns));
    if simple {
        let mut left: Vec<&str> = names.iter().map(String::as_str).collect();
        left.push(rid);
        let mut right: Vec<String> = cursor.values.iter().map(|v| bind(v, params)).collect();
        right.push(rid_value);
        if left.len() == 1 {
            return format!("{rid} {rid_op} {}", right[0]);
        }
        return format!("({}) {rid_op} ({})", left.join(", "), right.join(", "));
    }
    let mut sql = format!("{rid} {rid_op} {rid_value}");
    for ((column, name), value) in columns.iter().zip(names).zip(&cursor.values).rev() {
        let op = if column.descending { "<" } else { ">" };
        sql = match value {
            // Only rows without a value come after one without a value.
            KeyValue::Null => format!("({name} IS NULL AND {sql})"),
            v => {
                let p = bind(v, params);
                let nulls_after = if column.nullable {
                    format!(" OR {name} IS NULL")
                } else {
                    String::new()
                };
                format!("({name} {op} {p}{nulls_after} OR ({name} = {p} AND {sql}))")
            }
        };
    }
    sql
}

fn bind(value: &KeyValue, params: &mut Params) -> String {
    match value {
        KeyValue::Null => "NULL".into(),
        KeyValue::Text(s) => params.text(s),
        KeyValue::Int(i) => params.int(*i),
        KeyValue::Real(f) => params.real(*f),
    }
}
