//! Where a container's files are on the host, for the reads that need no
//! actor: its root filesystem (for `docker cp`, `export`, `diff`), its layer's
//! GraphDriver data and size, its directory and log, its namespace's path.
//! The facade holds one of these instead of the layer store, so it never
//! reaches a driver; reads never wait on a busy actor.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard_stubs::models::{ContainerCreateBody, DriverData};

use super::render;
use crate::drivers::storage::{Driver, LayerStore};
use crate::drivers::userns::IdShift;
use crate::error::{Error, Result};
use crate::events::projection::{ContainerRecord, ContainerStatus, State};

pub struct ContainerStorage {
    layers: Arc<LayerStore>,
    /// `<data-root>/containers`
    containers_dir: PathBuf,
    names: crate::drivers::network::Names,
}

/// A container's root filesystem, opened: the mounted one while it runs,
/// else a private mount of its layers.
pub struct Root {
    pub fd: OwnedFd,
    pub readonly: bool,
    /// Opened on a read-only bind or volume (`docker cp` into it fails).
    pub readonly_mount: bool,
    /// The container's `User` (for `copyUIDGID`).
    pub user: String,
    /// A remapped container's ids (userns-remap).
    pub ids: Option<IdShift>,
}

impl Root {
    /// A directory that is no container's (a build step's files FROM
    /// scratch): writable, ids as they are.
    pub fn plain(fd: OwnedFd) -> Root {
        Root {
            fd,
            readonly: false,
            readonly_mount: false,
            user: String::new(),
            ids: None,
        }
    }

    /// The uid and gid of the container's user, read from its own
    /// /etc/passwd and /etc/group (`docker cp -a`).
    pub fn user_ids(&self) -> Result<(u32, u32)> {
        let fd = self.fd.as_fd();
        let passwd = crate::drivers::exec::bundle::read_in_root_fd(fd, "etc/passwd");
        let group = crate::drivers::exec::bundle::read_in_root_fd(fd, "etc/group");
        let u = crate::drivers::exec::spec::resolve_user(&self.user, &passwd, &group)?;
        Ok((u.uid, u.gid))
    }
}

impl ContainerStorage {
    pub fn new(layers: Arc<LayerStore>, data_root: &Path, exec_root: &Path) -> ContainerStorage {
        ContainerStorage {
            layers,
            containers_dir: data_root.join("containers"),
            names: crate::drivers::network::Names::new(data_root, exec_root),
        }
    }

    /// `<data-root>/containers/<id>`: its log, hostname, hosts and resolv.conf.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.containers_dir.join(id)
    }

    /// `<data-root>/containers/<id>/<id>-json.log`
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    /// Whether the storage driver can tell a container's changes apart
    /// (vfs keeps no separate upper directory).
    fn has_diff(&self) -> bool {
        self.layers.driver() != Driver::Vfs
    }

    /// Refuses `what` on vfs, in the words dockerd's users would read.
    pub fn require_diff(&self, what: &str) -> Result<()> {
        if self.has_diff() {
            Ok(())
        } else {
            Err(Error::not_implemented(format!(
                "docker {what} is not supported with the vfs storage driver yet"
            )))
        }
    }

    /// The container's read-write layer (its own changes).
    pub fn upper_dir(&self, id: &str) -> PathBuf {
        self.layers.rw_diff_dir(id)
    }

    /// Bytes of the regular files in the container's own layer.
    pub fn rw_size(&self, id: &str) -> u64 {
        dir_size(&self.layers.rw_diff_dir(id))
    }

    /// How a container's file owners map to the host's, when it is remapped.
    pub fn remap_of(&self, body: &ContainerCreateBody) -> Option<IdShift> {
        self.layers
            .remap()
            .filter(|_| crate::drivers::userns::private(body.host_config.as_ref()))
            .map(|r| r.shift())
    }

    /// Opens the root filesystem of the container `name` (ID, name or prefix).
    pub fn open_root(&self, state: &State, name: &str) -> Result<Root> {
        let c = state.container(name)?;
        let running = c.status == ContainerStatus::Running;
        let body = render::body(c);
        let ids = self.remap_of(&body);
        let fd = self.layers.open_rootfs(&c.id, running, ids.is_some())?;
        Ok(Root {
            fd,
            readonly_mount: false,
            readonly: body
                .host_config
                .as_ref()
                .and_then(|h| h.readonly_rootfs)
                .unwrap_or(false),
            user: body.user.clone().unwrap_or_default(),
            ids,
        })
    }

    /// Opens what `path` of container `name` lies on, for `docker cp`: the
    /// data of the bind or volume mounted over it (the longest destination
    /// that holds it), else the root filesystem. Answers the root, the path
    /// inside it, and the name a mount point itself goes by (its last
    /// element: inside the mount it is `/`). A path reached through a
    /// symlink into a mount is not followed there (left for later).
    pub fn open_root_at(
        &self,
        state: &State,
        name: &str,
        path: &str,
    ) -> Result<(Root, String, Option<String>)> {
        let mut root = self.open_root(state, name)?;
        let c = state.container(name)?;
        let abs = crate::paths::clean_absolute(path);
        let mounts = super::mounts::recorded(c)?;
        let over = mounts
            .iter()
            .filter(|m| m.kind != super::mounts::Kind::Tmpfs && !m.source.is_empty())
            .filter(|m| abs == m.destination || abs.starts_with(&format!("{}/", m.destination)))
            .max_by_key(|m| m.destination.len());
        let Some(m) = over else {
            return Ok((root, path.to_string(), None));
        };
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let source = std::path::Path::new(&m.source);
        if !source.is_dir() {
            // A file bound over a file: read and written in its directory.
            let (Some(dir), Some(file)) = (source.parent(), source.file_name()) else {
                return Ok((root, path.to_string(), None));
            };
            if abs != m.destination {
                return Ok((root, path.to_string(), None));
            }
            root.fd = rustix::fs::open(dir, flags, Mode::empty())
                .map_err(|e| Error::internal(format!("opening {}: {e}", dir.display())))?;
            root.readonly = false;
            root.readonly_mount = m.read_only;
            let base = m
                .destination
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let file = file.to_string_lossy();
            let top = (file != base.as_str()).then_some(base);
            return Ok((root, format!("/{file}"), top));
        }
        root.fd = rustix::fs::open(source, flags, Mode::empty())
            .map_err(|e| Error::internal(format!("opening {}: {e}", m.source)))?;
        // A writable mount takes writes on a read-only rootfs, as dockerd's.
        root.readonly = false;
        root.readonly_mount = m.read_only;
        let rest = &abs[m.destination.len()..];
        // A trailing "/" or "/." means "the directory's contents" to the CLI.
        let tail = if path.ends_with("/.") {
            "/."
        } else if path.ends_with('/') && !rest.is_empty() {
            "/"
        } else {
            ""
        };
        let inner = format!("/{}{tail}", rest.trim_start_matches('/'));
        let top = (inner == "/").then(|| {
            m.destination
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string()
        });
        Ok((root, inner, top))
    }

    /// What the container changed over its image (`docker diff`); blocking.
    pub fn changes(&self, id: &str) -> Result<Vec<super::diff::Change>> {
        self.require_diff("diff")?;
        super::diff::changes(&self.layers.rw_diff_dir(id), &self.layers.rw_lower_dirs(id))
    }

    /// Container inspect, with the paths only the host knows.
    pub fn inspect_json(&self, state: &State, c: &ContainerRecord) -> serde_json::Value {
        let driver = self.layers.driver().name().to_string();
        let paths = render::Paths {
            log_path: self.log_path(&c.id).display().to_string(),
            graph_driver: DriverData {
                name: driver.clone(),
                data: self.layers.rw_data(&c.id),
            },
            driver,
            health: super::health::read_state(&self.dir(&c.id)),
        };
        render::inspect_json(
            state,
            c,
            paths,
            &self.dir(&c.id),
            &self.names.netns_path(&c.id),
        )
    }
}

/// Bytes of the regular files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
