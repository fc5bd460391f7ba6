//! The `local` volume driver on the host: a volume is a directory
//! `<root>/<name>/_data`; one made with `--opt type=... device=... o=...` has
//! that filesystem mounted on its `_data` while containers use it, as
//! dockerd's local driver does with mount(2).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Context as _, Error, Result};

/// The options the local driver takes (`docker volume create --opt`).
pub const LOCAL_OPTIONS: [&str; 4] = ["type", "device", "o", "size"];

/// Where volume `name`'s data lives.
pub fn data_path(root: &Path, name: &str) -> PathBuf {
    root.join(name).join("_data")
}

/// Makes `<root>/<name>/_data` (owned by `owner`, the remapped root under
/// userns-remap). An existing directory is kept as it is.
pub fn create(root: &Path, name: &str, owner: Option<(u32, u32)>) -> Result<PathBuf> {
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
    let mut opts = get("o").unwrap_or_default().to_string();
    let mut flags = nix::mount::MsFlags::empty();
    // `o=bind` (and `o=rbind`) are flags, not data, for mount(2).
    let mut data_opts = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "bind" => flags |= nix::mount::MsFlags::MS_BIND,
            "rbind" => flags |= nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            "ro" => flags |= nix::mount::MsFlags::MS_RDONLY,
            other => data_opts.push(other.to_string()),
        }
    }
    if let Some(size) = get("size") {
        data_opts.push(format!("size={size}"));
    }
    opts = data_opts.join(",");
    nix::mount::mount(
        Some(device),
        &data,
        Some(fstype),
        flags,
        (!opts.is_empty()).then_some(opts.as_str()),
    )
    .map_err(|e| {
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
    })?;
    Ok(data)
}

/// Unmounts what `mount` put on a volume's `_data`, if anything.
pub fn unmount(root: &Path, name: &str) {
    let data = data_path(root, name);
    if is_mountpoint(&data) {
        let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Removes volume `name` and its data (unmounting it first).
pub fn remove(root: &Path, name: &str) -> Result<()> {
    unmount(root, name);
    let dir = root.join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::internal(format!("remove {}: {e}", dir.display()))),
    }
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

fn is_mountpoint(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(Ok(parent))) = (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) else {
        return false;
    };
    me.dev() != parent.dev() || me.ino() == parent.ino()
}

/// Fills an empty volume with the image's files at a container path, as
/// dockerd does on a volume's first use: `from` is that path in the mounted
/// rootfs, opened without following a symlink out of it. Owners, modes,
/// times and symlinks are kept. A volume with anything in it is left alone.
pub fn copy_up(rootfs: &Path, rel: &str, volume: &Path) -> Result<()> {
    let not_empty = std::fs::read_dir(volume)
        .context(format_args!("reading {}", volume.display()))?
        .next()
        .is_some();
    if not_empty {
        return Ok(());
    }
    // Every component must be a real directory in the rootfs: a symlink
    // there could point anywhere on the host.
    let mut from = rootfs.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Ok(());
        }
        from.push(part);
        match std::fs::symlink_metadata(&from) {
            Ok(m) if m.is_dir() => {}
            _ => return Ok(()),
        }
    }
    copy_tree(&from, volume)?;
    copy_attributes(&from, volume)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).context(format_args!("reading {}", from.display()))? {
        let entry = entry.context(format_args!("reading {}", from.display()))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let m = std::fs::symlink_metadata(&src).context(format_args!("stat {}", src.display()))?;
        let ft = m.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst).context(format_args!("mkdir {}", dst.display()))?;
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(&src).context(format_args!("readlink {}", src.display()))?;
            std::os::unix::fs::symlink(&target, &dst)
                .context(format_args!("symlink {}", dst.display()))?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst).context(format_args!("copying {}", src.display()))?;
        } else {
            use std::os::unix::fs::MetadataExt;
            let kind = nix::sys::stat::SFlag::from_bits_truncate(m.mode() & libc::S_IFMT);
            let perm = nix::sys::stat::Mode::from_bits_truncate(m.mode() & 0o7777);
            nix::sys::stat::mknod(&dst, kind, perm, m.rdev())
                .map_err(|e| Error::internal(format!("mknod {}: {e}", dst.display())))?;
        }
        copy_attributes(&src, &dst)?;
    }
    Ok(())
}

/// Owner, mode and times of `from` onto `to` (a symlink's own owner and times).
fn copy_attributes(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::symlink_metadata(from).context(format_args!("stat {}", from.display()))?;
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))
        .context(format_args!("chown {}", to.display()))?;
    if !m.file_type().is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .context(format_args!("chmod {}", to.display()))?;
    }
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        to,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::internal(format!("utimensat {}: {e}", to.display())))?;
    Ok(())
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
        let _ = std::fs::remove_dir_all(&root);
    }
}
