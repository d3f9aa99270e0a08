//! The scale-out backend: PostgreSQL through a connection pool. Several oxmed processes may share
//! one database; every decision that must not race (If-Match, conditional writes) is taken under
//! a row lock or a transaction-scoped advisory lock.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use oxmed_fhir::search::{Clause, Restriction, SearchRequest};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

use crate::index_rows::{Col, rows};
use crate::op::{Decision, Found, Lookup, NewVersion, Target, TxState, next_timestamp};
use crate::project_key::ProjectKeys;
use crate::projects::{ProjectFilter, ProjectView};
use crate::schema::{self, ColType, Dialect, INDEX_TABLES, RESOURCE_COLUMNS, migrations};
use crate::search::include::Includes;
use crate::search::{Counting, KeyKind, KeyValue, PageRow, SearchResult, Statement};
use crate::sql::SqlValue;
use crate::{HistoryQuery, StoreError, StoredResource, WriteOp, WriteOutcome};
use std::sync::Arc;

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    keys: Arc<ProjectKeys>,
}

/// Connections per process; PostgreSQL's default limit of 100 leaves room for a few instances.
const POOL_SIZE: usize = 24;

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse()?;
        // `auto` (PostgreSQL's default), said outright: statements sent once (most searches)
        // are planned for their values; only the prepared statements of fixed-plan shapes
        // (`search::Statement::prepared`) run often enough to get a generic plan. A generic
        // plan of an ordinary search ignores how selective a code is and merge-joins every row
        // of it, which is why those are never prepared.
        config.options("-c plan_cache_mode=auto");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PgStore {
            pool,
            keys: Arc::new(ProjectKeys::default()),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Instances starting together must not run the same migration twice.
        tx.execute("SELECT pg_advisory_xact_lock(7355608)", &[])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .await?;
        let current: Option<i64> = tx
            .query_one("SELECT MAX(version) FROM schema_version", &[])
            .await?
            .get(0);
        for (i, sql) in migrations(Dialect::Postgres).iter().enumerate() {
            let version = i as i64 + 1;
            if version <= current.unwrap_or(0) {
                continue;
            }
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn read(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.resource_type = $1 AND r.id = $2"
            ))
            .await?;
        let row = client.query_opt(&stmt, &[&resource_type, &id]).await?;
        row.map(|r| to_resource(&r)).transpose()
    }

    /// [`PgStore::read`] and the live resource's `compartments` column (see
    /// [`crate::compartments`]).
    pub async fn read_with_compartments(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<crate::WithCompartments>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {RESOURCE_COLUMNS}, r.compartments FROM resources r WHERE r.resource_type = $1 AND r.id = $2"
            ))
            .await?;
        let row = client.query_opt(&stmt, &[&resource_type, &id]).await?;
        row.map(|r| Ok((to_resource(&r)?, r.try_get(7)?)))
            .transpose()
    }

    pub async fn read_version(
        &self,
        resource_type: &str,
        id: &str,
        version_id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {RESOURCE_COLUMNS} FROM resource_history r WHERE r.resource_type = $1 AND r.id = $2 AND r.version_id = $3"
            ))
            .await?;
        let row = client
            .query_opt(&stmt, &[&resource_type, &id, &version_id])
            .await?;
        row.map(|r| to_resource(&r)).transpose()
    }

    pub async fn history(&self, query: HistoryQuery) -> Result<Vec<StoredResource>, StoreError> {
        let client = self.pool.get().await?;
        let (sql, params) = query.to_sql(Dialect::Postgres);
        query_resources(&client, &sql, &params).await
    }

    /// The live resources of `project`'s view (see [`ProjectView`]) that match `request`.
    pub async fn search(
        &self,
        project: &str,
        view: &ProjectView,
        request: &SearchRequest,
        restriction: Option<&Restriction>,
    ) -> Result<SearchResult, StoreError> {
        let client = self.pool.get().await?;
        let Some(filter) = self.project_filter(&client, project, view).await? else {
            return crate::search::nothing(Dialect::Postgres, request, restriction);
        };
        let plan = crate::search::plan(Dialect::Postgres, &filter, request, restriction)?;
        let rows = match &plan.page {
            Some(page) => query_page(&client, page, &plan.kinds).await?,
            None => Vec::new(),
        };
        let client: &tokio_postgres::Client = &client;
        let total = match &plan.count {
            Some((count, counting)) => Some(count_rows(client, count, *counting).await?),
            None => None,
        };
        let (page, next_cursor) = plan.finish(rows);
        let mut includes = Includes::new(Dialect::Postgres, &filter, request, restriction, &page);
        let mut included = Vec::new();
        while let Some(statement) = includes.next()? {
            let rows = query_typed(Conn::Client(client), &statement).await?;
            let rows = rows.iter().map(with_rid).collect::<Result<Vec<_>, _>>()?;
            included.extend(includes.fresh(rows));
        }
        Ok(SearchResult {
            matches: page.into_iter().map(|(_, r)| r).collect(),
            included,
            total,
            next_cursor,
        })
    }

    pub async fn explain_search(
        &self,
        project: &str,
        view: &ProjectView,
        request: &SearchRequest,
        restriction: Option<&Restriction>,
    ) -> Result<String, StoreError> {
        let client = self.pool.get().await?;
        let filter = self
            .project_filter(&client, project, view)
            .await?
            .unwrap_or(ProjectFilter::one(0));
        let plan = crate::search::plan(Dialect::Postgres, &filter, request, restriction)?;
        let Some(statement) = plan.main_statement() else {
            return Ok(String::new());
        };
        let explain = Statement {
            sql: format!("EXPLAIN {}", statement.sql),
            params: statement.params.clone(),
            prepared: false,
        };
        let rows = query_typed(Conn::Client(&client), &explain).await?;
        let mut out = String::new();
        for row in rows {
            let line: String = row.try_get(0)?;
            out.push_str(&line);
            out.push('\n');
        }
        Ok(out)
    }

    pub async fn matching_ids(
        &self,
        project: &str,
        resource_type: &str,
        clauses: &[Clause],
        restriction: Option<&Restriction>,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let Some(key) = self.project_key(&client, project).await? else {
            return Ok(Vec::new());
        };
        let statement = crate::search::matching_ids(
            Dialect::Postgres,
            key,
            resource_type,
            clauses,
            restriction,
        )?;
        let rows = query_typed(Conn::Client(&client), &statement).await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StoreError::from))
            .collect()
    }

    /// The keys of the projects of `own`'s view; `None` when none of them has stored anything.
    async fn project_filter(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        own: &str,
        view: &ProjectView,
    ) -> Result<Option<ProjectFilter>, StoreError> {
        let Some(others) = view.others() else {
            return Ok(Some(ProjectFilter::all()));
        };
        let mut found = vec![(self.project_key(client, own).await?, None)];
        for (id, types) in others {
            found.push((self.project_key(client, id).await?, types));
        }
        Ok(ProjectFilter::of(found))
    }

    /// The key of a project that has data; `None` if it has none.
    async fn project_key(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        project: &str,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(k) = self.keys.get(project) {
            return Ok(Some(k));
        }
        let stmt = client
            .prepare_cached("SELECT key FROM project_keys WHERE id = $1")
            .await?;
        let key: Option<i64> = match client.query_opt(&stmt, &[&project]).await? {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        };
        if let Some(k) = key {
            self.keys.remember(project, k);
        }
        Ok(key)
    }

    /// Creates the project's key in its own committed statement if needed (see `project_key`).
    async fn ensure_project_key(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        project: &str,
    ) -> Result<i64, StoreError> {
        if let Some(k) = self.project_key(client, project).await? {
            return Ok(k);
        }
        let stmt = client
            .prepare_cached("INSERT INTO project_keys (id) VALUES ($1) ON CONFLICT (id) DO NOTHING")
            .await?;
        client.execute(&stmt, &[&project]).await?;
        self.project_key(client, project)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no key for project {project}")))
    }

    pub async fn execute(
        &self,
        project: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut client = self.pool.get().await?;
        let key = self.ensure_project_key(&client, project).await?;
        // The keys of the other projects the ops write in, made before the transaction (see
        // `ensure_project_key`).
        let mut keys = vec![(project.to_owned(), key)];
        let others: Vec<String> = ops.iter().filter_map(|op| op.project.clone()).collect();
        for p in others {
            if !keys.iter().any(|(k, _)| *k == p) {
                let k = self.ensure_project_key(&client, &p).await?;
                keys.push((p, k));
            }
        }
        if let [op] = ops.as_slice()
            && matches!(op.target, Target::New { .. })
            && op.project.is_none()
        {
            // A plain create is one statement, atomic on its own: one round trip.
            let Some(op) = ops.into_iter().next() else {
                return Ok(Vec::new());
            };
            let mut state = TxState {
                now: next_timestamp(None),
                ..TxState::default()
            };
            return Ok(vec![match (op.decide)(Lookup::None, &mut state)
                .map_err(StoreError::Rejected)?
            {
                Decision::Keep => WriteOutcome {
                    resource: None,
                    written: false,
                    created: false,
                },
                Decision::Write(v) => WriteOutcome {
                    resource: Some(write_version(&client, project, key, &v, None).await?),
                    written: true,
                    created: true,
                },
            }]);
        }
        let tx = client.transaction().await?;
        let mut state = TxState::default();
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            let (project, key) = match op.project.as_deref() {
                None => (project, key),
                Some(p) => keys
                    .iter()
                    .find(|(k, _)| k == p)
                    .map(|(p, k)| (p.as_str(), *k))
                    .ok_or_else(|| StoreError::Corrupt(format!("no key for project {p}")))?,
            };
            let current = lookup(&tx, project, key, &op.target).await?;
            state.now = next_timestamp(current.one());
            let decision =
                (op.decide)(current.lookup(), &mut state).map_err(StoreError::Rejected)?;
            match decision {
                Decision::Keep => outcomes.push(WriteOutcome {
                    resource: current.into_one(),
                    written: false,
                    created: false,
                }),
                Decision::Write(v) => {
                    let same = current
                        .one()
                        .is_some_and(|c| c.resource_type == v.resource_type && c.id == v.id);
                    let existing = if same {
                        current.rid().zip(current.into_one())
                    } else if matches!(op.target, Target::Search { .. }) {
                        read_for_update(&tx, &v.resource_type, &v.id).await?
                    } else {
                        None
                    };
                    let stored = write_version(&tx, project, key, &v, existing.as_ref()).await?;
                    outcomes.push(WriteOutcome {
                        resource: Some(stored),
                        written: true,
                        created: existing.as_ref().is_none_or(|(_, e)| e.deleted),
                    });
                }
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub fn close(&self) {
        self.pool.close();
    }
}

async fn read_for_update(
    tx: &deadpool_postgres::Transaction<'_>,
    resource_type: &str,
    id: &str,
) -> Result<Option<(i64, StoredResource)>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT r.rid, {RESOURCE_COLUMNS} FROM resources r WHERE r.resource_type = $1 AND r.id = $2 FOR UPDATE"
        ))
        .await?;
    tx.query_opt(&stmt, &[&resource_type, &id])
        .await?
        .map(|r| with_rid(&r))
        .transpose()
}

async fn lookup(
    tx: &deadpool_postgres::Transaction<'_>,
    project: &str,
    key: i64,
    target: &Target,
) -> Result<Found, StoreError> {
    Ok(match target {
        Target::New { .. } => Found::None,
        Target::Id { resource_type, id } => match read_for_update(tx, resource_type, id).await? {
            Some((rid, r)) => Found::One(rid, r),
            None => Found::None,
        },
        Target::Search {
            resource_type,
            clauses,
            restriction,
        } => {
            // Row locks cannot stop a concurrent conditional create from inserting the match
            // this one did not find; a lock per project and type serializes them.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("{project}/{resource_type}")],
            )
            .await?;
            let statement = crate::search::conditional(
                Dialect::Postgres,
                key,
                resource_type,
                clauses,
                restriction.as_deref(),
            )?;
            let rows = query_typed(Conn::Tx(tx), &statement).await?;
            let mut found = rows.iter().map(with_rid).collect::<Result<Vec<_>, _>>()?;
            match found.len() {
                0 => Found::None,
                1 => {
                    let (rid, r) = found.remove(0);
                    Found::One(rid, r)
                }
                n => Found::Many(n),
            }
        }
    })
}

/// Writes a version in one statement: the resource row, its history row and its index rows,
/// with data-modifying CTEs. In one statement the deletes of the old index rows see the snapshot
/// from before it, so they never remove the rows inserted beside them.
async fn write_version(
    client: &impl deadpool_postgres::GenericClient,
    project: &str,
    key: i64,
    v: &NewVersion,
    existing: Option<&(i64, StoredResource)>,
) -> Result<StoredResource, StoreError> {
    if let Some((_, e)) = existing
        && e.project != project
    {
        return Err(StoreError::Conflict(v.resource_type.clone(), v.id.clone()));
    }
    let rid = existing.map(|(rid, _)| *rid);
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![
        Box::new(v.resource_type.clone()),
        Box::new(v.id.clone()),
        Box::new(project.to_owned()),
        Box::new(key),
        Box::new(v.version_id.clone()),
        Box::new(v.last_updated),
        Box::new(v.deleted),
        Box::new(v.content.clone()),
        Box::new(crate::compartments::column(
            &v.resource_type,
            &v.id,
            v.deleted,
            &v.index,
        )),
    ];
    let mut ctes = Vec::new();
    let rid_expr = match rid {
        Some(rid) => {
            params.push(Box::new(rid));
            ctes.push("r AS (UPDATE resources SET version_id = $5, last_updated = $6, deleted = $7, content = $8, compartments = $9 WHERE rid = $10 AND project_key = $4 RETURNING rid)".to_owned());
            for (i, t) in INDEX_TABLES.iter().enumerate() {
                ctes.push(format!("d{i} AS (DELETE FROM {} WHERE rid = $10)", t.name));
            }
            "$10".to_owned()
        }
        None => {
            ctes.push("r AS (INSERT INTO resources (resource_type, id, project, project_key, version_id, last_updated, deleted, content, compartments) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING rid)".to_owned());
            "r.rid".to_owned()
        }
    };
    ctes.push("h AS (INSERT INTO resource_history (resource_type, id, version_id, project, last_updated, deleted, content) VALUES ($1, $2, $5, $3, $6, $7, $8))".to_owned());
    if !v.deleted {
        let tables = rows(&v.index);
        let signature = crate::token_signature::of_rows(&tables);
        for table in tables {
            let t = &INDEX_TABLES[table.table];
            let columns: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
            let codes: Vec<String> = table.rows.iter().map(|(c, _)| c.clone()).collect();
            params.push(Box::new(codes));
            let mut unnest = vec![format!("${}::text[]", params.len())];
            for (i, (_, ty)) in t.columns.iter().enumerate() {
                let array: Box<dyn ToSql + Sync + Send> = match ty {
                    ColType::Text => Box::new(column(&table.rows, i, |c| match c {
                        Col::Text(t) => Some(t.clone()),
                        _ => None,
                    })?),
                    ColType::Int => Box::new(column(&table.rows, i, |c| match c {
                        Col::Int(x) => Some(*x),
                        _ => None,
                    })?),
                    ColType::Real => Box::new(column(&table.rows, i, |c| match c {
                        Col::Real(x) => Some(*x),
                        _ => None,
                    })?),
                };
                params.push(array);
                let sql_type = match ty {
                    ColType::Text => "text[]",
                    ColType::Int => "bigint[]",
                    ColType::Real => "float8[]",
                };
                unnest.push(format!("${}::{sql_type}", params.len()));
            }
            // Reference rows carry the version's token signature (see `token_signature`).
            let (signature_column, signature_value) = if table.table == schema::REFERENCE {
                params.push(Box::new(signature));
                (", token_signature", format!(", ${}::bigint", params.len()))
            } else {
                ("", String::new())
            };
            ctes.push(format!(
                "i{} AS (INSERT INTO {} (project, resource_type, rid, code, {}{signature_column}) SELECT $4, $1, {rid_expr}, u.*{signature_value} FROM {}UNNEST({}) AS u)",
                table.table,
                t.name,
                columns.join(", "),
                if rid.is_some() { "" } else { "r, " },
                unnest.join(", ")
            ));
        }
    }
    if rid.is_some() || !v.unique.is_empty() {
        // The keys the version holds, and no others; a key another resource holds fails the
        // statement on the primary key (a deletion holds none).
        params.push(Box::new(v.unique.clone()));
        let keys = params.len();
        if rid.is_some() {
            ctes.push(format!(
                "k0 AS (DELETE FROM unique_keys WHERE rid = $10 AND NOT (key = ANY(${keys}::text[])))"
            ));
        }
        ctes.push(format!(
            "k1 AS (INSERT INTO unique_keys (key, rid) SELECT u.k, {rid_expr} FROM {}UNNEST(${keys}::text[]) AS u(k) WHERE NOT EXISTS (SELECT 1 FROM unique_keys x WHERE x.key = u.k AND x.rid = {rid_expr}))",
            if rid.is_some() { "" } else { "r, " }
        ));
    }
    let sql = format!("WITH {} SELECT rid FROM r", ctes.join(", "));
    let stmt = client.prepare_cached(&sql).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let written = client.query_one(&stmt, &refs).await;
    if let Err(e) = &written
        && e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    {
        let on_keys = e
            .as_db_error()
            .and_then(|d| d.table())
            .is_some_and(|t| t == "unique_keys");
        if on_keys {
            return Err(StoreError::Duplicate(v.unique.join(", ")));
        }
        return Err(StoreError::Conflict(v.resource_type.clone(), v.id.clone()));
    }
    written?;
    Ok(StoredResource {
        resource_type: v.resource_type.clone(),
        id: v.id.clone(),
        project: project.to_owned(),
        version_id: v.version_id.clone(),
        last_updated: v.last_updated,
        deleted: v.deleted,
        content: v.content.clone(),
    })
}

/// Column `i` of every row, as one array.
fn column<T>(
    rows: &[(String, Vec<Col>)],
    i: usize,
    get: impl Fn(&Col) -> Option<T>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|(_, cols)| {
            cols.get(i)
                .and_then(&get)
                .ok_or_else(|| StoreError::Corrupt("index row of the wrong shape".into()))
        })
        .collect()
}

fn to_resource(row: &Row) -> Result<StoredResource, StoreError> {
    resource_at(row, 0)
}

/// A `StoredResource` from `RESOURCE_COLUMNS` starting at column `i`.
fn resource_at(row: &Row, i: usize) -> Result<StoredResource, StoreError> {
    Ok(StoredResource {
        resource_type: row.try_get(i)?,
        id: row.try_get(i + 1)?,
        project: row.try_get(i + 2)?,
        version_id: row.try_get(i + 3)?,
        last_updated: row.try_get(i + 4)?,
        deleted: row.try_get(i + 5)?,
        content: row.try_get(i + 6)?,
    })
}

/// A row of `r.rid, RESOURCE_COLUMNS`.
fn with_rid(row: &Row) -> Result<(i64, StoredResource), StoreError> {
    Ok((row.try_get(0)?, resource_at(row, 1)?))
}

/// Runs a statement with its parameter types given, in one round trip and without a named
/// prepared statement: search SQL varies with the request, and a per-connection cache of every
/// shape would only grow. Parameters the SQL does not use are still declared, which
/// PostgreSQL accepts (a search's count uses a prefix of its page's parameters).
async fn query_typed(conn: Conn<'_>, statement: &Statement) -> Result<Vec<Row>, StoreError> {
    let values: Vec<(&(dyn ToSql + Sync), Type)> = statement
        .params
        .iter()
        .map(|p| (sql_param(p), sql_type(p)))
        .collect();
    Ok(match conn {
        Conn::Client(c) => c.query_typed(&statement.sql, &values).await?,
        Conn::Tx(t) => t.query_typed(&statement.sql, &values).await?,
    })
}

fn sql_param(p: &SqlValue) -> &(dyn ToSql + Sync) {
    match p {
        SqlValue::Text(s) => s,
        SqlValue::Int(i) => i,
        SqlValue::Real(f) => f,
        SqlValue::IntList(l) => l,
    }
}

fn sql_type(p: &SqlValue) -> Type {
    match p {
        SqlValue::Text(_) => Type::TEXT,
        SqlValue::Int(_) => Type::INT8,
        SqlValue::Real(_) => Type::FLOAT8,
        SqlValue::IntList(_) => Type::INT8_ARRAY,
    }
}

/// The values of a statement and their types, for a prepared statement.
fn typed_params(params: &[SqlValue]) -> (Vec<&(dyn ToSql + Sync)>, Vec<Type>) {
    (
        params.iter().map(sql_param).collect(),
        params.iter().map(sql_type).collect(),
    )
}

/// Where a statement runs: a pooled connection, or an open transaction.
#[derive(Clone, Copy)]
enum Conn<'a> {
    Client(&'a tokio_postgres::Client),
    Tx(&'a tokio_postgres::Transaction<'a>),
}

/// A statement of a fixed shape (history), prepared once per connection.
async fn query_resources(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<StoredResource>, StoreError> {
    let stmt = client.prepare_cached(sql).await?;
    let values: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| match p {
            SqlValue::Text(s) => s as &(dyn ToSql + Sync),
            SqlValue::Int(i) => i as &(dyn ToSql + Sync),
            SqlValue::Real(f) => f as &(dyn ToSql + Sync),
            SqlValue::IntList(l) => l as &(dyn ToSql + Sync),
        })
        .collect();
    let rows = client.query(&stmt, &values).await?;
    rows.iter().map(to_resource).collect()
}

/// Prepared search statements kept per connection at most; past it the cache starts again
/// (the shapes of searches are few in practice, but a client could ask for many).
const MAX_PREPARED: usize = 256;

/// Rows of `rid, RESOURCE_COLUMNS, key values...`.
async fn query_page(
    client: &deadpool_postgres::Client,
    page: &Statement,
    kinds: &[KeyKind],
) -> Result<Vec<PageRow>, StoreError> {
    let rows = if page.prepared {
        if client.statement_cache.size() >= MAX_PREPARED {
            client.statement_cache.clear();
        }
        let (values, types) = typed_params(&page.params);
        let stmt = client.prepare_typed_cached(&page.sql, &types).await?;
        client.query(&stmt, &values).await?
    } else {
        query_typed(Conn::Client(client), page).await?
    };
    rows.iter()
        .map(|row| {
            let mut keys = Vec::with_capacity(kinds.len());
            for (i, kind) in kinds.iter().enumerate() {
                let col = 8 + i;
                keys.push(match kind {
                    KeyKind::Text => row
                        .try_get::<_, Option<String>>(col)?
                        .map_or(KeyValue::Null, KeyValue::Text),
                    KeyKind::Int => row
                        .try_get::<_, Option<i64>>(col)?
                        .map_or(KeyValue::Null, KeyValue::Int),
                    KeyKind::Real => row
                        .try_get::<_, Option<f64>>(col)?
                        .map_or(KeyValue::Null, KeyValue::Real),
                });
            }
            Ok(PageRow {
                rid: row.try_get(0)?,
                resource: resource_at(row, 1)?,
                keys,
            })
        })
        .collect()
}

async fn count_rows(
    client: &tokio_postgres::Client,
    count: &Statement,
    counting: Counting,
) -> Result<u64, StoreError> {
    let rows = query_typed(Conn::Client(client), count).await?;
    let Some(row) = rows.first() else {
        return Ok(0);
    };
    match counting {
        Counting::Count => Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0)),
        Counting::Explain => {
            // One JSON document: `[{"Plan": {"Plan Rows": n, ...}}]`.
            let doc: serde_json::Value = row.try_get(0)?;
            let rows = doc
                .pointer("/0/Plan/Plan Rows")
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| StoreError::Corrupt("EXPLAIN output without Plan Rows".into()))?;
            Ok(rows.max(0.0).round() as u64)
        }
    }
}
