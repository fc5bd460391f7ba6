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
        use std::os::unix::fs::DirBuilderExt;
        crate::spool::private_dir(tmp)?;
        let path = tmp.join(format!("{prefix}-{:012x}", crate::random::u64()? >> 16));
        // Only root may enter: a context may hold setuid files and devices.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
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
    let root = open_root(&dir)?;
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

/// The largest Dockerfile or .dockerignore read (both are text a person
/// writes; anything bigger is refused rather than held in memory).
const MAX_TEXT: u64 = 16 << 20;

/// The context directory, opened: every path below is resolved inside it
/// by the kernel (RESOLVE_IN_ROOT: a symlink in the context is followed as
/// if the context were `/`, as dockerd's scoped resolution), never by
/// joining strings onto a host path.
fn open_root(dir: &ContextDir) -> Result<rustix::fd::OwnedFd> {
    rustix::fs::open(
        dir.path(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::internal(format!("opening the build context: {e}")))
}

fn open_in(
    root: &rustix::fd::OwnedFd,
    rel: &str,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    rustix::fs::openat2(
        root,
        if rel.is_empty() { "." } else { rel },
        flags | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    )
}

/// A regular file's text in the context; None when it is missing or is
/// not a regular file (a fifo or a device would block or never end).
fn read_text(root: &rustix::fd::OwnedFd, rel: &str, what: &str) -> Result<Option<String>> {
    use std::io::Read;
    let Ok(fd) = open_in(root, rel, rustix::fs::OFlags::RDONLY) else {
        return Ok(None);
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::internal(format!("reading {what}: {e}")))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(None);
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_TEXT + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::invalid(format!("reading {what}: {e}")))?;
    if text.len() as u64 > MAX_TEXT {
        return Err(Error::invalid(format!(
            "{what} is larger than {MAX_TEXT} bytes"
        )));
    }
    Ok(Some(text))
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
    let root = open_root(dir)?;
    for c in candidates {
        if let Some(text) = read_text(&root, &c, "the Dockerfile")? {
            return Ok(text);
        }
    }
    Err(missing())
}

/// `.dockerignore`: dockerd removes the ignore file and the Dockerfile when
/// they are excluded, after reading them (the CLI already left the rest of
/// what it excludes out of the tar).
pub fn apply_ignore(dir: &ContextDir, dockerfile: &str) -> Result<()> {
    let root = open_root(dir)?;
    let Some(text) = read_text(&root, ".dockerignore", ".dockerignore")? else {
        return Ok(());
    };
    let rules = crate::builder::ignore::IgnoreRules::parse(&text)
        .map_err(|e| Error::invalid(e.to_string()))?;
    for name in rules.removed_after_reading(dockerfile) {
        // The name came from the client: only ever a path inside the context.
        let Ok(rel) = crate::images::build::context_path(&name) else {
            continue;
        };
        let (parent, file) = match rel.rsplit_once('/') {
            Some((p, f)) => (p, f),
            None => ("", rel.as_str()),
        };
        if file.is_empty() {
            continue;
        }
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY;
        if let Ok(parent) = open_in(&root, parent, flags) {
            let _ = rustix::fs::unlinkat(&parent, file, rustix::fs::AtFlags::empty());
        }
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
