//! Test harness: a store on a fresh SQLite file or a fresh PostgreSQL database (from
//! `OXMED_TEST_POSTGRES_URL`; under CI a missing URL fails), resources written through
//! `Store::execute` with index entries from `oxmed_fhir::index::extract`, and builders of
//! search requests (the parser is not used: these tests pin the SQL semantics on their own).
#![allow(dead_code)]

use std::path::PathBuf;

use oxmed_fhir::index::parse_date_range;
use oxmed_fhir::search::{
    Clause, Condition, DateTest, Include, NumberTest, Prefix, QuantityTest, ReferenceTest,
    SearchRequest, SortKey, StringTest, Summary, Test, TokenKind, TokenTest, Total, UriTest,
};
use oxmed_store::{Decision, Lookup, NewVersion, Store, Target, WriteOp};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Db {
    pub store: Store,
    pub url: String,
    pub backend: Backend,
    /// Every search of this SQLite store runs again on the blocking pool (see
    /// [`sqlite_offloaded`]).
    pub offloaded: bool,
    _dir: Option<TempDir>,
}

impl Db {
    /// Searches of a SQLite store that overran the inline budget so far.
    pub fn reads_moved(&self) -> u64 {
        match &self.store {
            Store::Sqlite(s) => s.reads_moved_off_worker(),
            Store::Postgres(_) => 0,
        }
    }
}

pub struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn sqlite() -> Db {
    let dir = std::env::temp_dir().join(format!("oxmed-search-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    Db {
        store: Store::open(&url).await.unwrap(),
        url,
        backend: Backend::Sqlite,
        offloaded: false,
        _dir: Some(TempDir(dir)),
    }
}

/// A SQLite store whose every search is interrupted on the async worker and run again on the
/// blocking pool (an inline budget of zero): the same answers must come out.
pub async fn sqlite_offloaded() -> Db {
    let dir = std::env::temp_dir().join(format!("oxmed-search-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.db").display().to_string();
    Db {
        store: Store::open_sqlite_with_inline_budget(&path, std::time::Duration::ZERO).unwrap(),
        url: format!("sqlite://{path}"),
        backend: Backend::Sqlite,
        offloaded: true,
        _dir: Some(TempDir(dir)),
    }
}

pub async fn postgres() -> Option<Db> {
    let server = match std::env::var("OXMED_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "OXMED_TEST_POSTGRES_URL must be set under CI"
            );
            eprintln!("skipping: OXMED_TEST_POSTGRES_URL is not set");
            return None;
        }
    };
    let name = format!("oxmed_store_{}", uuid::Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (prefix, _) = server.rsplit_once('/').unwrap();
    let url = format!("{prefix}/{name}");
    Some(Db {
        store: Store::open(&url).await.unwrap(),
        url,
        backend: Backend::Postgres,
        offloaded: false,
        _dir: None,
    })
}

/// Runs `sql` on the store's database through a connection of its own, as an operator (or an
/// older build) would: for states the store itself never writes.
pub async fn raw_execute(db: &Db, sql: &str) {
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").unwrap();
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            conn.execute_batch(sql).unwrap();
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
        }
    }
}

/// `both!(name, |db| async move { ... })`: a test on SQLite and one on PostgreSQL (and one on
/// SQLite with every search moved off the async worker).
#[macro_export]
macro_rules! both {
    ($name:ident, |$db:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let $db = common::sqlite().await;
                $body.await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite_offloaded() {
                let $db = common::sqlite_offloaded().await;
                $body.await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some($db) = common::postgres().await {
                    $body.await;
                }
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// writing

fn format_instant(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let millis = micros.rem_euclid(1_000_000) / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Creates or updates `resource` (which carries its `id`) in `project`: a new version with
/// `meta.versionId` / `meta.lastUpdated` stamped and its index extracted.
pub async fn put(store: &Store, project: &str, resource: Value) -> String {
    let resource_type = resource["resourceType"].as_str().unwrap().to_owned();
    let id = resource["id"].as_str().unwrap().to_owned();
    let (t, i) = (resource_type.clone(), id.clone());
    let op = WriteOp::new(
        Target::Id {
            resource_type: resource_type.clone(),
            id: id.clone(),
        },
        move |lookup, state| {
            let version = match lookup {
                Lookup::One(current) => current.version_id.parse::<u64>().unwrap_or(0) + 1,
                _ => 1,
            };
            let mut resource = resource;
            // The resource's own meta (its accounts) stays; the server's parts are stamped.
            if !resource["meta"].is_object() {
                resource["meta"] = json!({});
            }
            resource["meta"]["versionId"] = json!(version.to_string());
            resource["meta"]["lastUpdated"] = json!(format_instant(state.now));
            Ok(Decision::Write(NewVersion {
                resource_type: t,
                id: i,
                version_id: version.to_string(),
                last_updated: state.now,
                deleted: false,
                content: resource.to_string(),
                index: oxmed_fhir::index::extract(&resource),
                unique: Vec::new(),
            }))
        },
    );
    store.execute(project, vec![op]).await.unwrap();
    id
}

/// Creates many resources (new ids), a few hundred per transaction.
pub async fn put_all(store: &Store, project: &str, resources: Vec<Value>) {
    put_all_stamped(store, project, resources, None).await
}

/// Like [`put_all`], every resource stamped with the same `lastUpdated` (microseconds), so that a
/// test of ties does not depend on how fast the machine writes.
pub async fn put_all_tied(store: &Store, project: &str, resources: Vec<Value>, at: i64) {
    put_all_stamped(store, project, resources, Some(at)).await
}

async fn put_all_stamped(store: &Store, project: &str, resources: Vec<Value>, at: Option<i64>) {
    let mut ops = Vec::new();
    for resource in resources {
        let resource_type = resource["resourceType"].as_str().unwrap().to_owned();
        let id = resource["id"].as_str().unwrap().to_owned();
        ops.push(WriteOp::new(
            Target::New {
                resource_type: resource_type.clone(),
                id: id.clone(),
            },
            move |_, state| {
                let now = at.unwrap_or(state.now);
                let mut resource = resource;
                resource["meta"] = json!({
                    "versionId": "1",
                    "lastUpdated": format_instant(now),
                });
                Ok(Decision::Write(NewVersion {
                    resource_type,
                    id,
                    version_id: "1".into(),
                    last_updated: now,
                    deleted: false,
                    content: resource.to_string(),
                    index: oxmed_fhir::index::extract(&resource),
                    unique: Vec::new(),
                }))
            },
        ));
        if ops.len() == 500 {
            store
                .execute(project, std::mem::take(&mut ops))
                .await
                .unwrap();
        }
    }
    if !ops.is_empty() {
        store.execute(project, ops).await.unwrap();
    }
}

pub async fn delete(store: &Store, project: &str, resource_type: &str, id: &str) {
    let (t, i) = (resource_type.to_owned(), id.to_owned());
    let op = WriteOp::new(
        Target::Id {
            resource_type: t.clone(),
            id: i.clone(),
        },
        move |lookup, state| {
            let version = match lookup {
                Lookup::One(current) => current.version_id.parse::<u64>().unwrap_or(0) + 1,
                _ => 1,
            };
            Ok(Decision::Write(NewVersion {
                resource_type: t,
                id: i,
                version_id: version.to_string(),
                last_updated: state.now,
                deleted: true,
                content: String::new(),
                index: Vec::new(),
                unique: Vec::new(),
            }))
        },
    );
    store.execute(project, vec![op]).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// searching

pub fn request(resource_type: &str, filters: Vec<Clause>) -> SearchRequest {
    SearchRequest {
        resource_types: vec![resource_type.to_owned()],
        filters,
        sort: Vec::new(),
        count: 1000,
        offset: 0,
        cursor: None,
        total: Total::None,
        summary: Summary::False,
        elements: None,
        include: Vec::new(),
        revinclude: Vec::new(),
        ignored: Vec::new(),
    }
}

/// The ids of the matches, in result order.
pub async fn ids(db: &Db, project: &str, request: &SearchRequest) -> Vec<String> {
    db.store
        .search(project, request, None)
        .await
        .unwrap_or_else(|e| panic!("{request:?}: {e}"))
        .matches
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// The ids of `resource_type` matching every clause, sorted.
pub async fn find(
    db: &Db,
    project: &str,
    resource_type: &str,
    clauses: Vec<Clause>,
) -> Vec<String> {
    let mut found = ids(db, project, &request(resource_type, clauses)).await;
    found.sort();
    found
}

pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

pub fn one(c: Condition) -> Clause {
    Clause { any: vec![c] }
}

pub fn any(cs: Vec<Condition>) -> Clause {
    Clause { any: cs }
}

pub fn param(code: &str, test: Test) -> Condition {
    Condition::Param {
        code: code.to_owned(),
        test,
    }
}

pub fn starts(s: &str) -> Test {
    Test::String(StringTest::StartsWith(oxmed_fhir::index::normalize_string(
        s,
    )))
}

pub fn contains(s: &str) -> Test {
    Test::String(StringTest::Contains(oxmed_fhir::index::normalize_string(s)))
}

pub fn exact(s: &str) -> Test {
    Test::String(StringTest::Exact(s.to_owned()))
}

pub fn token(kind: TokenKind, system: Option<&str>, code: Option<&str>) -> Test {
    Test::Token(TokenTest {
        kind,
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
    })
}

pub fn tok(system: Option<&str>, code: &str) -> Test {
    token(TokenKind::Eq, system, Some(code))
}

pub fn reference(target_type: Option<&str>, id: &str) -> Test {
    Test::Reference(ReferenceTest::Local {
        target_type: target_type.map(str::to_owned),
        id: id.to_owned(),
    })
}

pub fn url(u: &str) -> Test {
    Test::Reference(ReferenceTest::Url(u.to_owned()))
}

pub fn date_test(prefix: Prefix, value: &str) -> DateTest {
    let (start, end) = parse_date_range(value).unwrap_or_else(|| panic!("date {value}"));
    DateTest { prefix, start, end }
}

pub fn date(prefix: Prefix, value: &str) -> Test {
    Test::Date(date_test(prefix, value))
}

/// A number with the precision of its decimal digits: `0.25` is `[0.245, 0.255)`.
pub fn number_test(prefix: Prefix, value: &str) -> NumberTest {
    let v: f64 = value.parse().unwrap();
    let decimals = value.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let half = 0.5 * 10f64.powi(-decimals);
    NumberTest {
        prefix,
        value: v,
        low: v - half,
        high: v + half,
    }
}

pub fn number(prefix: Prefix, value: &str) -> Test {
    Test::Number(number_test(prefix, value))
}

pub fn quantity(prefix: Prefix, value: &str, system: Option<&str>, code: Option<&str>) -> Test {
    Test::Quantity(QuantityTest {
        number: number_test(prefix, value),
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
    })
}

pub fn uri(t: UriTest) -> Test {
    Test::Uri(t)
}

pub fn sort(keys: &[&str]) -> Vec<SortKey> {
    keys.iter()
        .map(|k| match k.strip_prefix('-') {
            Some(code) => SortKey {
                code: code.to_owned(),
                descending: true,
            },
            None => SortKey {
                code: (*k).to_owned(),
                descending: false,
            },
        })
        .collect()
}

pub fn include(source: &str, code: Option<&str>, target: Option<&str>, iterate: bool) -> Include {
    Include {
        source_type: source.to_owned(),
        reference_code: code.map(str::to_owned),
        target_type: target.map(str::to_owned),
        iterate,
    }
}
