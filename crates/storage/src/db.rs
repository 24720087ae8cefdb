//! Connections, migrations and the group-commit writer.
//!
//! One SQL text serves both back ends through sqlx's `Any` driver (`$1` placeholders work in
//! both). Durability: SQLite runs in WAL mode with `synchronous=FULL`, PostgreSQL with
//! `synchronous_commit=on`, so a write is on disk before it is acknowledged. To keep throughput,
//! all writes of a cell go through one writer task that commits whatever has queued up while the
//! previous commit was syncing as one transaction (group commit).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::schema::MIGRATIONS;

/// Which database a cell lives in.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file (created if missing).
    Sqlite { path: std::path::PathBuf },
    /// A PostgreSQL database URL (the database must exist; see [`ensure_pg_database`]).
    Postgres { url: String },
}

impl Backend {
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Backend::Sqlite { .. })
    }
}

/// A bound SQL parameter.
#[derive(Clone)]
pub enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bytes(Vec<u8>),
    OptBytes(Option<Vec<u8>>),
}

impl std::fmt::Debug for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Arguments are ids and ciphertexts, but keep them out of logs all the same.
        f.write_str("Arg(..)")
    }
}

pub(crate) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::Int(i) => q.bind(*i),
            Arg::OptInt(i) => q.bind(*i),
            Arg::Bytes(b) => q.bind(b.as_slice()),
            Arg::OptBytes(b) => q.bind(b.as_deref()),
        };
    }
    q
}

/// One statement of a write, with the number of rows it must touch (if checked).
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: &'static str,
    pub args: Vec<Arg>,
    /// When set, the unit fails with `NotFound` unless exactly this many rows were affected.
    pub expect_rows: Option<u64>,
    /// Set for a plain one-row INSERT that nothing else in a group depends on: inside a group
    /// commit, all such rows of one table are written with multi-row INSERTs after the group's
    /// other statements (one round trip to the database instead of one per row).
    pub row_insert: Option<RowInsert>,
    /// Set for an activity-log append: its position in the workspace's hash chain is decided
    /// inside the transaction that commits it (see [`LogAppend`]); `sql` is unused.
    pub append: Option<Box<LogAppend>>,
}

/// An activity-log entry waiting for its place in its workspace's hash chain. The writer
/// claims the next sequence numbers by moving the chain head inside the commit's transaction
/// (the head row stays locked until the commit), gives the entry `hash = chain_hash(prev, seq,
/// leaf)` and inserts the row, so the entry commits with the action it records or not at all,
/// and two processes sharing a PostgreSQL database cannot fork a chain.
#[derive(Clone)]
pub struct LogAppend {
    pub workspace_id: String,
    /// SHA-256 leaf hash of the entry's canonical encoding (computed by the caller).
    pub leaf: [u8; 32],
    /// `id, type, created_at, actor_type, actor_id, target_type, target_id, body_ct,
    /// ws_key_version`.
    pub columns: Vec<Arg>,
}

impl std::fmt::Debug for LogAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogAppend")
            .field("workspace_id", &self.workspace_id)
            .finish_non_exhaustive()
    }
}

/// The activity-log row insert: the append's columns, then `seq` and `hash`.
pub(crate) const LOG_INSERT: RowInsert = RowInsert {
    head: "INSERT INTO activity_log (id, type, created_at, actor_type, actor_id, target_type, target_id, body_ct, ws_key_version, workspace_id, seq, hash) VALUES ",
    columns: 12,
};

/// `INSERT INTO table (columns) VALUES ` and the number of columns, for multi-row inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowInsert {
    pub head: &'static str,
    pub columns: usize,
}

impl Stmt {
    pub fn new(sql: &'static str, args: Vec<Arg>) -> Self {
        Self {
            sql,
            args,
            expect_rows: None,
            row_insert: None,
            append: None,
        }
    }

    /// An activity-log append (see [`LogAppend`]).
    pub fn append(append: LogAppend) -> Self {
        Self {
            sql: "",
            args: Vec::new(),
            expect_rows: None,
            row_insert: None,
            append: Some(Box::new(append)),
        }
    }

    /// A one-row INSERT that may be merged with others of the same table in a group commit.
    pub fn row(sql: &'static str, insert: RowInsert, args: Vec<Arg>) -> Self {
        debug_assert_eq!(args.len(), insert.columns);
        Self {
            sql,
            args,
            expect_rows: None,
            row_insert: Some(insert),
            append: None,
        }
    }

    pub fn expect(mut self, rows: u64) -> Self {
        self.expect_rows = Some(rows);
        self
    }
}

/// A unit of work: statements that commit together or not at all.
pub type Unit = Vec<Stmt>;

struct Job {
    unit: Unit,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// What the writer thread receives: work, or the request to finish and close its connection.
enum Msg {
    Work(Job),
    Close(oneshot::Sender<()>),
}

/// Counters of the writer, read by the benchmark and exported as metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub units: AtomicU64,
    /// Groups that failed as a whole and were retried unit by unit.
    pub split_groups: AtomicU64,
}

impl WriterStats {
    /// Units per commit so far.
    pub fn units_per_commit(&self) -> f64 {
        let c = self.commits.load(Ordering::Relaxed);
        if c == 0 {
            return 1.0;
        }
        self.units.load(Ordering::Relaxed) as f64 / c as f64
    }
}

/// Handle to a cell's writer task.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    pub stats: Arc<WriterStats>,
}

/// Most units one commit takes.
const MAX_BATCH: usize = 512;

impl Writer {
    /// Start the writer on a thread of its own, with its own connection. Under load the
    /// request tasks keep the shared runtime's run queue long; a writer queued behind them paid
    /// that wait on every round trip to the database, which capped throughput well below what
    /// the store takes. On its own thread it is served at once.
    pub(crate) async fn spawn(opts: AnyConnectOptions) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(4096);
        let stats = Arc::new(WriterStats::default());
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), StoreError>>();
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("interlock-writer".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Io(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let conn = async {
                        let mut c = AnyConnection::connect_with(&opts).await?;
                        tune(&mut c).await?;
                        Ok::<_, sqlx::Error>(c)
                    }
                    .await;
                    match conn {
                        Ok(conn) => {
                            let _ = ready_tx.send(Ok(()));
                            run_writer(conn, rx, thread_stats).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(StoreError::from_db(e)));
                        }
                    }
                });
            })
            .map_err(StoreError::Io)?;
        ready_rx.await.map_err(|_| StoreError::Closed)??;
        Ok(Self { tx, stats })
    }

    /// Commit `unit` durably, grouped with whatever other units are waiting.
    pub async fn write(&self, unit: Unit) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Work(Job { unit, reply }))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Finish the queued work, then close the writer's connection (for SQLite, the last
    /// connection's close checkpoints and removes the WAL) and wait until it is closed.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn exec_stmt(conn: &mut AnyConnection, stmt: &Stmt) -> Result<(), StoreError> {
    let res = bind_all(sqlx::query(stmt.sql), &stmt.args)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_db)?;
    if let Some(n) = stmt.expect_rows
        && res.rows_affected() != n
    {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Rows per multi-row INSERT (well under SQLite's and PostgreSQL's bound-parameter limits).
const ROWS_PER_INSERT: usize = 256;

/// The text of an INSERT of `rows` rows: the fixed head and placeholders only. No value is ever
/// part of the text. PostgreSQL needs numbered `$n`; SQLite gets anonymous `?`, because sqlx
/// resolves each named parameter with a linear scan, quadratic over a statement of many rows.
fn multi_row_sql(insert: RowInsert, rows: usize, numbered: bool) -> String {
    let mut sql = String::with_capacity(insert.head.len() + rows * insert.columns * 6);
    sql.push_str(insert.head);
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..insert.columns {
            n += 1;
            if c > 0 {
                sql.push_str(", ");
            }
            if numbered {
                sql.push('$');
                sql.push_str(&n.to_string());
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// Write rows of one table with as few statements as possible.
pub(crate) async fn insert_rows(
    conn: &mut AnyConnection,
    insert: RowInsert,
    rows: &[&[Arg]],
) -> Result<(), StoreError> {
    let numbered = !conn.backend_name().eq_ignore_ascii_case("sqlite");
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = multi_row_sql(insert, chunk.len(), numbered);
        // The text holds only the static head and numbered placeholders; every value is bound.
        #[allow(clippy::disallowed_methods)]
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            q = bind_all(q, row);
        }
        let res = q.execute(&mut *conn).await.map_err(StoreError::from_db)?;
        if res.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::Conflict("row_count"));
        }
    }
    Ok(())
}

/// Give each pending append its place in its workspace's chain, inside the committing
/// transaction: claim `n` sequence numbers by moving the head's `seq` (an UPDATE, so the head
/// row stays locked until this transaction ends and a second process appending to the same
/// PostgreSQL database waits, then reads the moved head), hash the entries in order from the
/// head's hash, and store the new hash. Returns the rows to insert into `activity_log`.
async fn chain_appends(
    conn: &mut AnyConnection,
    appends: &[&LogAppend],
) -> Result<Vec<Vec<Arg>>, StoreError> {
    use sqlx::Row;
    let mut rows = Vec::with_capacity(appends.len());
    // Heads are locked in one global order (sorted ids), so two writers whose groups touch
    // the same workspaces cannot deadlock.
    let mut workspaces: Vec<&str> = appends.iter().map(|a| a.workspace_id.as_str()).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    for ws in workspaces {
        let n = appends.iter().filter(|a| a.workspace_id == ws).count() as i64;
        let claim = || {
            sqlx::query(
                "UPDATE activity_heads SET seq = seq + $2 WHERE workspace_id = $1 RETURNING seq, hash",
            )
            .bind(ws)
            .bind(n)
        };
        let claimed = match claim()
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::from_db)?
        {
            Some(row) => row,
            None => {
                // The workspace's first entry: create its head, then claim.
                sqlx::query(
                    "INSERT INTO activity_heads (workspace_id, seq, hash, first_seq, anchor_hash, checkpoint_seq, checkpoint_at) VALUES ($1, 0, $2, 1, $2, 0, $3) ON CONFLICT (workspace_id) DO NOTHING",
                )
                .bind(ws)
                .bind(hex::encode(interlock_crypto::audit::GENESIS))
                .bind(crate::now_ms())
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from_db)?;
                claim()
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(StoreError::from_db)?
            }
        };
        let new_seq: i64 = claimed.try_get("seq").map_err(StoreError::Db)?;
        let hash: String = claimed.try_get("hash").map_err(StoreError::Db)?;
        let mut prev = decode_hash(&hash)?;
        let mut seq = new_seq - n;
        for a in appends.iter().filter(|a| a.workspace_id == ws) {
            seq += 1;
            prev = interlock_crypto::audit::chain_hash(&prev, seq as u64, &a.leaf);
            let mut row = a.columns.clone();
            row.push(Arg::Text(a.workspace_id.clone()));
            row.push(Arg::Int(seq));
            row.push(Arg::Text(hex::encode(prev)));
            rows.push(row);
        }
        let moved =
            sqlx::query("UPDATE activity_heads SET hash = $2 WHERE workspace_id = $1 AND seq = $3")
                .bind(ws)
                .bind(hex::encode(prev))
                .bind(new_seq)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from_db)?;
        if moved.rows_affected() != 1 {
            return Err(StoreError::Conflict("activity_head_moved"));
        }
    }
    Ok(rows)
}

pub(crate) fn decode_hash(hex_text: &str) -> Result<[u8; 32], StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out)
        .map_err(|_| StoreError::Integrity(interlock_crypto::CryptoError::Malformed))?;
    Ok(out)
}

async fn commit_batch(conn: &mut AnyConnection, batch: &[Job]) -> Result<(), StoreError> {
    let mut tx = conn.begin().await.map_err(StoreError::from_db)?;
    // Mergeable row inserts wait until the group's other statements have run (so the rows they
    // reference, e.g. a conversation created in the same group, exist), then go in per table.
    // Activity-log appends are chained after the actions they record, in unit order.
    let mut deferred: Vec<(RowInsert, Vec<&[Arg]>)> = Vec::new();
    let mut appends: Vec<&LogAppend> = Vec::new();
    for job in batch {
        for stmt in &job.unit {
            if let Some(a) = &stmt.append {
                appends.push(a);
                continue;
            }
            match stmt.row_insert {
                Some(ins) if stmt.expect_rows.is_none() => {
                    match deferred.iter_mut().find(|(i, _)| *i == ins) {
                        Some((_, rows)) => rows.push(&stmt.args),
                        None => deferred.push((ins, vec![&stmt.args])),
                    }
                }
                _ => exec_stmt(&mut tx, stmt).await?,
            }
        }
    }
    let log_rows = if appends.is_empty() {
        Vec::new()
    } else {
        chain_appends(&mut tx, &appends).await?
    };
    for (ins, rows) in &deferred {
        insert_rows(&mut tx, *ins, rows).await?;
    }
    if !log_rows.is_empty() {
        let refs: Vec<&[Arg]> = log_rows.iter().map(|r| r.as_slice()).collect();
        insert_rows(&mut tx, LOG_INSERT, &refs).await?;
    }
    tx.commit().await.map_err(StoreError::from_db)
}

async fn commit_one(conn: &mut AnyConnection, job: &Job) -> Result<(), StoreError> {
    let mut tries = 0;
    loop {
        match commit_batch(conn, std::slice::from_ref(job)).await {
            // Another process appended to the same chain in between: read the head again.
            Err(StoreError::Conflict("activity_head_moved")) if tries < 5 => tries += 1,
            other => return other,
        }
    }
}

async fn run_writer(mut conn: AnyConnection, mut rx: mpsc::Receiver<Msg>, stats: Arc<WriterStats>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while let Some(first) = rx.recv().await {
        match first {
            Msg::Work(job) => batch.push(job),
            Msg::Close(done) => {
                closing = Some(done);
                break;
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Work(job)) => batch.push(job),
                Ok(Msg::Close(done)) => {
                    closing = Some(done);
                    break;
                }
                Err(_) => break,
            }
        }
        let result = if batch.len() == 1 {
            commit_one(&mut conn, &batch[0]).await
        } else {
            commit_batch(&mut conn, &batch).await
        };
        match result {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.units.fetch_add(batch.len() as u64, Ordering::Relaxed);
                metrics::counter!("interlock_store_commits_total").increment(1);
                metrics::histogram!("interlock_store_units_per_commit").record(batch.len() as f64);
                for job in batch.drain(..) {
                    let _ = job.reply.send(Ok(()));
                }
            }
            Err(err) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.reply.send(Err(err));
                }
            }
            Err(_) => {
                stats.split_groups.fetch_add(1, Ordering::Relaxed);
                // One unit spoiled the group: the transaction rolled back, so nothing of any unit
                // was written. Commit each unit alone so only the faulty one fails.
                for job in batch.drain(..) {
                    let r = commit_one(&mut conn, &job).await;
                    if r.is_ok() {
                        stats.commits.fetch_add(1, Ordering::Relaxed);
                        stats.units.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = job.reply.send(r);
                }
            }
        }
        if closing.is_some() {
            break;
        }
    }
    let _ = conn.close().await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

fn after_connect(
    conn: &mut AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move { tune(conn).await })
}

async fn tune(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        // WAL + FULL: a commit is on disk before it returns. secure_delete overwrites freed
        // pages; temp_store keeps sort and temp data out of temp files.
        for pragma in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = FULL",
            "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 10000",
            "PRAGMA secure_delete = ON",
            "PRAGMA temp_store = MEMORY",
            // Checkpoints run from a background task (see `checkpointer`), never inside a
            // commit, so a write is never held up by copying the WAL into the database.
            "PRAGMA wal_autocheckpoint = 0",
        ] {
            conn.execute(pragma).await?;
        }
    } else {
        conn.execute("SET synchronous_commit = on").await?;
    }
    Ok(())
}

/// SQLite only: move committed WAL frames into the database file in the background, without
/// blocking the writer (PASSIVE), so the WAL does not grow without bound.
pub(crate) fn spawn_checkpointer(pool: AnyPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    });
}

fn url_for(backend: &Backend) -> String {
    match backend {
        Backend::Sqlite { path } => format!("sqlite://{}?mode=rwc", path.display()),
        Backend::Postgres { url } => url.clone(),
    }
}

/// Open the reader pool and the writer's own connection, and run migrations.
pub async fn open(backend: &Backend) -> Result<(AnyPool, Writer), StoreError> {
    sqlx::any::install_default_drivers();
    let url = url_for(backend);
    let opts: AnyConnectOptions = url.parse().map_err(StoreError::from_db)?;
    {
        let mut conn = AnyConnection::connect_with(&opts)
            .await
            .map_err(StoreError::from_db)?;
        tune(&mut conn).await.map_err(StoreError::from_db)?;
        migrate(&mut conn, backend).await?;
        let _ = conn.close().await;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(if backend.is_sqlite() { 8 } else { 16 })
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(after_connect)
        .connect_with(opts.clone())
        .await
        .map_err(StoreError::from_db)?;
    if backend.is_sqlite() {
        spawn_checkpointer(pool.clone());
    }
    let writer = Writer::spawn(opts).await?;
    Ok((pool, writer))
}

async fn migrate(conn: &mut AnyConnection, backend: &Backend) -> Result<(), StoreError> {
    let bytes = if backend.is_sqlite() { "BLOB" } else { "BYTEA" };
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(StoreError::from_db)?;
    for (version, statements) in MIGRATIONS {
        let applied: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::from_db)?;
        if applied.is_some() {
            continue;
        }
        let mut tx = conn.begin().await.map_err(StoreError::from_db)?;
        for stmt in *statements {
            let sql = stmt.replace("{BYTES}", bytes);
            // The text is a compile-time migration with only the byte type substituted.
            #[allow(clippy::disallowed_methods)]
            tx.execute(sqlx::AssertSqlSafe(sql))
                .await
                .map_err(StoreError::from_db)?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_db)?;
        tx.commit().await.map_err(StoreError::from_db)?;
    }
    Ok(())
}

/// Make sure a PostgreSQL database exists, creating it through the server's `postgres`
/// database when it does not. The name is checked to be a plain identifier because `CREATE
/// DATABASE` cannot take it as a parameter.
pub async fn ensure_pg_database(server_url: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Config(
            "PostgreSQL database names must be lower-case letters, digits and _".into(),
        ));
    }
    sqlx::any::install_default_drivers();
    let admin = with_database(server_url, "postgres")?;
    let mut conn = AnyConnection::connect(&admin)
        .await
        .map_err(StoreError::from_db)?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .map_err(StoreError::from_db)?;
    if exists.is_none() {
        let ddl = format!("CREATE DATABASE \"{name}\"");
        // `name` was checked above to be a plain identifier.
        #[allow(clippy::disallowed_methods)]
        if let Err(e) = conn.execute(sqlx::AssertSqlSafe(ddl)).await {
            // Another process may have created it in between.
            let again: Option<(i32,)> =
                sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
                    .bind(name)
                    .fetch_optional(&mut conn)
                    .await
                    .map_err(StoreError::from_db)?;
            if again.is_none() {
                return Err(StoreError::from_db(e));
            }
        }
    }
    Ok(())
}

/// Replace the database name in a PostgreSQL URL.
pub fn with_database(url: &str, db: &str) -> Result<String, StoreError> {
    let bad =
        || StoreError::Config("database URL must look like postgres://host[:port]/name".into());
    let scheme_end = url.find("://").ok_or_else(bad)? + 3;
    let (head, rest) = url.split_at(scheme_end);
    let (authority_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority_path.split('/').next().ok_or_else(bad)?;
    let mut out = format!("{head}{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// The database name in a PostgreSQL URL (`interlock` when it names none).
pub fn database_name(url: &str) -> String {
    let after = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = after.split('?').next().unwrap_or("");
    match path.split_once('/') {
        Some((_, db)) if !db.is_empty() => db.to_owned(),
        _ => "interlock".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_text_has_only_placeholders() {
        let ins = RowInsert {
            head: "INSERT INTO t (a, b) VALUES ",
            columns: 2,
        };
        assert_eq!(
            multi_row_sql(ins, 3, true),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)"
        );
        assert_eq!(
            multi_row_sql(ins, 2, false),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    fn url_rewriting() {
        assert_eq!(
            with_database(
                "postgres://u@127.0.0.1:5432/base?sslmode=disable",
                "base_eu"
            )
            .expect("ok"),
            "postgres://u@127.0.0.1:5432/base_eu?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1", "x").expect("ok"),
            "postgres://127.0.0.1/x"
        );
        assert_eq!(database_name("postgres://h/base?x=1"), "base");
        assert_eq!(database_name("postgres://h"), "interlock");
    }
}
