//! Content-addressed blobs (manifests, image configs) under <data-root>/blobs/sha256.
//! Written to a temporary name and renamed, so a blob is there whole or not at all.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Context, Error, Result};

pub struct BlobStore {
    dir: PathBuf,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> Result<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| Error::invalid(format!("invalid digest: {digest}")))
}

impl BlobStore {
    pub fn open(data_root: &Path) -> Result<BlobStore> {
        let dir = data_root.join("blobs").join("sha256");
        std::fs::create_dir_all(&dir).context(format_args!("creating {}", dir.display()))?;
        Ok(BlobStore { dir })
    }

    /// Stores `bytes`, checking they are what `digest` names.
    pub fn put(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let hex = hex_of(digest)?;
        let actual = sha256_digest(bytes);
        if actual != digest {
            return Err(Error::invalid(format!(
                "blob content is {actual}, not {digest}"
            )));
        }
        let path = self.dir.join(hex);
        if path.exists() {
            return Ok(());
        }
        let tmp = self.dir.join(format!(".{hex}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, bytes).context("writing a blob")?;
        std::fs::rename(&tmp, &path).context("storing a blob")
    }

    pub fn get(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(hex_of(digest)?);
        std::fs::read(&path).map_err(|e| Error::not_found(format!("blob {digest}: {e}")))
    }

    pub fn remove(&self, digest: &str) -> Result<()> {
        match std::fs::remove_file(self.dir.join(hex_of(digest)?)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::internal(format!("removing blob {digest}: {e}"))),
        }
    }
}
