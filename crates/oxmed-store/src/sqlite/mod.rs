//! The embedded backend: one SQLite file in WAL mode, a single writer thread that commits queued
//! writes in groups, a pool of reader connections, and checkpoints on a thread of their own so
//! that no request waits for one.

mod readers;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, params};

use oxmed_fhir::search::{Clause, Restriction, SearchRequest};

use crate::project_key::ProjectKeys;
use crate::projects::{ProjectFilter, ProjectView};
use crate::schema::{Dialect, RESOURCE_COLUMNS, migrations};
use crate::search::include::Includes;
use crate::search::{Counting, KeyKind, KeyValue, PageRow, SearchResult, Statement};
use crate::sql::SqlValue;
use crate::{HistoryQuery, StoreError, StoredResource, WriteOp, WriteOutcome};
pub use readers::INLINE_BUDGET;
use readers::{MMAP_SIZE, Readers};

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Arc<ProjectKeys>,
    readers: Arc<Readers>,
    writer: Mutex<Option<writer::WriterHandle>>,
    checkpointer: Mutex<Option<std::thread::JoinHandle<()>>>,
    closing: Arc<AtomicBool>,
}

impl SqliteStore {
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_inline_budget(path, INLINE_BUDGET)
    }

    /// [`SqliteStore::open`] with another limit on how long a read may run on the calling async
    /// worker before it moves to the blocking pool (zero: every read of more than a few SQLite
    /// instructions moves; the tests use it to run every search through the move).
    pub fn open_with_inline_budget(
        path: &str,
        inline_budget: Duration,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = Connection::open(path)?;
        configure_writer(&conn)?;
        migrate(&mut conn)?;
        let closing = Arc::new(AtomicBool::new(false));
        let keys = Arc::new(ProjectKeys::default());
        let writer = writer::spawn(conn, keys.clone())?;
        let checkpointer = spawn_checkpointer(path.to_owned(), closing.clone())?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                keys,
                readers: Arc::new(Readers::new(path, inline_budget)),
                writer: Mutex::new(Some(writer)),
                checkpointer: Mutex::new(Some(checkpointer)),
                closing,
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.readers.blocking(f).await
    }

    /// How many reads overran the inline budget and ran again on the blocking pool.
    pub fn reads_moved_off_worker(&self) -> u64 {
        self.inner.readers.overruns()
    }

    /// A point read, run on the calling thread: an indexed lookup is cheaper than a hop to the
    /// blocking pool.
    pub fn read(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.inner
            .readers
            .with_reader(|c| read_current(c, resource_type, id))
    }

    /// [`SqliteStore::read`] and the live resource's `compartments` column (see
    /// [`crate::compartments`]).
    pub fn read_with_compartments(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<crate::WithCompartments>, StoreError> {
        self.inner.readers.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RESOURCE_COLUMNS}, r.compartments FROM resources r WHERE r.resource_type = ?1 AND r.id = ?2"
            ))?;
            Ok(stmt
                .query_row(params![resource_type, id], |row| {
                    Ok((resource_at(row, 0)?, row.get(7)?))
                })
                .optional()?)
        })
    }

    /// A point read of one version, like [`SqliteStore::read`] on the calling thread.
    pub async fn read_version(
        &self,
        resource_type: &str,
        id: &str,
        version_id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.inner.readers.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RESOURCE_COLUMNS} FROM resource_history r WHERE r.resource_type = ?1 AND r.id = ?2 AND r.version_id = ?3"
            ))?;
            Ok(stmt
                .query_row(params![resource_type, id, version_id], row_to_resource)
                .optional()?)
        })
    }

    pub async fn history(&self, query: HistoryQuery) -> Result<Vec<StoredResource>, StoreError> {
        let run = |c: &Connection, query: &HistoryQuery| {
            let (sql, params) = query.to_sql(Dialect::Sqlite);
            query_resources(c, &sql, &params)
        };
        if let Some(result) = self.inner.readers.within_budget(|c| run(c, &query)) {
            return result;
        }
        self.blocking(move |c| run(c, &query)).await
    }

    /// The live resources of `project`'s view (see [`ProjectView`]) that match `request`.
    pub async fn search(
        &self,
        project: &str,
        view: &ProjectView,
        request: &SearchRequest,
        restriction: Option<Arc<Restriction>>,
    ) -> Result<SearchResult, StoreError> {
        let keys = &self.inner.keys;
        let here = self
            .inner
            .readers
            .within_budget(|c| search_in(c, keys, project, view, request, restriction.as_deref()));
        if let Some(result) = here {
            return result;
        }
        let keys = self.inner.keys.clone();
        let project = project.to_owned();
        let view = view.clone();
        let request = request.clone();
        self.blocking(move |c| {
            search_in(c, &keys, &project, &view, &request, restriction.as_deref())
        })
        .await
    }

    pub async fn explain_search(
        &self,
        project: &str,
        view: &ProjectView,
        request: &SearchRequest,
        restriction: Option<&Restriction>,
    ) -> Result<String, StoreError> {
        let keys = self.inner.keys.clone();
        let project = project.to_owned();
        let view = view.clone();
        let request = request.clone();
        let restriction = restriction.cloned();
        self.blocking(move |c| {
            let filter =
                project_filter(c, &keys, &project, &view)?.unwrap_or(ProjectFilter::one(0));
            let plan =
                crate::search::plan(Dialect::Sqlite, &filter, &request, restriction.as_ref())?;
            let Some(statement) = plan.main_statement() else {
                return Ok(String::new());
            };
            let mut stmt = bound(
                c,
                &format!("EXPLAIN QUERY PLAN {}", statement.sql),
                &statement.params,
            )?;
            let mut rows = stmt.raw_query();
            let mut depth: std::collections::HashMap<i64, usize> = Default::default();
            let mut out = String::new();
            while let Some(row) = rows.next()? {
                let (id, parent, detail): (i64, i64, String) =
                    (row.get(0)?, row.get(1)?, row.get(3)?);
                let d = depth.get(&parent).map_or(0, |d| d + 1);
                depth.insert(id, d);
                out.push_str(&format!("{}{detail}\n", "  ".repeat(d)));
            }
            Ok(out)
        })
        .await
    }

    pub async fn matching_ids(
        &self,
        project: &str,
        resource_type: &str,
        clauses: &[Clause],
        restriction: Option<&Restriction>,
    ) -> Result<Vec<String>, StoreError> {
        let keys = self.inner.keys.clone();
        let (project, resource_type) = (project.to_owned(), resource_type.to_owned());
        let clauses = clauses.to_vec();
        let restriction = restriction.cloned();
        self.blocking(move |c| {
            let Some(key) = project_key(c, &keys, &project)? else {
                return Ok(Vec::new());
            };
            let statement = crate::search::matching_ids(
                Dialect::Sqlite,
                key,
                &resource_type,
                &clauses,
                restriction.as_ref(),
            )?;
            let mut stmt = bound(c, &statement.sql, &statement.params)?;
            let mut rows = stmt.raw_query();
            let mut ids = Vec::new();
            while let Some(row) = rows.next()? {
                ids.push(row.get(0)?);
            }
            Ok(ids)
        })
        .await
    }

    pub async fn execute(
        &self,
        project: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let rx = {
            let guard = self.inner.writer.lock();
            let Some(w) = guard.as_ref() else {
                return Err(StoreError::Closed);
            };
            w.submit(project.to_owned(), ops)?
        };
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits for queued writes to commit, stops the writer and checkpoints the WAL into the main
    /// file.
    pub async fn close(&self) {
        let writer = self.inner.writer.lock().take();
        let checkpointer = self.inner.checkpointer.lock().take();
        let closing = self.inner.closing.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(w) = writer {
                w.join();
            }
            // Only now: the final checkpoint must come after the last commit.
            closing.store(true, Ordering::SeqCst);
            if let Some(c) = checkpointer {
                let _ = c.join();
            }
        })
        .await;
        self.inner.readers.clear();
    }
}

fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    // Every index row lands at a random place of its B-tree, so each dirties a page that the
    // commit writes to the WAL whole: 2 KiB pages halve those bytes against 4 KiB, and kept
    // create throughput from sinking as the tables grew (measured: 4 KiB fell to 1.8k/s at 100k
    // Patients where 2 KiB held 2.8k-3.5k/s). Most resources still fit a page. Only takes effect
    // on a new database, and must come before WAL mode.
    conn.pragma_update(None, "page_size", 2048)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: an acknowledged write survives power loss, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The checkpointer thread does this, so that no commit pays for a long checkpoint.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // Each queued request runs in a savepoint; its sub-journal in a temporary file cost a
    // quarter of the writer's time in write syscalls. In memory it is a page copy.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Pages are read through a mapping of the file rather than a large private cache: every
    // commit walks the whole page cache (pcache1Truncate), so a big one costs time, not only
    // memory.
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let current: i64 = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .unwrap_or(0);
    for (i, sql) in migrations(Dialect::Sqlite).iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Checkpoints the WAL every 200 ms (PASSIVE: never blocks readers or the writer), and once more
/// fully when the store closes. (A WAL that still grows is truncated by the writer itself: see
/// `writer::WAL_LIMIT_BYTES`.)
fn spawn_checkpointer(
    path: String,
    closing: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let conn = Connection::open(&path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let handle = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while !closing.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "sqlite checkpoint failed");
                }
            }
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "final sqlite checkpoint failed");
            }
        })?;
    Ok(handle)
}

pub(crate) fn row_to_resource(row: &Row<'_>) -> rusqlite::Result<StoredResource> {
    resource_at(row, 0)
}

/// A `StoredResource` from `RESOURCE_COLUMNS` starting at column `i`.
fn resource_at(row: &Row<'_>, i: usize) -> rusqlite::Result<StoredResource> {
    Ok(StoredResource {
        resource_type: row.get(i)?,
        id: row.get(i + 1)?,
        project: row.get(i + 2)?,
        version_id: row.get(i + 3)?,
        last_updated: row.get(i + 4)?,
        deleted: row.get(i + 5)?,
        content: row.get(i + 6)?,
    })
}

/// One search, with its includes, on one connection.
fn search_in(
    c: &Connection,
    keys: &ProjectKeys,
    project: &str,
    view: &ProjectView,
    request: &SearchRequest,
    restriction: Option<&Restriction>,
) -> Result<SearchResult, StoreError> {
    let Some(filter) = project_filter(c, keys, project, view)? else {
        return crate::search::nothing(Dialect::Sqlite, request, restriction);
    };
    let plan = crate::search::plan(Dialect::Sqlite, &filter, request, restriction)?;
    let rows = match &plan.page {
        Some(page) => query_page(c, page, &plan.kinds)?,
        None => Vec::new(),
    };
    let total = match &plan.count {
        Some((count, Counting::Count)) => Some(count_rows(c, count)?),
        // SQLite has no estimate; the plan never asks it for one.
        Some((_, Counting::Explain)) => None,
        None => None,
    };
    let (page, next_cursor) = plan.finish(rows);
    let mut includes = Includes::new(Dialect::Sqlite, &filter, request, restriction, &page);
    let mut included = Vec::new();
    while let Some(statement) = includes.next()? {
        included.extend(includes.fresh(query_with_rid(c, &statement.sql, &statement.params)?));
    }
    Ok(SearchResult {
        matches: page.into_iter().map(|(_, r)| r).collect(),
        included,
        total,
        next_cursor,
    })
}

/// The key of a project that has data, from the cache or the table; `None` if it has none.
pub(crate) fn project_key(
    c: &Connection,
    keys: &ProjectKeys,
    project: &str,
) -> Result<Option<i64>, StoreError> {
    if let Some(k) = keys.get(project) {
        return Ok(Some(k));
    }
    let key: Option<i64> = c
        .prepare_cached("SELECT key FROM project_keys WHERE id = ?1")?
        .query_row([project], |r| r.get(0))
        .optional()?;
    if let Some(k) = key {
        keys.remember(project, k);
    }
    Ok(key)
}

/// The keys of the projects of `own`'s view; `None` when none of them has stored anything.
fn project_filter(
    c: &Connection,
    keys: &ProjectKeys,
    own: &str,
    view: &ProjectView,
) -> Result<Option<ProjectFilter>, StoreError> {
    let Some(others) = view.others() else {
        return Ok(Some(ProjectFilter::all()));
    };
    let mut found = vec![(project_key(c, keys, own)?, None)];
    for (id, types) in others {
        found.push((project_key(c, keys, id)?, types));
    }
    Ok(ProjectFilter::of(found))
}

/// The current row of a resource with its row key.
pub(crate) fn read_current_rid(
    c: &Connection,
    resource_type: &str,
    id: &str,
) -> Result<Option<(i64, StoredResource)>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT r.rid, {RESOURCE_COLUMNS} FROM resources r WHERE r.resource_type = ?1 AND r.id = ?2"
    ))?;
    Ok(stmt
        .query_row(params![resource_type, id], |row| {
            Ok((row.get(0)?, resource_at(row, 1)?))
        })
        .optional()?)
}

pub(crate) fn read_current(
    c: &Connection,
    resource_type: &str,
    id: &str,
) -> Result<Option<StoredResource>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.resource_type = ?1 AND r.id = ?2"
    ))?;
    Ok(stmt
        .query_row(params![resource_type, id], row_to_resource)
        .optional()?)
}

/// A cached statement with `params` bound. Only the placeholders the SQL uses are bound: a
/// search binds one list of parameters to its page and its count, which use a prefix of it.
fn bound<'c>(
    c: &'c Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let used = stmt.parameter_count();
    for (i, p) in params.iter().take(used).enumerate() {
        match p {
            SqlValue::Text(s) => stmt.raw_bind_parameter(i + 1, s)?,
            SqlValue::Int(v) => stmt.raw_bind_parameter(i + 1, v)?,
            SqlValue::Real(f) => stmt.raw_bind_parameter(i + 1, f)?,
            SqlValue::IntList(list) => {
                let json = serde_json::to_string(list)
                    .map_err(|e| StoreError::Corrupt(format!("a key list as JSON: {e}")))?;
                stmt.raw_bind_parameter(i + 1, json)?
            }
        }
    }
    Ok(stmt)
}

pub(crate) fn query_resources(
    c: &Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<StoredResource>, StoreError> {
    let mut stmt = bound(c, sql, params)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(row_to_resource(row)?);
    }
    Ok(out)
}

/// Rows of `r.rid, RESOURCE_COLUMNS`.
pub(crate) fn query_with_rid(
    c: &Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<(i64, StoredResource)>, StoreError> {
    let mut stmt = bound(c, sql, params)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push((row.get(0)?, resource_at(row, 1)?));
    }
    Ok(out)
}

/// Rows of `rid, RESOURCE_COLUMNS, key values...`.
fn query_page(
    c: &Connection,
    page: &Statement,
    kinds: &[KeyKind],
) -> Result<Vec<PageRow>, StoreError> {
    let mut stmt = bound(c, &page.sql, &page.params)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut keys = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.iter().enumerate() {
            let col = 8 + i;
            keys.push(match (row.get_ref(col)?, kind) {
                (rusqlite::types::ValueRef::Null, _) => KeyValue::Null,
                (_, KeyKind::Text) => KeyValue::Text(row.get(col)?),
                (_, KeyKind::Int) => KeyValue::Int(row.get(col)?),
                (_, KeyKind::Real) => KeyValue::Real(row.get(col)?),
            });
        }
        out.push(PageRow {
            rid: row.get(0)?,
            resource: resource_at(row, 1)?,
            keys,
        });
    }
    Ok(out)
}

fn count_rows(c: &Connection, count: &Statement) -> Result<u64, StoreError> {
    let mut stmt = bound(c, &count.sql, &count.params)?;
    let mut rows = stmt.raw_query();
    let n: i64 = match rows.next()? {
        Some(row) => row.get(0)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}
