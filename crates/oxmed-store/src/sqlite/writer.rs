//! The single SQLite writer. Requests queue on a channel; the thread takes every request waiting
//! and commits them in one transaction (group commit: one fsync for many writes), each inside its
//! own savepoint so that one request's failure rolls back only that request. Replies are sent
//! only after the commit is durable.

use std::sync::mpsc;

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::read_current;
use crate::filter::{Select, select_matching};
use crate::index_rows::{Col, rows};
use crate::op::{Decision, Found, NewVersion, Target, TxState};
use crate::schema::{Dialect, INDEX_TABLES};
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

pub(super) fn spawn(conn: Connection) -> Result<WriterHandle, StoreError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let thread = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, rx))?;
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

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        commit_group(&conn, jobs);
    }
}

fn commit_group(conn: &Connection, jobs: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        for job in jobs {
            let _ = job.reply.send(Err(StoreError::Corrupt(format!(
                "could not begin a transaction: {msg}"
            ))));
        }
        return;
    }
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let result = run_in_savepoint(conn, &job.project, job.ops);
        results.push((job.reply, result));
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
    project: &str,
    ops: Vec<WriteOp>,
) -> Result<Vec<WriteOutcome>, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = run_ops(conn, project, ops);
    if result.is_err() {
        conn.execute_batch("ROLLBACK TO job")?;
    }
    conn.execute_batch("RELEASE job")?;
    result
}

fn run_ops(
    conn: &Connection,
    project: &str,
    ops: Vec<WriteOp>,
) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut state = TxState::default();
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let current = match &op.target {
            Target::New { .. } => Found::None,
            Target::Id { resource_type, id } => match read_current(conn, resource_type, id)? {
                Some(r) => Found::One(r),
                None => Found::None,
            },
            Target::Search {
                resource_type,
                filter,
            } => {
                let (sql, params) = select_matching(
                    &Select {
                        project,
                        resource_type,
                        filter,
                        limit: 2,
                        offset: 0,
                        for_update: false,
                    },
                    Dialect::Sqlite,
                );
                let mut found = super::query_resources(conn, &sql, &params)?;
                match found.len() {
                    0 => Found::None,
                    1 => Found::One(found.remove(0)),
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
                let existing = match current.one() {
                    Some(c) if c.resource_type == v.resource_type && c.id == v.id => Some(c),
                    Some(_) | None => None,
                };
                let existing = match (existing, &op.target) {
                    (Some(c), _) => Some(c.clone()),
                    // A search target that decided on a resource it did not find (conditional
                    // update creating with a client id) must still not overwrite blindly.
                    (None, Target::Search { .. }) => read_current(conn, &v.resource_type, &v.id)?,
                    (None, _) => None,
                };
                let stored = write_version(conn, project, &v, existing.as_ref())?;
                let created = existing.as_ref().is_none_or(|e| e.deleted);
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
    v: &NewVersion,
    existing: Option<&StoredResource>,
) -> Result<StoredResource, StoreError> {
    if let Some(e) = existing {
        if e.project != project {
            // Ids are global; a write never moves a resource into another project.
            return Err(StoreError::Conflict(v.resource_type.clone(), v.id.clone()));
        }
        conn.prepare_cached(
            "UPDATE resources SET version_id = ?3, last_updated = ?4, deleted = ?5, content = ?6 WHERE resource_type = ?1 AND id = ?2",
        )?
        .execute(params![
            v.resource_type,
            v.id,
            v.version_id,
            v.last_updated,
            v.deleted,
            v.content
        ])?;
        for (table, _) in INDEX_TABLES {
            conn.prepare_cached(&format!(
                "DELETE FROM {table} WHERE resource_type = ?1 AND id = ?2"
            ))?
            .execute(params![v.resource_type, v.id])?;
        }
    } else {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO resources (resource_type, id, project, version_id, last_updated, deleted, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                v.resource_type,
                v.id,
                project,
                v.version_id,
                v.last_updated,
                v.deleted,
                v.content
            ]);
        if let Err(rusqlite::Error::SqliteFailure(e, _)) = &inserted
            && e.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return Err(StoreError::Conflict(v.resource_type.clone(), v.id.clone()));
        }
        inserted?;
    }
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
    if !v.deleted {
        insert_index(conn, project, v)?;
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

fn insert_index(conn: &Connection, project: &str, v: &NewVersion) -> Result<(), StoreError> {
    for table in rows(&v.index) {
        let (name, columns) = INDEX_TABLES[table.table];
        let placeholders: Vec<String> = (5..5 + columns.len()).map(|i| format!("?{i}")).collect();
        let mut stmt = conn.prepare_cached(&format!(
            "INSERT INTO {name} (resource_type, id, project, code, {}) VALUES (?1, ?2, ?3, ?4, {})",
            columns.join(", "),
            placeholders.join(", ")
        ))?;
        for (code, cols) in &table.rows {
            let mut values: Vec<&dyn rusqlite::ToSql> =
                vec![&v.resource_type, &v.id, &project, code];
            for c in cols {
                values.push(match c {
                    Col::Text(t) => t,
                    Col::Int(i) => i,
                    Col::Real(f) => f,
                });
            }
            stmt.execute(values.as_slice())?;
        }
    }
    Ok(())
}
