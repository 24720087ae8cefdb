//! The data map describes the real store: open a cell (which runs every migration), read the
//! schema back from the database — tables, columns, primary keys, indexes — and compare it with
//! `datamap::DATA_MAP` in both directions. The key folder and the blob folder are checked
//! against the map's file collections the same way. SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use interlock_domain::{AttachmentName, Body, ContactRole, CustomAttributes, NewContact, Region};
use interlock_storage::datamap::{self, CollectionKind};
use interlock_storage::{Backend, Cell, CellConfig};
use sqlx::Row;

/// One table's shape, as the database or the map states it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeSet<String>,
    primary_key: Vec<String>,
    /// Index name → (columns in order, unique).
    indexes: BTreeMap<String, (Vec<String>, bool)>,
}

type Shape = BTreeMap<String, Table>;

/// The map's tables.
fn mapped() -> Shape {
    datamap::DATA_MAP
        .iter()
        .filter(|c| c.kind == CollectionKind::Table)
        .map(|c| {
            let t = Table {
                columns: c.fields.iter().map(|f| f.name.to_owned()).collect(),
                primary_key: c.primary_key.iter().map(|s| (*s).to_owned()).collect(),
                indexes: c
                    .indexes
                    .iter()
                    .map(|i| {
                        let cols = i.columns.iter().map(|s| (*s).to_owned()).collect();
                        (i.name.to_owned(), (cols, i.unique))
                    })
                    .collect(),
            };
            (c.name.to_owned(), t)
        })
        .collect()
}

/// Tables the map does not describe on purpose: the migration runner's bookkeeping.
fn ignored(table: &str) -> bool {
    table == "schema_migrations"
}

async fn sqlite_shape(pool: &sqlx::AnyPool) -> Shape {
    let mut shape = Shape::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in tables.into_iter().filter(|t| !ignored(t)) {
        let mut t = Table::default();
        // A PRAGMA cannot bind its argument; the table-valued pragma functions can.
        let cols = sqlx::query("SELECT name, pk FROM pragma_table_info($1)")
            .bind(&table)
            .fetch_all(pool)
            .await
            .unwrap();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for r in &cols {
            let name: String = r.get("name");
            let pos: i64 = r.get("pk");
            if pos > 0 {
                pk.push((pos, name.clone()));
            }
            t.columns.insert(name);
        }
        pk.sort();
        t.primary_key = pk.into_iter().map(|(_, n)| n).collect();
        let indexes = sqlx::query(
            "SELECT name, \"unique\" AS is_unique FROM pragma_index_list($1) WHERE name NOT LIKE 'sqlite_autoindex_%'",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        for r in &indexes {
            let name: String = r.get("name");
            let unique: i64 = r.get("is_unique");
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            t.indexes.insert(name, (cols, unique != 0));
        }
        shape.insert(table, t);
    }
    // Every index sqlite_master lists belongs to a table read above (or is ignored).
    let all: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%' AND tbl_name <> 'schema_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let read: BTreeSet<&String> = shape.values().flat_map(|t| t.indexes.keys()).collect();
    for name in &all {
        assert!(read.contains(name), "index {name} was not read back");
    }
    shape
}

async fn postgres_shape(pool: &sqlx::AnyPool) -> Shape {
    let mut shape = Shape::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in tables.into_iter().filter(|t| !ignored(t)) {
        shape.insert(table, Table::default());
    }
    let cols = sqlx::query(
        "SELECT table_name::text AS tbl, column_name::text AS col FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for r in &cols {
        let table: String = r.get("tbl");
        if let Some(t) = shape.get_mut(&table) {
            t.columns.insert(r.get("col"));
        }
    }
    // Every index of the schema with its columns in key order; the primary key's index
    // stands for the primary key.
    let rows = sqlx::query(
        "SELECT t.relname::text AS tbl, c.relname::text AS idx, \
                CASE WHEN i.indisprimary THEN 1 ELSE 0 END::bigint AS is_pk, \
                CASE WHEN i.indisunique THEN 1 ELSE 0 END::bigint AS is_unique, \
                a.attname::text AS col \
         FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE n.nspname = 'public' \
         ORDER BY 1, 2, k.ord",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for r in &rows {
        let table: String = r.get("tbl");
        let Some(t) = shape.get_mut(&table) else {
            continue;
        };
        let col: String = r.get("col");
        if r.get::<i64, _>("is_pk") == 1 {
            t.primary_key.push(col);
        } else {
            let unique = r.get::<i64, _>("is_unique") == 1;
            t.indexes
                .entry(r.get("idx"))
                .or_insert_with(|| (Vec::new(), unique))
                .0
                .push(col);
        }
    }
    shape
}

/// Every difference between the store and the map, one line each.
fn differences(store: &Shape, map: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    for name in store.keys().filter(|t| !map.contains_key(*t)) {
        out.push(format!(
            "table {name}: in the store, not described by the data map"
        ));
    }
    for name in map.keys().filter(|t| !store.contains_key(*t)) {
        out.push(format!("table {name}: in the data map, not in the store"));
    }
    for (name, s) in store {
        let Some(m) = map.get(name) else { continue };
        for c in s.columns.difference(&m.columns) {
            out.push(format!(
                "column {name}.{c}: in the store, not described by the data map"
            ));
        }
        for c in m.columns.difference(&s.columns) {
            out.push(format!(
                "column {name}.{c}: in the data map, not in the store"
            ));
        }
        if s.primary_key != m.primary_key {
            out.push(format!(
                "primary key of {name}: store ({}) vs data map ({})",
                s.primary_key.join(", "),
                m.primary_key.join(", ")
            ));
        }
        for (idx, def) in &s.indexes {
            match m.indexes.get(idx) {
                None => out.push(format!(
                    "index {idx} on {name}: in the store, not described by the data map"
                )),
                Some(mdef) if mdef != def => out.push(format!(
                    "index {idx} on {name}: store ({}{}) vs data map ({}{})",
                    if def.1 { "unique " } else { "" },
                    def.0.join(", "),
                    if mdef.1 { "unique " } else { "" },
                    mdef.0.join(", ")
                )),
                Some(_) => {}
            }
        }
        for idx in m.indexes.keys().filter(|i| !s.indexes.contains_key(*i)) {
            out.push(format!(
                "index {idx} on {name}: in the data map, not in the store"
            ));
        }
    }
    out
}

fn assert_matches(backend: &str, store: &Shape) {
    let diff = differences(store, &mapped());
    assert!(
        diff.is_empty(),
        "the {backend} schema and crates/storage/src/datamap.rs disagree — describe every table, column and index in the data map:\n  {}",
        diff.join("\n  ")
    );
}

/// The map's file-name patterns (`master-v<N>.key`) as a test on one name.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.split_once('<') {
        None => pattern == name,
        Some((prefix, rest)) => {
            let suffix = rest.split_once('>').map_or("", |(_, s)| s);
            name.len() > prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(
                files_under(&e.path())
                    .into_iter()
                    .map(|f| format!("{name}/{f}")),
            );
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// The key folder of a region holds exactly the files `key_files` names; the blob folder holds
/// `<workspace>/<attachment>` files only.
fn check_files(dir: &Path) {
    let keys = datamap::collection("key_files").unwrap();
    let on_disk = files_under(&dir.join("keys").join("eu"));
    let mut problems = Vec::new();
    for f in &on_disk {
        if !keys.fields.iter().any(|k| matches_pattern(k.name, f)) {
            problems.push(format!("key file {f}: not described by the data map"));
        }
    }
    for k in keys.fields {
        if !on_disk.iter().any(|f| matches_pattern(k.name, f)) {
            problems.push(format!("key file {}: in the data map, not on disk", k.name));
        }
    }
    let blobs = datamap::collection("attachment_files").unwrap();
    assert_eq!(blobs.kind, CollectionKind::Blobs);
    let files = files_under(&dir.join("blobs"));
    assert!(!files.is_empty());
    for f in &files {
        let parts: Vec<&str> = f.split('/').collect();
        let ok = parts.len() == 2 && parts[0].starts_with("ws_eu_") && parts[1].starts_with("at_");
        if !ok {
            problems.push(format!(
                "blob {f}: not at <workspace>/<attachment> as the data map says"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "files and the data map disagree:\n  {}",
        problems.join("\n  ")
    );
}

async fn open(backend: Backend, dir: &Path) -> Cell {
    let cell = Cell::open(CellConfig {
        region: Region::Eu,
        backend,
        key_dir: dir.join("keys"),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap();
    // The server makes the region's staff device CA at start-up; so does this store's test.
    interlock_crypto::DeviceCa::open_or_create(&dir.join("keys"), Region::Eu).unwrap();
    // Some data, so the blob folder has a file and the activity chain a head.
    let (ws, _token) = cell.create_workspace("Map").await.unwrap();
    let contact = cell
        .create_contact(
            &ws.id,
            NewContact {
                role: ContactRole::User,
                external_id: None,
                email: None,
                name: None,
                phone: None,
                custom_attributes: CustomAttributes::default(),
            },
        )
        .await
        .unwrap();
    let conv = cell
        .create_conversation(&ws.id, &contact.id, &Body::parse("hello").unwrap())
        .await
        .unwrap();
    cell.add_attachment(
        &ws.id,
        &conv.id,
        &AttachmentName::parse("a.txt").unwrap(),
        "text/plain",
        b"attachment",
    )
    .await
    .unwrap();
    cell
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_map_describes_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite {
        path: dir.path().join("eu.db"),
    };
    let cell = open(backend, dir.path()).await;
    let shape = sqlite_shape(cell.pool()).await;
    assert!(shape.contains_key("contacts") && shape["contacts"].columns.len() >= 10);
    assert_matches("SQLite", &shape);
    check_files(dir.path());
    cell.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_map_describes_the_postgres_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::PgDb::create("dm").await;
    let url = db.url.clone();
    let cell = open(Backend::Postgres { url }, dir.path()).await;
    let shape = postgres_shape(cell.pool()).await;
    assert!(shape.contains_key("contacts") && shape["contacts"].columns.len() >= 10);
    let result = std::panic::AssertUnwindSafe(async {
        assert_matches("PostgreSQL", &shape);
        check_files(dir.path());
    });
    let outcome = futures::FutureExt::catch_unwind(result).await;
    cell.close().await;
    db.drop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The comparison itself names each kind of difference, in both directions.
#[test]
fn differences_are_listed_both_ways() {
    let mut store = mapped();
    store
        .get_mut("contacts")
        .unwrap()
        .columns
        .insert("ssn".into());
    store.get_mut("events").unwrap().columns.remove("name_ct");
    store.remove("roles");
    store.insert("shadow".into(), Table::default());
    store
        .get_mut("teammates")
        .unwrap()
        .indexes
        .insert("teammates_name".into(), (vec!["name_ct".into()], false));
    store
        .get_mut("contacts")
        .unwrap()
        .indexes
        .get_mut("contacts_email")
        .unwrap()
        .1 = true;
    let diff = differences(&store, &mapped()).join("\n");
    for expected in [
        "column contacts.ssn: in the store, not described by the data map",
        "column events.name_ct: in the data map, not in the store",
        "table roles: in the data map, not in the store",
        "table shadow: in the store, not described by the data map",
        "index teammates_name on teammates: in the store, not described by the data map",
        "index contacts_email on contacts: store (unique workspace_id, email_bidx) vs data map (workspace_id, email_bidx)",
    ] {
        assert!(diff.contains(expected), "missing {expected:?} in:\n{diff}");
    }
    assert!(matches_pattern("master-v<N>.key", "master-v12.key"));
    assert!(!matches_pattern("master-v<N>.key", ".master-v2.key.tmp"));
    assert!(matches_pattern(
        "activity-signing-ed25519.key",
        "activity-signing-ed25519.key"
    ));
}
