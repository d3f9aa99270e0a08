//! One logical schema for both backends. Migrations are numbered and append-only; each runs in a
//! transaction together with the bump of `schema_version`.

/// The index tables, one per search parameter type, with the value columns each carries. The
/// common columns (resource_type, id, project, code) come first in every table.
pub const INDEX_TABLES: &[(&str, &[&str])] = &[
    (
        "token_idx",
        &["system", "value", "text", "type_system", "type_code"],
    ),
    ("string_idx", &["normalized", "exact"]),
    ("reference_idx", &["reference", "target_type", "target_id"]),
    ("date_idx", &["start_us", "end_us"]),
    ("number_idx", &["value"]),
    ("quantity_idx", &["value", "system", "unit_code", "unit"]),
    ("uri_idx", &["value"]),
    ("composite_idx", &["components"]),
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A positional parameter placeholder, 1-based.
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }
}

/// The migrations in order. Column types are written once and mapped per dialect: `BIGINT`,
/// `DOUBLE PRECISION` and `BOOLEAN` are understood by both (SQLite by type affinity).
pub fn migrations(dialect: Dialect) -> Vec<String> {
    let mut first = String::from(
        "CREATE TABLE resources (
            resource_type TEXT NOT NULL,
            id TEXT NOT NULL,
            project TEXT NOT NULL,
            version_id TEXT NOT NULL,
            last_updated BIGINT NOT NULL,
            deleted BOOLEAN NOT NULL,
            content TEXT NOT NULL,
            PRIMARY KEY (resource_type, id)
        );
        CREATE INDEX resources_project_type_updated ON resources (project, resource_type, last_updated);
        CREATE TABLE resource_history (
            resource_type TEXT NOT NULL,
            id TEXT NOT NULL,
            version_id TEXT NOT NULL,
            project TEXT NOT NULL,
            last_updated BIGINT NOT NULL,
            deleted BOOLEAN NOT NULL,
            content TEXT NOT NULL,
            PRIMARY KEY (resource_type, id, version_id)
        );
        CREATE INDEX history_instance ON resource_history (resource_type, id, last_updated);
        CREATE INDEX history_type ON resource_history (project, resource_type, last_updated);
        CREATE INDEX history_system ON resource_history (project, last_updated);
        ",
    );
    for (table, columns) in INDEX_TABLES {
        let cols: Vec<String> = columns
            .iter()
            .map(|c| {
                let ty = match *c {
                    "start_us" | "end_us" => "BIGINT",
                    "value" if *table == "number_idx" || *table == "quantity_idx" => {
                        "DOUBLE PRECISION"
                    }
                    _ => "TEXT",
                };
                format!("{c} {ty}")
            })
            .collect();
        first.push_str(&format!(
            "CREATE TABLE {table} (
                resource_type TEXT NOT NULL,
                id TEXT NOT NULL,
                project TEXT NOT NULL,
                code TEXT NOT NULL,
                {}
            );
            CREATE INDEX {table}_resource ON {table} (resource_type, id);
            CREATE INDEX {table}_lookup ON {table} (project, resource_type, code, {});
            ",
            cols.join(", "),
            lookup_column(table)
        ));
    }
    let _ = dialect;
    vec![first]
}

/// The column a search on each index table is most selective on.
fn lookup_column(table: &str) -> &'static str {
    match table {
        "token_idx" => "value",
        "string_idx" => "normalized",
        "reference_idx" => "reference",
        "date_idx" => "start_us",
        "composite_idx" => "components",
        _ => "value",
    }
}

/// The columns of `resources` and `resource_history` read into a `StoredResource`, in its field
/// order, qualified by the alias `r`.
pub const RESOURCE_COLUMNS: &str =
    "r.resource_type, r.id, r.project, r.version_id, r.last_updated, r.deleted, r.content";
