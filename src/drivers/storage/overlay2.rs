//! overlay2, laid out as dockerd lays it out:
//!
//! <root>/<cache-id>/diff     the layer's own files (whiteouts as overlay markers)
//! <root>/<cache-id>/link     the layer's short name
//! <root>/<cache-id>/lower    `l/<short>:l/<short>...` of its parents, nearest first
//! <root>/l/<short>           -> ../<cache-id>/diff
//!
//! Short links keep the mount options of deep images (120 layers) within the
//! kernel's limits. A layer is extracted into a staging directory and renamed into
//! place only once it is complete and verified: a half-made layer is never seen,
//! and leftovers of a crash are swept at start.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use crate::drivers::userns::Remap;
use crate::error::{Context, Error, Result};

const STAGING_PREFIX: &str = ".staging-";

/// How layers are kept: overlay2 (each layer its own diff, stacked by a mount) or
/// vfs (each layer a full copy; see `vfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Overlay2,
    Vfs,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay2 => "overlay2",
            Driver::Vfs => "vfs",
        }
    }
}

pub struct LayerStore {
    root: PathBuf,
    driver: Driver,
    remap: Option<Arc<Remap>>,
}

/// A layer being extracted; dropped without `commit`, it is removed.
pub struct Staged {
    dir: PathBuf,
    committed: bool,
}

impl Staged {
    pub fn diff_dir(&self) -> PathBuf {
        self.dir.join("diff")
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut b = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(hex::encode(b))
}

/// 26 characters from [A-Z0-9], as dockerd's short link names.
fn short_name() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut b = [0u8; 26];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter()
        .map(|x| ALPHABET[(*x as usize) % ALPHABET.len()] as char)
        .collect())
}

/// The cache directory of a layer: its ChainID's hex (stable, so a re-pull of the
/// same layer finds it).
pub fn cache_id(chain_id: &str) -> String {
    chain_id
        .strip_prefix("sha256:")
        .unwrap_or(chain_id)
        .to_string()
}

impl LayerStore {
    pub fn open(root: &Path, driver: Driver) -> Result<LayerStore> {
        let sub = match driver {
            Driver::Overlay2 => "l",
            Driver::Vfs => "dir",
        };
        std::fs::create_dir_all(root.join(sub))
            .context(format_args!("creating {}", root.display()))?;
        Ok(LayerStore {
            root: root.to_path_buf(),
            driver,
            remap: None,
        })
    }

    /// Containers run with userns-remap see their layers idmapped through it.
    pub fn with_remap(mut self, remap: Option<Arc<Remap>>) -> Result<LayerStore> {
        if remap.is_some() && self.driver == Driver::Vfs {
            return Err(Error::invalid(
                "userns-remap needs the overlay2 storage driver (berthd idmaps the image layers)",
            ));
        }
        self.remap = remap;
        Ok(self)
    }

    /// The daemon's remapping, for a container that is remapped (`remapped`:
    /// remapping is on and its UsernsMode is not "host").
    pub fn remap(&self) -> Option<&Arc<Remap>> {
        self.remap.as_ref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// vfs: the directory holding layer `chain_id`'s full tree.
    fn vfs_dir(&self, chain_id: &str) -> PathBuf {
        self.root.join("dir").join(cache_id(chain_id))
    }

    pub fn exists(&self, chain_id: &str) -> bool {
        match self.driver {
            Driver::Overlay2 => self.root.join(cache_id(chain_id)).join("link").exists(),
            Driver::Vfs => self.vfs_dir(chain_id).is_dir(),
        }
    }

    /// vfs commit: the parent's tree plus this layer's diff, renamed into place.
    fn commit_vfs(&self, mut staged: Staged, chain_id: &str, parent: Option<&str>) -> Result<()> {
        let target = self.vfs_dir(chain_id);
        if target.is_dir() {
            return Ok(());
        }
        let full = staged.dir.join("full");
        std::fs::create_dir_all(&full).context("creating the layer tree")?;
        if let Some(p) = parent {
            let pdir = self.vfs_dir(p);
            if !pdir.is_dir() {
                return Err(Error::internal(format!("parent layer {p} is missing")));
            }
            super::vfs::copy_tree(&pdir, &full)?;
        }
        super::vfs::apply_overlay_diff(&staged.diff_dir(), &full)?;
        std::fs::rename(&full, &target).context(format_args!("committing layer {chain_id}"))?;
        let _ = std::fs::remove_dir_all(&staged.dir);
        staged.committed = true;
        Ok(())
    }

    /// A fresh staging directory to extract a layer into.
    pub fn stage(&self) -> Result<Staged> {
        let dir = self
            .root
            .join(format!("{STAGING_PREFIX}{}", random_hex(8)?));
        std::fs::create_dir_all(dir.join("diff"))
            .context(format_args!("creating {}", dir.display()))?;
        Ok(Staged {
            dir,
            committed: false,
        })
    }

    /// Puts a complete, verified layer in place under its ChainID, on top of
    /// `parent` (which must be committed already: layers go in parents first).
    pub fn commit(&self, mut staged: Staged, chain_id: &str, parent: Option<&str>) -> Result<()> {
        if self.driver == Driver::Vfs {
            return self.commit_vfs(staged, chain_id, parent);
        }
        let target = self.root.join(cache_id(chain_id));
        if target.join("link").exists() {
            // Someone committed the same layer first; ours is not needed.
            return Ok(());
        }
        if let Some(p) = parent {
            let pdir = self.root.join(cache_id(p));
            let link = std::fs::read_to_string(pdir.join("link"))
                .context(format_args!("parent layer {p} is missing"))?;
            let lower = match std::fs::read_to_string(pdir.join("lower")) {
                Ok(l) if !l.is_empty() => format!("l/{}:{l}", link.trim()),
                _ => format!("l/{}", link.trim()),
            };
            std::fs::write(staged.dir.join("lower"), lower).context("writing lower")?;
        }
        let short = short_name()?;
        std::fs::write(staged.dir.join("link"), &short).context("writing link")?;
        std::os::unix::fs::symlink(
            format!("../{}/diff", cache_id(chain_id)),
            self.root.join("l").join(&short),
        )
        .context("creating the short link")?;
        if target.exists() {
            let _ = std::fs::remove_dir_all(&target);
        }
        std::fs::rename(&staged.dir, &target)
            .context(format_args!("committing layer {chain_id}"))?;
        staged.committed = true;
        Ok(())
    }

    /// A container's read-write layer on top of image layer `image_top`:
    /// overlay2 `<cid>/{diff,work,merged,link,lower}`, vfs a copy of the image.
    pub fn create_rw(&self, cid: &str, image_top: Option<&str>) -> Result<()> {
        if self.driver == Driver::Vfs {
            let dir = self.root.join("dir").join(cid);
            std::fs::create_dir_all(&dir).context("creating the container layer")?;
            if let Some(top) = image_top {
                if let Err(e) = super::vfs::copy_tree(&self.vfs_dir(top), &dir) {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
            return Ok(());
        }
        let dir = self.root.join(cid);
        let made = (|| -> Result<()> {
            for sub in ["diff", "work", "merged"] {
                std::fs::create_dir_all(dir.join(sub)).context("creating the container layer")?;
            }
            if let Some(top) = image_top {
                let tdir = self.root.join(cache_id(top));
                let link = std::fs::read_to_string(tdir.join("link"))
                    .context(format_args!("image layer {top} is missing"))?;
                let lower = match std::fs::read_to_string(tdir.join("lower")) {
                    Ok(l) if !l.is_empty() => format!("l/{}:{l}", link.trim()),
                    _ => format!("l/{}", link.trim()),
                };
                std::fs::write(dir.join("lower"), lower).context("writing lower")?;
            }
            Ok(())
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        made
    }

    /// Mounts a container's root filesystem (image layers under its read-write
    /// layer) and returns where; vfs needs no mount.
    pub fn mount_rw(&self, cid: &str, remapped: bool) -> Result<PathBuf> {
        use rustix::mount::*;
        if self.driver == Driver::Vfs {
            return Ok(self.root.join("dir").join(cid));
        }
        let merged = self.root.join(cid).join("merged");
        let mnt = self.overlay(cid, remapped)?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            &merged,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .context(format_args!("mounting at {}", merged.display()))?;
        Ok(merged)
    }

    /// A container's root filesystem as a directory fd, to read or write it
    /// from the host (docker cp, diff, export, commit). `mounted`: it runs,
    /// so its `merged` mount is there; otherwise a detached overlay mount
    /// that is nowhere in the tree and goes away with the fd.
    pub fn open_rootfs(
        &self,
        cid: &str,
        mounted: bool,
        remapped: bool,
    ) -> Result<std::os::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        let dir = match self.driver {
            Driver::Vfs => self.root.join("dir").join(cid),
            Driver::Overlay2 if mounted => self.root.join(cid).join("merged"),
            Driver::Overlay2 => {
                // fsmount gives an O_PATH fd: open the mount's root for real
                // (the mount lives as long as any fd of it).
                let mnt = self.overlay(cid, remapped)?;
                return rustix::fs::openat(
                    &mnt,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .context("opening the container's filesystem");
            }
        };
        rustix::fs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .context(format_args!("opening {}", dir.display()))
    }

    /// The read-write layer's own directory (overlay2's upper `diff`, or the
    /// vfs copy): what `docker diff` and `commit` read.
    pub fn rw_diff_dir(&self, cid: &str) -> PathBuf {
        match self.driver {
            Driver::Vfs => self.root.join("dir").join(cid),
            Driver::Overlay2 => self.root.join(cid).join("diff"),
        }
    }

    /// The layer directories under a container's read-write layer, top first
    /// (none for vfs, whose copy holds the image too).
    pub fn rw_lower_dirs(&self, cid: &str) -> Vec<PathBuf> {
        if self.driver == Driver::Vfs {
            return Vec::new();
        }
        std::fs::read_to_string(self.root.join(cid).join("lower"))
            .unwrap_or_default()
            .split(':')
            .filter(|s| !s.is_empty())
            .map(|l| self.root.join(l))
            .collect()
    }

    /// A new, unattached overlay mount of container `cid`'s layers. For a
    /// remapped container each image layer is an idmapped clone of its
    /// directory (given to overlayfs as a descriptor, Linux 6.13+), and the
    /// top of its own layer belongs to the remapped root.
    fn overlay(&self, cid: &str, remapped: bool) -> Result<std::os::fd::OwnedFd> {
        use rustix::mount::*;
        let dir = self.root.join(cid);
        let lower = std::fs::read_to_string(dir.join("lower")).unwrap_or_default();
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
        let remap = self.remap.as_ref().filter(|_| remapped);
        // overlayfs takes only layers that are mounted in our namespace: the
        // idmapped clones are attached under the container's directory while
        // the overlay is made (it keeps private clones), then detached.
        static STAGINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STAGINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut staging = Staging(dir.join(format!("idmapped-{n}")), Vec::new());
        for (i, l) in lower.split(':').filter(|s| !s.is_empty()).enumerate() {
            let mut path = self.root.join(l);
            if let Some(r) = remap {
                let idmapped = idmapped_clone(&path, r)?;
                let at = staging.0.join(i.to_string());
                std::fs::create_dir_all(&at).context(format_args!("creating {}", at.display()))?;
                move_mount(
                    &idmapped,
                    "",
                    rustix::fs::CWD,
                    &at,
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                )
                .context(format_args!(
                    "attaching the idmapped layer at {}",
                    at.display()
                ))?;
                staging.1.push(at.clone());
                path = at;
            }
            fsconfig_set_string(&fs, "lowerdir+", path.as_path())
                .context(format_args!("overlay lowerdir+ {l}"))?;
        }
        if let Some(r) = remap {
            let (uid, gid) = r.root();
            let upper = dir.join("diff");
            std::os::unix::fs::chown(&upper, Some(uid), Some(gid))
                .context(format_args!("chown {}", upper.display()))?;
        }
        fsconfig_set_string(&fs, "upperdir", dir.join("diff").as_path())
            .context("overlay upperdir")?;
        fsconfig_set_string(&fs, "workdir", dir.join("work").as_path())
            .context("overlay workdir")?;
        fsconfig_create(&fs).context("creating the overlay")?;
        fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).context("fsmount")
    }

    /// Unmounts a container's root filesystem (nothing for vfs).
    pub fn unmount_rw(&self, cid: &str) {
        if self.driver == Driver::Overlay2 {
            let merged = self.root.join(cid).join("merged");
            let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
        }
    }

    /// Removes a container's read-write layer (unmounted first).
    pub fn remove_rw(&self, cid: &str) -> Result<()> {
        let dir = match self.driver {
            Driver::Vfs => self.root.join("dir").join(cid),
            Driver::Overlay2 => {
                let merged = self.root.join(cid).join("merged");
                let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
                self.root.join(cid)
            }
        };
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::internal(format!(
                "removing the container layer {}: {e}",
                dir.display()
            ))),
            _ => Ok(()),
        }
    }

    /// GraphDriver data of a container's layer, as dockerd reports it.
    pub fn rw_data(&self, cid: &str) -> std::collections::HashMap<String, String> {
        let mut data = std::collections::HashMap::new();
        if self.driver == Driver::Vfs {
            return data;
        }
        let dir = self.root.join(cid);
        let show = |p: PathBuf| p.display().to_string();
        if let Ok(lower) = std::fs::read_to_string(dir.join("lower")) {
            let dirs: Vec<String> = lower
                .split(':')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    std::fs::canonicalize(self.root.join(s))
                        .map(show)
                        .unwrap_or_default()
                })
                .collect();
            data.insert("LowerDir".into(), dirs.join(":"));
        }
        data.insert("MergedDir".into(), show(dir.join("merged")));
        data.insert("UpperDir".into(), show(dir.join("diff")));
        data.insert("WorkDir".into(), show(dir.join("work")));
        data
    }

    /// Removes a layer and its short link.
    pub fn remove(&self, chain_id: &str) -> Result<()> {
        if self.driver == Driver::Vfs {
            return match std::fs::remove_dir_all(self.vfs_dir(chain_id)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::internal(format!("removing layer {chain_id}: {e}")))
                }
                _ => Ok(()),
            };
        }
        let dir = self.root.join(cache_id(chain_id));
        if let Ok(link) = std::fs::read_to_string(dir.join("link")) {
            let _ = std::fs::remove_file(self.root.join("l").join(link.trim()));
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::internal(format!("removing layer {chain_id}: {e}"))),
        }
    }

    /// Sweeps staging leftovers and layers no image knows (a crash between commit
    /// and the event that records it).
    pub fn sweep(&self, known: &dyn Fn(&str) -> bool) {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "l" || name == "dir" {
                continue;
            }
            if name.starts_with(STAGING_PREFIX) || !known(&format!("sha256:{name}")) {
                info!(layer = %name, "removing an unfinished or unreferenced layer");
                let _ = self.remove(&format!("sha256:{name}"));
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        if let Ok(dirs) = std::fs::read_dir(self.root.join("dir")) {
            for entry in dirs.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !known(&format!("sha256:{name}")) {
                    info!(layer = %name, "removing an unreferenced layer");
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        // Dangling short links.
        if let Ok(links) = std::fs::read_dir(self.root.join("l")) {
            for l in links.flatten() {
                if std::fs::metadata(l.path()).is_err() {
                    let _ = std::fs::remove_file(l.path());
                }
            }
        }
    }

    /// The directories to stack for the image whose top layer is `top`, top first.
    pub fn lower_dirs(&self, top: &str) -> Result<Vec<PathBuf>> {
        if self.driver == Driver::Vfs {
            let dir = self.vfs_dir(top);
            if !dir.is_dir() {
                return Err(Error::internal(format!("layer {top} is missing")));
            }
            return Ok(vec![dir]);
        }
        let dir = self.root.join(cache_id(top));
        let link = std::fs::read_to_string(dir.join("link"))
            .context(format_args!("layer {top} is missing"))?;
        let mut dirs = vec![self.root.join("l").join(link.trim())];
        if let Ok(lower) = std::fs::read_to_string(dir.join("lower")) {
            dirs.extend(
                lower
                    .split(':')
                    .filter(|s| !s.is_empty())
                    .map(|s| self.root.join(s)),
            );
        }
        Ok(dirs)
    }

    /// Mounts the image whose top layer is `top` read-only at `target` (overlay with
    /// lower layers only; a single layer is bind-mounted). Layers are passed one by
    /// one (`lowerdir+`, Linux 6.8+), so no option-string limit applies.
    pub fn mount_readonly(&self, top: &str, target: &Path) -> Result<()> {
        use rustix::mount::*;
        let dirs = self.lower_dirs(top)?;
        if dirs.len() == 1 {
            mount_bind(&dirs[0], target).context("bind-mounting the layer")?;
            return mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")
                .context("making it read-only");
        }
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
        for d in &dirs {
            if let Err(e) = fsconfig_set_string(&fs, "lowerdir+", d.as_path()) {
                warn!(error = %e, "lowerdir+ refused (kernel older than 6.8?)");
                return Err(Error::internal(format!(
                    "overlay lowerdir+ {}: {e}",
                    d.display()
                )));
            }
        }
        fsconfig_create(&fs).context("creating the overlay")?;
        let mnt = fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_RDONLY,
        )
        .context("fsmount")?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .context(format_args!("mounting at {}", target.display()))
    }
}

/// Idmapped layers attached while an overlay is made: detached and their
/// mount points removed when it goes.
struct Staging(PathBuf, Vec<PathBuf>);

impl Drop for Staging {
    fn drop(&mut self) {
        for at in &self.1 {
            let _ = rustix::mount::unmount(at, rustix::mount::UnmountFlags::DETACH);
        }
        if !self.1.is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A detached clone of the mount at `path`, idmapped through the remap's
/// user namespace: what is root's on disk is the remapped root's there.
fn idmapped_clone(path: &Path, remap: &Remap) -> Result<std::os::fd::OwnedFd> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    use std::os::fd::AsRawFd;
    let tree = open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .context(format_args!("open_tree {}", path.display()))?;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: remap.userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr on a descriptor we own, with a properly sized attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Error::internal(format!(
            "idmapping {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(tree)
}
