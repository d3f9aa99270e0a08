//! Index entries flattened into rows of the index tables (`schema::INDEX_TABLES`), in each
//! table's column order.

use oxmed_fhir::index_value::{IndexEntry, IndexValue};

#[derive(Debug, Clone, PartialEq)]
pub enum Col {
    Text(String),
    Int(i64),
    Real(f64),
}

/// The rows of one index table: `table` is the position in `INDEX_TABLES`; each row holds the
/// parameter code and then the table's columns in order.
pub struct TableRows {
    pub table: usize,
    pub rows: Vec<(String, Vec<Col>)>,
}

/// Parameters answered from the `resources` table itself, not from index rows.
const NOT_INDEXED: &[&str] = &["_id", "_lastUpdated"];

fn text(s: &Option<String>) -> Col {
    Col::Text(s.clone().unwrap_or_default())
}

/// Groups entries by table, keeping only distinct rows: the same value reached by two FHIRPath
/// branches is indexed once.
pub fn rows(entries: &[IndexEntry]) -> Vec<TableRows> {
    let mut tables: Vec<TableRows> = (0..crate::schema::INDEX_TABLES.len())
        .map(|table| TableRows {
            table,
            rows: Vec::new(),
        })
        .collect();
    for e in entries {
        if NOT_INDEXED.contains(&e.code.as_str()) {
            continue;
        }
        let (table, cols) = match &e.value {
            IndexValue::Token {
                system,
                code,
                text: t,
                type_system,
                type_code,
            } => (
                0,
                vec![
                    text(code),
                    text(system),
                    text(t),
                    text(type_system),
                    text(type_code),
                ],
            ),
            IndexValue::String { normalized, exact } => (
                1,
                vec![Col::Text(normalized.clone()), Col::Text(exact.clone())],
            ),
            IndexValue::Reference {
                reference,
                target_type,
                target_id,
            } => (
                2,
                vec![
                    Col::Text(reference.clone()),
                    text(target_type),
                    text(target_id),
                ],
            ),
            IndexValue::Date { start, end } => (3, vec![Col::Int(*start), Col::Int(*end)]),
            IndexValue::Number { value } => (4, vec![Col::Real(*value)]),
            IndexValue::Quantity {
                value,
                system,
                code,
                unit,
            } => (
                5,
                vec![text(code), text(system), Col::Real(*value), text(unit)],
            ),
            IndexValue::Uri { value } => (6, vec![Col::Text(value.clone())]),
            IndexValue::Composite { components } => (7, vec![Col::Text(composite_key(components))]),
        };
        let rows = &mut tables[table].rows;
        if !rows.iter().any(|(c, v)| c == &e.code && v == &cols) {
            rows.push((e.code.clone(), cols));
        }
    }
    tables.retain(|t| !t.rows.is_empty());
    tables
}

/// A composite value as one comparable text: its components' values joined by `$`, the FHIR
/// search syntax for composite values (`http://loinc.org|1234$gt5`), so that exact composite
/// matches are one indexed comparison.
fn composite_key(components: &[IndexValue]) -> String {
    let parts: Vec<String> = components
        .iter()
        .map(|c| match c {
            IndexValue::Token { system, code, .. } => format!(
                "{}|{}",
                system.as_deref().unwrap_or(""),
                code.as_deref().unwrap_or("")
            ),
            IndexValue::String { normalized, .. } => normalized.clone(),
            IndexValue::Reference { reference, .. } => reference.clone(),
            IndexValue::Date { start, end } => format!("{start}..{end}"),
            IndexValue::Number { value } => value.to_string(),
            IndexValue::Quantity {
                value,
                system,
                code,
                ..
            } => format!(
                "{value}|{}|{}",
                system.as_deref().unwrap_or(""),
                code.as_deref().unwrap_or("")
            ),
            IndexValue::Uri { value } => value.clone(),
            IndexValue::Composite { .. } => String::new(),
        })
        .collect();
    parts.join("$")
}
