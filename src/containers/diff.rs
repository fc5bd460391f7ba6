//! `docker diff`: what a container changed, read from its read-write layer
//! (overlay2's upper directory) against the image layers under it, with the
//! rules of moby's archive.changes: whiteouts are deletions, a path the image
//! has is a modification, a new one an addition, and the parent of an
//! addition or deletion is listed as modified once.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: Kind,
}

/// What the runtime makes in a container's layer as mount points (dockerd
/// keeps these in a separate init layer): not the container's changes.
pub const MOUNT_POINTS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/.dockerenv",
    "/etc/mtab",
    "/sbin/docker-init",
];

/// The changes in `upper` over `lowers` (top first), in walk order.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut changed_dirs: HashSet<String> = HashSet::new();
    walk(upper, Path::new("/"), lowers, &mut out, &mut changed_dirs)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    at: &Path,
    lowers: &[PathBuf],
    out: &mut Vec<Change>,
    changed_dirs: &mut HashSet<String>,
) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::internal(format!("reading {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for name in names {
        let host = dir.join(&name);
        let path = at.join(&name);
        let shown = path.display().to_string();
        if MOUNT_POINTS.contains(&shown.as_str()) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        let kind = if whiteout {
            Kind::Deleted
        } else {
            let rel = path.strip_prefix("/").unwrap_or(&path);
            let below = lowers
                .iter()
                .find_map(|l| std::fs::symlink_metadata(l.join(rel)).ok());
            match below {
                None => Kind::Added,
                // A directory only copied up because something under it
                // changed is not itself a change.
                Some(b)
                    if b.is_dir()
                        && meta.is_dir()
                        && b.size() == meta.size()
                        && b.mode() == meta.mode()
                        && b.mtime() == meta.mtime()
                        && b.mtime_nsec() == meta.mtime_nsec() =>
                {
                    walk(&host, &path, lowers, out, changed_dirs)?;
                    continue;
                }
                // Nor one that holds only the runtime's mount points
                // (/etc of an image without hosts or resolv.conf): dockerd
                // has them, and their directory, in its init layer.
                Some(b) if b.is_dir() && meta.is_dir() && only_mount_points(&host, &path) => {
                    continue
                }
                Some(_) => Kind::Modified,
            }
        };
        if meta.is_dir() && !whiteout {
            changed_dirs.insert(shown.clone());
        }
        if kind != Kind::Modified {
            let parent = at.display().to_string();
            if parent != "/" && changed_dirs.insert(parent.clone()) {
                out.push(Change {
                    path: parent,
                    kind: Kind::Modified,
                });
            }
        }
        out.push(Change { path: shown, kind });
        if meta.is_dir() && !whiteout {
            walk(&host, &path, lowers, out, changed_dirs)?;
        }
    }
    Ok(())
}

fn only_mount_points(dir: &Path, at: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let shown = at.join(e.file_name()).display().to_string();
            MOUNT_POINTS.contains(&shown.as_str())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_mount_points_only_is_no_change() {
        let t = tempfile::tempdir().expect("tempdir");
        let (upper, lower) = (t.path().join("upper"), t.path().join("lower"));
        std::fs::create_dir_all(lower.join("etc")).expect("mkdir");
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::create_dir_all(upper.join("etc")).expect("mkdir");
        std::fs::write(upper.join("etc/hosts"), "").expect("write");
        std::os::unix::fs::symlink("/proc/mounts", upper.join("etc/mtab")).expect("link");
        assert_eq!(changes(&upper, &[lower.clone()]).expect("changes"), []);
        std::fs::write(upper.join("etc/new"), "n").expect("write");
        assert_eq!(changes(&upper, &[lower]).expect("changes").len(), 2);
    }

    #[test]
    fn additions_modifications_and_whiteouts() {
        let t = tempfile::tempdir().expect("tempdir");
        let (upper, lower) = (t.path().join("upper"), t.path().join("lower"));
        for d in [&upper, &lower] {
            std::fs::create_dir_all(d.join("etc")).expect("mkdir");
        }
        std::fs::write(lower.join("etc/passwd"), "root").expect("write");
        std::fs::write(upper.join("etc/passwd"), "root\nx").expect("write");
        std::fs::write(upper.join("etc/new"), "n").expect("write");
        std::fs::create_dir(upper.join("tmpdir")).expect("mkdir");
        let got = changes(&upper, &[lower]).expect("changes");
        let got: Vec<(String, Kind)> = got.into_iter().map(|c| (c.path, c.kind)).collect();
        assert_eq!(
            got,
            [
                ("/etc".into(), Kind::Modified),
                ("/etc/new".into(), Kind::Added),
                ("/etc/passwd".into(), Kind::Modified),
                ("/tmpdir".into(), Kind::Added),
            ]
        );
    }
}
