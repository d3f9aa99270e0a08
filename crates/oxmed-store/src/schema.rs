//! One logical schema for both backends. Migrations are numbered and append-only; each runs in a
//! transaction together with the bump of `schema_version`.
//!
//! Index rows are small on purpose: a resource is referred to by its integer `rid` and a project
//! by its integer key from `project_keys`, not by their UUID texts. Every index row is an insert
//! at a random place of its lookup B-tree, so the bytes of a row decide how many pages a group of
//! writes dirties (and writes again to the WAL); with UUIDs in every row a Patient cost 10 KiB of
//! index, with integers about a third of that.

/// Kind of an index column.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ColType {
    Text,
    Int,
    Real,
}

/// An index table: one per search parameter type. Every row is
/// `(project, resource_type, code, <columns>)`; `key` columns (in order) come right after `code`
/// in the lookup index, then `rid`, then the other columns. Text columns are never NULL: an absent
/// value is the empty string, which no FHIR value can be.
pub struct IndexTable {
    pub name: &'static str,
    /// `(column, type)` in the order of `IndexValue`'s fields as `index_rows` emits them.
    pub columns: &'static [(&'static str, ColType)],
    /// How many of `columns`, from the start, lead the lookup index.
    pub key: usize,
}

pub const INDEX_TABLES: &[IndexTable] = &[
    IndexTable {
        name: "token_idx",
        columns: &[
            ("value", ColType::Text),
            ("system", ColType::Text),
            ("text", ColType::Text),
            ("type_system", ColType::Text),
            ("type_code", ColType::Text),
        ],
        key: 2,
    },
    IndexTable {
        name: "string_idx",
        columns: &[("normalized", ColType::Text), ("exact", ColType::Text)],
        key: 1,
    },
    // The target id leads: a search by `Type/id` or by a bare id, a chain and a revinclude all
    // know it, while a reference as written (an absolute URL, a canonical) is rare.
    IndexTable {
        name: "reference_idx",
        columns: &[
            ("target_id", ColType::Text),
            ("target_type", ColType::Text),
            ("reference", ColType::Text),
        ],
        key: 2,
    },
    IndexTable {
        name: "date_idx",
        columns: &[("start_us", ColType::Int), ("end_us", ColType::Int)],
        key: 2,
    },
    IndexTable {
        name: "number_idx",
        columns: &[("value", ColType::Real)],
        key: 1,
    },
    IndexTable {
        name: "quantity_idx",
        columns: &[
            ("unit_code", ColType::Text),
            ("system", ColType::Text),
            ("value", ColType::Real),
            ("unit", ColType::Text),
        ],
        key: 3,
    },
    IndexTable {
        name: "uri_idx",
        columns: &[("value", ColType::Text)],
        key: 1,
    },
    // One row per composite entry, each component in a slot of its own typed columns so that it
    // is compared with its own type's semantics, all from the same entry. See `COMPOSITE_SLOTS`.
    IndexTable {
        name: "composite_idx",
        columns: &[
            ("c1_code", ColType::Text),
            ("c1_system", ColType::Text),
            ("c1_text", ColType::Text),
            ("c1_num", ColType::Real),
            ("c1_start", ColType::Int),
            ("c1_end", ColType::Int),
            ("c2_code", ColType::Text),
            ("c2_system", ColType::Text),
            ("c2_text", ColType::Text),
            ("c2_num", ColType::Real),
            ("c2_start", ColType::Int),
            ("c2_end", ColType::Int),
            ("c3_code", ColType::Text),
            ("c3_system", ColType::Text),
            ("c3_text", ColType::Text),
            ("c3_num", ColType::Real),
            ("c3_start", ColType::Int),
            ("c3_end", ColType::Int),
        ],
        key: 2,
    },
];

/// Components a composite row holds (R4 composites have two or three). Each slot `cN_` has the
/// same columns, filled by component type (unused ones are `''` / 0):
///
/// | type | `code` | `system` | `text` | `num` | `start`, `end` |
/// | --- | --- | --- | --- | --- | --- |
/// | token | code | system | display text, normalized | | |
/// | string | normalized | as written | | | |
/// | reference | target id | target type | as written | | |
/// | quantity | unit code | system | unit | value | |
/// | number | | | | value | |
/// | date | | | | | range |
/// | uri | value | | | | |
///
/// A slot's type is the component's type in the parameter definition, the same for every row of
/// a code, so the compiler knows it from the definition.
pub const COMPOSITE_SLOTS: usize = 3;

/// Positions in `INDEX_TABLES`.
pub const TOKEN: usize = 0;
pub const STRING: usize = 1;
pub const REFERENCE: usize = 2;
pub const DATE: usize = 3;
pub const NUMBER: usize = 4;
pub const QUANTITY: usize = 5;
pub const URI: usize = 6;
pub const COMPOSITE: usize = 7;

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

    /// `col` is one of the keys in the `SqlValue::IntList` bound at placeholder `p`.
    pub fn in_list(self, col: &str, p: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{col} IN (SELECT value FROM json_each({p}))"),
            Dialect::Postgres => format!("{col} = ANY({p})"),
        }
    }
}

/// The columns of `resources` and `resource_history` read into a `StoredResource`, in its field
/// order, qualified by the alias `r`.
pub const RESOURCE_COLUMNS: &str =
    "r.resource_type, r.id, r.project, r.version_id, r.last_updated, r.deleted, r.content";

/// The migrations in order.
pub fn migrations(dialect: Dialect) -> Vec<String> {
    // Text compares byte-wise on both backends (SQLite's BINARY, PostgreSQL's "C"): string
    // prefixes are searched as ranges, which only mean "starts with" in code point order, and
    // `_sort` and keyset paging must order the same everywhere.
    let (identity, without_rowid, text) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY", " WITHOUT ROWID", "TEXT"),
        Dialect::Postgres => (
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "",
            "TEXT COLLATE \"C\"",
        ),
    };
    // SQLite ends every index with the rowid (`rid`) already; PostgreSQL needs it spelled out
    // for `ORDER BY ..., rid` and keyset paging to read the index in order.
    let rid = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => ", rid",
    };
    let mut first = format!(
        "CREATE TABLE project_keys (
            key {identity},
            id TEXT NOT NULL UNIQUE
        );
        CREATE TABLE resources (
            rid {identity},
            resource_type {text} NOT NULL,
            id {text} NOT NULL,
            project TEXT NOT NULL,
            project_key BIGINT NOT NULL,
            version_id TEXT NOT NULL,
            last_updated BIGINT NOT NULL,
            deleted BOOLEAN NOT NULL,
            content TEXT NOT NULL,
            UNIQUE (resource_type, id)
        );
        CREATE INDEX resources_project_type_updated ON resources (project_key, resource_type, last_updated{rid});
        CREATE INDEX resources_project_type ON resources (project_key, resource_type{rid});
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
        "
    );
    for t in INDEX_TABLES {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|(c, ty)| {
                let sql = match ty {
                    ColType::Text => text,
                    ColType::Int => "BIGINT",
                    ColType::Real => "DOUBLE PRECISION",
                };
                format!("{c} {sql} NOT NULL")
            })
            .collect();
        let key: Vec<&str> = t.columns[..t.key].iter().map(|(c, _)| *c).collect();
        let rest: Vec<&str> = t.columns[t.key..].iter().map(|(c, _)| *c).collect();
        let mut lookup = vec!["project", "resource_type", "code"];
        lookup.extend(&key);
        lookup.push("rid");
        // PostgreSQL's index need not repeat the non-key columns: the heap has them.
        let pg_lookup = lookup.join(", ");
        lookup.extend(&rest);
        let lookup = lookup.join(", ");
        let name = t.name;
        match dialect {
            // The lookup order is the table itself: one B-tree instead of a table and an index.
            Dialect::Sqlite => first.push_str(&format!(
                "CREATE TABLE {name} (
                    project BIGINT NOT NULL,
                    resource_type TEXT NOT NULL,
                    code TEXT NOT NULL,
                    rid BIGINT NOT NULL,
                    {},
                    PRIMARY KEY ({lookup})
                ){without_rowid};
                CREATE INDEX {name}_rid ON {name} (rid);
                ",
                cols.join(", ")
            )),
            Dialect::Postgres => first.push_str(&format!(
                "CREATE TABLE {name} (
                    project BIGINT NOT NULL,
                    resource_type TEXT NOT NULL,
                    code TEXT NOT NULL,
                    rid BIGINT NOT NULL,
                    {}
                );
                CREATE INDEX {name}_lookup ON {name} ({pg_lookup});
                CREATE INDEX {name}_rid ON {name} (rid);
                ",
                cols.join(", ")
            )),
        }
    }
    // 2: keys no two live resources may share (`NewVersion::unique`), filled for the Users
    // already stored (the repository's key of a User's email: see oxmed-repo `unique_keys`).
    let second = match dialect {
        Dialect::Sqlite => "CREATE TABLE unique_keys (key TEXT PRIMARY KEY, rid BIGINT NOT NULL) WITHOUT ROWID;
            CREATE INDEX unique_keys_rid ON unique_keys (rid);
            INSERT OR IGNORE INTO unique_keys (key, rid)
                SELECT 'User.email|' || COALESCE(json_extract(content, '$.project.reference'), '') || '|' || lower(trim(json_extract(content, '$.email'))), rid
                FROM resources WHERE resource_type = 'User' AND NOT deleted AND json_type(content, '$.email') = 'text';"
            .to_owned(),
        Dialect::Postgres => "CREATE TABLE unique_keys (key TEXT COLLATE \"C\" PRIMARY KEY, rid BIGINT NOT NULL);
            CREATE INDEX unique_keys_rid ON unique_keys (rid);
            INSERT INTO unique_keys (key, rid)
                SELECT 'User.email|' || COALESCE(content::jsonb -> 'project' ->> 'reference', '') || '|' || lower(trim(content::jsonb ->> 'email') COLLATE \"C\"), rid
                FROM resources WHERE resource_type = 'User' AND NOT deleted AND jsonb_typeof(content::jsonb -> 'email') = 'string'
                ON CONFLICT DO NOTHING;"
            .to_owned(),
    };
    // 3: the compartments of each live resource (see `compartments`); NULL until it is written
    // again, which only makes a policy read of it decide on its content.
    let third = "ALTER TABLE resources ADD COLUMN compartments TEXT;".to_owned();
    // 4: each reference row carries its resource's token signature (see `token_signature`),
    // NULL (passes every filter) until the resource is written again. On PostgreSQL the lookup
    // index includes it, so that the filter runs on the index rows of an index-only scan; on
    // SQLite the table is its lookup index.
    let fourth = match dialect {
        Dialect::Sqlite => "ALTER TABLE reference_idx ADD COLUMN token_signature BIGINT;".to_owned(),
        Dialect::Postgres => "ALTER TABLE reference_idx ADD COLUMN token_signature BIGINT;
            DROP INDEX reference_idx_lookup;
            CREATE INDEX reference_idx_lookup ON reference_idx (project, resource_type, code, target_id, target_type, rid) INCLUDE (token_signature);"
            .to_owned(),
    };
    vec![first, second, third, fourth]
}
