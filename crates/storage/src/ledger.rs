//! The erasure ledger: a record of every erasure, kept apart from the backed-up data.
//!
//! Layout: `<key_dir>/<region>/erasure-ledger.jsonl`, mode 0600 in the key folder (0700), one
//! JSON object per line (`{"kind":"contact",…}` or `{"kind":"workspace",…}`). It lives beside
//! the master keys, not in the database, because a backup of the database is taken *before* an
//! erasure and restored *after* it: whatever the backup holds is by definition out of date.
//! A restore reads this file from the source key folder (which it needs anyway, for the master
//! keys) and applies every record again, so an erased subject never comes back.
//!
//! Invariants:
//! - Only pseudonymous ids (`ws_…`, `ct_…`, `sk_…`) and times are written, never personal data.
//! - Append-only: records are never rewritten or removed. An append is one `write` of whole
//!   lines under an exclusive file lock, then `fsync`, before it returns. Callers append
//!   *before* the deleting transaction commits (write-ahead): a crash in between means the
//!   erasure is applied again on restore, never that it is lost.
//! - A torn last line (a crash inside an append that therefore never returned, so its
//!   deletion never committed) is ignored when read and cut off by the next append; a bad line
//!   anywhere else is an error, never skipped.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use interlock_domain::Region;

use crate::StoreError;

/// The ledger's file name inside `<key_dir>/<region>/`.
pub const LEDGER_FILE: &str = "erasure-ledger.jsonl";

/// One erasure. Only pseudonymous ids: never a name, email or content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErasureRecord {
    /// A data subject (contact) erased: its subject keys destroyed, its rows purged.
    Contact {
        workspace_id: String,
        contact_id: String,
        subject_key_ids: Vec<String>,
        at_ms: i64,
    },
    /// A whole workspace deleted.
    Workspace { workspace_id: String, at_ms: i64 },
}

impl ErasureRecord {
    /// The workspace the record is about.
    pub fn workspace_id(&self) -> &str {
        match self {
            ErasureRecord::Contact { workspace_id, .. }
            | ErasureRecord::Workspace { workspace_id, .. } => workspace_id,
        }
    }
}

/// A region's erasure ledger (see the module documentation).
#[derive(Debug)]
pub struct ErasureLedger {
    path: PathBuf,
    /// Serialises appends within this process; the file lock does it across processes.
    lock: Mutex<()>,
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Config(format!("erasure ledger {}: {e}", path.display()))
}

fn corrupt(path: &Path, line: usize) -> StoreError {
    StoreError::Config(format!(
        "erasure ledger {}: line {line} is not a valid record",
        path.display()
    ))
}

impl ErasureLedger {
    /// Open the region's ledger, creating the folder (0700) and an empty file (0600) if there
    /// is none. A ledger that others can read or write is refused, like a key file.
    pub fn open(key_dir: &Path, region: Region) -> Result<Self, StoreError> {
        let dir = key_dir.join(region.as_str());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io(&dir, e))?;
        let path = dir.join(LEDGER_FILE);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                f.sync_all().map_err(|e| io(&path, e))?;
                fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io(&dir, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&path, e)),
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        if !meta.is_file() {
            return Err(StoreError::Config(format!(
                "erasure ledger {} is not a regular file",
                path.display()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Config(format!(
                "erasure ledger {} has mode {mode:o}; it must be 0600",
                path.display()
            )));
        }
        Ok(Self {
            path,
            lock: Mutex::new(()),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append records durably (one write + fsync for the slice); called BEFORE the deleting
    /// transaction commits (write-ahead: a crash after the append but before the commit only
    /// means the erasure is applied again on restore, never that it is lost).
    pub fn append(&self, records: &[ErasureRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.len() * 160);
        for r in records {
            serde_json::to_writer(&mut buf, r)
                .map_err(|e| StoreError::Config(format!("erasure ledger record: {e}")))?;
            buf.push(b'\n');
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| io(&self.path, e))?;
        f.lock().map_err(|e| io(&self.path, e))?;
        // A torn tail (a crash inside an earlier append, which therefore never returned and
        // whose deletion never committed) is cut off so the new lines start on a line of their
        // own.
        let len = f.metadata().map_err(|e| io(&self.path, e))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))
                .and_then(|_| f.read_exact(&mut last))
                .map_err(|e| io(&self.path, e))?;
            if last[0] != b'\n' {
                let mut all = Vec::new();
                f.seek(SeekFrom::Start(0))
                    .and_then(|_| f.read_to_end(&mut all))
                    .map_err(|e| io(&self.path, e))?;
                let keep = all.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                f.set_len(keep as u64).map_err(|e| io(&self.path, e))?;
            }
        }
        f.write_all(&buf).map_err(|e| io(&self.path, e))?;
        f.sync_all().map_err(|e| io(&self.path, e))?;
        // The lock is released when `f` closes.
        Ok(())
    }

    /// [`ErasureLedger::append`] on the blocking pool: the file lock (which may wait for
    /// another process) and the fsync do not hold up an async worker meanwhile.
    pub async fn append_off_runtime(
        ledger: &std::sync::Arc<Self>,
        records: Vec<ErasureRecord>,
    ) -> Result<(), StoreError> {
        let ledger = std::sync::Arc::clone(ledger);
        tokio::task::spawn_blocking(move || ledger.append(&records))
            .await
            .map_err(|e| StoreError::Config(format!("erasure ledger append: {e}")))?
    }

    /// Every record, oldest first. A torn last line (no newline) is ignored; any other line
    /// that is not a record is an error.
    pub fn read_all(&self) -> Result<Vec<ErasureRecord>, StoreError> {
        let bytes = fs::read(&self.path).map_err(|e| io(&self.path, e))?;
        parse(&self.path, &bytes)
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<ErasureRecord>, StoreError> {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for (n, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push(serde_json::from_slice(line).map_err(|_| corrupt(path, n + 1))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn contact(n: u32) -> ErasureRecord {
        ErasureRecord::Contact {
            workspace_id: "ws_eu_0123456789abcdef0123456789abcdef".into(),
            contact_id: format!("ct_{n:032x}"),
            subject_key_ids: vec![format!("sk_{n:032x}"), format!("sk_{:032x}", n + 1)],
            at_ms: 1_700_000_000_000 + i64::from(n),
        }
    }

    #[test]
    fn appends_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ErasureLedger::open(dir.path(), Region::Eu).unwrap();
        assert!(ledger.read_all().unwrap().is_empty());
        ledger.append(&[contact(1), contact(2)]).unwrap();
        ledger.append(&[]).unwrap();
        let ws = ErasureRecord::Workspace {
            workspace_id: "ws_eu_ffffffffffffffffffffffffffffffff".into(),
            at_ms: 5,
        };
        ledger.append(std::slice::from_ref(&ws)).unwrap();
        // Another handle (another process) sees the same records.
        let again = ErasureLedger::open(dir.path(), Region::Eu).unwrap();
        assert_eq!(again.read_all().unwrap(), vec![contact(1), contact(2), ws]);
        assert_eq!(
            again.path(),
            dir.path().join("eu").join("erasure-ledger.jsonl")
        );
    }

    #[test]
    fn the_file_is_json_lines_with_a_kind_tag() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ErasureLedger::open(dir.path(), Region::Us).unwrap();
        ledger
            .append(&[ErasureRecord::Workspace {
                workspace_id: "ws_us_00".into(),
                at_ms: 7,
            }])
            .unwrap();
        ledger.append(&[contact(3)]).unwrap();
        let text = fs::read_to_string(ledger.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'));
        assert_eq!(
            lines[0],
            r#"{"kind":"workspace","workspace_id":"ws_us_00","at_ms":7}"#
        );
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["kind"], "contact");
        assert_eq!(v["contact_id"], format!("ct_{:032x}", 3));
        assert_eq!(v["subject_key_ids"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn file_and_folder_are_private_and_loose_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ErasureLedger::open(dir.path(), Region::Au).unwrap();
        let mode = fs::metadata(ledger.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = fs::metadata(dir.path().join("au"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        fs::set_permissions(ledger.path(), fs::Permissions::from_mode(0o644)).unwrap();
        let err = ErasureLedger::open(dir.path(), Region::Au).unwrap_err();
        assert!(err.to_string().contains("0600"), "{err}");
    }

    #[test]
    fn a_torn_tail_is_ignored_then_cut_but_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ErasureLedger::open(dir.path(), Region::Eu).unwrap();
        ledger.append(&[contact(1)]).unwrap();
        // A crash in the middle of an append leaves half a line.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(ledger.path())
            .unwrap();
        f.write_all(br#"{"kind":"contact","workspace_id":"ws_e"#)
            .unwrap();
        drop(f);
        assert_eq!(ledger.read_all().unwrap(), vec![contact(1)]);
        ledger.append(&[contact(2)]).unwrap();
        assert_eq!(ledger.read_all().unwrap(), vec![contact(1), contact(2)]);
        // A damaged complete line is never skipped silently.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(ledger.path())
            .unwrap();
        f.write_all(b"not json\n").unwrap();
        drop(f);
        ledger.append(&[contact(3)]).unwrap();
        let err = ledger.read_all().unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn concurrent_appends_from_threads_keep_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Each thread its own handle, as separate processes would have.
                    let ledger = ErasureLedger::open(&path, Region::Eu).unwrap();
                    for i in 0..25 {
                        ledger.append(&[contact(t * 100 + i)]).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let ledger = ErasureLedger::open(&path, Region::Eu).unwrap();
        assert_eq!(ledger.read_all().unwrap().len(), 100);
    }
}
