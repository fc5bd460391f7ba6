//! A container's OCI bundle under the exec root: config.json (the spec) and
//! shim.json (what the shim needs), with the root filesystem mounted.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use bollard_stubs::models::ContainerCreateBody;

use super::proto::{HealthProbe, ShimConfig, SHIM_CONFIG};
use super::spec::{self, SpecInput};
use crate::drivers::storage::LayerStore;
use crate::error::{Context, Error, Result};

pub struct Bundle {
    pub dir: PathBuf,
    pub log_path: PathBuf,
}

/// Reads a file of the container's root filesystem, resolved inside it (a
/// symlink in the image never reaches the host). Missing: empty.
pub fn read_in_root(rootfs: &Path, rel: &str) -> String {
    use rustix::fs::{Mode, OFlags};
    match rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(root) => read_in_root_fd(std::os::fd::AsFd::as_fd(&root), rel),
        Err(_) => String::new(),
    }
}

/// `read_in_root` for a root given as a directory fd (at most 4 MiB).
pub fn read_in_root_fd(root: std::os::fd::BorrowedFd<'_>, rel: &str) -> String {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let Ok(fd) = openat2(
        root,
        rel.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return String::new();
    };
    let mut s = String::new();
    let _ = std::io::Read::read_to_string(
        &mut std::io::Read::take(std::fs::File::from(fd), 4 << 20),
        &mut s,
    );
    s
}

/// The file, in the container's directory, where its shim keeps `State.Health`.
pub const HEALTH_FILE: &str = "health.json";

/// A container's health check, resolved (see `containers::health::check`):
/// the probe's arguments and its timings.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub args: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    pub start_interval_ms: u64,
    pub retries: u32,
}

/// Where a container's cgroups go, as runc places them on cgroupfs: under
/// an absolute `parent` from each hierarchy's root; under a relative one
/// inside the daemon's own cgroup `own`. `..` never climbs out (runc cleans
/// the path first). runc resolves a relative parent per controller; the
/// built-in runtime takes one path for all, so `own` is one path
/// (`hostinfo::own_cgroup`).
pub fn cgroup_path(parent: &str, own: &str, id: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in parent.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let base = if parent.starts_with('/') {
        ""
    } else {
        own.trim_end_matches('/')
    };
    let mut path = base.to_string();
    for p in parts.iter().copied().chain([id]) {
        path.push('/');
        path.push_str(p);
    }
    path
}

/// The cgroup a started container runs in: what its bundle's spec says
/// (the daemon's default parent may have changed since it started).
pub fn running_cgroup(exec_root: &Path, id: &str) -> String {
    let spec = exec_root.join("containers").join(id).join("config.json");
    std::fs::read(&spec)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(str::to_string))
        .unwrap_or_else(|| cgroup_path(crate::config::DEFAULT_CGROUP_PARENT, "/", id))
}

/// Mounts the rootfs and writes the bundle; on error nothing stays mounted.
/// `log_rotation`: the json-file log's (max size, max files), 0 for no limit.
pub fn prepare(
    id: &str,
    body: &ContainerCreateBody,
    layers: &LayerStore,
    exec_root: &Path,
    container_dir: &Path,
    runtime: &[String],
    init_binary: &Path,
    sandbox: &spec::Sandbox,
    log_rotation: (u64, u32),
    health: Option<HealthCheck>,
    mounts: &[spec::Mount],
    namespaces: &spec::Namespaces,
    cgroup_parent: &str,
) -> Result<Bundle> {
    let remap = layers
        .remap()
        .filter(|_| crate::drivers::userns::private(body.host_config.as_ref()))
        .cloned();
    let rootfs = layers.mount_rw(id, remap.is_some())?;
    let made = mount_shareable_shm(body, namespaces, remap.as_deref()).and_then(|()| {
        write(
            id,
            body,
            &rootfs,
            exec_root,
            container_dir,
            runtime,
            init_binary,
            sandbox,
            remap.as_deref(),
            log_rotation,
            health,
            mounts,
            namespaces,
            cgroup_parent,
        )
    });
    if made.is_err() {
        release(layers, exec_root, container_dir, id);
    }
    made
}

/// What dockerd's init layer adds to every container, and programs look
/// for: `/.dockerenv` (how a process learns it runs in a container) and
/// `/etc/mtab` -> /proc/mounts. Made in the container's layer (`docker
/// diff` and commit leave them out, as the init layer's), never through a
/// symlink of the image's.
fn init_layer_files(root: std::os::fd::BorrowedFd<'_>, owner: Option<(u32, u32)>) {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let owner = owner.map(|(u, g)| (rustix::fs::Uid::from_raw(u), rustix::fs::Gid::from_raw(g)));
    let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if let Ok(f) = rustix::fs::openat(
        root,
        ".dockerenv",
        OFlags::WRONLY | OFlags::CREATE | nofollow,
        Mode::from_raw_mode(0o755),
    ) {
        if let Some((u, g)) = owner {
            let _ = rustix::fs::fchown(&f, Some(u), Some(g));
        }
    }
    if let Ok(etc) = rustix::fs::openat(
        root,
        "etc",
        OFlags::RDONLY | OFlags::DIRECTORY | nofollow,
        Mode::empty(),
    ) {
        if rustix::fs::symlinkat("/proc/mounts", &etc, "mtab").is_ok() {
            if let Some((u, g)) = owner {
                let _ =
                    rustix::fs::chownat(&etc, "mtab", Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW);
            }
        }
    }
}

/// Gives back what a start made on the host before the shim ran it: the
/// rootfs mount, the user namespace, a shareable /dev/shm.
pub fn release(layers: &LayerStore, exec_root: &Path, container_dir: &Path, id: &str) {
    layers.unmount_rw(id);
    crate::drivers::userns::release(exec_root, id);
    let shm = shm_dir(container_dir);
    if nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH).is_ok() {
        let _ = std::fs::remove_dir(&shm);
    }
}

/// Where a shareable container's /dev/shm tmpfs is mounted on the host.
pub fn shm_dir(container_dir: &Path) -> PathBuf {
    container_dir.join("shm")
}

/// `--ipc shareable`: the /dev/shm tmpfs is mounted on the host, where
/// containers that join it bind it from, as dockerd does.
fn mount_shareable_shm(
    body: &ContainerCreateBody,
    namespaces: &spec::Namespaces,
    remap: Option<&crate::drivers::userns::Remap>,
) -> Result<()> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let spec::Shm::Shareable(dir) = &namespaces.shm else {
        return Ok(());
    };
    let size = body
        .host_config
        .as_ref()
        .and_then(|h| h.shm_size)
        .filter(|s| *s > 0)
        .unwrap_or(64 << 20);
    std::fs::create_dir_all(dir).context(format_args!("creating {}", dir.display()))?;
    // One left by a start that was cut goes first.
    let _ = umount2(dir, MntFlags::MNT_DETACH);
    mount(
        Some("shm"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={size}").as_str()),
    )
    .context(format_args!("mounting the shm tmpfs at {}", dir.display()))?;
    if let Some(r) = remap {
        let (uid, gid) = r.root();
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .context(format_args!("chown {}", dir.display()))?;
    }
    Ok(())
}

fn write(
    id: &str,
    body: &ContainerCreateBody,
    rootfs: &Path,
    exec_root: &Path,
    container_dir: &Path,
    runtime: &[String],
    init_binary: &Path,
    sandbox: &spec::Sandbox,
    remap: Option<&crate::drivers::userns::Remap>,
    log_rotation: (u64, u32),
    health: Option<HealthCheck>,
    mounts: &[spec::Mount],
    namespaces: &spec::Namespaces,
    cgroup_parent: &str,
) -> Result<Bundle> {
    for m in mounts {
        check_propagation(m)?;
    }
    for m in mounts.iter().filter(|m| m.create_source) {
        // `-v /host/path:/path` makes a missing host directory, as dockerd does.
        if std::fs::symlink_metadata(&m.source).is_err() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&m.source)
                .context(format_args!(
                    "creating the bind source {}",
                    m.source.display()
                ))?;
        }
    }
    let root = rustix::fs::open(
        rootfs,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context(format_args!("opening {}", rootfs.display()))?;
    let root = std::os::fd::AsFd::as_fd(&root);
    if let Some(wd) = body.working_dir.as_deref().filter(|w| !w.is_empty()) {
        // A missing working directory is made, as runc makes it.
        crate::drivers::storage::extract::make_dir_in_root(root, wd, remap.map(|r| r.root()))?;
    }
    init_layer_files(root, remap.map(|r| r.root()));
    let group = read_in_root(rootfs, "etc/group");
    let mut user = spec::resolve_user(
        body.user.as_deref().unwrap_or_default(),
        &read_in_root(rootfs, "etc/passwd"),
        &group,
    )?;
    let added = body
        .host_config
        .as_ref()
        .and_then(|h| h.group_add.clone())
        .unwrap_or_default();
    for gid in spec::group_add_gids(&added, &group)? {
        if !user.additional_gids.contains(&gid) {
            user.additional_gids.push(gid);
        }
    }
    let parent = body
        .host_config
        .as_ref()
        .and_then(|h| h.cgroup_parent.as_deref())
        .filter(|p| !p.is_empty())
        .unwrap_or(cgroup_parent);
    let own = if parent.starts_with('/') {
        String::new()
    } else {
        crate::hostinfo::own_cgroup()
    };
    let cgroup = cgroup_path(parent, &own, id);
    let uid = user.uid;
    let mut config = spec::build(&SpecInput {
        id,
        body,
        rootfs,
        user,
        cgroup_path: cgroup.clone(),
        init_binary,
        sandbox,
        remap: remap.map(|r| (r, crate::drivers::userns::userns_path(exec_root, id))),
        mounts,
        namespaces,
    })?;
    if let Some(r) = remap {
        // As dockerd: the remapped root owns its /etc files.
        let (uid, gid) = r.root();
        for (_, source) in &sandbox.etc_files {
            std::os::unix::fs::chown(source, Some(uid), Some(gid))
                .context(format_args!("chown {}", source.display()))?;
        }
    }
    let builtin = builtin_runtime(runtime);
    let seccomp_program = if builtin {
        compile_seccomp(&config, exec_root)?
    } else {
        None
    };
    if let (Some(program), true) = (&seccomp_program, uid == 0) {
        // The init of a root container installs the compiled program too.
        if let Some(linux) = config["linux"].as_object_mut() {
            linux.remove("seccomp");
        }
        config["annotations"][SECCOMP_PROGRAM] = serde_json::json!(program);
    }
    let dir = exec_root.join("containers").join(id);
    // A bundle left from an earlier start is stale.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).context(format_args!("creating {}", dir.display()))?;
    let log_path = container_dir.join(format!("{id}-json.log"));
    let (log_max_size, log_max_files) = log_rotation;
    let shim = ShimConfig {
        id: id.to_string(),
        runtime: runtime.to_vec(),
        log_path: log_path.clone(),
        cgroup_path: cgroup,
        tty: body.tty.unwrap_or(false),
        open_stdin: body.open_stdin.unwrap_or(false),
        stdin_once: body.stdin_once.unwrap_or(false),
        log_max_size,
        log_max_files,
        console_size: body
            .host_config
            .as_ref()
            .and_then(|h| h.console_size.as_ref())
            .and_then(|c| match c.as_slice() {
                [h, w] => Some([
                    (*h).min(u16::MAX as usize) as u16,
                    (*w).min(u16::MAX as usize) as u16,
                ]),
                _ => None,
            }),
        direct_exec: builtin,
        seccomp_program,
        health: health.map(|h| {
            // Each probe is the container's process with the test's arguments
            // (its user, environment and directory, as dockerd's probe exec).
            let mut process = config["process"].clone();
            process["args"] = serde_json::json!(h.args);
            process["terminal"] = serde_json::json!(false);
            HealthProbe {
                process,
                interval_ms: h.interval_ms,
                timeout_ms: h.timeout_ms,
                start_period_ms: h.start_period_ms,
                start_interval_ms: h.start_interval_ms,
                retries: h.retries,
                state_path: container_dir.join(HEALTH_FILE),
            }
        }),
    };
    let write_json = |name: &str, v: &serde_json::Value| -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(v).map_err(|e| Error::internal(format!("{name}: {e}")))?;
        std::fs::write(dir.join(name), bytes).context(format_args!("writing {name}"))
    };
    write_json("config.json", &config)?;
    write_json(
        SHIM_CONFIG,
        &serde_json::to_value(&shim).map_err(|e| Error::internal(e.to_string()))?,
    )?;
    Ok(Bundle { dir, log_path })
}

/// Whether the runtime is berthd's own (`berthd runtime ...`).
fn builtin_runtime(runtime: &[String]) -> bool {
    runtime.get(1).is_some_and(|a| a == "runtime")
}

/// Annotation naming the compiled seccomp program the built-in runtime
/// installs (instead of `linux.seccomp`, which libcontainer would compile
/// again in every container's init).
pub const SECCOMP_PROGRAM: &str = "berth.seccomp.program";

/// The container's seccomp filter compiled once per distinct profile into
/// `<exec-root>/seccomp/<sha256>.bpf` (libseccomp takes 20-30 ms for dockerd's
/// profile). Every direct exec installs it (as runc applies the filter to
/// each exec). A root container's init installs it too, named by an
/// annotation in place of `linux.seccomp`, so libcontainer does not compile
/// it again in every start; the program then goes in just before the
/// command runs, with no_new_privs (capabilities are dropped by then), which
/// changes nothing for root: a setuid root binary gives root nothing new.
/// Containers of other users keep libcontainer's path and dockerd's exact
/// semantics for their init.
fn compile_seccomp(config: &serde_json::Value, exec_root: &Path) -> Result<Option<PathBuf>> {
    use sha2::Digest;
    let Some(filter) = config["linux"].get("seccomp").cloned() else {
        return Ok(None);
    };
    let text = filter.to_string();
    let dir = exec_root.join("seccomp");
    std::fs::create_dir_all(&dir).context(format_args!("creating {}", dir.display()))?;
    let path = dir.join(format!(
        "{}.bpf",
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    ));
    if !path.exists() {
        let parsed: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(filter)
            .map_err(|e| Error::invalid(format!("the seccomp profile: {e}")))?;
        super::seccomp_bpf::cached(&parsed, &path).map_err(Error::internal)?;
    }
    Ok(Some(path))
}

/// A bind mount that shares its events with the host (shared, rshared) needs
/// a source on a shared mount; one that receives them (slave, rslave) a
/// shared or slave one. Refused with dockerd's words otherwise: the kernel
/// would quietly make it private.
fn check_propagation(m: &spec::Mount) -> Result<()> {
    let wants = |names: [&str; 2]| m.options.iter().any(|o| names.contains(&o.as_str()));
    let (shared, slave) = (wants(["shared", "rshared"]), wants(["slave", "rslave"]));
    if m.kind != spec::MountKind::Bind || !(shared || slave) {
        return Ok(());
    }
    let source = std::fs::canonicalize(&m.source).unwrap_or_else(|_| m.source.clone());
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let Some((point, optional)) = mount_of(&info, &source) else {
        return Ok(());
    };
    let is = |tag: &str| optional.split(' ').any(|f| f.starts_with(tag));
    let src = m.source.display();
    if shared && !is("shared:") {
        return Err(Error::internal(format!(
            "path {src} is mounted on {point} but it is not a shared mount"
        )));
    }
    if slave && !is("shared:") && !is("master:") {
        return Err(Error::internal(format!(
            "path {src} is mounted on {point} but it is not a shared or slave mount"
        )));
    }
    Ok(())
}

/// The mount point under which `path` lies (the longest that contains it) and
/// its optional fields ("shared:1 master:2"), from a mountinfo text.
fn mount_of<'a>(mountinfo: &'a str, path: &Path) -> Option<(&'a str, &'a str)> {
    let mut best: Option<(&str, &str)> = None;
    for line in mountinfo.lines() {
        let Some((head, _)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = head.splitn(7, ' ').collect();
        let (Some(point), optional) = (fields.get(4), fields.get(6).copied().unwrap_or("")) else {
            continue;
        };
        if path.starts_with(point) && best.is_none_or(|(b, _)| point.len() >= b.len()) {
            best = Some((point, optional));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_as_runc_places_them() {
        let own = "/process_api/63ff";
        assert_eq!(cgroup_path("/berth", own, "c1"), "/berth/c1");
        assert_eq!(cgroup_path("/bar/baz/", own, "c1"), "/bar/baz/c1");
        assert_eq!(cgroup_path("foo", own, "c1"), "/process_api/63ff/foo/c1");
        // `..` never climbs out of the parent's base.
        assert_eq!(
            cgroup_path("../../evil", own, "c1"),
            "/process_api/63ff/evil/c1"
        );
        assert_eq!(cgroup_path("/../x/./y", own, "c1"), "/x/y/c1");
        assert_eq!(cgroup_path("foo", "/", "c1"), "/foo/c1");
    }

    #[test]
    fn finds_the_mount_a_path_lies_under() {
        let info = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:35 / /tmp/sh rw shared:7 master:3 - tmpfs tmpfs rw
41 22 0:36 / /tmp/private rw - tmpfs tmpfs rw
";
        assert_eq!(mount_of(info, Path::new("/srv/x")), Some(("/", "shared:1")));
        assert_eq!(
            mount_of(info, Path::new("/tmp/sh/a")),
            Some(("/tmp/sh", "shared:7 master:3"))
        );
        assert_eq!(
            mount_of(info, Path::new("/tmp/private")),
            Some(("/tmp/private", ""))
        );
    }
}
