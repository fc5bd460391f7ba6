//! Applies an uncompressed layer tar to a directory, safely.
//!
//! Every entry is resolved under the layer's root with openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS): an entry with an absolute path or `..`, one that would
//! pass through a symlink, or a hard link to something outside, fails the whole
//! layer with a clear error; nothing is ever written outside the root. No host
//! path is built by joining strings.
//!
//! Whiteouts (`.wh.name`, `.wh..wh..opq`) become what overlayfs understands (a 0:0
//! character device, the trusted.overlay.opaque xattr) or, for the vfs driver,
//! are applied as removals on the copy of the parent layer.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use crate::error::{Error, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Keep them as overlayfs markers in the layer's own diff directory.
    Overlay,
    /// Apply them: delete what they hide (the directory holds the lower layers too).
    Remove,
    /// Not a layer (`docker cp`): `.wh.` names are files like any other.
    Plain,
}

/// How entry paths are resolved under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A layer: no entry may pass through a symlink.
    Beneath,
    /// A container's filesystem (`docker cp`): symlinks are followed as the
    /// container would, with the root as `/`, so none leads out of it.
    InRoot,
}

impl Scope {
    fn flags(self) -> ResolveFlags {
        match self {
            Scope::Beneath => {
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
            }
            Scope::InRoot => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        }
    }
}

/// What `apply_tar_at` does besides writing entries.
#[derive(Debug, Clone)]
pub struct Apply {
    pub whiteouts: Whiteouts,
    pub scope: Scope,
    /// Where under the root the archive's entries go (components, no `..`).
    pub under: Vec<PathBuf>,
    /// Owner of everything written, instead of the entries' own.
    pub owner: Option<(u32, u32)>,
    /// A remapped container's ids: owners are written as the host's.
    pub ids: Option<crate::drivers::userns::IdShift>,
    /// Refuse to replace a directory by a non-directory, or the other way.
    pub no_overwrite_dir_non_dir: bool,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("layer entry {}: {why}", path.display()))
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("layer entry {}: {what}: {e}", path.display()))
}

/// The entry's path as components inside the root; refuses absolute paths and `..`.
fn clean_path(raw: &Path) -> Result<Vec<PathBuf>> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => parts.push(PathBuf::from(p)),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad(raw, "absolute paths are not allowed in a layer"));
            }
            Component::ParentDir => return Err(bad(raw, "'..' is not allowed in a layer")),
        }
    }
    Ok(parts)
}

/// Makes the container path `path` a directory in the container's root
/// `root`, with its missing parents (0755, owned by `owner`: the remapped
/// root under userns-remap), each step resolved in the root as the
/// container would, so no symlink leads out of it. What runc does for a
/// missing working directory.
pub fn make_dir_in_root(root: BorrowedFd<'_>, path: &str, owner: Option<(u32, u32)>) -> Result<()> {
    let parts: Vec<PathBuf> = Path::new(&crate::paths::clean_absolute(path))
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(PathBuf::from(p)),
            _ => None,
        })
        .collect();
    open_dir_owned(root, &parts, Path::new(path), Scope::InRoot, owner).map(|_| ())
}

/// Opens (creating what is missing) the directory `parts` under `root`. Each
/// step is resolved from the root, so `scope` holds for every one.
fn open_dir(
    root: BorrowedFd<'_>,
    parts: &[PathBuf],
    entry: &Path,
    scope: Scope,
) -> Result<OwnedFd> {
    open_dir_owned(root, parts, entry, scope, None)
}

fn open_dir_owned(
    root: BorrowedFd<'_>,
    parts: &[PathBuf],
    entry: &Path,
    scope: Scope,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd> {
    let rel = |n: usize| -> PathBuf {
        if n == 0 {
            PathBuf::from(".")
        } else {
            parts[..n].iter().collect()
        }
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let open = |n: usize| rustix::fs::openat2(root, rel(n), flags, Mode::empty(), scope.flags());
    match open(parts.len()) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(escape_error(entry, e)),
    }
    // Create the missing directories one by one.
    for (i, p) in parts.iter().enumerate() {
        let dir = open(i).map_err(|e| escape_error(entry, e))?;
        match rustix::fs::mkdirat(&dir, p, Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                if let Some((uid, gid)) = owner {
                    rustix::fs::chownat(
                        &dir,
                        p,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| io(entry, "chown of a made directory", e))?;
                }
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(io(entry, "creating a parent directory", e)),
        }
    }
    open(parts.len()).map_err(|e| escape_error(entry, e))
}

fn escape_error(entry: &Path, e: Errno) -> Error {
    match e {
        Errno::LOOP | Errno::XDEV | Errno::NOTDIR => {
            bad(entry, "its path goes through a symlink or a non-directory, which could lead outside the layer")
        }
        other => io(entry, "resolving its parent directory", other),
    }
}

/// Removes `name` in `dir`, recursively if it is a directory.
fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    clear_dir(sub.as_fd(), &HashSet::new())?;
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Removes every entry of `dir` whose name is not in `keep`.
fn clear_dir(dir: BorrowedFd<'_>, keep: &HashSet<Vec<u8>>) -> rustix::io::Result<()> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." && !keep.contains(name) {
            names.push(name.to_vec());
        }
    }
    for n in names {
        remove_all(dir, OsStr::from_bytes(&n))?;
    }
    Ok(())
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Applies the layer tar read from `reader` onto `root`. Returns the total
/// size of the regular files written (dockerd's layer size).
pub fn apply_tar<R: Read>(root: &Path, reader: R, whiteouts: Whiteouts) -> Result<u64> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::internal(format!("opening layer directory {}: {e}", root.display())))?;
    let opts = Apply {
        whiteouts,
        scope: Scope::Beneath,
        under: Vec::new(),
        owner: None,
        ids: None,
        no_overwrite_dir_non_dir: false,
    };
    apply_tar_at(root_fd.as_fd(), reader, &opts)
}

/// Applies the tar read from `reader` under the directory `root_fd`, as
/// `opts` says. Returns the total size of the regular files written.
pub fn apply_tar_at<R: Read>(root_fd: BorrowedFd<'_>, reader: R, opts: &Apply) -> Result<u64> {
    let (whiteouts, scope) = (opts.whiteouts, opts.scope);
    let mut archive = tar::Archive::new(reader);
    let mut size = 0u64;
    // Directories get their times last: writing into them changes their mtime.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    // What this layer wrote, per directory, for opaque markers in vfs mode.
    let mut written: HashSet<PathBuf> = HashSet::new();

    let entries = archive
        .entries()
        .map_err(|e| Error::invalid(format!("reading layer tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::invalid(format!("reading layer tar: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| Error::invalid(format!("layer entry with a bad path: {e}")))?
            .into_owned();
        let mut parts = opts.under.clone();
        parts.extend(clean_path(&raw)?);
        if parts.len() == opts.under.len() {
            continue; // the archive's root: "." or "/"
        }
        let Some((name, parent)) = parts.split_last() else {
            continue;
        };
        let name = name.as_os_str().to_owned();
        let parent_fd = open_dir(root_fd, parent, &raw, scope)?;
        let parent_fd = parent_fd.as_fd();
        let name_str = name.to_string_lossy();

        if whiteouts != Whiteouts::Plain && name_str == OPAQUE_MARKER {
            match whiteouts {
                Whiteouts::Overlay => {
                    rustix::fs::fsetxattr(
                        parent_fd,
                        "trusted.overlay.opaque",
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(|e| io(&raw, "marking the directory opaque", e))?;
                }
                Whiteouts::Plain | Whiteouts::Remove => {
                    let parent_path: PathBuf = parent.iter().collect();
                    let keep: HashSet<Vec<u8>> = written
                        .iter()
                        .filter(|p| p.parent() == Some(parent_path.as_path()))
                        .filter_map(|p| p.file_name().map(|n| n.as_bytes().to_vec()))
                        .collect();
                    clear_dir(parent_fd, &keep)
                        .map_err(|e| io(&raw, "emptying an opaque directory", e))?;
                }
            }
            continue;
        }
        if let Some(hidden) = name_str
            .strip_prefix(WHITEOUT_PREFIX)
            .filter(|_| whiteouts != Whiteouts::Plain)
        {
            if hidden.is_empty() || hidden.contains('/') {
                return Err(bad(&raw, "malformed whiteout"));
            }
            let hidden = OsStr::new(hidden);
            remove_all(parent_fd, hidden).map_err(|e| io(&raw, "removing a whited-out path", e))?;
            if whiteouts == Whiteouts::Overlay {
                rustix::fs::mknodat(
                    parent_fd,
                    hidden,
                    rustix::fs::FileType::CharacterDevice,
                    Mode::empty(),
                    0,
                )
                .map_err(|e| io(&raw, "creating a whiteout", e))?;
            }
            continue;
        }

        let header = entry.header().clone();
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
        let (uid, gid) = opts.owner.unwrap_or((
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        ));
        let (uid, gid) = match &opts.ids {
            Some(ids) => ids.to_host(uid, gid),
            None => (uid, gid),
        };
        let mtime = header.mtime().unwrap_or(0);
        let owner = (
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
        let kind = header.entry_type();
        // Whatever is there now (from this layer or, in vfs mode, a lower one) is
        // replaced, except a directory by a directory.
        let existing = rustix::fs::statat(parent_fd, &name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir = existing.as_ref().is_some_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        });
        if existing.is_some()
            && opts.no_overwrite_dir_non_dir
            && existing_is_dir != (kind == EntryType::Directory)
        {
            return Err(Error::invalid(if existing_is_dir {
                format!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    name, raw
                )
            } else {
                format!(
                    "cannot overwrite non-directory {:?} with directory {:?}",
                    name, raw
                )
            }));
        }
        if existing.is_some() && !(kind == EntryType::Directory && existing_is_dir) {
            remove_all(parent_fd, &name).map_err(|e| io(&raw, "replacing an existing path", e))?;
        }

        match kind {
            EntryType::Directory => {
                if !existing_is_dir {
                    rustix::fs::mkdirat(parent_fd, &name, mode)
                        .map_err(|e| io(&raw, "creating the directory", e))?;
                }
                let dir = rustix::fs::openat(
                    parent_fd,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| escape_error(&raw, e))?;
                rustix::fs::fchown(&dir, owner.0, owner.1).map_err(|e| io(&raw, "chown", e))?;
                rustix::fs::fchmod(&dir, mode).map_err(|e| io(&raw, "chmod", e))?;
                set_xattrs(&mut entry, dir.as_fd(), &raw)?;
                dir_times.push((parts.iter().collect(), mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    parent_fd,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io(&raw, "creating the file", e))?;
                let mut file = std::fs::File::from(fd);
                size += std::io::copy(&mut entry, &mut file)
                    .map_err(|e| io(&raw, "writing the file", e))?;
                rustix::fs::fchown(&file, owner.0, owner.1).map_err(|e| io(&raw, "chown", e))?;
                // After chown, which clears setuid/setgid bits.
                rustix::fs::fchmod(&file, mode).map_err(|e| io(&raw, "chmod", e))?;
                set_xattrs(&mut entry, file.as_fd(), &raw)?;
                rustix::fs::futimens(&file, &timestamps(mtime))
                    .map_err(|e| io(&raw, "setting times", e))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(&raw, e))?
                    .ok_or_else(|| bad(&raw, "symlink without a target"))?
                    .into_owned();
                rustix::fs::symlinkat(&target, parent_fd, &name)
                    .map_err(|e| io(&raw, "creating the symlink", e))?;
                // dockerd counts a symlink's length in the layer size.
                size += target.as_os_str().len() as u64;
                rustix::fs::chownat(
                    parent_fd,
                    &name,
                    owner.0,
                    owner.1,
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&raw, "lchown", e))?;
                rustix::fs::utimensat(
                    parent_fd,
                    &name,
                    &timestamps(mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&raw, "setting times", e))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(&raw, e))?
                    .ok_or_else(|| bad(&raw, "hard link without a target"))?
                    .into_owned();
                let mut target_parts = opts.under.clone();
                target_parts.extend(clean_path(&target).map_err(|_| {
                    bad(
                        &raw,
                        format!("hard link to {} leads outside the layer", target.display()),
                    )
                })?);
                let Some((target_name, target_parent)) = target_parts.split_last() else {
                    return Err(bad(&raw, "hard link to the layer root"));
                };
                let target_dir = open_dir(root_fd, target_parent, &raw, scope)?;
                rustix::fs::linkat(&target_dir, target_name, parent_fd, &name, AtFlags::empty())
                    .map_err(|e| {
                        io(&raw, format!("linking to {}", target.display()).as_str(), e)
                    })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(parent_fd, &name, file_type, mode, dev)
                    .map_err(|e| io(&raw, "creating the node", e))?;
                rustix::fs::chownat(
                    parent_fd,
                    &name,
                    owner.0,
                    owner.1,
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&raw, "chown", e))?;
                rustix::fs::chmodat(parent_fd, &name, mode, AtFlags::empty())
                    .map_err(|e| io(&raw, "chmod", e))?;
                rustix::fs::utimensat(
                    parent_fd,
                    &name,
                    &timestamps(mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&raw, "setting times", e))?;
            }
            // PAX and GNU long-name headers are folded into the next entry by the
            // tar crate; anything else (sockets, contiguous oddities) is skipped.
            _ => continue,
        }
        written.insert(parts.iter().collect());
    }

    for (path, mtime) in dir_times.into_iter().rev() {
        let parts: Vec<PathBuf> = path
            .components()
            .map(|c| PathBuf::from(c.as_os_str()))
            .collect();
        let dir = open_dir(root_fd, &parts, &path, scope)?;
        rustix::fs::futimens(&dir, &timestamps(mtime))
            .map_err(|e| io(&path, "setting times", e))?;
    }
    Ok(size)
}

/// PAX `SCHILY.xattr.*` records become extended attributes.
fn set_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    fd: BorrowedFd<'_>,
    raw: &Path,
) -> Result<()> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Ok(());
    };
    for ext in exts {
        let Ok(ext) = ext else { continue };
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            rustix::fs::fsetxattr(fd, name, ext.value_bytes(), rustix::fs::XattrFlags::empty())
                .map_err(|e| io(raw, format!("setting xattr {name}").as_str(), e))?;
        }
    }
    Ok(())
}

/// Reads a layer as it comes (gzip, zstd or plain tar, told by its magic bytes),
/// extracts it into `dir` with overlay whiteouts, and returns its diff_id (the
/// sha256 of the uncompressed tar, end blocks included) and its size.
pub fn extract_layer<R: Read>(dir: &Path, input: R) -> Result<(String, u64)> {
    use sha2::Digest;
    let decoded = crate::decompress::reader(input, "layer")?;
    let mut hashing = HashingReader {
        inner: decoded,
        hasher: sha2::Sha256::new(),
    };
    let size = apply_tar(dir, &mut hashing, Whiteouts::Overlay)?;
    std::io::copy(&mut hashing, &mut std::io::sink())
        .map_err(|e| Error::invalid(format!("reading layer: {e}")))?;
    Ok((
        format!("sha256:{}", hex::encode(hashing.hasher.finalize())),
        size,
    ))
}

struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(out)?;
        self.hasher.update(&out[..n]);
        Ok(n)
    }
}
