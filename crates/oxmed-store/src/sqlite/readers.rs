//! The reader connections, and where a read runs: on the calling async worker while it stays
//! short, on the blocking pool once it turns out long.
//!
//! Handing a read to the blocking pool costs two thread wake-ups and their context switches; for
//! a selective search (a fraction of a millisecond of SQLite work) that was a quarter of the
//! server's time under load. A read that runs past its budget on the worker is interrupted
//! (`sqlite3_progress_handler`) and run again from the start on the blocking pool, so a worker
//! is never held for longer than the budget and no answer mixes the two runs.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// How much of the database file is read through a memory map: all of it. Reading past the map
/// costs a syscall and a copy per page; the map costs address space only, and the OS page cache
/// it reads is shared by every connection. (The build raises SQLite's own cap to match: see
/// `.cargo/config.toml`.)
pub(super) const MMAP_SIZE: i64 = 1 << 40;

/// Readers that may run on the blocking pool at once. SQLite readers are CPU-bound once pages are
/// cached, so more than a few per core only queue in the kernel instead of here.
const BLOCKING_READERS: usize = 16;

/// Readers kept open for reuse: the blocking ones plus those running on the async workers (one
/// per core at most). A connection is opened when none is free and closed on return only beyond
/// this; reopening costs a file mapping and its statement cache.
const POOL_SIZE: usize = BLOCKING_READERS + 16;

/// How long a read may hold an async worker before it moves to the blocking pool. Other
/// connections served by that worker wait this long at most; a read that overruns costs this
/// much extra once.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// SQLite virtual-machine instructions between two looks at the clock: one instruction can be a
/// B-tree seek of about a microsecond, so this keeps the overrun well under the budget.
const PROGRESS_INSTRUCTIONS: i32 = 64;

pub(super) struct Readers {
    path: String,
    inline_budget: Duration,
    idle: Mutex<Vec<Reader>>,
    /// Bounds the readers running on the blocking pool, so that the connections they use stay
    /// open between requests instead of being opened and closed under load.
    blocking: tokio::sync::Semaphore,
    /// Reads interrupted on a worker for overrunning the budget.
    overruns: AtomicU64,
}

struct Reader {
    conn: Connection,
    budget: Arc<Budget>,
}

/// The deadline the connection's progress handler enforces, and whether it did.
#[derive(Default)]
struct Budget {
    /// Nanoseconds since [`epoch`]; 0: no deadline.
    deadline: AtomicU64,
    overran: AtomicBool,
}

impl Budget {
    fn start(&self, within: Duration) {
        let at = Instant::now().saturating_duration_since(epoch()) + within;
        self.overran.store(false, Ordering::Relaxed);
        self.deadline.store(
            u64::try_from(at.as_nanos()).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
    }

    /// Ends the budget; true if the read was interrupted for running past it.
    fn finish(&self) -> bool {
        self.deadline.store(0, Ordering::Relaxed);
        self.overran.swap(false, Ordering::Relaxed)
    }

    /// The progress handler: true interrupts the running statement.
    fn past(&self) -> bool {
        let at = self.deadline.load(Ordering::Relaxed);
        if at == 0 {
            return false;
        }
        let now = Instant::now().saturating_duration_since(epoch()).as_nanos();
        if now > u128::from(at) {
            self.overran.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Readers {
    pub(super) fn new(path: &str, inline_budget: Duration) -> Readers {
        Readers {
            path: path.to_owned(),
            inline_budget,
            idle: Mutex::new(Vec::new()),
            blocking: tokio::sync::Semaphore::new(BLOCKING_READERS),
            overruns: AtomicU64::new(0),
        }
    }

    /// How many reads overran their budget on a worker (and ran again on the blocking pool).
    pub(super) fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }

    fn take(&self) -> Result<Reader, StoreError> {
        let reader = self.idle.lock().pop();
        match reader {
            Some(r) => Ok(r),
            // A zero budget (tests) looks at the clock after every instruction, so that even
            // the shortest statement overruns.
            None => open_reader(
                &self.path,
                if self.inline_budget.is_zero() {
                    1
                } else {
                    PROGRESS_INSTRUCTIONS
                },
            ),
        }
    }

    fn put_back(&self, reader: Reader) {
        let mut idle = self.idle.lock();
        if idle.len() < POOL_SIZE {
            idle.push(reader);
        }
    }

    /// Runs `f` on a reader here and now, however long it takes.
    pub(super) fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let reader = self.take()?;
        let result = f(&reader.conn);
        self.put_back(reader);
        result
    }

    /// Runs `f` here if it finishes within the budget; `None` if it was interrupted for taking
    /// longer (its partial work is thrown away: the caller runs it again elsewhere).
    pub(super) fn within_budget<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        let reader = match self.take() {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        reader.budget.start(self.inline_budget);
        let result = f(&reader.conn);
        let overran = reader.budget.finish();
        self.put_back(reader);
        if overran {
            self.overruns.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(result)
    }

    /// Runs `f` on the blocking pool.
    pub(super) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self
            .blocking
            .acquire()
            .await
            .map_err(|_| StoreError::Corrupt("the store is closed".into()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.with_reader(f))
            .await
            .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
    }

    /// Closes the idle connections.
    pub(super) fn clear(&self) {
        self.idle.lock().clear();
    }
}

fn open_reader(path: &str, progress_instructions: i32) -> Result<Reader, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Readers map the file instead of copying pages into a private cache each: the OS page cache
    // is shared by all of them and is not the process's private memory.
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    conn.pragma_update(None, "cache_size", -1024)?;
    let budget = Arc::new(Budget::default());
    let watch = budget.clone();
    conn.progress_handler(progress_instructions, Some(move || watch.past()));
    Ok(Reader { conn, budget })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_path(name: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("oxmed-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("oxmed.db");
        let path = path.to_str().unwrap().to_owned();
        drop(Connection::open(&path).unwrap());
        (dir, path)
    }

    /// The whole file is mapped: SQLite's default build would cap the map at 2 GiB and quietly
    /// answer with that, so this fails if the build flag in `.cargo/config.toml` is lost.
    #[test]
    fn readers_map_the_whole_file() {
        let (dir, path) = store_path("mmap");
        let reader = open_reader(&path, PROGRESS_INSTRUCTIONS).unwrap();
        let size: i64 = reader
            .conn
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(size, MMAP_SIZE);
        drop(reader);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A short read answers within the budget; a long one is interrupted and reported as such,
    /// and the same connection then runs an unbounded read to its end.
    #[test]
    fn a_read_past_its_budget_is_interrupted() {
        let (dir, path) = store_path("budget");
        let readers = Readers::new(&path, INLINE_BUDGET);
        let short = readers
            .within_budget(|c| Ok(c.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0))?));
        assert_eq!(short.unwrap().unwrap(), 42);
        // About a hundred million rows: far longer than the budget.
        let long_sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n";
        let started = Instant::now();
        let long =
            readers.within_budget(|c| Ok(c.query_row(long_sql, [], |r| r.get::<_, i64>(0))?));
        assert!(long.is_none(), "the long read was not interrupted");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "interrupted late: {:?}",
            started.elapsed()
        );
        let small_sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) SELECT count(*) FROM n";
        let unbounded =
            readers.with_reader(|c| Ok(c.query_row(small_sql, [], |r| r.get::<_, i64>(0))?));
        assert_eq!(unbounded.unwrap(), 300000);
        readers.clear();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
