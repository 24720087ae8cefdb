//! Two processes appending to one workspace's activity log through the same PostgreSQL
//! database cannot fork its chain: each commit claims its sequence numbers by updating the
//! head row, which stays locked until the commit, so the other waits and reads the moved head.
//! Every append lands, numbered without gaps.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use interlock_domain::{ActivityType, Actor, NewActivity, Region, Target};
use interlock_storage::{Backend, Cell, CellConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cells_on_one_database_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::PgDb::create("chain").await;
    let url = db.url.clone();
    let open = || {
        Cell::open(CellConfig {
            region: Region::Eu,
            backend: Backend::Postgres { url: url.clone() },
            key_dir: dir.path().join("keys"),
            blob_dir: dir.path().join("blobs"),
        })
    };
    // Like two server processes: separate pools, writers and caches.
    let a = Arc::new(open().await.unwrap());
    let b = Arc::new(open().await.unwrap());
    let (ws, _) = a.create_workspace("Race").await.unwrap();
    let mut tasks = Vec::new();
    for (i, cell) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let ws = ws.id.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..40 {
                let acts: Vec<NewActivity> = (0..(n % 3) + 1)
                    .map(|k| {
                        NewActivity::new(
                            ActivityType::ApiTokenCreated,
                            &Actor::system(),
                            Target::new("api_token", format!("t{i}-{n}-{k}")),
                        )
                    })
                    .collect();
                if let Err(e) = cell.record_activities(&ws, &acts).await {
                    panic!("task {i} unit {n}: {e:?}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 4 tasks × (14×1 + 13×2 + 13×3) entries.
    let expected = 4 * (14 + 13 * 2 + 13 * 3);
    let head = b.activity_head(&ws.id).await.unwrap().unwrap();
    assert_eq!(head.seq, expected);
    let report = a
        .verify_activity(&ws.id, &a.activity_public_key())
        .await
        .unwrap();
    assert_eq!(report.entries, expected as u64);
    a.close().await;
    b.close().await;
    db.drop().await;
}
