//! Taking a backup of a cell and restoring one into an empty cell (the file format is in
//! [`crate::backup`]).
//!
//! Invariants:
//! - A backup reads every table in ONE read transaction (SQLite: a deferred transaction on one
//!   connection, whose snapshot is fixed at its first read; PostgreSQL: `REPEATABLE READ READ
//!   ONLY`), so it is one consistent moment of the region; attachment files are those the
//!   snapshot's attachment rows name.
//! - A restore writes only into an empty store, in ONE transaction: every row, then the erasure
//!   ledger's purge, then the commit. Attachment files of erased contacts or deleted workspaces
//!   are never written. A damaged, truncated or foreign backup fails before the commit, and the
//!   files it wrote are removed.

use std::io::{Read, Write};

use futures::TryStreamExt;
use interlock_crypto::Keyring;
use interlock_domain::{AttachmentId, Region, WorkspaceId};

use super::restore::{LEDGER_ON_RESTORE, LedgerReport, apply_in, expire_archives_in};
use super::{Cell, CellConfig};
use crate::StoreError;
use crate::backup::{
    BLOB_PIECE, BackupError, BackupReader, BackupWriter, FRAME_BYTES, Frame, ROWS_PER_FRAME,
    TABLES, TableManifest, decode_bytes, decode_value, encode_bytes, encode_value,
};
use crate::db::{self, Arg};
use crate::ledger::ErasureLedger;

/// How far a backup or restore has got (for a progress bar).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub rows_done: u64,
    pub rows_total: u64,
    pub blobs_done: u64,
    pub blobs_total: u64,
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub backup_id: String,
    pub region: Region,
    pub master_key_version: i64,
    pub tables: Vec<(String, u64)>,
    pub rows: u64,
    pub blobs: u64,
    /// Attachment rows whose file was gone when it was read (deleted after the snapshot).
    pub missing_blobs: u64,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub backup_id: String,
    pub region: Region,
    pub created_at_ms: i64,
    pub rows: u64,
    pub blobs_written: u64,
    /// The erasure ledger's effect.
    pub ledger: LedgerReport,
}

/// The newest migration this version knows.
pub fn schema_version() -> i64 {
    crate::schema::MIGRATIONS
        .last()
        .map(|(v, _)| *v)
        .unwrap_or(0)
}

/// True if there is a file anywhere under `dir` (empty folders do not count).
fn has_files(dir: &std::path::Path) -> std::io::Result<bool> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if !e.file_type()?.is_dir() || has_files(&e.path())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A frame of rows being filled.
struct Batch {
    rows: Vec<Vec<serde_json::Value>>,
    bytes: usize,
}

fn value_size(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len() + 3,
        _ => 12,
    }
}

impl Cell {
    /// Write a consistent, sealed backup of this region to `out` (see [`crate::backup`]).
    pub async fn backup<W: Write>(
        &self,
        out: W,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(W, BackupSummary), BackupError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from_db)?;
        if !tx.backend_name().eq_ignore_ascii_case("sqlite") {
            // Must be the transaction's first statement.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_db)?;
        }
        // The first read fixes the snapshot (SQLite) — every count and row below is of it.
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_db)?;
        if applied != Some(schema_version()) {
            return Err(BackupError::Refused(format!(
                "the store is at schema version {}, this binary at {}",
                applied.unwrap_or(0),
                schema_version()
            )));
        }
        let mut tables = Vec::with_capacity(TABLES.len());
        let mut p = Progress::default();
        for t in TABLES {
            let n: i64 = sqlx::query_scalar(t.count)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_db)?;
            p.rows_total += n as u64;
            if t.name == "attachments" {
                p.blobs_total = n as u64;
            }
            tables.push(TableManifest {
                name: t.name.to_owned(),
                columns: t.columns.iter().map(|(c, _)| (*c).to_owned()).collect(),
                rows: n as u64,
            });
        }
        progress(p);
        let (mut w, header) =
            BackupWriter::start(out, &self.keyring, self.region, schema_version())?;
        w.frame(
            &Frame::Manifest {
                tables: tables.clone(),
                blobs: p.blobs_total,
            },
            false,
        )?;
        let mut blobs: Vec<(String, String)> = Vec::new();
        for (t, m) in TABLES.iter().zip(&tables) {
            let mut batch = Batch {
                rows: Vec::new(),
                bytes: 0,
            };
            let mut seen = 0u64;
            let mut rows = sqlx::query(t.select).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(StoreError::from_db)? {
                let mut values = Vec::with_capacity(t.columns.len());
                for (i, (_, kind)) in t.columns.iter().enumerate() {
                    let v = encode_value(*kind, &row, i)?;
                    batch.bytes += value_size(&v);
                    values.push(v);
                }
                if t.name == "attachments" {
                    // Columns 0 and 1 are workspace_id and id.
                    if let (Some(ws), Some(id)) = (values[0].as_str(), values[1].as_str()) {
                        blobs.push((ws.to_owned(), id.to_owned()));
                    }
                }
                batch.rows.push(values);
                seen += 1;
                if batch.rows.len() >= ROWS_PER_FRAME || batch.bytes >= FRAME_BYTES {
                    p.rows_done += batch.rows.len() as u64;
                    w.frame(
                        &Frame::Rows {
                            table: t.name.to_owned(),
                            rows: std::mem::take(&mut batch.rows),
                        },
                        false,
                    )?;
                    batch.bytes = 0;
                    progress(p);
                }
            }
            drop(rows);
            if !batch.rows.is_empty() {
                p.rows_done += batch.rows.len() as u64;
                w.frame(
                    &Frame::Rows {
                        table: t.name.to_owned(),
                        rows: batch.rows,
                    },
                    false,
                )?;
                progress(p);
            }
            if seen != m.rows {
                return Err(BackupError::Refused(format!(
                    "{}: counted {} rows but read {seen} (the snapshot moved)",
                    t.name, m.rows
                )));
            }
        }
        let mut written = 0u64;
        let mut missing = 0u64;
        for (ws, id) in &blobs {
            let (Ok(wsid), Ok(atid)) = (WorkspaceId::parse(ws), AttachmentId::parse(id)) else {
                return Err(BackupError::Store(StoreError::Integrity(
                    interlock_crypto::CryptoError::Malformed,
                )));
            };
            match self.blobs.get(&wsid, &atid).await {
                Ok(bytes) => {
                    let mut pieces = bytes.chunks(BLOB_PIECE).peekable();
                    if pieces.peek().is_none() {
                        w.frame(
                            &Frame::Blob {
                                workspace_id: ws.clone(),
                                attachment_id: id.clone(),
                                data: String::new(),
                                last: true,
                            },
                            false,
                        )?;
                    }
                    while let Some(piece) = pieces.next() {
                        w.frame(
                            &Frame::Blob {
                                workspace_id: ws.clone(),
                                attachment_id: id.clone(),
                                data: encode_bytes(piece),
                                last: pieces.peek().is_none(),
                            },
                            false,
                        )?;
                    }
                    written += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Deleted after the snapshot was taken.
                    missing += 1;
                }
                Err(e) => return Err(BackupError::Store(StoreError::Io(e))),
            }
            p.blobs_done += 1;
            progress(p);
        }
        // A read-only transaction: nothing to commit.
        tx.rollback().await.map_err(StoreError::from_db)?;
        w.frame(
            &Frame::End {
                rows: p.rows_done,
                blobs: written,
            },
            true,
        )?;
        let out = w.finish()?;
        Ok((
            out,
            BackupSummary {
                backup_id: header.backup_id,
                region: self.region,
                master_key_version: header.master_key_version,
                tables: tables.into_iter().map(|t| (t.name, t.rows)).collect(),
                rows: p.rows_done,
                blobs: written,
                missing_blobs: missing,
            },
        ))
    }
}

/// Restore a backup into the empty store `target` (its key folder must be the source
/// deployment's: it holds the master key that opens the backup, and the erasure ledger that
/// is applied before the restore commits). The cell is closed afterwards.
pub async fn restore<R: Read>(
    input: R,
    target: CellConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<RestoreSummary, BackupError> {
    let mut reader = BackupReader::open(input)?;
    let header = reader.header().clone();
    if header.region != target.region {
        return Err(BackupError::Refused(format!(
            "the backup is of region {}, the target of region {}",
            header.region, target.region
        )));
    }
    if header.schema_version != schema_version() {
        return Err(BackupError::Refused(format!(
            "the backup is at schema version {}, this binary at {}: restore it with the release \
             that made it, then upgrade",
            header.schema_version,
            schema_version()
        )));
    }
    // Open the keys without creating any: a key folder without this region's master keys is
    // not the source deployment's.
    let keyring = Keyring::open(&target.key_dir, target.region).map_err(|e| {
        BackupError::Keys(format!(
            "key folder {}: {e}",
            target.key_dir.join(target.region.as_str()).display()
        ))
    })?;
    if keyring.versions().is_empty() {
        return Err(BackupError::Keys(format!(
            "the key folder {} has no master key for region {}: give the source deployment's \
             --key-dir",
            target.key_dir.display(),
            target.region
        )));
    }
    reader.unlock(&keyring)?;
    let ledger = ErasureLedger::open(&target.key_dir, target.region)?.read_all()?;
    let cell = Cell::open(target).await?;
    let mut written: Vec<(WorkspaceId, AttachmentId)> = Vec::new();
    let result = restore_into(&cell, &mut reader, &ledger, &mut written, progress).await;
    let result = match result {
        Ok(mut summary) => {
            summary.backup_id = header.backup_id.clone();
            summary.created_at_ms = header.created_at_ms;
            cell.after_ledger_purge(&summary.ledger, LEDGER_ON_RESTORE, Some(&header.backup_id))
                .await
                .map(|()| summary)
                .map_err(BackupError::from)
        }
        Err(e) => {
            for (ws, at) in &written {
                let _ = cell.blobs.delete(ws, at).await;
                // The workspace folder too, if this restore made it (it is empty then).
                let _ = std::fs::remove_dir(cell.blobs.root().join(ws.as_str()));
            }
            Err(e)
        }
    };
    cell.close().await;
    result
}

async fn restore_into<R: Read>(
    cell: &Cell,
    reader: &mut BackupReader<R>,
    ledger: &[crate::ledger::ErasureRecord],
    written: &mut Vec<(WorkspaceId, AttachmentId)>,
    progress: &mut dyn FnMut(Progress),
) -> Result<RestoreSummary, BackupError> {
    // The target must be empty: every table, and the blob folder.
    for t in TABLES {
        let n: i64 = sqlx::query_scalar(t.count)
            .fetch_one(&cell.pool)
            .await
            .map_err(StoreError::from_db)?;
        if n > 0 {
            return Err(BackupError::Refused(format!(
                "the target store is not empty ({} has rows): restore only into a new store",
                t.name
            )));
        }
    }
    if has_files(cell.blobs.root())? {
        return Err(BackupError::Refused(format!(
            "the target blob folder {} is not empty",
            cell.blobs.root().display()
        )));
    }
    let Some(Frame::Manifest { tables, blobs }) = reader.next_frame()? else {
        return Err(BackupError::Damaged("no manifest".into()));
    };
    let expected: Vec<(&str, Vec<&str>)> = TABLES
        .iter()
        .map(|t| (t.name, t.columns.iter().map(|(c, _)| *c).collect()))
        .collect();
    let got: Vec<(&str, Vec<&str>)> = tables
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.columns.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    if expected != got {
        return Err(BackupError::Refused(
            "the backup's tables and columns differ from this version's schema".into(),
        ));
    }
    let mut p = Progress {
        rows_total: tables.iter().map(|t| t.rows).sum(),
        blobs_total: blobs,
        ..Progress::default()
    };
    progress(p);
    let mut counts = vec![0u64; TABLES.len()];
    let mut table_at = 0usize;
    let mut tx = cell.pool.begin().await.map_err(StoreError::from_db)?;
    let mut report: Option<LedgerReport> = None;
    let mut piece: Option<(String, String, Vec<u8>)> = None;
    let mut blobs_written = 0u64;
    loop {
        let Some(frame) = reader.next_frame()? else {
            return Err(BackupError::Truncated("no end frame".into()));
        };
        match frame {
            Frame::Manifest { .. } => return Err(BackupError::Damaged("a second manifest".into())),
            Frame::Rows { table, rows } => {
                if report.is_some() {
                    return Err(BackupError::Damaged("rows after files".into()));
                }
                // Tables come in order; skip ahead to this one.
                let Some(i) = TABLES[table_at..].iter().position(|t| t.name == table) else {
                    return Err(BackupError::Damaged(format!(
                        "rows of {table} out of order"
                    )));
                };
                table_at += i;
                let spec = &TABLES[table_at];
                let mut args: Vec<Vec<Arg>> = Vec::with_capacity(rows.len());
                for row in &rows {
                    if row.len() != spec.columns.len() {
                        return Err(BackupError::Damaged(format!(
                            "a row of {table} has the wrong number of values"
                        )));
                    }
                    args.push(
                        spec.columns
                            .iter()
                            .zip(row)
                            .map(|((_, kind), v)| decode_value(*kind, v))
                            .collect::<Result<_, _>>()?,
                    );
                }
                let refs: Vec<&[Arg]> = args.iter().map(Vec::as_slice).collect();
                db::insert_rows(&mut tx, spec.insert, &refs).await?;
                counts[table_at] += rows.len() as u64;
                p.rows_done += rows.len() as u64;
                progress(p);
            }
            Frame::Blob {
                workspace_id,
                attachment_id,
                data,
                last,
            } => {
                if report.is_none() {
                    report = Some(apply_in(&mut tx, ledger, cell.region).await?);
                    expire_archives_in(&mut tx).await?;
                }
                let bytes = decode_bytes(&data)?;
                match &mut piece {
                    Some((ws, at, buf)) if *ws == workspace_id && *at == attachment_id => {
                        buf.extend_from_slice(&bytes);
                    }
                    Some(_) => {
                        return Err(BackupError::Damaged("a file is incomplete".into()));
                    }
                    None => piece = Some((workspace_id, attachment_id, bytes)),
                }
                if last {
                    let Some((ws, at, buf)) = piece.take() else {
                        return Err(BackupError::Damaged("a file is incomplete".into()));
                    };
                    let erased = report.as_ref().is_some_and(|r| {
                        r.attachments.contains(&(ws.clone(), at.clone()))
                            || r.workspaces_purged.contains(&ws)
                    });
                    let (Ok(wsid), Ok(atid)) = (WorkspaceId::parse(&ws), AttachmentId::parse(&at))
                    else {
                        return Err(BackupError::Damaged("a file has a bad name".into()));
                    };
                    if !erased {
                        written.push((wsid.clone(), atid.clone()));
                        cell.blobs.put(&wsid, &atid, &buf).await?;
                        blobs_written += 1;
                    }
                    p.blobs_done += 1;
                    progress(p);
                }
            }
            Frame::End { rows, blobs } => {
                if piece.is_some() {
                    return Err(BackupError::Damaged("a file is incomplete".into()));
                }
                for (t, (n, m)) in TABLES.iter().zip(counts.iter().zip(&tables)) {
                    if *n != m.rows {
                        return Err(BackupError::Damaged(format!(
                            "{}: {n} rows, the manifest says {}",
                            t.name, m.rows
                        )));
                    }
                }
                if rows != p.rows_done || blobs != p.blobs_done {
                    return Err(BackupError::Damaged("the totals do not match".into()));
                }
                let report = match report {
                    Some(r) => r,
                    None => {
                        let r = apply_in(&mut tx, ledger, cell.region).await?;
                        expire_archives_in(&mut tx).await?;
                        r
                    }
                };
                // The final frame must also be the end of the file.
                if reader.next_frame()?.is_some() {
                    return Err(BackupError::Damaged("frames after the end".into()));
                }
                tx.commit().await.map_err(StoreError::from_db)?;
                return Ok(RestoreSummary {
                    backup_id: String::new(),
                    region: cell.region,
                    created_at_ms: 0,
                    rows,
                    blobs_written,
                    ledger: report,
                });
            }
        }
    }
}
