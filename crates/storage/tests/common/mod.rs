//! Shared by the storage tests: a fresh PostgreSQL database per test, dropped at the end.

#![allow(dead_code, clippy::unwrap_used)]

/// The PostgreSQL server the tests use (`INTERLOCK_TEST_PG`, or the local default).
pub fn pg_base() -> String {
    std::env::var("INTERLOCK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    /// Create `<prefix>_<random>`.
    pub async fn create(prefix: &str) -> Self {
        let name = format!(
            "{prefix}_{}",
            interlock_domain::ContactId::new().as_str().replace('_', "")
        );
        interlock_storage::db::ensure_pg_database(&pg_base(), &name)
            .await
            .unwrap();
        let url = interlock_storage::db::with_database(&pg_base(), &name).unwrap();
        Self { name, url }
    }

    /// Drop it (even with connections left open).
    pub async fn drop(self) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&pg_base()).await.unwrap();
        // `name` is a prefix and hex digits: a plain identifier.
        #[allow(clippy::disallowed_methods)]
        let drop = sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
        sqlx::Executor::execute(&mut conn, drop).await.unwrap();
    }
}

/// A cell of region EU on `backend`, its keys and blobs under `dir`.
pub async fn open_cell(
    backend: interlock_storage::Backend,
    dir: &std::path::Path,
) -> interlock_storage::Cell {
    interlock_storage::Cell::open(interlock_storage::CellConfig {
        region: interlock_domain::Region::Eu,
        backend,
        key_dir: dir.join("keys"),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap()
}

/// Run each `async fn name(cell: Cell, dir: &Path)` on SQLite and on PostgreSQL (a database of
/// its own, dropped afterwards), as `cells::sqlite::name` and `cells::postgres::name`.
#[macro_export]
macro_rules! cell_tests {
    ($($name:ident),* $(,)?) => {
        mod cells {
            $(
                pub(super) async fn $name(
                    backend: interlock_storage::Backend,
                    dir: &std::path::Path,
                ) {
                    let cell = $crate::common::open_cell(backend, dir).await;
                    super::$name(cell, dir).await;
                }
            )*
            $crate::backend_tests!($($name),*);
        }
    };
}

/// Run each `async fn name(backend: Backend, dir: &Path)` (tests that open, close and reopen
/// their own cells) on SQLite and on PostgreSQL, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let backend = interlock_storage::Backend::Sqlite {
                        path: dir.path().join("eu.db"),
                    };
                    super::$name(backend, dir.path()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = $crate::common::PgDb::create("st").await;
                    let backend = interlock_storage::Backend::Postgres { url: db.url.clone() };
                    super::$name(backend, dir.path()).await;
                    db.drop().await;
                }
            )*
        }
    };
}
