//! A real store for the tests of this crate: a SQLite file, or a fresh PostgreSQL database when
//! `OXMED_TEST_POSTGRES_URL` is set (under CI, a missing PostgreSQL fails the test).
#![allow(dead_code)]

pub struct TempDir(pub std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn store(postgres: bool) -> Option<(oxmed_store::Store, Option<TempDir>)> {
    if postgres {
        let url = std::env::var("OXMED_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let Some(server) = url else {
            assert!(
                std::env::var("CI").is_err(),
                "PostgreSQL must be tested under CI"
            );
            return None;
        };
        let name = format!("oxmed_auth_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        let (prefix, _) = server.rsplit_once('/').unwrap();
        let store = oxmed_store::Store::open(&format!("{prefix}/{name}"))
            .await
            .unwrap();
        return Some((store, None));
    }
    let dir = std::env::temp_dir().join(format!("oxmed-auth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = oxmed_store::Store::open(&format!("sqlite://{}", dir.join("oxmed.db").display()))
        .await
        .unwrap();
    Some((store, Some(TempDir(dir))))
}
