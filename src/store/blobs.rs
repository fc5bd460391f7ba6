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

/// A blob being written while its bytes pass by (a layer as it is downloaded or
/// loaded). Committed under its digest once complete; removed if dropped first.
pub struct BlobWriter {
    tmp: PathBuf,
    dir: PathBuf,
    file: Option<std::fs::File>,
    hasher: Sha256,
    size: u64,
}

impl BlobStore {
    pub fn writer(&self) -> Result<BlobWriter> {
        let mut rnd = [0u8; 8];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").context("reading /dev/urandom")?,
            &mut rnd,
        )
        .context("reading /dev/urandom")?;
        let tmp = self.dir.join(format!(".incoming-{}", hex::encode(rnd)));
        let file = std::fs::File::create(&tmp).context("creating a blob")?;
        Ok(BlobWriter {
            tmp,
            dir: self.dir.clone(),
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    pub fn path_of(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.dir.join(hex_of(digest)?))
    }

    /// Removes `.incoming-*` leftovers of a crash.
    pub fn sweep_incoming(&self) {
        if let Ok(dir) = std::fs::read_dir(&self.dir) {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(".incoming-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

impl BlobWriter {
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        match self.file.as_mut() {
            Some(f) => std::io::Write::write_all(f, bytes),
            None => Err(std::io::Error::other("blob already committed")),
        }
    }

    /// Stores the blob under the digest of what was written; returns (digest, size).
    pub fn commit(mut self) -> Result<(String, u64)> {
        let digest = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        drop(self.file.take());
        let target = self.dir.join(hex_of(&digest)?);
        std::fs::rename(&self.tmp, &target).context("storing a blob")?;
        Ok((digest, self.size))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads `inner` and writes every byte read into a blob.
pub struct TeeReader<R> {
    pub inner: R,
    pub blob: BlobWriter,
}

impl<R: std::io::Read> std::io::Read for TeeReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.blob.write(&out[..n])?;
        Ok(n)
    }
}
