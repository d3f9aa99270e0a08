//! Every write is one database transaction: the resource row, its history row and its index rows
//! commit together or not at all. Checked by reading the tables directly, on both backends.

mod common;

use oxmed_fhir::index_value::{IndexEntry, IndexValue};
use oxmed_store::{Decision, NewVersion, Store, Target, WriteOp};

const PROJECT: &str = "p1";

fn create(id: &str) -> WriteOp {
    let id = id.to_owned();
    WriteOp::new(
        Target::New {
            resource_type: "Patient".into(),
            id: id.clone(),
        },
        move |_, state| {
            Ok(Decision::Write(NewVersion {
                resource_type: "Patient".into(),
                id: id.clone(),
                version_id: format!("{id}-v1"),
                last_updated: state.now,
                deleted: false,
                content: format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#),
                index: vec![IndexEntry {
                    code: "gender".into(),
                    value: IndexValue::Token {
                        system: None,
                        code: Some("male".into()),
                        text: None,
                        type_system: None,
                        type_code: None,
                    },
                }],
                unique: Vec::new(),
            }))
        },
    )
}

fn failing() -> WriteOp {
    WriteOp::new(
        Target::Id {
            resource_type: "Patient".into(),
            id: "x".into(),
        },
        |_, _| Err("refused on purpose".into()),
    )
}

/// Rows in (resources, resource_history, token_idx).
async fn counts(store: &Store, url: &str) -> (i64, i64, i64) {
    let sql = [
        "SELECT COUNT(*) FROM resources",
        "SELECT COUNT(*) FROM resource_history",
        "SELECT COUNT(*) FROM token_idx",
    ];
    match store {
        Store::Sqlite(_) => {
            let path = url.strip_prefix("sqlite://").unwrap();
            let c = rusqlite::Connection::open(path).unwrap();
            let n = |q: &str| c.query_row(q, [], |r| r.get::<_, i64>(0)).unwrap();
            (n(sql[0]), n(sql[1]), n(sql[2]))
        }
        Store::Postgres(_) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut out = [0i64; 3];
            for (i, q) in sql.iter().enumerate() {
                out[i] = client.query_one(*q, &[]).await.unwrap().get(0);
            }
            (out[0], out[1], out[2])
        }
    }
}

async fn check(db: common::Db) {
    let (store, url) = (&db.store, db.url.as_str());
    // A failure after a successful op rolls the successful one back too, in every table.
    let err = store
        .execute(PROJECT, vec![create("a"), failing()])
        .await
        .expect_err("the second op fails");
    assert!(err.to_string().contains("refused on purpose"), "{err}");
    assert_eq!(counts(store, url).await, (0, 0, 0));
    assert!(store.read("Patient", "a").await.unwrap().is_none());

    // A successful write lands in all three tables at once.
    let out = store.execute(PROJECT, vec![create("b")]).await.unwrap();
    assert!(out[0].written && out[0].created);
    assert_eq!(counts(store, url).await, (1, 1, 1));

    // Creating the same id again is a conflict and leaves nothing behind.
    let err = store
        .execute(PROJECT, vec![create("c"), create("b")])
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, oxmed_store::StoreError::Conflict(..)),
        "{err}"
    );
    assert_eq!(counts(store, url).await, (1, 1, 1));

    // Ops in another project than the transaction's: rolled back together with the others...
    let err = store
        .execute(PROJECT, vec![create("d").in_project("p2"), failing()])
        .await
        .expect_err("the second op fails");
    assert!(err.to_string().contains("refused on purpose"), "{err}");
    assert_eq!(counts(store, url).await, (1, 1, 1));
    // ...and committed together, each in its own project.
    store
        .execute(PROJECT, vec![create("e").in_project("p2"), create("f")])
        .await
        .unwrap();
    assert_eq!(counts(store, url).await, (3, 3, 3));
    assert_eq!(
        store.read("Patient", "e").await.unwrap().unwrap().project,
        "p2"
    );
    assert_eq!(
        store.read("Patient", "f").await.unwrap().unwrap().project,
        PROJECT
    );
    store.close().await;
}

#[tokio::test]
async fn one_transaction_sqlite() {
    check(common::sqlite().await).await;
}

#[tokio::test]
async fn one_transaction_postgres() {
    if let Some(db) = common::postgres().await {
        check(db).await;
    }
}
