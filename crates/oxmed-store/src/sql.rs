//! Values bound to SQL statements, shared by both backends.

#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Real(f64),
    /// A list of row keys: a `bigint[]` on PostgreSQL, a JSON array read with `json_each` on
    /// SQLite (see `Dialect::in_list`).
    IntList(Vec<i64>),
}
