//! The `local` volume driver on the host: a volume is a directory
//! `<root>/<name>/_data`; one made with `--opt type=... device=... o=...` has
//! that filesystem mounted on its `_data` while containers use it, as
//! dockerd's local driver does with mount(2).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Context as _, Error, Result};

/// The options the local driver takes (`docker volume create --opt`).
pub const LOCAL_OPTIONS: [&str; 4] = ["type", "device", "o", "size"];

/// `<data-root>/volumes`, 0701 as dockerd makes it: nobody else lists the
/// volumes (their data may hold an image's set-id files and device nodes).
pub fn make_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o701)
        .create(root)
        .map_err(|e| io("creating", root, e))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o701))
        .map_err(|e| io("chmod", root, e))
}

/// Where volume `name`'s data lives.
pub fn data_path(root: &Path, name: &str) -> PathBuf {
    root.join(name).join("_data")
}

/// Makes `<root>/<name>/_data` (owned by `owner`, the remapped root under
/// userns-remap). An existing directory is kept as it is.
pub fn create(root: &Path, name: &str, owner: Option<(u32, u32)>) -> Result<PathBuf> {
    make_root(root)?;
    let dir = root.join(name);
    let data = dir.join("_data");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o701)
        .create(&dir)
        .context(format_args!("creating {}", dir.display()))?;
    if std::fs::symlink_metadata(&data).is_err() {
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&data)
            .context(format_args!("creating {}", data.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&data, Some(uid), Some(gid))
                .context(format_args!("chown {}", data.display()))?;
        }
    }
    Ok(data)
}

/// Mounts a volume made with `type`/`device`/`o` options on its `_data`,
/// unless it is mounted already. A volume without them is a plain directory.
pub fn mount(root: &Path, name: &str, options: &[(String, String)]) -> Result<PathBuf> {
    let data = data_path(root, name);
    let get = |k: &str| {
        options
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let Some(fstype) = get("type").filter(|t| !t.is_empty()) else {
        return Ok(data);
    };
    if is_mountpoint(&data) {
        return Ok(data);
    }
    let device = get("device").unwrap_or_default();
    let (flags, mut data_opts) = mount_flags(get("o").unwrap_or_default());
    if let Some(size) = get("size") {
        data_opts.push(format!("size={size}"));
    }
    let opts = data_opts.join(",");
    let failed = |flags: nix::mount::MsFlags, e: nix::errno::Errno| {
        let data_part = if opts.is_empty() {
            String::new()
        } else {
            format!(", data: {opts}")
        };
        Error::internal(format!(
            "error while mounting volume '{0}': failed to mount local volume: mount {device}:{0}, flags: {1:#x}{data_part}: {2}",
            data.display(),
            flags.bits(),
            e.desc().to_lowercase()
        ))
    };
    use nix::mount::MsFlags;
    let propagation =
        MsFlags::MS_SHARED | MsFlags::MS_SLAVE | MsFlags::MS_PRIVATE | MsFlags::MS_UNBINDABLE;
    nix::mount::mount(
        Some(device),
        &data,
        Some(fstype),
        flags & !propagation,
        (!opts.is_empty()).then_some(opts.as_str()),
    )
    .map_err(|e| failed(flags, e))?;
    // A bind takes no other flag on its first mount(2): read-only, nosuid
    // and the rest need a remount, propagation a call of its own (as
    // moby's mount package does).
    let rest = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC) & !propagation;
    if flags.contains(MsFlags::MS_BIND) && !rest.is_empty() {
        if let Err(e) = nix::mount::mount(
            None::<&str>,
            &data,
            None::<&str>,
            rest | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
            None::<&str>,
        ) {
            let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
            return Err(failed(flags, e));
        }
    }
    if !(flags & propagation).is_empty() {
        if let Err(e) = nix::mount::mount(
            None::<&str>,
            &data,
            None::<&str>,
            flags & (propagation | MsFlags::MS_REC),
            None::<&str>,
        ) {
            let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
            return Err(failed(flags, e));
        }
    }
    Ok(data)
}

/// `o=` split as moby's mount package splits it: the words that are mount
/// flags, and the rest as the filesystem's data.
fn mount_flags(o: &str) -> (nix::mount::MsFlags, Vec<String>) {
    use nix::mount::MsFlags as F;
    let mut flags = F::empty();
    let mut data = Vec::new();
    for word in o.split(',').filter(|w| !w.is_empty()) {
        let (set, clear) = match word {
            "ro" => (F::MS_RDONLY, F::empty()),
            "rw" => (F::empty(), F::MS_RDONLY),
            "nosuid" => (F::MS_NOSUID, F::empty()),
            "suid" => (F::empty(), F::MS_NOSUID),
            "nodev" => (F::MS_NODEV, F::empty()),
            "dev" => (F::empty(), F::MS_NODEV),
            "noexec" => (F::MS_NOEXEC, F::empty()),
            "exec" => (F::empty(), F::MS_NOEXEC),
            "sync" => (F::MS_SYNCHRONOUS, F::empty()),
            "async" => (F::empty(), F::MS_SYNCHRONOUS),
            "dirsync" => (F::MS_DIRSYNC, F::empty()),
            "mand" => (F::MS_MANDLOCK, F::empty()),
            "nomand" => (F::empty(), F::MS_MANDLOCK),
            "noatime" => (F::MS_NOATIME, F::empty()),
            "atime" => (F::empty(), F::MS_NOATIME),
            "nodiratime" => (F::MS_NODIRATIME, F::empty()),
            "diratime" => (F::empty(), F::MS_NODIRATIME),
            "relatime" => (F::MS_RELATIME, F::empty()),
            "norelatime" => (F::empty(), F::MS_RELATIME),
            "strictatime" => (F::MS_STRICTATIME, F::empty()),
            "nostrictatime" => (F::empty(), F::MS_STRICTATIME),
            "bind" => (F::MS_BIND, F::empty()),
            "rbind" => (F::MS_BIND | F::MS_REC, F::empty()),
            "private" => (F::MS_PRIVATE, F::empty()),
            "rprivate" => (F::MS_PRIVATE | F::MS_REC, F::empty()),
            "shared" => (F::MS_SHARED, F::empty()),
            "rshared" => (F::MS_SHARED | F::MS_REC, F::empty()),
            "slave" => (F::MS_SLAVE, F::empty()),
            "rslave" => (F::MS_SLAVE | F::MS_REC, F::empty()),
            "unbindable" => (F::MS_UNBINDABLE, F::empty()),
            "runbindable" => (F::MS_UNBINDABLE | F::MS_REC, F::empty()),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, data)
}

/// Unmounts what `mount` put on a volume's `_data`, if anything; fails when
/// something stays mounted there.
pub fn unmount(root: &Path, name: &str) -> Result<()> {
    let data = data_path(root, name);
    // A bind may be stacked more than once (an older berthd mounted at each start).
    for _ in 0..16 {
        if !is_mountpoint(&data) {
            return Ok(());
        }
        nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| io("unmounting", &data, e))?;
    }
    Err(Error::internal(format!("{} stays mounted", data.display())))
}

/// Removes volume `name` and its data. What is mounted there is unmounted
/// first, and the data is removed only once nothing is: a bind volume's
/// host directory is never emptied.
pub fn remove(root: &Path, name: &str) -> Result<()> {
    unmount(root, name)?;
    let dir = root.join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::internal(format!("remove {}: {e}", dir.display()))),
    }
}

/// The volume directories under `root` (names), for the start-up sweep.
pub fn on_disk(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes the files under `path` take (what `system df -v` shows), without
/// following symlinks or crossing into other filesystems.
pub fn size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                if m.dev() == top.dev() {
                    stack.push(e.path());
                }
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Whether something is mounted on `path` (a bind of a directory of the
/// same filesystem included), from the mount table.
fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.as_os_str().as_bytes();
    info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|point| unescape_octal(point).as_slice() == wanted)
    })
}

/// A mountinfo field with its `\040`-style escapes undone.
fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Fills an empty volume with the image's files at a container path, as
/// dockerd does when a volume is first used: `rootfs` is the container's
/// root, `rel` the path in it. Owners, modes, times, symlinks and device
/// nodes are kept. A volume with anything in it is left alone.
///
/// Everything goes through directory fds: the source is resolved beneath
/// the rootfs without following a symlink, and every entry is made with
/// `O_EXCL`/`mkdirat` and reopened `O_NOFOLLOW` in its new parent, so a
/// container that has the volume mounted and swaps a directory for a
/// symlink meanwhile makes the copy fail, never write outside the volume.
pub fn copy_up(rootfs: &Path, rel: &str, volume: &Path) -> Result<()> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let dst = rustix::fs::open(volume, dir_flags, Mode::empty())
        .map_err(|e| Error::internal(format!("opening {}: {e}", volume.display())))?;
    if !dir_is_empty(dst.as_fd())? {
        return Ok(());
    }
    let root = rustix::fs::open(rootfs, dir_flags & !OFlags::NOFOLLOW, Mode::empty())
        .map_err(|e| Error::internal(format!("opening {}: {e}", rootfs.display())))?;
    let inner = rel.trim_start_matches('/');
    let src = if inner.is_empty() {
        root
    } else {
        // A path through a symlink or `..` in the image is not followed:
        // it could point anywhere on the host.
        match rustix::fs::openat2(
            &root,
            inner,
            dir_flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(_) => return Ok(()),
        }
    };
    let copied = copy_dir(src.as_fd(), dst.as_fd()).and_then(|()| {
        let st = rustix::fs::fstat(&src).map_err(|e| io("stat", volume, e))?;
        set_attributes(dst.as_fd(), &st, volume)
    });
    if copied.is_err() {
        // Half a copy would read as "not empty" forever: take it back.
        empty_dir(volume);
    }
    copied
}

use std::os::fd::{AsFd, BorrowedFd};

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

fn dir_is_empty(dir: BorrowedFd<'_>) -> Result<bool> {
    let mut entries = rustix::fs::Dir::read_from(dir)
        .map_err(|e| Error::internal(format!("reading a volume: {e}")))?;
    for entry in entries.by_ref() {
        let entry = entry.map_err(|e| Error::internal(format!("reading a volume: {e}")))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

fn empty_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            // Neither follows a symlink: what a container put there goes alone.
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    let _ = std::fs::remove_dir_all(&p);
                }
                _ => {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }
}

fn copy_dir(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let listing = rustix::fs::Dir::read_from(src)
        .map_err(|e| Error::internal(format!("reading the image's directory: {e}")))?;
    for entry in listing {
        let entry =
            entry.map_err(|e| Error::internal(format!("reading the image's directory: {e}")))?;
        let name = entry.file_name().to_owned();
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        let shown = Path::new(std::ffi::OsStr::from_bytes(name.as_bytes())).to_path_buf();
        let st = rustix::fs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io("stat", &shown, e))?;
        let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, &name, Mode::from_raw_mode(0o700))
                    .map_err(|e| io("mkdir", &shown, e))?;
                let dir = OFlags::RDONLY | OFlags::DIRECTORY | nofollow;
                let s = rustix::fs::openat(src, &name, dir, Mode::empty())
                    .map_err(|e| io("open", &shown, e))?;
                let d = rustix::fs::openat(dst, &name, dir, Mode::empty())
                    .map_err(|e| io("open", &shown, e))?;
                copy_dir(s.as_fd(), d.as_fd())?;
                set_attributes(d.as_fd(), &st, &shown)?;
            }
            FileType::RegularFile => {
                let s = rustix::fs::openat(src, &name, OFlags::RDONLY | nofollow, Mode::empty())
                    .map_err(|e| io("open", &shown, e))?;
                let d = rustix::fs::openat(
                    dst,
                    &name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | nofollow,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io("create", &shown, e))?;
                let (mut from, mut to) = (std::fs::File::from(s), std::fs::File::from(d));
                std::io::copy(&mut from, &mut to).map_err(|e| io("copy", &shown, e))?;
                set_attributes(to.as_fd(), &st, &shown)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, &name, Vec::new())
                    .map_err(|e| io("readlink", &shown, e))?;
                rustix::fs::symlinkat(&target, dst, &name).map_err(|e| io("symlink", &shown, e))?;
                owner_and_times_at(dst, &name, &st, &shown)?;
            }
            FileType::Socket | FileType::Unknown => {}
            kind => {
                rustix::fs::mknodat(
                    dst,
                    &name,
                    kind,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    st.st_rdev,
                )
                .map_err(|e| io("mknod", &shown, e))?;
                // Its mode (past the umask) through an O_PATH fd of the node
                // itself: chmod by name would follow a symlink put there.
                let node = rustix::fs::openat(dst, &name, OFlags::PATH | nofollow, Mode::empty())
                    .map_err(|e| io("open", &shown, e))?;
                if FileType::from_raw_mode(
                    rustix::fs::fstat(&node)
                        .map_err(|e| io("stat", &shown, e))?
                        .st_mode,
                ) == kind
                {
                    let magic = format!("/proc/self/fd/{}", node.as_raw_fd());
                    rustix::fs::chmod(magic.as_str(), Mode::from_raw_mode(st.st_mode & 0o7777))
                        .map_err(|e| io("chmod", &shown, e))?;
                }
                owner_and_times_at(dst, &name, &st, &shown)?;
            }
        }
    }
    Ok(())
}

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

/// Owner, then mode (chown clears set-id bits), then times, of an open file.
fn set_attributes(fd: BorrowedFd<'_>, st: &rustix::fs::Stat, shown: &Path) -> Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )
    .map_err(|e| io("chown", shown, e))?;
    rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777))
        .map_err(|e| io("chmod", shown, e))?;
    rustix::fs::futimens(fd, &timestamps(st)).map_err(|e| io("utimens", shown, e))
}

/// Owner and times of `name` in `dir`, without following it.
fn owner_and_times_at(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    st: &rustix::fs::Stat,
    shown: &Path,
) -> Result<()> {
    let nofollow = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        nofollow,
    )
    .map_err(|e| io("chown", shown, e))?;
    rustix::fs::utimensat(dir, name, &timestamps(st), nofollow).map_err(|e| io("utimens", shown, e))
}

fn timestamps(st: &rustix::fs::Stat) -> rustix::fs::Timestamps {
    rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_up_fills_an_empty_volume_and_leaves_a_full_one() {
        let root = std::env::temp_dir().join(format!("berth-copyup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let rootfs = root.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc/sub")).expect("mkdir");
        std::fs::write(rootfs.join("etc/sub/f"), "x").expect("write");
        std::os::unix::fs::symlink("/etc/shadow", rootfs.join("etc/link")).expect("symlink");
        let vol = root.join("vol");
        std::fs::create_dir_all(&vol).expect("mkdir");
        copy_up(&rootfs, "/etc", &vol).expect("copied");
        assert_eq!(
            std::fs::read_to_string(vol.join("sub/f")).expect("read"),
            "x"
        );
        assert_eq!(
            std::fs::read_link(vol.join("link")).expect("link"),
            PathBuf::from("/etc/shadow")
        );
        std::fs::write(rootfs.join("etc/new"), "y").expect("write");
        copy_up(&rootfs, "/etc", &vol).expect("left alone");
        assert!(!vol.join("new").exists());
        // A path through a symlink is not followed out of the rootfs.
        let other = root.join("other");
        std::fs::create_dir_all(&other).expect("mkdir");
        copy_up(&rootfs, "/etc/link", &other).expect("skipped");
        assert!(std::fs::read_dir(&other).expect("read").next().is_none());
        // A symlink put in the volume's place while it is filled (a container
        // sharing it): the copy fails, nothing lands where it points.
        let outside = root.join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        let planted = root.join("planted");
        std::fs::create_dir_all(&planted).expect("mkdir");
        std::os::unix::fs::symlink(&outside, planted.join("sub")).expect("symlink");
        let src = rustix::fs::open(
            rootfs.join("etc"),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .expect("open");
        let dst = rustix::fs::open(
            &planted,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .expect("open");
        assert!(copy_dir(src.as_fd(), dst.as_fd()).is_err());
        assert!(std::fs::read_dir(&outside).expect("read").next().is_none());
        let _ = std::fs::remove_dir_all(&root);
    }
}
