//! Index entries flattened into rows of the index tables (`schema::INDEX_TABLES`), in each
//! table's column order.

use oxmed_fhir::index::normalize_string;
use oxmed_fhir::index_value::{IndexEntry, IndexValue};

use crate::schema;

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
                schema::TOKEN,
                vec![
                    text(code),
                    text(system),
                    normalized(t),
                    text(type_system),
                    text(type_code),
                ],
            ),
            IndexValue::String { normalized, exact } => (
                schema::STRING,
                vec![Col::Text(normalized.clone()), Col::Text(exact.clone())],
            ),
            IndexValue::Reference {
                reference,
                target_type,
                target_id,
            } => (
                schema::REFERENCE,
                vec![
                    text(target_id),
                    text(target_type),
                    Col::Text(reference.clone()),
                ],
            ),
            IndexValue::Date { start, end } => {
                (schema::DATE, vec![Col::Int(*start), Col::Int(*end)])
            }
            IndexValue::Number { value } => (schema::NUMBER, vec![Col::Real(*value)]),
            IndexValue::Quantity {
                value,
                system,
                code,
                unit,
            } => (
                schema::QUANTITY,
                vec![text(code), text(system), Col::Real(*value), text(unit)],
            ),
            IndexValue::Uri { value } => (schema::URI, vec![Col::Text(value.clone())]),
            IndexValue::Composite { components } => {
                // A composite with more components than the row has slots cannot be stored
                // whole; storing a part of it would let a search match what it does not say.
                if components.len() > schema::COMPOSITE_SLOTS {
                    continue;
                }
                let mut cols = Vec::with_capacity(6 * schema::COMPOSITE_SLOTS);
                for slot in 0..schema::COMPOSITE_SLOTS {
                    cols.extend(composite_slot(components.get(slot)));
                }
                (schema::COMPOSITE, cols)
            }
        };
        let rows = &mut tables[table].rows;
        if !rows.iter().any(|(c, v)| c == &e.code && v == &cols) {
            rows.push((e.code.clone(), cols));
        }
    }
    tables.retain(|t| !t.rows.is_empty());
    tables
}

/// Display texts are kept normalized: `:text` is a case- and accent-insensitive prefix search,
/// which an index range can only answer on the normalized form.
fn normalized(s: &Option<String>) -> Col {
    Col::Text(s.as_deref().map(normalize_string).unwrap_or_default())
}

/// The columns `code, system, text, num, start, end` of one composite slot (see
/// `schema::COMPOSITE_SLOTS`).
fn composite_slot(component: Option<&IndexValue>) -> [Col; 6] {
    let empty = || Col::Text(String::new());
    let (code, system, txt, num, start, end) = match component {
        None | Some(IndexValue::Composite { .. }) => (empty(), empty(), empty(), 0.0, 0, 0),
        Some(IndexValue::Token {
            system,
            code,
            text: t,
            ..
        }) => (text(code), text(system), normalized(t), 0.0, 0, 0),
        Some(IndexValue::String { normalized, exact }) => (
            Col::Text(normalized.clone()),
            Col::Text(exact.clone()),
            empty(),
            0.0,
            0,
            0,
        ),
        Some(IndexValue::Reference {
            reference,
            target_type,
            target_id,
        }) => (
            text(target_id),
            text(target_type),
            Col::Text(reference.clone()),
            0.0,
            0,
            0,
        ),
        Some(IndexValue::Quantity {
            value,
            system,
            code,
            unit,
        }) => (text(code), text(system), text(unit), *value, 0, 0),
        Some(IndexValue::Number { value }) => (empty(), empty(), empty(), *value, 0, 0),
        Some(IndexValue::Date { start, end }) => (empty(), empty(), empty(), 0.0, *start, *end),
        Some(IndexValue::Uri { value }) => (Col::Text(value.clone()), empty(), empty(), 0.0, 0, 0),
    };
    [
        code,
        system,
        txt,
        Col::Real(num),
        Col::Int(start),
        Col::Int(end),
    ]
}
