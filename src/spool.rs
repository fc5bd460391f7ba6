//! Spooled files: an upload (`docker load`, `import`) or a layer (`commit`)
//! written under `<data-root>/tmp` while it is worked on. A `Spool` owns its
//! file: whoever holds it last (the actor that reads it) removes it by
//! dropping it, whether the work succeeded, failed, or was never started. A
//! leaf: it imports nothing of the engine but its error type.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
}

impl Spool {
    /// A new, empty file in `dir` named after `what`, opened for writing.
    pub fn create(dir: &Path, what: &str) -> Result<(Spool, std::fs::File)> {
        private_dir(dir)?;
        let spool = Spool {
            path: dir.join(format!(
                "{what}-{}-{}",
                std::process::id(),
                crate::clock::now_ns()
            )),
        };
        let file = std::fs::File::create(&spool.path)
            .map_err(|e| Error::internal(format!("spooling: {e}")))?;
        Ok((spool, file))
    }

    /// Writes a request body (or a download) to a new file in `dir`.
    pub async fn from_stream<S, B, E>(dir: &Path, what: &str, mut stream: S) -> Result<Spool>
    where
        S: futures_util::Stream<Item = std::result::Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let (spool, file) = {
            let (dir, what) = (dir.to_path_buf(), what.to_string());
            tokio::task::spawn_blocking(move || Spool::create(&dir, &what))
                .await
                .map_err(|e| Error::internal(format!("spooling: {e}")))??
        };
        let mut file = tokio::fs::File::from_std(file);
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| Error::invalid(format!("reading the {what} input: {e}")))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, chunk.as_ref())
                .await
                .map_err(|e| Error::internal(format!("spooling: {e}")))?;
        }
        // tokio writes in the background: without this the last chunk may not be
        // in the file yet when it is read (seen as a truncated archive).
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(|e| Error::internal(format!("spooling: {e}")))?;
        Ok(spool)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes `dir` (and its parents) if missing, and root's alone: what is
/// spooled there (layers, contexts, copies) may hold setuid files and
/// devices that no other user may reach, as dockerd's 0700 tmp.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::internal(format!("reading {}: {e}", dir.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::internal(format!("setting the mode of {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Removes what a killed daemon left in its spool directory (spooled
/// uploads, build contexts and copies): nothing there outlives a daemon.
/// Called at start, before anything spools.
pub fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        match removed {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a leftover of an earlier run")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "removing a leftover of an earlier run")
            }
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
