//! A build's context: the tar the client sends (plain or gzip, as the CLI
//! sends it), unpacked into a directory of its own that goes when the
//! build ends, and the Dockerfile found in it as dockerd finds it.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::drivers::storage::extract::{apply_tar_at, Apply, Scope, Whiteouts};
use crate::error::{Error, Result};

/// The unpacked context; removed on drop.
pub struct ContextDir {
    path: PathBuf,
}

impl ContextDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ContextDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(error = %e, path = %self.path.display(), "removing a build context");
        }
    }
}

/// Unpacks the tar at `archive` (gzip or plain) into a new directory under
/// `tmp`. Nothing in it can point outside it: absolute names, `..` and
/// entries through symlinks are refused.
pub fn unpack(archive: &Path, tmp: &Path) -> Result<ContextDir> {
    let path = tmp.join(format!("build-{:012x}", crate::random::u64()? >> 16));
    std::fs::create_dir_all(&path)
        .map_err(|e| Error::internal(format!("creating {}: {e}", path.display())))?;
    let dir = ContextDir { path };
    let file = std::fs::File::open(archive)
        .map_err(|e| Error::internal(format!("reading the build context: {e}")))?;
    let mut input = BufReader::with_capacity(64 << 10, file);
    let magic = input
        .fill_buf()
        .map_err(|e| Error::internal(format!("reading the build context: {e}")))?;
    if magic.is_empty() {
        return Err(Error::internal("unexpected EOF"));
    }
    let reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b, 0x08]) {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let root = rustix::fs::open(
        dir.path(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::internal(format!("opening {}: {e}", dir.path().display())))?;
    let opts = Apply {
        whiteouts: Whiteouts::Plain,
        scope: Scope::Beneath,
        under: Vec::new(),
        owner: None,
        ids: None,
        no_overwrite_dir_non_dir: false,
    };
    apply_tar_at(root.as_fd(), reader, &opts).map_err(|e| {
        // What dockerd says of a body that is not a tar.
        if e.message().contains("tar") || e.message().contains("EOF") {
            Error::internal("unexpected EOF")
        } else {
            e
        }
    })?;
    Ok(dir)
}

/// The Dockerfile's text: `name` in the context (a relative path), or the
/// lowercase `dockerfile` when the default name is missing, as dockerd.
pub fn dockerfile(dir: &ContextDir, name: &str) -> Result<String> {
    let missing = || Error::internal(format!("Cannot locate specified Dockerfile: {name}"));
    let rel = crate::images::build::context_path(name).map_err(|_| missing())?;
    let mut candidates = vec![rel.clone()];
    if name == "Dockerfile" {
        candidates.push("dockerfile".into());
    }
    for c in candidates {
        let path = dir.path().join(&c);
        // Inside the context only: no symlink may lead out of it.
        let Ok(real) = path.canonicalize() else {
            continue;
        };
        let Ok(base) = dir.path().canonicalize() else {
            continue;
        };
        if !real.starts_with(&base) || !real.is_file() {
            continue;
        }
        return std::fs::read_to_string(&real)
            .map_err(|e| Error::internal(format!("reading the Dockerfile: {e}")));
    }
    Err(missing())
}

/// `.dockerignore`: dockerd removes the ignore file and the Dockerfile when
/// they are excluded, after reading them (the CLI already left the rest of
/// what it excludes out of the tar).
pub fn apply_ignore(dir: &ContextDir, dockerfile: &str) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(dir.path().join(".dockerignore")) else {
        return Ok(());
    };
    let rules = crate::builder::ignore::IgnoreRules::parse(&text)
        .map_err(|e| Error::invalid(e.to_string()))?;
    for rel in rules.removed_after_reading(dockerfile) {
        let _ = std::fs::remove_file(dir.path().join(rel));
    }
    Ok(())
}
