//! A build's context: the tar the client sends (plain, gzip, bzip2, xz or
//! zstd, as dockerd detects it), unpacked into a directory of its own that goes when the
//! build ends, and the Dockerfile found in it as dockerd finds it.

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::drivers::storage::extract::{apply_tar_at, Apply, Scope, Whiteouts};
use crate::error::{Error, Result};

/// The unpacked context; removed on drop.
pub struct ContextDir {
    path: PathBuf,
}

impl ContextDir {
    /// A new empty directory under `tmp`, named `<prefix>-<random>`; the
    /// build-* ones left by a killed daemon are swept at its start.
    pub fn create(tmp: &Path, prefix: &str) -> Result<ContextDir> {
        let path = tmp.join(format!("{prefix}-{:012x}", crate::random::u64()? >> 16));
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::internal(format!("creating {}: {e}", path.display())))?;
        Ok(ContextDir { path })
    }

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

/// Unpacks the tar at `archive` (compressed or not) into a new directory under
/// `tmp`. Nothing in it can point outside it: absolute names, `..` and
/// entries through symlinks are refused.
pub fn unpack(archive: &Path, tmp: &Path) -> Result<ContextDir> {
    let dir = ContextDir::create(tmp, "build")?;
    let file = std::fs::File::open(archive)
        .map_err(|e| Error::internal(format!("reading the build context: {e}")))?;
    let mut input = BufReader::with_capacity(64 << 10, file);
    let magic = input
        .fill_buf()
        .map_err(|e| Error::internal(format!("reading the build context: {e}")))?;
    if magic.is_empty() {
        return Err(Error::internal("unexpected EOF"));
    }
    let reader = crate::decompress::reader(input, "the build context")?;
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
    apply_tar_at(root.as_fd(), Unterminated::new(reader), &opts).map_err(|e| {
        // What dockerd says of a body that is not a tar.
        if e.message().contains("tar") || e.message().contains("EOF") {
            Error::internal("unexpected EOF")
        } else {
            e
        }
    })?;
    Ok(dir)
}

/// A tar that may end without its last block's padding and the two zero
/// blocks that close it: the docker CLI sends such a context when it adds
/// a Dockerfile from stdin (`-f -`) or rewrites .dockerignore, and Go's tar
/// reader, hence dockerd, takes it. At the end of the input this reader
/// supplies the missing zeros.
struct Unterminated<R> {
    inner: R,
    read: u64,
    /// Zeros still to give once `inner` is done (None: not done yet).
    tail: Option<u64>,
}

impl<R: std::io::Read> Unterminated<R> {
    fn new(inner: R) -> Self {
        Unterminated {
            inner,
            read: 0,
            tail: None,
        }
    }
}

impl<R: std::io::Read> std::io::Read for Unterminated<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.tail.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            // An empty body stays empty (dockerd: unexpected EOF).
            let pad = (512 - self.read % 512) % 512;
            self.tail = Some(if self.read == 0 { 0 } else { pad + 1024 });
        }
        let left = self.tail.unwrap_or(0);
        let n = (buf.len() as u64).min(left) as usize;
        buf[..n].fill(0);
        self.tail = Some(left - n as u64);
        Ok(n)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_cut_after_its_last_file_reads_whole() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, ".dockerignore", &b"a\nb\nc"[..])
            .unwrap();
        let mut bytes = b.into_inner().unwrap();
        // What the CLI sends: no padding after the data, no end blocks.
        bytes.truncate(512 + 5);
        assert!(tar::Archive::new(&bytes[..])
            .entries()
            .unwrap()
            .any(|e| e.is_err()));
        let mut a = tar::Archive::new(Unterminated::new(&bytes[..]));
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, [".dockerignore"]);
    }
}
