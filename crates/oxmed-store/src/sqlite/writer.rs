//! The single SQLite writer. Requests queue on a channel; the thread takes every request waiting
//! and commits them in one transaction (group commit: one fsync for many writes), each inside its
//! own savepoint so that one request's failure rolls back only that request. Replies are sent
//! only after the commit is durable.

use std::sync::{Arc, mpsc};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{project_key, query_with_rid, read_current_rid};
use crate::index_rows::{Col, rows};
use crate::op::{Decision, Found, NewVersion, Target, TxState};
use crate::project_key::ProjectKeys;
use crate::schema::{self, ColType, Dialect, INDEX_TABLES, IndexTable};
use crate::{StoreError, StoredResource, WriteOp, WriteOutcome};

type Reply = oneshot::Sender<Result<Vec<WriteOutcome>, StoreError>>;

struct Job {
    project: String,
    ops: Vec<WriteOp>,
    reply: Reply,
}

pub(super) struct WriterHandle {
    tx: mpsc::Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

/// Most requests committed together; bounds the latency one commit adds to the first of them.
const MAX_GROUP: usize = 256;

pub(super) fn spawn(conn: Connection, keys: Arc<ProjectKeys>) -> Result<WriterHandle, StoreError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let thread = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, rx, &keys))?;
    Ok(WriterHandle { tx, thread })
}

impl WriterHandle {
    pub(super) fn submit(
        &self,
        project: String,
        ops: Vec<WriteOp>,
    ) -> Result<oneshot::Receiver<Result<Vec<WriteOutcome>, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                project,
                ops,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Closes the queue and waits until everything queued has been committed.
    pub(super) fn join(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

/// A WAL larger than this is emptied by the writer between two groups.
///
/// Under a sustained write load the checkpointer's PASSIVE checkpoints never find the WAL fully
/// copied when the next group begins, so SQLite never rewinds it and the file grows without
/// bound (9 GB while loading 800,000 Observations, until the disk was full). A TRUNCATE
/// checkpoint needs the write lock, which only the writer gets reliably under load: it takes
/// it between groups, copies what the checkpointer has not yet copied, and empties the file.
/// Writes wait for that copy only.
pub(super) const WAL_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

fn run(conn: Connection, rx: mpsc::Receiver<Job>, keys: &ProjectKeys) {
    let wal = conn.path().map(|p| format!("{p}-wal"));
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        commit_group(&conn, keys, jobs);
        if let Some(wal) = &wal
            && std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES)
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "sqlite WAL truncation failed");
        }
    }
}

/// The key of a project, created and committed on its own first if it has none yet.
fn ensure_project_key(
    conn: &Connection,
    keys: &ProjectKeys,
    project: &str,
) -> Result<i64, StoreError> {
    if let Some(k) = project_key(conn, keys, project)? {
        return Ok(k);
    }
    conn.prepare_cached("INSERT OR IGNORE INTO project_keys (id) VALUES (?1)")?
        .execute([project])?;
    project_key(conn, keys, project)?
        .ok_or_else(|| StoreError::Corrupt(format!("no key for project {project}")))
}

fn commit_group(conn: &Connection, keys: &ProjectKeys, jobs: Vec<Job>) {
    let mut ready = Vec::with_capacity(jobs.len());
    for job in jobs {
        // Every project a job writes in has its key before the group's transaction begins: a
        // key made inside it and rolled back would stay in the cache.
        let mut others = job.ops.iter().filter_map(|op| op.project.as_deref());
        let made = others
            .try_for_each(|p| ensure_project_key(conn, keys, p).map(|_| ()))
            .and_then(|()| ensure_project_key(conn, keys, &job.project));
        match made {
            Ok(k) => ready.push((k, job)),
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }
    let jobs = ready;
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        for (_, job) in jobs {
            let _ = job.reply.send(Err(StoreError::Corrupt(format!(
                "could not begin a transaction: {msg}"
            ))));
        }
        return;
    }
    let mut results = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    while let Some((key, job)) = jobs.next() {
        // A request of one op needs no savepoint: every way it can be refused (its decision, a
        // taken id, a condition that cannot be compiled) comes before its first write, and a
        // failed statement undoes itself. The savepoint's page copies were a tenth of the
        // writer's time.
        if job.ops.len() == 1 {
            let result = run_ops(conn, keys, &job.project, key, job.ops);
            if let Err(e) = &result
                && !matches!(
                    e,
                    StoreError::Rejected(_)
                        | StoreError::Conflict(..)
                        | StoreError::Duplicate(_)
                        | StoreError::InvalidSearch(_)
                        | StoreError::InvalidCursor(_)
                )
            {
                // Something failed half-way (I/O): nothing of this group may commit.
                let msg = e.to_string();
                let _ = conn.execute_batch("ROLLBACK");
                let _ = job.reply.send(result);
                let failed = results
                    .into_iter()
                    .map(|(reply, _)| reply)
                    .chain(jobs.map(|(_, j)| j.reply));
                for reply in failed {
                    let _ = reply.send(Err(StoreError::Corrupt(format!(
                        "a write of the same group failed: {msg}"
                    ))));
                }
                return;
            }
            results.push((job.reply, result));
        } else {
            let result = run_in_savepoint(conn, keys, &job.project, key, job.ops);
            results.push((job.reply, result));
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let msg = e.to_string();
        let _ = conn.execute_batch("ROLLBACK");
        for (reply, _) in results {
            let _ = reply.send(Err(StoreError::Corrupt(format!("commit failed: {msg}"))));
        }
        return;
    }
    for (reply, result) in results {
        let _ = reply.send(result);
    }
}

fn run_in_savepoint(
    conn: &Connection,
    keys: &ProjectKeys,
    project: &str,
    key: i64,
    ops: Vec<WriteOp>,
) -> Result<Vec<WriteOutcome>, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = run_ops(conn, keys, project, key, ops);
    if result.is_err() {
        conn.execute_batch("ROLLBACK TO job")?;
    }
    conn.execute_batch("RELEASE job")?;
    result
}

fn run_ops(
    conn: &Connection,
    keys: &ProjectKeys,
    job_project: &str,
    job_key: i64,
    ops: Vec<WriteOp>,
) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut state = TxState::default();
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let (project, key) = match op.project.as_deref() {
            None => (job_project, job_key),
            Some(p) => (
                p,
                project_key(conn, keys, p)?
                    .ok_or_else(|| StoreError::Corrupt(format!("no key for project {p}")))?,
            ),
        };
        let current = match &op.target {
            Target::New { .. } => Found::None,
            Target::Id { resource_type, id } => match read_current_rid(conn, resource_type, id)? {
                Some((rid, r)) => Found::One(rid, r),
                None => Found::None,
            },
            Target::Search {
                resource_type,
                clauses,
                restriction,
            } => {
                let statement = crate::search::conditional(
                    Dialect::Sqlite,
                    key,
                    resource_type,
                    clauses,
                    restriction.as_deref(),
                )?;
                let mut found = query_with_rid(conn, &statement.sql, &statement.params)?;
                match found.len() {
                    0 => Found::None,
                    1 => {
                        let (rid, r) = found.remove(0);
                        Found::One(rid, r)
                    }
                    n => Found::Many(n),
                }
            }
        };
        state.now = crate::op::next_timestamp(current.one());
        let decision = (op.decide)(current.lookup(), &mut state).map_err(StoreError::Rejected)?;
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
                let existing = match (same, &op.target) {
                    (true, _) => current.rid().zip(current.into_one()),
                    // A search target that decided on a resource it did not find (conditional
                    // update creating with a client id) must still not overwrite blindly.
                    (false, Target::Search { .. }) => {
                        read_current_rid(conn, &v.resource_type, &v.id)?
                    }
                    (false, _) => None,
                };
                let stored = write_version(conn, project, key, &v, existing.as_ref())?;
                let created = existing.as_ref().is_none_or(|(_, e)| e.deleted);
                outcomes.push(WriteOutcome {
                    resource: Some(stored),
                    written: true,
                    created,
                });
            }
        }
    }
    Ok(outcomes)
}

fn write_version(
    conn: &Connection,
    project: &str,
    key: i64,
    v: &NewVersion,
    existing: Option<&(i64, StoredResource)>,
) -> Result<StoredResource, StoreError> {
    if let Some((_, e)) = existing
        && e.project != project
    {
        // Ids are global; a write never moves a resource into another project.
        return Err(StoreError::Conflict(v.resource_type.clone(), v.id.clone()));
    }
    // Before anything is written, so that a refusal leaves nothing to undo (this writer is the
    // only one: the check and the write below cannot be interleaved with another write).
    for k in &v.unique {
        let holder: Option<i64> = conn
            .prepare_cached("SELECT rid FROM unique_keys WHERE key = ?1")?
            .query_row([k], |r| r.get(0))
            .optional()?;
        if holder.is_some_and(|h| Some(h) != existing.map(|(rid, _)| *rid)) {
            return Err(StoreError::Duplicate(k.clone()));
        }
    }
    let compartments = crate::compartments::column(&v.resource_type, &v.id, v.deleted, &v.index);
    let rid = if let Some((rid, _)) = existing {
        conn.prepare_cached(
            "UPDATE resources SET version_id = ?2, last_updated = ?3, deleted = ?4, content = ?5, compartments = ?6 WHERE rid = ?1",
        )?
        .execute(params![
            rid,
            v.version_id,
            v.last_updated,
            v.deleted,
            v.content,
            compartments
        ])?;
        *rid
    } else {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO resources (resource_type, id, project, project_key, version_id, last_updated, deleted, content, compartments) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                v.resource_type,
                v.id,
                project,
                key,
                v.version_id,
                v.last_updated,
                v.deleted,
                v.content,
                compartments
            ]);
        if let Err(rusqlite::Error::SqliteFailure(e, _)) = &inserted
            && e.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return Err(StoreError::Conflict(v.resource_type.clone(), v.id.clone()));
        }
        inserted?;
        conn.last_insert_rowid()
    };
    conn.prepare_cached(
        "INSERT INTO resource_history (resource_type, id, version_id, project, last_updated, deleted, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        v.resource_type,
        v.id,
        v.version_id,
        project,
        v.last_updated,
        v.deleted,
        v.content
    ])?;
    sync_index(conn, key, rid, v, existing.is_some())?;
    if existing.is_some() {
        conn.prepare_cached("DELETE FROM unique_keys WHERE rid = ?1")?
            .execute([rid])?;
    }
    for k in &v.unique {
        conn.prepare_cached("INSERT INTO unique_keys (key, rid) VALUES (?1, ?2)")?
            .execute(params![k, rid])?;
    }
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

/// Makes the index rows of `rid` those of `v`. For a resource that existed, only the rows that
/// changed are deleted and inserted: an update usually changes a field or two, and every row
/// touched is a random page written to the WAL.
fn sync_index(
    conn: &Connection,
    key: i64,
    rid: i64,
    v: &NewVersion,
    existed: bool,
) -> Result<(), StoreError> {
    let mut wanted = if v.deleted {
        Vec::new()
    } else {
        rows(&v.index)
    };
    let signature = crate::token_signature::of_rows(&wanted);
    for (i, t) in INDEX_TABLES.iter().enumerate() {
        let mut fresh = wanted
            .iter_mut()
            .find(|w| w.table == i)
            .map(|w| std::mem::take(&mut w.rows))
            .unwrap_or_default();
        if existed {
            for (code, cols) in current_rows(conn, t, rid)? {
                if let Some(pos) = fresh.iter().position(|(c, v)| *c == code && *v == cols) {
                    fresh.swap_remove(pos);
                } else {
                    delete_row(conn, t, rid, &code, &cols)?;
                }
            }
        }
        let reference = i == schema::REFERENCE;
        if reference && existed {
            // The rows kept from the last version carry its signature (see `token_signature`).
            conn.prepare_cached(
                "UPDATE reference_idx SET token_signature = ?2 WHERE rid = ?1 AND token_signature IS NOT ?2",
            )?
            .execute(params![rid, signature])?;
        }
        if fresh.is_empty() {
            continue;
        }
        let mut columns: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
        if reference {
            columns.push("token_signature");
        }
        let placeholders: Vec<String> = (5..5 + columns.len()).map(|i| format!("?{i}")).collect();
        // OR IGNORE: two values may differ only in what the row does not keep apart.
        let mut stmt = conn.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {} (project, resource_type, code, rid, {}) VALUES (?1, ?2, ?3, ?4, {})",
            t.name,
            columns.join(", "),
            placeholders.join(", ")
        ))?;
        for (code, cols) in &fresh {
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&key, &v.resource_type, code, &rid];
            values.extend(cols.iter().map(col_sql));
            if reference {
                values.push(&signature);
            }
            stmt.execute(values.as_slice())?;
        }
    }
    Ok(())
}

fn col_sql(c: &Col) -> &dyn rusqlite::ToSql {
    match c {
        Col::Text(t) => t,
        Col::Int(i) => i,
        Col::Real(f) => f,
    }
}

/// The rows a resource has in one index table, as `(code, columns)`.
fn current_rows(
    conn: &Connection,
    t: &IndexTable,
    rid: i64,
) -> Result<Vec<(String, Vec<Col>)>, StoreError> {
    let columns: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT code, {} FROM {} WHERE rid = ?1",
        columns.join(", "),
        t.name
    ))?;
    let rows = stmt.query_map([rid], |row| {
        let mut cols = Vec::with_capacity(t.columns.len());
        for (i, (_, ty)) in t.columns.iter().enumerate() {
            cols.push(match ty {
                ColType::Text => Col::Text(row.get(i + 1)?),
                ColType::Int => Col::Int(row.get(i + 1)?),
                ColType::Real => Col::Real(row.get(i + 1)?),
            });
        }
        Ok((row.get(0)?, cols))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn delete_row(
    conn: &Connection,
    t: &IndexTable,
    rid: i64,
    code: &str,
    cols: &[Col],
) -> Result<(), StoreError> {
    let conditions: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{c} = ?{}", i + 3))
        .collect();
    let mut stmt = conn.prepare_cached(&format!(
        "DELETE FROM {} WHERE rid = ?1 AND code = ?2 AND {}",
        t.name,
        conditions.join(" AND ")
    ))?;
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&rid, &code];
    values.extend(cols.iter().map(col_sql));
    stmt.execute(values.as_slice())?;
    Ok(())
}
