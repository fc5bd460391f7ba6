//! Files of a container seen from the host, for `docker cp` (archive HEAD, GET
//! and PUT) and `docker export`. Every path is the container's: symlinks and
//! `..` are followed as inside it, with its root as `/`, so nothing reaches the
//! host. The string work (moby's ResolvePath, FollowSymlinkInScope) only names
//! things; every open goes through openat2(RESOLVE_IN_ROOT) or walks a
//! directory fd with O_NOFOLLOW, so the kernel holds the line even while the
//! container changes its files under us.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde::Serialize;

use crate::drivers::storage::extract::{self, Apply, Scope, Whiteouts};
use crate::drivers::userns::IdShift;
use crate::error::{Error, Result};

/// Symlinks followed in one resolution before giving up (as the kernel's 40).
const MAX_LINKS: usize = 255;

/// What `X-Docker-Container-Path-Stat` carries (base64 of this JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's os.FileMode bits: the CLI decodes them as such.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    pub fn header_value(&self) -> String {
        use base64_lite::encode;
        encode(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }
}

/// A path given by a client, made absolute and clean, keeping a trailing
/// `/` or `/.` (they mean "the directory's contents" to the CLI).
fn absolute(path: &str) -> String {
    let mut abs = crate::paths::clean_absolute(path);
    if abs != "/" {
        if path.ends_with("/.") || path == "." {
            abs.push_str("/.");
        } else if path.ends_with('/') {
            abs.push('/');
        }
    }
    abs
}

/// Go's filepath.Base.
fn base(abs: &str) -> String {
    let t = abs.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// `path` (absolute in the root) with every symlink followed inside the
/// root, as an absolute path: where a write to `path` lands.
pub fn scoped_path(root: BorrowedFd<'_>, path: &str) -> Result<String> {
    let parts = follow_in_scope(root, path)?;
    let joined: PathBuf = parts.iter().collect();
    Ok(format!("/{}", joined.display()))
}

/// `path` with every symlink followed inside the root; the result has no
/// symlink, `.` or `..` left (moby's FollowSymlinkInScope). Missing parts are
/// kept as they are.
fn follow_in_scope(root: BorrowedFd<'_>, path: &str) -> Result<Vec<OsString>> {
    let mut pending: VecDeque<OsString> = components(Path::new(path));
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate: PathBuf = resolved.iter().collect();
        candidate.push(&c);
        match rustix::fs::readlinkat(root, &candidate, Vec::new()) {
            Ok(target) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::invalid(format!("too many links in {path}")));
                }
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut next = components(&target);
                next.extend(pending);
                pending = next;
            }
            Err(_) => resolved.push(c),
        }
    }
    Ok(resolved)
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn rel(parts: &[OsString]) -> PathBuf {
    if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    }
}

/// A path resolved as moby's ResolvePath does: its directory with symlinks
/// followed, then its last element as it is (not followed).
struct Resolved {
    /// As the client named it, absolute.
    abs: String,
    /// The directory, relative to the root, no symlinks.
    dir: Vec<OsString>,
    /// The last element; empty or "." for the directory itself.
    name: OsString,
}

fn resolve(root: BorrowedFd<'_>, path: &str) -> Result<Resolved> {
    let abs = absolute(path);
    let (dir, name) = match abs.rfind('/') {
        Some(i) => (&abs[..=i], &abs[i + 1..]),
        None => ("/", abs.as_str()),
    };
    Ok(Resolved {
        dir: follow_in_scope(root, dir)?,
        name: OsString::from(name),
        abs: abs.clone(),
    })
}

impl Resolved {
    /// The resolved path: directory and last element, cleaned.
    fn parts(&self) -> Vec<OsString> {
        let mut p = self.dir.clone();
        if !self.name.is_empty() && self.name != "." {
            p.push(self.name.clone());
        }
        p
    }
}

fn not_found(abs: &str, container: &str) -> Error {
    Error::not_found(format!(
        "Could not find the file {abs} in container {container}"
    ))
}

fn lstat_in(root: BorrowedFd<'_>, parts: &[OsString]) -> rustix::io::Result<rustix::fs::Stat> {
    match parts.split_last() {
        None => rustix::fs::fstat(root),
        Some((name, dir)) => {
            let d = open_in_root(root, dir)?;
            rustix::fs::statat(&d, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
        }
    }
}

/// Opens the directory `parts` (no symlink in it, but the kernel checks):
/// inside the root whatever happens meanwhile.
fn open_in_root(root: BorrowedFd<'_>, parts: &[OsString]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        rel(parts),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Go's os.FileMode for a stat mode.
pub fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match FileType::from_raw_mode(st_mode) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        FileType::BlockDevice => 1 << 26,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// HEAD /containers/{id}/archive: what `path` is, without following its last
/// element; a symlink's target is given resolved in the container.
/// `top`: the name the root itself goes by (a mount point's last element).
pub fn stat(
    root: BorrowedFd<'_>,
    path: &str,
    container: &str,
    top: Option<&str>,
) -> Result<PathStat> {
    let r = resolve(root, path)?;
    let st = lstat_in(root, &r.parts()).map_err(|e| match e {
        Errno::NOENT | Errno::NOTDIR => not_found(&r.abs, container),
        e => Error::internal(format!("stat {}: {e}", r.abs)),
    })?;
    let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        let full: PathBuf = follow_in_scope(root, &r.abs)?.iter().collect();
        format!("/{}", full.display())
    } else {
        String::new()
    };
    let ns = st.st_mtime as u64 * 1_000_000_000 + st.st_mtime_nsec as u64;
    Ok(PathStat {
        name: top.map_or_else(|| base(&r.abs), str::to_string),
        size: st.st_size,
        mode: go_mode(st.st_mode),
        mtime: crate::clock::rfc3339(ns),
        link_target,
    })
}

/// GET /containers/{id}/archive: `path` as a tar, its entries named from the
/// path's last element as the client gave it (moby's rebase), so a symlinked
/// directory `/a -> /b` comes back as `a/...`.
pub fn write_tar<W: Write>(
    root: BorrowedFd<'_>,
    path: &str,
    container: &str,
    top: Option<&str>,
    ids: Option<IdShift>,
    out: W,
) -> Result<()> {
    let r = resolve(root, path)?;
    let parts = r.parts();
    lstat_in(root, &parts).map_err(|e| match e {
        Errno::NOENT | Errno::NOTDIR => not_found(&r.abs, container),
        e => Error::internal(format!("stat {}: {e}", r.abs)),
    })?;
    let name = match (top, base(&r.abs).as_str()) {
        (Some(t), _) => PathBuf::from(t),
        (None, "/") => PathBuf::from("."),
        (None, b) => PathBuf::from(b),
    };
    let mut tar = TarWriter::new(out, ids);
    match parts.split_last() {
        None => tar.dir_entry(root, &name, top.is_none())?,
        Some((last, dir)) => {
            let d =
                open_in_root(root, dir).map_err(|e| Error::internal(format!("{}: {e}", r.abs)))?;
            tar.entry(d.as_fd(), last, &name)?;
        }
    }
    tar.finish()
}

/// GET /containers/{id}/export: the whole root filesystem, entries named
/// relative to it (`bin/`, `bin/sh`, ...), as dockerd's export.
pub fn export<W: Write>(root: BorrowedFd<'_>, ids: Option<IdShift>, out: W) -> Result<()> {
    let mut tar = TarWriter::new(out, ids);
    tar.children(root, Path::new(""))?;
    tar.finish()
}

/// A container's read-write layer (an overlay upper directory) as a layer
/// tar, whiteouts as `.wh.` entries: what `docker commit` stores.
pub fn layer_tar<W: Write>(upper: &Path, ids: Option<IdShift>, out: W) -> Result<()> {
    let fd = rustix::fs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(upper, e))?;
    let mut tar = TarWriter::new(out, ids);
    tar.layer = true;
    tar.children(fd.as_fd(), Path::new(""))?;
    tar.finish()
}

/// PUT /containers/{id}/archive: extracts the tar in `input` into the
/// directory `path` (its last element followed). `owner` replaces the
/// entries' own (copyUIDGID); a remapped container's are shifted by `ids`.
pub fn extract_to(
    root: BorrowedFd<'_>,
    path: &str,
    container: &str,
    input: impl Read,
    owner: Option<(u32, u32)>,
    ids: Option<IdShift>,
    no_overwrite_dir_non_dir: bool,
) -> Result<()> {
    let abs = absolute(path);
    let dir = follow_in_scope(root, &abs)?;
    let st = lstat_in(root, &dir).map_err(|e| match e {
        Errno::NOENT | Errno::NOTDIR => not_found(&abs, container),
        e => Error::internal(format!("stat {abs}: {e}")),
    })?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(Error::invalid("extraction point is not a directory"));
    }
    let opts = Apply {
        whiteouts: Whiteouts::Plain,
        scope: Scope::InRoot,
        under: dir.iter().map(PathBuf::from).collect(),
        owner,
        ids,
        no_overwrite_dir_non_dir,
    };
    // The CLI sends a plain tar; dockerd takes compressed ones too.
    let input = crate::decompress::reader(input, "the archive")?;
    extract::apply_tar_at(root, input, &opts).map(|_| ())
}

/// Writes entries read through directory fds, never following a symlink.
struct TarWriter<W: Write> {
    tar: tar::Builder<W>,
    /// (dev, inode) of files with several links, and the name first written:
    /// the others become hard links to it, as dockerd writes them.
    links: HashMap<(u64, u64), PathBuf>,
    /// Reading an overlay upper directory for a layer: its whiteouts (0:0
    /// character devices, opaque directories) become `.wh.` entries.
    layer: bool,
    /// A remapped container's ids: owners are written as the container's.
    ids: Option<IdShift>,
}

fn io_err(what: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("archiving {}: {e}", what.display()))
}

impl<W: Write> TarWriter<W> {
    fn new(out: W, ids: Option<IdShift>) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        TarWriter {
            tar,
            links: HashMap::new(),
            layer: false,
            ids,
        }
    }

    fn finish(self) -> Result<()> {
        self.tar
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| Error::internal(format!("writing the archive: {e}")))
    }

    fn header(&self, st: &rustix::fs::Stat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        let (uid, gid) = match &self.ids {
            Some(ids) => ids.to_container(st.st_uid, st.st_gid),
            None => (st.st_uid, st.st_gid),
        };
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// The entry `name` of directory `dir`, written as `as_name`.
    fn entry(&mut self, dir: BorrowedFd<'_>, name: &OsStr, as_name: &Path) -> Result<()> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_err(as_name, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let d = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(as_name, e))?;
                self.dir_entry(d.as_fd(), as_name, false)
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        let mut h = self.header(&st, tar::EntryType::Link);
                        return self
                            .tar
                            .append_link(&mut h, as_name, first)
                            .map_err(|e| io_err(as_name, e));
                    }
                    self.links.insert(key, as_name.to_path_buf());
                }
                let f = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(as_name, e))?;
                let mut h = self.header(&st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                // A file that shrinks meanwhile must not make a short entry.
                let data = std::fs::File::from(f).take(st.st_size as u64);
                let mut data = Padded {
                    inner: data,
                    left: st.st_size as u64,
                };
                self.tar
                    .append_data(&mut h, as_name, &mut data)
                    .map_err(|e| io_err(as_name, e))
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())
                    .map_err(|e| io_err(as_name, e))?;
                let mut h = self.header(&st, tar::EntryType::Symlink);
                self.tar
                    .append_link(&mut h, as_name, OsStr::from_bytes(target.as_bytes()))
                    .map_err(|e| io_err(as_name, e))
            }
            FileType::CharacterDevice if self.layer && st.st_rdev == 0 => {
                let hidden = as_name.file_name().unwrap_or_default().as_bytes();
                let mut wh = OsString::from(".wh.");
                wh.push(OsStr::from_bytes(hidden));
                let wh_name = as_name.with_file_name(wh);
                let mut h = self.header(&st, tar::EntryType::Regular);
                h.set_mode(0o644);
                self.tar
                    .append_data(&mut h, &wh_name, std::io::empty())
                    .map_err(|e| io_err(as_name, e))
            }
            t @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                let kind = match t {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = self.header(&st, kind);
                if kind != tar::EntryType::Fifo {
                    let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
                    let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
                }
                self.tar
                    .append_data(&mut h, as_name, std::io::empty())
                    .map_err(|e| io_err(as_name, e))
            }
            // Sockets are not archived (as Go's archive/tar refuses them).
            _ => Ok(()),
        }
    }

    /// A directory: its own entry (unless `skip_self`), then its children.
    fn dir_entry(&mut self, dir: BorrowedFd<'_>, as_name: &Path, skip_self: bool) -> Result<()> {
        if !skip_self || as_name != Path::new(".") {
            let st = rustix::fs::fstat(dir).map_err(|e| io_err(as_name, e))?;
            let mut h = self.header(&st, tar::EntryType::Directory);
            // Go's archive/tar (dockerd's) names a directory with a slash: "etc/".
            self.tar
                .append_data(&mut h, as_name.join(""), std::io::empty())
                .map_err(|e| io_err(as_name, e))?;
            let mut opaque = [0u8; 1];
            if self.layer
                && rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut opaque).ok() == Some(1)
                && opaque[0] == b'y'
            {
                let mut h = self.header(&st, tar::EntryType::Regular);
                h.set_mode(0o644);
                self.tar
                    .append_data(&mut h, as_name.join(".wh..wh..opq"), std::io::empty())
                    .map_err(|e| io_err(as_name, e))?;
            }
        }
        self.children(dir, as_name)
    }

    /// Every entry of `dir`, sorted by name (as Go's Walk), under `prefix`.
    fn children(&mut self, dir: BorrowedFd<'_>, prefix: &Path) -> Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        let listing = rustix::fs::Dir::read_from(dir).map_err(|e| io_err(prefix, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| io_err(prefix, e))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_owned());
            }
        }
        names.sort();
        for n in names {
            let as_name = if prefix.as_os_str().is_empty() {
                PathBuf::from(&n)
            } else {
                prefix.join(&n)
            };
            if self.layer {
                let shown = format!("/{}", as_name.display());
                if crate::containers::diff::MOUNT_POINTS.contains(&shown.as_str())
                    || only_mount_points(dir, &n, &shown)
                {
                    continue;
                }
            }
            self.entry(dir, &n, &as_name)?;
        }
        Ok(())
    }
}

/// A directory of the layer that holds only the runtime's mount points
/// (the /etc copied up for hosts and resolv.conf): dockerd has it in its
/// init layer, so a commit leaves it out, as `docker diff` does.
fn only_mount_points(parent: BorrowedFd<'_>, name: &OsStr, shown: &str) -> bool {
    let Ok(fd) = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let Ok(listing) = rustix::fs::Dir::read_from(&fd) else {
        return false;
    };
    let mut any = false;
    for entry in listing {
        let Ok(entry) = entry else { return false };
        let n = entry.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        any = true;
        let child = format!("{shown}/{}", String::from_utf8_lossy(n));
        if !crate::containers::diff::MOUNT_POINTS.contains(&child.as_str()) {
            return false;
        }
    }
    any
}

/// Reads `left` bytes: what the file gives, then zeros if it shrank.
struct Padded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Standard base64, for the stat header (a crate for 20 lines is not worth it).
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_absolute_and_keep_what_the_cli_means() {
        assert_eq!(absolute("etc/passwd"), "/etc/passwd");
        assert_eq!(absolute("/../../etc/"), "/etc/");
        assert_eq!(absolute("/tmp/."), "/tmp/.");
        assert_eq!(absolute("/"), "/");
        assert_eq!(base("/etc/"), "etc");
        assert_eq!(base("/tmp/."), ".");
        assert_eq!(base("/"), "/");
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_lite::encode(b""), "");
        assert_eq!(base64_lite::encode(b"f"), "Zg==");
        assert_eq!(base64_lite::encode(b"fo"), "Zm8=");
        assert_eq!(base64_lite::encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn go_file_modes() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(
            go_mode(libc::S_IFREG | libc::S_ISUID | 0o755),
            (1 << 23) | 0o755
        );
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).expect("mkdir");
        std::os::unix::fs::symlink("/real", root.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../..", root.join("real/up")).expect("symlink");
        let fd = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .expect("open");
        let got = follow_in_scope(fd.as_fd(), "/abs/sub").expect("resolve");
        assert_eq!(rel(&got), PathBuf::from("real/sub"));
        // `..` past the root stays at the root, through a symlink too.
        let got = follow_in_scope(fd.as_fd(), "/real/up/etc").expect("resolve");
        assert_eq!(rel(&got), PathBuf::from("etc"));
    }
}
