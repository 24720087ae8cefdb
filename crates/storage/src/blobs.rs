//! The blob store: a folder of sealed files, `<root>/<workspace>/<attachment>` and access archives
//! at `<root>/<workspace>/exports/<data request>`. Files are
//! written to a temporary name, synced, renamed and the folder synced, so a blob is either whole
//! or absent. Only ciphertext is ever written, temporary files included.

use std::path::{Path, PathBuf};

use interlock_domain::{AttachmentId, DataRequestId, WorkspaceId};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, ws: &WorkspaceId, id: &AttachmentId) -> PathBuf {
        // Both ids are parsed types made of [a-z0-9_], so they cannot escape the root.
        self.root.join(ws.as_str()).join(id.as_str())
    }

    pub async fn put(
        &self,
        ws: &WorkspaceId,
        id: &AttachmentId,
        sealed: &[u8],
    ) -> std::io::Result<()> {
        let dir = self.root.join(ws.as_str());
        tokio::fs::create_dir_all(&dir).await?;
        let tmp = dir.join(format!(".{}.tmp", id.as_str()));
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(sealed).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, self.path(ws, id)).await?;
        tokio::fs::File::open(&dir).await?.sync_all().await?;
        Ok(())
    }

    pub async fn get(&self, ws: &WorkspaceId, id: &AttachmentId) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(ws, id)).await
    }

    fn export_path(&self, ws: &WorkspaceId, id: &DataRequestId) -> PathBuf {
        self.root
            .join(ws.as_str())
            .join("exports")
            .join(id.as_str())
    }

    /// Store a sealed access archive (durably: written to a temporary file, synced, renamed).
    pub async fn put_export(
        &self,
        ws: &WorkspaceId,
        id: &DataRequestId,
        sealed: &[u8],
    ) -> std::io::Result<()> {
        let dir = self.root.join(ws.as_str()).join("exports");
        tokio::fs::create_dir_all(&dir).await?;
        let tmp = dir.join(format!(".{}.tmp", id.as_str()));
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(sealed).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, self.export_path(ws, id)).await?;
        tokio::fs::File::open(&dir).await?.sync_all().await?;
        Ok(())
    }

    pub async fn get_export(
        &self,
        ws: &WorkspaceId,
        id: &DataRequestId,
    ) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.export_path(ws, id)).await
    }

    pub async fn delete_export(&self, ws: &WorkspaceId, id: &DataRequestId) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.export_path(ws, id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Remove a workspace's whole folder (its purge); absent is fine.
    pub async fn delete_workspace(&self, ws: &WorkspaceId) -> std::io::Result<()> {
        match tokio::fs::remove_dir_all(self.root.join(ws.as_str())).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub async fn delete(&self, ws: &WorkspaceId, id: &AttachmentId) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path(ws, id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
