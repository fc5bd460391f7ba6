//! vfs: every layer is a complete root filesystem, its parent copied and its own
//! diff applied on top. No overlay mount is needed, at the price of disk and time;
//! dockerd's fallback where overlayfs is unavailable.
//!
//! Layers are extracted exactly as for overlay2 (same safe path, whiteouts as
//! overlay markers, in parallel); committing turns the marked diff into the full
//! tree here. Nothing in the target is ever followed through a symlink: a symlink
//! from a lower layer where the diff has a directory is replaced, not entered.

use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::error::{Context, Error, Result};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Copies a parent layer's tree into `to` (an empty directory), keeping owners,
/// modes, times, xattrs, hard links and device nodes.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(from.join("."))
        .arg(to)
        .output()
        .context("running cp")?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "copying the parent layer: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut [0u8; 4]), Ok(n) if n > 0)
}

fn remove_any(path: &Path) -> Result<()> {
    let r = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    r.context(format_args!("removing {}", path.display()))
}

/// Drops the overlay markers inside a subtree that has just arrived whole: in a
/// directory that did not exist below, they hide nothing.
fn strip_markers(dir: &Path) -> Result<()> {
    let _ = rustix::fs::lremovexattr(dir, OPAQUE_XATTR);
    for entry in std::fs::read_dir(dir).context(format_args!("reading {}", dir.display()))? {
        let entry = entry.context("reading a directory")?;
        let path = entry.path();
        let m = std::fs::symlink_metadata(&path).context("lstat")?;
        if is_whiteout(&m) {
            remove_any(&path)?;
        } else if m.is_dir() {
            strip_markers(&path)?;
        }
    }
    Ok(())
}

/// Moves the entries of an overlay-style `diff` into the full tree `target`,
/// applying whiteouts (remove) and opaque directories (replace). `diff` is
/// consumed.
pub fn apply_overlay_diff(diff: &Path, target: &Path) -> Result<()> {
    for entry in std::fs::read_dir(diff).context(format_args!("reading {}", diff.display()))? {
        let entry = entry.context("reading a directory")?;
        let name = entry.file_name();
        apply_entry(&diff.join(&name), &target.join(&name), &name)?;
    }
    Ok(())
}

fn apply_entry(src: &Path, dst: &Path, name: &OsStr) -> Result<()> {
    let m = std::fs::symlink_metadata(src).context("lstat")?;
    if is_whiteout(&m) {
        return remove_any(dst);
    }
    let existing = std::fs::symlink_metadata(dst).ok();
    let merge = m.is_dir() && existing.as_ref().is_some_and(|e| e.is_dir()) && !is_opaque(src);
    if !merge {
        remove_any(dst)?;
        std::fs::rename(src, dst).context(format_args!(
            "moving {} into the layer",
            name.to_string_lossy()
        ))?;
        if m.is_dir() {
            strip_markers(dst)?;
        }
        return Ok(());
    }
    // Both are real directories: merge, then take the diff's metadata (the
    // layer's tar entry for the directory decides its owner, mode and time).
    apply_overlay_diff(src, dst)?;
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid())).context("chown")?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
        .context("chmod")?;
    let t = rustix::fs::Timestamps {
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
        dst,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .context("setting times")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mknod_whiteout(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .expect("mknod (needs root)");
    }

    #[test]
    fn whiteouts_opaque_dirs_and_symlinks_from_below() {
        let t = tempfile::tempdir().expect("tmp");
        let (lower, diff, outside) = (
            t.path().join("lower"),
            t.path().join("diff"),
            t.path().join("outside"),
        );
        for d in [&lower, &diff, &outside] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        // Lower: a/keep, a/gone, o/old, link -> ../outside, file
        std::fs::create_dir_all(lower.join("a")).expect("mkdir");
        std::fs::write(lower.join("a/keep"), "k").expect("write");
        std::fs::write(lower.join("a/gone"), "g").expect("write");
        std::fs::create_dir_all(lower.join("o")).expect("mkdir");
        std::fs::write(lower.join("o/old"), "o").expect("write");
        std::os::unix::fs::symlink(&outside, lower.join("link")).expect("symlink");
        std::fs::write(lower.join("file"), "f").expect("write");
        // Diff: whiteout a/gone, add a/new, opaque o with o/fresh, a dir where the
        // symlink was, a dir where the file was.
        std::fs::create_dir_all(diff.join("a")).expect("mkdir");
        mknod_whiteout(&diff.join("a/gone"));
        std::fs::write(diff.join("a/new"), "n").expect("write");
        std::fs::create_dir_all(diff.join("o")).expect("mkdir");
        rustix::fs::setxattr(
            diff.join("o"),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("xattr");
        std::fs::write(diff.join("o/fresh"), "x").expect("write");
        std::fs::create_dir_all(diff.join("link")).expect("mkdir");
        std::fs::write(diff.join("link/inside"), "i").expect("write");
        std::fs::create_dir_all(diff.join("file/sub")).expect("mkdir");

        let full = t.path().join("full");
        std::fs::create_dir_all(&full).expect("mkdir");
        copy_tree(&lower, &full).expect("copy");
        apply_overlay_diff(&diff, &full).expect("apply");

        assert!(full.join("a/keep").exists());
        assert!(full.join("a/new").exists());
        assert!(std::fs::symlink_metadata(full.join("a/gone")).is_err());
        assert!(!full.join("o/old").exists());
        assert!(full.join("o/fresh").exists());
        assert!(!is_opaque(&full.join("o")));
        assert!(std::fs::symlink_metadata(full.join("link"))
            .expect("link")
            .is_dir());
        assert!(
            !outside.join("inside").exists(),
            "wrote through a lower layer's symlink"
        );
        assert!(full.join("file/sub").is_dir());
        // The parent layer is untouched.
        assert!(lower.join("a/gone").exists() && lower.join("o/old").exists());
    }
}
