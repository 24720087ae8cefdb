//! Region master keys, held as files outside the database.
//!
//! Layout: `<key_dir>/<region>/master-v<N>.key`, 64 hex digits, mode 0600, in a 0700 folder.
//! The highest version is active for wrapping; older versions keep unwrapping until retired.
//! A key file that others can read is refused at start-up.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use interlock_domain::Region;
use zeroize::Zeroizing;

use crate::{Aad, AeadKey, CryptoError, KeyMaterial};

/// One version of a region's master key.
#[derive(Debug)]
pub struct MasterKey {
    pub region: Region,
    pub version: i64,
    aead: AeadKey,
}

impl MasterKey {
    fn aad(&self, workspace: &str, ws_key_version: i64) -> Aad {
        Aad::new(
            workspace,
            "workspace_keys",
            &ws_key_version.to_string(),
            "key",
            &format!("{}/master/v{}", self.region, self.version),
        )
    }

    /// Wrap a workspace key under this master key, bound to the workspace and key version.
    pub fn wrap_workspace_key(
        &self,
        workspace: &str,
        ws_key_version: i64,
        material: &KeyMaterial,
    ) -> Result<Vec<u8>, CryptoError> {
        self.aead
            .wrap(&self.aad(workspace, ws_key_version), material)
    }

    fn region_aad(&self, table: &str, record: &str, field: &str) -> Aad {
        Aad::new(
            &format!("region:{}", self.region),
            table,
            record,
            field,
            &format!("{}/master/v{}", self.region, self.version),
        )
    }

    /// Seal a small region-level secret that belongs to no workspace (an operator staff
    /// member's email or TOTP secret), bound to its table, record and field.
    pub fn seal_region_record(
        &self,
        table: &str,
        record: &str,
        field: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.aead
            .seal(&self.region_aad(table, record, field), plaintext)
    }

    /// Open what [`MasterKey::seal_region_record`] sealed (same table, record and field).
    pub fn open_region_record(
        &self,
        table: &str,
        record: &str,
        field: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.aead
            .open(&self.region_aad(table, record, field), sealed)
    }

    pub fn unwrap_workspace_key(
        &self,
        workspace: &str,
        ws_key_version: i64,
        wrapped: &[u8],
    ) -> Result<KeyMaterial, CryptoError> {
        self.aead
            .unwrap_key(&self.aad(workspace, ws_key_version), wrapped)
    }
}

/// All master key versions of one region.
#[derive(Debug)]
pub struct Keyring {
    dir: PathBuf,
    region: Region,
    keys: RwLock<BTreeMap<i64, Arc<MasterKey>>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CryptoError + '_ {
    move |source| CryptoError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Keyring {
    /// Open the region's key folder, creating it and a first master key when there is none.
    pub fn open_or_create(key_dir: &Path, region: Region) -> Result<Self, CryptoError> {
        let ring = Self::open(key_dir, region)?;
        if ring.versions().is_empty() {
            ring.rotate()?;
        }
        Ok(ring)
    }

    /// Open the region's key folder; it may hold no key yet.
    pub fn open(key_dir: &Path, region: Region) -> Result<Self, CryptoError> {
        let dir = key_dir.join(region.as_str());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        let ring = Self {
            dir,
            region,
            keys: RwLock::new(BTreeMap::new()),
        };
        ring.reload()?;
        Ok(ring)
    }

    pub fn region(&self) -> Region {
        self.region
    }

    fn reload(&self) -> Result<(), CryptoError> {
        let mut found = BTreeMap::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(version) = name
                .to_str()
                .and_then(|n| n.strip_prefix("master-v"))
                .and_then(|n| n.strip_suffix(".key"))
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let mode = fs::metadata(&path)
                .map_err(io_err(&path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(CryptoError::KeyFilePermissions {
                    path: path.display().to_string(),
                    mode: mode & 0o777,
                });
            }
            let text = Zeroizing::new(fs::read_to_string(&path).map_err(io_err(&path))?);
            let bytes =
                Zeroizing::new(hex::decode(text.trim()).map_err(|_| CryptoError::InvalidKey)?);
            let material = KeyMaterial::from_slice(&bytes)?;
            found.insert(
                version,
                Arc::new(MasterKey {
                    region: self.region,
                    version,
                    aead: AeadKey::new(&material)?,
                }),
            );
        }
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = found;
        Ok(())
    }

    /// The versions present, oldest first.
    pub fn versions(&self) -> Vec<i64> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// The newest version: the one new workspace keys are wrapped under.
    pub fn active(&self) -> Result<Arc<MasterKey>, CryptoError> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.values()
            .next_back()
            .cloned()
            .ok_or(CryptoError::UnknownMasterKey {
                region: self.region.to_string(),
                version: 0,
            })
    }

    /// A given version. A miss re-reads the folder once, so a key rotated by another process
    /// (`interlock keys rotate`) is picked up without a restart.
    pub fn get(&self, version: i64) -> Result<Arc<MasterKey>, CryptoError> {
        if let Some(k) = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&version)
        {
            return Ok(k.clone());
        }
        self.reload()?;
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&version)
            .cloned()
            .ok_or(CryptoError::UnknownMasterKey {
                region: self.region.to_string(),
                version,
            })
    }

    /// Create the next master key version and make it active. Returns its version.
    pub fn rotate(&self) -> Result<i64, CryptoError> {
        self.reload()?;
        let next = self.versions().last().copied().unwrap_or(0) + 1;
        let material = KeyMaterial::generate()?;
        let path = self.dir.join(format!("master-v{next}.key"));
        let tmp = self.dir.join(format!(".master-v{next}.key.tmp"));
        {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            let text = Zeroizing::new(format!("{}\n", hex::encode(material.expose())));
            f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        self.reload()?;
        Ok(next)
    }

    /// Delete a master key version. The caller must first have re-wrapped everything under it.
    pub fn retire(&self, version: i64) -> Result<(), CryptoError> {
        if self.versions().last() == Some(&version) {
            return Err(CryptoError::InvalidKey);
        }
        let path = self.dir.join(format!("master-v{version}.key"));
        fs::remove_file(&path).map_err(io_err(&path))?;
        self.reload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_rotates_and_keeps_old_versions() {
        let dir = tempfile::tempdir().expect("tmp");
        let ring = Keyring::open_or_create(dir.path(), Region::Eu).expect("open");
        assert_eq!(ring.versions(), vec![1]);
        let ws_key = KeyMaterial::generate().expect("rng");
        let wrapped = ring
            .active()
            .expect("active")
            .wrap_workspace_key("ws_a", 1, &ws_key)
            .expect("wrap");
        assert_eq!(ring.rotate().expect("rotate"), 2);
        assert_eq!(ring.active().expect("active").version, 2);
        let back = ring
            .get(1)
            .expect("v1")
            .unwrap_workspace_key("ws_a", 1, &wrapped)
            .expect("unwrap");
        assert_eq!(back.expose(), ws_key.expose());
        // Bound to workspace and version.
        assert!(
            ring.get(1)
                .expect("v1")
                .unwrap_workspace_key("ws_b", 1, &wrapped)
                .is_err()
        );
        // A second process sees the same keys.
        let again = Keyring::open_or_create(dir.path(), Region::Eu).expect("reopen");
        assert_eq!(again.versions(), vec![1, 2]);
        ring.retire(1).expect("retire");
        assert!(ring.get(1).is_err());
        assert!(ring.retire(2).is_err(), "the active key cannot be retired");
    }

    #[test]
    fn key_files_are_private_and_loose_ones_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let _ring = Keyring::open_or_create(dir.path(), Region::Us).expect("open");
        let file = dir.path().join("us/master-v1.key");
        let mode = fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            Keyring::open(dir.path(), Region::Us),
            Err(CryptoError::KeyFilePermissions { .. })
        ));
    }
}
