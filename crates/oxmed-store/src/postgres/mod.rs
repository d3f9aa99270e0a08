//! The scale-out backend: PostgreSQL through a connection pool. Several oxmed processes may share
//! one database; every decision that must not race (If-Match, conditional writes) is taken under
//! a row lock or a transaction-scoped advisory lock.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::filter::{Filter, Select, SqlValue, select_matching};
use crate::index_rows::{Col, rows};
use crate::op::{Decision, Found, Lookup, NewVersion, Target, TxState, next_timestamp};
use crate::project_key::ProjectKeys;
use crate::schema::{ColType, Dialect, INDEX_TABLES, RESOURCE_COLUMNS, migrations};
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
        // Generic plans on the shared index tables ignore how selective a code is and
        // merge-join every row of it; custom plans are planned for the actual values.
        config.options("-c plan_cache_mode=force_custom_plan");
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

    pub async fn search(
        &self,
        project: &str,
        resource_type: &str,
        filter: &Filter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let client = self.pool.get().await?;
        let Some(key) = self.project_key(&client, project).await? else {
            return Ok(Vec::new());
        };
        let (sql, params) = select_matching(
            &Select {
                project: key,
                resource_type,
                filter,
                limit,
                offset,
                for_update: false,
            },
            Dialect::Postgres,
        );
        Ok(query_with_rid(&client, &sql, &params)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
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
        if let [op] = ops.as_slice()
            && matches!(op.target, Target::New { .. })
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
            filter,
        } => {
            // Row locks cannot stop a concurrent conditional create from inserting the match
            // this one did not find; a lock per project and type serializes them.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("{project}/{resource_type}")],
            )
            .await?;
            let (sql, params) = select_matching(
                &Select {
                    project: key,
                    resource_type,
                    filter,
                    limit: 2,
                    offset: 0,
                    for_update: true,
                },
                Dialect::Postgres,
            );
            let mut found = query_with_rid(tx, &sql, &params).await?;
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
    ];
    let mut ctes = Vec::new();
    let rid_expr = match rid {
        Some(rid) => {
            params.push(Box::new(rid));
            ctes.push("r AS (UPDATE resources SET version_id = $5, last_updated = $6, deleted = $7, content = $8 WHERE rid = $9 AND project_key = $4 RETURNING rid)".to_owned());
            for (i, t) in INDEX_TABLES.iter().enumerate() {
                ctes.push(format!("d{i} AS (DELETE FROM {} WHERE rid = $9)", t.name));
            }
            "$9".to_owned()
        }
        None => {
            ctes.push("r AS (INSERT INTO resources (resource_type, id, project, project_key, version_id, last_updated, deleted, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING rid)".to_owned());
            "r.rid".to_owned()
        }
    };
    ctes.push("h AS (INSERT INTO resource_history (resource_type, id, version_id, project, last_updated, deleted, content) VALUES ($1, $2, $5, $3, $6, $7, $8))".to_owned());
    if !v.deleted {
        for table in rows(&v.index) {
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
            ctes.push(format!(
                "i{} AS (INSERT INTO {} (project, resource_type, rid, code, {}) SELECT $4, $1, {rid_expr}, u.* FROM {}UNNEST({}) AS u)",
                table.table,
                t.name,
                columns.join(", "),
                if rid.is_some() { "" } else { "r, " },
                unnest.join(", ")
            ));
        }
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

fn sql_values(params: &[SqlValue]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Text(s) => s as &(dyn ToSql + Sync),
            SqlValue::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}

async fn query_resources(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<StoredResource>, StoreError> {
    let stmt = client.prepare_cached(sql).await?;
    let rows = client.query(&stmt, &sql_values(params)).await?;
    rows.iter().map(to_resource).collect()
}

async fn query_with_rid(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<(i64, StoredResource)>, StoreError> {
    let stmt = client.prepare_cached(sql).await?;
    let rows = client.query(&stmt, &sql_values(params)).await?;
    rows.iter().map(with_rid).collect()
}
